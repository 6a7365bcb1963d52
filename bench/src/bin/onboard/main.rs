//! Onboarding benchmark: N Projects on the real local control plane, Berth side by side with the
//! floor (a minimal client applying the same child objects directly, with the same concurrency).
//!
//!     cargo run --release -p berth-bench --bin onboard -- --projects 1,100,1000
//!
//! Each variant runs on a fresh control plane with an audit log, so requests are counted by the
//! API server itself, per user. Prints one table; nothing is asserted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

use berth_api::{PlatformSettingsSpec, Project};
use berth_controllers::project::build::{Environment, build};
use berth_controllers::project::validate::{Known, validate};
use berth_testenv::{ControlPlane, Options};

#[derive(Parser)]
struct Args {
    /// How many Projects to onboard, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    projects: Vec<usize>,
    /// Concurrent requests from the client that creates Projects, and of the floor's applies. The
    /// operator reconciles this many Projects at once too.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to watch for writes once everything is Ready.
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// The operator binary (a release build is fairest).
    #[arg(long, default_value = "target/release/berth-operator")]
    operator: PathBuf,
}

const OPERATOR_USER: &str = "system:serviceaccount:berth-system:berth-operator";

struct Figures {
    variant: &'static str,
    seconds: f64,
    requests_per_project: f64,
    steady_writes_per_hour: Option<f64>,
    lease_writes_per_hour: Option<f64>,
    peak_rss_mib: Option<f64>,
    cpu_seconds: Option<f64>,
}

fn project(name: &str) -> Result<Project> {
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

async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(Client::try_from(config)?)
}

/// Requests in the audit log by `user`, split into all and writes, within [from, to) of the log's
/// own clock (RFC 3339 strings compare in order).
fn audit_counts(
    log: &Path,
    user: &str,
    from: &str,
    to: &str,
    skip_leases: bool,
) -> Result<(usize, usize, usize)> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let (mut all, mut writes, mut lease_writes) = (0, 0, 0);
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user {
            continue;
        }
        let at = event["requestReceivedTimestamp"]
            .as_str()
            .unwrap_or_default();
        if at < from || at >= to {
            continue;
        }
        let verb = event["verb"].as_str().unwrap_or_default();
        let is_write = matches!(
            verb,
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        let is_lease = event["objectRef"]["resource"] == "leases";
        if is_lease && skip_leases {
            if is_write {
                lease_writes += 1;
            }
            continue;
        }
        all += 1;
        if is_write {
            writes += 1;
        }
        let sub = event["objectRef"]["subresource"]
            .as_str()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        *by_kind
            .entry(format!(
                "{} {}{}",
                verb,
                event["objectRef"]["resource"].as_str().unwrap_or("?"),
                sub
            ))
            .or_default() += 1;
    }
    if all > 0 {
        let breakdown: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("[onboard]   {user} requests: {}", breakdown.join(", "));
    }
    Ok((all, writes, lease_writes))
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn create_projects(client: &Client, names: &[String], concurrency: usize) -> Result<()> {
    let api: Api<Project> = Api::all(client.clone());
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &project(&name)?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

fn proc_figures(pid: u32) -> (Option<f64>, Option<f64>) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
        });
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        });
    (rss, cpu)
}

async fn fresh_cluster() -> Result<(ControlPlane, Client, PathBuf)> {
    let plane = ControlPlane::start(Options {
        audit: true,
        progress: false,
        ..Options::default()
    })
    .await?;
    let admin = plane.cluster().client().await?;
    let operator_kubeconfig = plane.dir().join("operator-bench.kubeconfig");
    plane
        .cluster()
        .operator_kubeconfig(&operator_kubeconfig)
        .await?;
    Ok((plane, admin, operator_kubeconfig))
}

async fn berth(n: usize, args: &Args) -> Result<Figures> {
    let (plane, admin, _) = fresh_cluster().await?;
    let (mut operator, _) = plane
        .cluster()
        .start_operator(
            &args.operator,
            plane.dir(),
            "operator.log",
            &[format!("--concurrency={}", args.concurrency)],
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i}")).collect();
    let from = now_rfc3339();
    let start = Instant::now();
    create_projects(&admin, &names, args.concurrency).await?;
    // Readiness from a watch, not by listing: a list of every Project several times a second would
    // load the API server, and only in this variant.
    let api: Api<Project> = Api::all(admin.clone());
    let mut ready = std::collections::HashSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
    while ready.len() < n {
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited with {status}:\n{}",
                operator.log_tail(3000)
            );
        }
        let next = tokio::time::timeout(
            Duration::from_secs(1800).saturating_sub(start.elapsed()),
            events.try_next(),
        )
        .await;
        let Ok(Ok(Some(project))) = next else {
            bail!(
                "only {} of {n} Projects Ready when the watch ended or 30 minutes passed",
                ready.len()
            );
        };
        if project
            .status
            .as_ref()
            .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
        {
            ready.insert(project.name_any());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let ready_at = now_rfc3339();
    // Let the last transitions settle (in-flight checks, quota usage), then watch for writes.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady_from = now_rfc3339();
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let steady_to = now_rfc3339();
    let (rss, cpu) = proc_figures(operator.pid());
    operator.stop(Duration::from_secs(10));
    let log = plane.audit_log();
    let (requests, _, _) = audit_counts(&log, OPERATOR_USER, &from, &ready_at, true)?;
    let (_, steady_writes, lease_writes) =
        audit_counts(&log, OPERATOR_USER, &steady_from, &steady_to, true)?;
    let per_hour = 3600.0 / args.steady_seconds as f64;
    plane.kill();
    Ok(Figures {
        variant: "berth",
        seconds,
        requests_per_project: requests as f64 / n as f64,
        steady_writes_per_hour: Some(steady_writes as f64 * per_hour),
        lease_writes_per_hour: Some(lease_writes as f64 * per_hour),
        peak_rss_mib: rss,
        cpu_seconds: cpu,
    })
}

/// The floor: create the Projects, then server-side apply exactly the children Berth would build,
/// as the operator's service account, with the same concurrency. No caches, no status, no checks.
async fn floor(n: usize, args: &Args) -> Result<Figures> {
    let (plane, admin, operator_kubeconfig) = fresh_cluster().await?;
    let client = client_from(&operator_kubeconfig).await?;
    let names: Vec<String> = (0..n).map(|i| format!("bench-{i}")).collect();
    // The same settings the operator would read: the installed `default` PlatformSettings.
    let settings = Api::<berth_api::PlatformSettings>::all(admin.clone())
        .get_opt(berth_api::settings::SETTINGS_NAME)
        .await?
        .map(|s| s.spec)
        .unwrap_or_else(PlatformSettingsSpec::default);
    let from = now_rfc3339();
    let start = Instant::now();
    let api: Api<Project> = Api::all(admin.clone());
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            let client = client.clone();
            let settings = settings.clone();
            async move {
                let created = api.create(&PostParams::default(), &project(&name)?).await?;
                let validated = validate(&created, &settings, "berth-system", Known::default())
                    .map_err(|i| anyhow::anyhow!(i.message))?;
                let built = build(&validated, &settings, &Environment::default())?;
                let params = PatchParams::apply("berth-floor").force();
                for child in &built.children {
                    let ns = child.object.namespace();
                    child
                        .kind
                        .api(&client, ns.as_deref())
                        .patch(
                            &child.object.name_any(),
                            &params,
                            &Patch::Apply(&child.object),
                        )
                        .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    let to = now_rfc3339();
    let (requests, _, _) = audit_counts(&plane.audit_log(), OPERATOR_USER, &from, &to, true)?;
    plane.kill();
    Ok(Figures {
        variant: "floor",
        seconds,
        requests_per_project: requests as f64 / n as f64,
        steady_writes_per_hour: None,
        lease_writes_per_hour: None,
        peak_rss_mib: None,
        cpu_seconds: None,
    })
}

fn show(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.operator.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p berth-operator`",
            args.operator.display()
        );
    }
    let mut results: BTreeMap<usize, Vec<Figures>> = BTreeMap::new();
    for &n in &args.projects {
        eprintln!("[onboard] N={n}: floor (fresh control plane)…");
        let f = floor(n, &args).await?;
        eprintln!(
            "[onboard] N={n}: floor done in {:.1} s; berth (fresh control plane)…",
            f.seconds
        );
        let b = berth(n, &args).await?;
        eprintln!("[onboard] N={n}: berth done in {:.1} s", b.seconds);
        results.entry(n).or_default().extend([f, b]);
    }
    println!(
        "| N | variant | time to all Ready (s) | vs floor | API requests / Project | steady writes / h (excl. lease) | lease renewals / h | peak RSS (MiB) | CPU (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (n, figures) in &results {
        let floor_seconds = figures
            .iter()
            .find(|f| f.variant == "floor")
            .map(|f| f.seconds)
            .unwrap_or(f64::NAN);
        for f in figures {
            println!(
                "| {n} | {} | {:.2} | {:.2}× | {:.1} | {} | {} | {} | {} |",
                f.variant,
                f.seconds,
                f.seconds / floor_seconds,
                f.requests_per_project,
                show(f.steady_writes_per_hour, 0),
                show(f.lease_writes_per_hour, 0),
                show(f.peak_rss_mib, 1),
                show(f.cpu_seconds, 2),
            );
        }
    }
    Ok(())
}
