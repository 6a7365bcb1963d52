//! The console's routes in-process (no cluster): what is refused before any API call or upstream
//! connection, where browsers are sent, and the login's state checks. The console's API server is
//! an address where nothing listens, so any request that reached it would answer 503, not what
//! these tests expect. The identity provider's discovery document comes from a local server (only
//! its endpoints are read here; the real code flow against Keycloak is in the real-node test
//! `console.rs`).

// Test helpers (not #[test] functions themselves) unwrap too: a failure is the test's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

use berth_console::app::{Config, Console, router};
use berth_console::oidc::OidcSettings;

fn unreachable_cluster() -> kube::Client {
    let config = kube::Config::new(
        "http://127.0.0.1:9"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}")),
    );
    kube::Client::try_from(config).unwrap_or_else(|e| unreachable!("{e}"))
}

/// A local server answering discovery for issuer `http://<addr>/realms/t`.
async fn discovery() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}/realms/t");
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
    });
    let app = axum::Router::new().route(
        "/realms/t/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    issuer
}

async fn console(oidc: bool) -> Arc<Console> {
    let oidc = if oidc {
        Some(OidcSettings {
            issuer: discovery().await,
            client_id: "berth-console".into(),
            client_secret: "s".into(),
            redirect_uri: "https://console.example/oauth2/callback".into(),
            username_prefix: String::new(),
            groups_prefix: String::new(),
            ca_pem: None,
        })
    } else {
        None
    };
    Console::new(
        Config {
            public_url: "https://console.example".into(),
            oidc,
            notebook_domain: None,
        },
        unreachable_cluster(),
    )
    .unwrap()
}

async fn send(console: &Arc<Console>, request: Request<Body>) -> axum::http::Response<Body> {
    router(console.clone()).oneshot(request).await.unwrap()
}

async fn text(response: axum::http::Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::get(uri)
}

#[tokio::test]
async fn bad_paths_are_refused_before_anything_else() {
    let c = console(true).await;
    for path in [
        "/notebook/a/b/..%2F..%2Fother/x",
        "/notebook/a/b/%2e%2e/%2e%2e/other/nb/",
        "/notebook/A/b/",
        "/notebook/a_b/c/",
        "/notebook/a/b/../../other/nb/",
    ] {
        let response = send(
            &c,
            get(path)
                .header(header::AUTHORIZATION, "Bearer x.y.z")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn two_session_cookies_are_refused_before_anything_else() {
    let c = console(true).await;
    for cookies in [
        vec!["__Host-berth_console_session=a; __Host-berth_console_session=b"],
        vec![
            "_xsrf=1; __Host-berth_console_session=a",
            " __Host-berth_console_session =b",
        ],
    ] {
        let mut request = get("/notebook/team-a/lab/api/status");
        for cookie in &cookies {
            request = request.header(header::COOKIE, *cookie);
        }
        let response = send(&c, request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{cookies:?}");
        assert!(text(response).await.contains("two berth_console_session"));
    }
}

#[tokio::test]
async fn callers_without_credentials_get_401_and_browsers_go_to_login() {
    let c = console(true).await;
    let api = send(
        &c,
        get("/notebook/team-a/lab/api/status")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert!(
        api.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let other_scheme = send(
        &c,
        get("/notebook/team-a/lab/api/status")
            .header(header::AUTHORIZATION, "Basic YTpi")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(other_scheme.status(), StatusCode::UNAUTHORIZED);
    let ws = send(
        &c,
        get("/notebook/team-a/lab/api/kernels/k/channels")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        ws.status(),
        StatusCode::UNAUTHORIZED,
        "a WebSocket is never redirected"
    );
    let browser = send(
        &c,
        get("/notebook/team-a/lab/lab?reset")
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(browser.status(), StatusCode::FOUND);
    assert_eq!(
        browser.headers()[header::LOCATION],
        "/login?next=%2Fnotebook%2Fteam%2Da%2Flab%2Flab%3Freset"
    );
    // Without OIDC, browsers get 401 too.
    let tokens_only = console(false).await;
    let browser = send(
        &tokens_only,
        get("/notebook/team-a/lab/lab")
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(browser.status(), StatusCode::UNAUTHORIZED);
}

/// The login cookie's value, from `Set-Cookie`.
fn login_cookie(response: &axum::http::Response<Body>) -> String {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-berth_console_login="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_login_uses_pkce_state_and_nonce_and_only_its_own_browser_may_finish_it() {
    let c = console(true).await;
    let started = send(
        &c,
        get("/login?next=//evil.example/x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(started.status(), StatusCode::FOUND);
    let cookie_header = started
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie_header.contains("HttpOnly"));
    assert!(cookie_header.contains("SameSite=Lax"));
    assert!(
        cookie_header.contains("Secure"),
        "https console: Secure cookies"
    );
    let location =
        reqwest::Url::parse(started.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], "https://console.example/oauth2/callback");
    assert!(q["code_challenge"].len() == 43 && q["state"].len() == 43 && q["nonce"].len() == 43);
    let cookie = login_cookie(&started);

    // Another browser (no login cookie) cannot finish it.
    let stranger = send(
        &c,
        get(&format!("/oauth2/callback?code=c&state={}", q["state"]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);
    // The right browser with another state: refused, and the login is gone.
    let forged = send(
        &c,
        get("/oauth2/callback?code=c&state=forged")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(text(forged).await.contains("state does not match"));
    let replay = send(
        &c,
        get(&format!("/oauth2/callback?code=c&state={}", q["state"]))
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        replay.status(),
        StatusCode::BAD_REQUEST,
        "a login is used once"
    );
    assert!(text(replay).await.contains("not started by this browser"));
}

#[tokio::test]
async fn logout_clears_the_cookie_and_health_needs_nothing() {
    let c = console(true).await;
    let out = send(&c, get("/logout").body(Body::empty()).unwrap()).await;
    assert_eq!(out.status(), StatusCode::OK);
    let set = out.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set.starts_with("__Host-berth_console_session=;") && set.contains("Max-Age=0"));
    let health = send(&c, get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(health.status(), StatusCode::OK);
}
