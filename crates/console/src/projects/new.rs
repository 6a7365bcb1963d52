//! *New project* (`/projects/new`): shown (and linked) only when a SelfSubjectAccessReview as the
//! user allows `create projects`; the form follows the CRD's rules (the name a DNS label of at
//! most 63, owners defaulting to the user, members as `Kind name role` lines, quota), and the
//! Project is created as the user: the API server's RBAC and Berth's admission decide, and their
//! message is shown as it comes, with the form's values kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use berth_api::Project;
use berth_api::project::Member;
use kube::api::{Api, PostParams};
use serde::Deserialize;

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::members::{kind, member_name, redirect_after_post, role};
use crate::projects::{Ctx, api_error, context, may};

/// The largest form body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Members a form may list (the CRD allows more; a form of more is not a person typing).
pub const MAX_MEMBERS: usize = 256;
/// The longest quota value.
pub const MAX_QUANTITY: usize = 32;

/// The form's values, kept after a refusal.
#[derive(Deserialize, Default, Clone, Debug)]
pub struct NewForm {
    #[serde(default)]
    pub csrf: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub owners: String,
    #[serde(default)]
    pub members: String,
    #[serde(default)]
    pub cpu: String,
    #[serde(default)]
    pub memory: String,
    #[serde(default)]
    pub gpu: String,
}

#[derive(Template)]
#[template(path = "new_project.html")]
pub struct NewProject {
    pub layout: Layout,
    pub form: NewForm,
    pub error: String,
}

/// `name` is an RFC 1123 DNS label (lower-case letters, digits and `-`, at most 63, starting and
/// ending with a letter or digit), as Kubernetes checks a namespace's name.
pub fn dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid project name: use lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit"
        ))
    }
}

/// The Project the form describes, or what is wrong with it (said before any API call).
pub fn project(form: &NewForm, user: &str) -> Result<Project, String> {
    let name = form.name.trim();
    dns_label(name)?;
    let mut owners: Vec<String> = Vec::new();
    for owner in form
        .owners
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        owners.push(member_name(owner)?);
    }
    if owners.is_empty() {
        owners.push(user.to_owned());
    }
    let mut members: Vec<Member> = Vec::new();
    for (n, line) in form
        .members
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if n >= MAX_MEMBERS {
            return Err(format!("at most {MAX_MEMBERS} members in this form"));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [k, who, r] = words[..] else {
            return Err(format!(
                "member line {:?} is not `Kind name role` (e.g. `Group ml-team editor`)",
                line
            ));
        };
        members.push(Member {
            kind: kind(k)?,
            name: member_name(who)?,
            role: role(r)?,
        });
    }
    let mut hard = BTreeMap::new();
    for (key, value) in [
        ("cpu", &form.cpu),
        ("memory", &form.memory),
        ("nvidia.com/gpu", &form.gpu),
    ] {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if value.len() > MAX_QUANTITY {
            return Err(format!(
                "the {key} quota has at most {MAX_QUANTITY} characters"
            ));
        }
        hard.insert(key.to_owned(), value.to_owned());
    }
    let mut spec = serde_json::json!({"owners": owners, "members": members});
    if !hard.is_empty() {
        spec["resourceQuota"] = serde_json::json!({"hard": hard});
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Project",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .map_err(|e| format!("the form does not make a Project: {e}"))
}

fn not_allowed(ctx: &Ctx) -> Response<Body> {
    ctx.message(
        StatusCode::FORBIDDEN,
        "You cannot do this here",
        vec![format!(
            "You are {} and may not create projects: that needs the project creator role \
             (ClusterRole berth-project-creator) or the platform admin role. Ask a platform admin.",
            ctx.caller.identity.username
        )],
    )
}

fn form_page(ctx: &Ctx, status: StatusCode, form: NewForm, error: String) -> Response<Body> {
    let mut layout = ctx.layout.clone();
    layout.can_create = true;
    render(
        status,
        &NewProject {
            layout,
            form: NewForm { csrf: None, ..form },
            error,
        },
    )
}

/// `GET /projects/new`.
pub async fn form(State(console): State<Arc<Console>>, request: Request) -> Response<Body> {
    let ctx = match context(&console, request.method(), request.uri(), request.headers()).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    if !may(&ctx.client, "create", None).await {
        return not_allowed(&ctx);
    }
    let form = NewForm {
        owners: ctx.caller.identity.username.clone(),
        ..Default::default()
    };
    form_page(&ctx, StatusCode::OK, form, String::new())
}

/// `POST /projects/new`: creates the Project as the user.
pub async fn create(State(console): State<Arc<Console>>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let ctx = match context(&console, &parts.method, &parts.uri, &parts.headers).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ctx.message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            vec![format!("the new project form has at most {MAX_BODY} bytes")],
        );
    };
    let form: NewForm = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    if let Some(answer) = ctx.refuse_post(&console, &parts.headers, form.csrf.as_deref()) {
        return answer;
    }
    let project = match project(&form, &ctx.caller.identity.username) {
        Ok(project) => project,
        Err(why) => return form_page(&ctx, StatusCode::BAD_REQUEST, form, why),
    };
    let name = project.metadata.name.clone().unwrap_or_default();
    match Api::<Project>::all(ctx.client.clone())
        .create(&PostParams::default(), &project)
        .await
    {
        Ok(_) => {
            tracing::info!(user = %ctx.caller.identity.username, project = %name, "project created");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            redirect_after_post(&format!("/projects/{name}?created={now}"))
        }
        Err(e) => {
            tracing::info!(user = %ctx.caller.identity.username, project = %name, error = %e, "project creation refused");
            let (status, title, lines) = api_error(
                &ctx,
                &e,
                "create projects",
                "the project creator role (ClusterRole berth-project-creator) or the platform admin role",
            );
            form_page(&ctx, status, form, format!("{title}. {}", lines.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert!(dns_label("team-a").is_ok());
        for bad in ["", "Team", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_form_makes_a_project_owned_by_the_user_by_default() {
        let form = NewForm {
            name: "team-a".into(),
            members: "Group ml editor\nUser bob@example.com viewer\n".into(),
            cpu: "4".into(),
            ..Default::default()
        };
        let p = project(&form, "ada@example.com").unwrap();
        assert_eq!(p.spec.owners, vec!["ada@example.com"]);
        assert_eq!(p.spec.members.len(), 2);
        assert_eq!(p.spec.resource_quota.unwrap().hard["cpu"].0, "4");
        let bad = |f: NewForm| project(&f, "ada@example.com").is_err();
        assert!(bad(NewForm {
            name: "Bad".into(),
            ..Default::default()
        }));
        assert!(bad(NewForm {
            name: "a".into(),
            members: "Robot x viewer".into(),
            ..Default::default()
        }));
        assert!(bad(NewForm {
            name: "a".into(),
            members: "User x admin".into(),
            ..Default::default()
        }));
        assert!(bad(NewForm {
            name: "a".into(),
            members: "User x".into(),
            ..Default::default()
        }));
        assert!(bad(NewForm {
            name: "a".into(),
            cpu: "1".repeat(33),
            ..Default::default()
        }));
    }
}
