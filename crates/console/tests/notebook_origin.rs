//! An origin per notebook (`--notebook-domain`), in-process (no cluster): what a notebook host
//! serves and refuses, the hand-off's redirects, tickets (reuse, expiry, another notebook,
//! another browser, an ended session), the notebook cookie (host-only, `__Host-`, bound to one
//! notebook and to the console session), the console's origin sending browsers to the notebook's
//! host, WebSocket origins, and the console's POSTs refusing a notebook host's `same-site`.
//! The console's API server is an address where nothing listens: a request that gets as far as
//! the TokenReview or SubjectAccessReview is a 503, which is how "authenticated" shows here; the
//! whole chain with a real API server is crates/cluster-tests/tests/cluster/console_origin.rs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use tower::ServiceExt as _;

use berth_console::app::{Config, Console, router};
use berth_console::kube_auth::Identity;
use berth_console::notebook_origin::{TICKET_TTL, Ticket};
use berth_console::oidc::OidcSettings;
use berth_console::session::Session;

const SESSION: &str = "test-session-id";
const CSRF: &str = "the-sessions-csrf-token";
/// A hand-off state as the notebook host makes them (43 base64url characters).
const STATE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn console() -> Arc<Console> {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let console = Console::new(
        Config {
            public_url: "https://console.example".into(),
            oidc: Some(OidcSettings {
                issuer: "http://127.0.0.1:9/realms/t".into(),
                client_id: "berth-console".into(),
                client_secret: "s".into(),
                redirect_uri: "https://console.example/oauth2/callback".into(),
                username_prefix: String::new(),
                groups_prefix: String::new(),
                ca_pem: None,
            }),
            notebook_domain: Some("nb.example".into()),
        },
        kube::Client::try_from(config).unwrap(),
    )
    .unwrap();
    console
        .store()
        .put_session(
            SESSION.into(),
            Session {
                identity: Identity {
                    username: "owner@example.com".into(),
                    ..Default::default()
                },
                until: Some(Instant::now() + Duration::from_secs(600)),
                id_token: "id-token".into(),
                id_token_until: Some(Instant::now() + Duration::from_secs(600)),
                refresh_token: None,
                nonce: "n".into(),
                csrf: CSRF.into(),
            },
        )
        .unwrap();
    console
}

fn host(ns: &str, name: &str) -> String {
    format!("{}.nb.example", berth_api::notebook_host::label(ns, name))
}

async fn send(console: &Arc<Console>, request: Request<Body>) -> Response<Body> {
    router(console.clone()).oneshot(request).await.unwrap()
}

fn location(r: &Response<Body>) -> String {
    r.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookies(r: &Response<Body>) -> Vec<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A browser's GET of `path` at `host` with `cookie`.
fn browser(host: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

fn ticket(ns: &str, name: &str, session: &str, until: Instant) -> Ticket {
    Ticket {
        session: session.into(),
        namespace: ns.into(),
        name: name.into(),
        state: STATE.into(),
        next: format!("/notebook/{ns}/{name}/lab"),
        until,
    }
}

/// Consumes a fresh ticket of `a/b` and returns the notebook cookie (`name=value`).
async fn signed_in(c: &Arc<Console>) -> String {
    let t = c
        .tickets()
        .issue(ticket("a", "b", SESSION, Instant::now() + TICKET_TTL))
        .unwrap();
    let r = send(
        c,
        browser(
            &host("a", "b"),
            &format!("/notebook/a/b/_berth/handoff?ticket={t}"),
            Some(&format!("__Host-berth_notebook_handoff={STATE}")),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-berth_notebook="))
        .unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_notebook_host_serves_only_its_own_notebook() {
    let c = console();
    // Another notebook's path on a's host, a host two labels under the domain, a made-up label.
    for (h, path) in [
        (host("a", "b"), "/notebook/a/c/lab"),
        (host("a", "b"), "/notebook/b/a/lab"),
        (format!("x.{}", host("a", "b")), "/notebook/a/b/lab"),
        ("b-a.nb.example".to_owned(), "/notebook/a/b/lab"),
    ] {
        let r = send(
            &c,
            browser(
                &h,
                path,
                Some(&format!("__Host-berth_console_session={SESSION}")),
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{h}{path}");
    }
    // None of the console's pages, login or hand-off.
    for path in [
        "/",
        "/projects/a",
        "/login",
        "/logout",
        "/notebook-handoff",
        "/healthz",
    ] {
        let r = send(&c, browser(&host("a", "b"), path, None)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_browser_without_a_notebook_cookie_goes_to_the_hand_off() {
    let c = console();
    let r = send(
        &c,
        browser(&host("a", "b"), "/notebook/a/b/lab?reset", None),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let to = location(&r);
    assert!(
        to.starts_with("https://console.example/notebook-handoff?namespace=a&name=b&state="),
        "{to}"
    );
    assert!(
        to.ends_with("&next=%2Fnotebook%2Fa%2Fb%2Flab%3Freset"),
        "{to}"
    );
    let state = to
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let cookies = set_cookies(&r);
    assert_eq!(cookies.len(), 1);
    assert!(
        cookies[0].starts_with(&format!("__Host-berth_notebook_handoff={state}; Path=/;"))
            && cookies[0].contains("HttpOnly")
            && cookies[0].contains("SameSite=Lax")
            && cookies[0].ends_with("; Secure")
            && !cookies[0].to_ascii_lowercase().contains("domain"),
        "{cookies:?}"
    );
    // The console's session cookie means nothing on a notebook host.
    let r = send(
        &c,
        browser(
            &host("a", "b"),
            "/notebook/a/b/lab",
            Some(&format!("__Host-berth_console_session={SESSION}")),
        ),
    )
    .await;
    assert!(
        location(&r).contains("/notebook-handoff?"),
        "{}",
        location(&r)
    );
    // Not a browser's page load: 401, never a redirect.
    for r in [
        Request::get("/notebook/a/b/api/status").header(header::HOST, host("a", "b")),
        Request::post("/notebook/a/b/api/contents").header(header::HOST, host("a", "b")),
        Request::get("/notebook/a/b/api/kernels/k/channels")
            .header(header::HOST, host("a", "b"))
            .header(header::UPGRADE, "websocket")
            .header(header::ORIGIN, format!("https://{}", host("a", "b"))),
    ] {
        let r = send(&c, r.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_hand_off_needs_a_console_session_and_asks_the_api_server() {
    let c = console();
    let path = format!(
        "/notebook-handoff?namespace=a&name=b&state={STATE}&next=%2Fnotebook%2Fa%2Fb%2Flab"
    );
    let r = send(&c, browser("console.example", &path, None)).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(
        location(&r).starts_with("/login?next=%2Fnotebook%2Dhandoff%3Fnamespace%3Da"),
        "{}",
        location(&r)
    );
    // With the session: the SubjectAccessReview is asked (nothing listens: 503), no ticket made.
    let r = send(
        &c,
        browser(
            "console.example",
            &path,
            Some(&format!("__Host-berth_console_session={SESSION}")),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    for bad in [
        "/notebook-handoff?namespace=a&name=b&state=short",
        "/notebook-handoff?namespace=A&name=b&state=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "/notebook-handoff?namespace=a&state=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let r = send(
            &c,
            browser(
                "console.example",
                bad,
                Some(&format!("__Host-berth_console_session={SESSION}")),
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_ticket_sets_a_host_only_cookie_once() {
    let c = console();
    let t = c
        .tickets()
        .issue(ticket("a", "b", SESSION, Instant::now() + TICKET_TTL))
        .unwrap();
    let consume = browser(
        &host("a", "b"),
        &format!("/notebook/a/b/_berth/handoff?ticket={t}"),
        Some(&format!("__Host-berth_notebook_handoff={STATE}")),
    );
    let r = send(&c, consume).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(location(&r), "/notebook/a/b/lab");
    assert_eq!(r.headers()[header::REFERRER_POLICY], "no-referrer");
    let cookies = set_cookies(&r);
    let nb = cookies
        .iter()
        .find(|c| c.starts_with("__Host-berth_notebook="))
        .unwrap();
    assert!(
        nb.contains("; Path=/;")
            && nb.contains("HttpOnly")
            && nb.contains("SameSite=Lax")
            && nb.ends_with("; Secure")
            && !nb.to_ascii_lowercase().contains("domain"),
        "{nb}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-berth_notebook_handoff=;")),
        "state cleared"
    );
    // Used once.
    let again = browser(
        &host("a", "b"),
        &format!("/notebook/a/b/_berth/handoff?ticket={t}"),
        Some(&format!("__Host-berth_notebook_handoff={STATE}")),
    );
    let r = send(&c, again).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("__Host-berth_notebook="))
    );
}

#[tokio::test]
async fn tickets_expired_of_another_notebook_browser_or_session_are_refused() {
    let c = console();
    let later = Instant::now() + TICKET_TTL;
    let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
    c.store()
        .put_session(
            "ended".into(),
            Session {
                until: Some(later),
                ..Default::default()
            },
        )
        .unwrap();
    c.store().end_session("ended");
    let state = format!("__Host-berth_notebook_handoff={STATE}");
    let other_state =
        "__Host-berth_notebook_handoff=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".to_owned();
    let cases = [
        (
            "expired",
            ticket("a", "b", SESSION, past),
            "a",
            "b",
            state.clone(),
        ),
        (
            "another notebook",
            ticket("a", "b", SESSION, later),
            "a",
            "c",
            state.clone(),
        ),
        (
            "another browser",
            ticket("a", "b", SESSION, later),
            "a",
            "b",
            other_state,
        ),
        (
            "no state",
            ticket("a", "b", SESSION, later),
            "a",
            "b",
            String::new(),
        ),
        (
            "ended session",
            ticket("a", "b", "ended", later),
            "a",
            "b",
            state.clone(),
        ),
    ];
    for (why, t, ns, name, cookie) in cases {
        let id = c.tickets().issue(t).unwrap();
        let r = send(
            &c,
            browser(
                &host(ns, name),
                &format!("/notebook/{ns}/{name}/_berth/handoff?ticket={id}"),
                (!cookie.is_empty()).then_some(cookie.as_str()),
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(
            set_cookies(&r)
                .iter()
                .all(|c| !c.starts_with("__Host-berth_notebook=")),
            "{why}"
        );
    }
    let r = send(
        &c,
        browser(
            &host("a", "b"),
            "/notebook/a/b/_berth/handoff?ticket=made-up",
            Some(&state),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_notebook_cookie_works_on_its_host_only_and_ends_with_the_console_session() {
    let c = console();
    let nb = signed_in(&c).await;
    // On its host: authenticated, so the SubjectAccessReview is asked (nothing listens: 503).
    let r = send(&c, browser(&host("a", "b"), "/notebook/a/b/lab", Some(&nb))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Notebook a/c's host with a/b's cookie (as a sibling subdomain could plant it): not signed in.
    let r = send(&c, browser(&host("a", "c"), "/notebook/a/c/lab", Some(&nb))).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).contains("/notebook-handoff?namespace=a&name=c&"));
    // Two notebook cookies: refused.
    let two = format!("{nb}; {nb}x");
    let r = send(
        &c,
        browser(&host("a", "b"), "/notebook/a/b/lab", Some(&two)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Logging out of the console ends it.
    let r = send(
        &c,
        browser(
            "console.example",
            "/logout",
            Some(&format!("__Host-berth_console_session={SESSION}")),
        ),
    )
    .await;
    assert!(r.status().is_success() || r.status().is_redirection());
    let r = send(&c, browser(&host("a", "b"), "/notebook/a/b/lab", Some(&nb))).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(location(&r).contains("/notebook-handoff?"));
}

#[tokio::test]
async fn the_consoles_origin_sends_browsers_to_the_notebooks_host() {
    let c = console();
    let own = format!("https://{}", host("a", "b"));
    for cookie in [
        Some(format!("__Host-berth_console_session={SESSION}")),
        None,
    ] {
        let r = send(
            &c,
            browser(
                "console.example",
                "/notebook/a/b/lab?x=1",
                cookie.as_deref(),
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(location(&r), format!("{own}/notebook/a/b/lab?x=1"));
    }
    // Never proxied there for a cookie: a POST or a WebSocket is refused.
    for r in [
        Request::post("/notebook/a/b/api/contents"),
        Request::get("/notebook/a/b/api/kernels/k/channels")
            .header(header::UPGRADE, "websocket")
            .header(header::ORIGIN, "https://console.example"),
    ] {
        let r = r
            .header(header::HOST, "console.example")
            .header(
                header::COOKIE,
                format!("__Host-berth_console_session={SESSION}"),
            )
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&c, r).await.status(), StatusCode::FORBIDDEN);
    }
    // A bearer token (no ambient authority) is still served there: its TokenReview is asked.
    let r = Request::get("/notebook/a/b/api/status")
        .header(header::HOST, "console.example")
        .header(header::AUTHORIZATION, "Bearer x.y.z")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&c, r).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Bad paths are still 400 before anything.
    let r = send(
        &c,
        browser("console.example", "/notebook/a/b/..%2F..%2Fc/x", None),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_websocket_must_come_from_the_notebooks_own_origin() {
    let c = console();
    let nb = signed_in(&c).await;
    let ws = |origin: Option<String>| {
        let mut r = Request::get("/notebook/a/b/api/kernels/k/channels")
            .header(header::HOST, host("a", "b"))
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::COOKIE, nb.clone());
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.body(Body::empty()).unwrap()
    };
    for origin in [
        Some("https://console.example".to_owned()),
        Some(format!("https://{}", host("a", "c"))),
        Some(format!("http://{}", host("a", "b"))),
        None,
    ] {
        let r = send(&c, ws(origin.clone())).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin:?}");
    }
    // Its own origin passes to the SubjectAccessReview (nothing listens: 503).
    let r = send(&c, ws(Some(format!("https://{}", host("a", "b"))))).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_consoles_posts_refuse_a_notebook_hosts_same_site_requests() {
    let c = console();
    let nb_origin = format!("https://{}", host("a", "b"));
    for (site, origin) in [
        ("same-site", nb_origin.as_str()),
        ("same-site", "https://console.example"),
        ("same-origin", nb_origin.as_str()),
    ] {
        let r = Request::post("/projects/team-a/members")
            .header(header::HOST, "console.example")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::COOKIE,
                format!("__Host-berth_console_session={SESSION}"),
            )
            .header(header::ORIGIN, origin)
            .header("sec-fetch-site", site)
            .body(Body::from(format!(
                "csrf={CSRF}&action=add&kind=User&name=x%40example.com&role=owner"
            )))
            .unwrap();
        let r = send(&c, r).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{site} {origin}");
    }
}

#[tokio::test]
async fn a_notebook_host_refuses_service_workers_and_other_pages_writes() {
    let c = console();
    let cookie = signed_in(&c).await;
    let nb = host("a", "b");
    let request = |method: &str, site: &str, origin: &str, extra: Option<(&str, &str)>| {
        let mut r = Request::builder()
            .method(method)
            .uri("/notebook/a/b/api/contents/x")
            .header(header::HOST, &nb)
            .header(header::COOKIE, &cookie)
            .header("sec-fetch-site", site)
            .header(header::ORIGIN, origin);
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        r.body(Body::empty()).unwrap()
    };
    let own = format!("https://{nb}");
    // A service worker's script (registration or update check): refused.
    let r = send(
        &c,
        request(
            "GET",
            "same-origin",
            &own,
            Some(("service-worker", "script")),
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another notebook's page (same site, another origin) or another site may not write here
    // with this host's cookie; the refusal comes before any API call.
    let other = format!("https://{}", host("a", "c"));
    for (method, site, origin) in [
        ("POST", "same-site", other.as_str()),
        ("PUT", "same-site", other.as_str()),
        ("DELETE", "cross-site", "https://evil.example"),
        ("POST", "same-origin", other.as_str()),
    ] {
        let r = send(&c, request(method, site, origin, None)).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{method} {site} {origin}"
        );
    }
    // The notebook's own pages may: the request gets as far as the API server (503 here).
    let r = send(&c, request("POST", "same-origin", &own, None)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn over_https_the_consoles_cookies_are_host_only_by_name() {
    let c = console();
    // A cookie a sibling host's script could plant (no `__Host-` prefix) is no session.
    let planted = Request::get("/")
        .header(header::HOST, "console.example")
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, format!("berth_console_session={SESSION}"))
        .body(Body::empty())
        .unwrap();
    let r = send(&c, planted).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(location(&r).contains("/login"), "{}", location(&r));
    // A callback with two login cookies is refused, even when one is a real pending login.
    c.store()
        .put_login(
            "pending".into(),
            berth_console::session::Login {
                state: "s".into(),
                nonce: "n".into(),
                verifier: "v".into(),
                return_to: "/".into(),
                until: Instant::now() + Duration::from_secs(60),
            },
        )
        .unwrap();
    let login = "__Host-berth_console_login=pending".to_owned();
    let callback = Request::get("/oauth2/callback?code=c&state=s")
        .header(header::HOST, "console.example")
        .header(
            header::COOKIE,
            format!("{login}; __Host-berth_console_login=planted"),
        )
        .body(Body::empty())
        .unwrap();
    let r = send(&c, callback).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("not started by this browser"));
    // The same login with its one cookie gets past that check (and fails later, at the
    // identity provider nothing listens for here).
    let alone = Request::get("/oauth2/callback?code=c&state=s")
        .header(header::HOST, "console.example")
        .header(header::COOKIE, login)
        .body(Body::empty())
        .unwrap();
    let r = send(&c, alone).await;
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("not started by this browser"));
}
