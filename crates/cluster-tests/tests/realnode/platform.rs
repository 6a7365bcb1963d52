//! The platform the real-node tests share, set up once per binary: Garage on the node's address
//! (where pods reach it), the platform settings pointing at it (with the object store's address as
//! the egress projects with storage may use), and Berth's operator as a pod from its image, under
//! its own ServiceAccount with in-cluster configuration.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use berth_services::Garage;
use berth_testenv::realnode::{NODE_IP, NODE_LABEL, NODE_LABEL_VALUE};

use crate::support::{Env, eventually};

/// What the tests need to know of the platform.
#[derive(Clone, Debug)]
pub struct Platform {
    /// Garage's S3 endpoint, `http://198.18.0.1:<port>`.
    pub s3_endpoint: String,
}

static PLATFORM: OnceLock<Result<Platform, String>> = OnceLock::new();
/// Garage runs until the test binary exits (it dies with it).
static GARAGE: Mutex<Option<Garage>> = Mutex::new(None);

/// The operator's Deployment: the image `cargo xtask images` built, the ServiceAccount and RBAC
/// of deploy/rbac, the `restricted` level, on the real node.
fn operator_deployment(image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "berth-operator", "namespace": "berth-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "berth-operator"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "berth-operator"}},
                "spec": {
                    "serviceAccountName": "berth-operator",
                    "nodeSelector": {NODE_LABEL: NODE_LABEL_VALUE},
                    "tolerations": [{"key": NODE_LABEL, "operator": "Equal", "value": NODE_LABEL_VALUE, "effect": "NoSchedule"}],
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "operator",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "ports": [{"name": "health", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 2},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// Sets the platform up once; every test calls it.
pub async fn platform(env: &Env) -> Result<Platform> {
    if let Some(done) = PLATFORM.get() {
        return done.clone().map_err(|e| anyhow!(e));
    }
    let result = set_up(env).await.map_err(|e| format!("{e:#}"));
    PLATFORM
        .get_or_init(|| result)
        .clone()
        .map_err(|e| anyhow!(e))
}

async fn set_up(env: &Env) -> Result<Platform> {
    // Garage's process belongs to a thread that lives as long as the binary, not to this test.
    let garage = std::thread::spawn(|| -> Result<(String, String, String, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let garage = runtime.block_on(Garage::start_on(NODE_IP))?;
        let answer = (
            garage.s3_endpoint().to_owned(),
            garage.admin_endpoint().to_owned(),
            garage.admin_token().to_owned(),
            garage.region().to_owned(),
        );
        if let Ok(mut slot) = GARAGE.lock() {
            *slot = Some(garage);
        }
        Ok(answer)
    })
    .join()
    .map_err(|_| anyhow!("starting Garage panicked"))??;
    let (s3_endpoint, admin_endpoint, admin_token, region) = garage;
    let client = &env.client;
    berth_testenv::manifests::apply_secret(
        client,
        berth_testenv::manifests::OPERATOR_NAMESPACE,
        "garage-admin",
        &[("adminToken", &admin_token)],
    )
    .await?;
    let settings: Api<berth_api::PlatformSettings> = Api::all(client.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"storage": {
                "provider": "garage",
                "endpoint": s3_endpoint,
                "adminEndpoint": admin_endpoint,
                "region": region,
                "adminSecretRef": {"name": "garage-admin"},
                // The only address a project's pods may reach the object store at.
                "egressTo": {
                    "cidrs": [format!("{NODE_IP}/32")],
                    "ports": berth_services::port_of(&s3_endpoint).into_iter().collect::<Vec<_>>(),
                },
            }}})),
        )
        .await?;
    // Before the operator starts: it discovers the routing kinds it may write once, at start.
    crate::gateway::install_gateway_api_crds(client).await?;
    start_operator(client, &env.image("operator")?).await?;
    Ok(Platform { s3_endpoint })
}

/// Deploys the operator as a pod and waits until it is available (ready: it holds the lease and
/// its controllers run).
async fn start_operator(client: &Client, image: &str) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "berth-system");
    deployments
        .patch(
            "berth-operator",
            &PatchParams::apply("berth-realnode-tests").force(),
            &Patch::Apply(&operator_deployment(image)),
        )
        .await?;
    eventually(
        "the operator's pod to be available",
        Duration::from_secs(90),
        || {
            let deployments = deployments.clone();
            async move {
                let available = deployments
                    .get("berth-operator")
                    .await?
                    .status
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                Ok((available > 0).then_some(()))
            }
        },
    )
    .await
    .context("the operator as a pod (see its pod's log)")
}
