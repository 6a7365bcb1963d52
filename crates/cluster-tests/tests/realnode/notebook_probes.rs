//! An exec activity probe for real: the operator (a pod, under the shipped RBAC plus the
//! `berth-notebook-exec` binding an admin makes in the namespace) runs the probe's command in the
//! notebook's container through the API server and reads its output as the last activity. A
//! probe that prints an old time gets its notebook culled, with that time in the Event; one that
//! prints the present keeps its notebook running past the idle timeout.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use berth_api::notebook::{Notebook, NotebookPhase};

use crate::platform::platform;
use crate::support::{env, eventually, place_on_real_node, unique};

const OWNER: &str = "ide@example.com";

fn notebook(name: &str, ns: &str, command: &[&str]) -> Result<Notebook> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            "home": {"size": "64Mi"},
            "idleTimeout": "10s",
            "activityProbe": {"exec": {"command": command, "timeoutSeconds": 5}},
        },
    }))?)
}

fn phase(nb: &Notebook) -> Option<NotebookPhase> {
    nb.status.as_ref().and_then(|s| s.phase)
}

#[tokio::test]
async fn an_exec_probe_reads_the_last_activity_from_the_container() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let client = &env.client;
    let ns = unique("rn-probe");
    crate::support::ready_project(client, &ns, json!({"owners": [OWNER]})).await?;
    place_on_real_node(client, &ns).await?;
    // The admin lets the operator exec in this namespace.
    berth_testenv::manifests::grant_notebook_exec(client, &ns).await?;
    let owner = env.shared.cluster.impersonate(OWNER, &[]).await?;
    let notebooks: Api<Notebook> = Api::namespaced(owner.clone(), &ns);
    let started = Instant::now();
    for (name, command) in [
        // 2020-01-01T00:00:00Z, long idle.
        (
            "old",
            ["date", "-u", "-d", "@1577836800", "+%Y-%m-%dT%H:%M:%SZ"].as_slice(),
        ),
        // Now, in Unix seconds: always active.
        ("busy", ["date", "-u", "+%s"].as_slice()),
    ] {
        notebooks
            .patch(
                name,
                &PatchParams::apply("berth-realnode-tests"),
                &Patch::Apply(&notebook(name, &ns, command)?),
            )
            .await?;
    }
    let culled = eventually("notebook old Culled", Duration::from_secs(120), || async {
        let nb = notebooks.get("old").await?;
        ensure!(
            phase(&nb) != Some(NotebookPhase::Failed),
            "old failed: {:?}",
            nb.status
        );
        Ok((phase(&nb) == Some(NotebookPhase::Culled)).then_some(nb))
    })
    .await?;
    eprintln!(
        "the notebook whose probe says 2020 was culled {:.1} s after it was created",
        started.elapsed().as_secs_f64()
    );
    ensure!(culled.spec.stopped, "culled means spec.stopped");
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let culls = events
        .list(&ListParams::default().fields("involvedObject.name=old,reason=Culled"))
        .await?;
    ensure!(
        culls.items.iter().any(|e| e
            .message
            .as_deref()
            .is_some_and(|m| m.contains("2020-01-01T00:00:00Z"))),
        "no Culled event with the probe's time: {:?}",
        culls
            .items
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    );

    // The other one runs past twice its idle timeout, its last activity kept fresh by the probe.
    let running = eventually(
        "notebook busy Running",
        Duration::from_secs(120),
        || async {
            let nb = notebooks.get("busy").await?;
            Ok((phase(&nb) == Some(NotebookPhase::Running)).then_some(nb))
        },
    )
    .await?;
    let since = Instant::now();
    let _ = running;
    while since.elapsed() < Duration::from_secs(20) {
        let nb = notebooks.get("busy").await?;
        ensure!(
            phase(&nb) == Some(NotebookPhase::Running) && !nb.spec.stopped,
            "busy stopped: {:?}",
            nb.status
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let nb = notebooks.get("busy").await?;
    let last = nb
        .status
        .and_then(|s| s.last_activity)
        .map(|t| t.0)
        .ok_or_else(|| anyhow::anyhow!("busy has no lastActivity"))?;
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(last);
    ensure!(
        age.as_secs() < 15,
        "busy's last activity is {} s old",
        age.as_secs()
    );
    for name in ["old", "busy"] {
        notebooks
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"stopped": true}})),
            )
            .await?;
    }
    Ok(())
}
