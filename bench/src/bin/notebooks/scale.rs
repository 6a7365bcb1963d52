//! The operator's cost at N notebooks on kwok nodes. Projects are made first (not counted); each
//! notebook's home volume is a PersistentVolume made beforehand and bound to its claim by name
//! (kwok's cluster has no provisioner); then the clock starts, N Notebooks are created 16 at a
//! time, and it stops when a watch has seen every one `Running`. Requests are counted by the API
//! server's audit log for the operator's service account; a quiet window follows.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::notebook::{Notebook, NotebookPhase};
use berth_testenv::realnode::{HostLease, Images, NodeBinaries};
use berth_testenv::{ControlPlane, Options, RealNode};

use crate::{OPERATOR_USER, audit, machine, notebook, ready_project};

#[derive(clap::Args)]
pub struct Args {
    /// How many notebooks.
    #[arg(long, default_value_t = 1000)]
    notebooks: usize,
    /// Across how many projects (each gets its quota raised to hold its share).
    #[arg(long, default_value_t = 20)]
    projects: usize,
    /// kwok nodes (64 CPUs, 256 GiB, 500 pods each).
    #[arg(long, default_value_t = 4)]
    nodes: u32,
    /// Creators at once, and the operator's `--concurrency`.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The quiet window after every notebook is Running (and 10 s of settling).
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// The notebooks' `spec.idleTimeout` (Berth's default, 1h, when not given: activity read
    /// every 5 min; a quarter of it, at least 5 s, when given).
    #[arg(long)]
    idle_timeout: Option<String>,
    /// How long to wait for every notebook to be Running; past it the figures are of how many
    /// were, and the quiet window is measured all the same.
    #[arg(long, default_value_t = 1800)]
    timeout_seconds: u64,
}

const ACTIVITY_WARNING: &str = berth_controllers::notebook::activity::READ_FAILED;

pub async fn run(args: Args, operator: &Path) -> Result<()> {
    let load_start = machine::load_1m();
    eprintln!(
        "[notebooks] control plane with {} kwok nodes and the real node, bare, for its routes (load {load_start:.1})…",
        args.nodes
    );
    let lease = HostLease::acquire(true)?;
    let plane = ControlPlane::start(Options {
        audit: true,
        nodes: args.nodes,
        real_node: true,
        ..Options::default()
    })
    .await?;
    let node = RealNode::start_bare(
        lease,
        &plane,
        &NodeBinaries::locate()?,
        Images::default(),
        true,
    )
    .await?;
    let client = plane.cluster().client().await?;
    let (mut process, _port) = plane
        .cluster()
        .start_operator(
            operator,
            plane.dir(),
            "operator.log",
            &[format!("--concurrency={}", args.concurrency)],
        )
        .await?;
    let result = measure(&args, &plane, &client, &mut process).await;
    if let Some(status) = process.exited() {
        eprintln!(
            "[notebooks] the operator exited ({status}):\n{}",
            process.log_tail(3000)
        );
    }
    process.stop(Duration::from_secs(5));
    node.stop();
    plane.stop();
    let load_end = machine::load_1m();
    eprintln!("[notebooks] load at the end {load_end:.1}");
    result
}

async fn measure(
    args: &Args,
    plane: &ControlPlane,
    client: &Client,
    operator: &mut berth_testenv::Process,
) -> Result<()> {
    let n = args.notebooks;
    let per_project = n.div_ceil(args.projects.max(1));
    let projects: Vec<String> = (0..args.projects).map(|p| format!("nbs-{p}")).collect();
    eprintln!("[notebooks] {} projects…", projects.len());
    futures::stream::iter(projects.iter())
        .map(|p| ready_project(client, p, per_project))
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let placed: Vec<(String, String)> = (0..n)
        .map(|i| (projects[i % projects.len()].clone(), format!("nb-{i}")))
        .collect();
    eprintln!("[notebooks] {n} PersistentVolumes bound by name to the notebooks' home claims…");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    futures::stream::iter(placed.iter())
        .map(|(ns, name)| {
            let volumes = volumes.clone();
            async move {
                let pv: PersistentVolume = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": format!("bench-{ns}-{name}")},
                    "spec": {
                        "capacity": {"storage": "256Mi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "",
                        "hostPath": {"path": "/nonexistent/berth-bench"},
                        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": format!("{name}-home")},
                    },
                }))?;
                volumes.create(&PostParams::default(), &pv).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    audit::wait_settled(
        &plane.audit_log(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    )
    .await?;

    let load_converge = machine::load_1m();
    eprintln!("[notebooks] creating {n} notebooks (load {load_converge:.1})…");
    let from = Timestamp::now();
    let start = Instant::now();
    let all: Api<Notebook> = Api::all(client.clone());
    let create = futures::stream::iter(placed.iter())
        .map(|(ns, name)| {
            let api: Api<Notebook> = Api::namespaced(client.clone(), ns);
            let idle = args.idle_timeout.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    // 200m: the default limit (1 CPU) of 50 notebooks would exceed the
                    // project's limits.cpu quota (16).
                    &notebook(ns, name, Some("200m"), idle.as_deref())?,
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>();
    let timeout = Duration::from_secs(args.timeout_seconds);
    let (created, waited) = tokio::join!(create, all_running(all, n, timeout, operator));
    created?;
    let running = waited?;
    let seconds = start.elapsed().as_secs_f64();
    let ready_at = Timestamp::now();
    eprintln!(
        "[notebooks] {running} of {n} Running after {seconds:.1} s; settling 10 s, then a {} s window…",
        args.steady_seconds
    );

    tokio::time::sleep(Duration::from_secs(10)).await;
    let warnings_before = warnings(plane);
    let steady_from = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let steady_to = Timestamp::now();
    let warnings_in_window = warnings(plane).saturating_sub(warnings_before);
    let peak_rss = machine::peak_rss_mib(operator.pid());
    let cpu = machine::cpu_seconds(operator.pid());
    let load_end = machine::load_1m();

    let log = audit::AuditLog::read(&plane.audit_log())?;
    let converge = log.counts(OPERATOR_USER, from, ready_at, "operator, to all Running");
    let steady = log.counts(
        OPERATOR_USER,
        steady_from,
        steady_to,
        "operator, quiet window",
    );
    let proxy = proxy_answers(&plane.audit_log(), steady_from, steady_to)?;
    let minutes = args.steady_seconds as f64 / 60.0;

    println!(
        "notebooks scale --notebooks {n} --projects {} --nodes {} --concurrency {} --steady-seconds {} --idle-timeout {}",
        args.projects,
        args.nodes,
        args.concurrency,
        args.steady_seconds,
        args.idle_timeout.as_deref().unwrap_or("(default 1h)")
    );
    println!("| figure | value |");
    println!("|---|---|");
    if running == n {
        println!("| time to all {n} Running | {seconds:.1} s |");
    } else {
        println!(
            "| time to all {n} Running | not within {seconds:.0} s: {running} Running then (the window below is of that state) |"
        );
    }
    println!(
        "| operator's API requests per Running notebook until then (leases excluded) | {:.1} ({} requests, {} writes) |",
        converge.all as f64 / running.max(1) as f64,
        converge.all,
        converge.writes
    );
    println!(
        "| operator's writes in the quiet window ({} s) | {} (lease renewals apart: {}) |",
        args.steady_seconds, steady.writes, steady.lease_writes
    );
    println!(
        "| operator's requests in the quiet window | {} ({:.2} per notebook per minute) |",
        steady.all,
        steady.all as f64 / n as f64 / minutes
    );
    println!(
        "| of which activity reads through the pod proxy | {} ({:.2} per notebook per minute); answers {:?}; time held in the API server median {:.2} s, max {:.2} s |",
        proxy.count,
        proxy.count as f64 / n as f64 / minutes,
        proxy.codes,
        proxy.median_seconds,
        proxy.max_seconds
    );
    println!("| operator's log: '{ACTIVITY_WARNING}' in the window | {warnings_in_window} |");
    println!(
        "| operator's peak RSS (VmHWM) | {} |",
        peak_rss.map_or("-".into(), |m| format!("{m:.1} MiB"))
    );
    println!(
        "| operator's CPU time, whole run | {} |",
        cpu.map_or("-".into(), |s| format!("{s:.1} s"))
    );
    println!("| load (1 min) when creating / at the end | {load_converge:.1} / {load_end:.1} |");
    Ok(())
}

/// Waits with one watch until `n` notebooks are Running, or `timeout`; returns how many are.
/// Progress every 10 s.
async fn all_running(
    api: Api<Notebook>,
    n: usize,
    timeout: Duration,
    operator: &mut berth_testenv::Process,
) -> Result<usize> {
    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut running = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while running.len() < n {
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited ({status}):\n{}",
                operator.log_tail(3000)
            );
        }
        if start.elapsed() > timeout {
            eprintln!(
                "[notebooks] only {} of {n} Running after {timeout:?}",
                running.len()
            );
            return Ok(running.len());
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[notebooks]   {} of {n} Running after {:.0} s",
                running.len(),
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        match tokio::time::timeout(Duration::from_secs(1), events.try_next()).await {
            Err(_) => continue,
            Ok(Err(e)) => bail!("the watch failed: {e}"),
            Ok(Ok(None)) => bail!("the watch ended"),
            Ok(Ok(Some(nb))) => {
                let key = format!("{}/{}", nb.namespace().unwrap_or_default(), nb.name_any());
                let phase = nb.status.as_ref().and_then(|s| s.phase);
                if phase == Some(NotebookPhase::Running) {
                    running.insert(key);
                } else {
                    running.remove(&key);
                }
            }
        }
    }
    Ok(running.len())
}

/// How many activity warnings the operator has logged so far.
fn warnings(plane: &ControlPlane) -> usize {
    std::fs::read_to_string(plane.dir().join("operator.log"))
        .map(|t| t.lines().filter(|l| l.contains(ACTIVITY_WARNING)).count())
        .unwrap_or(0)
}

struct Proxy {
    count: usize,
    codes: BTreeMap<i64, usize>,
    median_seconds: f64,
    max_seconds: f64,
}

/// The operator's `pods/proxy` requests received in [from, to): their answers' status codes and
/// how long each was held (audit stage timestamp minus received timestamp, of the completed stage).
fn proxy_answers(path: &Path, from: Timestamp, to: Timestamp) -> Result<Proxy> {
    let text = std::fs::read_to_string(path)?;
    let mut codes = BTreeMap::new();
    let mut held = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["user"]["username"] != OPERATOR_USER
            || event["objectRef"]["subresource"] != "proxy"
            || event["stage"] != "ResponseComplete"
        {
            continue;
        }
        let time = |key: &str| {
            event[key]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
        };
        let (Some(received), Some(done)) =
            (time("requestReceivedTimestamp"), time("stageTimestamp"))
        else {
            continue;
        };
        if received < from || received >= to {
            continue;
        }
        *codes
            .entry(event["responseStatus"]["code"].as_i64().unwrap_or(0))
            .or_default() += 1;
        held.push(done.duration_since(received).as_secs_f64());
    }
    held.sort_by(f64::total_cmp);
    Ok(Proxy {
        count: held.len(),
        codes,
        median_seconds: held.get(held.len() / 2).copied().unwrap_or(0.0),
        max_seconds: held.last().copied().unwrap_or(0.0),
    })
}
