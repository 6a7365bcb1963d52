//! Crash recovery and leader election: two replicas of the operator run; the leader is killed
//! (SIGKILL) while it onboards 50 Projects; the standby takes over once the lease expires. Every
//! Project converges, and nothing is duplicated or orphaned. A test binary of its own, so its control
//! plane and operators are not shared with other tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::Project;
use berth_testenv::{ControlPlane, Options, Process};

const PROJECTS: usize = 50;

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

async fn ready_count(client: &Client) -> Result<usize> {
    let projects = Api::<Project>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(projects
        .items
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
        })
        .count())
}

#[tokio::test]
async fn killed_mid_onboarding_the_operator_converges_without_duplicates() -> Result<()> {
    let plane = ControlPlane::start(Options::default()).await?;
    let client = plane.cluster().client().await?;

    let mut leader = start_operator(&plane, 1).await?;
    // Let the first replica take the lease, then start a second one: it must stand by.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let standby = start_operator(&plane, 2).await?;
    let api: Api<Project> = Api::all(client.clone());
    let names: Vec<String> = (0..PROJECTS).map(|i| format!("crash-{i}")).collect();
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move {
                let project: Project = serde_json::from_value(json!({
                    "apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": name},
                    "spec": {"owners": [format!("{name}@example.com")], "members": [{"kind": "Group", "name": "team", "role": "editor"}]},
                }))?;
                api.create(&PostParams::default(), &project).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;

    // Kill it part-way: once some, but not all, Projects are Ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = ready_count(&client).await?;
        if ready > 0 {
            assert!(
                ready < PROJECTS || Instant::now() < deadline,
                "could not catch the operator mid-way"
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("no Project became Ready before the kill");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_at_kill = ready_count(&client).await?;
    assert!(
        standby
            .log_tail(100_000)
            .contains("another replica leads; standing by"),
        "the second replica did not stand by:\n{}",
        standby.log_tail(4000)
    );
    assert!(
        !standby.log_tail(100_000).contains("reconciled"),
        "the standby reconciled while the leader lived"
    );
    leader.stop(Duration::ZERO);
    eprintln!("killed the leader with {ready_at_kill} of {PROJECTS} Projects Ready");

    // The standby leads once the dead leader's lease expires, and finishes the job.
    let deadline = Instant::now() + Duration::from_secs(180);
    while ready_count(&client).await? < PROJECTS {
        if Instant::now() > deadline {
            bail!(
                "only {} of {PROJECTS} Projects Ready after the restart",
                ready_count(&client).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Nothing duplicated or orphaned: every Berth object belongs to a live Project, and each Project
    // has exactly the objects it should.
    let uids: BTreeMap<String, String> = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| (p.uid().unwrap_or_default(), p.name_any()))
        .collect();
    let selector = ListParams::default().labels("app.kubernetes.io/managed-by=berth");
    let mut per_project: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut record = |kind: &str, meta: &kube::api::ObjectMeta| -> Result<()> {
        // The owner: a controller ownerReference, or (on namespaces and what is in them, which
        // carry none) the berth.dev/owner-uid label.
        let owners = meta.owner_references.clone().unwrap_or_default();
        let mut controllers: Vec<String> = owners
            .iter()
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
            .collect();
        controllers.extend(
            meta.labels
                .as_ref()
                .and_then(|l| l.get("berth.dev/owner-uid"))
                .cloned(),
        );
        controllers.sort();
        controllers.dedup();
        if controllers.len() != 1 || !uids.contains_key(&controllers[0]) {
            bail!(
                "{kind} {:?} is orphaned or has {} controllers",
                meta.name,
                controllers.len()
            );
        }
        let project = &uids[&controllers[0]];
        let key = format!(
            "{kind}/{}/{}",
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default()
        );
        if !per_project
            .entry(project.clone())
            .or_default()
            .insert(key.clone())
        {
            bail!("duplicate {key}");
        }
        Ok(())
    };
    for ns in Api::<Namespace>::all(client.clone())
        .list(&selector)
        .await?
        .items
    {
        record("Namespace", &ns.metadata)?;
    }
    for rb in Api::<RoleBinding>::all(client.clone())
        .list(&selector)
        .await?
        .items
    {
        record("RoleBinding", &rb.metadata)?;
    }
    for np in Api::<NetworkPolicy>::all(client.clone())
        .list(&selector)
        .await?
        .items
    {
        record("NetworkPolicy", &np.metadata)?;
    }
    for sa in Api::<ServiceAccount>::all(client.clone())
        .list(&selector)
        .await?
        .items
    {
        record("ServiceAccount", &sa.metadata)?;
    }
    for crb in Api::<ClusterRoleBinding>::all(client.clone())
        .list(&selector)
        .await?
        .items
    {
        record("ClusterRoleBinding", &crb.metadata)?;
    }
    assert_eq!(per_project.len(), PROJECTS);
    let counts: BTreeSet<usize> = per_project.values().map(BTreeSet::len).collect();
    assert_eq!(
        counts.len(),
        1,
        "Projects differ in how many objects they have: {counts:?}"
    );
    // Namespace, 2 member RoleBindings + the automation account's, 4 NetworkPolicies (with the
    // sample settings' gateway and monitoring namespaces), 1 ServiceAccount, 2 ClusterRoleBindings.
    assert_eq!(counts.into_iter().next(), Some(1 + 3 + 4 + 1 + 2));
    assert!(standby.log_tail(100_000).contains("became the leader"));
    drop(standby);
    plane.kill();
    Ok(())
}
