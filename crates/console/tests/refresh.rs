//! Sessions keep their ID token fresh (docs/console.md, "Browser login"): a request that finds
//! the ID token about to expire first uses the refresh token at the identity provider's token
//! endpoint; the new ID token is checked and kept. When the refresh fails, or the new token
//! names another user, the session ends. The identity provider is a local server (discovery,
//! JWKS, token endpoint) signing with a test RSA key (`rsa-test-key.pem`, made for these tests
//! only); the console's API server is unreachable, so the page itself shows nothing, but who
//! is let in is decided before any API call.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tower::ServiceExt as _;

use berth_console::app::{Config, Console, router};
use berth_console::kube_auth::Identity;
use berth_console::oidc::OidcSettings;
use berth_console::session::Session;

const KEY: &str = include_str!("rsa-test-key.pem");

/// What the token endpoint answers next: an ID token for this e-mail, or a refusal.
#[derive(Clone)]
struct Idp {
    issuer: String,
    next: Arc<Mutex<Option<String>>>,
    grants: Arc<Mutex<Vec<String>>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn idp() -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realms/t", listener.local_addr().unwrap());
    let state = Idp {
        issuer: issuer.clone(),
        next: Arc::new(Mutex::new(None)),
        grants: Arc::new(Mutex::new(Vec::new())),
    };
    let encoding = EncodingKey::from_rsa_pem(KEY.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = JwkSet { keys: vec![jwk] };
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/certs"),
    });
    let token_state = state.clone();
    let app = axum::Router::new()
        .route(
            "/realms/t/.well-known/openid-configuration",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        )
        .route(
            "/realms/t/certs",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        )
        .route(
            "/realms/t/token",
            axum::routing::post(move |body: String| {
                let state = token_state.clone();
                let encoding = encoding.clone();
                async move {
                    state.grants.lock().unwrap().push(body);
                    let Some(email) = state.next.lock().unwrap().clone() else {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        );
                    };
                    let mut header = Header::new(Algorithm::RS256);
                    header.kid = Some("k1".into());
                    let claims = json!({
                        "iss": state.issuer, "aud": "berth-console", "sub": "s1",
                        "exp": now() + 300, "iat": now(),
                        "email": email, "email_verified": true, "groups": ["ml"], "nonce": "n",
                    });
                    let id_token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
                    (
                        StatusCode::OK,
                        axum::Json(json!({
                            "id_token": id_token, "refresh_token": "rt2",
                            "refresh_expires_in": 1800, "token_type": "Bearer",
                        })),
                    )
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    state
}

fn console(idp: &Idp) -> Arc<Console> {
    let kube =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    Console::new(
        Config {
            notebook_domain: None,
            public_url: "https://console.example".into(),
            oidc: Some(OidcSettings {
                issuer: idp.issuer.clone(),
                client_id: "berth-console".into(),
                client_secret: "s".into(),
                redirect_uri: "https://console.example/oauth2/callback".into(),
                username_prefix: String::new(),
                groups_prefix: String::new(),
                ca_pem: None,
            }),
        },
        kube,
    )
    .unwrap()
}

/// A session of ada whose ID token expires now.
fn expiring(console: &Console) {
    console
        .store()
        .put_session(
            "sid".into(),
            Session {
                identity: Identity {
                    username: "ada@example.com".into(),
                    ..Default::default()
                },
                until: Some(Instant::now() + Duration::from_secs(600)),
                id_token: "old".into(),
                id_token_until: Some(Instant::now()),
                refresh_token: Some("rt1".into()),
                nonce: "n".into(),
                csrf: "c".into(),
            },
        )
        .unwrap();
}

async fn home(console: &Arc<Console>) -> StatusCode {
    router(console.clone())
        .oneshot(
            Request::get("/")
                .header(header::COOKIE, "__Host-berth_console_session=sid")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_expiring_id_token_is_refreshed_and_the_new_one_kept() {
    let idp = idp().await;
    let console = console(&idp);
    expiring(&console);
    *idp.next.lock().unwrap() = Some("Ada@Example.com".into());
    assert_eq!(home(&console).await, StatusCode::OK);
    let grants = idp.grants.lock().unwrap().clone();
    assert_eq!(grants.len(), 1);
    assert!(
        grants[0].contains("grant_type=refresh_token") && grants[0].contains("refresh_token=rt1"),
        "{grants:?}"
    );
    let session = console.store().session("sid").unwrap();
    assert_ne!(session.id_token, "old");
    assert_eq!(session.refresh_token.as_deref(), Some("rt2"));
    assert_eq!(session.identity.username, "ada@example.com");
    assert_eq!(session.identity.groups, vec!["ml"]);
    assert!(session.id_token_until.unwrap() > Instant::now() + Duration::from_secs(200));
    // Fresh now: the next request does not refresh.
    assert_eq!(home(&console).await, StatusCode::OK);
    assert_eq!(idp.grants.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_refresh_ends_the_session() {
    let idp = idp().await;
    let console = console(&idp);
    expiring(&console);
    *idp.next.lock().unwrap() = None;
    assert_eq!(home(&console).await, StatusCode::UNAUTHORIZED);
    assert!(
        console.store().session("sid").is_none(),
        "the session ended"
    );
}

#[tokio::test]
async fn a_refreshed_token_naming_another_user_ends_the_session() {
    let idp = idp().await;
    let console = console(&idp);
    expiring(&console);
    *idp.next.lock().unwrap() = Some("mallory@example.com".into());
    assert_eq!(home(&console).await, StatusCode::UNAUTHORIZED);
    assert!(console.store().session("sid").is_none());
}
