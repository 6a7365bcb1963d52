//! Browser sessions, kept in the console's memory and named by a random id in a cookie.
//!
//! The cookie holds nothing but 256 random bits (base64url): no identity, nothing to decrypt or
//! forge, so no signing key to keep. The price: sessions live in one replica's memory (a restart
//! logs everyone out; several replicas need sticky sessions). Cookies are `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, `Secure` when the console's URL is https, and expire with the
//! session ([`SESSION_TTL`], or the ID token's own `exp` when sooner).
//!
//! A login in progress (OIDC code flow) is kept the same way under its own cookie
//! ([`LOGIN_COOKIE`], 10 minutes): the state, nonce, PKCE verifier and where to go back to stay on
//! the server, and the callback must bring back the state of the browser that started the login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::kube_auth::Identity;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "berth_console_session";
/// The cookie of a login in progress.
pub const LOGIN_COOKIE: &str = "berth_console_login";
/// How long a session lives at most.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a login may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Sessions and logins kept at most.
pub const MAX_ENTRIES: usize = 100_000;

/// 256 random bits as base64url, from the operating system.
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A logged-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub identity: Identity,
    pub until: Instant,
    /// The ID token, for the identity provider's logout (`id_token_hint`).
    pub id_token: String,
}

/// A login in progress.
#[derive(Clone, Debug)]
pub struct Login {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
    pub until: Instant,
}

/// Sessions and logins by id.
#[derive(Default)]
pub struct Store {
    sessions: Mutex<HashMap<String, Session>>,
    logins: Mutex<HashMap<String, Login>>,
}

fn prune<V>(map: &mut HashMap<String, V>, alive: impl Fn(&V) -> bool) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| alive(v));
    }
}

impl Store {
    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .get(id)
            .filter(|s| s.until > Instant::now())
            .cloned()
    }

    pub fn put_session(&self, id: String, session: Session) {
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            prune(&mut sessions, |s| s.until > now);
            sessions.insert(id, session);
        }
    }

    pub fn end_session(&self, id: &str) -> Option<Session> {
        self.sessions.lock().ok()?.remove(id)
    }

    pub fn put_login(&self, id: String, login: Login) {
        if let Ok(mut logins) = self.logins.lock() {
            let now = Instant::now();
            prune(&mut logins, |l| l.until > now);
            logins.insert(id, login);
        }
    }

    /// Takes the login (once: a callback cannot be replayed).
    pub fn take_login(&self, id: &str) -> Option<Login> {
        self.logins
            .lock()
            .ok()?
            .remove(id)
            .filter(|l| l.until > Instant::now())
    }
}

/// `name=value` of a `Set-Cookie` header with the console's attributes; `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Cookie` header without the console's own cookies (what Jupyter may see); `None` when
/// nothing is left.
pub fn without_console_cookies(headers: &axum::http::HeaderMap) -> Option<String> {
    let kept: Vec<&str> = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            name != SESSION_COOKIE && name != LOGIN_COOKIE
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn ids_are_random_and_long() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn the_console_cookies_never_go_upstream() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("_xsrf=abc; berth_console_session=secret"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("berth_console_login=x; other=1"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("secret"));
        assert_eq!(
            without_console_cookies(&h).as_deref(),
            Some("_xsrf=abc; other=1")
        );
        let mut only = HeaderMap::new();
        only.append(
            header::COOKIE,
            HeaderValue::from_static("berth_console_session=secret"),
        );
        assert_eq!(without_console_cookies(&only), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_https() {
        let c = set_cookie(SESSION_COOKIE, "v", SESSION_TTL, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("; Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "v", SESSION_TTL, false).contains("Secure"));
    }

    #[test]
    fn a_login_is_taken_once() {
        let store = Store::default();
        store.put_login(
            "l".into(),
            Login {
                state: "s".into(),
                nonce: "n".into(),
                verifier: "v".into(),
                return_to: "/".into(),
                until: Instant::now() + LOGIN_TTL,
            },
        );
        assert!(store.take_login("l").is_some());
        assert!(store.take_login("l").is_none());
    }
}
