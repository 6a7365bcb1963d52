//! The one step every controller uses to make the cluster match: server-side apply what is desired
//! and not already there, and delete by label what is no longer desired.
//!
//! Removals apply. Server-side apply removes a field the desired object no longer holds only when
//! Berth's apply is its sole owner, so:
//! - every desired object carries the hash of its content ([`DESIRED_HASH_ANNOTATION`]), and
//!   "live contains desired", which cannot see a dropped field, sees the hash change;
//! - fields Berth wrote with a plain create or update (the namespace's create, writes of an older
//!   Berth) belong to an `Update` entry of Berth's field manager, which apply never removes: before
//!   applying such an object, the apply step hands those fields to its apply entry (as client-go's
//!   `csaupgrade` does), so the apply that follows removes what is no longer desired.
//!
//! Fields another manager also set (a platform admin's `kubectl edit`) stay theirs, as server-side
//! apply intends.
//!
//! **One refused child never holds up the others.** Every desired object is applied and every
//! stale one pruned even when an earlier write was refused (an immutable field, a quota, an
//! admission policy): [`apply_all`] returns what failed beside what was written, and [`apply`]
//! turns failures into one error once everything else is done. A settings change that one kind of
//! child refuses can no longer freeze the rest of every owner.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::children::{ChildCache, ChildKind};
use crate::compare::contains;
use crate::error::Error;

/// The annotation with the hash of what Berth last applied to an object.
pub const DESIRED_HASH_ANNOTATION: &str = "berth.dev/desired-hash";

/// The field manager every Berth write uses.
pub const FIELD_MANAGER: &str = "berth-operator";

/// One object a controller wants to exist.
#[derive(Clone, Debug)]
pub struct Desired {
    pub kind: ChildKind,
    pub object: DynamicObject,
    /// Created when missing, never changed once it exists: for objects whose spec the API server
    /// does not let change (a Job's pod template, a claim's class), built from inputs that name
    /// them, so that a changed input is a new object rather than a refused write.
    pub create_only: bool,
}

impl Desired {
    /// A desired object from a typed Kubernetes object (with its apiVersion and kind).
    pub fn new<K: Resource<DynamicType = ()> + Serialize>(
        kind: &ChildKind,
        object: &K,
    ) -> Result<Self, Error> {
        let value = serde_json::to_value(object)
            .map_err(|e| Error::internal(format!("encoding a {}: {e}", K::kind(&()))))?;
        Self::from_value(kind, value)
    }

    /// A desired object from JSON (for kinds with no Rust type, such as Istio's).
    pub fn from_value(kind: &ChildKind, mut value: serde_json::Value) -> Result<Self, Error> {
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "apiVersion".into(),
                kind.resource.api_version.clone().into(),
            );
            map.insert("kind".into(), kind.resource.kind.clone().into());
        }
        let mut object: DynamicObject = serde_json::from_value(value)
            .map_err(|e| Error::internal(format!("encoding a {}: {e}", kind.resource.kind)))?;
        // The object carries the hash of its own content. "Live contains desired" cannot see a
        // field dropped from the desired state; the hash changes with it, so the object is applied
        // again and server-side apply removes the field.
        let content = hash_of(&serde_json::to_value(&object).unwrap_or_default());
        object
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                DESIRED_HASH_ANNOTATION.to_owned(),
                format!("{content:016x}"),
            );
        Ok(Self {
            kind: kind.clone(),
            object,
            create_only: false,
        })
    }

    /// This object, created when it is missing and otherwise left as it is.
    pub fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }

    fn key(&self) -> (String, Option<String>, String) {
        (
            self.kind.resource.kind.clone(),
            self.object.namespace(),
            self.object.name_any(),
        )
    }
}

/// One child that could not be written: what it is, whether it was being applied or pruned, and
/// why.
#[derive(Debug)]
pub struct ChildFailure {
    /// The child's kind (`Job`, `PersistentVolumeClaim`, …).
    pub kind: String,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// True when the write was a deletion of a child no longer desired.
    pub pruning: bool,
    /// Why, with the category that decides the requeue.
    pub error: Error,
}

impl ChildFailure {
    /// `Kind/namespace/name`, as [`Report::applied`] names objects.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Objects written because they were missing or differed.
    pub applied: Vec<String>,
    /// Objects deleted because they are no longer desired.
    pub pruned: Vec<String>,
    /// Objects already as desired.
    pub unchanged: usize,
    /// Objects written moments ago whose change the cache has not seen yet: not written again.
    /// The caller should look again shortly (see [`IN_FLIGHT`]).
    pub in_flight: usize,
    /// Children that could not be applied or pruned; every other child was still written.
    pub failed: Vec<ChildFailure>,
}

/// How long a write counts as in flight while the cache catches up.
pub const IN_FLIGHT: Duration = Duration::from_secs(5);

type Key = (String, Option<String>, String);

/// A write: the hash of what was written, the resourceVersion it produced, and when.
type Write = (u64, Option<String>, Instant);

/// What was last written for each object, so a reconcile that runs before the watch has delivered
/// our own write does not write the same content again.
#[derive(Default)]
pub struct Written {
    entries: Mutex<HashMap<Key, Write>>,
}

impl Written {
    fn in_flight(&self, key: &Key, hash: u64, live_version: Option<&str>) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(key).is_some_and(|(h, version, at)| {
            *h == hash && at.elapsed() < IN_FLIGHT && version.as_deref() != live_version
        })
    }

    /// Records a write of `desired` made outside [`apply`] (a plain create), so the next apply does
    /// not repeat it before the cache has seen it.
    pub fn record_write(&self, desired: &Desired, resource_version: Option<String>) {
        let want = serde_json::to_value(&desired.object).unwrap_or_default();
        self.record(desired.key(), hash_of(&want), resource_version);
    }

    fn record(&self, key: Key, hash: u64, version: Option<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (_, _, at)| at.elapsed() < IN_FLIGHT);
            entries.insert(key, (hash, version, Instant::now()));
        }
    }
}

fn hash_of(value: &serde_json::Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

impl Report {
    pub fn wrote(&self) -> bool {
        !self.applied.is_empty() || !self.pruned.is_empty()
    }

    /// The report, or one error naming every child that failed once all the others were written.
    /// Its category is the one that retries soonest among the failures (a dependency that may
    /// come back before a conflict, before an internal error, before an invalid spec), so that no
    /// failure waits longer than its own category asks.
    pub fn into_result(self) -> Result<Self, Error> {
        if self.failed.is_empty() {
            return Ok(self);
        }
        Err(combined(&self.failed))
    }
}

/// One error for several failed children (see [`Report::into_result`]).
pub fn combined(failed: &[ChildFailure]) -> Error {
    use crate::error::Category;
    let rank = |c: Category| match c {
        Category::DependencyUnavailable => 0,
        Category::Conflict => 1,
        Category::Internal => 2,
        Category::InvalidSpec => 3,
    };
    let category = failed
        .iter()
        .map(|f| f.error.category)
        .min_by_key(|c| rank(*c))
        .unwrap_or(Category::Internal);
    let describe = |f: &ChildFailure, text: &str| {
        let verb = if f.pruning { "deleting" } else { "writing" };
        format!("{verb} {}: {text}", f.describe())
    };
    let message = failed
        .iter()
        .map(|f| describe(f, &f.error.message))
        .collect::<Vec<_>>()
        .join("; ");
    let detail = failed
        .iter()
        .map(|f| describe(f, &f.error.log_text()))
        .collect::<Vec<_>>()
        .join("; ");
    let message = if failed.len() == 1 {
        message
    } else {
        format!("{} children could not be written: {message}", failed.len())
    };
    Error::with_detail(category, message, detail)
}

fn describe(kind: &ChildKind, object: &DynamicObject) -> String {
    match object.namespace() {
        Some(ns) => format!("{}/{}/{}", kind.resource.kind, ns, object.name_any()),
        None => format!("{}/{}", kind.resource.kind, object.name_any()),
    }
}

/// Whose children an apply pass manages: those whose cache index label (`berth.dev/project`, or
/// the label the cache was made with) is `<name>` and that are controlled by `uid`.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

/// Applies `desired` in order, skipping objects the cache shows are already as desired, then deletes
/// the owner's cached children that are not desired (for kinds that allow pruning). Objects that
/// carry the label but another controller (an earlier owner of the same name) are never touched.
///
/// Every child is tried: a child the API server refuses is recorded in [`Report::failed`] and the
/// others are still applied and pruned. The result is an error, naming every failed child, once
/// all of that is done ([`Report::into_result`]); [`apply_all`] hands back the report instead.
pub async fn apply(
    client: &Client,
    cache: &ChildCache,
    written: &Written,
    desired: &[Desired],
    owner: Owner<'_>,
) -> Result<Report, Error> {
    apply_all(client, cache, written, desired, owner)
        .await
        .into_result()
}

/// As [`apply`], returning the report with the failed children in it, for a controller that turns
/// some refusals into conditions of its own (a quota refusing a volume, say).
pub async fn apply_all(
    client: &Client,
    cache: &ChildCache,
    written: &Written,
    desired: &[Desired],
    owner: Owner<'_>,
) -> Report {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut report = Report::default();
    let mut wanted = HashSet::new();
    for item in desired {
        wanted.insert(item.key());
        let namespace = item.object.namespace();
        let name = item.object.name_any();
        let live = cache.get(&item.kind.resource, namespace.as_deref(), &name);
        let want = serde_json::to_value(&item.object).unwrap_or_default();
        let up_to_date = live
            .as_ref()
            .is_some_and(|live| item.create_only || contains(&live.value(), &want));
        if up_to_date {
            report.unchanged += 1;
            continue;
        }
        let key = item.key();
        let hash = hash_of(&want);
        let live_version = live.as_ref().and_then(|l| l.resource_version.as_deref());
        if written.in_flight(&key, hash, live_version) {
            report.in_flight += 1;
            continue;
        }
        let api = item.kind.api(client, namespace.as_deref());
        let handed = if live.as_ref().is_some_and(|l| l.updated_by_berth) {
            hand_over_to_apply(&api, &name).await
        } else {
            Ok(())
        };
        let answer = match handed {
            Ok(()) => api
                .patch(&name, &params, &Patch::Apply(&item.object))
                .await
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        let what = describe(&item.kind, &item.object);
        match answer {
            Ok(answer) => {
                written.record(key, hash, answer.resource_version());
                debug!(object = %what, existed = live.is_some(), "applied");
                report.applied.push(what);
            }
            Err(error) => {
                warn!(object = %what, error = %error.log_text(), "could not apply; the other children are applied regardless");
                report.failed.push(ChildFailure {
                    kind: item.kind.resource.kind.clone(),
                    namespace,
                    name,
                    pruning: false,
                    error,
                });
            }
        }
    }

    for (kind, object) in cache.owned_by(owner.name) {
        if !kind.prune || object.deleting || !object.controlled_by(owner.uid) {
            continue;
        }
        let key = (
            kind.resource.kind.clone(),
            object.namespace().map(str::to_owned),
            object.name().to_owned(),
        );
        if wanted.contains(&key) {
            continue;
        }
        let api = kind.api(client, object.namespace());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let what = match object.namespace() {
            Some(ns) => format!("{}/{ns}/{}", kind.resource.kind, object.name()),
            None => format!("{}/{}", kind.resource.kind, object.name()),
        };
        match api.delete(object.name(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                let error = Error::from(e);
                warn!(object = %what, error = %error.log_text(), "could not prune; the other children are handled regardless");
                report.failed.push(ChildFailure {
                    kind: kind.resource.kind.clone(),
                    namespace: object.namespace().map(str::to_owned),
                    name: object.name().to_owned(),
                    pruning: true,
                    error,
                });
                continue;
            }
        }
        info!(object = %what, "pruned: no longer desired");
        report.pruned.push(what);
    }
    report
}

/// Hands the fields of every `Update` entry of Berth's field manager to its `Apply` entry, so a
/// later apply that drops them removes them. One JSON patch of `metadata.managedFields`, guarded
/// by the resourceVersion read (a conflict is retried by the next reconcile).
async fn hand_over_to_apply(api: &kube::Api<DynamicObject>, name: &str) -> Result<(), Error> {
    let live = match api.get(name).await {
        Ok(live) => live,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(entries) = live.metadata.managed_fields.as_ref() else {
        return Ok(());
    };
    let Some(handed) = handed_over(entries, k8s_openapi::jiff::Timestamp::now()) else {
        return Ok(());
    };
    let patch = serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version},
        {"op": "replace", "path": "/metadata/managedFields", "value": handed},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| Error::internal(format!("building the managed-fields patch: {e}")))?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    info!(object = %name, "handed fields written by create or update to server-side apply, so removals apply");
    Ok(())
}

/// `entries` with Berth's `Update` entries (on the main resource, of the apply entry's API
/// version) merged into its `Apply` entry, or `None` when there is nothing to hand over.
pub fn handed_over(
    entries: &[ManagedFieldsEntry],
    now: k8s_openapi::jiff::Timestamp,
) -> Option<Vec<ManagedFieldsEntry>> {
    let ours = |e: &ManagedFieldsEntry, operation: &str| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && e.operation.as_deref() == Some(operation)
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    };
    let apply = entries.iter().find(|e| ours(e, "Apply"));
    let version = apply.and_then(|a| a.api_version.clone()).or_else(|| {
        entries
            .iter()
            .find(|e| ours(e, "Update"))
            .and_then(|e| e.api_version.clone())
    });
    let updates: Vec<&ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| ours(e, "Update") && e.api_version == version)
        .collect();
    if updates.is_empty() {
        return None;
    }
    let mut fields = serde_json::Value::Object(Default::default());
    for entry in apply.into_iter().chain(updates.iter().copied()) {
        if let Some(set) = &entry.fields_v1 {
            merge_field_sets(&mut fields, &set.0);
        }
    }
    let mut out: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !(ours(e, "Apply") || (ours(e, "Update") && e.api_version == version)))
        .cloned()
        .collect();
    out.push(ManagedFieldsEntry {
        manager: Some(FIELD_MANAGER.to_owned()),
        operation: Some("Apply".to_owned()),
        api_version: version,
        fields_type: Some("FieldsV1".to_owned()),
        fields_v1: Some(FieldsV1(fields)),
        time: Some(Time(now)),
        subresource: None,
    });
    Some(out)
}

/// The union of two managed-field sets (nested objects of `f:`/`k:`/`v:`/`i:` keys).
fn merge_field_sets(into: &mut serde_json::Value, from: &serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (key, value) in b {
                merge_field_sets(a.entry(key.clone()).or_insert(serde_json::json!({})), value);
            }
        }
        (into, from) => {
            if into.as_object().is_none_or(|o| o.is_empty()) && !from.is_null() {
                *into = from.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::*;
    use crate::compare::contains;

    fn desired(data: serde_json::Value) -> Result<Desired, Error> {
        Desired::from_value(
            &ChildKind::of::<ConfigMap>(true, true),
            json!({"metadata": {"name": "c", "namespace": "n"}, "data": data}),
        )
    }

    fn hash(d: &Desired) -> Option<String> {
        d.object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
            .cloned()
    }

    #[test]
    fn a_plain_create_is_handed_to_the_apply_entry() {
        use k8s_openapi::jiff::Timestamp;
        let entry =
            |manager: &str, operation: &str, fields: serde_json::Value| ManagedFieldsEntry {
                manager: Some(manager.into()),
                operation: Some(operation.into()),
                api_version: Some("v1".into()),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(FieldsV1(fields)),
                time: None,
                subresource: None,
            };
        let entries = vec![
            entry(
                FIELD_MANAGER,
                "Update",
                json!({"f:metadata": {"f:labels": {"f:a": {}, "f:gone": {}}}}),
            ),
            entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}}),
            ),
            entry(
                "kubectl-edit",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:x": {}}}}),
            ),
        ];
        let handed = handed_over(&entries, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(handed.len(), 2, "{handed:?}");
        assert_eq!(handed[0].manager.as_deref(), Some("kubectl-edit"));
        let apply = &handed[1];
        assert_eq!(apply.operation.as_deref(), Some("Apply"));
        assert_eq!(
            apply.fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}, "f:gone": {}}}})
        );
        // Nothing to hand over the second time.
        assert!(handed_over(&handed, Timestamp::UNIX_EPOCH).is_none());
    }

    fn failure(kind: &str, category: crate::Category, pruning: bool) -> ChildFailure {
        ChildFailure {
            kind: kind.into(),
            namespace: Some("n".into()),
            name: "x".into(),
            pruning,
            error: Error::with_detail(category, format!("{kind} refused"), "raw answer"),
        }
    }

    #[test]
    fn failures_come_back_after_every_child_and_retry_soonest() {
        use crate::Category;
        let ok = Report::default();
        assert!(ok.into_result().is_ok());
        let report = Report {
            applied: vec!["Deployment/n/m".into()],
            failed: vec![
                failure("Job", Category::InvalidSpec, false),
                failure(
                    "PersistentVolumeClaim",
                    Category::DependencyUnavailable,
                    true,
                ),
            ],
            ..Default::default()
        };
        let Err(e) = report.into_result() else {
            panic!("two failures are an error");
        };
        // The soonest retry wins: the dependency may come back, the invalid spec may not.
        assert_eq!(e.category, Category::DependencyUnavailable);
        assert!(
            e.message.starts_with("2 children could not be written"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("writing Job/n/x: Job refused"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("deleting PersistentVolumeClaim/n/x"),
            "{}",
            e.message
        );
        // The raw answers go to the log text only.
        assert!(!e.message.contains("raw answer"));
        assert!(e.log_text().contains("raw answer"));
        let one = combined(&[failure("Job", Category::Conflict, false)]);
        assert_eq!(one.message, "writing Job/n/x: Job refused");
    }

    #[test]
    fn a_dropped_field_is_seen_through_the_hash() -> Result<(), Error> {
        let before = desired(json!({"a": "1", "b": "2"}))?;
        let after = desired(json!({"a": "1"}))?;
        let again = desired(json!({"a": "1"}))?;
        assert_eq!(
            hash(&after),
            hash(&again),
            "the same content, the same hash"
        );
        assert_ne!(hash(&before), hash(&after));
        // What is live after the first apply contains the smaller object but for its hash, so it
        // is applied again, and server-side apply drops "b".
        let live = serde_json::to_value(&before.object).unwrap_or_default();
        let want = serde_json::to_value(&after.object).unwrap_or_default();
        assert!(!contains(&live, &want));
        Ok(())
    }
}
