//! *Project* (`/projects/<name>`): everything read as the user. The Project itself (a user who
//! cannot `get` it gets the API server's 403 as "you cannot do this here"), its conditions in
//! plain words, its members by role with the owner's forms (shown when a SelfSubjectAccessReview
//! allows `patch` on it; the API server decides each change anyway), who has access (the
//! RoleBindings of its namespace), quota used against hard (its ResourceQuotas' status), the
//! bucket, OIDC client and registry project by name with the Secret names and keys to use them
//! (never a value), and the namespace's recent Events.

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use berth_api::Project;
use berth_api::project::Role;
use k8s_openapi::api::core::v1::{Event, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ObjectList};

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::view::{self, Bar};
use crate::projects::{Ctx, api_error, context, may_as};

/// Events shown at most.
pub const EVENTS: usize = 20;

pub struct Cond {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

pub struct MemberRow {
    pub kind: String,
    pub name: String,
    /// Listed in `spec.owners` rather than `spec.members`.
    pub from_owners: bool,
}

pub struct MemberGroup {
    pub role: String,
    pub rows: Vec<MemberRow>,
}

pub struct BindingRow {
    pub name: String,
    pub role: String,
    pub subjects: Vec<String>,
}

pub struct ExternalRow {
    pub what: String,
    pub name: String,
    pub how: String,
}

pub struct EventRow {
    pub when: String,
    pub type_: String,
    pub object: String,
    pub reason: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    pub layout: Layout,
    pub name: String,
    pub namespace: String,
    pub role: String,
    pub error: String,
    pub error_hint: String,
    pub conditions: Vec<Cond>,
    pub members: Vec<MemberGroup>,
    pub can_edit: bool,
    /// Moments after *New project*, the operator has not yet reconciled it (no conditions) or
    /// not yet bound the owner's role (the spec names the caller owner, the API server does not
    /// let them change it): the page says so and reloads itself every 2 s.
    pub setting_up: bool,
    pub roles: Vec<String>,
    /// The add form's name, kept after a refusal.
    pub form_name: String,
    pub access: Result<Vec<BindingRow>, String>,
    pub quota: Result<Vec<Bar>, String>,
    pub external: Vec<ExternalRow>,
    pub events: Result<Vec<EventRow>, String>,
}

/// What a refused change shows above the page.
#[derive(Default)]
pub struct Refusal {
    pub status: Option<StatusCode>,
    pub error: String,
    pub hint: String,
    pub form_name: String,
    /// The caller created the project moments ago (see [`just_created`]).
    pub just_created: bool,
}

/// How long after *New project* a refused read of the project is taken for the operator not
/// having granted the creator's role yet, in seconds.
const SETTING_UP_SECONDS: u64 = 60;

/// Whether the query (`?created=<unix seconds>`, set by the *New project* handler's redirect)
/// says the project was created within [`SETTING_UP_SECONDS`]. Anyone may write the query: it
/// only changes the words of a refusal the API server made, never what is shown.
fn just_created(query: Option<&str>, now: u64) -> bool {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("created="))
        .filter_map(|v| v.parse::<u64>().ok())
        .any(|at| at <= now && now - at <= SETTING_UP_SECONDS)
}

/// Whether a project's page is shown before the operator finished setting it up for its
/// creator: not reconciled yet (no conditions), or the spec names the caller owner while the API
/// server does not yet let them change it (their role is not bound yet). Only within the creation
/// window the *New project* redirect carries (`just_created`), so a project the operator never
/// reconciles does not keep a page reloading.
fn setting_up(just_created: bool, reconciled: bool, role: &str, can_edit: bool) -> bool {
    just_created && (!reconciled || (role == "owner" && !can_edit))
}

fn members(project: &Project) -> Vec<MemberGroup> {
    [Role::Owner, Role::Editor, Role::Viewer]
        .into_iter()
        .map(|role| {
            let mut rows: Vec<MemberRow> = Vec::new();
            if role == Role::Owner {
                rows.extend(project.spec.owners.iter().map(|o| MemberRow {
                    kind: "User".into(),
                    name: o.clone(),
                    from_owners: true,
                }));
            }
            rows.extend(
                project
                    .spec
                    .members
                    .iter()
                    .filter(|m| m.role == role)
                    .map(|m| MemberRow {
                        kind: view::kind_name(m.kind).into(),
                        name: m.name.clone(),
                        from_owners: false,
                    }),
            );
            MemberGroup {
                role: view::role_name(role).into(),
                rows,
            }
        })
        .collect()
}

fn external(project: &Project) -> Vec<ExternalRow> {
    let Some(ext) = project.status.as_ref().and_then(|s| s.external.as_ref()) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    if let Some(bucket) = &ext.bucket {
        rows.push(ExternalRow {
            what: "Bucket".into(),
            name: bucket.clone(),
            how: "Secret berth-storage in the namespace, keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
                  AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION, BUCKET: load it into a pod with \
                  envFrom (secretRef berth-storage); aws, boto3 and mc read those variables."
                .into(),
        });
    }
    if let Some(client) = &ext.oidc_client_id {
        let group = ext
            .oidc_group
            .as_deref()
            .map(|g| format!(" The realm group {g} holds the project's User members."))
            .unwrap_or_default();
        rows.push(ExternalRow {
            what: "OIDC client".into(),
            name: client.clone(),
            how: format!(
                "Secret berth-oidc in the namespace, keys OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, \
                 OIDC_ISSUER_URL: give them to your application's OIDC library.{group}"
            ),
        });
    }
    if let Some(registry) = &ext.registry_project {
        rows.push(ExternalRow {
            what: "Registry project".into(),
            name: registry.clone(),
            how:
                "Secret berth-registry (kubernetes.io/dockerconfigjson) in the namespace, already \
                  the imagePullSecret of the project's service accounts: pods pull images of this \
                  registry project without more setup."
                    .into(),
        });
    }
    rows
}

fn bindings(list: Vec<RoleBinding>) -> Vec<BindingRow> {
    let mut rows: Vec<BindingRow> = list
        .into_iter()
        .map(|b| BindingRow {
            name: b.metadata.name.unwrap_or_default(),
            role: format!("{} {}", b.role_ref.kind, b.role_ref.name),
            subjects: b
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| match s.namespace {
                    Some(ns) if s.kind == "ServiceAccount" => {
                        format!("{} {ns}/{}", s.kind, s.name)
                    }
                    _ => format!("{} {}", s.kind, s.name),
                })
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

fn quotas(list: Vec<ResourceQuota>) -> Vec<Bar> {
    let mut out = Vec::new();
    let several = list.len() > 1;
    for quota in list {
        let name = quota.metadata.name.unwrap_or_default();
        let status = quota.status.unwrap_or_default();
        for mut bar in view::bars(
            &status.hard.unwrap_or_default(),
            &status.used.unwrap_or_default(),
        ) {
            if several {
                bar.resource = format!("{name}: {}", bar.resource);
            }
            out.push(bar);
        }
    }
    out
}

fn events(mut list: Vec<Event>) -> Vec<EventRow> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    list.sort_by_key(|e| std::cmp::Reverse(when(e)));
    list.into_iter()
        .take(EVENTS)
        .map(|e| EventRow {
            when: when(&e).map(|t| t.to_string()).unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_default(),
            object: format!(
                "{} {}",
                e.involved_object.kind.clone().unwrap_or_default(),
                e.involved_object.name.clone().unwrap_or_default()
            ),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        })
        .collect()
}

/// What a read the user may not make says instead.
fn unreadable(e: &kube::Error, what: &str, who_may: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!("You cannot see {what} here: that needs {who_may}.")
        }
        other => {
            tracing::warn!(error = %other, what, "a read as the user failed");
            format!("The console could not read {what} now; reload to try again.")
        }
    }
}

/// The namespace's RoleBindings, ResourceQuotas and Events, listed as the user, concurrently.
async fn reads(
    client: &kube::Client,
    namespace: &str,
) -> (
    kube::Result<ObjectList<RoleBinding>>,
    kube::Result<ObjectList<ResourceQuota>>,
    kube::Result<ObjectList<Event>>,
) {
    let list = crate::workloads::bounded_list();
    let role_bindings = Api::<RoleBinding>::namespaced(client.clone(), namespace);
    let quotas_api = Api::<ResourceQuota>::namespaced(client.clone(), namespace);
    let events_api = Api::<Event>::namespaced(client.clone(), namespace);
    futures::join!(
        role_bindings.list(&list),
        quotas_api.list(&list),
        events_api.list(&list),
    )
}

/// The page of project `name` for `ctx`, with `refusal` shown above it.
///
/// One round trip where the cache knows the project: the GET of the project as the user, the
/// two SelfSubjectAccessReviews and the namespace's three lists (the namespace the console's
/// cache names for it) all start together. Nothing of the lists is shown unless that GET
/// succeeds and its namespace is the one listed; otherwise they are listed again for it.
pub(crate) async fn show(
    console: &Console,
    ctx: &Ctx,
    name: &str,
    refusal: Refusal,
) -> Response<Body> {
    let guess = console
        .projects
        .get(name)
        .map(|p| view::namespace(&p))
        .filter(|ns| !ns.is_empty());
    let get = Api::<Project>::all(ctx.client.clone());
    let reviews = futures::future::join(
        may_as(console, ctx, "patch", Some(name)),
        may_as(console, ctx, "create", None),
    );
    let (project, (can_edit, can_create), early) = match &guess {
        Some(namespace) => {
            let (project, reviews, lists) =
                futures::join!(get.get(name), reviews, reads(&ctx.client, namespace));
            (project, reviews, Some((namespace, lists)))
        }
        None => {
            let (project, reviews) = futures::join!(get.get(name), reviews);
            (project, reviews, None)
        }
    };
    let project = match project {
        Ok(project) => project,
        Err(kube::Error::Api(status)) if status.code == 403 && refusal.just_created => {
            // The operator binds the creator's role a moment after the Project exists.
            let mut answer = ctx.message(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Project {name} is being set up"),
                vec![
                    "Your role in it is granted in a few seconds, once the operator has made the project's roles: reload this page in a moment.".into(),
                ],
            );
            answer
                .headers_mut()
                .insert("refresh", axum::http::HeaderValue::from_static("2"));
            answer
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("2"));
            return answer;
        }
        Err(e) => {
            let (status, title, lines) = api_error(
                ctx,
                &e,
                &format!("see project {name}"),
                "a role in it (viewer, editor or owner) or the platform admin role",
            );
            return ctx.message(status, &title, lines);
        }
    };
    let namespace = view::namespace(&project);
    let (access, quota, recent) = match early {
        Some((listed, lists)) if *listed == namespace => lists,
        _ => reads(&ctx.client, &namespace).await,
    };
    let mut layout = ctx.layout.clone();
    layout.can_create = can_create;
    let role = view::role_of(&project, &ctx.caller.identity)
        .map_or("", view::role_name)
        .to_owned();
    let reconciled = project
        .status
        .as_ref()
        .is_some_and(|s| !s.conditions.is_empty());
    let setting_up = setting_up(refusal.just_created, reconciled, &role, can_edit);
    let page = ProjectPage {
        layout,
        name: name.to_owned(),
        role,
        error: refusal.error,
        error_hint: refusal.hint,
        conditions: project
            .status
            .as_ref()
            .map(|s| {
                s.conditions
                    .iter()
                    .map(|c| Cond {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        members: members(&project),
        can_edit,
        setting_up,
        roles: vec!["owner".into(), "editor".into(), "viewer".into()],
        form_name: refusal.form_name,
        access: access
            .map(|l| bindings(l.items))
            .map_err(|e| unreadable(&e, "who has access (the RoleBindings)", "the owner role")),
        quota: quota
            .map(|l| quotas(l.items))
            .map_err(|e| unreadable(&e, "the quota", "a role in the project")),
        external: external(&project),
        events: recent
            .map(|l| events(l.items))
            .map_err(|e| unreadable(&e, "the events", "a role in the project")),
        namespace,
    };
    let mut answer = render(refusal.status.unwrap_or(StatusCode::OK), &page);
    if setting_up {
        answer
            .headers_mut()
            .insert("refresh", axum::http::HeaderValue::from_static("2"));
    }
    answer
}

/// `GET /projects/<name>`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    request: Request,
) -> Response<Body> {
    let ctx = match context(&console, request.method(), request.uri(), request.headers()).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    if crate::projects::new::dns_label(&name).is_err() {
        return ctx.message(
            StatusCode::NOT_FOUND,
            "Not found",
            vec!["There is no project of that name.".into()],
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let refusal = Refusal {
        just_created: just_created(request.uri().query(), now),
        ..Refusal::default()
    };
    show(&console, &ctx, &name, refusal).await
}

#[cfg(test)]
mod setting_up_tests {
    use super::{just_created, setting_up};

    #[test]
    fn a_new_project_reloads_until_reconciled_and_its_owner_may_change_it() {
        assert!(setting_up(true, false, "owner", false), "not reconciled");
        assert!(setting_up(true, false, "owner", true), "not reconciled");
        assert!(
            setting_up(true, true, "owner", false),
            "reconciled, but the owner's role is not bound yet"
        );
        assert!(!setting_up(true, true, "owner", true), "set up");
        assert!(
            !setting_up(true, true, "editor", false),
            "an editor may not change the project: nothing to wait for"
        );
        assert!(
            !setting_up(false, false, "owner", false),
            "outside the creation window the page never reloads"
        );
    }

    #[test]
    fn only_a_recent_creation_time_counts() {
        assert!(just_created(Some("created=1000"), 1000));
        assert!(just_created(Some("x=1&created=990"), 1050));
        assert!(
            !just_created(Some("created=900"), 1000),
            "older than a minute"
        );
        assert!(!just_created(Some("created=2000"), 1000), "in the future");
        assert!(!just_created(Some("created=abc"), 1000));
        assert!(!just_created(Some("created"), 1000));
        assert!(!just_created(None, 1000));
    }
}
