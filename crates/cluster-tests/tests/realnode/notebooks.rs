//! Notebook for real: JupyterLab from Berth's Jupyter image in a pod on the real node, driven over
//! its REST and kernel websocket API from a pod of the project's namespace; the home volume keeps
//! a file and a `pip install --user` package across a stop and a resume; the operator (a pod)
//! reads Jupyter's activity through the API server, never culls a notebook whose kernel computes,
//! culls it once idle, and a culled notebook starts again with its state. Every way in is tried
//! as a user outside the project and as another project's owner, by impersonation.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::notebook::{Notebook, NotebookPhase};

use crate::platform::platform;
use crate::support::{
    Env, PROBE, env, eventually, outcomes, place_on_real_node, run_to_end, shell_pod, unique,
};

const CLIENT: &str = include_str!("notebooks_client.py");
const OWNER: &str = "ds@example.com";
const OUTSIDER: &str = "mallory@example.com";
const OTHER_OWNER: &str = "eve@example.com";

async fn create_project(env: &Env, name: &str, owner: &str) -> Result<()> {
    crate::support::ready_project(&env.client, name, json!({"owners": [owner]})).await
}

/// Waits until the notebook's status says `phase`; returns the notebook. Fails at once on Failed.
async fn until_phase(
    notebooks: &Api<Notebook>,
    name: &str,
    phase: NotebookPhase,
    timeout: Duration,
) -> Result<Notebook> {
    let found = eventually(&format!("Notebook {name} {phase:?}"), timeout, || {
        let notebooks = notebooks.clone();
        async move {
            let nb = notebooks.get(name).await?;
            let status = nb.status.clone().unwrap_or_default();
            ensure!(
                status.phase != Some(NotebookPhase::Failed) || phase == NotebookPhase::Failed,
                "the notebook failed: {:?}",
                status.conditions
            );
            Ok((status.phase == Some(phase)).then_some(nb))
        }
    })
    .await;
    match found {
        Ok(nb) => Ok(nb),
        Err(e) => {
            let now = notebooks.get(name).await.ok().and_then(|n| n.status);
            Err(e.context(format!("its status: {now:?}")))
        }
    }
}

/// Runs the JupyterLab client in a pod of `ns`; returns what it printed after `RESULT`.
async fn jupyter_client(
    client: &Client,
    ns: &str,
    image: &str,
    base: &str,
    args: &[&str],
) -> Result<serde_json::Value> {
    let mut pod = shell_pod(&unique("jupyter-client"), image, "", &[], "Never");
    if let Some(c) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        let mut command = vec!["python3".into(), "-c".into(), CLIENT.into(), base.into()];
        command.extend(args.iter().map(|a| (*a).to_owned()));
        c.command = Some(command);
    }
    let (code, log) = run_to_end(client, ns, pod, Duration::from_secs(120)).await?;
    ensure!(code == 0, "the client failed ({code}):\n{log}");
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("no RESULT in:\n{log}"))?;
    Ok(serde_json::from_str(line)?)
}

/// The HTTP status of GET `path` on the API server as `client`, with `upgrade` asking for a
/// websocket as a browser does.
async fn status_of(client: &Client, path: &str, upgrade: bool) -> Result<u16> {
    let mut request = http::Request::get(path);
    if upgrade {
        request = request
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    }
    let response = client
        .send(request.body(Vec::new())?.map(kube::client::Body::from))
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn a_notebook_keeps_its_state_is_culled_when_idle_and_only_the_team_gets_in() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let client = &env.client;
    let jupyter = env.image("jupyter")?;
    let ns = unique("rn-nb");
    let other = unique("rn-nb-other");
    create_project(&env, &ns, OWNER).await?;
    create_project(&env, &other, OTHER_OWNER).await?;
    place_on_real_node(client, &ns).await?;
    place_on_real_node(client, &other).await?;

    // The owner spawns a notebook, as themselves.
    let owner = env.shared.cluster.impersonate(OWNER, &[]).await?;
    let notebooks: Api<Notebook> = Api::namespaced(owner.clone(), &ns);
    let notebook: Notebook = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": ns},
        "spec": {
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            "home": {"size": "256Mi"},
        },
    }))?;
    let started = Instant::now();
    notebooks
        .patch(
            "lab",
            &PatchParams::apply("berth-realnode-tests"),
            &Patch::Apply(&notebook),
        )
        .await?;
    let running = until_phase(
        &notebooks,
        "lab",
        NotebookPhase::Running,
        Duration::from_secs(120),
    )
    .await?;
    eprintln!(
        "notebook Running after {:.1} s (start to JupyterLab answering, image imported)",
        started.elapsed().as_secs_f64()
    );
    let status = running.status.clone().unwrap_or_default();
    let path = status.url.clone().context("no url in status")?;
    ensure!(path == format!("/notebook/{ns}/lab/"), "url {path}");
    ensure!(status.image.as_deref() == Some(jupyter.as_str()));

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cluster_ip = services
        .get("lab")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let base = format!("http://{cluster_ip}:8888{path}");

    // A kernel writes a file and installs a package into HOME.
    let wrote = jupyter_client(client, &ns, &jupyter, &base, &["write"]).await?;
    let out = wrote["out"].as_str().unwrap_or_default();
    ensure!(out.contains("pip 0"), "pip install --user: {out}");

    // Every way in, as someone outside the project and as another project's owner: the API
    // server's service and pod proxies (HTTP and websocket), port-forward, the Notebook itself.
    let proxied = format!("/api/v1/namespaces/{ns}/services/lab:http/proxy{path}api/status");
    let pod_proxied = format!("/api/v1/namespaces/{ns}/pods/lab-0:8888/proxy{path}api/status");
    let channels = format!("/api/v1/namespaces/{ns}/services/lab:http/proxy{path}api/kernels");
    let forward = format!("/api/v1/namespaces/{ns}/pods/lab-0/portforward?ports=8888");
    ensure!(
        status_of(&owner, &proxied, false).await? == 200,
        "the owner through the proxy"
    );
    for user in [OUTSIDER, OTHER_OWNER] {
        let them = env.shared.cluster.impersonate(user, &[]).await?;
        for (what, path, upgrade) in [
            ("service proxy", &proxied, false),
            ("pod proxy", &pod_proxied, false),
            ("websocket through the proxy", &channels, true),
            ("port-forward", &forward, true),
        ] {
            let code = status_of(&them, path, upgrade).await?;
            ensure!(code == 403, "{user}: {what} answered {code}, not 403");
        }
        let theirs: Api<Notebook> = Api::namespaced(them.clone(), &ns);
        let denied = theirs.get("lab").await;
        ensure!(
            matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
            "{user} read the Notebook: {denied:?}"
        );
        let patch = json!({"spec": {"stopped": true}});
        let denied = theirs
            .patch("lab", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        ensure!(
            matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
            "{user} stopped the Notebook: {denied:?}"
        );
    }
    // From another project's namespace, the network does not reach JupyterLab either.
    let script = format!("{PROBE}probe jupyter {base}api/status");
    let (_, log) = run_to_end(
        client,
        &other,
        shell_pod(
            &unique("probe"),
            &env.image("helper")?,
            &script,
            &[],
            "Never",
        ),
        Duration::from_secs(60),
    )
    .await?;
    ensure!(
        outcomes(&log).get("jupyter") == Some(&false),
        "another project's pod reached the notebook: {log}"
    );
    // The victim is unchanged: still running, not stopped.
    let after = notebooks.get("lab").await?;
    ensure!(!after.spec.stopped, "the attacks stopped the notebook");

    // Stop: the pod goes, the home volume stays; resume: the file and the package are there.
    let stop = |stopped: bool| json!({"spec": {"stopped": stopped}});
    notebooks
        .patch("lab", &PatchParams::default(), &Patch::Merge(&stop(true)))
        .await?;
    until_phase(
        &notebooks,
        "lab",
        NotebookPhase::Stopped,
        Duration::from_secs(60),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    ensure!(
        pods.get_opt("lab-0").await?.is_none(),
        "the pod outlived the stop"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    ensure!(
        claims.get_opt("lab-home").await?.is_some(),
        "the home volume went with the stop"
    );
    notebooks
        .patch("lab", &PatchParams::default(), &Patch::Merge(&stop(false)))
        .await?;
    until_phase(
        &notebooks,
        "lab",
        NotebookPhase::Running,
        Duration::from_secs(90),
    )
    .await?;
    let checked = jupyter_client(client, &ns, &jupyter, &base, &["check"]).await?;
    let out = checked["out"].as_str().unwrap_or_default();
    ensure!(
        out.contains("state kept across stops"),
        "after resume: {out}"
    );
    ensure!(
        out.contains("tabulate /home/jovyan/.local/"),
        "after resume: {out}"
    );

    // Culling: a computing kernel is never culled, an idle notebook is. The kernel starts
    // computing first; then the timeout becomes short.
    let (timeout, busy_for) = (10, 30);
    let seconds = busy_for.to_string();
    jupyter_client(client, &ns, &jupyter, &base, &["busy", seconds.as_str()]).await?;
    let busy_since = Instant::now();
    notebooks
        .patch(
            "lab",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"idleTimeout": format!("{timeout}s")}})),
        )
        .await?;
    // Until shortly before the computation ends, well past the timeout and several polls (5 s):
    // still running.
    while busy_since.elapsed() < Duration::from_secs(busy_for - 3) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let nb = notebooks.get("lab").await?;
        ensure!(
            !nb.spec.stopped,
            "culled while a kernel computed, {:.0} s into it",
            busy_since.elapsed().as_secs_f64()
        );
    }
    let culled = until_phase(
        &notebooks,
        "lab",
        NotebookPhase::Culled,
        Duration::from_secs(90),
    )
    .await?;
    eprintln!(
        "culled {:.0} s after a {busy_for} s computation began (idle timeout {timeout} s)",
        busy_since.elapsed().as_secs_f64()
    );
    ensure!(culled.spec.stopped, "culled means spec.stopped");
    ensure!(
        pods.get_opt("lab-0").await?.is_none(),
        "the pod outlived the cull"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let culled_events = events
        .list(&ListParams::default().fields("involvedObject.name=lab,reason=Culled"))
        .await?;
    ensure!(!culled_events.items.is_empty(), "no Culled event");

    // A culled notebook starts again with its state.
    notebooks
        .patch("lab", &PatchParams::default(), &Patch::Merge(&stop(false)))
        .await?;
    let resumed = until_phase(
        &notebooks,
        "lab",
        NotebookPhase::Running,
        Duration::from_secs(90),
    )
    .await?;
    ensure!(
        !resumed
            .annotations()
            .contains_key(berth_api::notebook::CULLED_AT_ANNOTATION),
        "the cull mark stayed"
    );
    // Long enough idle timeout again, so the check below is not culled under it.
    notebooks
        .patch(
            "lab",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"idleTimeout": "1h"}})),
        )
        .await?;
    let checked = jupyter_client(client, &ns, &jupyter, &base, &["check"]).await?;
    let out = checked["out"].as_str().unwrap_or_default();
    ensure!(
        out.contains("state kept across stops"),
        "after the cull: {out}"
    );
    Ok(())
}
