//! `berth-model-server proxy`: the auth check of the server in front of another runtime in
//! the same pod.
//!
//! ```text
//! berth-model-server proxy --listen 0.0.0.0:8080 --upstream 127.0.0.1:8000 \
//!     --metrics-addr 0.0.0.0:9090 --auth oidc --oidc-issuer https://kc/realms/r --oidc-audience team
//! ```
//!
//! Every request to `--listen` is checked like the server's public port (see [`crate::auth`]:
//! 401/403/503 answered here, never forwarded), and one that gets in is forwarded to
//! `http://<upstream>` with the same method, path, query and end-to-end headers, minus
//! `Authorization` (the runtime never sees the caller's token) and hop-by-hop headers (RFC
//! 9110 §7.6.1; protocol upgrades such as WebSocket are therefore not proxied). Bodies stream
//! both ways without being buffered. The upstream down (or closing before its answer's
//! head) is 502. A request whose header fields take more than `--max-header-bytes` is 431.
//!
//! On `--metrics-addr`, unauthenticated: `/metrics`, `/v2/health/live` (the proxy is up: 200)
//! and `/v2/health/ready` (200 if the upstream accepts TCP connections, else 503).
//! Metrics: `berth_model_auth_requests_total{result}`,
//! `berth_model_proxy_requests_total{code}` and `berth_model_proxy_upstream_errors_total`.

pub mod forward;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::uri::Authority;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::auth::{self, Auth, AuthArgs, AuthCounter, require_token};
use crate::error::{ErrorBody, one_line};
use crate::server::{RunError, Signals};
use forward::UpstreamClient;

/// Flags of `berth-model-server proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyConfig {
    /// The address the proxy listens on: the pod's public port.
    #[arg(long, env = "BERTH_PROXY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// HOST:PORT of the runtime the checked requests go to (plain HTTP/1.1, same pod).
    #[arg(long, env = "BERTH_PROXY_UPSTREAM")]
    pub upstream: String,

    /// The address of `/metrics` and the proxy's own health, unauthenticated.
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// The most bytes a request's header fields may take (name, value and 4 bytes each);
    /// 431 beyond.
    #[arg(long, env = "BERTH_PROXY_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,

    /// Seconds to wait for in-flight requests after SIGTERM/SIGINT before giving up.
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    #[command(flatten, next_help_heading = "Authentication of the public port")]
    pub auth: AuthArgs,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: u16,
}

/// The proxy's metrics.
pub struct ProxyMetrics {
    registry: Registry,
    /// `berth_model_auth_requests_total{result}`.
    pub auth_requests: AuthCounter,
    requests: Family<CodeLabels, Counter>,
    upstream_errors: Counter,
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let auth_requests = auth::register_metrics(&mut registry);
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "berth_model_proxy_requests",
            "Requests answered by the auth proxy, by status code",
            requests.clone(),
        );
        let upstream_errors = Counter::default();
        registry.register(
            "berth_model_proxy_upstream_errors",
            "Requests answered 502 because the upstream runtime could not be reached",
            upstream_errors.clone(),
        );
        Self {
            registry,
            auth_requests,
            requests,
            upstream_errors,
        }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        crate::metrics::encode(&[&self.registry])
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What every proxied request shares.
pub struct Proxy {
    upstream: Authority,
    client: UpstreamClient,
    metrics: ProxyMetrics,
    max_header_bytes: usize,
}

impl Proxy {
    /// A proxy to `upstream` (`HOST:PORT`).
    pub fn new(upstream: &str, max_header_bytes: usize) -> Result<Self, String> {
        let authority: Authority = upstream
            .parse()
            .map_err(|e| format!("--upstream {upstream} is not HOST:PORT: {e}"))?;
        if authority.port_u16().is_none() || upstream.contains(['/', '@']) {
            return Err(format!("--upstream {upstream} is not HOST:PORT"));
        }
        Ok(Self {
            upstream: authority,
            client: forward::upstream_client(),
            metrics: ProxyMetrics::new(),
            max_header_bytes,
        })
    }

    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}

/// The router of the public port: every path checked by `auth` (if any), then forwarded.
pub fn router(proxy: Arc<Proxy>, auth: Option<Arc<Auth>>) -> Router {
    let router = Router::new().fallback(proxied).with_state(proxy.clone());
    let router = match auth {
        Some(auth) => router.layer(middleware::from_fn_with_state(auth, require_token)),
        None => router,
    };
    router.layer(middleware::from_fn_with_state(proxy, bound_and_count))
}

/// The router of the metrics address.
pub fn metrics_router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(upstream_ready))
        .with_state(proxy)
}

async fn proxied(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    match forward::forward(&proxy.client, &proxy.upstream, request).await {
        Ok(response) => response,
        Err(bad_gateway) => {
            proxy.metrics.upstream_errors.inc();
            bad_gateway
        }
    }
}

/// Refuses oversized header sections (431) before anything else, and counts every answer.
async fn bound_and_count(
    State(proxy): State<Arc<Proxy>>,
    request: Request,
    next: Next,
) -> Response {
    let response = if forward::header_bytes(request.headers()) > proxy.max_header_bytes {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(ErrorBody {
                error: format!(
                    "the request's header fields take more than {} bytes",
                    proxy.max_header_bytes
                ),
            }),
        )
            .into_response()
    } else {
        next.run(request).await
    };
    proxy
        .metrics
        .requests
        .get_or_create(&CodeLabels {
            code: response.status().as_u16(),
        })
        .inc();
    response
}

async fn metrics_text(State(proxy): State<Arc<Proxy>>) -> Response {
    match proxy.metrics.encode() {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// 200 if the upstream accepts a TCP connection within a second, else 503.
async fn upstream_ready(State(proxy): State<Arc<Proxy>>) -> StatusCode {
    let addr = proxy.upstream.as_str().to_owned();
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), RunError> {
    let bind_error = |e: std::io::Error| RunError::Bind {
        addr,
        reason: one_line(&e),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Runs the proxy until SIGTERM/SIGINT, then finishes in-flight requests.
pub async fn run(config: ProxyConfig) -> Result<(), RunError> {
    let settings = config.auth.settings().map_err(RunError::Config)?;
    let proxy =
        Arc::new(Proxy::new(&config.upstream, config.max_header_bytes).map_err(RunError::Config)?);
    let auth = Auth::from_settings(settings, proxy.metrics.auth_requests.clone())
        .map_err(RunError::Config)?;
    let signals = Signals::install()?;
    let (listener, local) = bind(config.listen).await?;
    let (metrics_listener, metrics_local) = bind(config.metrics_addr).await?;
    let metrics_app = metrics_router(proxy.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics_listener, metrics_app).await {
            tracing::warn!(error = %one_line(&e), "the metrics listener stopped");
        }
    });
    tracing::info!("serving metrics on http://{metrics_local}/metrics");
    tracing::info!(
        upstream = %proxy.upstream,
        auth = config.auth.auth.as_str(),
        "listening on http://{local}"
    );
    let (draining_tx, mut draining_rx) = tokio::sync::watch::channel(false);
    let graceful = async move {
        let name = signals.recv().await;
        tracing::info!("{name} received: finishing in-flight requests, then exiting");
        let _ = draining_tx.send(true);
    };
    let server = axum::serve(listener, router(proxy, auth))
        .with_graceful_shutdown(graceful)
        .into_future();
    let timeout = Duration::from_secs(config.shutdown_timeout_secs);
    let deadline = async move {
        let _ = draining_rx.wait_for(|draining| *draining).await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| RunError::Serve(one_line(&e)))?,
        () = deadline => return Err(RunError::ShutdownTimeout(timeout)),
    }
    tracing::info!("shut down cleanly");
    Ok(())
}
