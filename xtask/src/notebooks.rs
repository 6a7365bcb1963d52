//! The sample notebook of `cargo xtask dev`: `deploy/samples/notebooks/` applied once the sample
//! project's pods go to the real node, waited for until JupyterLab answers (phase `Running`), and
//! how a new user opens it ([`open_instructions`], the one place that says so).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_api::notebook::{Notebook, NotebookPhase};
use berth_testenv::Cluster;
use kube::Client;
use kube::api::Api;

/// The sample notebook, as deploy/samples/notebooks/notebook.yaml names it.
pub const NAMESPACE: &str = "fraud-detection";
pub const NAME: &str = "lab";
/// An owner of the sample project (deploy/samples/project.yaml): the smoke check opens the
/// notebook as them.
const OWNER: &str = "data.scientist@example.com";
/// The first start on the real node takes about 10 s on an idle machine (docs/notebooks.md,
/// "Figures"); much more under load.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the sample notebook is: applied at `applied`, and, once waited for, Running after some
/// time or not with the reason.
pub struct Sample {
    applied: Result<Instant, String>,
    running: Option<Result<(Duration, String), String>>,
}

/// Applies deploy/samples/notebooks/. Never fails `cargo xtask dev`: an error is kept and said.
pub async fn apply(client: &Client, root: &Path) -> Sample {
    let begin = Instant::now();
    let applied =
        berth_testenv::manifests::apply_dirs(client, &[root.join("deploy/samples/notebooks")])
            .await;
    let applied = match applied {
        Ok(names) if names.iter().any(|n| n == &format!("Notebook/{NAME}")) => {
            for name in &names {
                eprintln!("    applied {name}");
            }
            Ok(begin)
        }
        Ok(names) => Err(format!(
            "deploy/samples/notebooks/ holds no Notebook {NAME} (applied: {names:?})"
        )),
        Err(e) => Err(format!("applying deploy/samples/notebooks/: {e}")),
    };
    Sample {
        applied,
        running: None,
    }
}

/// Waits until the sample notebook is Running (or Failed, or [`START_TIMEOUT`]); prints how long
/// it took from its apply, or why it is not running.
pub async fn wait(client: &Client, sample: &mut Sample) {
    let waiting = Instant::now();
    let running = match &sample.applied {
        Ok(applied) => until_running(client, *applied)
            .await
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(e.clone()),
    };
    match &running {
        Ok((took, _)) => eprintln!(
            "    Notebook/{NAMESPACE}/{NAME} is Running {:.1} s after its apply ({:.1} s of it waited for here)",
            took.as_secs_f64(),
            waiting.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("    Notebook/{NAMESPACE}/{NAME} is not Running: {e}"),
    }
    sample.running = Some(running);
}

async fn until_running(client: &Client, applied: Instant) -> Result<(Duration, String)> {
    let notebooks: Api<Notebook> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let status = notebooks.get(NAME).await?.status.unwrap_or_default();
        let reason = || {
            status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "no Ready condition yet".into())
        };
        match status.phase {
            Some(NotebookPhase::Running) => {
                let path = status.url.clone().context("Running without a url")?;
                return Ok((applied.elapsed(), path));
            }
            Some(NotebookPhase::Failed) => bail!("it failed ({})", reason()),
            phase if applied.elapsed() > START_TIMEOUT => bail!(
                "still {} after {} s ({}); see `kubectl -n {NAMESPACE} describe notebook {NAME}` and `kubectl -n {NAMESPACE} describe pod {NAME}-0`",
                phase.map_or("without a phase", NotebookPhase::as_str),
                START_TIMEOUT.as_secs(),
                reason()
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// How a project member opens the notebook at `path` (its `status.url`). The one place to change
/// when notebooks are opened another way (the console's authenticated proxy).
pub fn open_instructions(namespace: &str, name: &str, path: &str) -> Vec<String> {
    vec![
        format!("    kubectl port-forward -n {namespace} svc/{name} 8888:http"),
        format!("    # then open http://127.0.0.1:8888{path}lab"),
    ]
}

/// Prints how to open the sample notebook, or why it cannot be opened yet.
pub fn explain(sample: &Sample) {
    match &sample.running {
        Some(Ok((_, path))) => {
            eprintln!(
                "Open the sample notebook (JupyterLab, for the project's owners and editors; it stops after 1 h idle, `kubectl -n {NAMESPACE} patch nb {NAME} --type merge -p '{{\"spec\":{{\"stopped\":false}}}}'` starts it again):"
            );
            eprintln!();
            for line in open_instructions(NAMESPACE, NAME, path) {
                eprintln!("{line}");
            }
            eprintln!();
        }
        Some(Err(e)) => eprintln!("(the sample notebook cannot be opened: {e})"),
        None => eprintln!("(the sample notebook was not waited for)"),
    }
}

/// For `--smoke`: the sample notebook is Running and JupyterLab answers `api/status` through the
/// API server's service proxy, asked as an owner of the sample project (impersonated).
pub async fn smoke_check(cluster: &Cluster, sample: &Sample) -> Result<()> {
    let begin = Instant::now();
    let path = match &sample.running {
        Some(Ok((_, path))) => path.clone(),
        Some(Err(e)) => bail!("the sample notebook is not Running: {e}"),
        None => bail!("the sample notebook was not waited for"),
    };
    let owner = cluster.impersonate(OWNER, &[]).await?;
    let proxied =
        format!("/api/v1/namespaces/{NAMESPACE}/services/{NAME}:http/proxy{path}api/status");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let request = http::Request::get(&proxied).body(Vec::new())?;
        match owner.request_text(request).await {
            Ok(text) => break text,
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("GET {proxied} as {OWNER}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    let status: serde_json::Value = serde_json::from_str(&answer)
        .with_context(|| format!("JupyterLab's api/status answered {answer:?}"))?;
    if status.get("started").is_none() || status.get("last_activity").is_none() {
        bail!("JupyterLab's api/status has no started or last_activity: {status}");
    }
    eprintln!(
        "    JupyterLab answers api/status through the service proxy as {OWNER} (started {}) in {:.1} s",
        status["started"],
        begin.elapsed().as_secs_f64()
    );
    Ok(())
}
