//! Berth's operator as a pod: from its image, under its ServiceAccount, with in-cluster
//! configuration (the `kubernetes` Service through kube-proxy), holding the leader lease and
//! reconciling a Project to Ready.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use berth_testenv::realnode::NODE_NAME;

use crate::platform::platform;
use crate::support::{env, eventually, unique};

#[tokio::test]
async fn the_operator_runs_as_a_pod_and_reconciles_a_project() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let client = &env.client;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "berth-system");
    let operator = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=berth-operator"))
        .await?
        .items
        .into_iter()
        .next()
        .context("no operator pod")?;
    let spec = operator.spec.clone().unwrap_or_default();
    ensure!(
        spec.node_name.as_deref() == Some(NODE_NAME),
        "not on {NODE_NAME}"
    );
    ensure!(spec.service_account_name.as_deref() == Some("berth-operator"));
    // The lease names the pod: it got there through the in-cluster API address.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "berth-system");
    let holder = eventually(
        "the operator pod to hold the lease",
        Duration::from_secs(60),
        || async {
            let all = leases.list(&ListParams::default()).await?;
            Ok(all
                .items
                .iter()
                .filter_map(|l| l.spec.as_ref().and_then(|s| s.holder_identity.clone()))
                .find(|h| h.contains(&operator.name_any())))
        },
    )
    .await?;
    eprintln!("lease holder: {holder}");

    let name = unique("rn-op");
    let projects: Api<berth_api::Project> = Api::all(client.clone());
    let project: berth_api::Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name},
        "spec": {"owners": ["owner@example.com"], "storage": {"enabled": false}},
    }))?;
    projects
        .patch(
            &name,
            &PatchParams::apply("berth-realnode-tests").force(),
            &Patch::Apply(&project),
        )
        .await?;
    eventually("the Project Ready", Duration::from_secs(60), || async {
        let p = projects.get(&name).await?;
        let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
        Ok(berth_api::conditions::is_true(&conditions, "Ready").then_some(()))
    })
    .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    ensure!(
        namespaces.get_opt(&name).await?.is_some(),
        "no namespace {name}"
    );
    Ok(())
}

#[tokio::test]
async fn a_second_real_node_waits_for_the_first_and_then_says_so() -> anyhow::Result<()> {
    let env = env().await?;
    // The shared node holds the machine's lock; another start waits, then fails clearly.
    let begin = std::time::Instant::now();
    let second = tokio::task::spawn_blocking(|| {
        berth_testenv::realnode::HostLease::acquire_within(true, Duration::from_secs(2))
    })
    .await?;
    let waited = begin.elapsed();
    match second {
        Ok(_) => anyhow::bail!("a second real node started while the first runs"),
        Err(e) => {
            let message = e.to_string();
            eprintln!("second start after {waited:?}: {message}");
            ensure!(message.contains("busy"), "{message}");
            ensure!(
                waited >= Duration::from_secs(2),
                "it did not wait: {waited:?}"
            );
        }
    }
    // The first is untouched.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(env.client.clone());
    let node = nodes.get(NODE_NAME).await?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ensure!(ready, "the real node is no longer Ready");
    Ok(())
}
