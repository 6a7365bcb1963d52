//! An origin per notebook (docs/console.md, "An origin per notebook"): with `--notebook-domain
//! <suffix>`, notebook `<name>` of namespace `<namespace>` is served at
//! `<scheme>://<label>.<suffix>[:<port>]/notebook/<namespace>/<name>/...`, the scheme and port of
//! `--public-url`, `<label>` = [`berth_api::notebook_host::label`]. Such a host serves that one
//! notebook and nothing else, authenticated by a cookie of its own that a hand-off through the
//! console's origin sets ([`Tickets`], [`NotebookSessions`], crate::handoff).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use crate::path;

/// Where notebooks are served: `<label>.<suffix>` with the console's scheme and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotebookDomain {
    /// The domain every notebook host is one label under, lower-case, no dot at either end.
    pub suffix: String,
    /// `http` or `https`: `--public-url`'s.
    pub scheme: String,
    /// `--public-url`'s explicit port, if any.
    pub port: Option<u16>,
}

impl NotebookDomain {
    /// Checks `suffix` (a DNS name: dot-separated labels, lower-case; a leading `*.` or trailing
    /// `.` is dropped) and takes the scheme and port of `public_url`.
    pub fn new(suffix: &str, public_url: &reqwest::Url) -> anyhow::Result<Self> {
        let suffix = suffix
            .trim()
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        anyhow::ensure!(
            !suffix.is_empty() && suffix.len() <= 253 && suffix.split('.').all(path::is_dns_label),
            "--notebook-domain {suffix:?} must be a DNS name such as nb.example.com"
        );
        let console_host = public_url
            .host_str()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        anyhow::ensure!(
            console_host != suffix,
            "--notebook-domain must not be the console's own host: each notebook gets a host under it"
        );
        anyhow::ensure!(
            !console_host.ends_with(&format!(".{suffix}")),
            "--notebook-domain {suffix} must not contain the console's host {console_host}: the console would be taken for a notebook's host"
        );
        Ok(Self {
            suffix,
            scheme: public_url.scheme().to_owned(),
            port: public_url.port(),
        })
    }

    /// `<label>.<suffix>[:port]` of notebook `name` in `namespace`.
    pub fn host(&self, namespace: &str, name: &str) -> String {
        let label = berth_api::notebook_host::label(namespace, name);
        match self.port {
            Some(port) => format!("{label}.{}:{port}", self.suffix),
            None => format!("{label}.{}", self.suffix),
        }
    }

    /// `<scheme>://<host>`: the notebook's origin (what its WebSockets' `Origin` must be).
    pub fn origin(&self, namespace: &str, name: &str) -> String {
        format!("{}://{}", self.scheme, self.host(namespace, name))
    }

    /// Whether `host` (a `Host` header, any case, with or without a port) is under this domain,
    /// and then its first label if it is exactly one label under it (`Some(None)`: under the
    /// domain but not a notebook host, such as `a.b.<suffix>`).
    pub fn label_of<'a>(&self, host: &'a str) -> Option<Option<&'a str>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let cut = name.len().checked_sub(self.suffix.len() + 1)?;
        let (label, rest) = name.split_at(cut);
        if !rest.starts_with('.') || !rest[1..].eq_ignore_ascii_case(&self.suffix) {
            return None;
        }
        Some((!label.contains('.') && !label.is_empty()).then_some(label))
    }

    /// Whether the notebook cookies are `__Host-`/`Secure` (https).
    pub fn secure(&self) -> bool {
        self.scheme == "https"
    }
}

/// The request's host: `Host`, else the URI's authority (HTTP/2).
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a axum::http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// The notebook session cookie's name: `__Host-berth_notebook` over https (a sibling subdomain
/// cannot set a `__Host-` cookie: browsers require `Secure`, `Path=/` and no `Domain`), else
/// `berth_notebook`.
pub fn notebook_cookie(secure: bool) -> &'static str {
    if secure {
        NOTEBOOK_COOKIE_HOST
    } else {
        NOTEBOOK_COOKIE
    }
}

/// The hand-off's state cookie's name (same rule as [`notebook_cookie`]).
pub fn state_cookie(secure: bool) -> &'static str {
    if secure {
        STATE_COOKIE_HOST
    } else {
        STATE_COOKIE
    }
}

pub const NOTEBOOK_COOKIE: &str = "berth_notebook";
pub const NOTEBOOK_COOKIE_HOST: &str = "__Host-berth_notebook";
pub const STATE_COOKIE: &str = "berth_notebook_handoff";
pub const STATE_COOKIE_HOST: &str = "__Host-berth_notebook_handoff";

/// How long a ticket may wait to be used.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// How long the notebook host's hand-off state cookie lives (a login at the identity provider
/// may happen in between).
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Tickets kept at most (only logged-in users make them; 503 when full of live ones).
pub const MAX_TICKETS: usize = 10_000;
/// Notebook sessions kept at most.
pub const MAX_NOTEBOOK_SESSIONS: usize = 100_000;
/// Live tickets one console session may hold (its oldest is dropped for a new one).
pub const MAX_TICKETS_PER_SESSION: usize = 16;
/// Notebook sessions one console session may hold (one of them is dropped for a new one).
pub const MAX_NOTEBOOK_SESSIONS_PER_SESSION: usize = 64;

/// A hand-off ticket: made on the console's origin for a logged-in user allowed to open the
/// notebook, used once on the notebook's host.
#[derive(Clone, Debug)]
pub struct Ticket {
    /// The console session it was made for.
    pub session: String,
    pub namespace: String,
    pub name: String,
    /// The notebook host's hand-off state (its cookie must hold the same).
    pub state: String,
    /// Where to go after (a path under the notebook's prefix).
    pub next: String,
    pub until: Instant,
}

/// A notebook host's session: its cookie's id names the console session and the one notebook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotebookSession {
    pub session: String,
    pub namespace: String,
    pub name: String,
    pub until: Instant,
}

/// Why a ticket is refused (the page says it; the log too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadTicket(pub &'static str);

/// Tickets by id: bounded, single use, [`TICKET_TTL`].
pub struct Tickets {
    map: Mutex<HashMap<String, Ticket>>,
    max: usize,
}

impl Default for Tickets {
    fn default() -> Self {
        Self::with_limit(MAX_TICKETS)
    }
}

impl Tickets {
    pub fn with_limit(max: usize) -> Self {
        Self {
            map: Mutex::default(),
            max,
        }
    }

    /// Keeps `ticket` under a new random id (256 bits) and returns the id; `None` when full or
    /// without random numbers.
    pub fn issue(&self, ticket: Ticket) -> Option<String> {
        let id = crate::session::random_id().ok()?;
        let mut map = self.map.lock().ok()?;
        // One console session holds at most a few: its oldest goes first, so one user cannot
        // fill the store that every user's hand-off needs.
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, t)| t.session == ticket.session)
            .map(|(id, t)| (t.until, id.clone()))
            .collect();
        if own.len() >= MAX_TICKETS_PER_SESSION {
            own.sort();
            for (_, old) in own.iter().take(own.len() + 1 - MAX_TICKETS_PER_SESSION) {
                map.remove(old);
            }
        }
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, t| t.until > now);
            if map.len() >= self.max {
                return None;
            }
        }
        map.insert(id.clone(), ticket);
        Some(id)
    }

    /// Takes ticket `id` (once, whatever the outcome) for notebook `namespace`/`name`, with the
    /// notebook host's `state` cookie.
    pub fn take(
        &self,
        id: &str,
        namespace: &str,
        name: &str,
        state: Option<&str>,
    ) -> Result<Ticket, BadTicket> {
        let ticket = self
            .map
            .lock()
            .ok()
            .and_then(|mut map| map.remove(id))
            .ok_or(BadTicket("unknown or already used"))?;
        if ticket.until <= Instant::now() {
            return Err(BadTicket("expired"));
        }
        if ticket.namespace != namespace || ticket.name != name {
            return Err(BadTicket("made for another notebook"));
        }
        let same = state.is_some_and(|s| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                s.as_bytes(),
                ticket.state.as_bytes(),
            ))
        });
        if !same {
            return Err(BadTicket("made for another browser"));
        }
        Ok(ticket)
    }
}

/// Notebook sessions by id, bounded.
pub struct NotebookSessions {
    map: Mutex<HashMap<String, NotebookSession>>,
    max: usize,
}

impl Default for NotebookSessions {
    fn default() -> Self {
        Self::with_limit(MAX_NOTEBOOK_SESSIONS)
    }
}

impl NotebookSessions {
    pub fn with_limit(max: usize) -> Self {
        Self {
            map: Mutex::default(),
            max,
        }
    }

    /// Keeps `session` under a new random id, returned; `None` when full.
    pub fn start(&self, session: NotebookSession) -> Option<String> {
        let id = crate::session::random_id().ok()?;
        let mut map = self.map.lock().ok()?;
        // A new hand-off to the same notebook replaces the console session's earlier one, and
        // one console session holds at most [`MAX_NOTEBOOK_SESSIONS_PER_SESSION`] notebooks: one
        // user cannot fill the store that every user's hand-off needs.
        map.retain(|_, s| {
            !(s.session == session.session
                && s.namespace == session.namespace
                && s.name == session.name)
        });
        let own: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.session == session.session)
            .map(|(id, _)| id.clone())
            .collect();
        if own.len() >= MAX_NOTEBOOK_SESSIONS_PER_SESSION {
            for old in own
                .iter()
                .take(own.len() + 1 - MAX_NOTEBOOK_SESSIONS_PER_SESSION)
            {
                map.remove(old);
            }
        }
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, s| s.until > now);
            if map.len() >= self.max {
                return None;
            }
        }
        map.insert(id.clone(), session);
        Some(id)
    }

    /// The live session `id` if it is for notebook `namespace`/`name`.
    pub fn get(&self, id: &str, namespace: &str, name: &str) -> Option<NotebookSession> {
        let map = self.map.lock().ok()?;
        map.get(id)
            .filter(|s| s.until > Instant::now() && s.namespace == namespace && s.name == name)
            .cloned()
    }

    /// Ends every notebook session of console session `session` (logout).
    pub fn end_for(&self, session: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| s.session != session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(url: &str) -> NotebookDomain {
        NotebookDomain::new("nb.example", &reqwest::Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn hosts_keep_the_consoles_scheme_and_port() {
        let d = domain("https://console.example");
        let label = berth_api::notebook_host::label("team-a", "lab");
        assert_eq!(d.host("team-a", "lab"), format!("{label}.nb.example"));
        assert_eq!(
            d.origin("team-a", "lab"),
            format!("https://{label}.nb.example")
        );
        let d = domain("http://127.0.0.1:8080");
        assert_eq!(
            d.origin("team-a", "lab"),
            format!("http://{label}.nb.example:8080")
        );
        assert!(!d.secure());
    }

    #[test]
    fn only_one_label_under_the_domain_is_a_notebook_host() {
        let d = domain("https://console.example");
        assert_eq!(d.label_of("abc.nb.example"), Some(Some("abc")));
        assert_eq!(d.label_of("ABC.NB.example:443"), Some(Some("ABC")));
        assert_eq!(d.label_of("abc.nb.example."), Some(Some("abc")));
        assert_eq!(d.label_of("a.b.nb.example"), Some(None));
        assert_eq!(d.label_of("console.example"), None);
        assert_eq!(d.label_of("nb.example"), None);
        assert_eq!(d.label_of("abcnb.example"), None);
        assert_eq!(d.label_of("abc.nb.example.evil"), None);
    }

    #[test]
    fn the_domain_is_checked() {
        let url = reqwest::Url::parse("https://console.example").unwrap();
        assert!(NotebookDomain::new("*.nb.example", &url).is_ok());
        assert_eq!(
            NotebookDomain::new("NB.Example.", &url).unwrap().suffix,
            "nb.example"
        );
        for bad in [
            "",
            "nb..example",
            "nb_x.example",
            "https://nb.example",
            "console.example",
            // The console's host under it would be taken for a notebook's.
            "example",
        ] {
            assert!(NotebookDomain::new(bad, &url).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_console_session_cannot_fill_the_stores() {
        let later = Instant::now() + TICKET_TTL;
        let tickets = Tickets::with_limit(MAX_TICKETS_PER_SESSION + 1);
        // Issued one after another, as the hand-off does: each lives a little longer.
        let ids: Vec<String> = (0..3 * MAX_TICKETS_PER_SESSION as u64)
            .map(|i| {
                let until = later + Duration::from_millis(i);
                tickets.issue(ticket(until)).unwrap()
            })
            .collect();
        // Another session still gets one, and the first session keeps its newest.
        let other = Ticket {
            session: "other".into(),
            ..ticket(later)
        };
        let id = tickets.issue(other).unwrap();
        assert!(tickets.take(&id, "a", "b", Some("st")).is_ok());
        assert!(
            tickets
                .take(ids.last().unwrap(), "a", "b", Some("st"))
                .is_ok()
        );

        let sessions = NotebookSessions::with_limit(MAX_NOTEBOOK_SESSIONS_PER_SESSION + 1);
        let session = |session: &str, name: String| NotebookSession {
            session: session.into(),
            namespace: "a".into(),
            name,
            until: later,
        };
        // The same notebook again replaces the earlier one.
        let first = sessions.start(session("s", "b".into())).unwrap();
        let again = sessions.start(session("s", "b".into())).unwrap();
        assert!(sessions.get(&first, "a", "b").is_none());
        assert!(sessions.get(&again, "a", "b").is_some());
        for i in 0..3 * MAX_NOTEBOOK_SESSIONS_PER_SESSION {
            sessions.start(session("s", format!("n{i}"))).unwrap();
        }
        let theirs = sessions.start(session("other", "b".into())).unwrap();
        assert!(sessions.get(&theirs, "a", "b").is_some());
        let last = format!("n{}", 3 * MAX_NOTEBOOK_SESSIONS_PER_SESSION - 1);
        let newest = sessions.start(session("s", last.clone())).unwrap();
        assert!(sessions.get(&newest, "a", &last).is_some());
    }

    fn ticket(until: Instant) -> Ticket {
        Ticket {
            session: "s".into(),
            namespace: "a".into(),
            name: "b".into(),
            state: "st".into(),
            next: "/notebook/a/b/lab".into(),
            until,
        }
    }

    #[test]
    fn a_ticket_is_used_once_for_its_notebook_and_browser_before_it_expires() {
        let tickets = Tickets::default();
        let later = Instant::now() + TICKET_TTL;
        let id = tickets.issue(ticket(later)).unwrap();
        assert_eq!(id.len(), 43);
        assert!(tickets.take(&id, "a", "b", Some("st")).is_ok());
        assert_eq!(
            tickets.take(&id, "a", "b", Some("st")).unwrap_err(),
            BadTicket("unknown or already used")
        );
        let id = tickets.issue(ticket(later)).unwrap();
        assert_eq!(
            tickets.take(&id, "a", "c", Some("st")).unwrap_err(),
            BadTicket("made for another notebook")
        );
        assert!(
            tickets.take(&id, "a", "b", Some("st")).is_err(),
            "a refused ticket is gone too"
        );
        let id = tickets.issue(ticket(later)).unwrap();
        assert_eq!(
            tickets.take(&id, "a", "b", Some("other")).unwrap_err(),
            BadTicket("made for another browser")
        );
        let id = tickets.issue(ticket(later)).unwrap();
        assert!(tickets.take(&id, "a", "b", None).is_err());
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        let id = tickets.issue(ticket(past)).unwrap();
        assert_eq!(
            tickets.take(&id, "a", "b", Some("st")).unwrap_err(),
            BadTicket("expired")
        );
    }

    #[test]
    fn tickets_and_notebook_sessions_are_bounded() {
        let tickets = Tickets::with_limit(1);
        let later = Instant::now() + TICKET_TTL;
        assert!(tickets.issue(ticket(later)).is_some());
        let another = Ticket {
            session: "t".into(),
            ..ticket(later)
        };
        assert!(
            tickets.issue(another).is_none(),
            "full of another session's live ticket"
        );
        let sessions = NotebookSessions::with_limit(1);
        let s = NotebookSession {
            session: "s".into(),
            namespace: "a".into(),
            name: "b".into(),
            until: later,
        };
        let id = sessions.start(s.clone()).unwrap();
        let another = NotebookSession {
            session: "t".into(),
            ..s.clone()
        };
        assert!(
            sessions.start(another).is_none(),
            "full of another session's"
        );
        assert_eq!(sessions.get(&id, "a", "b"), Some(s));
        assert_eq!(sessions.get(&id, "a", "c"), None, "another notebook");
        sessions.end_for("s");
        assert_eq!(sessions.get(&id, "a", "b"), None, "logged out");
    }
}
