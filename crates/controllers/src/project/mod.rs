//! The Project controller: wiring only. What a Project becomes is decided in `build`, what is wrong
//! with it in `validate`, and what its status says in `status`.

pub mod build;
pub mod external;
pub mod members;
pub mod namespace;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::{ResourceQuota, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::info;

use berth_api::labels::PROJECT;
use berth_api::settings::SETTINGS_NAME;
use berth_api::{DeletionPolicy, PlatformSettings, PlatformSettingsSpec, Project};
use berth_reconcile::{
    Announcer, Backoffs, ChildCache, Error, IN_FLIGHT, Metrics, Owner, Written, apply, runner,
};

use self::build::{Environment, build};
use self::namespace::Claim;
use self::status::Outcome;
use crate::kinds;

/// The finalizer that runs the deletion policy.
pub const FINALIZER: &str = "berth.dev/project";
const CONTROLLER: &str = "project";
/// Requeue when all is well: a safety net only, since watches bring every change. Reads only.
const RESYNC: Duration = Duration::from_secs(30 * 60);

/// What every Project reconcile shares.
pub struct Context {
    pub client: Client,
    pub children: ChildCache,
    pub settings: Store<PlatformSettings>,
    pub env: Environment,
    pub announcer: Announcer,
    pub metrics: Metrics,
    pub backoffs: Backoffs,
    pub written: Written,
    /// The bucket, OIDC client and registry project of each Project.
    pub external: external::External,
}

impl Context {
    /// The platform settings in force: the `default` PlatformSettings, or the built-in defaults.
    pub fn settings(&self) -> PlatformSettingsSpec {
        self.settings
            .get(&ObjectRef::new(SETTINGS_NAME))
            .map(|s| s.spec.clone())
            .unwrap_or_default()
    }
}

/// Runs the Project controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    concurrency: u16,
    operator_namespace: String,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let istio_installed = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt("authorizationpolicies.security.istio.io")
        .await
        .ok()
        .flatten()
        .is_some();
    let (children, streams) = ChildCache::watch(&client, kinds::project_children(istio_installed));

    let (settings, settings_changes) = runner::settings(&client);

    // The providers' admin credentials: Secrets in the operator's own namespace, and nowhere else.
    let admin_writer = reflector::store::Writer::<Secret>::default();
    let admin_secrets = admin_writer.as_reader();
    let admin_changes = watcher(
        Api::<Secret>::namespaced(client.clone(), &operator_namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(admin_writer)
    .applied_objects()
    .filter_map(|r| async move { r.ok().map(|_| ()) });
    let settings_changes = futures::stream::select(settings_changes, admin_changes);

    let context = Arc::new(Context {
        client: client.clone(),
        children,
        settings,
        env: Environment { istio_installed },
        announcer: Announcer::new(client.clone(), "berth-project-controller"),
        metrics,
        backoffs: Backoffs::default(),
        written: Written::default(),
        external: external::External::new(external::connect::Connections::new(
            admin_secrets,
            operator_namespace,
        )),
    });

    let (projects, project_stream) = runner::primary(Api::<Project>::all(client.clone()));
    let mut controller = Controller::for_stream(project_stream, projects)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_all_on(settings_changes)
        .graceful_shutdown_on(shutdown);
    // Children map to their Project by label, not by owner reference: kube-runtime would give a
    // cluster-scoped owner the child's namespace, and the same Project would then be reconciled
    // twice at once under two names.
    for (stream, resource) in streams {
        controller = controller.watches_stream_with(stream, owning_project, resource);
    }
    info!(istio_installed, "project controller started");
    controller
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("project controller stopped");
}

async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Project> = Api::all(ctx.client.clone());
    runner::with_finalizer(
        CONTROLLER,
        &ctx.metrics,
        &ctx.children,
        &api,
        FINALIZER,
        project,
        async |p| apply_project(&p, &ctx).await,
        async |p| cleanup(&p, &ctx).await,
    )
    .await
}

/// The Project a child belongs to, from its `berth.dev/project` label.
fn owning_project(child: kube::api::DynamicObject) -> Option<ObjectRef<Project>> {
    child.labels().get(PROJECT).map(|name| ObjectRef::new(name))
}

fn error_policy(project: Arc<Project>, error: &Error, ctx: Arc<Context>) -> Action {
    runner::retry(&ctx.backoffs, CONTROLLER, &project.name_any(), error)
}

/// Makes the cluster match the Project. Returns the next action and how many writes it made.
async fn apply_project(project: &Project, ctx: &Context) -> Result<(Action, usize), Error> {
    let name = project.name_any();
    let settings = ctx.settings();
    let mut writes = 0;
    let (namespace, subjects, outcome, action) = match validate::validate(project) {
        Err(e) => (
            project.namespace_name().unwrap_or_default().to_owned(),
            members::effective(project),
            Outcome::Invalid(e),
            Action::await_change(),
        ),
        Ok(()) => {
            let mut built = build(project, &settings, ctx.env)?;
            let (outcome, action) = match namespace::claim(ctx, project, &built).await? {
                Claim::Conflict(message) => (
                    Outcome::NamespaceConflict(message),
                    Action::requeue(Duration::from_secs(60)),
                ),
                Claim::Terminating => (
                    Outcome::NamespaceTerminating,
                    Action::requeue(Duration::from_secs(5)),
                ),
                Claim::Ours { created } => {
                    writes += usize::from(created);
                    // The outside parts first, so their Secrets go out with the rest; a failing
                    // provider keeps its Secret as it is and never holds up the in-cluster parts.
                    let prepared = ctx
                        .external
                        .prepare(
                            project,
                            &built.namespace,
                            &built.subjects,
                            &settings,
                            &ctx.children,
                        )
                        .await;
                    let mut prepared = prepared;
                    built.children.extend(prepared.take_secrets());
                    match apply_children(ctx, project, &built.children).await {
                        Ok((n, in_flight)) => {
                            writes += n;
                            let outcome = Outcome::Applied {
                                quota: quota_status(ctx, &built.namespace),
                                istio_missing: settings.istio.enabled && !ctx.env.istio_installed,
                                network_policies: built
                                    .children
                                    .iter()
                                    .filter(|d| d.kind.resource.kind == "NetworkPolicy")
                                    .count(),
                                parts: prepared.states(),
                                external: prepared.external_status(
                                    project.status.as_ref().and_then(|s| s.external.as_ref()),
                                ),
                            };
                            let mut next = if in_flight { IN_FLIGHT } else { RESYNC };
                            if let Some(retry) = prepared.retry_in() {
                                next = next.min(retry);
                            }
                            // The Secrets hold the new credentials: the old ones may go.
                            ctx.external.finish(&name, prepared).await;
                            (outcome, Action::requeue(next))
                        }
                        Err(e) => (
                            Outcome::ApplyFailed(e),
                            Action::requeue(Duration::from_secs(5)),
                        ),
                    }
                }
            };
            (built.namespace, built.subjects, outcome, action)
        }
    };

    let api: Api<Project> = Api::all(ctx.client.clone());
    let new_status = status::status(project, &namespace, &subjects, &outcome, Timestamp::now());
    let before = project
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if berth_reconcile::status::write_if_changed(&api, &name, project.status.as_ref(), &new_status)
        .await?
    {
        writes += 1;
        ctx.announcer
            .transitions(&project.object_ref(&()), &before, &new_status.conditions)
            .await;
    }
    match outcome {
        // The status says what failed; the error makes the controller retry with backoff.
        Outcome::ApplyFailed(e) => Err(e),
        _ => {
            ctx.backoffs.succeeded(&name);
            Ok((action, writes))
        }
    }
}

/// The live quota's status, from the cache.
fn quota_status(
    ctx: &Context,
    namespace: &str,
) -> Option<k8s_openapi::api::core::v1::ResourceQuotaStatus> {
    let live = ctx.children.get(
        &kinds::resource_quota().resource,
        Some(namespace),
        "berth-quota",
    )?;
    live.parse::<ResourceQuota>()?.status
}

/// Applies the built children; returns the writes made and whether some writes are still in flight.
async fn apply_children(
    ctx: &Context,
    project: &Project,
    children: &[berth_reconcile::Desired],
) -> Result<(usize, bool), Error> {
    let name = project.name_any();
    let uid = project.uid().unwrap_or_default();
    let report = apply(
        &ctx.client,
        &ctx.children,
        &ctx.written,
        children,
        Owner {
            name: &name,
            uid: &uid,
        },
    )
    .await?;
    if report.wrote() {
        info!(project = %name, applied = report.applied.len(), pruned = report.pruned.len(), "reconciled");
    }
    Ok((
        report.applied.len() + report.pruned.len(),
        report.in_flight > 0,
    ))
}

/// Runs the deletion policy before the Project goes.
async fn cleanup(project: &Project, ctx: &Context) -> Result<(Action, usize), Error> {
    let settings = ctx.settings();
    let policy = project
        .spec
        .deletion_policy
        .unwrap_or(settings.default_deletion_policy);
    let namespace = project.namespace_name().unwrap_or_default().to_owned();
    let reference = project.object_ref(&());
    if !namespace::is_ours(ctx, project, &namespace) {
        ctx.announcer
            .publish(
                &reference,
                EventType::Normal,
                "NamespaceLeftAlone",
                &format!("namespace {namespace} was never this project's, so deleting the project leaves it untouched"),
            )
            .await;
        return Ok((Action::await_change(), 0));
    }
    let writes = match policy {
        DeletionPolicy::Retain => {
            let detached = namespace::retain(ctx, project, &namespace).await?;
            let outside = ctx.external.retained(project, &settings);
            let outside = if outside.is_empty() {
                String::new()
            } else {
                format!("; also kept outside the cluster: {}", outside.join("; "))
            };
            ctx.announcer
                .publish(
                    &reference,
                    EventType::Normal,
                    "Retained",
                    &format!(
                        "deletionPolicy Retain: kept namespace {namespace} and its data, detached from Berth and labelled {}=true; its network isolation and quota stay, member access was removed{outside}",
                        build::RETAINED_LABEL
                    ),
                )
                .await;
            detached
        }
        DeletionPolicy::Delete => {
            // Outside the cluster first: if a provider is down, the finalizer keeps the Project
            // (and its status says why) rather than leave a bucket nobody tracks.
            let removed = ctx.external.delete(project, &settings).await?;
            namespace::delete(ctx, &namespace).await?;
            let outside = if removed.is_empty() {
                String::new()
            } else {
                format!("; deleted outside the cluster: {}", removed.join("; "))
            };
            ctx.announcer
                .publish(
                    &reference,
                    EventType::Normal,
                    "Deleted",
                    &format!(
                        "deletionPolicy Delete: deleting namespace {namespace} and everything in it{outside}"
                    ),
                )
                .await;
            1
        }
    };
    info!(project = %project.name_any(), ?policy, namespace, "deletion policy applied");
    Ok((Action::await_change(), writes))
}

#[cfg(test)]
mod tests;
