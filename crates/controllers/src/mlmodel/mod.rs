//! The MLModel controller: wiring only. What the live objects say is read in `observe`, the
//! rollout is decided in `plan`, the desired children are made in `build`, and the status in
//! `status`; all four are pure.

pub mod auth;
pub mod build;
pub mod host;
pub mod observe;
pub mod plan;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use berth_api::labels::MODEL;
use berth_api::mlmodel::{MLModel, ModelSettings};
use berth_api::settings::SETTINGS_NAME;
use berth_api::{PlatformSettings, PlatformSettingsSpec, Project};
use berth_reconcile::{
    Announcer, Backoffs, ChildCache, Error, IN_FLIGHT, Metrics, Owner, Report, Written, apply_all,
    runner,
};

use self::build::download::{job_name, unpack_limit};
use self::build::{
    CANARY, COMPONENT, DOWNLOAD, Environment, SERVER, TRACK, VERSION, Version, VolumeSpec,
    volume_name,
};
use self::observe::{Download, quota_problem};
use self::plan::{Observed, ObservedCanary, decide, recorded_active};
use crate::discovery::{self, Found};
use crate::kinds;
use crate::names::kube::model_canary;

/// The finalizer that removes a model's children before the model goes.
pub const FINALIZER: &str = "berth.dev/mlmodel";
const CONTROLLER: &str = "mlmodel";
/// Requeue when nothing is in flight: a safety net only, since watches bring every change.
const RESYNC: Duration = Duration::from_secs(10 * 60);
/// Look again this soon while a download Job waits for its pod (see [`failed_creates`]).
const WAITING_FOR_POD: Duration = Duration::from_secs(2);

/// What every MLModel reconcile shares.
pub struct Context {
    pub client: Client,
    pub children: ChildCache,
    pub settings: Store<PlatformSettings>,
    pub env: Environment,
    pub announcer: Announcer,
    pub metrics: Metrics,
    pub backoffs: Backoffs,
    pub written: Written,
    /// Every model, for which one holds a host name.
    pub models: Store<MLModel>,
    /// Every Project: whether a model's Project has an OIDC client decides its default auth.
    pub projects: Store<Project>,
}

impl Context {
    /// The model settings in force.
    pub fn settings(&self) -> ModelSettings {
        self.settings
            .get(&ObjectRef::new(SETTINGS_NAME))
            .map(|s| s.spec.models.clone())
            .unwrap_or_default()
    }

    /// The platform settings in force.
    pub fn platform(&self) -> PlatformSettingsSpec {
        self.settings
            .get(&ObjectRef::new(SETTINGS_NAME))
            .map(|s| s.spec.clone())
            .unwrap_or_default()
    }

    /// The Project whose namespace is `namespace`, if any (see [`owning_project`]).
    pub fn project_of(&self, namespace: &str) -> Option<Arc<Project>> {
        owning_project(self.projects.state(), namespace)
    }
}

/// Of `projects`, the one whose namespace is `namespace`: of those that name it, the one that
/// holds it (NamespaceReady=True), else one not refused it (NamespaceConflict), the oldest
/// first. Another Project naming the same namespace (it ends in NamespaceConflict) never stands
/// in for its owner: found in review, a squatter with no OIDC client could take the owner's
/// models off the air.
pub fn owning_project(projects: Vec<Arc<Project>>, namespace: &str) -> Option<Arc<Project>> {
    let namespace_ready = |p: &Project| {
        p.status
            .as_ref()
            .and_then(|s| {
                berth_api::conditions::get(&s.conditions, crate::project::status::NAMESPACE_READY)
            })
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    projects
        .into_iter()
        .filter(|p| p.namespace_name() == Some(namespace))
        .filter(|p| namespace_ready(p).is_none_or(|(_, reason)| reason != "NamespaceConflict"))
        .min_by_key(|p| {
            (
                namespace_ready(p).is_none_or(|(status, _)| status != "True"),
                p.metadata.creation_timestamp.clone().map(|t| t.0),
                p.metadata.name.clone(),
            )
        })
}

/// Runs the MLModel controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Which routing kinds the cluster serves, and at which version. Until discovery answers, the
    // controller does not start: a failed call is never taken to mean "not installed".
    let mut shutdown = Box::pin(shutdown);
    let found = tokio::select! {
        found = discovery::find_until_answered(&client, &[discovery::HTTP_ROUTE, discovery::VIRTUAL_SERVICE]) => found,
        _ = &mut shutdown => {
            info!("mlmodel controller stopped before discovery answered");
            return;
        }
    };
    let env = Environment {
        http_route: found.first().and_then(Found::kind).cloned(),
        virtual_service: found.get(1).and_then(Found::kind).cloned(),
    };
    let routes: Vec<_> = found.iter().filter_map(Found::kind).cloned().collect();
    let (children, streams) =
        ChildCache::watch_indexed(&client, kinds::model_children(&routes), MODEL);

    let (settings, settings_changes) = runner::settings(&client);
    let (models, model_stream) = runner::primary(Api::<MLModel>::all(client.clone()));
    // A Project's OIDC client coming or going changes its models' auth.
    let (projects, project_stream) = runner::primary(Api::<Project>::all(client.clone()));
    metrics.count_objects(CONTROLLER, models.clone(), |o: &MLModel| {
        berth_reconcile::Readiness::of(o.status.as_ref().map(|s| s.conditions.as_slice()))
    });

    let context = Arc::new(Context {
        client: client.clone(),
        children,
        settings,
        env,
        announcer: Announcer::new(client.clone(), "berth-mlmodel-controller"),
        metrics,
        backoffs: Backoffs::default(),
        written: Written::default(),
        models: models.clone(),
        projects,
    });
    let models_of_project = models.clone();

    let mut controller = Controller::for_stream(model_stream, models)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(settings_changes)
        .graceful_shutdown_on(shutdown);
    controller = controller.watches_stream(project_stream, move |project: Project| {
        let namespace = project.namespace_name().unwrap_or_default().to_owned();
        models_of_project
            .state()
            .into_iter()
            .filter(|m| m.namespace().as_deref() == Some(namespace.as_str()))
            .map(|m| ObjectRef::from_obj(m.as_ref()))
            .collect::<Vec<_>>()
    });
    for (stream, resource) in streams {
        controller = controller.watches_stream_with(stream, owning_model, resource);
    }
    info!(
        http_route = %found.first().map(Found::describe).unwrap_or_default(),
        virtual_service = %found.get(1).map(Found::describe).unwrap_or_default(),
        "mlmodel controller started"
    );
    controller
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("mlmodel controller stopped");
}

/// The model a child or pod belongs to, from its `berth.dev/model` label and namespace.
fn owning_model(child: kube::api::DynamicObject) -> Option<ObjectRef<MLModel>> {
    let namespace = child.namespace()?;
    child
        .labels()
        .get(MODEL)
        .map(|name| ObjectRef::new(name).within(&namespace))
}

async fn reconcile(model: Arc<MLModel>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = model.namespace().unwrap_or_default();
    let api: Api<MLModel> = Api::namespaced(ctx.client.clone(), &namespace);
    runner::with_finalizer(
        CONTROLLER,
        &ctx.metrics,
        &ctx.children,
        &api,
        FINALIZER,
        model,
        async |m| apply_model(&m, &ctx).await,
        async |m| cleanup(&m, &ctx).await,
    )
    .await
}

fn error_policy(model: Arc<MLModel>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        model.namespace().unwrap_or_default(),
        model.name_any()
    );
    runner::retry(&ctx.backoffs, CONTROLLER, &key, error)
}

/// The live objects of the model's kinds in its namespace that it controls.
fn owned<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    model: &MLModel,
    kind: &berth_reconcile::ChildKind,
) -> Vec<T> {
    let uid = model.uid().unwrap_or_default();
    let namespace = model.namespace();
    ctx.children
        .owned_by(&model.name_any())
        .into_iter()
        .filter(|(k, o)| {
            k.resource.kind == kind.resource.kind
                && o.namespace() == namespace.as_deref()
                && !o.deleting
                && (kind.resource.kind == "Pod" || o.controlled_by(&uid))
        })
        .filter_map(|(_, o)| o.parse::<T>())
        .collect()
}

fn label_is(pod: &Pod, key: &str, value: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .is_some_and(|v| v == value)
}

/// Why the Job controller could not create the pod of each download Job that has none, from its
/// `FailedCreate` Events (a quota, an admission policy): Job name to the latest message. Only Jobs
/// without pods are looked up, so a model whose downloads run reads nothing.
async fn failed_creates(ctx: &Context, model: &MLModel) -> BTreeMap<String, String> {
    let namespace = model.namespace().unwrap_or_default();
    let pods: Vec<Pod> = owned(ctx, model, &kinds::pod());
    let jobs: Vec<Job> = owned(ctx, model, &kinds::job());
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut refused = BTreeMap::new();
    for job in jobs {
        let name = job.name_any();
        let finished = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.status == "True"));
        let has_pods = pods.iter().any(|p| {
            p.labels().get("batch.kubernetes.io/job-name") == Some(&name)
                || p.labels().get("job-name") == Some(&name)
        });
        if finished || has_pods {
            continue;
        }
        let selector =
            format!("involvedObject.kind=Job,involvedObject.name={name},reason=FailedCreate");
        match events.list(&ListParams::default().fields(&selector)).await {
            Ok(list) => {
                let latest = list.items.into_iter().max_by_key(|e| {
                    e.last_timestamp
                        .as_ref()
                        .map(|t| t.0)
                        .or(e.event_time.as_ref().map(|t| t.0))
                });
                if let Some(message) = latest.and_then(|e| e.message) {
                    refused.insert(name, message);
                }
            }
            Err(e) => {
                warn!(job = %name, error = %e, "could not read the download Job's Events");
            }
        }
    }
    refused
}

/// The state of the download of `version`: its Job (the one that downloaded it, else the one
/// Berth builds now) and pods.
fn download_of(
    model: &MLModel,
    settings: &ModelSettings,
    version: &Version,
    jobs: &[Job],
    pods: &[Pod],
    succeeded: &BTreeMap<String, String>,
    refused: &BTreeMap<String, String>,
) -> Download {
    if !version.downloads() {
        return Download::NotNeeded;
    }
    let name = model.name_any();
    let wanted = succeeded.get(&version.key).cloned().unwrap_or_else(|| {
        let volume = VolumeSpec::of(model, settings);
        job_name(&name, settings, version, unpack_limit(&volume))
    });
    let job = jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(wanted.as_str()));
    let download_pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            label_is(p, COMPONENT, DOWNLOAD)
                && label_is(p, VERSION, &version.key)
                && (p.labels().get("batch.kubernetes.io/job-name") == Some(&wanted)
                    || p.labels().get("job-name") == Some(&wanted))
        })
        .collect();
    let timeout = version
        .source
        .timeout
        .clone()
        .unwrap_or_else(|| format!("{}s", settings.download_timeout_seconds));
    observe::download(
        job,
        &download_pods,
        refused.get(&wanted).map(String::as_str),
        &version.source.uri,
        &timeout,
    )
}

/// What the caches say about the model's versions.
#[allow(clippy::too_many_arguments)]
fn observe(
    ctx: &Context,
    model: &MLModel,
    settings: &ModelSettings,
    target: &Version,
    canary: Option<&Version>,
    active: Option<&Version>,
    refused: &BTreeMap<String, String>,
) -> Observed {
    let name = model.name_any();
    let pods: Vec<Pod> = owned(ctx, model, &kinds::pod());
    let jobs: Vec<Job> = owned(ctx, model, &kinds::job());
    let deployments: Vec<Deployment> = owned(ctx, model, &kinds::deployment());
    let deployment = |wanted: &str| {
        deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(wanted))
    };
    let succeeded = observe::succeeded_jobs(&jobs);
    let server_pods = |canary: bool| -> Vec<&Pod> {
        pods.iter()
            .filter(|p| label_is(p, COMPONENT, SERVER) && label_is(p, TRACK, CANARY) == canary)
            .collect()
    };
    let stable_pods = server_pods(false);
    let canary_pods = server_pods(true);
    let crash = settings.crash_loop_restarts;
    let canary_version = canary;
    let canary = match canary {
        Some(version) => ObservedCanary {
            download: download_of(model, settings, version, &jobs, &pods, &succeeded, refused),
            problem: observe::version_problem(&canary_pods, &version.key, crash),
            serving: deployment(&model_canary(&name)).map(observe::serving),
        },
        None => ObservedCanary::default(),
    };
    let mut observed = Observed {
        target_download: download_of(model, settings, target, &jobs, &pods, &succeeded, refused),
        target_problem: observe::version_problem(&stable_pods, &target.key, crash),
        active_problem: active.and_then(|a| observe::version_problem(&stable_pods, &a.key, crash)),
        serving: deployment(&name).map(observe::serving),
        succeeded_jobs: succeeded,
        canary,
        volumes_deleting: BTreeSet::new(),
    };
    // A version asked for again while its old volume is still being deleted (a canary of the
    // version a promote just replaced, whose pods still drain): that volume cannot be used, and
    // a Job or pod made for it would wait on a claim that is about to vanish. The version waits
    // until the volume is gone, then gets a new one (the volume's deletion wakes this model).
    let namespace = model.namespace();
    let pvc = kinds::persistent_volume_claim();
    for version in std::iter::once(target).chain(canary_version) {
        let volume = volume_name(&name, &version.key);
        let deleting = ctx
            .children
            .get(&pvc.resource, namespace.as_deref(), &volume)
            .is_some_and(|o| o.deleting);
        if !deleting || active.is_some_and(|a| a.key == version.key) {
            continue;
        }
        let waiting = Download::Waiting(format!(
            "the volume {volume} of an earlier copy of version {} is still being deleted (the pods that used it are stopping); a new one is made once it is gone",
            version.key
        ));
        if version.key == target.key {
            observed.target_download = waiting.clone();
        }
        if canary_version.is_some_and(|c| c.key == version.key) {
            observed.canary.download = waiting;
        }
        observed.volumes_deleting.insert(version.key.clone());
    }
    observed
}

/// A refusal of the API server to create the volume or Job of the spec's version or of its
/// canary (a storage quota, an admission policy) makes that version's download fail, with the
/// reason, instead of a reconcile error retried forever: the old version keeps serving.
fn refusals(
    model: &MLModel,
    report: &Report,
    target: &Version,
    canary: Option<&Version>,
    observed: &mut Observed,
) -> bool {
    let name = model.name_any();
    let mut changed = false;
    for failure in report.failed.iter().filter(|f| !f.pruning) {
        let refused = matches!(
            failure.error.category,
            berth_reconcile::Category::InvalidSpec | berth_reconcile::Category::Internal
        ) && failure.error.message.contains("forbidden");
        if !refused && !failure.error.message.contains("exceeded quota") {
            continue;
        }
        let of = |v: &Version| {
            failure.name == volume_name(&name, &v.key)
                || failure
                    .name
                    .starts_with(&format!("{name}-fetch-{}-", v.key))
        };
        let what = format!(
            "the {} {}",
            if failure.kind == "PersistentVolumeClaim" {
                "volume"
            } else {
                "download Job"
            },
            failure.name
        );
        let problem =
            quota_problem(&failure.error.message, &what).unwrap_or_else(|| observe::Problem {
                reason: "Refused".into(),
                message: format!("{what} cannot be created: {}", failure.error.message),
                exit_code: None,
            });
        if of(target) && !matches!(observed.target_download, Download::Failed(_)) {
            observed.target_download = Download::Failed(problem);
            changed = true;
        } else if canary.is_some_and(&of)
            && !matches!(observed.canary.download, Download::Failed(_))
        {
            observed.canary.download = Download::Failed(problem);
            changed = true;
        }
    }
    changed
}

/// Makes the cluster match the model. Returns the next action and how many writes it made.
async fn apply_model(model: &MLModel, ctx: &Context) -> Result<(Action, usize), Error> {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let settings = ctx.settings();
    let now = Timestamp::now();
    let target = Version::target(model, &settings);
    let canary = Version::canary(model, &settings);
    let active = recorded_active(model);
    let refused = failed_creates(ctx, model).await;
    let mut observed = observe(
        ctx,
        model,
        &settings,
        &target,
        canary.as_ref(),
        active.as_ref(),
        &refused,
    );
    let host = host::decide(model, &ctx.models.state(), &settings);
    // Until every Project is cached, a model's default auth cannot be told (oidc needs its
    // Project's client): wait, never guess.
    ctx.projects
        .wait_until_ready()
        .await
        .map_err(|e| Error::internal(format!("the Project cache stopped: {e}")))?;
    let project = ctx.project_of(&namespace);
    let auth = auth::resolve(model, project.as_deref(), &ctx.platform());
    let api: Api<MLModel> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = model.uid().unwrap_or_default();
    let mut written_status = model.status.clone();
    let mut writes = 0;
    // Twice at most: a volume or Job the API server refuses turns into that version's failure,
    // which the second pass records and acts on (the refused version's children go).
    let mut pass = 0;
    let (decision, report) = loop {
        pass += 1;
        let decision = decide(model, &target, canary.as_ref(), &observed, now);
        let built = build::build(
            model,
            &settings,
            &ctx.env,
            &decision.plan,
            &host,
            auth.as_ref().ok(),
        )?;
        let new_status = status::status(model, &observed, &decision, &built, &auth, now);

        // The status first: a failure it records is what keeps the failed version from being
        // retried once its Job is removed below.
        let before = written_status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if berth_reconcile::status::write_if_changed(
            &api,
            &name,
            written_status.as_ref(),
            &new_status,
        )
        .await?
        {
            writes += 1;
            ctx.announcer
                .transitions(&model.object_ref(&()), &before, &new_status.conditions)
                .await;
        }
        written_status = Some(new_status);

        let report = apply_all(
            &ctx.client,
            &ctx.children,
            &ctx.written,
            &built.children,
            Owner {
                name: &name,
                uid: &uid,
            },
        )
        .await;
        writes += report.applied.len() + report.pruned.len();
        if report.wrote() {
            info!(model = %format!("{namespace}/{name}"), phase = ?decision.phase, applied = ?report.applied, pruned = ?report.pruned, "reconciled");
        }
        if pass == 1 && refusals(model, &report, &target, canary.as_ref(), &mut observed) {
            continue;
        }
        break (decision, report);
    };
    let in_flight = report.in_flight > 0;
    // Errors other than refusals (an API server that did not answer, a conflict) are retried
    // by the error policy, after every other child was applied.
    report.into_result()?;
    ctx.backoffs.succeeded(&format!("{namespace}/{name}"));
    // A download Job waiting for its pod is looked at again soon: a refusal to create it (a
    // quota) is an Event, which wakes nothing.
    let waiting = |d: &Download| matches!(d, Download::Waiting(_) | Download::Absent);
    let downloads = |v: &Version| decision.plan.volumes.iter().any(|p| p.key == v.key);
    let download_pending = (downloads(&target) && waiting(&observed.target_download))
        || canary.as_ref().is_some_and(|c| {
            downloads(c) && c.key != target.key && waiting(&observed.canary.download)
        });
    let wait = if in_flight {
        IN_FLIGHT
    } else if download_pending || !observed.volumes_deleting.is_empty() {
        WAITING_FOR_POD
    } else {
        RESYNC
    };
    Ok((Action::requeue(wait), writes))
}

/// Deletes every child of the model before it goes (the owner references would too, later):
/// no volume and no Job outlives a model.
async fn cleanup(model: &MLModel, ctx: &Context) -> Result<(Action, usize), Error> {
    let uid = model.uid().unwrap_or_default();
    let namespace = model.namespace();
    let mut writes = 0;
    for (kind, object) in ctx.children.owned_by(&model.name_any()) {
        if !kind.prune
            || object.deleting
            || object.namespace() != namespace.as_deref()
            || !object.controlled_by(&uid)
        {
            continue;
        }
        let api = kind.api(&ctx.client, object.namespace());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(object.name(), &params).await {
            Ok(_) => writes += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    info!(model = %format!("{}/{}", namespace.unwrap_or_default(), model.name_any()), deleted = writes, "model deleted with its children");
    Ok((Action::await_change(), writes))
}

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;
