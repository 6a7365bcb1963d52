//! `cargo xtask e2e`: the console's browser tests (tools/e2e/, docs/development.md, "Browser
//! tests") against a running console: Debian's Chromium from `tools/chromium.sh`, playwright-core
//! from `tools/e2e/install.sh` (npm ci), then `node tools/e2e/run.mjs [scenario ...]`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{repo_root, run_build_script};

#[derive(clap::Args)]
pub struct Args {
    /// The console as a browser reaches it, e.g. the URL `cargo xtask dev` prints.
    #[arg(long, env = "BERTH_E2E_CONSOLE_URL")]
    console_url: String,
    /// A realm user's login name at the identity provider.
    #[arg(long, env = "BERTH_E2E_USER")]
    user: String,
    /// That user's password.
    #[arg(long, env = "BERTH_E2E_PASSWORD", hide_env_values = true)]
    password: String,
    /// The name the console shows for that user (its verified e-mail, lower-cased); default: the
    /// login name.
    #[arg(long, env = "BERTH_E2E_USER_NAME")]
    user_name: Option<String>,
    /// Where screenshots go, one directory per scenario (default: target/e2e-artifacts).
    #[arg(long, env = "BERTH_E2E_ARTIFACTS")]
    artifacts: Option<PathBuf>,
    /// The scenarios to run (default: all; tools/e2e/run.mjs lists them).
    scenarios: Vec<String>,
}

/// What the browser tests need on this machine.
pub struct Prepared {
    /// The Chromium wrapper `tools/chromium.sh` printed (Playwright's `executablePath`).
    pub chromium: PathBuf,
    /// tools/e2e, with node_modules installed.
    pub dir: PathBuf,
}

/// Fetches (or finds in the cache) the pinned Chromium and installs playwright-core.
pub fn prepare() -> Result<Prepared> {
    let chromium = run_build_script("tools/chromium.sh")?;
    let dir = run_build_script("tools/e2e/install.sh")?;
    Ok(Prepared { chromium, dir })
}

pub fn run(args: Args) -> Result<()> {
    eprintln!("==> [1/2] Chromium (tools/chromium.sh) and playwright-core (tools/e2e/install.sh)");
    let prepared = prepare()?;
    eprintln!(
        "==> [2/2] node tools/e2e/run.mjs {} against {}",
        args.scenarios.join(" "),
        args.console_url
    );
    let mut node = Command::new("node");
    node.current_dir(repo_root())
        .arg(prepared.dir.join("run.mjs"))
        .args(&args.scenarios)
        .env("BERTH_CHROMIUM", &prepared.chromium)
        .env("BERTH_E2E_CONSOLE_URL", &args.console_url)
        .env("BERTH_E2E_USER", &args.user)
        .env("BERTH_E2E_PASSWORD", &args.password);
    if let Some(name) = &args.user_name {
        node.env("BERTH_E2E_USER_NAME", name);
    }
    if let Some(dir) = &args.artifacts {
        node.env("BERTH_E2E_ARTIFACTS", dir);
    }
    let status = node.status().context("running node (Node 20 or newer)")?;
    if !status.success() {
        bail!("the browser tests failed ({status}); screenshots are named above");
    }
    Ok(())
}
