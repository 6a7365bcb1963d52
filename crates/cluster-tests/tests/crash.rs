//! Crash recovery and leader election: two replicas of the operator run; the leader is SIGKILLed
//! at a random point while it onboards 50 Projects, and the test shows that work was pending at
//! that moment; the standby takes over once the lease expires. Every Project converges, and each
//! has exactly the children (by label and owner, per kind) of a reference Project that onboarded
//! undisturbed: a duplicate under another name or an orphan fails the test. A test binary of its
//! own, so its control plane and operators are not shared with other tests.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::Project;
use berth_cluster_tests::census::Census;
use berth_testenv::{ControlPlane, Options, Process};

const PROJECTS: usize = 50;
const REFERENCE: &str = "crash-ref";

async fn start_operator(plane: &ControlPlane, run: u32) -> Result<Process> {
    let (process, _) = plane
        .cluster()
        .start_operator(
            &berth_testenv::operator_binary()?,
            plane.dir(),
            &format!("operator-{run}.log"),
            &[],
        )
        .await?;
    Ok(process)
}

fn project(name: &str) -> Result<Project> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": name},
        "spec": {"owners": [format!("{name}@example.com")], "members": [{"kind": "Group", "name": "team", "role": "editor"}]},
    }))?)
}

fn is_ready(p: &Project) -> bool {
    p.status
        .as_ref()
        .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
}

/// How many of `names` are Ready.
async fn ready_among(client: &Client, names: &[String]) -> Result<usize> {
    let projects = Api::<Project>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(projects
        .items
        .iter()
        .filter(|p| names.contains(&p.name_any()) && is_ready(p))
        .count())
}

/// Waits until `process`'s log contains `text`.
async fn wait_log(process: &Process, text: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !process.log_tail(1_000_000).contains(text) {
        if Instant::now() > deadline {
            bail!(
                "no {text:?} in the log within {timeout:?}:\n{}",
                process.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn killed_mid_onboarding_the_operator_converges_without_duplicates() -> Result<()> {
    let plane = ControlPlane::start(Options::default()).await?;
    let client = plane.cluster().client().await?;
    let api: Api<Project> = Api::all(client.clone());

    let mut leader = start_operator(&plane, 1).await?;
    wait_log(&leader, "became the leader", Duration::from_secs(60)).await?;
    let standby = start_operator(&plane, 2).await?;
    wait_log(
        &standby,
        "another replica leads; standing by",
        Duration::from_secs(60),
    )
    .await?;

    // The reference onboards undisturbed.
    api.create(&PostParams::default(), &project(REFERENCE)?)
        .await?;
    let reference = vec![REFERENCE.to_owned()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready_among(&client, &reference).await? < 1 {
        if Instant::now() > deadline {
            bail!("the reference Project did not become Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let names: Vec<String> = (0..PROJECTS).map(|i| format!("crash-{i}")).collect();
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &project(&name)?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;

    // A random point part-way: once `threshold` Projects are Ready, and never after all are.
    let threshold = 1
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos() as usize)
            % (PROJECTS / 2);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ready_at_kill = loop {
        let ready = ready_among(&client, &names).await?;
        if ready >= threshold {
            break ready;
        }
        if Instant::now() > deadline {
            bail!("only {ready} Projects Ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        !standby.log_tail(1_000_000).contains("reconciled"),
        "the standby reconciled while the leader lived"
    );
    leader.stop(Duration::ZERO);
    // The kill must have landed while work was pending, or it tested nothing. (Read after the
    // kill: the dead leader cannot have finished anything since.)
    let ready_after_kill = ready_among(&client, &names).await?;
    eprintln!(
        "killed the leader at threshold {threshold}: {ready_at_kill} Ready before, {ready_after_kill} after, of {PROJECTS}"
    );
    assert!(
        ready_after_kill < PROJECTS,
        "every Project was Ready when the leader was killed: no work was pending"
    );

    // The standby leads once the dead leader's lease expires, and finishes the job.
    wait_log(&standby, "became the leader", Duration::from_secs(60)).await?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while ready_among(&client, &names).await? < PROJECTS {
        if Instant::now() > deadline {
            bail!(
                "only {} of {PROJECTS} Projects Ready after the takeover",
                ready_among(&client, &names).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Nothing duplicated or orphaned: each Project has, per kind, exactly the children the
    // undisturbed reference has, each labelled for it and controlled by it.
    let projects = api.list(&ListParams::default()).await?.items;
    let census = Census::take(&client, &projects).await?;
    let differences = census.differences(REFERENCE);
    assert!(
        differences.is_empty(),
        "Projects differ from the reference {:?}:\n{}",
        census.per_project.get(REFERENCE),
        differences.join("\n")
    );
    assert!(
        census
            .per_project
            .get(REFERENCE)
            .is_some_and(|kinds| kinds.get("Namespace") == Some(&1) && kinds.len() > 3),
        "the reference has too little to compare with: {:?}",
        census.per_project.get(REFERENCE)
    );
    assert_eq!(census.per_project.len(), PROJECTS + 1);
    drop(standby);
    plane.kill();
    Ok(())
}
