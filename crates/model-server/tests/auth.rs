//! `--auth oidc` and `--auth kubernetes` on the server's public port, in-process: the real
//! router and the real verifier, against a real HTTP issuer on 127.0.0.1 (see `issuer/`)
//! whose keys are made in the test. Each case is a request as the caller would send it,
//! and the answer is checked for status, challenge and body.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issuer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use berth_model_server::auth::config::{JwksSource, KubernetesSettings, OidcSettings};
use berth_model_server::auth::oidc::OidcVerifier;
use berth_model_server::auth::token_review::TokenReviewer;
use berth_model_server::auth::{Auth, JwksTiming};
use berth_model_server::server::{AppState, metrics_router, router};
use issuer::{Issuer, SigningKey, hmac_signed, now, unsigned};
use serde_json::{Value, json};
use tower::ServiceExt;

const AUDIENCE: &str = "team-models";

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(app: &Router, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::builder().uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        challenge,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn oidc_settings(issuer: &Issuer) -> OidcSettings {
    OidcSettings {
        issuer: issuer.url.clone(),
        jwks: JwksSource::Discovery(
            format!("{}/.well-known/openid-configuration", issuer.url)
                .parse()
                .unwrap(),
        ),
        audiences: vec![AUDIENCE.to_owned()],
        clients: vec![],
        roles: vec![],
        groups: vec![],
        ca_pem: None,
        clock_skew: Duration::from_secs(30),
    }
}

/// The server's routers (public, metrics) with `settings` checked, keys fetched with `timing`.
fn server(settings: OidcSettings, timing: JwksTiming) -> (Router, Router, Arc<AppState>) {
    let state = AppState::new("m".into(), None, 1);
    let verifier = OidcVerifier::new(settings, timing).unwrap();
    let auth = Auth::oidc(verifier, state.metrics().auth_requests.clone());
    let state = Arc::new(state.with_auth(Some(auth)));
    (
        router(state.clone(), 1024),
        metrics_router(state.clone()),
        state,
    )
}

fn assert_401(answer: &Answer, reason: &str, token: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge
            .starts_with(r#"Bearer realm="berth", error="invalid_token", error_description=""#),
        "{challenge}"
    );
    let body: Value = serde_json::from_str(&answer.body).unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(reason), "{error:?} does not say {reason:?}");
    // The token (or its signature) is never echoed.
    if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8) {
        assert!(!answer.body.contains(signature) && !challenge.contains(signature));
    }
}

fn assert_403(answer: &Answer, reason: &str) {
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let challenge = answer.challenge.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="berth", error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        answer.body.contains(reason),
        "{} does not say {reason:?}",
        answer.body
    );
}

#[tokio::test]
async fn oidc_tokens_are_checked_on_every_path() {
    let key = SigningKey::es256("k1");
    let rsa = SigningKey::rs256("r1");
    let issuer = Issuer::start(&[&key, &rsa]).await;
    let (app, metrics, state) = server(oidc_settings(&issuer), JwksTiming::default());
    let claims = issuer.claims(AUDIENCE);

    // A valid token gets in, on every path; so does one signed RS256 by the realm's RSA key.
    let good = key.sign(&claims);
    for path in ["/v2/health/live", "/v2", "/v2/models/m/ready", "/v2/nope"] {
        let answer = call(&app, path, Some(&good)).await;
        assert!(answer.challenge.is_none(), "{path}");
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(call(&app, "/v2", Some(&good)).await.status, StatusCode::OK);
    assert_eq!(
        call(&app, "/v2", Some(&rsa.sign(&claims))).await.status,
        StatusCode::OK
    );

    // No token: 401 on every path, health included.
    for path in ["/v2/health/live", "/v2/health/ready", "/v2", "/v2/nope"] {
        assert_401(&call(&app, path, None).await, "needs a bearer token", "");
    }
    // ...but the kubelet's probes on the metrics address need none.
    assert_eq!(
        call(&metrics, "/v2/health/live", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(&metrics, "/v2/health/ready", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no model is loaded"
    );

    let with = |change: Value| {
        let mut c = claims.clone();
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let t = now();
    // Expired beyond the skew (30 s): 401. Expired within it: still in.
    let expired = key.sign(&with(json!({"exp": t - 31, "iat": t - 400})));
    assert_401(
        &call(&app, "/v2", Some(&expired)).await,
        "expired",
        &expired,
    );
    let late = key.sign(&with(json!({"exp": t - 10, "iat": t - 400})));
    assert_eq!(call(&app, "/v2", Some(&late)).await.status, StatusCode::OK);
    // Not valid yet, or issued in the future, beyond the skew.
    let early = key.sign(&with(json!({"nbf": t + 120})));
    assert_401(
        &call(&app, "/v2", Some(&early)).await,
        "not valid yet",
        &early,
    );
    let future = key.sign(&with(json!({"iat": t + 120})));
    assert_401(
        &call(&app, "/v2", Some(&future)).await,
        "issued in the future",
        &future,
    );
    // Signed by another key under the same kid.
    let forged = SigningKey::es256("k1").sign(&claims);
    assert_401(
        &call(&app, "/v2", Some(&forged)).await,
        "signature does not verify",
        &forged,
    );
    // Signed by a key the issuer does not publish.
    let stranger = SigningKey::es256("k9").sign(&claims);
    assert_401(
        &call(&app, "/v2", Some(&stranger)).await,
        "key the issuer does not publish",
        &stranger,
    );
    // Another issuer; another audience; no audience.
    let other_iss = key.sign(&with(json!({"iss": "http://127.0.0.1:1/realms/other"})));
    assert_401(
        &call(&app, "/v2", Some(&other_iss)).await,
        "not issued by",
        &other_iss,
    );
    let other_aud = key.sign(&with(json!({"aud": ["other-project"]})));
    assert_401(
        &call(&app, "/v2", Some(&other_aud)).await,
        "not for this model",
        &other_aud,
    );
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let no_aud = key.sign(&no_aud);
    assert_401(
        &call(&app, "/v2", Some(&no_aud)).await,
        "no 'aud' claim",
        &no_aud,
    );
    // aud as a list holding ours is fine.
    let list_aud = key.sign(&with(json!({"aud": ["other", AUDIENCE]})));
    assert_eq!(
        call(&app, "/v2", Some(&list_aud)).await.status,
        StatusCode::OK
    );
    // alg none, and HS256 with the public key as the HMAC secret.
    let none = unsigned(&claims, "k1");
    assert_401(
        &call(&app, "/v2", Some(&none)).await,
        "not a well-formed signed JWT",
        &none,
    );
    let hs = hmac_signed(&claims, "k1", key.public_pem.as_bytes());
    assert_401(
        &call(&app, "/v2", Some(&hs)).await,
        "HS256 is not accepted",
        &hs,
    );
    // A token for an RSA key's kid but signed ES256 (algorithm confusion).
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("r1".into());
    let confused = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
    assert_401(
        &call(&app, "/v2", Some(&confused)).await,
        "not the one of its key",
        &confused,
    );
    // Garbage, and another scheme.
    assert_401(
        &call(&app, "/v2", Some("not-a-jwt")).await,
        "not a well-formed",
        "",
    );
    let basic = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v2")
                .header(header::AUTHORIZATION, "Basic YWxpY2U6cHc=")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

    // Every check is counted, by result; refused requests are counted by endpoint too.
    let text = state.metrics().encode().unwrap();
    let count = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{series} missing in {text}"))
    };
    assert!(count(r#"berth_model_auth_requests_total{result="allowed"}"#) >= 8.0);
    assert!(count(r#"berth_model_auth_requests_total{result="unauthenticated"}"#) >= 15.0);
    assert_eq!(
        count(r#"berth_model_auth_requests_total{result="forbidden"}"#),
        0.0
    );
    assert!(count(r#"berth_model_server_requests_total{endpoint="live",code="401"}"#) >= 1.0);
}

#[tokio::test]
async fn clients_roles_and_groups_are_allowed_or_forbidden() {
    let key = SigningKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let claims = issuer.claims(AUDIENCE);
    let token = key.sign(&claims);
    let check = |clients: &[&str], roles: &[&str], groups: &[&str]| {
        let mut s = oidc_settings(&issuer);
        s.clients = clients.iter().map(|c| (*c).to_owned()).collect();
        s.roles = roles.iter().map(|c| (*c).to_owned()).collect();
        s.groups = groups.iter().map(|c| (*c).to_owned()).collect();
        server(s, JwksTiming::default()).0
    };
    // The token: azp team-client, realm role offline_access, client role model-user, group /ml-team.
    for (clients, roles, groups) in [
        (&["team-client"][..], &[][..], &[][..]),
        (&[], &["model-user"], &[]),
        (&[], &["offline_access"], &[]),
        (&[], &[], &["ml-team"]),
        (&[], &[], &["/ml-team"]),
        (&["x", "team-client"], &["model-user"], &["ml-team"]),
    ] {
        let app = check(clients, roles, groups);
        assert_eq!(
            call(&app, "/v2", Some(&token)).await.status,
            StatusCode::OK,
            "{clients:?} {roles:?} {groups:?}"
        );
    }
    let app = check(&["other-client"], &[], &[]);
    assert_403(
        &call(&app, "/v2", Some(&token)).await,
        "issued to client 'team-client'",
    );
    let app = check(&[], &["admin"], &[]);
    assert_403(&call(&app, "/v2", Some(&token)).await, "none of the roles");
    let app = check(&[], &[], &["other-team"]);
    assert_403(&call(&app, "/v2", Some(&token)).await, "none of the groups");
    // One list matching does not make up for another that does not.
    let app = check(&["team-client"], &["admin"], &[]);
    assert_403(&call(&app, "/v2", Some(&token)).await, "none of the roles");
    // A token without the claims at all.
    let mut bare = claims.clone();
    for claim in ["azp", "realm_access", "resource_access", "groups"] {
        bare.as_object_mut().unwrap().remove(claim);
    }
    let app = check(&[], &["model-user"], &[]);
    assert_403(
        &call(&app, "/v2", Some(&key.sign(&bare))).await,
        "none of the roles",
    );
}

#[tokio::test]
async fn rotated_keys_are_used_without_a_restart() {
    let old = SigningKey::es256("2026-a");
    let issuer = Issuer::start(&[&old]).await;
    let timing = JwksTiming {
        refresh_every: Duration::from_millis(300),
        min_refetch: Duration::ZERO,
        ..JwksTiming::default()
    };
    let (app, _, _) = server(oidc_settings(&issuer), timing);
    let claims = issuer.claims(AUDIENCE);
    assert_eq!(
        call(&app, "/v2", Some(&old.sign(&claims))).await.status,
        StatusCode::OK
    );

    // The issuer rotates: a new kid, the old key retired.
    let new = SigningKey::es256("2026-b");
    issuer.publish(&[&new]);
    // A token with the new kid is taken at once: the unknown kid makes the server refetch.
    assert_eq!(
        call(&app, "/v2", Some(&new.sign(&claims))).await.status,
        StatusCode::OK
    );
    // A fresh token of the retired key is refused once the periodic refresh dropped it.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut other = claims.clone();
    other["jti"] = json!("fresh");
    let retired = old.sign(&other);
    assert_401(
        &call(&app, "/v2", Some(&retired)).await,
        "key the issuer does not publish",
        &retired,
    );
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_interval() {
    let key = SigningKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let (app, _, _) = server(oidc_settings(&issuer), JwksTiming::default());
    let claims = issuer.claims(AUDIENCE);
    assert_eq!(
        call(&app, "/v2", Some(&key.sign(&claims))).await.status,
        StatusCode::OK
    );
    let fetched = issuer.jwks_hits();
    assert_eq!(fetched, 1);
    // A flood of made-up kids within the interval (10 s) fetches the JWKS at most once more.
    for i in 0..20 {
        let stranger = SigningKey::es256(&format!("made-up-{i}")).sign(&claims);
        assert_eq!(
            call(&app, "/v2", Some(&stranger)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(
        issuer.jwks_hits() <= fetched + 1,
        "{} fetches",
        issuer.jwks_hits()
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_not_401() {
    // Nothing listens on the issuer's port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/realms/test");
    let settings = OidcSettings {
        issuer: url.clone(),
        jwks: JwksSource::Url(format!("{url}/certs").parse().unwrap()),
        ..oidc_settings_for(&url)
    };
    let (app, _, state) = server(settings, JwksTiming::default());
    let token =
        SigningKey::es256("k1").sign(&json!({"iss": url, "aud": AUDIENCE, "exp": now() + 60}));
    let answer = call(&app, "/v2", Some(&token)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("cannot check the token now"),
        "{}",
        answer.body
    );
    let text = state.metrics().encode().unwrap();
    assert!(
        text.contains(r#"berth_model_auth_requests_total{result="error"} 1"#),
        "{text}"
    );
}

fn oidc_settings_for(url: &str) -> OidcSettings {
    OidcSettings {
        issuer: url.to_owned(),
        jwks: JwksSource::Url(format!("{url}/certs").parse().unwrap()),
        audiences: vec![AUDIENCE.to_owned()],
        clients: vec![],
        roles: vec![],
        groups: vec![],
        ca_pem: None,
        clock_skew: Duration::from_secs(30),
    }
}

/// A token shaped like the TokenRequest API's (a JWT with `exp`), labelled `name` in `sub` for
/// the fake API server; its signature is not checked by the model server.
fn sa_token(name: &str) -> String {
    sa_token_expiring(name, 4_102_444_800)
}

fn sa_token_expiring(name: &str, exp: u64) -> String {
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","kid":"k"}"#.to_owned()),
        b64(format!(r#"{{"exp":{exp},"sub":"{name}"}}"#))
    )
}

/// The `sub` of a token made by [`sa_token`].
fn label_of(token: &str) -> String {
    use base64::Engine as _;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["sub"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A unit test of the TokenReview request/answer mapping only, against a fake API server
/// in-process (plain HTTP): what the server sends (its own token from the token file, the
/// caller's token, the audiences) and how each answer maps to 200/401/403/503. The real
/// TokenReview path against a real API server is tested on the real node (`--auth
/// kubernetes` in crates/cluster-tests).
#[tokio::test]
async fn token_review_requests_and_answers() {
    use axum::routing::post;
    use std::sync::Mutex;

    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let api = {
        let seen = seen.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(
                move |headers: axum::http::HeaderMap, axum::Json(review): axum::Json<Value>| {
                    let seen = seen.clone();
                    async move {
                        let auth = headers[header::AUTHORIZATION].to_str().unwrap().to_owned();
                        seen.lock().unwrap().push((auth, review.clone()));
                        let label = label_of(review["spec"]["token"].as_str().unwrap());
                        let status = match label.as_str() {
                            "sa-team-client" => {
                                json!({"authenticated": true, "audiences": ["model-a"],
                            "user": {"username": "system:serviceaccount:team:client"}})
                            }
                            "sa-other-ns" => {
                                json!({"authenticated": true, "audiences": ["model-a"],
                            "user": {"username": "system:serviceaccount:other:client"}})
                            }
                            "api-server-token" => json!({"authenticated": true,
                            "audiences": ["https://kubernetes.default.svc"],
                            "user": {"username": "system:serviceaccount:team:client"}}),
                            "broken" => {
                                return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({})));
                            }
                            _ => json!({"authenticated": false, "error": "invalid bearer token"}),
                        };
                        (
                            StatusCode::CREATED,
                            axum::Json(json!({
                                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                "status": status,
                            })),
                        )
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    };
    let dir = std::env::temp_dir().join(format!("berth-token-review-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "pod-token\n").unwrap();
    let settings = KubernetesSettings {
        audiences: vec!["model-a".into()],
        namespaces: vec!["team".into()],
        service_accounts: vec![],
    };
    let reviewer = TokenReviewer::new(settings, api.parse().unwrap(), token_file.clone(), None)
        .unwrap()
        .with_token_reread(Duration::from_millis(200));
    let state = AppState::new("m".into(), None, 1);
    let auth = Auth::kubernetes(reviewer, state.metrics().auth_requests.clone());
    let state = Arc::new(state.with_auth(Some(auth)));
    let app = router(state.clone(), 1024);

    assert_eq!(
        call(&app, "/v2", Some(&sa_token("sa-team-client")))
            .await
            .status,
        StatusCode::OK
    );
    {
        let seen = seen.lock().unwrap();
        let (auth, review) = &seen[0];
        assert_eq!(auth, "Bearer pod-token");
        assert_eq!(review["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(review["kind"], "TokenReview");
        assert_eq!(
            review["spec"],
            json!({"token": sa_token("sa-team-client"), "audiences": ["model-a"]})
        );
    }
    // Cached: the same token again makes no second review.
    assert_eq!(
        call(&app, "/v2", Some(&sa_token("sa-team-client")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_403(
        &call(&app, "/v2", Some(&sa_token("sa-other-ns"))).await,
        "namespace 'other'",
    );
    assert_401(
        &call(&app, "/v2", Some(&sa_token("api-server-token"))).await,
        "not made for this model",
        "",
    );
    assert_401(
        &call(&app, "/v2", Some(&sa_token("made-up"))).await,
        "not a valid Kubernetes token",
        "",
    );
    assert_eq!(
        call(&app, "/v2", Some(&sa_token("broken"))).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_401(&call(&app, "/v2", None).await, "needs a bearer token", "");
    // Found in review: a string that is no unexpired JWT is refused without asking the API
    // server, so made-up tokens cannot flood it.
    let reviews = seen.lock().unwrap().len();
    assert_401(
        &call(&app, "/v2", Some("x1234")).await,
        "not an unexpired ServiceAccount token",
        "",
    );
    assert_401(
        &call(
            &app,
            "/v2",
            Some(&sa_token_expiring("sa-team-client", 1_000_000_000)),
        )
        .await,
        "not an unexpired ServiceAccount token",
        "",
    );
    assert_eq!(seen.lock().unwrap().len(), reviews);
    // The kubelet rotates the pod's token: the next review uses the new one.
    std::fs::write(&token_file, "pod-token-rotated\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = seen.lock().unwrap().len();
    let again = call(&app, "/v2", Some(&sa_token("sa-other-ns"))).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "a refused token is cached too"
    );
    let fresh = call(&app, "/v2", Some(&sa_token("made-up-2"))).await;
    assert_eq!(fresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.lock().unwrap().last().unwrap().0,
        "Bearer pod-token-rotated"
    );
    let text = state.metrics().encode().unwrap();
    assert!(
        text.contains(r#"berth_model_auth_requests_total{result="allowed"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"berth_model_auth_requests_total{result="forbidden"} 2"#),
        "{text}"
    );
    assert!(
        // Four reviewed, two refused before review (not a JWT; expired).
        text.contains(r#"berth_model_auth_requests_total{result="unauthenticated"} 6"#),
        "{text}"
    );
    assert!(
        text.contains(r#"berth_model_auth_requests_total{result="error"} 1"#),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The gRPC API (`--grpc-addr`) is behind the same check: a call without a valid token gets
/// `UNAUTHENTICATED` (grpc-status 16) before it reaches the service, one with a token does not.
#[tokio::test]
async fn grpc_calls_need_a_token_too() {
    let key = SigningKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let (_, _, state) = server(oidc_settings(&issuer), JwksTiming::default());
    let grpc = berth_model_server::server::grpc::router(state.clone());
    let call_grpc = |token: Option<String>| {
        let grpc = grpc.clone();
        async move {
            let mut request = Request::builder()
                .method("POST")
                .uri("/inference.GRPCInferenceService/ServerLive")
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers");
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            // An empty ServerLiveRequest: one uncompressed frame of length 0.
            let body = Body::from(vec![0u8, 0, 0, 0, 0]);
            grpc.oneshot(request.body(body).unwrap()).await.unwrap()
        }
    };
    let refused = call_grpc(None).await;
    assert_eq!(
        refused.status(),
        StatusCode::OK,
        "gRPC errors ride on HTTP 200"
    );
    assert_eq!(refused.headers()["grpc-status"], "16");
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let other = key.sign(&issuer.claims("other-project"));
    assert_eq!(call_grpc(Some(other)).await.headers()["grpc-status"], "16");
    let allowed = call_grpc(Some(key.sign(&issuer.claims(AUDIENCE)))).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(
        allowed.headers().get("grpc-status").is_none(),
        "an allowed call gets the service's answer, its status in the trailers"
    );
    let text = state.metrics().encode().unwrap();
    assert!(
        text.contains(r#"berth_model_auth_requests_total{result="allowed"} 1"#),
        "{text}"
    );
}
