//! Start-to-Running on the real node: a fresh Notebook (a new home volume provisioned by
//! local-path), then stopped, then resumed with the same home volume, then deleted with its volume;
//! `--repeats` times. Each phase is the first 100 ms poll that saw it, in seconds after the apply
//! (or the patch of `spec.stopped`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use berth_api::notebook::{Notebook, NotebookPhase};
use berth_testenv::Options;

use crate::{FIELD_MANAGER, machine, notebook, ready_project, spread};

#[derive(clap::Args)]
pub struct Args {
    /// How many times to start, stop, resume and delete a notebook.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// How long to wait for one start.
    #[arg(long, default_value_t = 180)]
    timeout_seconds: u64,
    /// The notebook's CPU limit (the project's default, 1 CPU, when not given). JupyterLab's
    /// start is CPU-bound: 200m makes it several seconds slower.
    #[arg(long)]
    cpu_limit: Option<String>,
}

const NAMESPACE: &str = "nb-start-bench";
/// The phases, in the order they happen.
const PHASES: [&str; 5] = ["pod created", "scheduled", "started", "ready", "Running"];

/// Seconds after the start at which each phase was first seen.
type Phases = BTreeMap<&'static str, f64>;

pub async fn run(args: Args, operator: &Path) -> Result<()> {
    eprintln!(
        "[notebooks] starting a control plane with the real node (load {:.1})…",
        machine::load_1m()
    );
    let (plane, node) = berth_testenv::start_real_node(Options::default()).await?;
    let client = plane.cluster().client().await?;
    let (mut process, _port) = plane
        .cluster()
        .start_operator(operator, plane.dir(), "operator.log", &[])
        .await?;
    let result = measure(&args, &client).await;
    if let Some(status) = process.exited() {
        eprintln!(
            "[notebooks] the operator exited ({status}):\n{}",
            process.log_tail(3000)
        );
    }
    process.stop(Duration::from_secs(5));
    node.stop();
    plane.stop();
    result
}

async fn measure(args: &Args, client: &Client) -> Result<()> {
    ready_project(client, NAMESPACE, 0).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let placement =
        json!({"metadata": {"annotations": berth_testenv::realnode::namespace_placement()}});
    namespaces
        .patch(
            NAMESPACE,
            &PatchParams::default(),
            &Patch::Merge(&placement),
        )
        .await?;
    let notebooks: Api<Notebook> = Api::namespaced(client.clone(), NAMESPACE);
    let timeout = Duration::from_secs(args.timeout_seconds);
    let mut starts = Vec::new();
    let mut resumes = Vec::new();
    let mut stops = Vec::new();
    let load_start = machine::load_1m();
    for i in 0..args.repeats {
        let name = format!("start-{i}");
        let begin = Instant::now();
        notebooks
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&notebook(
                    NAMESPACE,
                    &name,
                    args.cpu_limit.as_deref(),
                    None,
                )?),
            )
            .await?;
        let fresh = phases(client, &name, begin, timeout).await?;
        eprintln!("[notebooks] {name} fresh start: {}", show(&fresh));

        let begin = Instant::now();
        set_stopped(&notebooks, &name, true).await?;
        let stopped = until_stopped(client, &name, begin, timeout).await?;
        eprintln!("[notebooks] {name} stopped (pod gone, phase Stopped) in {stopped:.1} s");

        let begin = Instant::now();
        set_stopped(&notebooks, &name, false).await?;
        let resumed = phases(client, &name, begin, timeout).await?;
        eprintln!("[notebooks] {name} resume: {}", show(&resumed));

        starts.push(fresh);
        resumes.push(resumed);
        stops.push(stopped);
        notebooks.delete(&name, &DeleteParams::default()).await?;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
        claims
            .delete(&format!("{name}-home"), &DeleteParams::default())
            .await?;
        // The pod and the volume go before the next start, so runs do not overlap.
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let deadline = Instant::now() + timeout;
        while pods.get_opt(&format!("{name}-0")).await?.is_some()
            || claims.get_opt(&format!("{name}-home")).await?.is_some()
        {
            if Instant::now() > deadline {
                bail!("{name}'s pod or volume still there {timeout:?} after its deletion");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let load_end = machine::load_1m();
    println!(
        "notebooks start --repeats {} --cpu-limit {} (real node, Berth's Jupyter image imported; load {load_start:.1} at the start, {load_end:.1} at the end)",
        args.repeats,
        args.cpu_limit.as_deref().unwrap_or("(project default)")
    );
    println!(
        "seconds after the apply (fresh) or after spec.stopped: false (resume): median (min–max, runs)"
    );
    println!("| phase | fresh start (new home volume) | resume (existing home volume) |");
    println!("|---|---|---|");
    for phase in PHASES {
        let of = |runs: &[Phases]| -> Vec<f64> {
            runs.iter().filter_map(|r| r.get(phase).copied()).collect()
        };
        println!(
            "| {phase} | {} | {} |",
            spread(&of(&starts)),
            spread(&of(&resumes))
        );
    }
    println!(
        "| stop (spec.stopped: true to pod gone and phase Stopped) | {} | |",
        spread(&stops)
    );
    Ok(())
}

fn show(phases: &Phases) -> String {
    PHASES
        .iter()
        .filter_map(|p| phases.get(p).map(|s| format!("{p} {s:.1} s")))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn set_stopped(notebooks: &Api<Notebook>, name: &str, stopped: bool) -> Result<()> {
    let patch = json!({"spec": {"stopped": stopped}});
    notebooks
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Polls the notebook and its pod every 100 ms until the notebook is Running; returns when each
/// phase was first seen.
async fn phases(client: &Client, name: &str, begin: Instant, timeout: Duration) -> Result<Phases> {
    let notebooks: Api<Notebook> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pod_name = format!("{name}-0");
    let mut seen = Phases::new();
    loop {
        let at = begin.elapsed().as_secs_f64();
        if let Some(pod) = pods.get_opt(&pod_name).await?
            && pod.metadata.deletion_timestamp.is_none()
        {
            seen.entry("pod created").or_insert(at);
            let status = pod.status.unwrap_or_default();
            let condition = |kind: &str| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == kind && c.status == "True")
            };
            if condition("PodScheduled") {
                seen.entry("scheduled").or_insert(at);
            }
            let started = status
                .container_statuses
                .iter()
                .flatten()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            if started {
                seen.entry("started").or_insert(at);
            }
            if condition("Ready") {
                seen.entry("ready").or_insert(at);
            }
        }
        let nb = notebooks.get(name).await?;
        let status = nb.status.unwrap_or_default();
        if status.phase == Some(NotebookPhase::Running)
            && status.observed_generation == nb.metadata.generation
        {
            seen.insert("Running", begin.elapsed().as_secs_f64());
            return Ok(seen);
        }
        if status.phase == Some(NotebookPhase::Failed) {
            bail!("{name} failed: {:?}", status.conditions);
        }
        if begin.elapsed() > timeout {
            return Err(anyhow::anyhow!("{name} not Running after {timeout:?}"))
                .with_context(|| format!("seen so far: {}; status: {status:?}", show(&seen)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds until the pod is gone and the notebook says Stopped.
async fn until_stopped(
    client: &Client,
    name: &str,
    begin: Instant,
    timeout: Duration,
) -> Result<f64> {
    let notebooks: Api<Notebook> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        let gone = pods.get_opt(&format!("{name}-0")).await?.is_none();
        let phase = notebooks.get(name).await?.status.and_then(|s| s.phase);
        if gone && phase == Some(NotebookPhase::Stopped) {
            return Ok(begin.elapsed().as_secs_f64());
        }
        if begin.elapsed() > timeout {
            bail!("{name} not Stopped after {timeout:?} (phase {phase:?}, pod gone: {gone})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
