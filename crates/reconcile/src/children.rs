//! The kinds of object Berth's controllers create, and compact caches of the live ones.
//!
//! Every child carries `app.kubernetes.io/managed-by=berth`, so one label-selected watch per kind
//! keeps a cache of all of them. Controllers compare desired objects with the cache instead of
//! reading from the API server, and the same watches wake the owner's reconcile on any change.
//! The cache keeps each object as compact JSON text, compressed against a sibling of its kind
//! ([`crate::packed`]), plus the few fields looked up often, not as a tree of values: at thousands
//! of Projects that is most of the operator's memory.
//!
//! The cache holds only what the controllers read ([`Projection`]): never managed fields, the
//! last-applied annotation or annotations Berth does not set, never a pod's spec, and never the
//! data of a Secret: controllers read a Secret's labels, ownerReferences, resourceVersion and
//! Berth's annotations, never the credentials in it. Tenants cannot add to it: only the operator may create an
//! object with Berth's labels (`deploy/rbac/20-admission.yaml`), so its size follows what Berth
//! creates, not what tenants do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::warn;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};

use crate::packed::{Packed, Packer};

/// A kind of child: where it lives and whether stale ones are deleted.
#[derive(Clone, Debug)]
pub struct ChildKind {
    pub resource: ApiResource,
    pub namespaced: bool,
    /// Children of this kind that are no longer desired are deleted. Never set for kinds that
    /// hold user data (namespaces): those are removed only by an explicit deletion policy.
    pub prune: bool,
    /// When not empty, the only names of this kind Berth uses: the cache watches each name
    /// (a `metadata.name` field selector, which RBAC authorizes by `resourceNames`) instead of the
    /// whole kind, so the operator needs no right to read the others.
    pub names: &'static [&'static str],
    /// What the cache keeps of each object.
    pub projection: Projection,
}

/// What the cache keeps of each object of a kind. Every projection drops `managedFields`, the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation and the annotations outside
/// `berth.dev/` (Berth sets no others on its children, and compares what it sets); all but
/// [`Projection::Status`] drop the object's own `uid` and `creationTimestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// The object as applied and compared: spec, data, status.
    Applied,
    /// As [`Projection::Applied`], keeping every annotation but the last-applied one: the
    /// Namespace, whose annotations come from the Project's spec.
    AppliedWithAnnotations,
    /// Observed only (pods): metadata and status, no spec.
    Status,
    /// Metadata only, watched as such (the API server sends no more): credentials Secrets, of
    /// which the controllers read labels, ownerReferences, resourceVersion and Berth's
    /// annotations, never the data.
    Metadata,
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl Projection {
    /// Trims `object` (as JSON) to what the cache keeps for `kind`.
    fn trim(self, kind: &ChildKind, object: &mut serde_json::Value) {
        let Some(map) = object.as_object_mut() else {
            return;
        };
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
            if self != Projection::Status {
                // Never read from the cache (owners are known by the ownerReference's or the
                // owner label's uid, not the child's), and never part of what is applied.
                meta.remove("uid");
                meta.remove("creationTimestamp");
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(|a| a.as_object_mut()) {
                annotations.retain(|key, _| {
                    key != LAST_APPLIED
                        && (self == Projection::AppliedWithAnnotations
                            || key.starts_with("berth.dev/"))
                });
            }
        }
        if self == Projection::Status {
            map.remove("spec");
        }
        if self == Projection::Metadata {
            map.retain(|key, _| matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
        }
        // No Secret data: no controller reads it from the cache, and a cache of credentials is
        // one more place for them to leak from.
        if kind.resource.kind == "Secret" && kind.resource.group.is_empty() {
            map.remove("data");
            map.remove("stringData");
        }
    }
}

impl ChildKind {
    /// The child kind of a typed Kubernetes resource: every object of the kind, as applied.
    pub fn of<K: Resource<DynamicType = ()>>(namespaced: bool, prune: bool) -> Self {
        Self::dynamic(ApiResource::erase::<K>(&()), namespaced, prune)
    }

    /// The child kind of a resource found by discovery or with no Rust type.
    pub fn dynamic(resource: ApiResource, namespaced: bool, prune: bool) -> Self {
        Self {
            resource,
            namespaced,
            prune,
            names: &[],
            projection: Projection::Applied,
        }
    }

    /// Only objects with these names, each watched on its own.
    pub fn named(mut self, names: &'static [&'static str]) -> Self {
        self.names = names;
        self
    }

    /// What the cache keeps of each object.
    pub fn projected(mut self, projection: Projection) -> Self {
        self.projection = projection;
        self
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
///
/// Labels and ownerReferences stay only in the JSON text (read with [`CachedObject::labels`] and
/// [`CachedObject::owner_references`]); the few values looked up on every event or reconcile are
/// kept beside it. At 1,000 Projects (about 22,000 children) a second, tree-shaped copy of the
/// labels was a third of the cache's memory (heaptrack, docs/benchmarks.md).
#[derive(Debug)]
pub struct CachedObject {
    /// Namespace and name, shared with the cache's indexes (one copy per child, not three).
    key: Arc<Key>,
    pub resource_version: Option<Box<str>>,
    pub deleting: bool,
    /// Fields of the object are owned by a non-apply write of Berth's field manager (a plain
    /// create, or a write by an older Berth): server-side apply cannot remove those, so the
    /// apply step first hands them to its apply entry (see [`crate::apply`]).
    pub updated_by_berth: bool,
    /// The uid of the controller ownerReference, if any.
    controller_uid: Option<Box<str>>,
    /// The value of the label [`berth_api::labels::OWNER_UID`], if any.
    owner_uid_label: Option<Box<str>>,
    /// The value of the cache's index label (the owner's name), if any.
    index_value: Option<Box<str>>,
    /// The object as JSON, trimmed by its kind's [`Projection`], compressed against its kind's
    /// dictionary ([`crate::packed`]).
    json: Packed,
}

/// The part of a cached object's metadata read back from its JSON.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetadataPart {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    owner_references: Vec<OwnerReference>,
}

#[derive(serde::Deserialize, Default)]
struct WithMetadata {
    #[serde(default)]
    metadata: MetadataPart,
}

impl CachedObject {
    /// The cached form of `object`, trimmed for `kind`; `index` is the label whose value names
    /// the object's owner in its cache.
    fn from_object(
        kind: &ChildKind,
        object: &DynamicObject,
        index: &str,
        packer: &mut Packer,
    ) -> Option<Self> {
        let updated_by_berth = object.managed_fields().iter().any(|entry| {
            entry.manager.as_deref() == Some(crate::apply::FIELD_MANAGER)
                && entry.operation.as_deref() == Some("Update")
                && entry.subresource.as_deref().unwrap_or_default().is_empty()
        });
        let mut value = serde_json::to_value(object).ok()?;
        // The items of a list (the watcher's initial list, after every restart) carry no
        // apiVersion or kind (kube-rs#946). Without them no desired object, which has both, is
        // contained in its live copy, and a restart re-applied every child of every Project.
        if let Some(map) = value.as_object_mut() {
            map.entry("apiVersion")
                .or_insert_with(|| kind.resource.api_version.clone().into());
            map.entry("kind")
                .or_insert_with(|| kind.resource.kind.clone().into());
        }
        kind.projection.trim(kind, &mut value);
        let json = serde_json::to_string(&value).ok()?;
        let label = |key: &str| object.labels().get(key).map(|v| v.as_str().into());
        Some(Self {
            key: Arc::new(Key::of(object)),
            resource_version: object.metadata.resource_version.as_deref().map(Into::into),
            deleting: object.metadata.deletion_timestamp.is_some(),
            updated_by_berth,
            controller_uid: object
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.as_str().into()),
            owner_uid_label: label(berth_api::labels::OWNER_UID),
            index_value: label(index),
            json: packer.pack(json),
        })
    }

    /// The object's namespace; `None` for a cluster-scoped object.
    pub fn namespace(&self) -> Option<&str> {
        self.key.namespace.as_deref()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The object's labels (parsed from the cached JSON on each call).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata_part().labels
    }

    /// The object's ownerReferences (parsed from the cached JSON on each call).
    pub fn owner_references(&self) -> Vec<OwnerReference> {
        self.metadata_part().owner_references
    }

    fn metadata_part(&self) -> MetadataPart {
        self.json
            .text()
            .and_then(|json| serde_json::from_str::<WithMetadata>(&json).ok())
            .map(|w| w.metadata)
            .unwrap_or_default()
    }

    /// The object as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        self.parse().unwrap_or_default()
    }

    /// The object as a typed Kubernetes object.
    pub fn parse<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.json.text()?).ok()
    }

    /// Whether `uid` is this object's controller: through a controller ownerReference, or, for
    /// children that carry none so that the garbage collector never deletes them (a namespace and
    /// what holds data in it), through the label [`berth_api::labels::OWNER_UID`].
    pub fn controlled_by(&self, uid: &str) -> bool {
        self.controller_uid.as_deref() == Some(uid) || self.owner_uid_label.as_deref() == Some(uid)
    }
}

/// A child's namespace (`None` when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: Option<Box<str>>,
    name: Box<str>,
}

impl Key {
    fn of(object: &DynamicObject) -> Self {
        Self {
            namespace: object.metadata.namespace.as_deref().map(Into::into),
            name: object.metadata.name.as_deref().unwrap_or_default().into(),
        }
    }
}

/// The label children are indexed by unless a controller names another: the owning Project.
const DEFAULT_INDEX_LABEL: &str = berth_api::labels::PROJECT;

/// The objects of one kind, by key and by owner label.
struct Objects {
    /// The label whose value names a child's owner.
    index: &'static str,
    by_key: HashMap<Arc<Key>, Arc<CachedObject>>,
    by_owner: HashMap<Box<str>, std::collections::HashSet<Arc<Key>>>,
}

impl Objects {
    fn new(index: &'static str) -> Self {
        Self {
            index,
            by_key: HashMap::new(),
            by_owner: HashMap::new(),
        }
    }

    fn insert(&mut self, object: CachedObject) {
        let key = object.key.clone();
        self.remove(&key);
        if let Some(owner) = object.index_value.as_deref() {
            self.by_owner
                .entry(owner.into())
                .or_default()
                .insert(key.clone());
        }
        self.by_key.insert(key, Arc::new(object));
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.by_key.remove(key)
            && let Some(owner) = old.index_value.as_deref()
            && let Some(keys) = self.by_owner.get_mut(owner)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_owner.remove(owner);
            }
        }
    }
}

/// The cache of one watch: a kind, or one name of a kind.
struct KindCache {
    kind: ChildKind,
    objects: RwLock<Objects>,
    /// Objects of a relist in progress, swapped in when it completes.
    relisting: RwLock<Objects>,
    /// Compresses the kind's cached JSON (see [`crate::packed`]).
    packer: Mutex<Packer>,
    ready: watch::Sender<bool>,
}

impl KindCache {
    fn apply(&self, event: &watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Apply(o) => {
                if let Ok(mut objects) = self.objects.write()
                    && let Ok(mut packer) = self.packer.lock()
                    && let Some(cached) =
                        CachedObject::from_object(&self.kind, o, objects.index, &mut packer)
                {
                    objects.insert(cached);
                }
            }
            watcher::Event::Delete(o) => {
                if let Ok(mut objects) = self.objects.write() {
                    objects.remove(&Key::of(o));
                }
            }
            watcher::Event::Init => {
                if let Ok(mut relisting) = self.relisting.write() {
                    *relisting = Objects::new(relisting.index);
                }
            }
            watcher::Event::InitApply(o) => {
                if let Ok(mut relisting) = self.relisting.write()
                    && let Ok(mut packer) = self.packer.lock()
                    && let Some(cached) =
                        CachedObject::from_object(&self.kind, o, relisting.index, &mut packer)
                {
                    relisting.insert(cached);
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

    /// A watch error. When the API server does not serve the kind (404: its CRD was removed, or
    /// the version is no longer served), there are no objects of it: the cache is empty and ready,
    /// so no reconcile or deletion waits for a kind that is not there. Other errors are retried
    /// by the watch and leave the cache as it is.
    fn failed(&self, error: &watcher::Error) {
        let not_served = matches!(
            error,
            watcher::Error::InitialListFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status))
                if status.code == 404
        );
        if not_served {
            if let Ok(mut objects) = self.objects.write() {
                let index = objects.index;
                *objects = Objects::new(index);
            }
            if !*self.ready.borrow() {
                warn!(kind = %self.kind.resource.api_version, resource = %self.kind.resource.plural, "not served by the API server: treated as having no objects");
            }
            self.ready.send_replace(true);
        }
    }
}

/// Caches of every Berth-managed object of each child kind.
#[derive(Clone)]
pub struct ChildCache {
    watches: Arc<Vec<KindCache>>,
}

/// A watch stream that fills one kind's cache; hand it to the controller so changes wake owners.
pub type ChildStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<DynamicObject, watcher::Error>> + Send>>;

impl ChildCache {
    /// Starts a label-selected watch per kind (per name, for kinds limited to some names),
    /// indexing children by their `berth.dev/project` label. Returns the cache and, per watch, the
    /// stream that drives it (it must be polled, normally by the controller it triggers).
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
        // One watch per kind, or per name of a kind limited to names.
        let mut watches: Vec<(ChildKind, Option<&'static str>)> = Vec::new();
        for kind in kinds {
            if kind.names.is_empty() {
                watches.push((kind, None));
            } else {
                for name in kind.names {
                    watches.push((kind.clone(), Some(*name)));
                }
            }
        }
        let caches: Arc<Vec<KindCache>> = Arc::new(
            watches
                .iter()
                .map(|(kind, _)| KindCache {
                    kind: kind.clone(),
                    objects: RwLock::new(Objects::new(index_label)),
                    relisting: RwLock::new(Objects::new(index_label)),
                    packer: Mutex::new(Packer::default()),
                    ready: watch::channel(false).0,
                })
                .collect(),
        );
        let mut streams = Vec::with_capacity(caches.len());
        for (index, (kind, name)) in watches.iter().enumerate() {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
            let mut config = watcher::Config::default().labels(&selector).any_semantic();
            if let Some(name) = name {
                config = config.fields(&format!("metadata.name={name}"));
            }
            let filler = caches.clone();
            let failed = caches.clone();
            let events = if kind.projection == Projection::Metadata {
                // `Api<PartialObjectMeta<_>>` asks the API server for metadata only.
                let meta: Api<kube::core::PartialObjectMeta<DynamicObject>> =
                    Api::all_with(client.clone(), &kind.resource);
                watcher(meta, config).map_ok(metadata_only).boxed()
            } else {
                watcher(api, config).boxed()
            };
            let stream = events
                .default_backoff()
                .inspect_ok(move |event| filler[index].apply(event))
                .inspect_err(move |error| failed[index].failed(error))
                // What the controller gets is only used to find the owner.
                .modify(|o| o.managed_fields_mut().clear())
                // Deletions too: a child deleted by hand must wake its owner to restore it.
                .touched_objects()
                .boxed();
            streams.push((stream as ChildStream, kind.resource.clone()));
        }
        (Self { watches: caches }, streams)
    }

    /// Waits until every watch has its first full list (or found its kind not served).
    pub async fn ready(&self) {
        for cache in self.watches.iter() {
            let mut ready = cache.ready.subscribe();
            let _ = ready.wait_for(|r| *r).await;
        }
    }

    fn of_kind<'a>(&'a self, resource: &'a ApiResource) -> impl Iterator<Item = &'a KindCache> {
        self.watches.iter().filter(|c| c.kind.same(resource))
    }

    /// The live object, if Berth manages one by that kind, namespace and name.
    pub fn get(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<CachedObject>> {
        self.of_kind(resource).find_map(|cache| {
            let key = Key {
                namespace: namespace.filter(|_| cache.kind.namespaced).map(Into::into),
                name: name.into(),
            };
            cache.objects.read().ok()?.by_key.get(&key).cloned()
        })
    }

    /// Every cached child whose index label (`berth.dev/project` unless the cache was made with
    /// [`ChildCache::watch_indexed`]) is `owner`, with its kind.
    pub fn owned_by(&self, owner: &str) -> Vec<(ChildKind, Arc<CachedObject>)> {
        let mut found = Vec::new();
        for cache in self.watches.iter() {
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
        self.watches
            .iter()
            .map(|c| c.objects.read().map(|o| o.by_key.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the cached JSON as kept (compressed), in bytes: what the caches cost beyond
    /// their indexes.
    pub fn json_bytes(&self) -> usize {
        self.watches
            .iter()
            .map(|c| {
                c.objects
                    .read()
                    .map(|o| o.by_key.values().map(|v| v.json.size()).sum::<usize>())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// A metadata-only watch event as the cache and the controllers take objects: a [`DynamicObject`]
/// with metadata and nothing else.
fn metadata_only(
    event: watcher::Event<kube::core::PartialObjectMeta<DynamicObject>>,
) -> watcher::Event<DynamicObject> {
    let object = |p: kube::core::PartialObjectMeta<DynamicObject>| DynamicObject {
        types: p.types,
        metadata: p.metadata,
        data: serde_json::Value::Object(Default::default()),
    };
    match event {
        watcher::Event::Apply(p) => watcher::Event::Apply(object(p)),
        watcher::Event::Delete(p) => watcher::Event::Delete(object(p)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(p) => watcher::Event::InitApply(object(p)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use serde_json::json;

    fn cached(kind: &ChildKind, value: serde_json::Value) -> serde_json::Value {
        let object: DynamicObject = serde_json::from_value(value).unwrap();
        CachedObject::from_object(kind, &object, DEFAULT_INDEX_LABEL, &mut Packer::default())
            .unwrap()
            .value()
    }

    #[test]
    fn the_cache_keeps_no_annotations_it_does_not_read_and_no_managed_fields() {
        let kind = ChildKind::of::<k8s_openapi::api::core::v1::ConfigMap>(true, true);
        let got = cached(
            &kind,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "a", "namespace": "n", "uid": "u-1", "creationTimestamp": "2026-11-30T00:00:00Z",
                "annotations": {"berth.dev/desired-hash": "1", "big": "x".repeat(10_000), LAST_APPLIED: "{}"},
                "managedFields": [{"manager": "berth-operator", "operation": "Apply"}],
            }, "data": {"k": "v"}}),
        );
        assert_eq!(
            got["metadata"]["annotations"],
            json!({"berth.dev/desired-hash": "1"})
        );
        assert!(got["metadata"].get("managedFields").is_none());
        assert!(got["metadata"].get("uid").is_none());
        assert!(got["metadata"].get("creationTimestamp").is_none());
        assert_eq!(got["data"], json!({"k": "v"}));
    }

    #[test]
    fn no_secret_data_is_kept_only_what_controllers_read() {
        let kind = ChildKind::of::<Secret>(true, true).named(&["berth-storage"]);
        let secret = |name: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {
                "name": name, "namespace": "n", "resourceVersion": "7",
                "labels": {"berth.dev/project": "p"},
                "annotations": {"berth.dev/credential-id": "GK1", "berth.dev/credential-fingerprint": "f", "berth.dev/rotation": "r", "other": "x"},
                "ownerReferences": [{"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "name": "p", "uid": "u"}],
            }, "data": {"AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}, "stringData": {"k": "secret"}})
        };
        for name in ["berth-storage", "forged"] {
            let got = cached(&kind, secret(name));
            assert!(got.get("data").is_none(), "{got}");
            assert!(got.get("stringData").is_none(), "{got}");
            assert!(!got.to_string().contains("c2VjcmV0") && !got.to_string().contains("secret\""));
            assert_eq!(
                got["metadata"]["annotations"],
                json!({"berth.dev/credential-id": "GK1", "berth.dev/credential-fingerprint": "f", "berth.dev/rotation": "r"})
            );
            assert_eq!(got["metadata"]["labels"]["berth.dev/project"], "p");
            assert_eq!(got["metadata"]["ownerReferences"][0]["uid"], "u");
            assert_eq!(got["metadata"]["resourceVersion"], "7");
        }
    }

    #[test]
    fn pods_keep_their_status_and_not_their_spec() {
        let kind = ChildKind::of::<Pod>(true, false).projected(Projection::Status);
        let got = cached(
            &kind,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n", "labels": {"a": "b"}},
                   "spec": {"containers": [{"name": "c", "env": [{"name": "E", "value": "x".repeat(10_000)}]}]},
                   "status": {"phase": "Running"}}),
        );
        assert!(got.get("spec").is_none());
        assert_eq!(got["status"]["phase"], "Running");
        assert_eq!(got["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn a_listed_object_without_type_meta_still_matches_what_berth_applies() {
        // As the initial list hands it over: no apiVersion, no kind.
        let kind = ChildKind::of::<k8s_openapi::api::core::v1::ConfigMap>(true, true);
        let listed: DynamicObject = serde_json::from_value(json!({"metadata": {
            "name": "c", "namespace": "n", "labels": {"a": "b"},
        }, "data": {"k": "v"}}))
        .unwrap();
        let cached =
            CachedObject::from_object(&kind, &listed, DEFAULT_INDEX_LABEL, &mut Packer::default())
                .unwrap()
                .value();
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}}, "data": {"k": "v"}});
        assert!(crate::compare::contains(&cached, &desired), "{cached}");
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n"}, "data": {"k": "w"}});
        assert!(!crate::compare::contains(&cached, &other));
    }

    #[test]
    fn a_plain_create_by_berth_is_noticed() {
        let kind = ChildKind::of::<k8s_openapi::api::core::v1::Namespace>(false, false);
        let object: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "a",
            "managedFields": [{"manager": crate::apply::FIELD_MANAGER, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}],
        }})).unwrap();
        assert!(
            CachedObject::from_object(&kind, &object, DEFAULT_INDEX_LABEL, &mut Packer::default())
                .unwrap()
                .updated_by_berth
        );
    }

    #[test]
    fn labels_owners_and_the_index_are_read_back_from_the_compact_form() {
        let kind = ChildKind::of::<k8s_openapi::api::core::v1::ConfigMap>(true, true);
        let object = |labels: serde_json::Value, owners: serde_json::Value| -> DynamicObject {
            serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                    "name": "c", "namespace": "n", "labels": labels, "ownerReferences": owners,
                }}),
            )
            .unwrap()
        };
        let owner = |uid: &str, controller: bool| json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "name": "p", "uid": uid, "controller": controller});
        let labelled = object(
            json!({"berth.dev/project": "p", berth_api::labels::OWNER_UID: "u1"}),
            json!([owner("u2", false), owner("u3", true)]),
        );
        let cached = CachedObject::from_object(
            &kind,
            &labelled,
            DEFAULT_INDEX_LABEL,
            &mut Packer::default(),
        )
        .unwrap();
        assert_eq!(
            cached.labels().get("berth.dev/project").map(String::as_str),
            Some("p")
        );
        assert_eq!(cached.owner_references().len(), 2);
        assert_eq!(cached.index_value.as_deref(), Some("p"));
        // The uid label, or the controller ownerReference; not another ownerReference.
        assert!(cached.controlled_by("u1"));
        assert!(cached.controlled_by("u3"));
        assert!(!cached.controlled_by("u2"));
        assert!(!cached.controlled_by("p"));
        let bare = object(json!({}), json!([]));
        let cached =
            CachedObject::from_object(&kind, &bare, DEFAULT_INDEX_LABEL, &mut Packer::default())
                .unwrap();
        assert!(cached.labels().is_empty() && cached.owner_references().is_empty());
        assert_eq!(cached.index_value, None);
        assert!(!cached.controlled_by(""));
        // Indexed by another label: its value, not the project's.
        let cached = CachedObject::from_object(
            &kind,
            &labelled,
            berth_api::labels::OWNER_UID,
            &mut Packer::default(),
        )
        .unwrap();
        assert_eq!(cached.index_value.as_deref(), Some("u1"));
    }
}
