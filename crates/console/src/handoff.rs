//! The login hand-off of notebook hosts (docs/console.md, "An origin per notebook"). A notebook
//! host (`<label>.<--notebook-domain>`) never sees the console's session cookie (host-only), so:
//!
//! 1. a browser there without a valid notebook cookie is sent ([`to_console`]) to the console's
//!    `/notebook-handoff?namespace&name&state&next`, with a fresh random `state` in a host-only
//!    cookie of the notebook host;
//! 2. [`handoff`], on the console's origin, authenticates the console session (none: the login,
//!    then back), asks the API server whether the user may `create notebooks/connect` on that
//!    notebook, and makes a ticket (256 random bits, single use, [`TICKET_TTL`], bound to the
//!    console session, the notebook, the `state` and `next`), then sends the browser to
//!    `<notebook origin>/notebook/<ns>/<name>/_berth/handoff?ticket=...`;
//! 3. [`consume`], on the notebook host, takes the ticket (once) for that notebook, with the
//!    notebook host's `state` cookie (so a ticket made for one browser, such as an attacker's,
//!    cannot log another browser into the attacker's session), checks the console session is
//!    alive, and sets the notebook host's own cookie: a random notebook-session id bound to the
//!    console session and the notebook. Every later request maps it to the console session (whose
//!    logout or expiry ends it), and is checked by a SubjectAccessReview as today.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Response, StatusCode, Uri, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::app::{Console, busy, forbidden, fresh, redirect, unavailable, with_cookie};
use crate::kube_auth::Refusal;
use crate::notebook_origin::{
    NotebookDomain, NotebookSession, STATE_TTL, TICKET_TTL, Ticket, notebook_cookie, state_cookie,
};
use crate::pages::{escape, html, page};
use crate::path::{self, NotebookPath};
use crate::session;

/// The path under a notebook's prefix where its host takes a ticket.
pub const CONSUME: &str = "_berth/handoff";

/// The longest `next` (percent-encoded) carried to the hand-off: the hand-off's own URL must fit
/// the login's `next` ([`path::MAX_NEXT`]) when the user has to log in first. A longer one
/// becomes the notebook's prefix.
const MAX_ENCODED_NEXT: usize = 280;

fn no_referrer(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Whether `next` is a path the hand-off may send the browser back to for the notebook at `at`:
/// a same-origin path under its prefix, itself a valid notebook path, not the ticket's path.
fn next_ok(next: &str, at: &NotebookPath) -> bool {
    let prefix = at.prefix();
    let path_only = next.split_once('?').map_or(next, |(p, _)| p);
    path::same_origin_path(next).is_some()
        && next.starts_with(&prefix)
        && !next[prefix.len()..].starts_with("_berth/")
        && path::parse(path_only).is_ok_and(|p| {
            p == NotebookPath {
                bare: false,
                ..at.clone()
            }
        })
}

/// Step 1: a browser on the notebook host without a valid notebook cookie goes to the console's
/// hand-off, with a new `state` in the notebook host's cookie.
pub(crate) fn to_console(
    console: &Console,
    domain: &NotebookDomain,
    at: &NotebookPath,
    uri: &Uri,
) -> Response<Body> {
    let Ok(state) = session::random_id() else {
        return unavailable("no random numbers from the operating system");
    };
    let wanted = uri.path_and_query().map_or("", |pq| pq.as_str());
    let next = if next_ok(wanted, at) && enc(wanted).len() <= MAX_ENCODED_NEXT {
        enc(wanted)
    } else {
        enc(&at.prefix())
    };
    let to = format!(
        "{}/notebook-handoff?namespace={}&name={}&state={state}&next={next}",
        console.origin(),
        at.namespace,
        at.name,
    );
    with_cookie(
        no_referrer(redirect(&to)),
        &session::set_cookie(
            state_cookie(domain.secure()),
            &state,
            STATE_TTL,
            domain.secure(),
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct HandoffQuery {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// Whether `s` looks like a [`session::random_id`]: 43 base64url characters.
fn is_random_id(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Step 2, `GET /notebook-handoff` on the console's origin.
pub(crate) async fn handoff(
    State(console): State<Arc<Console>>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HandoffQuery>,
) -> Response<Body> {
    let Some(domain) = console.notebook_domain() else {
        return page(
            StatusCode::NOT_FOUND,
            "No notebook domain",
            "this console serves notebooks on its own origin (it has no --notebook-domain)",
        );
    };
    let (Some(namespace), Some(name), Some(state)) = (q.namespace, q.name, q.state) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not a hand-off",
            "namespace, name and state are needed",
        );
    };
    if !path::is_dns_label(&namespace) || !path::is_dns_label(&name) || !is_random_id(&state) {
        return page(
            StatusCode::BAD_REQUEST,
            "Not a hand-off",
            "the namespace, the notebook's name or the state is not valid",
        );
    }
    let at = NotebookPath {
        namespace,
        name,
        bare: false,
    };
    let next = q
        .next
        .filter(|n| next_ok(n, &at))
        .unwrap_or_else(|| at.prefix());
    if session::cookie_count(&headers, session::session_cookie(console.secure)) > 1 {
        return page(
            StatusCode::BAD_REQUEST,
            "Two console sessions",
            "this request carries two berth_console_session cookies; log out (/logout) and log in again",
        );
    }
    let mut found = None;
    if let Some(id) = session::cookie(&headers, session::session_cookie(console.secure))
        && let Some(kept) = console.store().session(id)
        && let Some(kept) = fresh(&console, id, kept).await
    {
        found = Some((id.to_owned(), kept));
    }
    let Some((session_id, session)) = found else {
        if console.oidc.is_none() {
            return page(
                StatusCode::UNAUTHORIZED,
                "Not logged in",
                "this console has no browser login; send a bearer token to the notebook instead",
            );
        }
        let back = uri.path_and_query().map_or("/", |pq| pq.as_str());
        return redirect(&format!("/login?next={}", enc(back)));
    };
    let who = session.identity.clone();
    match console
        .reviewer()
        .may_open(&who, &at.namespace, &at.name)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(user = %who.username, namespace = %at.namespace, notebook = %at.name, "refused: hand-off to a notebook the user may not connect to");
            return forbidden(&who, &at);
        }
        Err(Refusal::Unavailable(why) | Refusal::Unauthenticated(why)) => return unavailable(&why),
    }
    let Some(ticket) = console.tickets().issue(Ticket {
        session: session_id,
        namespace: at.namespace.clone(),
        name: at.name.clone(),
        state,
        next,
        until: Instant::now() + TICKET_TTL,
    }) else {
        return busy("too many notebook hand-offs are in progress; try again in a minute");
    };
    tracing::info!(user = %who.username, namespace = %at.namespace, notebook = %at.name, "hand-off ticket made");
    no_referrer(redirect(&format!(
        "{}{}{CONSUME}?ticket={ticket}",
        domain.origin(&at.namespace, &at.name),
        at.prefix()
    )))
}

#[derive(Deserialize)]
struct ConsumeQuery {
    #[serde(default)]
    ticket: Option<String>,
}

fn bad_ticket(at: &NotebookPath, why: &str) -> Response<Body> {
    html(
        StatusCode::FORBIDDEN,
        "This notebook link has expired",
        &format!(
            "<p>The sign-in link of this notebook is not valid ({}). Links are single-use and \
             last 30 seconds.</p>\n<p><a href=\"{}\">Open the notebook again</a></p>",
            escape(why),
            escape(&at.prefix()),
        ),
    )
}

/// Step 3, `GET /notebook/<ns>/<name>/_berth/handoff?ticket=...` on the notebook's host.
pub(crate) fn consume(
    console: &Console,
    domain: &NotebookDomain,
    at: &NotebookPath,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response<Body> {
    let secure = domain.secure();
    let clear_state = session::set_cookie(state_cookie(secure), "", Duration::ZERO, secure);
    let q: ConsumeQuery = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .unwrap_or(ConsumeQuery { ticket: None });
    let state = if session::cookie_count(headers, state_cookie(secure)) == 1 {
        session::cookie(headers, state_cookie(secure))
    } else {
        None
    };
    let taken = match q.ticket.as_deref() {
        Some(id) => console.tickets().take(id, &at.namespace, &at.name, state),
        None => Err(crate::notebook_origin::BadTicket("no ticket")),
    };
    let ticket = match taken {
        Ok(ticket) => ticket,
        Err(why) => {
            tracing::warn!(namespace = %at.namespace, notebook = %at.name, reason = why.0, "refused: hand-off ticket");
            return with_cookie(no_referrer(bad_ticket(at, why.0)), &clear_state);
        }
    };
    let Some(session) = console.store().session(&ticket.session) else {
        tracing::info!(namespace = %at.namespace, notebook = %at.name, "refused: hand-off ticket of an ended session");
        return with_cookie(
            no_referrer(bad_ticket(at, "your console session has ended")),
            &clear_state,
        );
    };
    let now = Instant::now();
    let until = session.until.unwrap_or(now);
    let Some(id) = console.notebook_sessions().start(NotebookSession {
        session: ticket.session,
        namespace: at.namespace.clone(),
        name: at.name.clone(),
        until,
    }) else {
        return busy("the console holds too many notebook sessions; try again later");
    };
    tracing::info!(user = %session.identity.username, namespace = %at.namespace, notebook = %at.name, "notebook session started");
    let response = with_cookie(no_referrer(redirect(&ticket.next)), &clear_state);
    with_cookie(
        response,
        &session::set_cookie(
            notebook_cookie(secure),
            &id,
            until.saturating_duration_since(now),
            secure,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_under_the_notebooks_prefix() {
        let at = NotebookPath {
            namespace: "a".into(),
            name: "b".into(),
            bare: false,
        };
        for ok in [
            "/notebook/a/b/",
            "/notebook/a/b/lab?x=1",
            "/notebook/a/b/lab/tree/x.ipynb",
        ] {
            assert!(next_ok(ok, &at), "{ok}");
        }
        for bad in [
            "/notebook/a/bb/",
            "/notebook/a/b",
            "/notebook/a/c/lab",
            "/notebook/a/b/../c/",
            "/notebook/a/b/%2e%2e/c/",
            "//evil.example/notebook/a/b/",
            "https://evil.example/notebook/a/b/",
            "/notebook/a/b/_berth/handoff?ticket=x",
            "/",
        ] {
            assert!(!next_ok(bad, &at), "{bad}");
        }
    }
}
