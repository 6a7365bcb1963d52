//! Who owns the namespace. Berth never takes over a namespace it did not create, unless a platform
//! admin asks for it with the adopt annotation; and it never deletes one unless the deletion policy
//! says Delete.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::json;

use berth_api::Project;
use berth_api::labels::PROJECT;
use berth_api::project::ADOPT_NAMESPACE_ANNOTATION;
use berth_reconcile::{Error, FIELD_MANAGER};

use super::Context;
use super::build::{Built, RETAINED_LABEL};
use crate::kinds;

/// Whether this reconcile may manage the namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// It is the project's (or was just created for it, or is being adopted).
    Ours { created: bool },
    /// It belongs to someone else; the message says whose and what to do.
    Conflict(String),
    /// It is the project's and is being deleted.
    Terminating,
}

fn controlled_by<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

fn adopting(project: &Project) -> bool {
    project
        .annotations()
        .get(ADOPT_NAMESPACE_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Decides whether the project may manage its namespace, creating it if it does not exist. A
/// namespace is created with a plain create, never an apply, so one that appears at the same moment
/// is reported as a conflict instead of being taken over.
pub async fn claim(ctx: &Context, project: &Project, built: &Built) -> Result<Claim, Error> {
    let uid = project.uid().unwrap_or_default();
    let name = &built.namespace;
    if let Some(live) = ctx.children.get(&kinds::namespace().resource, None, name)
        && live.controlled_by(&uid)
    {
        return Ok(if live.deleting {
            Claim::Terminating
        } else {
            Claim::Ours { created: false }
        });
    }

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    // A new project's namespace usually does not exist yet: try to create it first, and look only
    // when that fails. A project already in conflict looks first, to spare the failing create.
    let in_conflict = project
        .status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, super::status::NAMESPACE_READY))
        .is_some_and(|c| c.reason == "NamespaceConflict");
    if !in_conflict {
        let desired = built
            .children
            .iter()
            .find(|d| d.kind.resource.kind == "Namespace")
            .ok_or_else(|| Error::internal("no namespace was built"))?;
        let api: Api<DynamicObject> = kinds::namespace().api(&ctx.client, None);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match api.create(&params, &desired.object).await {
            Ok(created) => {
                ctx.written
                    .record_write(desired, created.resource_version());
                return Ok(Claim::Ours { created: true });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    match namespaces.get_metadata_opt(name).await? {
        None => Ok(Claim::Conflict(format!(
            "namespace {name} existed a moment ago and is gone now; Berth will create it"
        ))),
        Some(meta) if controlled_by(&meta, &uid) => {
            Ok(if meta.metadata.deletion_timestamp.is_some() {
                Claim::Terminating
            } else {
                Claim::Ours { created: false }
            })
        }
        Some(meta) if meta.metadata.deletion_timestamp.is_some() => Ok(Claim::Conflict(format!(
            "namespace {name} is being deleted and was not this project's; Berth creates it once it is gone"
        ))),
        Some(_) if adopting(project) => Ok(Claim::Ours { created: false }),
        Some(meta) => Ok(Claim::Conflict(conflict_message(name, &meta))),
    }
}

fn conflict_message(name: &str, meta: &PartialObjectMeta<Namespace>) -> String {
    let labels = meta.labels();
    let advice = format!(
        "choose another spec.namespace, or ask a platform admin to adopt it with the annotation {ADOPT_NAMESPACE_ANNOTATION}=true on the project"
    );
    if labels.get(RETAINED_LABEL).is_some_and(|v| v == "true") {
        format!(
            "namespace {name} was retained when project {} was deleted; {advice}",
            labels
                .get(PROJECT)
                .map(String::as_str)
                .unwrap_or("(unknown)")
        )
    } else if let Some(other) = labels.get(PROJECT) {
        format!("namespace {name} belongs to project {other}; {advice}")
    } else {
        format!("namespace {name} already exists and was not created by Berth; {advice}")
    }
}

/// Whether the project controls `namespace` (according to the cache).
pub fn is_ours(ctx: &Context, project: &Project, namespace: &str) -> bool {
    let uid = project.uid().unwrap_or_default();
    ctx.children
        .get(&kinds::namespace().resource, None, namespace)
        .is_some_and(|live| live.controlled_by(&uid))
}

/// The Retain policy: the namespace, its network policies, quota, limits and service accounts lose
/// their owner reference (so the garbage collector keeps them) and the namespace is labelled as
/// retained. Member RoleBindings and the project's cluster roles keep theirs and go with the project.
/// Returns how many objects it changed.
pub async fn retain(ctx: &Context, project: &Project, namespace: &str) -> Result<usize, Error> {
    let uid = project.uid().unwrap_or_default();
    let name = project.name_any();
    let kept = [
        kinds::namespace(),
        kinds::network_policy(),
        kinds::resource_quota(),
        kinds::limit_range(),
        kinds::service_account(),
        kinds::secret(),
    ];
    let mut changed = 0;
    for (kind, object) in ctx.children.owned_by(&name) {
        if !kept.iter().any(|k| k.resource.kind == kind.resource.kind)
            || !object.controlled_by(&uid)
        {
            continue;
        }
        let others: Vec<_> = object
            .owner_references
            .iter()
            .filter(|r| r.uid != uid)
            .cloned()
            .collect();
        let mut patch = json!({"metadata": {"ownerReferences": if others.is_empty() { serde_json::Value::Null } else { json!(others) }}});
        if kind.resource.kind == "Namespace" {
            patch["metadata"]["labels"] = json!({ RETAINED_LABEL: "true" });
            patch["metadata"]["annotations"] = json!({
                "berth.dev/retained-from-project": name,
                "berth.dev/retained-from-uid": uid,
            });
        }
        let api = kind.api(&ctx.client, object.namespace.as_deref().or(Some(namespace)));
        match api
            .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => changed += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(changed)
}

/// The Delete policy: the namespace goes, with everything in it.
pub async fn delete(ctx: &Context, namespace: &str) -> Result<(), Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match namespaces.delete(namespace, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
