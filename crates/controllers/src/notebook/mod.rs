//! The Notebook controller, as a pipeline: `validate` (a validated notebook or a reason) ->
//! `build` (pure: the home volume, the StatefulSet, the Service) -> the shared apply
//! (server-side apply, prune by label) -> `status` (pure; written only when it changed, Events on
//! condition flips). Idle culling reads Jupyter's own activity (`activity`) and stops the
//! notebook with one write (`spec.stopped: true` and the `berth.dev/culled-at` annotation).
//!
//! Children have an ownerReference (the garbage collector removes them with the Notebook), except
//! the home volume, which stays: no finalizer is needed.

pub mod account;
pub mod activity;
pub mod build;
pub mod observe;
pub mod probe;
pub mod quota;
pub mod scheduling;
pub mod status;
pub mod template;
pub mod validate;
pub mod volumes;
pub mod wiring;

use std::sync::Arc;
use std::time::Duration;

use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_api::notebook::{CULLED_AT_ANNOTATION, Notebook};
use berth_api::notebook_template::NotebookTemplate;
use berth_reconcile::{
    Announcer, Backoffs, ChildCache, Error, FIELD_MANAGER, IN_FLIGHT, Metrics, Owner, Written,
    apply, runner,
};

use self::status::Observed;
use crate::{kinds, names};

const CONTROLLER: &str = "notebook";
/// Requeue of a notebook that is not running: a safety net only, since watches bring every change.
const RESYNC: Duration = Duration::from_secs(10 * 60);

/// How soon a held notebook (a volume, the quota) is looked at again without a change.
const BLOCKED_RECHECK: Duration = Duration::from_secs(15);

/// What every Notebook reconcile shares.
pub struct Context {
    pub client: Client,
    /// The client for activity reads: without kube's default retries, so that a notebook that
    /// cannot be reached (503 from the pod proxy) costs one request per read, not up to 15.
    pub probe_client: Client,
    /// When each running notebook's activity is next read.
    pub reads: activity::Schedule,
    /// The console's public URL, which serves notebooks at `/notebook/<namespace>/<name>/`.
    pub console_url: Option<String>,
    pub children: ChildCache,
    pub announcer: Announcer,
    pub metrics: Metrics,
    pub backoffs: Backoffs,
    pub written: Written,
    /// Every NotebookTemplate.
    pub templates: Store<NotebookTemplate>,
    /// The namespaces Berth manages, metadata only: their labels say which templates a
    /// notebook there may use.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

/// Runs the Notebook controller until `shutdown` completes.
pub async fn run(
    client: Client,
    probe_client: Client,
    console_url: Option<String>,
    metrics: Metrics,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (children, streams) =
        ChildCache::watch_indexed(&client, kinds::notebook_children(), NOTEBOOK);
    let (notebooks, stream) = runner::primary(Api::<Notebook>::all(client.clone()));
    // Templates: deletions count too (a notebook whose template goes says so).
    let template_writer = reflector::store::Writer::<NotebookTemplate>::default();
    let templates = template_writer.as_reader();
    let template_stream = watcher(
        Api::<NotebookTemplate>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(|o| o.managed_fields_mut().clear())
    .reflect(template_writer)
    .touched_objects();
    let namespace_writer = reflector::store::Writer::<PartialObjectMeta<Namespace>>::default();
    let namespaces = namespace_writer.as_reader();
    let namespace_stream = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default()
            .labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
            .any_semantic(),
    )
    .default_backoff()
    .modify(|o| o.metadata.managed_fields = None)
    .reflect(namespace_writer)
    .touched_objects();
    let context = Arc::new(Context {
        client: client.clone(),
        probe_client,
        reads: activity::Schedule::default(),
        console_url,
        children,
        announcer: Announcer::new(client.clone(), "berth-notebook-controller"),
        metrics,
        backoffs: Backoffs::default(),
        written: Written::default(),
        templates,
        namespaces,
    });
    // A template's change re-reconciles the notebooks that name it (and those that name none:
    // the change may concern the default); a namespace's, the notebooks in it. Both by a scan of
    // the notebook store: templates and project namespaces change seldom.
    let by_template = notebooks.clone();
    let by_namespace = notebooks.clone();
    let store = notebooks.clone();
    let mut controller = Controller::for_stream(stream, notebooks)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .watches_stream(template_stream, move |template: NotebookTemplate| {
            let name = template.name_any();
            by_template
                .state()
                .into_iter()
                .filter(|nb| nb.spec.template.as_ref().is_none_or(|t| *t == name))
                .map(|nb| ObjectRef::from_obj(nb.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(
            namespace_stream,
            move |namespace: PartialObjectMeta<Namespace>| {
                let name = namespace.name_any();
                by_namespace
                    .state()
                    .into_iter()
                    .filter(|nb| nb.namespace().as_deref() == Some(name.as_str()))
                    .map(|nb| ObjectRef::from_obj(nb.as_ref()))
                    .collect::<Vec<_>>()
            },
        );
    for (stream, resource) in streams {
        let store = store.clone();
        let kind = resource.kind.clone();
        controller = controller.watches_stream_with(
            stream,
            move |child| woken(&store, &kind, child),
            resource,
        );
    }
    info!("notebook controller started");
    controller
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()))
        .await;
    info!("notebook controller stopped");
}

/// The notebooks a change of `child` (of kind `kind`) wakes: its owner for a notebook's own
/// children; every notebook of the namespace for the project's account, pull secret and
/// LimitRange (rare changes that change the pod); for the ResourceQuota (which changes with every
/// pod of the namespace) only the notebooks waiting for room.
fn woken(
    store: &kube::runtime::reflector::Store<Notebook>,
    kind: &str,
    child: kube::api::DynamicObject,
) -> Vec<ObjectRef<Notebook>> {
    let Some(namespace) = child.namespace() else {
        return Vec::new();
    };
    let all = store.state();
    let of_namespace = observe::in_namespace(&all, &namespace);
    match kind {
        "ResourceQuota" => of_namespace
            .filter(|n| observe::waits_for_quota(n))
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect(),
        "ServiceAccount" | "Secret" | "LimitRange" => of_namespace
            .map(|n| ObjectRef::from_obj(n.as_ref()))
            .collect(),
        _ => owning_notebook(child).into_iter().collect(),
    }
}

/// The notebook a child or pod belongs to, from its `berth.dev/notebook` label and namespace.
fn owning_notebook(child: kube::api::DynamicObject) -> Option<ObjectRef<Notebook>> {
    let namespace = child.namespace()?;
    child
        .labels()
        .get(NOTEBOOK)
        .map(|name| ObjectRef::new(name).within(&namespace))
}

fn error_policy(notebook: Arc<Notebook>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        notebook.namespace().unwrap_or_default(),
        notebook.name_any()
    );
    runner::retry(&ctx.backoffs, CONTROLLER, &key, error)
}

async fn reconcile(notebook: Arc<Notebook>, ctx: Arc<Context>) -> Result<Action, Error> {
    let measurement = ctx.metrics.start(CONTROLLER);
    let caches = async {
        ctx.children.ready().await;
        // The stores' writers live as long as the controller: an error means shutdown.
        let _ = ctx.templates.wait_until_ready().await;
        let _ = ctx.namespaces.wait_until_ready().await;
    };
    if tokio::time::timeout(Duration::from_secs(30), caches)
        .await
        .is_err()
    {
        let e = Error::new(
            berth_reconcile::Category::DependencyUnavailable,
            "the child caches did not sync within 30 s",
        );
        measurement.failed(e.category);
        return Err(e);
    }
    if notebook.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the owned children; the home volume stays.
        measurement.succeeded(0);
        return Ok(Action::await_change());
    }
    match reconcile_notebook(&notebook, &ctx).await {
        Ok((action, writes)) => {
            measurement.succeeded(writes);
            Ok(action)
        }
        Err(e) => {
            measurement.failed(e.category);
            Err(e)
        }
    }
}

/// The live home volume, as the cache (Berth's) or the API server (anyone's) has it.
enum Home {
    Absent,
    Ours(Option<String>),
    Taken,
}

async fn home_volume(
    ctx: &Context,
    namespace: &str,
    nb: &validate::Validated,
) -> Result<Home, Error> {
    if let Some(live) =
        ctx.children
            .get(&kinds::notebook_home().resource, Some(namespace), &nb.home)
    {
        let pvc: Option<PersistentVolumeClaim> = live.parse();
        let ours = pvc.as_ref().is_some_and(|p| {
            p.labels().get(NOTEBOOK) == Some(&nb.name)
                && p.labels().get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        });
        return Ok(if ours {
            Home::Ours(pvc.and_then(|p| p.spec).and_then(|s| s.storage_class_name))
        } else {
            Home::Taken
        });
    }
    // Not Berth's (the cache holds Berth's only): one read, to never take over someone's volume.
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(match api.get_opt(&nb.home).await? {
        Some(_) => Home::Taken,
        None => Home::Absent,
    })
}

/// Makes the cluster match the notebook. Returns the next action and how many writes it made.
async fn reconcile_notebook(notebook: &Notebook, ctx: &Context) -> Result<(Action, usize), Error> {
    let name = notebook.name_any();
    let namespace = notebook.namespace().unwrap_or_default();
    let api: Api<Notebook> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now();
    let mut writes = 0;

    // 1. Validate, with the notebook's template.
    let templates = ctx.templates.state();
    let namespace_labels = ctx
        .namespaces
        .get(&ObjectRef::new(&namespace))
        .map(|ns| ns.labels().clone());
    let validated = validate::validate(notebook)
        .and_then(|nb| template::resolve(nb, notebook, &templates, namespace_labels.as_ref()))
        .map(|mut nb| {
            nb.console_url = ctx
                .console_url
                .as_deref()
                .map(|url| format!("{}{}lab", url.trim_end_matches('/'), nb.path));
            nb
        });

    // Observe: the pod, the home volume, Jupyter's activity.
    let pod: Option<Pod> = ctx
        .children
        .get(
            &kinds::pod().resource,
            Some(&namespace),
            &names::kube::notebook_pod(&name),
        )
        .and_then(|o| o.parse::<Pod>())
        .filter(|p| p.labels().get(NOTEBOOK) == Some(&name));
    let home = match &validated {
        Ok(nb) => home_volume(ctx, &namespace, nb).await?,
        Err(_) => Home::Absent,
    };
    let culled_at = notebook
        .annotations()
        .get(CULLED_AT_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok());

    let mut activity = None;
    let mut requeue = RESYNC;
    if let Ok(nb) = &validated {
        if !nb.stopped && nb.culled {
            // Started again after a cull: the mark goes.
            let patch = json!({"metadata": {"annotations": {CULLED_AT_ANNOTATION: null}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            writes += 1;
        }
        let running = pod.as_ref().is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        let key = format!("{namespace}/{name}");
        let interval = activity::poll_interval(nb.idle_timeout);
        let live = !nb.stopped && running;
        let wait = live.then(|| ctx.reads.take(&key, std::time::Instant::now(), interval));
        if !live {
            ctx.reads.forget(&key);
        }
        if let Some(Some(wait)) = wait {
            // Read less than an interval ago: the status keeps that read's last activity.
            requeue = wait;
        } else if wait.is_some() {
            requeue = interval;
            let pod_name = names::kube::notebook_pod(&name);
            let read = probe::read(
                &ctx.probe_client,
                &namespace,
                &pod_name,
                &nb.probe,
                build::PORT,
                &nb.path,
                build::CONTAINER,
                now,
            )
            .await;
            match read {
                Ok(read) => {
                    if activity::is_idle(&read, now, nb.idle_timeout) {
                        return cull(notebook, nb, &api, ctx, &read, now, writes).await;
                    }
                    activity = Some(read);
                }
                // Unknown activity is never idleness: the next poll tries again.
                Err(e) => {
                    warn!(notebook = %format!("{namespace}/{name}"), error = %e, "{}", activity::READ_FAILED)
                }
            }
        }
    }

    // Observe what the build needs beyond the notebook: volumes, account, quota.
    let home_taken = matches!(home, Home::Taken);
    let (wiring, blocked) = match (&validated, home_taken) {
        (Ok(nb), false) => {
            let (wiring, blocked) =
                observe::observe(ctx, nb, matches!(home, Home::Absent), pod.as_ref()).await?;
            (Some(wiring), blocked)
        }
        _ => (None, None),
    };

    // 2. Build, 3. apply (unless the spec is invalid or the home volume is someone else's).
    let mut in_flight = 0;
    if let (Ok(nb), Some(wiring)) = (&validated, wiring.as_ref().filter(|w| !w.keep_running)) {
        let class = match &home {
            Home::Ours(class) => class.as_deref(),
            _ => None,
        };
        let built = build::build(nb, class, wiring)?;
        let report = apply(
            &ctx.client,
            &ctx.children,
            &ctx.written,
            &built.children,
            Owner {
                name: &name,
                uid: &nb.uid,
            },
        )
        .await?;
        if report.wrote() {
            info!(notebook = %format!("{namespace}/{name}"), stopped = nb.stopped, applied = ?report.applied, pruned = ?report.pruned, "reconciled");
        }
        writes += report.applied.len() + report.pruned.len();
        in_flight = report.in_flight;
    }

    // 4. Status.
    let observed = Observed {
        notebook: validated.as_ref(),
        pod: pod.as_ref(),
        activity: activity.as_ref(),
        culled_at,
        home_taken,
        blocked: blocked.as_ref(),
    };
    let next = status::status(
        notebook.status.as_ref(),
        &observed,
        notebook.metadata.generation,
        now,
    );
    let before = notebook
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if berth_reconcile::status::write_if_changed(&api, &name, notebook.status.as_ref(), &next)
        .await?
    {
        writes += 1;
        ctx.announcer
            .transitions(&notebook.object_ref(&()), &before, &next.conditions)
            .await;
    }
    ctx.backoffs.succeeded(&format!("{namespace}/{name}"));
    let wait = if in_flight > 0 {
        IN_FLIGHT
    } else if blocked.is_some() {
        // Held or refused: a ResourceQuota change wakes it too, but a quota Berth does not
        // read, or a claim being freed, does not.
        BLOCKED_RECHECK
    } else {
        requeue
    };
    Ok((Action::requeue(wait), writes))
}

/// Stops an idle notebook: `spec.stopped: true` and the culled-at mark in one write, and an Event.
/// The next reconcile (the write wakes it) scales the StatefulSet to 0 and says Culled.
async fn cull(
    notebook: &Notebook,
    nb: &validate::Validated,
    api: &Api<Notebook>,
    ctx: &Context,
    read: &activity::Activity,
    now: Timestamp,
    writes: usize,
) -> Result<(Action, usize), Error> {
    let patch = json!({
        "metadata": {
            "annotations": {CULLED_AT_ANNOTATION: now.to_string()},
            // Guards against a spec change in between: the cull applies to what was read.
            "resourceVersion": notebook.resource_version(),
        },
        "spec": {"stopped": true},
    });
    api.patch(
        &nb.name,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    let note = format!(
        "stopped after {} without activity (last activity {}, {} kernels, {} terminals); its home volume stays; set spec.stopped to false to start it again",
        status::human(nb.idle_timeout),
        read.last_activity,
        read.kernels,
        read.terminals
    );
    info!(notebook = %format!("{}/{}", nb.namespace, nb.name), %note, "culled");
    ctx.announcer
        .publish(
            &notebook.object_ref(&()),
            EventType::Normal,
            "Culled",
            &note,
        )
        .await;
    Ok((Action::requeue(IN_FLIGHT), writes + 1))
}

#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_probe;
#[cfg(test)]
mod tests_wiring;
