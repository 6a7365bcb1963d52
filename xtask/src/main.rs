//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `dev`: the local platform: a real control plane, the operator, and the samples.
//! - `test`: every test in the workspace, against a real control plane.
//! - `crdgen`: writes `deploy/crds/` from the API types (`--check` fails on drift).
//! - `images`: Berth's OCI image archives, built here (`target/images/images.json`).
//! - `chart`: the Helm charts' parts generated from `deploy/` (`--check` fails on drift).
//! - `e2e`: the console's browser tests (Chromium, playwright-core) against a running console.

mod chart;
mod console;
mod crdgen;
mod dev;
mod e2e;
mod images;
mod models;
mod notebooks;
mod providers;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Berth's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the local platform: control plane, operator and samples, until Ctrl-C.
    Dev(dev::Args),
    /// Build the control plane if needed, then run every test in the workspace.
    Test {
        /// Extra arguments for `cargo test`, after `--`. With `-p`/`--package` among them only
        /// those packages run, for example `cargo xtask test -- -p berth-cluster-tests --test cluster`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Write the CRD YAML under deploy/crds/ from the API types.
    Crdgen {
        /// Fail instead of writing when the files differ from the types.
        #[arg(long)]
        check: bool,
    },
    /// Build Berth's OCI images (pause, model-server, model-fetch, operator, the provisioner and
    /// its helper) into target/images, with images.json and settings.yaml.
    Images(images::Args),
    /// Write the parts of charts/berth and charts/berth-crds that come from deploy/ (CRDs, RBAC,
    /// admission policies, default settings, values.schema.json).
    Chart {
        /// Fail instead of writing when the charts differ from deploy/.
        #[arg(long)]
        check: bool,
    },
    /// Run the console's browser tests (tools/e2e) against a running console, with screenshots.
    E2e(e2e::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Dev(args) => dev::run(args),
        Task::Test { cargo_args } => test(&cargo_args),
        Task::Crdgen { check } => crdgen::run(check),
        Task::Images(args) => images::run(args),
        Task::Chart { check } => chart::run(check),
        Task::E2e(args) => e2e::run(args),
    }
}

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A `cargo` command (`$CARGO`, as `cargo run` set it, else `cargo` on PATH) without the variables
/// `cargo run` gave xtask for its own crate (CARGO_MANIFEST_DIR=<clone>/xtask, CARGO_PKG_*, …).
/// Build scripts that read one take it into their fingerprint (ring's reads CARGO_MANIFEST_DIR), so
/// with them every build xtask starts would rebuild ring and all that depends on it after a plain
/// `cargo build`, `cargo clippy` or `cargo test` from a shell, and the other way round; and an image
/// build would differ per clone. Every cargo that xtask runs starts here.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if is_crate_variable(&key) {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// A variable cargo sets for the crate it compiles or runs (the Cargo Book, "Environment variables
/// Cargo sets for crates"), as opposed to one that configures cargo.
fn is_crate_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// Builds (or finds in the cache) the pinned control-plane binaries; returns their directory.
pub fn build_control_plane() -> Result<PathBuf> {
    run_build_script("tools/build.sh")
}

/// Builds (or finds in the cache) the real node's binaries, and installs the Debian packages it
/// uses; returns the binaries' directory.
pub fn build_node() -> Result<PathBuf> {
    run_build_script("tools/node/build.sh")
}

/// Runs one of the pinned build scripts under `tools/`; returns the directory it prints last.
pub fn run_build_script(relative: &str) -> Result<PathBuf> {
    let script = repo_root().join(relative);
    let output = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed with {}", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .context("tools/build.sh printed no binary directory")?;
    Ok(PathBuf::from(dir.trim()))
}

/// `--workspace`, unless the caller names packages of its own.
fn workspace_unless_packages(cargo_args: &[String]) -> Option<&'static str> {
    let names_packages = cargo_args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || (a.starts_with("-p") && a.len() > 2));
    (!names_packages).then_some("--workspace")
}

fn test(cargo_args: &[String]) -> Result<()> {
    eprintln!(
        "==> [1/4] control plane binaries (tools/build.sh) and the real node's (tools/node/build.sh)"
    );
    let bin_dir = build_control_plane()?;
    let node_dir = build_node()?;
    eprintln!(
        "==> [2/4] MinIO, Garage, Keycloak, Helm, the Gateway API's CRDs, Traefik and the pinned protocol clients (tools/minio, tools/garage, tools/keycloak, tools/helm, tools/gateway-api, tools/traefik, tools/pyclients)"
    );
    let minio = run_build_script("tools/minio/build.sh")?;
    let garage = run_build_script("tools/garage/build.sh")?;
    let keycloak = run_build_script("tools/keycloak/build.sh")?;
    let helm = run_build_script("tools/helm/build.sh")?;
    let gateway_api = run_build_script("tools/gateway-api/build.sh")?;
    let traefik = run_build_script("tools/traefik/build.sh")?;
    let pyclients = run_build_script("tools/pyclients/install.sh")?;
    eprintln!(
        "==> [2/4] Chromium and playwright-core for the console's browser tests (tools/chromium.sh, tools/e2e/install.sh)"
    );
    let browser = e2e::prepare()?;
    eprintln!(
        "==> [3/4] the binaries the cluster tests run (the operator and berth-model-fetch) and Berth's images"
    );
    let built = dev::build_operator(&repo_root())?;
    let images = images::build(&images::default_out())?;
    eprintln!("==> [4/4] cargo test --workspace");
    let status = cargo()
        .current_dir(repo_root())
        .arg("test")
        .args(workspace_unless_packages(cargo_args))
        .arg("--no-fail-fast")
        .args(cargo_args)
        .env("BERTH_BIN_DIR", &bin_dir)
        .env("BERTH_NODE_DIR", &node_dir)
        .env("BERTH_OPERATOR_BIN", &built.operator)
        .env("BERTH_MODEL_FETCH_BIN", &built.model_fetch)
        .env("BERTH_MINIO_DIR", &minio)
        .env("BERTH_GARAGE_DIR", &garage)
        .env("BERTH_KEYCLOAK_DIR", &keycloak)
        .env("BERTH_IMAGES", &images)
        .env("BERTH_HELM_DIR", &helm)
        .env("BERTH_GATEWAY_API_DIR", &gateway_api)
        .env("BERTH_TRAEFIK_DIR", &traefik)
        .env("BERTH_PYCLIENTS_DIR", &pyclients)
        .env("BERTH_CHROMIUM", &browser.chromium)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_variables_are_told_from_cargo_settings() {
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "OUT_DIR",
        ] {
            assert!(is_crate_variable(key), "{key}");
        }
        for key in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_TERM_COLOR",
            "CARGO",
            "PATH",
        ] {
            assert!(!is_crate_variable(key), "{key}");
        }
    }
}
