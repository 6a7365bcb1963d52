//! What every cluster test needs: the shared cluster, unique names, and waiting with a deadline.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

pub use berth_testenv::Cluster;

/// The shared cluster and an admin client for this test's runtime.
pub async fn admin() -> Result<(&'static Cluster, Client)> {
    let cluster = berth_testenv::shared().context("starting the shared control plane")?;
    let client = cluster.client().await?;
    Ok((cluster, client))
}

/// A name no other test in this run uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a namespace with a unique name.
pub async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let name = unique(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(name)
}

/// Creates a namespace with a unique name, labelled as a project namespace Berth manages (as the
/// Project controller labels the namespaces it creates), for tests that need one without a Project:
/// the operator writes only in namespaces labelled so.
pub async fn project_namespace(client: &Client, prefix: &str) -> Result<String> {
    let name = unique(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(
                        [
                            (
                                berth_api::labels::MANAGED_BY,
                                berth_api::labels::MANAGED_BY_VALUE,
                            ),
                            (berth_api::labels::PROJECT, name.as_str()),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    ),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    Ok(name)
}

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator, started once per test binary under its own service account and the RBAC Berth
/// ships, so a missing permission fails a test.
pub fn operator() -> Result<()> {
    static STARTED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    static PROCESS: std::sync::Mutex<Option<berth_testenv::Process>> = std::sync::Mutex::new(None);
    let started = STARTED.get_or_init(|| {
        let run = || -> Result<berth_testenv::Process> {
            let cluster = berth_testenv::shared()?;
            let binary = berth_testenv::operator_binary()?;
            let dir = std::env::temp_dir().join(format!("berth-operator-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (mut process, port) =
                runtime.block_on(cluster.start_operator(&binary, &dir, "operator.log", &[]))?;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = process.exited() {
                    bail!(
                        "the operator exited with {status}:\n{}",
                        process.log_tail(4000)
                    );
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(process);
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "the operator did not start; see {}",
                        process.log_path().display()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        match std::thread::spawn(run).join() {
            Ok(Ok(process)) => {
                if let Ok(mut slot) = PROCESS.lock() {
                    *slot = Some(process);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err("starting the operator panicked".into()),
        }
    });
    started.clone().map_err(|e| anyhow::anyhow!(e))
}

/// Admin client with the operator running.
pub async fn with_operator() -> Result<(&'static Cluster, Client)> {
    operator()?;
    admin().await
}
