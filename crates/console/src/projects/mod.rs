//! The Project pages (docs/console.md, "Pages"): *My projects* (`/`), *Project*
//! (`/projects/<name>`, its member forms at `/projects/<name>/members`) and *New project*
//! (`/projects/new`). Every Kubernetes read and write here is the user's (crate::acting): the
//! API server's RBAC and Berth's admission policies decide, and their messages are shown as
//! they come. The console's own ServiceAccount only watches Projects ([`cache`]) to find a
//! user's candidate projects, each then read as the user.

pub mod cache;
pub mod members;
pub mod my;
pub mod new;
pub mod page;
pub mod view;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::acting::Caller;
use crate::app::{By, Console, authenticate};
use crate::csrf;
use crate::layout::{Layout, message};

/// A page request: who, acting as them, and the layout's values.
pub(crate) struct Ctx {
    pub caller: Caller,
    pub by: By,
    pub csrf: String,
    /// A client whose every request is the caller's.
    pub client: kube::Client,
    pub layout: Layout,
}

/// Authenticates the request and makes the client that acts as the caller; or the answer
/// (login redirect, 401, 403 for a caller the console will not act for).
pub(crate) async fn context(
    console: &Arc<Console>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Ctx, Response<Body>> {
    let found = authenticate(console, method, uri, headers).await?;
    let layout = Layout {
        user: found.caller.identity.username.clone(),
        groups: found.caller.identity.groups.clone(),
        can_create: false,
        csrf: found.csrf.clone().unwrap_or_default(),
    };
    let client = match console.acting.client(&found.caller) {
        Ok(client) => client,
        Err(why) => {
            tracing::warn!(user = %found.caller.identity.username, groups = ?found.caller.identity.groups, reason = %why.0, "refused: the console does not act for this caller");
            return Err(message(
                StatusCode::FORBIDDEN,
                &layout,
                "You cannot do this here",
                vec![why.0],
            ));
        }
    };
    Ok(Ctx {
        csrf: found.csrf.unwrap_or_default(),
        caller: found.caller,
        by: found.by,
        client,
        layout,
    })
}

impl Ctx {
    /// The 403 for a POST from another site, or a browser session's POST without its CSRF
    /// token (nothing is then read or written); `None` when the POST may go on.
    pub fn refuse_post(
        &self,
        console: &Console,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Option<Response<Body>> {
        let checked = csrf::same_site(headers, console.origin()).and_then(|()| match self.by {
            By::Session => csrf::token_matches(&self.csrf, form_token, headers),
            By::Token => Ok(()),
        });
        checked.err().map(|csrf::Refused(why)| {
            tracing::warn!(user = %self.caller.identity.username, reason = why, "refused: a POST without this session's CSRF token or from another site");
            message(
                StatusCode::FORBIDDEN,
                &self.layout,
                "Refused: cross-site request",
                vec![why.to_owned()],
            )
        })
    }

    /// A message page with this caller's layout.
    pub fn message(&self, status: StatusCode, title: &str, lines: Vec<String>) -> Response<Body> {
        message(status, &self.layout, title, lines)
    }
}

/// Whether the caller may `verb` Projects (`name`: that one), by a SelfSubjectAccessReview as
/// the caller. `false` when the API server does not answer.
pub(crate) async fn may(client: &kube::Client, verb: &str, name: Option<&str>) -> bool {
    review(client, verb, name).await.unwrap_or(false)
}

/// The SelfSubjectAccessReview of [`may`]; `Err` when the API server does not answer.
async fn review(client: &kube::Client, verb: &str, name: Option<&str>) -> Result<bool, ()> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("berth.dev".into()),
                resource: Some("projects".into()),
                verb: Some(verb.into()),
                name: name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(answer) => Ok(answer.status.is_some_and(|s| s.allowed)),
        Err(e) => {
            tracing::warn!(error = %e, verb, "a SelfSubjectAccessReview failed");
            Err(())
        }
    }
}

/// [`may`] for the caller of `ctx`, its answer remembered for
/// [`cache::ACCESS_TTL`] (and forgotten at once when the watch sees project `name` change), as
/// the notebook proxy remembers its SubjectAccessReviews ([`crate::kube_auth::REVIEW_TTL`]). A
/// failed review (`false`) is not remembered.
pub(crate) async fn may_as(console: &Console, ctx: &Ctx, verb: &str, name: Option<&str>) -> bool {
    let who = &ctx.caller.identity;
    if let Some(known) = console.projects.known_review(who, verb, name) {
        return known;
    }
    match review(&ctx.client, verb, name).await {
        Ok(allowed) => {
            // Only a yes is remembered: a no turns into a yes when the operator binds a role
            // (a new project's owner, a member just added), and neither the Project nor
            // anything else the cache watches changes then, so a remembered no would hide
            // the forms the caller now may use. A yes taken away shows a form for at most the
            // memory's seconds; the API server refuses its action anyway.
            if allowed {
                console.projects.remember_review(who, verb, name, allowed);
            }
            allowed
        }
        Err(()) => false,
    }
}

/// How a refusal or failure of the API server is shown: 403 as "you cannot do this here" with
/// the role that would allow it, 404 as not found, an admission or validation refusal with the
/// API server's own message, anything else as "try again" (never a stack trace).
pub(crate) fn api_error(
    ctx: &Ctx,
    error: &kube::Error,
    doing: &str,
    role_needed: &str,
) -> (StatusCode, String, Vec<String>) {
    match error {
        kube::Error::Api(status) if status.code == 403 => (
            StatusCode::FORBIDDEN,
            "You cannot do this here".to_owned(),
            vec![
                format!(
                    "You are {} and may not {doing}: that needs {role_needed}.",
                    ctx.caller.identity.username
                ),
                format!("The API server said: {}", status.message),
            ],
        ),
        kube::Error::Api(status) if status.code == 404 => (
            StatusCode::NOT_FOUND,
            "Not found".to_owned(),
            vec![status.message.clone()],
        ),
        kube::Error::Api(status) if status.code == 409 && status.reason != "AlreadyExists" => (
            StatusCode::CONFLICT,
            "Changed meanwhile".to_owned(),
            vec![
                "Someone changed this project at the same time; reload the page and try again."
                    .to_owned(),
                format!("The API server said: {}", status.message),
            ],
        ),
        kube::Error::Api(status) if (400..500).contains(&status.code) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Refused".to_owned(),
            vec![status.message.clone()],
        ),
        other => {
            tracing::warn!(error = %other, doing, "the API server did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again".to_owned(),
                vec![format!(
                    "The console could not {doing} now (the API server did not answer); try again."
                )],
            )
        }
    }
}
