//! Browser sessions' routes (docs/console.md, "Browser login"): `/login?next=<path>` starts the
//! OpenID Connect code flow, `/oauth2/callback` finishes it for the browser that started it,
//! `/logout` ends the session and the identity provider's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Response, StatusCode};
use serde::Deserialize;

use crate::app::{Console, busy, redirect, unavailable, with_cookie};
use crate::oidc;
use crate::pages::{escape, html, page};
use crate::path;
use crate::session::{self, Login, Session};

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// `/login?next=<same-origin path>`: starts the code flow.
pub(crate) async fn login(
    State(console): State<Arc<Console>>,
    Query(q): Query<LoginQuery>,
) -> Response<Body> {
    let Some(oidc) = &console.oidc else {
        return page(
            StatusCode::NOT_FOUND,
            "No browser login",
            "this console takes bearer tokens only (it has no --oidc-issuer)",
        );
    };
    let return_to = q
        .next
        .as_deref()
        .and_then(path::same_origin_path)
        .unwrap_or("/")
        .to_owned();
    let (Ok(id), Ok(state), Ok(nonce), Ok(verifier)) = (
        session::random_id(),
        session::random_id(),
        session::random_id(),
        session::random_id(),
    ) else {
        return unavailable("no random numbers from the operating system");
    };
    let url = match oidc.authorization_url(&state, &nonce, &verifier).await {
        Ok(url) => url,
        Err(e) => return unavailable(&e.0),
    };
    let pending = console.store.put_login(
        id.clone(),
        Login {
            state,
            nonce,
            verifier,
            return_to,
            until: Instant::now() + session::LOGIN_TTL,
        },
    );
    if pending.is_err() {
        tracing::warn!(
            max = session::MAX_LOGINS,
            "refused: too many logins in progress"
        );
        return busy("too many logins are in progress; try again in a minute");
    }
    with_cookie(
        redirect(&url),
        &session::set_cookie(
            session::login_cookie(console.secure),
            &id,
            session::LOGIN_TTL,
            console.secure,
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn login_failed(why: &str) -> Response<Body> {
    html(
        StatusCode::BAD_REQUEST,
        "Login failed",
        &format!(
            "<p>{}</p>\n<p><a href=\"/login\">Log in again</a></p>",
            escape(why)
        ),
    )
}

/// `/oauth2/callback?code&state`: ends the code flow, for the browser that started it only.
pub(crate) async fn callback(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response<Body> {
    let Some(oidc) = &console.oidc else {
        return page(
            StatusCode::NOT_FOUND,
            "No browser login",
            "no --oidc-issuer",
        );
    };
    let clear_login = session::set_cookie(
        session::login_cookie(console.secure),
        "",
        Duration::ZERO,
        console.secure,
    );
    // Exactly one login cookie: a second may have been planted (over http, or by an old
    // browser) to finish the attacker's login in this browser.
    let login_cookie = session::login_cookie(console.secure);
    let Some(login) = session::cookie(&headers, login_cookie)
        .filter(|_| session::cookie_count(&headers, login_cookie) == 1)
        .and_then(|id| console.store.take_login(id))
    else {
        return with_cookie(
            login_failed("this login was not started by this browser, or took too long"),
            &clear_login,
        );
    };
    if q.state.as_deref() != Some(login.state.as_str()) {
        tracing::warn!("a login callback came back with another state");
        return with_cookie(
            login_failed("the login's state does not match"),
            &clear_login,
        );
    }
    if let Some(error) = q.error {
        return with_cookie(
            login_failed(&format!("the identity provider said: {error}")),
            &clear_login,
        );
    }
    let Some(code) = q.code else {
        return with_cookie(login_failed("no code in the callback"), &clear_login);
    };
    let oidc::Finished {
        claims,
        id_token,
        session_secs,
        refresh_token,
    } = match oidc.finish(&code, &login.verifier, &login.nonce).await {
        Ok(done) => done,
        Err(e) => return with_cookie(login_failed(&e.0), &clear_login),
    };
    let who = match oidc::identity(&claims, &oidc.settings) {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(sub = %claims.sub, reason = %e, "login refused");
            return with_cookie(
                html(
                    StatusCode::FORBIDDEN,
                    "Login refused",
                    &format!("<p>{}</p>", escape(&e.0)),
                ),
                &clear_login,
            );
        }
    };
    let (Ok(id), Ok(csrf)) = (session::random_id(), session::random_id()) else {
        return unavailable("no random numbers from the operating system");
    };
    // As long as the identity provider's own session (its refresh token), at most SESSION_TTL;
    // access is asked of the API server on every request anyway.
    let ttl = session_secs
        .map_or(session::SESSION_TTL, Duration::from_secs)
        .clamp(Duration::from_secs(300), session::SESSION_TTL);
    let (user, groups) = (who.username.clone(), who.groups.clone());
    let kept = console.store.put_session(
        id.clone(),
        Session {
            identity: who,
            until: Some(Instant::now() + ttl),
            id_token,
            id_token_until: Some(session::instant_of(claims.exp)),
            refresh_token,
            nonce: login.nonce.clone(),
            csrf,
        },
    );
    if kept.is_err() {
        tracing::warn!(user = %user, max = session::MAX_SESSIONS, "refused: too many sessions");
        return with_cookie(
            busy("the console holds too many sessions; try again later"),
            &clear_login,
        );
    }
    tracing::info!(user = %user, groups = ?groups, "logged in");
    let response = with_cookie(redirect(&login.return_to), &clear_login);
    with_cookie(
        response,
        &session::set_cookie(
            session::session_cookie(console.secure),
            &id,
            ttl,
            console.secure,
        ),
    )
}

/// `/logout`: ends the console's session, then the identity provider's.
pub(crate) async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
) -> Response<Body> {
    let ended = session::cookie(&headers, session::session_cookie(console.secure))
        .and_then(|id| console.store.end_session(id));
    let clear = session::set_cookie(
        session::session_cookie(console.secure),
        "",
        Duration::ZERO,
        console.secure,
    );
    if let Some(id) = session::cookie(&headers, session::session_cookie(console.secure)) {
        // Its notebook hosts' sessions end with it (they are checked against it anyway).
        console.notebook_sessions().end_for(id);
    }
    if let Some(session) = &ended {
        tracing::info!(user = %session.identity.username, "logged out");
    }
    let after = format!("{}/", console.origin());
    if let (Some(oidc), Some(session)) = (&console.oidc, &ended)
        && let Some(url) = oidc.end_session_url(&session.id_token, &after).await
    {
        return with_cookie(redirect(&url), &clear);
    }
    with_cookie(
        page(
            StatusCode::OK,
            "Logged out",
            "you are logged out of the console",
        ),
        &clear,
    )
}
