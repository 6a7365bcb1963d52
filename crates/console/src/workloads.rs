//! What the *Notebooks* and *Models* pages share (crate::notebooks_pages, crate::models_pages):
//! the project read as the user (its namespace and the labels Berth gives that namespace),
//! reading a form body within bounds, a form's values kept with its field errors, and
//! SelfSubjectAccessReviews on a namespaced kind (whether to draw a button; the API server
//! decides the request itself).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use berth_api::Project;
use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, PROJECT};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use crate::projects::{Ctx, api_error, new::dns_label, view};
use crate::views::form::FieldError;

/// The most objects one page reads of a kind in one list: a tenant who made 50,000 RoleBindings or
/// Notebooks in their own namespace must not make the console buffer them all (one replica, its
/// sessions in memory). Past it, a page shows the first [`LIST_LIMIT`] the API server returns.
pub const LIST_LIMIT: u32 = 500;

/// `ListParams` bounded by [`LIST_LIMIT`].
pub fn bounded_list() -> kube::api::ListParams {
    kube::api::ListParams::default().limit(LIST_LIMIT)
}

/// The largest form body read (a spawner with 16 volumes and 64 variables fits in a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The role that may change notebooks and models of a project.
pub const EDITOR: &str = "the editor or owner role of that project";

/// A project as the user may read it.
pub struct ProjectRef {
    pub name: String,
    pub namespace: String,
    /// The labels Berth gives its namespace (for the templates' `projects` selectors): the
    /// Project's `spec.namespaceLabels`, `berth.dev/project`, `kubernetes.io/metadata.name` and
    /// `app.kubernetes.io/managed-by`. Members cannot read the Namespace itself.
    pub labels: BTreeMap<String, String>,
}

/// The 404 for a project name that is no DNS label (no API call).
pub fn no_such_project(ctx: &Ctx) -> Response<Body> {
    ctx.message(
        StatusCode::NOT_FOUND,
        "Not found",
        vec!["There is no project of that name.".into()],
    )
}

/// Project `name` read as the user, or the page for a refusal (403 "you cannot do this here",
/// 404, 503).
pub async fn project(ctx: &Ctx, name: &str) -> Result<ProjectRef, Response<Body>> {
    if dns_label(name).is_err() {
        return Err(no_such_project(ctx));
    }
    match Api::<Project>::all(ctx.client.clone()).get(name).await {
        Ok(project) => {
            let namespace = view::namespace(&project);
            let mut labels = project.spec.namespace_labels.clone();
            labels.insert(PROJECT.into(), name.to_owned());
            labels.insert("kubernetes.io/metadata.name".into(), namespace.clone());
            labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
            Ok(ProjectRef {
                name: name.to_owned(),
                namespace,
                labels,
            })
        }
        Err(e) => {
            let (status, title, lines) = api_error(
                ctx,
                &e,
                &format!("see project {name}"),
                "a role in it (viewer, editor or owner) or the platform admin role",
            );
            Err(ctx.message(status, &title, lines))
        }
    }
}

/// The form body's fields in order, or the 413 / 400 answer.
pub async fn read_form(ctx: &Ctx, body: Body) -> Result<Vec<(String, String)>, Response<Body>> {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Err(ctx.message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            vec![format!("a form has at most {MAX_BODY} bytes")],
        ));
    };
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).map_err(|_| {
        ctx.message(
            StatusCode::BAD_REQUEST,
            "Not a form",
            vec!["the body is not an urlencoded form".into()],
        )
    })
}

/// A workload form's POST up to its fields: the caller authenticated and acted for
/// ([`crate::projects::context`]), the body read within [`MAX_BODY`] as an urlencoded form, and
/// the session's CSRF token and the same-site checks passed (`Ctx::refuse_post`); or the answer
/// (login redirect or 401, 413, 400, 403).
pub async fn posted_form(
    console: &std::sync::Arc<crate::app::Console>,
    request: axum::extract::Request,
) -> Result<(Ctx, Vec<(String, String)>), Response<Body>> {
    let (parts, body) = request.into_parts();
    let ctx = crate::projects::context(console, &parts.method, &parts.uri, &parts.headers).await?;
    let fields = read_form(&ctx, body).await?;
    if let Some(answer) = ctx.refuse_post(console, &parts.headers, field(&fields, "csrf")) {
        return Err(answer);
    }
    Ok((ctx, fields))
}

/// The first value of `name` in `fields`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A submitted form's values (kept after a refusal) and its field errors.
#[derive(Default, Clone, Debug)]
pub struct Kept {
    pub fields: Vec<(String, String)>,
    pub errors: Vec<FieldError>,
}

impl Kept {
    /// The submitted value of `name` (empty when none).
    pub fn value(&self, name: &str) -> &str {
        field(&self.fields, name).unwrap_or("")
    }

    /// Whether anything was submitted.
    pub fn submitted(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The messages for `name`, joined (empty when none).
    pub fn error(&self, name: &str) -> String {
        self.errors
            .iter()
            .filter(|e| e.field == name)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Whether the caller may `verb` `resource` (group berth.dev; `notebooks/connect` names a
/// subresource) in `namespace`, by a
/// SelfSubjectAccessReview as the caller; `false` when the API server does not answer. Only
/// decides whether a button is drawn.
pub async fn may_in(client: &kube::Client, verb: &str, resource: &str, namespace: &str) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("berth.dev".into()),
                resource: Some(resource.into()),
                subresource,
                verb: Some(verb.into()),
                namespace: Some(namespace.into()),
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
        Ok(answer) => answer.status.is_some_and(|s| s.allowed),
        Err(e) => {
            tracing::warn!(error = %e, verb, resource, "a SelfSubjectAccessReview failed");
            false
        }
    }
}

/// An API server's refusal as one line for the top of a page, with its status.
pub fn refusal(ctx: &Ctx, error: &kube::Error, doing: &str) -> (StatusCode, String) {
    if let kube::Error::Api(status) = error
        && status.code == 409
        && status.reason != "AlreadyExists"
    {
        return (
            StatusCode::CONFLICT,
            format!(
                "Changed meanwhile: it changed while the console tried to {doing}; reload the page and try again. The API server said: {}",
                status.message
            ),
        );
    }
    let (status, title, lines) = api_error(ctx, error, doing, EDITOR);
    (status, format!("{title}. {}", lines.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_values_and_errors_by_field() {
        let kept = Kept {
            fields: vec![("name".into(), "<lab>".into()), ("name".into(), "x".into())],
            errors: vec![
                FieldError::new("name", "a"),
                FieldError::new("name", "b"),
                FieldError::new("form", "c"),
            ],
        };
        assert_eq!(kept.value("name"), "<lab>");
        assert_eq!(kept.value("bundle"), "");
        assert_eq!(kept.error("name"), "a; b");
        assert_eq!(kept.error("cpu"), "");
        assert!(kept.submitted() && !Kept::default().submitted());
    }
}
