//! The kinds of object Berth's controllers create, and caches of the live ones.
//!
//! Every child carries `app.kubernetes.io/managed-by=berth`, so one label-selected watch per kind
//! keeps a cache of all of them. Controllers compare desired objects with the cache instead of
//! reading from the API server, and the same watches wake the owner's reconcile on any change.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};

/// A kind of child: where it lives and whether stale ones are deleted.
#[derive(Clone, Debug)]
pub struct ChildKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// Children of this kind that are no longer desired are deleted. Never set for kinds that
    /// hold user data (namespaces): those are removed only by an explicit deletion policy.
    pub prune: bool,
}

impl ChildKind {
    /// The child kind of a typed Kubernetes resource.
    pub fn of<K: Resource<DynamicType = ()>>(namespaced: bool, prune: bool) -> Self {
        Self {
            resource: ApiResource::erase::<K>(&()),
            namespaced,
            prune,
        }
    }

    /// An API handle for this kind in `namespace` (ignored for cluster-scoped kinds).
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn same(&self, other: &ApiResource) -> bool {
        self.resource.group == other.group && self.resource.kind == other.kind
    }
}

/// Caches of every Berth-managed object of each child kind.
#[derive(Clone)]
pub struct ChildCache {
    kinds: Vec<(ChildKind, Store<DynamicObject>)>,
}

/// A watch stream that fills one kind's cache; hand it to the controller so changes wake owners.
pub type ChildStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;

impl ChildCache {
    /// Starts a label-selected watch per kind. Returns the cache and, per kind, the stream that
    /// drives it (it must be polled, normally by `Controller::owns_stream_with`).
    pub fn watch(
        client: &Client,
        kinds: Vec<ChildKind>,
    ) -> (Self, Vec<(ChildStream, ApiResource)>) {
        let selector = format!("{MANAGED_BY}={MANAGED_BY_VALUE}");
        let mut caches = Vec::with_capacity(kinds.len());
        let mut streams = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let writer = reflector::store::Writer::new(kind.resource.clone());
            let store = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
            let config = watcher::Config::default().labels(&selector).any_semantic();
            let stream = watcher(api, config)
                .default_backoff()
                .modify(|o: &mut DynamicObject| {
                    // The cache needs no managed-fields bookkeeping: drop it to save memory.
                    o.managed_fields_mut().clear();
                })
                .reflect(writer)
                // Deletions too: a child deleted by hand must wake its owner to restore it.
                .touched_objects()
                .boxed();
            streams.push((stream as ChildStream, kind.resource.clone()));
            caches.push((kind, store));
        }
        (Self { kinds: caches }, streams)
    }

    /// Waits until every kind's cache has its first full list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        for (_, store) in &self.kinds {
            store.wait_until_ready().await?;
        }
        Ok(())
    }

    /// The live object, if Berth manages one by that kind, namespace and name.
    pub fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let (kind, store) = self.kinds.iter().find(|(k, _)| k.same(resource))?;
        let reference = reflector::ObjectRef::new_with(name, kind.resource.clone());
        let reference = match (kind.namespaced, namespace) {
            (true, Some(ns)) => reference.within(ns),
            _ => reference,
        };
        store.get(&reference)
    }

    /// Every cached child whose `label` equals `value`, with its kind.
    pub fn labelled(&self, label: &str, value: &str) -> Vec<(ChildKind, Arc<DynamicObject>)> {
        let mut found = Vec::new();
        for (kind, store) in &self.kinds {
            for object in store.state_filter(|o| o.labels().get(label).is_some_and(|v| v == value))
            {
                found.push((kind.clone(), object));
            }
        }
        found
    }

    /// How many objects the caches hold (for metrics and tests).
    pub fn len(&self) -> usize {
        self.kinds.iter().map(|(_, s)| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
