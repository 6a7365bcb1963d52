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

/// The session cookie's name over http ([`session_cookie`]).
pub const SESSION_COOKIE: &str = "berth_console_session";
/// ... and over https: a `__Host-` cookie, which browsers take only from the console's own host
/// (`Secure`, `Path=/`, no `Domain`), so a notebook's script on a sibling host cannot plant one.
pub const SESSION_COOKIE_HOST: &str = "__Host-berth_console_session";
/// The cookie of a login in progress over http ([`login_cookie`]).
pub const LOGIN_COOKIE: &str = "berth_console_login";
/// ... and over https.
pub const LOGIN_COOKIE_HOST: &str = "__Host-berth_console_login";
/// Every cookie of the console and of its notebook hosts (crate::notebook_origin): Jupyter never
/// sees them, and a notebook's answer may not set them.
pub const CONSOLE_COOKIES: [&str; 8] = [
    SESSION_COOKIE,
    SESSION_COOKIE_HOST,
    LOGIN_COOKIE,
    LOGIN_COOKIE_HOST,
    crate::notebook_origin::NOTEBOOK_COOKIE,
    crate::notebook_origin::NOTEBOOK_COOKIE_HOST,
    crate::notebook_origin::STATE_COOKIE,
    crate::notebook_origin::STATE_COOKIE_HOST,
];
/// The session cookie's name: [`SESSION_COOKIE_HOST`] when the console is served over https.
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        SESSION_COOKIE_HOST
    } else {
        SESSION_COOKIE
    }
}

/// The login cookie's name: [`LOGIN_COOKIE_HOST`] when the console is served over https.
pub fn login_cookie(secure: bool) -> &'static str {
    if secure {
        LOGIN_COOKIE_HOST
    } else {
        LOGIN_COOKIE
    }
}

/// How long a session lives at most.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// How long a login may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Logins in progress kept at most: anyone may start one (`/login` needs no credentials), so
/// when this many are pending after the expired ones are dropped, `/login` answers 503 with
/// `Retry-After` rather than grow (each is a few hundred bytes: at most a few MB).
pub const MAX_LOGINS: usize = 10_000;
/// Sessions kept at most (only a completed login at the identity provider makes one); when full
/// after dropping the expired ones, a new login is refused with 503.
pub const MAX_SESSIONS: usize = 100_000;

/// 256 random bits as base64url, from the operating system.
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A logged-in browser.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub identity: Identity,
    /// When the session ends (the identity provider's session, at most [`SESSION_TTL`]).
    pub until: Option<Instant>,
    /// The ID token: the bearer of `--act-as token`, and the identity provider's logout
    /// (`id_token_hint`).
    pub id_token: String,
    /// When the ID token expires (its `exp`); it is refreshed [`REFRESH_BEFORE`] earlier.
    pub id_token_until: Option<Instant>,
    /// The refresh token (OAuth 2.0 `refresh_token` grant), when the provider gave one.
    pub refresh_token: Option<String>,
    /// The login's nonce: a refreshed ID token may carry it, and then it must be the same.
    pub nonce: String,
    /// This session's CSRF token (crate::csrf), in every form.
    pub csrf: String,
}

/// The [`Instant`] of the Unix time `exp` (seconds), as seen from now.
pub fn instant_of(exp: u64) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now_instant = Instant::now();
    if exp >= now {
        now_instant + Duration::from_secs(exp - now)
    } else {
        now_instant
            .checked_sub(Duration::from_secs(now - exp))
            .unwrap_or(now_instant)
    }
}

/// How long before the ID token's expiry it is refreshed.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(60);

impl Session {
    fn alive(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| until > now)
    }

    /// Whether the ID token must be refreshed before use.
    pub fn needs_refresh(&self, now: Instant) -> bool {
        self.id_token_until
            .is_none_or(|until| until <= now + REFRESH_BEFORE)
    }
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

/// The store is full: answer 503 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Sessions and logins by id, each map bounded.
pub struct Store {
    sessions: Mutex<HashMap<String, Session>>,
    logins: Mutex<HashMap<String, Login>>,
    max_sessions: usize,
    max_logins: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_limits(MAX_SESSIONS, MAX_LOGINS)
    }
}

/// Inserts `value` unless `map` is full of live entries (expired ones are dropped first).
fn insert_bounded<V>(
    map: &mut HashMap<String, V>,
    max: usize,
    id: String,
    value: V,
    alive: impl Fn(&V) -> bool,
) -> Result<(), Full> {
    if map.len() >= max {
        map.retain(|_, v| alive(v));
        if map.len() >= max {
            return Err(Full);
        }
    }
    map.insert(id, value);
    Ok(())
}

impl Store {
    /// A store keeping at most `max_sessions` sessions and `max_logins` logins in progress.
    pub fn with_limits(max_sessions: usize, max_logins: usize) -> Self {
        Self {
            sessions: Mutex::default(),
            logins: Mutex::default(),
            max_sessions,
            max_logins,
        }
    }

    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().ok()?;
        sessions
            .get(id)
            .filter(|s| s.alive(Instant::now()))
            .cloned()
    }

    /// Keeps `session`; `Err(Full)` when `max_sessions` live sessions exist.
    pub fn put_session(&self, id: String, session: Session) -> Result<(), Full> {
        let mut sessions = self.sessions.lock().map_err(|_| Full)?;
        let now = Instant::now();
        insert_bounded(&mut sessions, self.max_sessions, id, session, |s| {
            s.alive(now)
        })
    }

    /// Replaces a live session's contents (after a refresh); `false` when it has ended meanwhile.
    pub fn update_session(&self, id: &str, session: Session) -> bool {
        let Ok(mut sessions) = self.sessions.lock() else {
            return false;
        };
        match sessions.get_mut(id) {
            Some(kept) if kept.alive(Instant::now()) => {
                *kept = session;
                true
            }
            _ => false,
        }
    }

    pub fn end_session(&self, id: &str) -> Option<Session> {
        self.sessions.lock().ok()?.remove(id)
    }

    /// Keeps `login`; `Err(Full)` when `max_logins` live logins are pending.
    pub fn put_login(&self, id: String, login: Login) -> Result<(), Full> {
        let mut logins = self.logins.lock().map_err(|_| Full)?;
        let now = Instant::now();
        insert_bounded(&mut logins, self.max_logins, id, login, |l| l.until > now)
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

/// How many cookies named `name` the request's `Cookie` headers carry, read as bytes (a
/// header that is not UTF-8 counts too).
pub fn cookie_count(headers: &axum::http::HeaderMap, name: &str) -> usize {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter(|pair| {
            let key = pair
                .iter()
                .position(|b| *b == b'=')
                .map_or(&pair[..], |i| &pair[..i]);
            key.trim_ascii() == name.as_bytes()
        })
        .count()
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
            !CONSOLE_COOKIES.contains(&name)
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

    fn login(until: Instant) -> Login {
        Login {
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            return_to: "/".into(),
            until,
        }
    }

    #[test]
    fn pending_logins_are_bounded_and_expired_ones_make_room() {
        let store = Store::with_limits(2, 2);
        let now = Instant::now();
        assert_eq!(store.put_login("a".into(), login(now + LOGIN_TTL)), Ok(()));
        assert_eq!(store.put_login("b".into(), login(now + LOGIN_TTL)), Ok(()));
        assert_eq!(
            store.put_login("c".into(), login(now + LOGIN_TTL)),
            Err(Full),
            "full of live logins"
        );
        assert!(store.take_login("a").is_some());
        assert_eq!(store.put_login("c".into(), login(now + LOGIN_TTL)), Ok(()));
        let expired = Store::with_limits(2, 2);
        let past = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        expired.put_login("x".into(), login(past)).unwrap();
        expired.put_login("y".into(), login(past)).unwrap();
        assert_eq!(
            expired.put_login("z".into(), login(now + LOGIN_TTL)),
            Ok(()),
            "expired logins are dropped to make room"
        );
        assert!(expired.take_login("z").is_some());
    }

    #[test]
    fn sessions_are_bounded() {
        let store = Store::with_limits(1, 1);
        let session = Session {
            identity: Identity::default(),
            until: Some(Instant::now() + SESSION_TTL),
            ..Default::default()
        };
        assert_eq!(store.put_session("a".into(), session.clone()), Ok(()));
        assert_eq!(store.put_session("b".into(), session.clone()), Err(Full));
        assert!(store.end_session("a").is_some());
        assert_eq!(store.put_session("b".into(), session), Ok(()));
    }

    #[test]
    fn session_cookies_are_counted_across_headers_and_bytes() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("_xsrf=1; berth_console_session=a"),
        );
        assert_eq!(cookie_count(&h, SESSION_COOKIE), 1);
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes(b" berth_console_session =b\xff").unwrap(),
        );
        assert_eq!(cookie_count(&h, SESSION_COOKIE), 2);
        assert_eq!(cookie_count(&h, LOGIN_COOKIE), 0);
    }

    #[test]
    fn a_login_is_taken_once() {
        let store = Store::default();
        store
            .put_login("l".into(), login(Instant::now() + LOGIN_TTL))
            .unwrap();
        assert!(store.take_login("l").is_some());
        assert!(store.take_login("l").is_none());
    }
}
