//! Notebook benchmarks (issue 14): commands that print figures, nothing asserted.
//!
//!     cargo build -p berth-operator -p berth-bench
//!     BERTH_NODE_LOCK_WAIT=3600 cargo run -p berth-bench --bin notebooks -- start --repeats 5
//!     BERTH_NODE_LOCK_WAIT=3600 cargo run -p berth-bench --bin notebooks -- scale --notebooks 1000
//!
//! - `start` ([`start`]): on the real node, with Berth's Jupyter image imported (cached), the time
//!   from a Notebook's apply to `Running` (JupyterLab answering its readiness probe), and the
//!   phases of its pod (created, scheduled, container started, Ready) as seen by a poll every
//!   100 ms; then stop and resume with the same home volume, timed the same way. Repeated and
//!   interleaved (start, stop, resume, delete), with min, median and max.
//! - `scale` ([`scale`]): the operator's cost at N notebooks on kwok nodes: time to all Running,
//!   its API requests per notebook (the API server's audit log, by the operator's service
//!   account), its requests and writes in a quiet window after convergence, its peak RSS and CPU.
//!   kwok's pods are Ready but nothing listens on their addresses, so every activity read through
//!   the pod proxy fails: the window shows what that costs.
//!
//! Both take the machine's one real node (waiting for its lock while another run holds it): `scale`
//! starts it bare, only so that kwok's pod addresses (198.18.128.0/18), which the API server's pod
//! proxy dials, are routed nowhere (`tools/node/host.sh`) instead of out of the machine.

#[allow(dead_code)]
#[path = "../onboard/audit.rs"]
mod audit;
#[allow(dead_code)]
#[path = "../onboard/machine.rs"]
mod machine;
mod scale;
mod start;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use berth_api::Project;
use berth_api::notebook::Notebook;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// The operator binary (`BERTH_OPERATOR_BIN`; built with `cargo build -p berth-operator`
    /// when neither is given).
    #[arg(long, global = true)]
    operator: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Start-to-Running on the real node, and stop/resume, repeated.
    Start(start::Args),
    /// The operator's cost at many notebooks on kwok nodes.
    Scale(scale::Args),
}

pub const OPERATOR_USER: &str = "system:serviceaccount:berth-system:berth-operator";
pub const FIELD_MANAGER: &str = "berth-bench";

/// A Project with `owner`, and its quota raised for many small notebooks when `notebooks` > 0.
pub async fn ready_project(client: &Client, name: &str, notebooks: usize) -> Result<()> {
    let mut spec = json!({"owners": [format!("{name}@example.com")]});
    if notebooks > 0 {
        let room = (notebooks + 10).to_string();
        spec["resourceQuota"] =
            json!({"hard": {"persistentvolumeclaims": room, "pods": room, "services": room}});
    }
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name}, "spec": spec,
    }))?;
    let api: Api<Project> = Api::all(client.clone());
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&project),
    )
    .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let conditions = api
            .get(name)
            .await?
            .status
            .map(|s| s.conditions)
            .unwrap_or_default();
        if berth_api::conditions::is_true(&conditions, "Ready") {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("Project {name} not Ready after 180 s: {conditions:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Notebook of today's fields: small requests, a 1 GiB memory limit, a small home volume.
/// Without `cpu_limit`, the project's LimitRange gives its default (1 CPU in the shipped
/// settings).
pub fn notebook(
    namespace: &str,
    name: &str,
    cpu_limit: Option<&str>,
    idle_timeout: Option<&str>,
) -> Result<Notebook> {
    let mut spec = json!({
        "resources": {
            "requests": {"cpu": "10m", "memory": "64Mi"},
            "limits": {"memory": "1Gi"},
        },
        "home": {"size": "256Mi"},
    });
    if let Some(cpu) = cpu_limit {
        spec["resources"]["limits"]["cpu"] = json!(cpu);
    }
    if let Some(timeout) = idle_timeout {
        spec["idleTimeout"] = json!(timeout);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?)
}

/// min, median and max of `values`, formatted with one decimal; `-` when empty.
pub fn spread(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    format!(
        "{median:.1} ({:.1}–{:.1}, n={})",
        sorted[0],
        sorted[sorted.len() - 1],
        sorted.len()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let operator = match args.operator {
        Some(path) => path,
        None => berth_testenv::operator_binary()?,
    };
    if !operator.exists() {
        bail!("{} not found", operator.display());
    }
    match args.command {
        Command::Start(a) => start::run(a, &operator).await,
        Command::Scale(a) => scale::run(a, &operator).await,
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_gives_the_median_and_the_range() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), "2.0 (1.0–3.0, n=3)");
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), "2.5 (1.0–4.0, n=4)");
        assert_eq!(spread(&[]), "-");
    }
}
