//! What happens when a Project is deleted, in a safe order, whatever state its namespace is in:
//!
//! 1. The policy: the one recorded on the Project (`status.deletionPolicy`, or the spec's), never
//!    the platform's current default; Retain while the Project CRD itself is being deleted (an
//!    uninstall must not take tenant data with it).
//! 2. Delete: outside the cluster, with the names the status records, every credential is revoked
//!    first, then the data goes, each only if it records the project as its owner. If a provider
//!    fails, the finalizer keeps the Project and its status says what is left and how a platform
//!    admin abandons it (`berth.dev/abandon-external`); the Event then lists what was abandoned.
//!    Then the namespace goes, unless it was adopted and no platform admin asked for that
//!    (`berth.dev/delete-adopted-namespace`).
//! 3. Retain: the namespace and its data stay, detached; so does everything outside.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::info;

use berth_api::project::{
    ABANDON_EXTERNAL_ANNOTATION, DELETE_ADOPTED_NAMESPACE_ANNOTATION, DeletionPolicy,
};
use berth_api::{Project, ProjectStatus};
use berth_reconcile::{Category, Error};

use super::build::RETAINED_LABEL;
use super::namespace;
use super::status::{self, Outcome, Summary};
use super::validate::outside_names;
use super::{Context, event_reference};

/// Runs the deletion policy before the Project goes. Ok: the finalizer may go.
pub async fn cleanup(project: &Project, ctx: &Context) -> Result<(Action, usize), Error> {
    let settings = ctx.settings();
    let name = project.name_any();
    let uid = project.uid().unwrap_or_default();
    // Events about a deletion go to the platform admins (the operator's namespace): the namespace
    // is going, or kept without its members' access. A retained namespace gets its own copy.
    let reference = event_reference(ctx, project, None);
    let namespace = project
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .or_else(|| project.namespace_name().map(str::to_owned))
        .unwrap_or_default();
    let uninstalling = crd_deleting(ctx).await;
    // A project never reconciled has no recorded policy: Retain, which deletes nothing.
    let mut policy = project.effective_deletion_policy(DeletionPolicy::Retain);
    if uninstalling && policy == DeletionPolicy::Delete {
        policy = DeletionPolicy::Retain;
        ctx.announcer
            .publish(
                &reference,
                EventType::Warning,
                "UninstallRetains",
                "the Project CRD is being deleted: Berth keeps this project's namespace and everything outside the cluster, whatever its deletion policy",
            )
            .await;
    }
    let names = outside_names(project, &settings, &uid, &namespace);
    let held = namespace::held(ctx, &uid, &namespace);
    let mut writes = 0;
    match policy {
        DeletionPolicy::Retain => {
            let outside = ctx.external.kept(project, &uid, &names, &settings);
            let mut note = String::new();
            if held.is_some() {
                writes += namespace::retain(ctx, &name, &uid, &namespace).await?;
                note.push_str(&format!(
                    "deletionPolicy Retain: kept namespace {namespace} and its data, labelled {RETAINED_LABEL}=true; its network isolation, quota and credentials stay, member access was removed"
                ));
            } else {
                note.push_str(&format!(
                    "deletionPolicy Retain: namespace {namespace} was never this project's and is left untouched"
                ));
            }
            if !outside.is_empty() {
                note.push_str(&format!(
                    "; also kept outside the cluster: {}",
                    outside.join("; ")
                ));
            }
            ctx.announcer
                .publish(&reference, EventType::Normal, "Retained", &note)
                .await;
            if held.is_some() {
                ctx.announcer
                    .publish(
                        &event_reference(ctx, project, Some(&namespace)),
                        EventType::Normal,
                        "Retained",
                        &note,
                    )
                    .await;
            }
        }
        DeletionPolicy::Delete => {
            let abandon = project.admin_says(ABANDON_EXTERNAL_ANNOTATION);
            let removal = ctx
                .external
                .remove(project, &uid, &names, &settings, abandon)
                .await;
            if !removal.failed.is_empty() {
                let message = format!(
                    "deleting the project is waiting for what it holds outside the cluster: {}. Berth retries; if a provider is gone for good, a platform admin sets the annotation {ABANDON_EXTERNAL_ANNOTATION}=\"true\" on the Project to abandon what is left",
                    removal.failed.join("; ")
                );
                write_status(
                    ctx,
                    project,
                    &namespace,
                    Outcome::DeletionBlocked(message.clone()),
                )
                .await?;
                return Err(Error::new(Category::DependencyUnavailable, message));
            }
            let mut note = String::from("deletionPolicy Delete");
            match &held {
                Some(h)
                    if h.adopted && !project.admin_says(DELETE_ADOPTED_NAMESPACE_ANNOTATION) =>
                {
                    writes += namespace::retain(ctx, &name, &uid, &namespace).await?;
                    note.push_str(&format!(
                        ": kept namespace {namespace}, which existed before the project (adopted); a platform admin deletes it, or sets {DELETE_ADOPTED_NAMESPACE_ANNOTATION}=\"true\" on a project before deleting it"
                    ));
                }
                Some(_) => {
                    namespace::delete(ctx, &namespace).await?;
                    writes += 1;
                    note.push_str(&format!(
                        ": deleting namespace {namespace} and everything in it"
                    ));
                }
                None => note.push_str(&format!(
                    ": namespace {namespace} was never this project's and is left untouched"
                )),
            }
            let lists = [
                ("revoked", &removal.revoked),
                ("deleted outside the cluster", &removal.removed),
                ("left alone (not this project's)", &removal.left_alone),
            ];
            for (what, list) in lists {
                if !list.is_empty() {
                    note.push_str(&format!("; {what}: {}", list.join("; ")));
                }
            }
            if !removal.abandoned.is_empty() {
                let message = format!(
                    "abandoned outside the cluster, as a platform admin asked ({ABANDON_EXTERNAL_ANNOTATION}): {}. Remove them by hand once their provider is back",
                    removal.abandoned.join("; ")
                );
                write_status(
                    ctx,
                    project,
                    &namespace,
                    Outcome::DeletionBlocked(message.clone()),
                )
                .await?;
                ctx.announcer
                    .publish(&reference, EventType::Warning, "Abandoned", &message)
                    .await;
            }
            ctx.announcer
                .publish(&reference, EventType::Normal, "Deleted", &note)
                .await;
        }
    }
    // The admin-tier network policy goes with the Project whatever the policy: its ownerReference
    // would take it too, but only once the garbage collector has noticed the kind.
    writes += remove_admin_tier(ctx, &name, &uid).await?;
    info!(project = %name, ?policy, namespace, "deletion policy applied");
    Ok((Action::await_change(), writes))
}

/// Deletes the project's admin-tier network policy (of each admin-tier kind the cluster serves,
/// where the cache holds one controlled by `uid`). Returns the deletes made.
async fn remove_admin_tier(ctx: &Context, project: &str, uid: &str) -> Result<usize, Error> {
    let name = crate::names::kube::isolation_policy(project);
    let mut deleted = 0;
    for found in [
        &ctx.found.cluster_network_policy,
        &ctx.found.admin_network_policy,
    ] {
        let Some(kind) = found.kind() else { continue };
        let ours = ctx
            .children
            .get(&kind.resource, None, &name)
            .is_some_and(|live| live.controlled_by(uid) && !live.deleting);
        if !ours {
            continue;
        }
        match kind
            .api(&ctx.client, None)
            .delete(&name, &Default::default())
            .await
        {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Whether the Project CRD is being deleted: an uninstall.
async fn crd_deleting(ctx: &Context) -> bool {
    Api::<CustomResourceDefinition>::all(ctx.client.clone())
        .get_opt("projects.berth.dev")
        .await
        .ok()
        .flatten()
        .is_some_and(|crd| crd.metadata.deletion_timestamp.is_some())
}

/// Writes the status of a Project being deleted.
async fn write_status(
    ctx: &Context,
    project: &Project,
    namespace: &str,
    outcome: Outcome,
) -> Result<(), Error> {
    let summary = Summary {
        namespace: namespace.to_owned(),
        subjects: berth_api::members::effective(&project.spec, ctx.settings().email_user_names),
        deletion_policy: None,
    };
    let new: ProjectStatus = status::status(project, &summary, &outcome, Timestamp::now());
    let api: Api<Project> = Api::all(ctx.client.clone());
    berth_reconcile::status::write_if_changed(
        &api,
        &project.name_any(),
        project.status.as_ref(),
        &new,
    )
    .await?;
    Ok(())
}
