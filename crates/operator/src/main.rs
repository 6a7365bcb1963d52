//! The Berth operator.
//!
//! It connects to the cluster, checks that Berth's CRDs are served, and reports its health on
//! `/healthz` (the process is up) and `/readyz` (the cluster answers and the CRDs are there). The
//! controllers run inside it as they are added.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "berth-operator",
    about = "Turns a Kubernetes cluster into a multi-tenant ML platform"
)]
struct Flags {
    /// A kubeconfig to use; otherwise the in-cluster service account, or $KUBECONFIG.
    #[arg(long, env = "BERTH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where /healthz and /readyz are served.
    #[arg(long, env = "BERTH_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let flags = Flags::parse();

    let client = client(&flags).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let health = tokio::net::TcpListener::bind(flags.health_addr)
        .await
        .with_context(|| format!("binding the health endpoint on {}", flags.health_addr))?;
    info!(addr = %flags.health_addr, "serving /healthz and /readyz");
    let server =
        axum::serve(health, health_router(ready.clone())).with_graceful_shutdown(shutdown_signal());
    let checker = tokio::spawn(keep_checking_crds(client, ready));

    server.await.context("serving health endpoints")?;
    checker.abort();
    info!("stopped");
    Ok(())
}

async fn client(flags: &Flags) -> Result<Client> {
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("finding cluster credentials")?,
    };
    Ok(Client::try_from(config)?)
}

fn health_router(ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { StatusCode::OK }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
}

/// Ready means: the API server answers and serves every Berth CRD as established.
async fn keep_checking_crds(client: Client, ready: Arc<AtomicBool>) {
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    loop {
        let mut missing = Vec::new();
        for expected in berth_api::crds() {
            let name = expected.metadata.name.unwrap_or_default();
            match crds.get_opt(&name).await {
                Ok(Some(crd)) if is_established(&crd) => {}
                Ok(_) => missing.push(name),
                Err(e) => missing.push(format!("{name} ({e})")),
            }
        }
        let now_ready = missing.is_empty();
        if ready.swap(now_ready, Ordering::Relaxed) != now_ready {
            if now_ready {
                info!("ready: Berth's CRDs are established");
            } else {
                warn!(missing = ?missing, "not ready: Berth's CRDs are missing or not established");
            }
        }
        tokio::time::sleep(Duration::from_secs(if now_ready { 30 } else { 2 })).await;
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
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
