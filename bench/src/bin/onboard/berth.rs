//! Berth: the release operator under its own service account and shipped RBAC, leader election on,
//! reconciling `concurrency` Projects at once while the same client creates them `concurrency` at a
//! time. Done: a watch has seen every Project `Ready=True`.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::Api;

use berth_api::Project;
use berth_testenv::Process;

use crate::report::Run;
use crate::{
    Args, Bench, counter_sum, create_all, machine, names, now, project, wait_done, wait_for_lease,
    wait_reconciled, window,
};

const OPERATOR_USER: &str = "system:serviceaccount:berth-system:berth-operator";

/// Starts the operator and waits until it leads. `resync_seconds`: its resync period (the default,
/// 30 min, when `None`).
async fn start_operator(
    bench: &Bench,
    args: &Args,
    log: &str,
    resync_seconds: Option<u64>,
) -> Result<(Process, u16)> {
    let mut flags = vec![format!("--concurrency={}", args.concurrency)];
    if let Some(seconds) = resync_seconds {
        flags.push(format!("--resync-seconds={seconds}"));
    }
    let (operator, port) = bench
        .plane
        .cluster()
        .start_operator(&args.operator, bench.plane.dir(), log, &flags)
        .await?;
    wait_for_lease(
        &bench.admin,
        "berth-system",
        "berth-operator",
        operator.pid(),
        Duration::from_secs(60),
    )
    .await?;
    Ok((operator, port))
}

pub async fn run(n: usize, repeat: usize, args: &Args) -> Result<Run> {
    let load_start = machine::load_1m();
    let bench = Bench::start().await?;
    // The resync shortened from the default 30 min (`RESYNC` in
    // crates/controllers/src/project/mod.rs) so that the steady window covers a whole resync
    // period: every Project reconciled again with nothing changed.
    let (mut operator, metrics_port) =
        start_operator(&bench, args, "operator.log", Some(args.resync_seconds)).await?;
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    // Its start-up lists and watches are not per-Project work: the clock starts after them.
    crate::audit::wait_started(
        &bench.plane.audit_log(),
        OPERATOR_USER,
        "projects",
        Duration::from_millis(1500),
        Duration::from_secs(60),
    )
    .await?;

    let from = now();
    let start = Instant::now();
    let api: Api<Project> = Api::all(bench.admin.clone());
    let projects = names(n)
        .iter()
        .map(|name| project(name))
        .collect::<Result<Vec<_>>>()?;
    let ready = |p: &Project| {
        p.status
            .as_ref()
            .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
    };
    let alive = || match operator.exited() {
        Some(status) => bail!(
            "the operator exited with {status}:\n{}",
            operator.log_tail(3000)
        ),
        None => Ok(()),
    };
    let (created, waited) = tokio::join!(
        create_all(&api, projects, args.concurrency),
        wait_done(api.clone(), n, Duration::from_secs(1800), ready, alive)
    );
    created?;
    waited?;
    let seconds = start.elapsed().as_secs_f64();
    let ready_at = now();

    // The window must hold a whole resync period: every Project reconciled again, nothing
    // changed. The reconcile counter shows that it did.
    let reconciles = || counter_sum(&metrics, "berth_reconciles_total", "controller=\"project\"");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = reconciles().await?;
    let (steady_from, steady_to) = window(args).await;
    let resynced = reconciles().await? - before;
    if resynced < n as f64 {
        bail!(
            "only {resynced} Project reconciles in the {} s steady window, fewer than the {n} Projects: \
             the window does not hold a whole resync period ({} s)",
            args.steady_seconds,
            args.resync_seconds
        );
    }
    let peak_rss_mib = machine::peak_rss_mib(operator.pid());
    let cpu_seconds = machine::cpu_seconds(operator.pid());

    // What a resync does: every Project reconciled once more with nothing changed. A restart does
    // exactly that (the new leader lists every Project), with the harder case of empty caches.
    operator.stop(Duration::from_secs(10));
    let resync_from = now();
    // With the default resync, so that the reconciles counted are those of the restart alone and
    // the counter goes quiet once they are done.
    let (operator, port) = start_operator(&bench, args, "operator-resync.log", None).await?;
    wait_reconciled(
        &format!("http://127.0.0.1:{port}/metrics"),
        "berth_reconciles_total",
        "controller=\"project\"",
        n,
        Duration::from_secs(5),
        Duration::from_secs(900),
    )
    .await?;
    let resync_to = now();
    drop(operator);

    let audit = bench.audit()?;
    let onboarding = audit.counts(OPERATOR_USER, from, ready_at, "berth onboarding");
    let steady = audit.counts(OPERATOR_USER, steady_from, steady_to, "berth steady");
    let resync = audit.counts(OPERATOR_USER, resync_from, resync_to, "berth resync");
    let load_end = machine::load_1m();
    bench.plane.kill();
    Ok(Run {
        n,
        variant: "berth",
        repeat,
        seconds,
        requests_per_object: onboarding.all as f64 / n as f64,
        steady_writes: Some(steady.writes),
        steady_seconds: args.steady_seconds as f64,
        lease_writes: Some(steady.lease_writes),
        restart_writes: Some(resync.writes),
        restart_is_resync: false,
        resync_period_seconds: Some(args.resync_seconds as f64),
        peak_rss_mib,
        cpu_seconds,
        load: (load_start, load_end),
    })
}
