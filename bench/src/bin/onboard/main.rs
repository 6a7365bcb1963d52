//! Onboarding benchmark: N tenants on the real local control plane, Berth side by side with the
//! floor (a minimal client applying the same child objects, with the same concurrency) and with
//! Kubeflow's profile controller (the same owner, quota and namespace labels, as Profiles).
//!
//!     cargo build --release -p berth-operator -p berth-bench
//!     ./target/release/onboard --projects 1,100,1000 --repeats 3
//!
//! Each run gets a fresh control plane with an audit log, so requests are counted by the API
//! server itself, per user. The variants are interleaved (each repeat runs every N and variant, in
//! an order that rotates between repeats), and the summary gives the median and the range of
//! every figure with the machine's load beside it. Nothing is asserted: it prints figures.

mod audit;
mod berth;
mod floor;
mod kubeflow;
mod machine;
mod project_build;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use berth_api::Project;
use berth_testenv::{ControlPlane, Options};

use crate::report::Run;

#[derive(Parser, Clone)]
pub struct Args {
    /// How many tenants to onboard, one run per value per repeat.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    projects: Vec<usize>,
    /// Which variants to run.
    #[arg(long, value_delimiter = ',', default_value = "floor,berth,kubeflow")]
    variants: Vec<String>,
    /// How many times to run every N and variant.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Concurrent creators of Projects (every variant), and concurrent reconciles (Berth's
    /// operator, the floor's appliers). Kubeflow's controller runs as shipped: one worker.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to watch for writes once everything is done and has settled. For Berth it must
    /// be at least `--resync-seconds`, so the window holds a whole resync period; otherwise its
    /// writes per hour are not given.
    #[arg(long, default_value_t = 130)]
    steady_seconds: u64,
    /// Berth's resync period for the run (the operator's `--resync-seconds`; 1800 by default in
    /// production). Keep it above the time to onboard N, so no resync overlaps onboarding.
    #[arg(long, default_value_t = 120)]
    resync_seconds: u64,
    /// The operator binary (a release build is fairest).
    #[arg(long, default_value = "target/release/berth-operator")]
    operator: PathBuf,
    /// The directory tools/kubeflow-profile-controller/build.sh prints (built when not given).
    #[arg(long, env = "BERTH_KUBEFLOW_DIR")]
    kubeflow: Option<PathBuf>,
    /// Where every run's raw figures are appended, one JSON object a line.
    #[arg(long, default_value = "target/onboard-runs.jsonl")]
    runs_file: PathBuf,
}

/// A fresh control plane with an audit log, and the admin's client.
pub struct Bench {
    pub plane: ControlPlane,
    pub admin: Client,
}

impl Bench {
    /// Starts the control plane, up to three times: on a loaded machine a component can time out
    /// while starting (kube-controller-manager waiting for /healthz), which measures nothing.
    pub async fn start() -> Result<Self> {
        let mut attempt = 1;
        let plane = loop {
            match ControlPlane::start(Options {
                audit: true,
                progress: false,
                ..Options::default()
            })
            .await
            {
                Ok(plane) => break plane,
                Err(e) if attempt < 3 => {
                    eprintln!(
                        "[onboard] the control plane did not start (attempt {attempt} of 3), again: {e}"
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let admin = plane.cluster().client().await?;
        audit::wait_settled(
            &plane.audit_log(),
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await?;
        Ok(Self { plane, admin })
    }

    pub fn audit(&self) -> Result<audit::AuditLog> {
        audit::AuditLog::read(&self.plane.audit_log())
    }
}

/// A client from a kubeconfig file, with a read timeout long enough for a busy API server.
pub async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(Client::try_from(config)?)
}

pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("bench-{i}")).collect()
}

/// The Project every variant onboards (Kubeflow's Profile copies its owner and quota).
pub fn project(name: &str) -> Result<Project> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name},
        "spec": {
            "owners": [format!("{name}@example.com")],
            "members": [{"kind": "Group", "name": "ml-platform", "role": "viewer"}],
            "resourceQuota": {"hard": {"cpu": "16", "memory": "32Gi"}},
        },
    }))?)
}

/// Creates `objects` through `api`, `concurrency` at a time.
pub async fn create_all<K>(api: &Api<K>, objects: Vec<K>, concurrency: usize) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    futures::stream::iter(objects)
        .map(|object| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Waits, with one watch (a list of everything several times a second would load the API server
/// in only some variants), until `n` objects are `done`; calls `alive` on every event and every
/// second so a dead controller fails the run at once.
pub async fn wait_done<K>(
    api: Api<K>,
    n: usize,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let start = Instant::now();
    let mut finished = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while finished.len() < n {
        alive()?;
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            bail!("only {} of {n} done after {timeout:?}", finished.len());
        }
        match tokio::time::timeout(left.min(Duration::from_secs(1)), events.try_next()).await {
            Err(_) => continue,
            Ok(Err(e)) => bail!("the watch failed: {e}"),
            Ok(Ok(None)) => bail!("the watch ended"),
            Ok(Ok(Some(object))) => {
                if done(&object) {
                    finished.insert(object.meta().name.clone().unwrap_or_default());
                }
            }
        }
    }
    Ok(())
}

/// Waits until the Lease `namespace/name` is held by a holder whose identity ends with `-{pid}`
/// (Berth's operator names itself `<host>-<pid>`): the operator is leading and its controllers
/// start, with no fixed sleep.
pub async fn wait_for_lease(
    client: &Client,
    namespace: &str,
    name: &str,
    pid: u32,
    timeout: Duration,
) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let suffix = format!("-{pid}");
    let deadline = Instant::now() + timeout;
    loop {
        let holder = api
            .get_opt(name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if holder.as_deref().is_some_and(|h| h.ends_with(&suffix)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the operator (pid {pid}) did not take the lease {namespace}/{name} within {timeout:?}; holder {holder:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sums the samples of a Prometheus counter family (`name` then `{` or a space) whose labels contain
/// `label`, from a metrics endpoint.
pub async fn counter_sum(url: &str, name: &str, label: &str) -> Result<f64> {
    let text = reqwest::get(url).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

/// Waits until the reconcile counter at `url` has counted at least `n` and then stayed still for
/// `quiet`: the controller has re-reconciled everything and gone idle.
pub async fn wait_reconciled(
    url: &str,
    counter: &str,
    label: &str,
    n: usize,
    quiet: Duration,
    timeout: Duration,
) -> Result<f64> {
    let start = Instant::now();
    let mut last = (f64::NAN, Instant::now());
    loop {
        let now = counter_sum(url, counter, label).await.unwrap_or(f64::NAN);
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= n as f64 && last.1.elapsed() >= quiet {
            return Ok(now);
        }
        if start.elapsed() > timeout {
            bail!("{counter} at {url} reached {now} (of at least {n}) within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Everything is done: let in-flight work settle (quota usage, last status writes), then count
/// the writes of a quiet window.
pub async fn settle_then_window(args: &Args) -> (Timestamp, Timestamp) {
    tokio::time::sleep(Duration::from_secs(10)).await;
    window(args).await
}

/// The steady window: `--steady-seconds` from now.
pub async fn window(args: &Args) -> (Timestamp, Timestamp) {
    let from = now();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    (from, now())
}

async fn run_one(variant: &str, n: usize, repeat: usize, args: &Args) -> Result<Run> {
    match variant {
        "floor" => floor::run(n, repeat, args).await,
        "berth" => berth::run(n, repeat, args).await,
        "kubeflow" => kubeflow::run(n, repeat, args).await,
        other => bail!("unknown variant {other}: floor, berth or kubeflow"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.variants.iter().any(|v| v == "berth") && !args.operator.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p berth-operator`",
            args.operator.display()
        );
    }
    if args.variants.iter().any(|v| v == "kubeflow") && args.kubeflow.is_none() {
        args.kubeflow = Some(kubeflow::locate()?);
    }
    if let Some(dir) = args.runs_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut runs_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.runs_file)
        .with_context(|| format!("opening {}", args.runs_file.display()))?;
    let total = args.repeats * args.projects.len() * args.variants.len();
    let mut runs = Vec::new();
    for repeat in 0..args.repeats {
        for &n in &args.projects {
            // Rotate the order each repeat, so no variant always runs first (on a cold cache) or
            // last (after the others heated the machine).
            let k = args.variants.len();
            for i in 0..k {
                let variant = args.variants[(i + repeat) % k].clone();
                eprintln!(
                    "[onboard] run {}/{total}: repeat {}, N={n}, {variant} (load {:.1})…",
                    runs.len() + 1,
                    repeat + 1,
                    machine::load_1m()
                );
                let run = run_one(&variant, n, repeat, &args)
                    .await
                    .with_context(|| format!("{variant}, N={n}, repeat {}", repeat + 1))?;
                eprintln!("[onboard]   {}", run.json());
                writeln!(runs_file, "{}", run.json())?;
                runs.push(run);
            }
        }
    }
    println!(
        "onboard --projects {} --variants {} --repeats {} --concurrency {} --steady-seconds {} --resync-seconds {}",
        args.projects
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.variants.join(","),
        args.repeats,
        args.concurrency,
        args.steady_seconds,
        args.resync_seconds
    );
    report::print_summary(&runs, &mut std::io::stdout())?;
    Ok(())
}
