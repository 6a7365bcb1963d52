//! `POST /projects/<name>/members`: add a member, remove one, or change one's role, written as
//! the user with a JSON merge patch of `spec.owners` and `spec.members` carrying the
//! resourceVersion read (a concurrent change is a 409, not a lost update). The API server's RBAC
//! (only owners may `patch` their Project) and Berth's admission policies decide; their
//! messages are shown as they come.
//!
//! Order of checks, nothing written before the last: authenticated (401 / login), same site and
//! the session's CSRF token (403), the form (400: unknown action, kind or role, a bad name, a
//! body over [`MAX_BODY`]), the Project read as the user (403 / 404), the patch as the user.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use berth_api::Project;
use berth_api::project::{Member, MemberKind, Role};
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;

use crate::app::{Console, redirect};
use crate::projects::page::{Refusal, show};
use crate::projects::{api_error, context, new::dns_label};

/// The largest form body read.
pub const MAX_BODY: usize = 16 * 1024;
/// The longest member name (the CRD's limit).
pub const MAX_NAME: usize = 253;

#[derive(Deserialize, Default)]
pub struct MemberForm {
    #[serde(default)]
    pub csrf: Option<String>,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub role: String,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add(Member),
    Remove(MemberKind, String),
    SetRole(MemberKind, String, Role),
}

pub fn kind(text: &str) -> Result<MemberKind, String> {
    match text {
        "User" => Ok(MemberKind::User),
        "Group" => Ok(MemberKind::Group),
        "ServiceAccount" => Ok(MemberKind::ServiceAccount),
        other => Err(format!(
            "{other:?} is not a member kind; use User, Group or ServiceAccount"
        )),
    }
}

pub fn role(text: &str) -> Result<Role, String> {
    match text {
        "owner" => Ok(Role::Owner),
        "editor" => Ok(Role::Editor),
        "viewer" => Ok(Role::Viewer),
        other => Err(format!(
            "{other:?} is not a role; use owner, editor or viewer"
        )),
    }
}

/// A member's name: 1 to [`MAX_NAME`] characters, no spaces or control characters.
pub fn member_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("the member's name is empty".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a member's name has at most {MAX_NAME} characters"));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a member's name has no spaces or control characters".into());
    }
    Ok(name.to_owned())
}

/// The change a form asks for, or why it is not one.
pub fn parse(form: &MemberForm) -> Result<Change, String> {
    let kind = kind(&form.kind)?;
    let name = member_name(&form.name)?;
    match form.action.as_str() {
        "add" => Ok(Change::Add(Member {
            kind,
            name,
            role: role(&form.role)?,
        })),
        "remove" => Ok(Change::Remove(kind, name)),
        "role" => Ok(Change::SetRole(kind, name, role(&form.role)?)),
        other => Err(format!(
            "{other:?} is not an action; use add, remove or role"
        )),
    }
}

fn same(kind: MemberKind, a: &str, b: &str) -> bool {
    // Berth matches User names that are e-mail addresses without regard to case.
    if kind == MemberKind::User {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// `(owners, members)` after `change`, or why it cannot be made.
pub fn apply(
    owners: &[String],
    members: &[Member],
    change: &Change,
) -> Result<(Vec<String>, Vec<Member>), String> {
    let mut owners = owners.to_vec();
    let mut members = members.to_vec();
    let listed = |owners: &[String], members: &[Member], kind: MemberKind, name: &str| {
        (kind == MemberKind::User && owners.iter().any(|o| same(kind, o, name)))
            || members
                .iter()
                .any(|m| m.kind == kind && same(kind, &m.name, name))
    };
    match change {
        Change::Add(member) => {
            if listed(&owners, &members, member.kind, &member.name) {
                return Err(format!(
                    "{} is already a member; change their role instead",
                    member.name
                ));
            }
            members.push(member.clone());
        }
        Change::Remove(kind, name) => {
            if !listed(&owners, &members, *kind, name) {
                return Err(format!("{name} is not a member"));
            }
            if *kind == MemberKind::User {
                owners.retain(|o| !same(*kind, o, name));
            }
            members.retain(|m| !(m.kind == *kind && same(*kind, &m.name, name)));
        }
        Change::SetRole(kind, name, role) => {
            if !listed(&owners, &members, *kind, name) {
                return Err(format!("{name} is not a member"));
            }
            let was_owner_entry =
                *kind == MemberKind::User && owners.iter().any(|o| same(*kind, o, name));
            if was_owner_entry && *role == Role::Owner {
                return Ok((owners, members));
            }
            if was_owner_entry {
                owners.retain(|o| !same(*kind, o, name));
                members.retain(|m| !(m.kind == *kind && same(*kind, &m.name, name)));
                members.push(Member {
                    kind: *kind,
                    name: name.clone(),
                    role: *role,
                });
            } else {
                for m in members
                    .iter_mut()
                    .filter(|m| m.kind == *kind && same(*kind, &m.name, name))
                {
                    m.role = *role;
                }
            }
        }
    }
    Ok((owners, members))
}

/// `POST /projects/<name>/members`.
pub async fn change(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    request: Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let ctx = match context(&console, &parts.method, &parts.uri, &parts.headers).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ctx.message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            vec![format!("a member form has at most {MAX_BODY} bytes")],
        );
    };
    let form: MemberForm = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    if let Some(answer) = ctx.refuse_post(&console, &parts.headers, form.csrf.as_deref()) {
        return answer;
    }
    if dns_label(&name).is_err() {
        return ctx.message(
            StatusCode::NOT_FOUND,
            "Not found",
            vec!["There is no project of that name.".into()],
        );
    }
    let change = match parse(&form) {
        Ok(change) => change,
        Err(why) => {
            return ctx.message(StatusCode::BAD_REQUEST, "Not a member change", vec![why]);
        }
    };
    let projects = Api::<Project>::all(ctx.client.clone());
    let user = ctx.caller.identity.username.clone();
    // The operator writes the Project's status, which moves its resourceVersion: a conflict is
    // read again and the same change made on the fresh members, a few times.
    let mut attempt = 0;
    let failure = loop {
        attempt += 1;
        let project = match projects.get(&name).await {
            Ok(project) => project,
            Err(e) => {
                let (status, title, lines) = api_error(
                    &ctx,
                    &e,
                    &format!("change the members of project {name}"),
                    "the owner role of that project",
                );
                return ctx.message(status, &title, lines);
            }
        };
        let (owners, members) = match apply(&project.spec.owners, &project.spec.members, &change) {
            Ok(next) => next,
            Err(why) => {
                return show(
                    &console,
                    &ctx,
                    &name,
                    Refusal {
                        status: Some(StatusCode::BAD_REQUEST),
                        error: why,
                        hint: String::new(),
                        form_name: form.name.clone(),
                        just_created: false,
                    },
                )
                .await;
            }
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": project.metadata.resource_version},
            "spec": {"owners": owners, "members": members},
        });
        match projects
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(user = %user, project = %name, change = ?change, "members changed");
                return redirect_after_post(&format!("/projects/{name}"));
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => break e,
        }
    };
    tracing::info!(user = %user, project = %name, change = ?change, error = %failure, "member change refused");
    let (status, title, lines) = api_error(
        &ctx,
        &failure,
        &format!("change the members of project {name}"),
        "the owner role of that project",
    );
    show(
        &console,
        &ctx,
        &name,
        Refusal {
            status: Some(status),
            error: format!("{title}. {}", lines.join(" ")),
            hint: String::new(),
            form_name: form.name.clone(),
            just_created: false,
        },
    )
    .await
}

/// How many times a change is tried when the Project moved between its read and its patch.
pub const CONFLICT_ATTEMPTS: usize = 4;

/// 303 See Other to `to` (the POST-redirect-GET pattern; htmx follows it too).
pub(crate) fn redirect_after_post(to: &str) -> Response<Body> {
    let mut response = redirect(to);
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: MemberKind, name: &str, role: Role) -> Member {
        Member {
            kind,
            name: name.into(),
            role,
        }
    }

    #[test]
    fn forms_are_checked() {
        let form = |action: &str, kind: &str, name: &str, role: &str| MemberForm {
            csrf: None,
            action: action.into(),
            kind: kind.into(),
            name: name.into(),
            role: role.into(),
        };
        assert!(parse(&form("add", "User", "a@example.com", "editor")).is_ok());
        assert!(parse(&form("add", "Robot", "a", "editor")).is_err());
        assert!(parse(&form("add", "User", "a", "admin")).is_err());
        assert!(parse(&form("add", "User", "", "viewer")).is_err());
        assert!(parse(&form("add", "User", "a b", "viewer")).is_err());
        assert!(parse(&form("add", "User", &"a".repeat(254), "viewer")).is_err());
        assert!(parse(&form("drop", "User", "a", "viewer")).is_err());
        assert!(parse(&form("remove", "Group", "ml", "")).is_ok());
    }

    #[test]
    fn changes_keep_one_entry_per_member() {
        let owners = vec!["Ada@example.com".to_owned()];
        let members = vec![m(MemberKind::Group, "ml", Role::Viewer)];
        let add = Change::Add(m(MemberKind::User, "ada@example.com", Role::Viewer));
        assert!(apply(&owners, &members, &add).is_err(), "already the owner");
        let (o, ms) = apply(
            &owners,
            &members,
            &Change::SetRole(MemberKind::User, "ada@example.com".into(), Role::Editor),
        )
        .unwrap();
        assert!(o.is_empty());
        assert!(ms.contains(&m(MemberKind::User, "ada@example.com", Role::Editor)));
        let (_, ms) = apply(
            &owners,
            &members,
            &Change::SetRole(MemberKind::Group, "ml".into(), Role::Owner),
        )
        .unwrap();
        assert_eq!(ms, vec![m(MemberKind::Group, "ml", Role::Owner)]);
        let (o, ms) = apply(
            &owners,
            &members,
            &Change::Remove(MemberKind::Group, "ml".into()),
        )
        .unwrap();
        assert_eq!((o.len(), ms.len()), (1, 0));
        assert!(
            apply(
                &owners,
                &members,
                &Change::Remove(MemberKind::Group, "x".into())
            )
            .is_err()
        );
    }
}
