//! kube-apiserver restarted in the middle of onboarding: everything converges within 30 s of its
//! return, with no duplicates (children by label and owner, against an undisturbed reference).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use berth_cluster_tests::census::Census;
use berth_testenv::Process;

use crate::support::{Platform, find_process, is_ready, signal};

const PROJECTS: usize = 60;
const REFERENCE: &str = "restart-ref";
/// How long the API server stays down: longer than the operator's renew deadline in
/// [`crate::support::FAST_LEASE`], so the operator also loses its lease and must come back.
const DOWN: Duration = Duration::from_secs(5);

/// Stops the control plane's kube-apiserver (SIGTERM, as a rolling restart does), keeps it down
/// for `down`, and starts it again with the same command line on the same port. Returns the new
/// process (it dies with the test) once `/readyz` answers.
async fn restart_apiserver(platform: &Platform, down: Duration) -> Result<Process> {
    let needle = platform.plane.dir().join("apiserver-certs");
    let (pid, args) = find_process("kube-apiserver", &needle.display().to_string())?;
    // As a rolling restart does: SIGTERM, then SIGKILL once the grace period (30 s, the pod
    // default) is over. A loaded API server can take longer than that to drain its watches.
    signal(pid, libc::SIGTERM)?;
    let running = || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty());
    let grace = Instant::now() + Duration::from_secs(30);
    let mut killed = false;
    while running() {
        if !killed && Instant::now() > grace {
            eprintln!("kube-apiserver {pid} still running 30 s after SIGTERM: SIGKILL");
            signal(pid, libc::SIGKILL)?;
            killed = true;
        } else if killed && Instant::now() > grace + Duration::from_secs(30) {
            bail!("kube-apiserver {pid} did not stop, even after SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("kube-apiserver stopped; down for {down:?}");
    tokio::time::sleep(down).await;
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no argv"))?;
    let process = Process::spawn(
        "kube-apiserver",
        std::path::Path::new(program),
        rest,
        &platform.plane.dir().join("kube-apiserver-restarted.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if platform.client.apiserver_version().await.is_ok()
            && platform.all_projects().await.is_ok()
        {
            return Ok(process);
        }
        if Instant::now() > deadline {
            bail!(
                "kube-apiserver did not come back within 60 s:\n{}",
                process.log_tail(3000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "fault suite, minutes: PROPTEST_CASES=50000 cargo xtask test -- -p berth-cluster-tests --test faults -- --include-ignored"]
async fn after_an_api_server_restart_everything_converges_within_30_s_without_duplicates()
-> Result<()> {
    let mut platform = Platform::start().await?;
    let spec = json!({"members": [{"kind": "Group", "name": "team", "role": "editor"}]});
    let reference = vec![REFERENCE.to_owned()];
    platform.create_projects(&reference, &spec, 1).await?;
    platform
        .wait_all(
            &reference,
            "Ready",
            Duration::from_secs(60),
            false,
            is_ready,
        )
        .await?;

    let names: Vec<String> = (0..PROJECTS).map(|i| format!("restart-{i}")).collect();
    platform.create_projects(&names, &spec, 8).await?;
    // Mid-run: some, not all, Ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        let all = platform.all_projects().await?;
        let ready = names
            .iter()
            .filter(|n| all.get(*n).is_some_and(is_ready))
            .count();
        if ready >= 5 {
            break ready;
        }
        if Instant::now() > deadline {
            bail!("only {ready} Projects Ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        ready < PROJECTS,
        "every Project was Ready before the restart: nothing was pending"
    );
    eprintln!("restarting kube-apiserver with {ready} of {PROJECTS} Ready");
    let _apiserver = restart_apiserver(&platform, DOWN).await?;
    let back = Instant::now();

    let mut all_names = reference.clone();
    all_names.extend(names.iter().cloned());
    // The operator may exit when it cannot renew its lease: started again, as its Deployment would.
    let restarts = platform
        .wait_all(
            &all_names,
            "Ready",
            Duration::from_secs(120),
            true,
            is_ready,
        )
        .await?;
    let converged = back.elapsed();
    eprintln!(
        "all {} Projects Ready {:.1} s after kube-apiserver returned (operator restarts: {restarts})",
        all_names.len(),
        converged.as_secs_f64()
    );
    assert!(
        converged <= Duration::from_secs(30),
        "converged {:.1} s after the API server returned (target 30 s)",
        converged.as_secs_f64()
    );

    let projects: Vec<_> = platform.all_projects().await?.into_values().collect();
    let census = Census::take(&platform.client, &projects).await?;
    let differences = census.differences(REFERENCE);
    assert!(
        differences.is_empty(),
        "Projects differ from the reference {:?}:\n{}",
        census.per_project.get(REFERENCE),
        differences.join("\n")
    );
    Ok(())
}
