//! The console's routes:
//! - `/notebook/<namespace>/<name>/...`: the authenticated, authorized proxy to that notebook;
//! - `/login?next=<path>`, `/oauth2/callback`, `/logout`: browser sessions (OIDC);
//! - `/healthz`: liveness and readiness (no authentication, nothing about anyone);
//! - `/`, `/projects/new`, `/projects/<name>`, `/projects/<name>/members`: the pages
//!   (crate::projects), read and written as the user (crate::acting);
//! - `/projects/<name>/notebooks[/<notebook>]`, `/projects/<name>/models[/<model>]`: the
//!   Notebooks and Models pages (crate::notebooks_pages, crate::models_pages);
//! - `/assets/...`: htmx and the console's styles, versioned paths, cached a year.
//!
//! Every notebook request goes through [`notebook`]: the path is checked first (400, no API call),
//! then the caller is authenticated (a bearer token by TokenReview, else the session cookie; a
//! browser without either is sent to log in, anything else gets 401), a WebSocket's `Origin` must
//! be the console's own (403), then a SubjectAccessReview as the caller decides (403 with who they
//! are and what is missing). Only then is the Notebook read (404 if there is none: outsiders learn
//! nothing of which notebooks exist) and, when it is stopped, a page says how to start it.
//! Each request is logged with its user (the audit), never with a token.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode, header};
use axum::routing::get;

use berth_api::notebook::{Notebook, NotebookPhase};
use k8s_openapi::api::core::v1::Service;

use crate::acting::{ActAs, Acting, Caller};
use crate::forward::{self, UpstreamClient};
use crate::kube_auth::{Identity, Refusal, Reviewer};
use crate::notebook_origin::{self, NotebookDomain, NotebookSessions, Tickets, notebook_cookie};
use crate::oidc::{Oidc, OidcSettings};
use crate::pages::{escape, html, page};
use crate::path::{self, NotebookPath};
use crate::projects::cache::ProjectCache;
use crate::session::{self, Session, Store};
use crate::upstream;
use crate::{
    assets, handoff, layout, login, models_pages, notebook_page, notebooks_pages, oidc, projects,
};

/// How the console runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The console's public URL as browsers reach it (`https://console.example`), its origin:
    /// WebSocket `Origin`s must equal it, `Secure` cookies when https, the OIDC redirect URI.
    pub public_url: String,
    /// Browser login; `None`: bearer tokens only.
    pub oidc: Option<OidcSettings>,
    /// `--notebook-domain`: each notebook is served at `<label>.<domain>` (its own origin,
    /// crate::notebook_origin); `None`: on the console's origin (one origin for all, unsafe).
    pub notebook_domain: Option<String>,
}

/// The console's state.
pub struct Console {
    pub config: Config,
    origin: String,
    pub(crate) secure: bool,
    reviewer: Reviewer,
    kube: kube::Client,
    pub(crate) oidc: Option<Oidc>,
    pub(crate) store: Store,
    http: UpstreamClient,
    /// Makes the clients that act as the user.
    pub acting: Acting,
    /// The console's watched cache of Projects, to find a user's candidate projects.
    pub projects: ProjectCache,
    notebook_domain: Option<NotebookDomain>,
    tickets: Tickets,
    notebook_sessions: NotebookSessions,
}

impl Console {
    /// A console acting by impersonation through `kube` (its own ServiceAccount).
    pub fn new(config: Config, kube: kube::Client) -> anyhow::Result<Arc<Self>> {
        let acting = Acting::new(ActAs::Impersonate, kube.clone());
        Self::with_acting(config, kube, acting)
    }

    /// A console whose own reads (TokenReview, SubjectAccessReview, the Project cache, the
    /// notebook proxy's reads) use `kube`, and whose pages act as the user through `acting`.
    pub fn with_acting(
        config: Config,
        kube: kube::Client,
        acting: Acting,
    ) -> anyhow::Result<Arc<Self>> {
        let url = reqwest::Url::parse(&config.public_url)
            .map_err(|e| anyhow::anyhow!("--public-url {}: {e}", config.public_url))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
            "--public-url must be an http(s) URL with a host"
        );
        let origin = url.origin().ascii_serialization();
        let notebook_domain = config
            .notebook_domain
            .as_deref()
            .map(|suffix| NotebookDomain::new(suffix, &url))
            .transpose()?;
        let oidc = config.oidc.clone().map(Oidc::new).transpose()?;
        Ok(Arc::new(Self {
            secure: url.scheme() == "https",
            origin,
            reviewer: Reviewer::new(kube.clone()),
            kube,
            oidc,
            store: Store::default(),
            http: forward::upstream_client(),
            acting,
            projects: ProjectCache::default(),
            notebook_domain,
            tickets: Tickets::default(),
            notebook_sessions: NotebookSessions::default(),
            config,
        }))
    }

    /// Sessions (tests put sessions here instead of a login at an identity provider).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts watching Projects with the console's own client (kube-runtime reflector); runs
    /// until the process ends.
    pub fn watch_projects(self: &Arc<Self>) {
        let console = self.clone();
        tokio::spawn(async move { console.projects.run(console.kube.clone()).await });
    }

    /// The console's origin, `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Where notebooks get their own origins (`--notebook-domain`), if set.
    pub fn notebook_domain(&self) -> Option<&NotebookDomain> {
        self.notebook_domain.as_ref()
    }

    /// Hand-off tickets (tests make tickets here as the hand-off would).
    pub fn tickets(&self) -> &Tickets {
        &self.tickets
    }

    /// Notebook hosts' sessions.
    pub fn notebook_sessions(&self) -> &NotebookSessions {
        &self.notebook_sessions
    }

    pub(crate) fn reviewer(&self) -> &Reviewer {
        &self.reviewer
    }
}

/// The router.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(projects::my::page))
        .route(
            "/projects/new",
            get(projects::new::form).post(projects::new::create),
        )
        .route("/projects/{name}", get(projects::page::page))
        .route(
            "/projects/{name}/members",
            axum::routing::post(projects::members::change),
        )
        .route(
            "/projects/{name}/notebooks",
            get(notebooks_pages::page).post(notebooks_pages::spawn),
        )
        .route(
            "/projects/{name}/notebooks/{notebook}",
            get(notebook_page::page).post(notebooks_pages::act),
        )
        .route(
            "/projects/{name}/models",
            get(models_pages::list).post(models_pages::deploy),
        )
        .route(
            "/projects/{name}/models/{model}",
            get(models_pages::page).post(models_pages::act),
        )
        .route(assets::HTMX_PATH, get(assets::htmx))
        .route("/assets/console-1.css", get(layout::css))
        .route("/healthz", get(|| async { "ok" }))
        .route("/login", get(login::login))
        .route("/oauth2/callback", get(login::callback))
        .route("/logout", get(login::logout))
        .route("/notebook-handoff", get(handoff::handoff))
        .route("/notebook/{*rest}", axum::routing::any(notebook))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            notebook_hosts_serve_notebooks_only,
        ))
        .with_state(console)
}

/// A notebook host (`<label>.<--notebook-domain>`) serves `/notebook/...` and nothing else: none
/// of the console's pages, its login or its hand-off (404).
async fn notebook_hosts_serve_notebooks_only(
    State(console): State<Arc<Console>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    if let Some(domain) = console.notebook_domain()
        && let Some(host) = notebook_origin::request_host(request.headers(), request.uri())
        && domain.label_of(host).is_some()
        && !request.uri().path().starts_with(path::PREFIX)
    {
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "this host serves one notebook, under /notebook/<namespace>/<name>/",
        );
    }
    next.run(request).await
}

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    Token,
    Session,
}

/// The bearer token of `Authorization`, if any (`None` for another scheme).
fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(()));
    };
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Some(Ok(token.trim()))
        }
        _ => Some(Err(())),
    }
}

fn unauthenticated(why: &str) -> Response<Body> {
    let mut response = page(StatusCode::UNAUTHORIZED, "Not logged in", why);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"berth-console\""),
    );
    response
}

pub(crate) fn redirect(to: &str) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = header::HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

pub(crate) fn with_cookie(mut response: Response<Body>, cookie: &str) -> Response<Body> {
    if let Ok(value) = header::HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(crate) fn unavailable(why: &str) -> Response<Body> {
    page(StatusCode::SERVICE_UNAVAILABLE, "Try again", why)
}

/// 503 with `Retry-After: 60`: the console's bounded memory is full.
pub(crate) fn busy(why: &str) -> Response<Body> {
    let mut response = unavailable(why);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    response
}

/// An authenticated caller.
pub(crate) struct Authenticated {
    pub caller: Caller,
    pub by: By,
    /// The session's CSRF token (browser sessions only).
    pub csrf: Option<String>,
}

/// Who the caller is, or the answer to give them. A browser session whose ID token is about to
/// expire is refreshed first (the identity provider's `refresh_token` grant); when that fails,
/// the session ends and the caller is not logged in.
pub(crate) async fn authenticate(
    console: &Console,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Authenticated, Response<Body>> {
    match bearer(headers) {
        Some(Ok(token)) => {
            return match console.reviewer.authenticate(token).await {
                Ok(who) => Ok(Authenticated {
                    caller: Caller {
                        identity: who,
                        token: Some(token.to_owned()),
                    },
                    by: By::Token,
                    csrf: None,
                }),
                Err(Refusal::Unauthenticated(why)) => Err(unauthenticated(&why)),
                Err(Refusal::Unavailable(why)) => Err(unavailable(&why)),
            };
        }
        Some(Err(())) => {
            return Err(unauthenticated(
                "the Authorization header is not `Bearer <token>`",
            ));
        }
        None => {}
    }
    if session::cookie_count(headers, session::session_cookie(console.secure)) > 1 {
        // Two session cookies: one may have been planted (a notebook's script can set one for a
        // narrower path, such as /projects, beside the HttpOnly one); which one a server reads
        // differs, so none is used, for the pages as for the notebooks.
        tracing::warn!(path = %uri.path(), "refused: two session cookies");
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Two console sessions",
            "this request carries two berth_console_session cookies; log out (/logout) and log in again",
        ));
    }
    if let Some(id) = session::cookie(headers, session::session_cookie(console.secure))
        && let Some(session) = console.store.session(id)
        && let Some(session) = fresh(console, id, session).await
    {
        return Ok(Authenticated {
            caller: Caller {
                identity: session.identity,
                token: Some(session.id_token),
            },
            by: By::Session,
            csrf: Some(session.csrf),
        });
    }
    let browser = matches!(*method, Method::GET | Method::HEAD)
        && !forward::is_websocket(headers)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if browser && console.oidc.is_some() {
        let next = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut to = String::from("/login?next=");
        to.extend(percent_encoding::utf8_percent_encode(
            next,
            percent_encoding::NON_ALPHANUMERIC,
        ));
        return Err(redirect(&to));
    }
    Err(unauthenticated(
        "log in through the console, or send `Authorization: Bearer <token>` with a token the cluster accepts (kubectl create token ...)",
    ))
}

/// `session` with an ID token valid for at least [`session::REFRESH_BEFORE`], refreshed at the
/// identity provider when needed; `None` (and the session ended) when it cannot be.
pub(crate) async fn fresh(console: &Console, id: &str, session: Session) -> Option<Session> {
    let now = Instant::now();
    if !session.needs_refresh(now) {
        return Some(session);
    }
    let user = session.identity.username.clone();
    let refreshed = match (&console.oidc, &session.refresh_token) {
        (Some(oidc), Some(refresh_token)) => oidc
            .refresh(refresh_token, &session.nonce)
            .await
            .and_then(|done| {
                let who = oidc::identity(&done.claims, &oidc.settings)?;
                if who.username != user {
                    return Err(oidc::LoginError(
                        "the refreshed ID token names another user".into(),
                    ));
                }
                Ok((done, who))
            }),
        _ => Err(oidc::LoginError("no refresh token".into())),
    };
    match refreshed {
        Ok((done, who)) => {
            let mut kept = session;
            kept.identity = who;
            kept.id_token_until = Some(session::instant_of(done.claims.exp));
            kept.id_token = done.id_token;
            kept.refresh_token = done.refresh_token;
            if let Some(secs) = done.session_secs {
                let until = now + std::time::Duration::from_secs(secs);
                kept.until = kept.until.map(|u| u.min(until));
            }
            if console.store.update_session(id, kept.clone()) {
                tracing::info!(user = %user, "session refreshed");
                Some(kept)
            } else {
                None
            }
        }
        Err(e) => {
            // The identity provider's session ended (logout, expiry, a disabled user), or it
            // cannot be reached: either way this session ends; the user logs in again.
            tracing::info!(user = %user, reason = %e, "session ended: its ID token could not be refreshed");
            console.store.end_session(id);
            None
        }
    }
}

pub(crate) fn forbidden(who: &Identity, at: &NotebookPath) -> Response<Body> {
    let groups = if who.groups.is_empty() {
        "no groups".to_owned()
    } else {
        format!("groups {}", who.groups.join(", "))
    };
    html(
        StatusCode::FORBIDDEN,
        "You cannot open this notebook",
        &format!(
            "<p>You are <b>{user}</b> ({groups}).</p>\n<p>Opening the notebook <code>{name}</code> of \
             namespace <code>{ns}</code> needs permission to <code>create</code> \
             <code>notebooks.berth.dev/connect</code> <code>{name}</code> in namespace \
             <code>{ns}</code>, which owners and editors of its project have (viewers do not: \
             JupyterLab runs code). Ask an owner of the project to make you an editor, then try \
             again.</p>\n<p><a href=\"/logout\">Log out</a></p>",
            user = escape(&who.username),
            groups = escape(&groups),
            name = escape(&at.name),
            ns = escape(&at.namespace),
        ),
    )
}

fn stopped_page(
    at: &NotebookPath,
    phase: Option<NotebookPhase>,
    project: Option<&str>,
    pages: &str,
) -> Response<Body> {
    let (state, verb) = match phase {
        Some(NotebookPhase::Culled) => ("was stopped for being idle (culled)", "stopped"),
        Some(NotebookPhase::Stopping) => ("is stopping", "stopping"),
        _ => ("is stopped", "stopped"),
    };
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        "This notebook is not running",
        &format!(
            "<p>The notebook <code>{name}</code> of namespace <code>{ns}</code> {state}. Its home \
             volume keeps your files while it is {verb}.</p>\n<p>Start it again with:</p>\n\
             <pre>kubectl patch nb {name} -n {ns} --type merge -p '{{\"spec\":{{\"stopped\":false}}}}'</pre>\n\
             <p>then reload this page once it is Running (<code>kubectl get nb {name} -n {ns}</code>).</p>{page}",
            name = escape(&at.name),
            ns = escape(&at.namespace),
            page = project
                .map(|p| format!(
                    "\n<p>Or press <b>Start</b> on <a href=\"{pages}/projects/{p}/notebooks/{name}\">its page</a>.</p>",
                    pages = escape(pages),
                    p = escape(p),
                    name = escape(&at.name),
                ))
                .unwrap_or_default(),
        ),
    )
}

/// Who the caller is on the console's origin without `--notebook-domain` (one origin for every
/// notebook): a bearer token or the console's session cookie.
async fn on_the_consoles_origin(
    console: &Console,
    at: &NotebookPath,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(Identity, By), Response<Body>> {
    if session::cookie_count(headers, session::session_cookie(console.secure)) > 1 {
        // Two session cookies: one may have been planted (a notebook's script, a sibling
        // subdomain); which one a server reads differs, so none is used.
        tracing::warn!(namespace = %at.namespace, notebook = %at.name, "refused: two session cookies");
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Two console sessions",
            "this request carries two berth_console_session cookies; log out (/logout) and log in again",
        ));
    }
    match authenticate(console, method, uri, headers).await {
        Ok(found) => Ok((found.caller.identity, found.by)),
        Err(answer) => {
            tracing::info!(namespace = %at.namespace, notebook = %at.name, %method, status = answer.status().as_u16(), "refused: not authenticated");
            Err(answer)
        }
    }
}

/// Who the caller is on the notebook's own host: a bearer token, else the host's notebook cookie
/// (its console session must be alive: crate::handoff); a browser without either goes to the
/// hand-off, anything else gets 401.
async fn on_a_notebook_host(
    console: &Console,
    domain: &NotebookDomain,
    at: &NotebookPath,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(Identity, By), Response<Body>> {
    if bearer(headers).is_some() {
        return authenticate(console, method, uri, headers)
            .await
            .map(|found| (found.caller.identity, found.by));
    }
    let name = notebook_cookie(domain.secure());
    if session::cookie_count(headers, name) > 1 {
        tracing::warn!(namespace = %at.namespace, notebook = %at.name, "refused: two notebook cookies");
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Two notebook sessions",
            "this request carries two notebook session cookies; clear this site's cookies and open the notebook again",
        ));
    }
    if let Some(id) = session::cookie(headers, name)
        && let Some(kept) = console.notebook_sessions().get(id, &at.namespace, &at.name)
        && let Some(console_session) = console.store.session(&kept.session)
        && let Some(console_session) = fresh(console, &kept.session, console_session).await
    {
        return Ok((console_session.identity, By::Session));
    }
    let browser = matches!(*method, Method::GET | Method::HEAD)
        && !forward::is_websocket(headers)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if browser {
        return Err(handoff::to_console(console, domain, at, uri));
    }
    tracing::info!(namespace = %at.namespace, notebook = %at.name, %method, "refused: no notebook session");
    Err(unauthenticated(
        "open the notebook in a browser (its page signs you in through the console), or send `Authorization: Bearer <token>`",
    ))
}

/// `/notebook/<namespace>/<name>/...`.
async fn notebook(State(console): State<Arc<Console>>, request: Request) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let raw = request.uri().path().to_owned();
    let at = match path::parse(&raw) {
        Ok(at) => at,
        Err(path::BadPath(why)) => {
            tracing::info!(path = %raw, reason = why, "refused: bad path");
            return page(StatusCode::BAD_REQUEST, "Not a notebook path", why);
        }
    };
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let websocket = forward::is_websocket(&headers);
    let (who, by, origin) = match console.notebook_domain() {
        None => match on_the_consoles_origin(&console, &at, &method, &uri, &headers).await {
            Ok((who, by)) => (who, by, console.origin().to_owned()),
            Err(answer) => return answer,
        },
        Some(domain) => {
            let host = notebook_origin::request_host(&headers, &uri).unwrap_or_default();
            match domain.label_of(host) {
                Some(label) => {
                    let own = berth_api::notebook_host::label(&at.namespace, &at.name);
                    if !label.is_some_and(|l| l.eq_ignore_ascii_case(&own)) {
                        tracing::info!(host, namespace = %at.namespace, notebook = %at.name, "refused: another notebook's host");
                        return page(
                            StatusCode::NOT_FOUND,
                            "Not this notebook's host",
                            "each notebook is served at a host of its own; this is not that of this path",
                        );
                    }
                    if raw.strip_prefix(at.prefix().as_str()) == Some(handoff::CONSUME) {
                        return handoff::consume(&console, domain, &at, &uri, &headers);
                    }
                    match on_a_notebook_host(&console, domain, &at, &method, &uri, &headers).await {
                        Ok((who, by)) => (who, by, domain.origin(&at.namespace, &at.name)),
                        Err(answer) => return answer,
                    }
                }
                None if bearer(&headers).is_some() => {
                    // No ambient authority: a bearer caller may still use the console's origin.
                    match authenticate(&console, &method, &uri, &headers).await {
                        Ok(found) => (found.caller.identity, found.by, console.origin().to_owned()),
                        Err(answer) => return answer,
                    }
                }
                None if matches!(method, Method::GET | Method::HEAD) && !websocket => {
                    // status.url and old links: the notebook's own host (which hands off).
                    let rest = uri.path_and_query().map_or("/", |pq| pq.as_str());
                    return redirect(&format!("{}{rest}", domain.origin(&at.namespace, &at.name)));
                }
                None => {
                    tracing::info!(namespace = %at.namespace, notebook = %at.name, %method, websocket, "refused: a browser's notebook request on the console's origin");
                    return page(
                        StatusCode::FORBIDDEN,
                        "Notebooks have hosts of their own",
                        "this console serves each notebook at a host of its own; open it there",
                    );
                }
            }
        }
    };
    if headers.contains_key("service-worker") {
        // A worker a notebook's script registers would stay in its visitors' browsers after its
        // author lost access, and serve their page the next time anyone opens the notebook.
        // Browsers send `Service-Worker: script` on registration and on every update check.
        tracing::warn!(user = %who.username, namespace = %at.namespace, notebook = %at.name, "refused: a service worker script");
        return page(
            StatusCode::FORBIDDEN,
            "No service workers",
            "a notebook may not install a service worker: it would outlive its author's access",
        );
    }
    if by == By::Session && !websocket && !matches!(method, Method::GET | Method::HEAD) {
        // Notebook hosts are one site: another notebook's page may send a form here with this
        // host's cookie (SameSite=Lax does not stop same-site requests). Jupyter checks its own
        // XSRF token, but an image of the team's own may not: only this host's pages may write.
        if let Err(crate::csrf::Refused(why)) = crate::csrf::same_site(&headers, &origin) {
            tracing::warn!(user = %who.username, namespace = %at.namespace, notebook = %at.name, %method, "refused: {why}");
            return page(StatusCode::FORBIDDEN, "Cross-site request refused", why);
        }
    }
    if websocket {
        let sent = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        // Browsers always send Origin on a WebSocket; a cookie without it is not a browser of
        // ours. Token callers (no cookie) may omit it, but not send another.
        let ok = match sent {
            Some(sent) => sent == origin,
            None => by == By::Token,
        };
        if !ok {
            tracing::warn!(user = %who.username, namespace = %at.namespace, notebook = %at.name, origin = ?sent, "refused: WebSocket from another origin");
            return page(
                StatusCode::FORBIDDEN,
                "Cross-site WebSocket refused",
                "a WebSocket to a notebook must come from the notebook's own pages",
            );
        }
    }
    match console
        .reviewer
        .may_open(&who, &at.namespace, &at.name)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(user = %who.username, groups = ?who.groups, namespace = %at.namespace, notebook = %at.name, %method, path = %raw, "refused: may not connect to the notebook");
            return forbidden(&who, &at);
        }
        Err(Refusal::Unavailable(why) | Refusal::Unauthenticated(why)) => return unavailable(&why),
    }
    if at.bare {
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return redirect(&format!("{}{query}", at.prefix()));
    }
    let notebooks: kube::Api<Notebook> = kube::Api::namespaced(console.kube.clone(), &at.namespace);
    let found = match notebooks.get_opt(&at.name).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Notebook");
            return unavailable("cannot read the notebook now; retry later");
        }
    };
    let Some(nb) = found else {
        return page(
            StatusCode::NOT_FOUND,
            "No such notebook",
            &format!(
                "there is no notebook {} in namespace {}",
                at.name, at.namespace
            ),
        );
    };
    let phase = nb.status.as_ref().and_then(|s| s.phase);
    if nb.spec.stopped
        || matches!(
            phase,
            Some(NotebookPhase::Stopped | NotebookPhase::Culled | NotebookPhase::Stopping)
        )
    {
        // Its project, by namespace, from the console's cache of Projects (for the link to the
        // Start button of the notebook's page).
        let project = console
            .projects
            .all()
            .into_iter()
            .find(|p| projects::view::namespace(p) == at.namespace)
            .and_then(|p| p.metadata.name.clone());
        // On a notebook's own host, the console's pages are on the console's origin.
        let pages = if origin == console.origin() {
            ""
        } else {
            console.origin()
        };
        return stopped_page(&at, phase, project.as_deref(), pages);
    }
    // Where: the address of the Service Berth made for this very Notebook, never a DNS name
    // (upstream.rs says why).
    let uid = nb.metadata.uid.clone().unwrap_or_default();
    let services: kube::Api<Service> = kube::Api::namespaced(console.kube.clone(), &at.namespace);
    let address = match services.get_opt(&at.name).await {
        Ok(Some(service)) => match upstream::address(&service, &uid) {
            Ok(address) => address,
            Err(upstream::NotBerths(why)) => {
                tracing::warn!(user = %who.username, namespace = %at.namespace, notebook = %at.name, reason = %why, "refused: the notebook's Service is not Berth's");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "This notebook's Service is not Berth's",
                    &format!(
                        "the console does not forward to notebook {} of namespace {}: {why}. \
                         Delete that Service (kubectl delete service {} -n {}); the operator makes \
                         its own again.",
                        at.name, at.namespace, at.name, at.namespace
                    ),
                );
            }
        },
        Ok(None) => {
            return unavailable("the notebook has no Service yet; it may be starting");
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the notebook's Service");
            return unavailable("cannot read the notebook's Service now; retry later");
        }
    };
    let authority = address.to_string();
    let prefix = at.prefix();
    let answer = if websocket {
        forward::websocket(&authority, &prefix, request).await
    } else {
        forward::http(&console.http, &authority, &prefix, request).await
    };
    tracing::info!(
        user = %who.username,
        namespace = %at.namespace,
        notebook = %at.name,
        %method,
        path = %raw,
        websocket,
        status = answer.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "forwarded"
    );
    answer
}
