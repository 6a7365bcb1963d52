//! The page framework: askama templates (crates/console/templates/) that extend
//! `templates/base.html` (blocks `title` and `content`; the nav: My projects, New project when a
//! SelfSubjectAccessReview allows `create projects`, who you are, Log out), rendered into answers
//! with the console's headers: `Content-Security-Policy` allowing only the console's own scripts
//! and styles (no inline script, no `eval`), `no-store`, `nosniff`, no framing.

use askama::Template;
use axum::body::Body;
use axum::http::{Response, StatusCode, header};

/// What every page's layout shows. Other pages' templates extend `base.html` and carry one of
/// these in a field named `layout`.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Who is logged in (empty: nobody).
    pub user: String,
    pub groups: Vec<String>,
    /// Whether the "New project" link is shown (a SelfSubjectAccessReview allowed it).
    pub can_create: bool,
    /// The session's CSRF token for forms (empty for bearer-token callers, who need none).
    pub csrf: String,
}

/// The pages' Content-Security-Policy: scripts, styles and fetches from the console only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A message page (errors, refusals).
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub layout: Layout,
    pub title: String,
    pub lines: Vec<String>,
}

/// `template` rendered with `status` and the console's headers; a template that fails to
/// render (it does not, for these types) is a plain 500 without details.
pub fn render(status: StatusCode, template: &impl Template) -> Response<Body> {
    let (status, body) = match template.render() {
        Ok(body) => (status, body),
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown".to_owned(),
            )
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    response
}

/// A message page.
pub fn message(
    status: StatusCode,
    layout: &Layout,
    title: &str,
    lines: Vec<String>,
) -> Response<Body> {
    render(
        status,
        &Message {
            layout: layout.clone(),
            title: title.to_owned(),
            lines,
        },
    )
}

/// `GET /assets/console-1.css`.
pub async fn css() -> Response<Body> {
    let mut response = Response::new(Body::from(include_str!("../assets/console.css")));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_values_and_load_only_the_consoles_script() {
        let page = Message {
            layout: Layout {
                user: "<b>ada</b>".into(),
                ..Default::default()
            },
            title: "t".into(),
            lines: vec!["<script>alert(1)</script>".into()],
        }
        .render()
        .unwrap();
        assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(page.contains("&#60;b&#62;ada&#60;/b&#62;"));
        assert!(!page.contains("<script>alert") && !page.contains("<b>ada"));
        assert!(page.contains(r#"<script src="/assets/htmx-4.0.1.min.js" defer></script>"#));
        assert_eq!(page.matches("<script").count(), 1, "no inline script");
        assert!(!page.contains("New project"), "not allowed: not linked");
    }
}
