//! The Project controller. One reconcile is a straight pipeline, each step one call:
//!
//! ```text
//! validate  (pure)  Project + settings + what the caches say -> Validated | Invalid
//! claim     (IO)    the namespace: create it, or find it is the project's, or a conflict
//! outside   (IO)    the bucket, OIDC client and registry project, each on its provider
//! build     (pure)  Validated + settings -> every child in the cluster
//! apply     (IO)    the shared step: server-side apply, prune by label and UID
//! status    (pure)  -> conditions; written only when changed, Events on transitions
//! ```
//!
//! The error category decides the requeue: an invalid spec waits for a change, a conflict or a
//! missing dependency backs off. Deletion is in `deletion`.

pub mod build;
mod deletion;
pub mod external;
pub mod members;
pub mod namespace;
pub mod part;
pub mod status;
pub mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::{ResourceQuota, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::info;

use berth_api::egress::Cidr;
use berth_api::labels::PROJECT;
use berth_api::settings::SETTINGS_NAME;
use berth_api::{PlatformSettings, PlatformSettingsSpec, Project};
use berth_reconcile::{
    Announcer, Backoffs, Category, ChildCache, Error, IN_FLIGHT, Metrics, Owner, Written, apply,
    runner,
};

use self::build::{Built, Environment};
use self::namespace::Claim;
use self::status::{Applied, Outcome, Summary};
use self::validate::{Known, Validated};
use crate::discovery::{self, Found};
use crate::kinds;
use crate::names;

/// The finalizer that runs the deletion policy.
pub const FINALIZER: &str = "berth.dev/project";
const CONTROLLER: &str = "project";
/// Requeue when all is well: a safety net only, since watches bring every change. Reads only.
/// The default of the operator's `--resync-seconds` ([`Context::resync`]).
pub const RESYNC: Duration = Duration::from_secs(30 * 60);
/// A namespace that is someone else's needs a person: look again this often.
const CONFLICT_RETRY: Duration = Duration::from_secs(60);

/// What every Project reconcile shares.
pub struct Context {
    pub client: Client,
    pub children: ChildCache,
    pub settings: Store<PlatformSettings>,
    /// What discovery found of the optional kinds, once, at startup.
    pub found: FoundKinds,
    /// The API server's addresses, which no project's egress reaches.
    pub api_server: Vec<Cidr>,
    /// The namespace Berth's operator runs in: no Project may have it.
    pub operator_namespace: String,
    pub announcer: Announcer,
    pub metrics: Metrics,
    pub backoffs: Backoffs,
    pub written: Written,
    /// The bucket, OIDC client and registry project of each Project.
    pub external: external::External,
    /// How long after a reconcile where all was well the Project is reconciled again
    /// ([`RESYNC`] unless the operator is told otherwise; the onboarding benchmark shortens it to
    /// measure a whole resync period).
    pub resync: Duration,
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

/// The optional kinds a Project may have, as discovery found them.
#[derive(Clone, Debug)]
pub struct FoundKinds {
    /// Istio's AuthorizationPolicy.
    pub authorization_policy: Found,
    /// network-policy-api's ClusterNetworkPolicy (v0.3 and later).
    pub cluster_network_policy: Found,
    /// network-policy-api's AdminNetworkPolicy (v0.1).
    pub admin_network_policy: Found,
}

impl FoundKinds {
    /// The kinds to ask discovery for, in the order [`FoundKinds::from_answers`] takes them.
    pub const ASKED: [discovery::OptionalKind; 3] = [
        discovery::AUTHORIZATION_POLICY,
        discovery::CLUSTER_NETWORK_POLICY,
        discovery::ADMIN_NETWORK_POLICY,
    ];

    /// From the answers to [`FoundKinds::ASKED`], in order.
    pub fn from_answers(found: Vec<Found>) -> Self {
        let mut found = found.into_iter();
        let mut next = || {
            found
                .next()
                .unwrap_or_else(|| Found::NotServed("discovery gave no answer".into()))
        };
        Self {
            authorization_policy: next(),
            cluster_network_policy: next(),
            admin_network_policy: next(),
        }
    }

    /// Every served kind: the caches watch each (both admin-tier kinds where both are served,
    /// so that a policy of the kind no longer written is pruned).
    pub fn served(&self) -> Vec<berth_reconcile::ChildKind> {
        [
            &self.authorization_policy,
            &self.cluster_network_policy,
            &self.admin_network_policy,
        ]
        .into_iter()
        .filter_map(Found::kind)
        .cloned()
        .collect()
    }

    /// The admin-tier kind to write: ClusterNetworkPolicy, which replaced AdminNetworkPolicy,
    /// where served; else AdminNetworkPolicy.
    pub fn admin_tier(&self) -> Option<&berth_reconcile::ChildKind> {
        self.cluster_network_policy
            .kind()
            .or(self.admin_network_policy.kind())
    }
}

/// Runs the Project controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    concurrency: u16,
    operator_namespace: String,
    resync: Duration,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // Which optional kinds the cluster serves, and the API server's addresses. Until the API
    // server answers, the controller does not start: a failed call is never taken to mean "not
    // installed", nor "no addresses to keep egress from".
    let mut shutdown = Box::pin(shutdown);
    let (found, api_server) = tokio::select! {
        found = async {
            let found = discovery::find_until_answered(&client, &FoundKinds::ASKED).await;
            (FoundKinds::from_answers(found), discovery::api_server_addresses_until_answered(&client).await)
        } => found,
        _ = &mut shutdown => {
            info!("project controller stopped before discovery answered");
            return;
        }
    };
    let (children, streams) =
        ChildCache::watch(&client, kinds::project_children_found(&found.served()));

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
        found: found.clone(),
        api_server: api_server.clone(),
        operator_namespace: operator_namespace.clone(),
        announcer: Announcer::new(client.clone(), "berth-project-controller"),
        metrics,
        backoffs: Backoffs::default(),
        written: Written::default(),
        external: external::External::new(external::connect::Connections::new(
            admin_secrets,
            operator_namespace,
        )),
        resync,
    });

    let (projects, project_stream) = runner::primary(Api::<Project>::all(client.clone()));
    context
        .metrics
        .count_objects(CONTROLLER, projects.clone(), |o: &Project| {
            berth_reconcile::Readiness::of(o.status.as_ref().map(|s| s.conditions.as_slice()))
        });
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
    info!(
        authorization_policy = %found.authorization_policy.describe(),
        cluster_network_policy = %found.cluster_network_policy.describe(),
        admin_network_policy = %found.admin_network_policy.describe(),
        api_server = ?api_server.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "project controller started"
    );
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
        async |p| reconcile_project(&p, &ctx).await,
        async |p| deletion::cleanup(&p, &ctx).await,
    )
    .await
}

/// The Project a child belongs to, from its `berth.dev/project` label.
fn owning_project(child: kube::api::DynamicObject) -> Option<ObjectRef<Project>> {
    child.labels().get(PROJECT).map(|name| ObjectRef::new(name))
}

/// The error category decides the requeue: an invalid spec waits for the spec to change (any
/// change to the Project wakes it); everything else backs off, capped.
fn error_policy(project: Arc<Project>, error: &Error, ctx: Arc<Context>) -> Action {
    match error.category {
        Category::InvalidSpec => Action::await_change(),
        _ => runner::retry(&ctx.backoffs, CONTROLLER, &project.name_any(), error),
    }
}

/// Makes the cluster match the Project: the pipeline. Returns the next action and the writes.
async fn reconcile_project(project: &Project, ctx: &Context) -> Result<(Action, usize), Error> {
    let settings = ctx.settings();
    let known = Known {
        namespace_ours: names::namespace(project)
            .ok()
            .and_then(|ns| namespace::held(ctx, &project.uid().unwrap_or_default(), &ns))
            .is_some(),
    };
    let validated = match validate::validate(project, &settings, &ctx.operator_namespace, known) {
        Ok(v) => v,
        Err(invalid) => {
            let summary = Summary {
                namespace: project.namespace_name().unwrap_or_default().to_owned(),
                subjects: berth_api::members::effective(&project.spec, settings.email_user_names),
                deletion_policy: None,
            };
            let outcome = Outcome::Invalid {
                reason: invalid.reason.to_owned(),
                message: invalid.message,
            };
            let writes = write_status(ctx, project, &summary, &outcome).await?;
            ctx.backoffs.succeeded(&project.name_any());
            return Ok((Action::await_change(), writes));
        }
    };
    let summary = Summary {
        namespace: validated.namespace.clone(),
        subjects: validated.subjects.clone(),
        deletion_policy: Some(validated.deletion_policy),
    };
    let mut env = environment(ctx, &settings, false);
    let first_build = build::build(&validated, &settings, &env)?;
    let claim = namespace::claim(ctx, &validated, first(&first_build)?).await?;
    let (created, adopted) = match claim {
        Claim::Ours { created, adopted } => (created, adopted),
        Claim::Conflict(message) => {
            // Nothing goes into a namespace that is not the project's; its owners still get
            // their access to the Project object, so that they can fix or delete it.
            // (The admin-tier network policy, cluster-scoped too, isolates a namespace that is
            // not the project's: it is not written either; nor is the binding that lets the
            // namespace's model servers review tokens.)
            let reviewer = crate::names::kube::token_reviewer_binding(&validated.name);
            let access = Built {
                children: first_build
                    .children
                    .into_iter()
                    .filter(|d| {
                        d.kind.resource.group == "rbac.authorization.k8s.io"
                            && !d.kind.namespaced
                            && d.object.metadata.name.as_deref() != Some(reviewer.as_str())
                    })
                    .collect(),
                network_notes: Vec::new(),
            };
            let (applied, _) = apply_children(ctx, &validated, &access).await?;
            let writes =
                write_status(ctx, project, &summary, &Outcome::NamespaceConflict(message)).await?;
            return Ok((Action::requeue(CONFLICT_RETRY), writes + applied));
        }
        Claim::Terminating => {
            let writes =
                write_status(ctx, project, &summary, &Outcome::NamespaceTerminating).await?;
            return Ok((Action::requeue(Duration::from_secs(5)), writes));
        }
    };
    env.adopted = adopted;
    let outside = ctx
        .external
        .sync(&ctx.client, &validated, &settings, &ctx.children)
        .await;
    let built = build::build(&validated, &settings, &env)?;
    let applied = apply_children(ctx, &validated, &built).await;
    let (outcome, mut writes, next) = match applied {
        Ok((n, in_flight)) => {
            let mut next = if in_flight { IN_FLIGHT } else { ctx.resync };
            if let Some(retry) = outside.retry_in() {
                next = next.min(retry);
            }
            let outcome = Outcome::Applied(Box::new(Applied {
                quota: quota_status(ctx, &validated.namespace),
                istio: settings.istio.enabled.then(|| {
                    let found = &ctx.found.authorization_policy;
                    match found {
                        Found::Served(_) => Ok(found.describe()),
                        Found::NotServed(why) => Err(why.clone()),
                    }
                }),
                admin_tier: ctx.found.admin_tier().map(|kind| {
                    format!(
                        "{} {} {}",
                        kind.resource.kind,
                        kind.resource.api_version,
                        names::kube::isolation_policy(&validated.name)
                    )
                }),
                network_policies: built.network_policies(),
                network_notes: built.network_notes.clone(),
                parts: outside.states(),
                external: outside
                    .external_status(project.status.as_ref().and_then(|s| s.external.as_ref())),
                now_reserved: validated.now_reserved.clone(),
                adopted,
            }));
            (outcome, n, Some(next))
        }
        Err(e) => (Outcome::ApplyFailed(e), 0, None),
    };
    writes += usize::from(created);
    writes += write_status(ctx, project, &summary, &outcome).await?;
    match (outcome, next) {
        // The status says what failed; the error makes the controller retry with backoff.
        (Outcome::ApplyFailed(e), _) => Err(e),
        (_, next) => {
            ctx.backoffs.succeeded(&project.name_any());
            Ok((Action::requeue(next.unwrap_or(ctx.resync)), writes))
        }
    }
}

/// The namespace as built: always the first child.
fn first(built: &Built) -> Result<&berth_reconcile::Desired, Error> {
    built
        .namespace()
        .ok_or_else(|| Error::internal("no namespace was built"))
}

/// What the builder needs to know about the cluster: the optional kinds discovery found, the API
/// server's addresses, and which platform namespaces are projects' (the settings named them after
/// a project had them), so that no project trusts them.
fn environment(ctx: &Context, settings: &PlatformSettingsSpec, adopted: bool) -> Environment {
    let untrusted: BTreeSet<String> = names::namespace::platform_namespaces(settings)
        .into_iter()
        .map(|(ns, _)| ns)
        .filter(|ns| {
            ctx.children
                .get(&kinds::namespace().resource, None, ns)
                .is_some()
        })
        .collect();
    Environment {
        authorization_policy: ctx.found.authorization_policy.kind().cloned(),
        admin_network_policy: ctx.found.admin_tier().cloned(),
        api_server: ctx.api_server.clone(),
        untrusted,
        adopted,
        console_namespace: Some(ctx.operator_namespace.clone()),
    }
}

/// Where a Project's Events go: into `namespace` (its namespace, while that is Berth's for this
/// project), where its members read them with `kubectl events -n <namespace>`; otherwise into the
/// operator's namespace, which only platform admins read. Never into `default`, which anyone may
/// read: a Project's Events name its bucket and say what its providers answered.
pub fn event_reference(
    ctx: &Context,
    project: &Project,
    namespace: Option<&str>,
) -> k8s_openapi::api::core::v1::ObjectReference {
    berth_reconcile::in_namespace(
        &project.object_ref(&()),
        namespace.unwrap_or(&ctx.operator_namespace),
    )
}

/// Writes the status if it changed, with an Event per condition flip. Returns the writes.
async fn write_status(
    ctx: &Context,
    project: &Project,
    summary: &Summary,
    outcome: &Outcome,
) -> Result<usize, Error> {
    let new = status::status(project, summary, outcome, Timestamp::now());
    let before = project
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let api: Api<Project> = Api::all(ctx.client.clone());
    if berth_reconcile::status::write_if_changed(
        &api,
        &project.name_any(),
        project.status.as_ref(),
        &new,
    )
    .await?
    {
        // The namespace is the project's once claimed; before that (an invalid spec, a
        // conflict) or while it goes, the Events go to the platform admins.
        let ours = matches!(outcome, Outcome::Applied(_) | Outcome::ApplyFailed(_));
        let reference = event_reference(ctx, project, ours.then_some(summary.namespace.as_str()));
        ctx.announcer
            .transitions(&reference, &before, &new.conditions)
            .await;
        return Ok(1);
    }
    Ok(0)
}

/// The live quota's status, from the cache.
fn quota_status(
    ctx: &Context,
    namespace: &str,
) -> Option<k8s_openapi::api::core::v1::ResourceQuotaStatus> {
    let live = ctx.children.get(
        &kinds::resource_quota().resource,
        Some(namespace),
        names::kube::QUOTA,
    )?;
    live.parse::<ResourceQuota>()?.status
}

/// Applies the built children; returns the writes made and whether some are still in flight.
async fn apply_children(
    ctx: &Context,
    project: &Validated<'_>,
    built: &Built,
) -> Result<(usize, bool), Error> {
    let report = apply(
        &ctx.client,
        &ctx.children,
        &ctx.written,
        &built.children,
        Owner {
            name: &project.name,
            uid: &project.uid,
        },
    )
    .await?;
    if report.wrote() {
        info!(project = %project.name, applied = report.applied.len(), pruned = report.pruned.len(), "reconciled");
    }
    Ok((
        report.applied.len() + report.pruned.len(),
        report.in_flight > 0,
    ))
}

#[cfg(test)]
mod tests;
