//! The kinds of object Berth's controllers create, and compact caches of the live ones.
//!
//! Every child carries `app.kubernetes.io/managed-by=berth`, so one label-selected watch per kind
//! keeps a cache of all of them. Controllers compare desired objects with the cache instead of
//! reading from the API server, and the same watches wake the owner's reconcile on any change.
//! The cache keeps each object as compact JSON text plus the few fields looked up often, not as a
//! tree of values: at thousands of Projects that is most of the operator's memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

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

/// One live child as the cache keeps it.
#[derive(Debug)]
pub struct CachedObject {
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
    pub resource_version: Option<String>,
    pub deleting: bool,
    /// The object as JSON, without `metadata.managedFields`.
    json: Box<str>,
}

impl CachedObject {
    /// The cached form of `object`, whose managed fields the watch has already dropped.
    fn from_object(object: &DynamicObject) -> Option<Self> {
        let json = serde_json::to_string(object).ok()?;
        Some(Self {
            namespace: object.namespace(),
            name: object.name_any(),
            labels: object.labels().clone(),
            owner_references: object.owner_references().to_vec(),
            resource_version: object.resource_version(),
            deleting: object.metadata.deletion_timestamp.is_some(),
            json: json.into_boxed_str(),
        })
    }

    /// The object as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.json).unwrap_or_default()
    }

    /// The object as a typed Kubernetes object.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.json).ok()
    }

    /// Whether `uid` is this object's controller: through a controller ownerReference, or, for
    /// children that carry none so that the garbage collector never deletes them (a namespace and
    /// what holds data in it), through the label [`berth_api::labels::OWNER_UID`].
    pub fn controlled_by(&self, uid: &str) -> bool {
        self.owner_references
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
            || self
                .labels
                .get(berth_api::labels::OWNER_UID)
                .is_some_and(|owner| owner == uid)
    }
}

type Key = (Option<String>, String);

/// The label children are indexed by unless a controller names another: the owning Project.
const DEFAULT_INDEX_LABEL: &str = berth_api::labels::PROJECT;

/// The objects of one kind, by key and by owner label.
struct Objects {
    /// The label whose value names a child's owner.
    index: &'static str,
    by_key: HashMap<Key, Arc<CachedObject>>,
    by_owner: HashMap<String, std::collections::HashSet<Key>>,
}

impl Objects {
    fn new(index: &'static str) -> Self {
        Self {
            index,
            by_key: HashMap::new(),
            by_owner: HashMap::new(),
        }
    }

    fn insert(&mut self, key: Key, object: Arc<CachedObject>) {
        self.remove(&key);
        if let Some(owner) = object.labels.get(self.index) {
            self.by_owner
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
        self.by_key.insert(key, object);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.by_key.remove(key)
            && let Some(owner) = old.labels.get(self.index)
            && let Some(keys) = self.by_owner.get_mut(owner)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }
}

/// The cache of one kind, filled by its watch.
struct KindCache {
    kind: ChildKind,
    objects: RwLock<Objects>,
    /// Objects of a relist in progress, swapped in when it completes.
    relisting: RwLock<Objects>,
    ready: watch::Sender<bool>,
}

impl KindCache {
    fn apply(&self, event: &watcher::Event<DynamicObject>) {
        let key = |o: &DynamicObject| (o.namespace(), o.name_any());
        match event {
            watcher::Event::Apply(o) => {
                if let (Some(cached), Ok(mut objects)) =
                    (CachedObject::from_object(o), self.objects.write())
                {
                    objects.insert(key(o), Arc::new(cached));
                }
            }
            watcher::Event::Delete(o) => {
                if let Ok(mut objects) = self.objects.write() {
                    objects.remove(&key(o));
                }
            }
            watcher::Event::Init => {
                if let Ok(mut relisting) = self.relisting.write() {
                    *relisting = Objects::new(relisting.index);
                }
            }
            watcher::Event::InitApply(o) => {
                if let (Some(cached), Ok(mut relisting)) =
                    (CachedObject::from_object(o), self.relisting.write())
                {
                    relisting.insert(key(o), Arc::new(cached));
                }
            }
            watcher::Event::InitDone => {
                if let (Ok(mut relisting), Ok(mut objects)) =
                    (self.relisting.write(), self.objects.write())
                {
                    let index = relisting.index;
                    *objects = std::mem::replace(&mut *relisting, Objects::new(index));
                }
                self.ready.send_replace(true);
            }
        }
    }
}

/// Caches of every Berth-managed object of each child kind.
#[derive(Clone)]
pub struct ChildCache {
    kinds: Arc<Vec<KindCache>>,
}

/// A watch stream that fills one kind's cache; hand it to the controller so changes wake owners.
pub type ChildStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;

impl ChildCache {
    /// Starts a label-selected watch per kind, indexing children by their `berth.dev/project`
    /// label. Returns the cache and, per kind, the stream that drives it (it must be polled,
    /// normally by the controller it triggers).
    pub fn watch(
        client: &Client,
        kinds: Vec<ChildKind>,
    ) -> (Self, Vec<(ChildStream, ApiResource)>) {
        Self::watch_indexed(client, kinds, DEFAULT_INDEX_LABEL)
    }

    /// As [`ChildCache::watch`], indexing children by the value of `index_label` (the label that
    /// names their owner, such as `berth.dev/model`), which [`ChildCache::owned_by`] and pruning
    /// look up.
    pub fn watch_indexed(
        client: &Client,
        kinds: Vec<ChildKind>,
        index_label: &'static str,
    ) -> (Self, Vec<(ChildStream, ApiResource)>) {
        let selector = format!("{MANAGED_BY}={MANAGED_BY_VALUE}");
        let caches: Arc<Vec<KindCache>> = Arc::new(
            kinds
                .into_iter()
                .map(|kind| KindCache {
                    kind,
                    objects: RwLock::new(Objects::new(index_label)),
                    relisting: RwLock::new(Objects::new(index_label)),
                    ready: watch::channel(false).0,
                })
                .collect(),
        );
        let mut streams = Vec::with_capacity(caches.len());
        for (index, cache) in caches.iter().enumerate() {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &cache.kind.resource);
            let config = watcher::Config::default().labels(&selector).any_semantic();
            let filler = caches.clone();
            let stream = watcher(api, config)
                .default_backoff()
                .modify(|o| o.managed_fields_mut().clear())
                .inspect_ok(move |event| filler[index].apply(event))
                // Deletions too: a child deleted by hand must wake its owner to restore it.
                .touched_objects()
                .boxed();
            streams.push((stream as ChildStream, cache.kind.resource.clone()));
        }
        (Self { kinds: caches }, streams)
    }

    /// Waits until every kind's cache has its first full list.
    pub async fn ready(&self) {
        for cache in self.kinds.iter() {
            let mut ready = cache.ready.subscribe();
            let _ = ready.wait_for(|r| *r).await;
        }
    }

    fn kind(&self, resource: &ApiResource) -> Option<&KindCache> {
        self.kinds.iter().find(|c| c.kind.same(resource))
    }

    /// The live object, if Berth manages one by that kind, namespace and name.
    pub fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<CachedObject>> {
        let cache = self.kind(resource)?;
        let namespace = if cache.kind.namespaced {
            namespace.map(str::to_owned)
        } else {
            None
        };
        cache
            .objects
            .read()
            .ok()?
            .by_key
            .get(&(namespace, name.to_owned()))
            .cloned()
    }

    /// Every cached child whose index label (`berth.dev/project` unless the cache was made with
    /// [`ChildCache::watch_indexed`]) is `owner`, with its kind.
    pub fn owned_by(&self, owner: &str) -> Vec<(ChildKind, Arc<CachedObject>)> {
        let mut found = Vec::new();
        for cache in self.kinds.iter() {
            let Ok(objects) = cache.objects.read() else {
                continue;
            };
            for key in objects.by_owner.get(owner).into_iter().flatten() {
                if let Some(object) = objects.by_key.get(key) {
                    found.push((cache.kind.clone(), object.clone()));
                }
            }
        }
        found
    }

    /// How many objects the caches hold.
    pub fn len(&self) -> usize {
        self.kinds
            .iter()
            .map(|c| c.objects.read().map(|o| o.by_key.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
