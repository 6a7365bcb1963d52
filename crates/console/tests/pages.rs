//! The pages' routes in-process (no cluster): what is answered before any API call. Sign-in
//! (browsers to the login, API clients 401), CSRF (missing, wrong, cross-site: 403), bad input
//! (400 / 413 / 404 for a name that is no DNS label), the caller the console will not act for
//! (a `system:` group: 403), and the assets (integrity, cache lifetime, CSP). The console's API
//! server is an address where nothing listens: a request that reached it would be a 503 or a
//! page saying the console could not read, never what these tests expect. The same routes
//! against the real control plane (403s of the API server, happy paths) are in
//! crates/cluster-tests/tests/cluster/console.rs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

use berth_console::app::{Config, Console, router};
use berth_console::kube_auth::Identity;
use berth_console::oidc::OidcSettings;
use berth_console::session::Session;

const SESSION: &str = "test-session-id";
const CSRF: &str = "the-sessions-csrf-token";

fn unreachable_cluster() -> kube::Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// A console with OIDC settings (never contacted: login redirects are built lazily) and a
/// session for `user` with `groups`.
fn console(user: &str, groups: &[&str]) -> Arc<Console> {
    let console = Console::new(
        Config {
            notebook_domain: None,
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
        },
        unreachable_cluster(),
    )
    .unwrap();
    console
        .store()
        .put_session(
            SESSION.into(),
            Session {
                identity: Identity {
                    username: user.into(),
                    groups: groups.iter().map(|g| (*g).to_owned()).collect(),
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

async fn send(console: &Arc<Console>, request: Request<Body>) -> axum::http::Response<Body> {
    router(console.clone()).oneshot(request).await.unwrap()
}

async fn text(response: axum::http::Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cookie() -> String {
    format!("__Host-berth_console_session={SESSION}")
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie())
        .header(header::ORIGIN, "https://console.example")
        .header("sec-fetch-site", "same-origin")
}

const POSTS: [&str; 6] = [
    "/projects/team-a/members",
    "/projects/new",
    "/projects/team-a/notebooks",
    "/projects/team-a/notebooks/lab",
    "/projects/team-a/models",
    "/projects/team-a/models/iris",
];
const GETS: [&str; 7] = [
    "/",
    "/projects/team-a",
    "/projects/new",
    "/projects/team-a/notebooks",
    "/projects/team-a/notebooks/lab",
    "/projects/team-a/models",
    "/projects/team-a/models/iris",
];

#[tokio::test]
async fn without_credentials_browsers_go_to_login_and_api_clients_get_401() {
    let c = console("ada@example.com", &[]);
    for path in GETS {
        let browser = send(
            &c,
            Request::get(path)
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(browser.status(), StatusCode::FOUND, "{path}");
        let to = browser.headers()[header::LOCATION].to_str().unwrap();
        assert!(to.starts_with("/login?next=%2F"), "{path}: {to}");
        let api = send(&c, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(api.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    for path in POSTS {
        // A POST is never redirected to a login: 401, and nothing done.
        let response = send(
            &c,
            Request::post(path)
                .header(header::ACCEPT, "text/html")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "csrf={CSRF}&action=add&kind=User&name=x&role=owner"
                )))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        // An ended or unknown session is no session.
        let response = send(
            &c,
            Request::post(path)
                .header(header::COOKIE, "__Host-berth_console_session=forged")
                .body(Body::from(format!("csrf={CSRF}")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn posts_without_the_sessions_csrf_token_or_from_another_site_are_403() {
    let c = console("ada@example.com", &[]);
    let form = "action=add&kind=User&name=eve%40example.com&role=owner&owners=&name=team-b";
    for path in POSTS {
        let cases: Vec<(&str, axum::http::request::Builder, String)> = vec![
            ("no token", post(path), form.to_owned()),
            ("wrong token", post(path), format!("csrf=not-it&{form}")),
            (
                "a token's prefix",
                post(path),
                format!("csrf=the-sessions&{form}"),
            ),
            (
                // (Not `post()`: its `same-origin` would be the first of two headers.)
                "cross-site",
                Request::post(path)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, cookie())
                    .header("sec-fetch-site", "cross-site"),
                format!("csrf={CSRF}&{form}"),
            ),
            (
                "another origin",
                Request::post(path)
                    .header(header::COOKIE, cookie())
                    .header(header::ORIGIN, "https://evil.example"),
                format!("csrf={CSRF}&{form}"),
            ),
            (
                "a wrong header token",
                post(path).header("x-csrf-token", "nope"),
                form.to_owned(),
            ),
        ];
        for (what, request, body) in cases {
            let response = send(&c, request.body(Body::from(body)).unwrap()).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}: {what}");
            let page = text(response).await;
            assert!(
                page.contains("Refused: cross-site request"),
                "{path}: {what}: {page}"
            );
        }
    }
}

#[tokio::test]
async fn bad_input_is_400_before_any_api_call() {
    let c = console("ada@example.com", &[]);
    let member = "/projects/team-a/members";
    for (what, body) in [
        ("unknown kind", "action=add&kind=Robot&name=x&role=viewer"),
        ("unknown role", "action=add&kind=User&name=x&role=admin"),
        (
            "unknown action",
            "action=promote&kind=User&name=x&role=owner",
        ),
        ("empty name", "action=add&kind=User&name=&role=viewer"),
        (
            "a name with spaces",
            "action=add&kind=User&name=a+b&role=viewer",
        ),
    ] {
        let response = send(
            &c,
            post(member)
                .body(Body::from(format!("csrf={CSRF}&{body}")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }
    let long = "a".repeat(254);
    let response = send(
        &c,
        post(member)
            .body(Body::from(format!(
                "csrf={CSRF}&action=add&kind=User&name={long}&role=viewer"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "oversize name");
    let huge = "a".repeat(70 * 1024);
    for path in POSTS {
        let response = send(
            &c,
            post(path)
                .body(Body::from(format!("csrf={CSRF}&name={huge}")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    for (what, body) in [
        ("a name that is no DNS label", "name=Team_A"),
        ("a name over 63", &format!("name={}", "a".repeat(64))[..]),
        (
            "an unknown member kind",
            "name=team-a&members=Robot+x+viewer",
        ),
        ("an unknown role", "name=team-a&members=User+x+admin"),
        (
            "an oversize quota",
            &format!("name=team-a&cpu={}", "1".repeat(33))[..],
        ),
    ] {
        let response = send(
            &c,
            post("/projects/new")
                .body(Body::from(format!("csrf={CSRF}&{body}")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        let page = text(response).await;
        assert!(
            page.contains("class=\"error\""),
            "{what}: the form says why"
        );
        assert!(
            page.contains("value=\"team-a\"") || !body.contains("team-a"),
            "{what}: values kept"
        );
    }
    // A project name that is no DNS label is not a project: 404 before any read.
    let response = send(
        &c,
        Request::get("/projects/Not_A_Label")
            .header(header::COOKIE, cookie())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn notebook_and_model_forms_refuse_bad_input_before_any_api_call() {
    let c = console("ada@example.com", &[]);
    // Unknown actions: 400, whatever the object.
    for (path, body) in [
        ("/projects/team-a/notebooks/lab", "action=restart"),
        ("/projects/team-a/notebooks/lab", "action=open"),
        ("/projects/team-a/notebooks/lab", ""),
        ("/projects/team-a/models/iris", "action=scale"),
        ("/projects/team-a/models/iris", "action="),
    ] {
        let response = send(
            &c,
            post(path)
                .body(Body::from(format!("csrf={CSRF}&{body}")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        assert!(text(response).await.contains("is not an action"), "{path}");
    }
    // Names that cannot be a project, notebook or model: 404 before any read.
    for path in [
        "/projects/Team_A/notebooks",
        "/projects/team-a/notebooks/Lab",
        "/projects/team-a/notebooks/1lab",
        "/projects/Team_A/models",
        "/projects/team-a/models/Iris",
        &format!("/projects/team-a/models/{}", "a".repeat(41)),
    ] {
        let response = send(
            &c,
            post(path)
                .body(Body::from(format!("csrf={CSRF}&action=stop")))
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {path}");
    }
    for path in ["/projects/Team_A/notebooks", "/projects/Team_A/models"] {
        let response = send(
            &c,
            Request::get(path)
                .header(header::COOKIE, cookie())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    let response = send(
        &c,
        Request::get("/projects/team-a/models/Not_A_Model")
            .header(header::COOKIE, cookie())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(response.status(), StatusCode::OK);
    // The deploy form's field errors, beside their fields, the values kept (escaped).
    let response = send(
        &c,
        post("/projects/team-a/models")
            .body(Body::from(format!(
                "csrf={CSRF}&name=Iris%3Cb%3E&sourceUri=ftp%3A%2F%2Fhost%2Fm&runtime=onnx&replicas=500"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let page = text(response).await;
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(
        page.contains("<code>name</code>"),
        "the name's error: {page}"
    );
    assert!(
        page.contains("<code>sourceUri</code>"),
        "the source's error"
    );
    assert!(
        page.contains("<code>replicas</code>"),
        "the replicas' error"
    );
    assert!(page.contains("value=\"Iris&#60;b&#62;\""), "kept, escaped");
    assert!(!page.contains("Iris<b>"), "never raw");
    assert!(page.contains("value=\"ftp://host/m\""), "kept");
    assert!(
        page.contains("<option value=\"onnx\" selected>"),
        "the runtime chosen is kept"
    );
    // A field sent twice is refused, not guessed at.
    let response = send(
        &c,
        post("/projects/team-a/models")
            .body(Body::from(format!(
                "csrf={CSRF}&name=iris&name=other&sourceUri=s3%3A%2F%2Fb%2Fm&runtime=onnx"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("more than once"));
}

#[tokio::test]
async fn a_system_group_from_the_identity_provider_is_never_acted_for() {
    let c = console("ada@example.com", &["system:masters"]);
    for path in GETS {
        let response = send(
            &c,
            Request::get(path)
                .header(header::COOKIE, cookie())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(text(response).await.contains("reserved group"), "{path}");
    }
}

#[tokio::test]
async fn htmx_is_served_immutable_and_pages_allow_only_the_consoles_scripts() {
    let c = console("ada@example.com", &[]);
    let response = send(
        &c,
        Request::get(berth_console::assets::HTMX_PATH)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], berth_console::assets::HTMX);
    // Any page: here the refusal of a forged session's POST.
    let response = send(
        &c,
        post("/projects/new").body(Body::from("name=x")).unwrap(),
    )
    .await;
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
}

/// A notebook's script can set a second `berth_console_session` cookie for a narrower path
/// (`/projects`) beside the HttpOnly one, to run the victim's pages in the attacker's session:
/// a request with two session cookies is refused on the pages as on the notebooks, GET and POST.
#[tokio::test]
async fn two_session_cookies_are_refused_on_the_pages_too() {
    let console = console("ds@example.com", &[]);
    let two = format!("__Host-berth_console_session=planted; {}", cookie());
    for uri in ["/", "/projects/vision", "/projects/vision/notebooks"] {
        let response = send(
            &console,
            Request::get(uri)
                .header(header::ACCEPT, "text/html")
                .header(header::COOKIE, &two)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "GET {uri}");
        assert!(text(response).await.contains("two berth_console_session"));
    }
    let response = send(
        &console,
        post("/projects/vision/members")
            .header(header::COOKIE, &two)
            .body(Body::from(format!(
                "action=add&kind=User&name=x%40example.com&role=owner&csrf={CSRF}"
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
