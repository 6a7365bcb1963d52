//! The MLModel controller: wiring only. What the live objects say is read in `observe`, the
//! rollout is decided in `plan`, the desired children are made in `build`, and the status in
//! `status`; all four are pure.

pub mod build;
pub mod host;
pub mod observe;
pub mod plan;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::info;

use berth_api::PlatformSettings;
use berth_api::labels::MODEL;
use berth_api::mlmodel::{MLModel, ModelSettings};
use berth_api::settings::SETTINGS_NAME;
use berth_reconcile::{
    Announcer, Backoffs, ChildCache, Error, IN_FLIGHT, Metrics, Owner, Written, apply, runner,
};

use self::build::{COMPONENT, DOWNLOAD, Environment, SERVER, VERSION, Version, job_name};
use self::plan::{Observed, decide, recorded_active};
use crate::discovery::{self, Found};
use crate::kinds;

/// The finalizer that removes a model's children before the model goes.
pub const FINALIZER: &str = "berth.dev/mlmodel";
const CONTROLLER: &str = "mlmodel";
/// Requeue when nothing is in flight: a safety net only, since watches bring every change.
const RESYNC: Duration = Duration::from_secs(10 * 60);

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
}

impl Context {
    /// The model settings in force.
    pub fn settings(&self) -> ModelSettings {
        self.settings
            .get(&ObjectRef::new(SETTINGS_NAME))
            .map(|s| s.spec.models.clone())
            .unwrap_or_default()
    }
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
    });

    let mut controller = Controller::for_stream(model_stream, models)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(settings_changes)
        .graceful_shutdown_on(shutdown);
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
                && o.namespace == namespace
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

/// What the caches say about the model's versions.
fn observe(
    ctx: &Context,
    model: &MLModel,
    settings: &ModelSettings,
    target: &Version,
    active: Option<&Version>,
) -> Observed {
    let name = model.name_any();
    let pods: Vec<Pod> = owned(ctx, model, &kinds::pod());
    let jobs: Vec<Job> = owned(ctx, model, &kinds::job());
    let deployment = owned::<Deployment>(ctx, model, &kinds::deployment())
        .into_iter()
        .find(|d| d.metadata.name.as_deref() == Some(name.as_str()));

    let target_download = if target.downloads() {
        let wanted = job_name(&name, &target.key);
        let job = jobs
            .iter()
            .find(|j| j.metadata.name.as_deref() == Some(wanted.as_str()));
        let download_pods: Vec<&Pod> = pods
            .iter()
            .filter(|p| label_is(p, COMPONENT, DOWNLOAD) && label_is(p, VERSION, &target.key))
            .collect();
        let timeout = target
            .source
            .timeout
            .clone()
            .unwrap_or_else(|| format!("{}s", settings.download_timeout_seconds));
        observe::download(job, &download_pods, &target.source.uri, &timeout)
    } else {
        observe::Download::NotNeeded
    };
    let server_pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| label_is(p, COMPONENT, SERVER))
        .collect();
    let crash = settings.crash_loop_restarts;
    Observed {
        target_download,
        target_problem: observe::version_problem(&server_pods, &target.key, crash),
        active_problem: active.and_then(|a| observe::version_problem(&server_pods, &a.key, crash)),
        serving: deployment.as_ref().map(observe::serving),
    }
}

/// Makes the cluster match the model. Returns the next action and how many writes it made.
async fn apply_model(model: &MLModel, ctx: &Context) -> Result<(Action, usize), Error> {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let settings = ctx.settings();
    let now = Timestamp::now();
    let target = Version::of(&model.spec.source, &model.spec.runtime);
    let active = recorded_active(model);
    let observed = observe(ctx, model, &settings, &target, active.as_ref());
    let decision = decide(model, &observed, now);
    let host = host::decide(model, &ctx.models.state(), &settings);
    let built = build::build(model, &settings, ctx.env.clone(), &decision.plan, &host)?;
    let new_status = status::status(model, &observed, &decision, &built, now);

    // The status first: a failure it records is what keeps the failed version from being
    // retried once its Job is removed below.
    let mut writes = 0;
    let api: Api<MLModel> = Api::namespaced(ctx.client.clone(), &namespace);
    let before = model
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if berth_reconcile::status::write_if_changed(&api, &name, model.status.as_ref(), &new_status)
        .await?
    {
        writes += 1;
        ctx.announcer
            .transitions(&model.object_ref(&()), &before, &new_status.conditions)
            .await;
    }

    let uid = model.uid().unwrap_or_default();
    let report = apply(
        &ctx.client,
        &ctx.children,
        &ctx.written,
        &built.children,
        Owner {
            name: &name,
            uid: &uid,
        },
    )
    .await?;
    if report.wrote() {
        info!(model = %format!("{namespace}/{name}"), phase = ?decision.phase, applied = ?report.applied, pruned = ?report.pruned, "reconciled");
    }
    writes += report.applied.len() + report.pruned.len();
    ctx.backoffs.succeeded(&format!("{namespace}/{name}"));
    let wait = if report.in_flight > 0 {
        IN_FLIGHT
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
            || object.namespace != namespace
            || !object.controlled_by(&uid)
        {
            continue;
        }
        let api = kind.api(&ctx.client, object.namespace.as_deref());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&object.name, &params).await {
            Ok(_) => writes += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    info!(model = %format!("{}/{}", namespace.unwrap_or_default(), model.name_any()), deleted = writes, "model deleted with its children");
    Ok((Action::await_change(), writes))
}

#[cfg(test)]
mod tests;
