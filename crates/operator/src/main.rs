//! The Berth operator: runs the controllers, with health, readiness and metrics endpoints and
//! leader election so that two replicas are safe.

mod lease;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{error, info};

use berth_reconcile::Metrics;

#[derive(Parser, Debug)]
#[command(
    name = "berth-operator",
    about = "Turns a Kubernetes cluster into a multi-tenant ML platform"
)]
struct Flags {
    /// A kubeconfig to use; otherwise the in-cluster service account, or $KUBECONFIG.
    #[arg(long, env = "BERTH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "BERTH_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
    /// Run controllers only while holding the leader Lease.
    #[arg(long, env = "BERTH_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The operator's own namespace: the leader Lease is there, and the providers' admin
    /// credentials are read from Secrets there and nowhere else.
    #[arg(long, env = "POD_NAMESPACE", default_value = "berth-system")]
    lease_namespace: String,
    /// How many Projects, and how many MLModels, are reconciled at once.
    #[arg(long, env = "BERTH_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// A kubeconfig for leader election alone (default: the one above). Its own connection keeps
    /// busy controllers from delaying renewals.
    #[arg(long, env = "BERTH_LEADER_ELECTION_KUBECONFIG")]
    leader_election_kubeconfig: Option<PathBuf>,
    /// Seconds a standby waits, after it last saw the lease change, before taking it over.
    #[arg(long, env = "BERTH_LEASE_DURATION", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds the leader may go without renewing the lease before it stops (less than the lease
    /// duration).
    #[arg(long, env = "BERTH_RENEW_DEADLINE", default_value_t = 10)]
    renew_deadline_seconds: u64,
    /// Seconds between renewals, and between a standby's looks at the lease.
    #[arg(long, env = "BERTH_RETRY_PERIOD", default_value_t = 2)]
    retry_period_seconds: u64,
    /// The console's public URL (berth-console, docs/console.md): Notebooks' status.url points
    /// there. Without it, status.url is the notebook's path (reached by port-forward).
    #[arg(long, env = "BERTH_CONSOLE_URL")]
    console_url: Option<String>,
    /// Seconds after a Project's last reconcile before it is reconciled again with nothing
    /// changed (a safety net: watches bring every change). Shortened only by benchmarks.
    #[arg(long, env = "BERTH_RESYNC_SECONDS", default_value_t = 30 * 60)]
    resync_seconds: u64,
}

#[derive(Clone)]
struct Health {
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let flags = Flags::parse();
    let client = client(flags.kubeconfig.as_deref()).await?;
    let probe_client = client_without_retries(flags.kubeconfig.as_deref()).await?;
    let timing = lease::Timing::new(
        Duration::from_secs(flags.lease_duration_seconds),
        Duration::from_secs(flags.renew_deadline_seconds),
        Duration::from_secs(flags.retry_period_seconds),
    )
    .map_err(anyhow::Error::msg)?;
    let lease_client = match &flags.leader_election_kubeconfig {
        Some(path) => self::client(Some(path)).await?,
        None => client.clone(),
    };

    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let health = Health {
        ready: Arc::new(AtomicBool::new(false)),
        registry: Arc::new(registry),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(flags.health_addr)
        .await
        .with_context(|| format!("binding the health endpoint on {}", flags.health_addr))?;
    info!(addr = %flags.health_addr, "serving /healthz, /readyz and /metrics");
    let serve = axum::serve(listener, router(health.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let server = tokio::spawn(async move { serve.await });

    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("{}-{}", hostname(), std::process::id()));
    let elector = lease::Elector::new(
        lease_client,
        &flags.lease_namespace,
        "berth-operator",
        &identity,
        timing,
    );
    let mut leading_since = tokio::time::Instant::now();
    if flags.leader_elect {
        // A standby replica is healthy and ready: it serves probes and waits its turn.
        health.ready.store(true, Ordering::Relaxed);
        tokio::select! {
            since = elector.acquire() => leading_since = since,
            _ = stopped(stop_rx.clone()) => {
                info!("stopped before becoming the leader");
                return Ok(());
            }
        }
    }
    health.ready.store(true, Ordering::Relaxed);

    let projects = berth_controllers::project::run(
        client.clone(),
        metrics.clone(),
        flags.concurrency,
        flags.lease_namespace.clone(),
        std::time::Duration::from_secs(flags.resync_seconds),
        stopped(stop_rx.clone()),
    );
    let models = berth_controllers::mlmodel::run(
        client.clone(),
        metrics.clone(),
        flags.concurrency,
        stopped(stop_rx.clone()),
    );
    let notebooks = berth_controllers::notebook::run(
        client.clone(),
        probe_client,
        flags.console_url.clone(),
        metrics,
        flags.concurrency,
        stopped(stop_rx.clone()),
    );
    let controllers = async {
        tokio::join!(projects, models, notebooks);
    };
    let lost_lease = async {
        if flags.leader_elect {
            elector.hold(leading_since).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = controllers => {}
        _ = lost_lease => {
            // At once, before the lease can run out for a standby: no graceful shutdown, which
            // could take longer than the time left.
            error!("lost the leader lease: exiting so that only one replica acts");
            std::process::exit(1);
        }
    }
    if flags.leader_elect {
        elector.release().await;
    }
    let _ = server.await;
    info!("stopped");
    Ok(())
}

async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    Ok(Client::try_from(config(kubeconfig).await?)?)
}

/// A client for reads whose failure is answered by the next poll, not by retries: kube's default
/// client retries a 503 up to 15 times, and the pod proxy answers 503 at once for a pod it cannot
/// reach.
async fn client_without_retries(kubeconfig: Option<&std::path::Path>) -> Result<Client> {
    let mut config = config(kubeconfig).await?;
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

async fn config(kubeconfig: Option<&std::path::Path>) -> Result<Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("finding cluster credentials")?,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "berth-operator".to_owned())
}

fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> StatusCode {
    if health.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &health.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "encoding metrics failed".to_owned(),
        ),
    }
}

/// Completes once a stop was asked for.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    info!("shutting down");
}
