//! Who owns the namespace. Berth never takes over a namespace it did not create, unless a platform
//! admin asks for it with the adopt annotation; never gives it an ownerReference (the garbage
//! collector would delete it with the Project); and never deletes it unless the deletion policy
//! says Delete and, for an adopted one, a platform admin says so too.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::{Resource, ResourceExt};
use serde_json::json;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, OWNER_UID, PROJECT};
use berth_api::project::ADOPT_NAMESPACE_ANNOTATION;
use berth_reconcile::{ChildKind, Error, FIELD_MANAGER};

use super::Context;
use super::build::{ADOPTED_ANNOTATION, RETAINED_LABEL};
use super::validate::Validated;
use crate::kinds;
use crate::names::kube::account_binding;

/// Whether this reconcile may manage the namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// It is the project's: just created for it, or adopted (it existed before).
    Ours { created: bool, adopted: bool },
    /// It belongs to someone else; the message says whose and what to do.
    Conflict(String),
    /// It is the project's and is being deleted.
    Terminating,
}

/// Whether the metadata marks the object as `uid`'s: the UID label, or (from before Berth
/// stopped setting them) a controller ownerReference.
fn marked<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(OWNER_UID))
        .is_some_and(|v| v == uid)
        || legacy_owner(object, uid)
}

fn legacy_owner<K: Resource>(object: &K, uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.controller == Some(true))
}

fn adopted<K: Resource>(object: &K) -> bool {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPTED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Removes `uid`'s ownerReference from an object that still has one (made before Berth stopped
/// setting them on namespaces and what is in them), keeping any other.
async fn detach(
    ctx: &Context,
    kind: &ChildKind,
    namespace: Option<&str>,
    name: &str,
    references: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    uid: &str,
) -> Result<bool, Error> {
    if !references.iter().any(|r| r.uid == uid) {
        return Ok(false);
    }
    let others: Vec<_> = references
        .iter()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"ownerReferences": if others.is_empty() { serde_json::Value::Null } else { json!(others) }}});
    let api = kind.api(&ctx.client, namespace);
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Decides whether the project may manage its namespace, creating it if it does not exist. A
/// namespace is created with a plain create, never an apply, so one that appears at the same
/// moment is reported as a conflict instead of being taken over. `desired` is the namespace as
/// built.
pub async fn claim(
    ctx: &Context,
    project: &Validated<'_>,
    desired: &berth_reconcile::Desired,
) -> Result<Claim, Error> {
    let uid = project.uid.as_str();
    let name = project.namespace.as_str();
    if let Some(live) = ctx.children.get(&kinds::namespace().resource, None, name)
        && live.controlled_by(uid)
    {
        if live.deleting {
            return Ok(Claim::Terminating);
        }
        let ns: Option<Namespace> = live.parse();
        if let Some(ns) = &ns {
            detach(
                ctx,
                &kinds::namespace(),
                None,
                name,
                ns.owner_references(),
                uid,
            )
            .await?;
        }
        return Ok(Claim::Ours {
            created: false,
            adopted: ns.as_ref().is_some_and(adopted),
        });
    }

    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    // A new project's namespace usually does not exist yet: try to create it first, and look only
    // when that fails. A project already in conflict looks first, to spare the failing create.
    let in_conflict = project
        .project
        .status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, super::status::NAMESPACE_READY))
        .is_some_and(|c| c.reason == "NamespaceConflict");
    if !in_conflict {
        let api: Api<DynamicObject> = kinds::namespace().api(&ctx.client, None);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match api.create(&params, &desired.object).await {
            Ok(created) => {
                ctx.written
                    .record_write(desired, created.resource_version());
                return Ok(Claim::Ours {
                    created: true,
                    adopted: false,
                });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    match namespaces.get_metadata_opt(name).await? {
        None => Ok(Claim::Conflict(format!(
            "namespace {name} existed a moment ago and is gone now; Berth will create it"
        ))),
        Some(meta) if marked(&meta, uid) => {
            if meta.metadata.deletion_timestamp.is_some() {
                return Ok(Claim::Terminating);
            }
            detach(
                ctx,
                &kinds::namespace(),
                None,
                name,
                meta.owner_references(),
                uid,
            )
            .await?;
            Ok(Claim::Ours {
                created: false,
                adopted: adopted(&meta),
            })
        }
        Some(meta) if meta.metadata.deletion_timestamp.is_some() => Ok(Claim::Conflict(format!(
            "namespace {name} is being deleted and was not this project's; Berth creates it once it is gone"
        ))),
        Some(_) if project.project.admin_says(ADOPT_NAMESPACE_ANNOTATION) => {
            // Marked as the project's and as adopted, so that the Delete policy keeps it.
            let patch = json!({"metadata": {
                "labels": {MANAGED_BY: MANAGED_BY_VALUE, PROJECT: project.name, OWNER_UID: uid},
                "annotations": {ADOPTED_ANNOTATION: "true"},
            }});
            namespaces
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(Claim::Ours {
                created: false,
                adopted: true,
            })
        }
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

/// What the cache says of the project's namespace, if it is the project's: whether it is being
/// deleted, and whether it was adopted.
pub struct Held {
    pub deleting: bool,
    pub adopted: bool,
}

/// The project's namespace as the cache holds it, if it is the project's.
pub fn held(ctx: &Context, uid: &str, namespace: &str) -> Option<Held> {
    let live = ctx
        .children
        .get(&kinds::namespace().resource, None, namespace)
        .filter(|live| live.controlled_by(uid))?;
    Some(Held {
        deleting: live.deleting,
        adopted: live.parse::<Namespace>().as_ref().is_some_and(adopted),
    })
}

/// The Retain policy: the namespace and everything in it stay, with their network isolation,
/// quota, limits, service accounts and credentials Secrets; member RoleBindings go (the members
/// lose access); the namespace is labelled as retained. Returns how many objects it changed.
pub async fn retain(
    ctx: &Context,
    project_name: &str,
    uid: &str,
    namespace: &str,
) -> Result<usize, Error> {
    let mut changed = 0;
    for (kind, object) in ctx.children.owned_by(project_name) {
        if !kind.namespaced && kind.resource.kind != "Namespace" {
            // Per-project ClusterRoles go with the Project (their ownerReference).
            continue;
        }
        if !object.controlled_by(uid) {
            continue;
        }
        let ns = object.namespace();
        let member_binding =
            kind.resource.kind == "RoleBinding" && !object.name().starts_with(&account_binding(""));
        if member_binding {
            let api = kind.api(&ctx.client, ns);
            match api.delete(object.name(), &DeleteParams::default()).await {
                Ok(_) => changed += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        if detach(
            ctx,
            &kind,
            ns,
            object.name(),
            &object.owner_references(),
            uid,
        )
        .await?
        {
            changed += 1;
        }
        if kind.resource.kind == "Namespace" {
            let patch = json!({"metadata": {
                "labels": { RETAINED_LABEL: "true" },
                "annotations": {
                    "berth.dev/retained-from-project": project_name,
                    "berth.dev/retained-from-uid": uid,
                },
            }});
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            match api
                .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => changed += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
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
