//! `cargo xtask dev`: the local platform. Starts the real control plane with one real node beside
//! its kwok nodes, installs Berth with its Helm charts the way a platform team does (the operator
//! runs as two pods on the real node, from its image pinned by digest), applies the samples (the
//! sample model and the sample notebook run on the real node), and keeps everything running until
//! Ctrl-C, then stops it all and puts the host back as it was.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testenv::chart::{self, Helm};
use berth_testenv::realnode::{self, HostLease, Images, NODE_IP, NodeBinaries};
use berth_testenv::{Binaries, Cluster, ControlPlane, Options, RealNode};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams};

use crate::{
    build_control_plane, build_node, console, models, notebooks, providers, repo_root,
    run_build_script,
};

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
    let total = 10;
    let begin = Instant::now();

    step(
        1,
        total,
        "control-plane and real-node binaries, and Helm (tools/build.sh, tools/node/build.sh, tools/helm/build.sh; a cold build takes about 30 minutes)",
    );
    let binaries = Binaries::at(build_control_plane()?)?;
    let node_binaries = NodeBinaries::at(build_node()?)?;
    let helm_dir = run_build_script("tools/helm/build.sh")?;

    step(2, total, "Berth's images (cargo xtask images)");
    let images_json = crate::images::build(&crate::images::default_out())?;
    let images = Images::read(&images_json)?;

    step(
        3,
        total,
        "starting Keycloak (HTTPS, realm berth) and Garage on the real node's address, then etcd, kube-apiserver (trusting Keycloak's ID tokens for the console), kube-controller-manager, kube-scheduler and kwok (a cold Garage build takes about 15 minutes)",
    );
    // One real node per machine: this waits while another run holds it.
    let lease = HostLease::acquire(true)?;
    let [console_port] = berth_testenv::util::free_ports()?;
    let console_url = format!("http://127.0.0.1:{console_port}");
    let samples = root.join("deploy/samples");
    // The API server trusts the realm's HTTPS issuer from its start, so Keycloak and the realm
    // come first; Garage starts meanwhile.
    let keycloak_then_plane = async {
        let address = NODE_IP.parse().context("the node's address")?;
        let keycloak = berth_services::Keycloak::start_with(berth_services::KeycloakOptions {
            https: true,
            address: Some(address),
        })
        .await
        .context("starting Keycloak")?;
        let realm = providers::realm(&keycloak, &samples, &console_url).await?;
        let trust = berth_testenv::TrustedIssuer {
            url: keycloak
                .https_issuer(providers::REALM)
                .context("Keycloak serves no HTTPS")?,
            certificate_authority: keycloak.ca_pem().context("no CA")?.to_owned(),
            client_id: providers::CONSOLE_CLIENT.to_owned(),
        };
        let control_plane = ControlPlane::start(Options {
            nodes: args.nodes,
            binaries: Some(binaries),
            real_node: true,
            // Berth comes from its Helm charts below, as a platform team installs it.
            install_berth: false,
            trust: Some(trust),
            ..Options::default()
        })
        .await?;
        anyhow::Ok((keycloak, realm, control_plane))
    };
    let (started, garage) = tokio::join!(
        keycloak_then_plane,
        berth_services::Garage::start_on(NODE_IP),
    );
    let (keycloak, realm, control_plane) = started?;
    let garage = garage.context("starting Garage")?;
    let console_secret = dev_dir.join("console-client-secret");
    write_private(&console_secret, &realm.console_secret)?;

    step(
        4,
        total,
        "starting the real node: containerd, the kubelet, kube-proxy, kube-router, CoreDNS, local-path-provisioner",
    );
    let mut node = RealNode::start(lease, &control_plane, &node_binaries, images, true).await?;
    let kubeconfig = dev_dir.join("kubeconfig");
    std::fs::copy(control_plane.kubeconfig_path(), &kubeconfig)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let cluster = control_plane.cluster().clone();
    let client = cluster.client().await?;

    step(
        5,
        total,
        "Garage (object storage) and Keycloak (realm berth) as the platform's providers: admin Secrets in berth-system",
    );
    operator_namespace(&client).await?;
    let provider_values = providers::configure(&client, &garage, &keycloak).await?;

    step(
        6,
        total,
        "installing Berth with its Helm charts (charts/berth-crds, charts/berth): the operator as two pods on the real node",
    );
    let helm = Helm::at(&helm_dir.join("helm"), &kubeconfig)?;
    let values = dev_values(node.images(), provider_values)?;
    let installing = Instant::now();
    chart::install(&helm, None, &values, &dev_dir).await?;
    eprintln!(
        "    installed in {:.1} s; values in {}",
        installing.elapsed().as_secs_f64(),
        dev_dir.join("values.json").display()
    );

    step(7, total, "applying deploy/samples/");
    let applied =
        berth_testenv::manifests::apply_dirs(&client, &[root.join("deploy/samples")]).await?;
    for name in &applied {
        eprintln!("    applied {name}");
    }
    console::grant_project_creator(&client).await?;
    eprintln!(
        "    {} may create projects (ClusterRoleBinding {})",
        console::PROJECT_CREATOR,
        console::CREATORS_BINDING
    );

    step(
        8,
        total,
        "the sample model on the real node: an ONNX model uploaded to the sample project's bucket, and deploy/samples/models",
    );
    place_on_real_node(&client, "fraud-detection").await?;
    // Applied now, so that it starts while the sample model is made and fetched.
    let mut notebook = notebooks::apply(&client, &root).await;
    let model_runtime = models::sample(&client, &root, &dev_dir, None).await?;

    step(
        9,
        total,
        "the sample notebook on the real node: deploy/samples/notebooks (JupyterLab from Berth's Jupyter image)",
    );
    notebooks::wait(&client, &mut notebook).await;

    step(
        10,
        total,
        "the console (berth-console on loopback, acting as each user with their own ID token)",
    );
    let console_process =
        console::start(&cluster, &dev_dir, &keycloak, &realm, &console_secret).await?;

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
    eprintln!("    kubectl -n fraud-detection get notebooks");
    eprintln!();
    notebooks::explain(&notebook);
    providers::explain(&garage, &keycloak);
    providers::explain_console(&keycloak, &realm, &console_secret);
    console::explain(&realm, &dev_dir);
    let walk_env = console::walk_env(
        &realm,
        &keycloak,
        &dev_dir,
        &kubeconfig,
        &realnode::namespace_placement(),
    )?;
    console::explain_walks(&walk_env, &dev_dir)?;
    eprintln!("Operator log: kubectl -n berth-system logs deployment/berth-operator");
    eprintln!(
        "Change a setting: edit {} and run {} upgrade berth charts/berth -n berth-system -f {}",
        dev_dir.join("values.json").display(),
        helm.binary().display(),
        dev_dir.join("values.json").display()
    );
    eprintln!("Control-plane logs: {}", control_plane.dir().display());
    eprintln!("Real node's logs: {}", node.logs().display());

    let outcome = if args.smoke {
        async {
            smoke_check(&cluster, &applied).await?;
            models::smoke_check(&client).await?;
            predict(&client).await?;
            notebooks::smoke_check(&cluster, &notebook).await?;
            let logins = providers::sample_logins(&keycloak, &realm).await?;
            providers::smoke_login(&cluster, &logins).await?;
            console::smoke_check(&realm, &logins).await?;
            console::walks(walk_env, &dev_dir).await
        }
        .await
    } else {
        if let Err(e) = predict(&client).await {
            eprintln!("(the sample model does not answer yet: {e:#})");
        }
        explain_prediction(&client).await;
        eprintln!("Press Ctrl-C to stop.");
        watch_until_interrupted(&mut control_plane, &mut node).await
    };

    eprintln!("==> stopping the real node (and the operator's pods) and the control plane");
    if let Some(runtime) = model_runtime {
        runtime.abort();
    }
    drop(console_process);
    node.stop();
    control_plane.stop();
    drop(garage);
    drop(keycloak);
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = std::fs::remove_file(&console_secret);
    let _ = std::fs::remove_file(dev_dir.join("e2e.env"));
    eprintln!("stopped.");
    outcome
}

/// Writes `contents` to `path`, readable by its owner only (a secret).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The sample model's request: the mlp of make_models.py takes x: FP32 [N, 3].
const SAMPLE_REQUEST: &str =
    r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#;

/// The sample model's Service address.
async fn sample_service_ip(client: &kube::Client) -> Result<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), "fraud-detection");
    services
        .get("fraud-scorer")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the sample model's Service has no ClusterIP")
}

/// The one command a new user runs for a prediction: the Service's ClusterIP is reachable from
/// this machine (kube-proxy's rules on the real node).
async fn explain_prediction(client: &kube::Client) {
    match sample_service_ip(client).await {
        Ok(ip) => {
            eprintln!(
                "Ask the sample model for a prediction (through its Service, on the real node):"
            );
            eprintln!();
            eprintln!(
                "    token=$(curl -s \"$(kubectl -n fraud-detection get secret berth-oidc -o jsonpath='{{.data.OIDC_ISSUER_URL}}' | base64 -d)/protocol/openid-connect/token\" -d grant_type=client_credentials -d client_id=$(kubectl -n fraud-detection get secret berth-oidc -o jsonpath='{{.data.OIDC_CLIENT_ID}}' | base64 -d) -d client_secret=$(kubectl -n fraud-detection get secret berth-oidc -o jsonpath='{{.data.OIDC_CLIENT_SECRET}}' | base64 -d) | jq -r .access_token)"
            );
            eprintln!(
                "    curl -s -H \"Authorization: Bearer $token\" http://{ip}/v2/models/fraud-scorer/infer -H 'Content-Type: application/json' -d '{SAMPLE_REQUEST}'"
            );
            eprintln!();
        }
        Err(e) => eprintln!("(no prediction command: {e:#})"),
    }
}

/// For `--smoke`: one prediction through the sample model's ClusterIP, checked against the
/// model's own numbers (y = relu(xW + b) = [0, 2.75] for x = [1, 2, 3]).
async fn predict(client: &kube::Client) -> Result<serde_json::Value> {
    // kube-proxy programs the Service a moment after the model is Ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match predict_once(client).await {
            Ok(answer) => return Ok(answer),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn predict_once(client: &kube::Client) -> Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = sample_service_ip(client).await?;
    let path = "/v2/models/fraud-scorer/infer";
    // The sample model checks tokens: one of the sample Project's own OIDC client.
    let token = models::sample_token(client).await?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((ip.as_str(), 80)).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {ip}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SAMPLE_REQUEST}",
            SAMPLE_REQUEST.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("the sample model did not answer within 10 s")?
        .with_context(|| format!("asking http://{ip}{path}"))?;
    let text = String::from_utf8_lossy(&response);
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("the sample model's answer at http://{ip}{path}: {text}"))?;
    let y: Vec<f64> = body["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "y"))
        .and_then(|t| t["data"].as_array())
        .map(|d| d.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    if y != [0.0, 2.75] {
        bail!("the sample model answered {body}, expected y = [0, 2.75]");
    }
    eprintln!("    prediction through http://{ip}: y = {y:?}");
    Ok(body)
}

/// The operator's namespace, as a platform team makes it: the `restricted` level enforced.
async fn operator_namespace(client: &kube::Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": chart::NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    });
    namespaces
        .patch(
            chart::NAMESPACE,
            &PatchParams::apply("berth-dev").force(),
            &Patch::Apply(&namespace),
        )
        .await?;
    Ok(())
}

/// The chart's values on the dev platform: Berth's images as just built (by digest), the
/// operator on the real node, the providers (`providers::configure`), and the sample project's
/// pods allowed to reach the object store on the real node's address.
fn dev_values(images: &Images, providers: serde_json::Value) -> Result<serde_json::Value> {
    let mut values = chart::real_node_values(images)?;
    chart::merge(&mut values, providers);
    chart::merge(
        &mut values,
        serde_json::json!({
            // Project pods reach the object store and the identity provider (model servers fetch
            // its keys) on the node's address.
            "settings": {
                "storage": {"egressTo": {"cidrs": [format!("{NODE_IP}/32")]}},
                "identity": {"egressTo": {"cidrs": [format!("{NODE_IP}/32")]}},
            },
            // The operator reaches the providers' admin APIs on the node's address.
            "networkPolicy": {"providers": [{"to": [{"ipBlock": {"cidr": format!("{NODE_IP}/32")}}]}]},
        }),
    );
    Ok(values)
}

/// Every pod of `namespace` runs on the real node from now on (once the operator has made it).
async fn place_on_real_node(client: &kube::Client, namespace: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    while namespaces.get_opt(namespace).await?.is_none() {
        if Instant::now() > deadline {
            bail!("the operator made no namespace {namespace} in 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let patch = serde_json::json!({"metadata": {"annotations": realnode::namespace_placement()}});
    namespaces
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The binaries the platform runs: the operator, and `berth-model-fetch` (the model download
/// Job's binary, which the stand-in container runtime runs on kwok-only clusters). Built in one
/// cargo invocation, so their shared dependencies are compiled once.
pub struct Built {
    pub operator: PathBuf,
    pub model_fetch: PathBuf,
}

pub fn build_operator(root: &Path) -> Result<Built> {
    let status = crate::cargo()
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
    node: &mut RealNode,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return Ok(()),
            _ = tick.tick() => {
                control_plane.check_running()?;
                node.check_running()?;
            }
        }
    }
}
