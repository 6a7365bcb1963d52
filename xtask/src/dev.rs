//! `cargo xtask dev`: the local platform. Starts the real control plane, runs the operator against
//! it, applies the samples, and keeps everything running until Ctrl-C, then stops it all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testenv::{Binaries, Cluster, ControlPlane, Options, Process};
use kube::api::Api;

use crate::{build_control_plane, models, providers, repo_root};

#[derive(clap::Args)]
pub struct Args {
    /// Start everything, apply the samples, check they are served, then stop (for CI).
    #[arg(long)]
    smoke: bool,
    /// How many fake nodes kwok runs.
    #[arg(long, default_value_t = 2)]
    nodes: u32,
}

pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(dev(args))
}

fn step(n: u32, total: u32, what: &str) {
    eprintln!("==> [{n}/{total}] {what}");
}

async fn dev(args: Args) -> Result<()> {
    let root = repo_root();
    let dev_dir = root.join(".dev");
    std::fs::create_dir_all(&dev_dir)?;
    let total = 7;
    let begin = Instant::now();

    step(
        1,
        total,
        "control-plane binaries (tools/build.sh; a cold build takes about 10 minutes)",
    );
    let binaries = Binaries::at(build_control_plane()?)?;

    step(
        2,
        total,
        "building the operator and berth-model-fetch (cargo build)",
    );
    let built = build_operator(&root)?;
    let operator_bin = built.operator;
    let images = crate::images::build(&crate::images::default_out())?;

    step(
        3,
        total,
        "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, with Garage and Keycloak beside them (a cold Garage build takes about 15 minutes)",
    );
    let (control_plane, garage, keycloak) = tokio::join!(
        ControlPlane::start(Options {
            nodes: args.nodes,
            binaries: Some(binaries),
            ..Options::default()
        }),
        berth_services::Garage::start(),
        berth_services::Keycloak::start(),
    );
    let control_plane = control_plane?;
    let garage = garage.context("starting Garage")?;
    let keycloak = keycloak.context("starting Keycloak")?;
    let kubeconfig = dev_dir.join("kubeconfig");
    std::fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let cluster = control_plane.cluster().clone();
    let client = cluster.client().await?;
    // The model images by tag and digest, as just built, over deploy/settings/.
    crate::images::apply_settings(&client, &images).await?;

    step(
        4,
        total,
        "starting the operator under its own service account (deploy/rbac)",
    );
    let (mut operator, health_port) = cluster
        .start_operator(&operator_bin, &dev_dir, "operator.log", &[])
        .await?;
    let operator_log = operator.log_path().to_path_buf();
    wait_operator_ready(&mut operator, health_port).await?;

    step(
        5,
        total,
        "configuring Garage (object storage) and Keycloak (realm berth) as the platform's providers",
    );
    providers::configure(&client, &garage, &keycloak, &root.join("deploy/samples")).await?;

    step(6, total, "applying deploy/samples/");
    let applied =
        berth_testenv::manifests::apply_dirs(&client, &[root.join("deploy/samples")]).await?;
    for name in &applied {
        eprintln!("    applied {name}");
    }

    step(
        7,
        total,
        "the sample model: an ONNX model uploaded to the sample project's bucket, and deploy/samples/models",
    );
    let model_runtime = models::sample(&client, &root, &dev_dir, built.model_fetch).await?;

    let mut control_plane = control_plane;
    eprintln!();
    eprintln!(
        "Berth is running ({:.1} s). Point kubectl at it:",
        begin.elapsed().as_secs_f64()
    );
    eprintln!();
    eprintln!("    export KUBECONFIG={}", kubeconfig.display());
    eprintln!("    kubectl get projects");
    eprintln!("    kubectl -n fraud-detection get mlmodels");
    eprintln!();
    providers::explain(&garage, &keycloak);
    eprintln!("Operator log: {}", operator_log.display());
    eprintln!("Control-plane logs: {}", control_plane.dir().display());

    let outcome = if args.smoke {
        match smoke_check(&cluster, &applied).await {
            Ok(()) => models::smoke_check(&client).await,
            Err(e) => Err(e),
        }
    } else {
        eprintln!("Press Ctrl-C to stop.");
        watch_until_interrupted(&mut control_plane, &mut operator).await
    };

    eprintln!("==> stopping the operator and the control plane");
    model_runtime.abort();
    operator.stop(Duration::from_secs(10));
    control_plane.stop();
    drop(garage);
    drop(keycloak);
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(dev_dir.join("operator.kubeconfig"));
    eprintln!("stopped.");
    outcome
}

/// The binaries the platform runs: the operator, and `berth-model-fetch` (the model download
/// Job's binary, which the stand-in container runtime runs). Built in one cargo invocation, so
/// their shared dependencies are compiled once.
pub struct Built {
    pub operator: PathBuf,
    pub model_fetch: PathBuf,
}

pub fn build_operator(root: &Path) -> Result<Built> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--package",
            "berth-operator",
            "--package",
            "berth-model-fetch",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the operator and berth-model-fetch failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(Built {
        operator: target.join("debug/berth-operator"),
        model_fetch: target.join("debug/berth-model-fetch"),
    })
}

async fn wait_operator_ready(operator: &mut Process, port: u16) -> Result<()> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited with {status}; the end of its log ({}):\n{}",
                operator.log_path().display(),
                operator.log_tail(4000)
            );
        }
        if http_ok(&url).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the operator was not ready after 30 s; see {}",
                operator.log_path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plain HTTP/1.1 GET on loopback: true on a 200 answer.
async fn http_ok(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut stream) = tokio::net::TcpStream::connect(host).await else {
        return false;
    };
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    response.starts_with(b"HTTP/1.1 200")
}

/// For `--smoke`: every sample Project becomes Ready under the operator.
async fn smoke_check(cluster: &Cluster, applied: &[String]) -> Result<()> {
    let client = cluster.client().await?;
    let projects: Api<berth_api::Project> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    for sample in applied.iter().filter_map(|s| s.strip_prefix("Project/")) {
        loop {
            let project = projects.get(sample).await?;
            let conditions = project.status.map(|s| s.conditions).unwrap_or_default();
            if berth_api::conditions::is_true(&conditions, "Ready") {
                eprintln!("    Project/{sample} is Ready");
                providers::smoke_check(&client, sample, &conditions).await?;
                break;
            }
            if Instant::now() >= deadline {
                bail!("sample Project/{sample} was not Ready after 90 s: {conditions:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "smoke check passed: {} sample objects applied and ready",
        applied.len()
    );
    Ok(())
}

async fn watch_until_interrupted(
    control_plane: &mut ControlPlane,
    operator: &mut Process,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = tick.tick() => {
                control_plane.check_running()?;
                if let Some(status) = operator.exited() {
                    bail!(
                        "the operator exited with {status}; the end of its log ({}):\n{}",
                        operator.log_path().display(),
                        operator.log_tail(4000)
                    );
                }
            }
        }
    }
}
