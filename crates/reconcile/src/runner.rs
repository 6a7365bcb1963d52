//! The wiring every controller repeats: its own objects and the platform settings as cached
//! streams, and one reconcile run under a finalizer, measured, with capped backoff on failure.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Future, Stream, StreamExt};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event, finalizer};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use berth_api::PlatformSettings;

use crate::{Backoffs, Category, ChildCache, Error, Metrics};

/// The platform settings, cached, and a stream that yields once per change.
pub fn settings(
    client: &Client,
) -> (
    Store<PlatformSettings>,
    impl Stream<Item = ()> + Send + use<>,
) {
    let writer = reflector::store::Writer::<PlatformSettings>::default();
    let store = writer.as_reader();
    let changes = watcher(
        Api::<PlatformSettings>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .filter_map(|r| async move { r.ok().map(|_| ()) });
    (store, changes)
}

/// A controller's own objects, cached without their managed fields (most of each object's size),
/// and the stream that drives the controller.
pub fn primary<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::<K>::default();
    let store = writer.as_reader();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    (store, stream)
}

/// One reconcile of `object` under the finalizer `name`: waits until every child cache has its
/// first list (a decision on a partial view could prune what exists), then runs `apply`, or
/// `cleanup` once the object is being deleted. Each returns the next action and how many writes
/// it made; the run is counted in `metrics` under `controller`.
#[allow(clippy::too_many_arguments)]
pub async fn with_finalizer<K, A, AF, C, CF>(
    controller: &'static str,
    metrics: &Metrics,
    children: &ChildCache,
    api: &Api<K>,
    name: &str,
    object: Arc<K>,
    apply: A,
    cleanup: C,
) -> Result<Action, Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
    A: FnOnce(Arc<K>) -> AF,
    AF: Future<Output = Result<(Action, usize), Error>>,
    C: FnOnce(Arc<K>) -> CF,
    CF: Future<Output = Result<(Action, usize), Error>>,
{
    let measurement = metrics.start(controller);
    if tokio::time::timeout(Duration::from_secs(30), children.ready())
        .await
        .is_err()
    {
        let e = Error::new(
            Category::DependencyUnavailable,
            "the child caches did not sync within 30 s",
        );
        measurement.failed(e.category);
        return Err(e);
    }
    let writes = AtomicUsize::new(0);
    let result = finalizer(api, name, object, |event| async {
        let (action, n) = match event {
            Event::Apply(o) => apply(o).await?,
            Event::Cleanup(o) => cleanup(o).await?,
        };
        writes.fetch_add(n, Ordering::Relaxed);
        Ok(action)
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => e.into(),
        other => Error::internal(other.to_string()),
    });
    match &result {
        Ok(_) => measurement.succeeded(writes.load(Ordering::Relaxed)),
        Err(e) => measurement.failed(e.category),
    }
    result
}

/// After a failed reconcile of `key`: retry with capped exponential backoff, and say so.
pub fn retry(backoffs: &Backoffs, controller: &str, key: &str, error: &Error) -> Action {
    let wait = backoffs.failed(key, Duration::from_secs(300));
    warn!(controller, object = %key, category = ?error.category, error = %error.log_text(), retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
