//! Console page-time benchmark (issue 15: p95 of *My projects* and *Project* with 1,000 projects
//! of 50 members each, target ≤ 100 ms on this machine).
//!
//!     cargo build --release -p berth-operator -p berth-console -p berth-bench
//!     $CARGO_TARGET_DIR/release/console-pages --projects 1000 --members 50 --requests 200
//!
//! On the real local control plane (berth_testenv, kwok nodes), with Berth installed from
//! `deploy/`: the release operator under its own ServiceAccount onboards `--projects` Projects,
//! then the release `berth-console` runs as production runs it: under its ServiceAccount
//! (deploy/rbac/30-console.yaml) in impersonate mode (31-console-impersonate.yaml). Callers
//! present bearer tokens the API server issued (TokenRequest for ServiceAccounts of
//! `bench-users`, as `kubectl create token` gives), which the console checks with a TokenReview
//! and then acts as, by impersonation; no identity provider is needed. The callers:
//! - `member-<k>` (`--projects / --member-of` of them): a ServiceAccount member (editor or
//!   viewer) of `--member-of` projects each;
//! - `admin-<k>` (as many): bound to `berth-platform-admin`, see every project.
//!
//! Successive loads of a case are different users' (`--users` limits how many), so the
//! console's 5 s memory of a user's answers rarely serves them.
//!
//! Two phases, interleaved `--rounds` times: `idle` (every Project Ready, the operator's
//! reconcile counter still) and `busy` (the operator onboards `--busy-projects` new Projects of
//! the same shape meanwhile, on the same cores; they stay, so the admin's list grows by that much
//! each busy round). In each, the four cases (member and admin, `/` and `/projects/<name>`) are
//! loaded in turn, sequentially, after `--warmup` uncounted rounds; each answer must be 200 and a
//! *My projects* must show at least the rows expected. Prints p50/p95/p99/max per round, then per
//! phase the median over rounds and the range. Nothing is asserted beyond the answers: it prints
//! figures.

#[path = "../onboard/machine.rs"]
mod machine;
mod measure;
mod setup;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use berth_testenv::{ControlPlane, Options, Process};

use crate::measure::{Case, Samples, median_range, summary};

#[derive(Parser, Clone)]
struct Args {
    /// Projects onboarded before measuring.
    #[arg(long, default_value_t = 1000)]
    projects: usize,
    /// Members per project (besides its owner): all but three are users, two are groups, one is
    /// the member under test or one more user.
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Projects each member under test is in; there are `--projects / --member-of` of them (and
    /// as many platform admins).
    #[arg(long, default_value_t = 20)]
    member_of: usize,
    /// Load pages as only this many of the members and admins (default: all). The console
    /// remembers a user's answers for 5 s: with all (50), a user's next load comes seconds later,
    /// as a person's would; with 1, nearly every load is served from that memory.
    #[arg(long)]
    users: Option<usize>,
    /// Counted loads per case and phase at most (a busy phase ends sooner when its onboarding
    /// is done).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Uncounted loads per case before each phase.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Rounds of (idle, busy), in alternating order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Projects onboarded during each busy phase.
    #[arg(long, default_value_t = 200)]
    busy_projects: usize,
    /// Concurrent creators, and the operator's concurrent reconciles.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The operator binary (release).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// The console binary (release).
    #[arg(long)]
    console: Option<PathBuf>,
}

fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("release").join(name)
}

fn say(message: &str) {
    eprintln!("[console-pages] {message}");
}

/// The Project controller's reconcile count from the operator's metrics.
async fn reconciles(metrics: &str) -> Result<f64> {
    let text = reqwest::get(metrics).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("berth_reconciles_total") && l.contains("controller=\"project\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

/// Waits until the reconcile counter has stood still for `quiet`.
async fn wait_quiet(metrics: &str, quiet: Duration, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = (f64::NAN, Instant::now());
    loop {
        let now = reconciles(metrics).await?;
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("the operator did not go quiet within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the operator (pid `pid`; it names itself `<host>-<pid>`) holds its lease.
async fn wait_leading(admin: &kube::Client, pid: u32) -> Result<()> {
    let api: Api<Lease> = Api::namespaced(admin.clone(), "berth-system");
    let suffix = format!("-{pid}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let holder = api
            .get_opt("berth-operator")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if holder.as_deref().is_some_and(|h| h.ends_with(&suffix)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator did not take its lease; holder {holder:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the console on a free port under its ServiceAccount, in impersonate mode; its base URL.
async fn start_console(plane: &ControlPlane, binary: &Path) -> Result<(Process, String)> {
    let kubeconfig = plane.dir().join("console.kubeconfig");
    plane
        .cluster()
        .service_account_kubeconfig("berth-system", "berth-console", &kubeconfig)
        .await?;
    let [port] = berth_testenv::util::free_ports()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut console = Process::spawn_with_env(
        "berth-console",
        binary,
        &[
            format!("--listen=127.0.0.1:{port}"),
            format!("--public-url={base}"),
            "--act-as=impersonate".into(),
        ],
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &plane.dir().join("console.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = console.exited() {
            bail!(
                "the console exited with {status}:\n{}",
                console.log_tail(3000)
            );
        }
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|a| a.status().is_success())
        {
            return Ok((console, base));
        }
        if Instant::now() > deadline {
            bail!("the console did not answer:\n{}", console.log_tail(3000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The figures of one phase of one round.
struct Phase {
    round: usize,
    busy: bool,
    samples: Vec<Samples>,
    seconds: f64,
    reconciles: f64,
    load: (f64, f64),
    /// Busy: the onboarding still ran when the counted loads were done.
    still_busy: bool,
}

fn commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = run(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let operator = args
        .operator
        .clone()
        .unwrap_or_else(|| release_binary("berth-operator"));
    let console_bin = args
        .console
        .clone()
        .unwrap_or_else(|| release_binary("berth-console"));
    for binary in [&operator, &console_bin] {
        if !binary.exists() {
            bail!(
                "{} not found: `cargo build --release -p berth-operator -p berth-console`",
                binary.display()
            );
        }
    }
    anyhow::ensure!(args.members >= 4, "--members must be at least 4");
    anyhow::ensure!(
        args.member_of >= 1 && args.member_of <= args.projects,
        "--member-of must be between 1 and --projects"
    );
    // Member k is in every project i with i % members == k.
    let members = args.projects / args.member_of;
    let users = args.users.unwrap_or(members).clamp(1, members);
    let started = jiff_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");

    say("starting the control plane (kwok nodes), Berth installed from deploy/");
    let plane = ControlPlane::start(Options {
        progress: false,
        ..Options::default()
    })
    .await?;
    let admin = plane.cluster().client().await?;
    let tokens = setup::users(&admin, members).await?;

    say("starting the release operator");
    let (mut operator, metrics_port) = plane
        .cluster()
        .start_operator(
            &operator,
            plane.dir(),
            "operator.log",
            &[format!("--concurrency={}", args.concurrency)],
        )
        .await?;
    wait_leading(&admin, operator.pid()).await?;
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");

    say(&format!(
        "onboarding {} projects of {} members each",
        args.projects, args.members
    ));
    let onboard_start = Instant::now();
    let projects = (0..args.projects)
        .map(|i| setup::project(0, i, members, args.members))
        .collect::<Result<Vec<_>>>()?;
    let (created, waited) = tokio::join!(
        setup::create(&admin, projects, args.concurrency),
        setup::wait_ready(&admin, 0, args.projects, Duration::from_secs(1800))
    );
    created?;
    waited?;
    let onboard_seconds = onboard_start.elapsed().as_secs_f64();
    say(&format!(
        "all {} Ready in {onboard_seconds:.1} s",
        args.projects
    ));
    if let Some(status) = operator.exited() {
        bail!("the operator exited with {status}");
    }

    say("starting the release console (impersonate mode, its own ServiceAccount)");
    let (mut console, base) = start_console(&plane, &console_bin).await?;
    let member_rows = args.member_of;
    // Successive loads of a case are different users' (the pages of member k: its projects).
    let name = |i: usize| format!("p-{i:04}");
    let mut cases = vec![
        Case {
            label: "member /".into(),
            loads: (0..users)
                .map(|k| (tokens.members[k].clone(), "/".to_owned()))
                .collect(),
            rows: Some(member_rows),
        },
        Case {
            label: "member /projects/<name>".into(),
            loads: (0..args.member_of)
                .flat_map(|r| (0..users).map(move |k| (k, k + members * r)))
                .map(|(k, i)| (tokens.members[k].clone(), format!("/projects/{}", name(i))))
                .collect(),
            rows: None,
        },
        Case {
            label: "admin /".into(),
            loads: (0..users)
                .map(|k| (tokens.admins[k].clone(), "/".to_owned()))
                .collect(),
            rows: Some(args.projects),
        },
        Case {
            label: "admin /projects/<name>".into(),
            loads: (0..args.projects)
                .map(|c| {
                    (
                        tokens.admins[c % users].clone(),
                        format!("/projects/{}", name((c * 7) % args.projects)),
                    )
                })
                .collect(),
            rows: None,
        },
    ];
    // The console's Project cache fills from its first list: wait until the pages show it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = measure::run(&base, &cases, 0, 1, 0, || true).await {
        if Instant::now() > deadline {
            bail!(
                "the console's pages are not right after 60 s: {e:#}\n{}",
                console.log_tail(3000)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut phases: Vec<Phase> = Vec::new();
    let mut total_projects = args.projects;
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for busy in order {
            say(&format!(
                "round {}/{}: {} (load {:.1})",
                round + 1,
                args.rounds,
                if busy { "busy" } else { "idle" },
                machine::load_1m()
            ));
            wait_quiet(&metrics, Duration::from_secs(5), Duration::from_secs(900)).await?;
            measure::run(&base, &cases, 0, args.warmup, 0, || true).await?;
            let load_start = machine::load_1m();
            let before = reconciles(&metrics).await?;
            let start = Instant::now();
            let (samples, still_busy) = if busy {
                let batch = round + 1;
                let n = args.busy_projects;
                let projects = (0..n)
                    .map(|i| setup::project(batch, i, members, args.members))
                    .collect::<Result<Vec<_>>>()?;
                let done = Arc::new(AtomicBool::new(false));
                let onboarding = {
                    let admin = admin.clone();
                    let done = done.clone();
                    let concurrency = args.concurrency;
                    tokio::spawn(async move {
                        let result = tokio::try_join!(
                            setup::create(&admin, projects, concurrency),
                            setup::wait_ready(&admin, batch, n, Duration::from_secs(1800))
                        );
                        done.store(true, Ordering::Release);
                        result.map(|_| ())
                    })
                };
                let samples = measure::run(&base, &cases, args.warmup, 0, args.requests, || {
                    !done.load(Ordering::Acquire)
                })
                .await?;
                let still_busy = !done.load(Ordering::Acquire);
                let seconds_so_far = start.elapsed().as_secs_f64();
                onboarding.await.context("the onboarding task")??;
                say(&format!(
                    "  batch {batch}: {n} projects Ready in {:.1} s; measured for {seconds_so_far:.1} s of it",
                    start.elapsed().as_secs_f64()
                ));
                total_projects += n;
                cases[2].rows = Some(total_projects);
                (samples, still_busy)
            } else {
                let samples =
                    measure::run(&base, &cases, args.warmup, 0, args.requests, || true).await?;
                (samples, false)
            };
            let phase = Phase {
                round: round + 1,
                busy,
                seconds: start.elapsed().as_secs_f64(),
                reconciles: reconciles(&metrics).await? - before,
                load: (load_start, machine::load_1m()),
                samples,
                still_busy,
            };
            print_phase(&phase, &cases);
            phases.push(phase);
            if let Some(status) = operator.exited() {
                bail!("the operator exited with {status}");
            }
            if let Some(status) = console.exited() {
                bail!(
                    "the console exited with {status}:\n{}",
                    console.log_tail(3000)
                );
            }
        }
    }

    println!();
    println!("console-pages: {command}");
    println!("commit {}, started {started}, {} CPUs", commit(), cpus());
    println!(
        "{} projects × {} members onboarded in {onboard_seconds:.1} s; {members} members of {member_rows} projects each and {members} platform admins, loads as {users} of each; busy phases onboard {} more each",
        args.projects, args.members, args.busy_projects
    );
    println!(
        "console: peak RSS {:.1} MiB, CPU {:.1} s",
        machine::peak_rss_mib(console.pid()).unwrap_or(f64::NAN),
        machine::cpu_seconds(console.pid()).unwrap_or(f64::NAN)
    );
    println!();
    println!(
        "{:<6} {:<26} {:>6} {:>7} {:>16} {:>7} {:>7} {:>6}",
        "phase", "case", "count", "p50 ms", "p95 ms (range)", "p99 ms", "max ms", "errors"
    );
    for busy in [false, true] {
        for (i, case) in cases.iter().enumerate() {
            let of: Vec<&Phase> = phases.iter().filter(|p| p.busy == busy).collect();
            let per = |f: usize| -> Vec<f64> {
                of.iter().map(|p| summary(&p.samples[i].ms)[f]).collect()
            };
            let count: usize = of.iter().map(|p| p.samples[i].ms.len()).sum();
            let errors: usize = of.iter().map(|p| p.samples[i].errors).sum();
            let (p95, lo, hi) = median_range(&per(1));
            println!(
                "{:<6} {:<26} {:>6} {:>7.1} {:>16} {:>7.1} {:>7.1} {:>6}",
                if busy { "busy" } else { "idle" },
                case.label,
                count,
                median_range(&per(0)).0,
                format!("{p95:.1} ({lo:.1}–{hi:.1})"),
                median_range(&per(2)).0,
                median_range(&per(3)).0,
                errors
            );
        }
    }
    println!(
        "(each figure: the median over the {} rounds of that round's figure; range: min–max over rounds)",
        args.rounds
    );
    drop(console);
    drop(operator);
    plane.kill();
    Ok(())
}

fn print_phase(phase: &Phase, cases: &[Case]) {
    eprintln!(
        "[console-pages]   round {} {}: {:.1} s, {} project reconciles, load {:.1}→{:.1}{}",
        phase.round,
        if phase.busy { "busy" } else { "idle" },
        phase.seconds,
        phase.reconciles,
        phase.load.0,
        phase.load.1,
        match (phase.busy, phase.still_busy) {
            (true, true) => " (onboarding throughout)",
            (true, false) => " (onboarding done before the last load: measuring stopped there)",
            _ => "",
        }
    );
    for (case, samples) in cases.iter().zip(&phase.samples) {
        let [p50, p95, p99, max] = summary(&samples.ms);
        eprintln!(
            "[console-pages]     {:<26} n={:<4} p50 {p50:.1} p95 {p95:.1} p99 {p99:.1} max {max:.1} ms{}",
            case.label,
            samples.ms.len(),
            samples
                .first_error
                .as_ref()
                .map(|e| format!(", {} errors, first: {e}", samples.errors))
                .unwrap_or_default()
        );
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

fn jiff_now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
