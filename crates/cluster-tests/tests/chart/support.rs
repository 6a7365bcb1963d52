//! What the chart tests share: the cluster with the real node and without Berth (one per binary),
//! one test at a time, Garage on the node's address as the storage provider, the Gateway API's
//! CRDs and a Gateway, and the values a platform team would give the chart here.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex as StdMutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use berth_services::Garage;
use berth_testenv::RealNodeCluster;
use berth_testenv::chart::{self, Helm};
use berth_testenv::realnode::NODE_IP;

/// The tests take turns: they share one node and one Berth.
static SERIAL: Mutex<()> = Mutex::const_new(());
static PLATFORM: OnceLock<Result<Platform, String>> = OnceLock::new();
/// Garage runs until the test binary exits (it dies with it).
static GARAGE: StdMutex<Option<Garage>> = StdMutex::new(None);

/// The namespace of the models' Gateway, and the Gateway.
pub const GATEWAY_NAMESPACE: &str = "berth-gateway";
pub const GATEWAY: &str = "models";
/// The domain models get host names under.
pub const MODEL_DOMAIN: &str = "models.berth.test";
/// The Secret with Garage's admin token, made before the install (credentials.storage.existingSecret).
pub const STORAGE_SECRET: &str = "garage-admin";
/// The field manager of what the tests apply.
pub const MANAGER: &str = "berth-chart-tests";

/// What the tests know of the platform around Berth.
#[derive(Clone, Debug)]
pub struct Platform {
    pub s3_endpoint: String,
    pub admin_endpoint: String,
    pub admin_token: String,
    pub region: String,
    /// Where the tests write values files.
    pub dir: PathBuf,
}

/// One test's view of the shared cluster.
pub struct Env {
    pub shared: &'static RealNodeCluster,
    pub client: Client,
    pub helm: Helm,
    pub platform: Platform,
    _serial: MutexGuard<'static, ()>,
}

/// Waits for the tests before this one, then the cluster and the platform (made on first use).
pub async fn env() -> Result<Env> {
    let serial = SERIAL.lock().await;
    let shared = tokio::task::spawn_blocking(berth_testenv::shared_real_node_without_berth)
        .await?
        .context("starting the cluster with a real node")?;
    let client = shared.cluster.client().await?;
    let helm = shared.cluster.helm()?;
    let platform = match PLATFORM.get() {
        Some(done) => done.clone().map_err(|e| anyhow!(e))?,
        None => {
            let made = set_up(&client).await.map_err(|e| format!("{e:#}"));
            PLATFORM
                .get_or_init(|| made)
                .clone()
                .map_err(|e| anyhow!(e))?
        }
    };
    Ok(Env {
        shared,
        client,
        helm,
        platform,
        _serial: serial,
    })
}

async fn set_up(client: &Client) -> Result<Platform> {
    // Garage's process belongs to a thread that lives as long as the binary, not to one test.
    let (s3_endpoint, admin_endpoint, admin_token, region) =
        std::thread::spawn(|| -> Result<(String, String, String, String)> {
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
    // The operator's namespace, as a platform team makes it: the `restricted` level enforced.
    namespace(
        client,
        chart::NAMESPACE,
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await?;
    berth_testenv::manifests::apply_secret(
        client,
        chart::NAMESPACE,
        STORAGE_SECRET,
        &[("adminToken", &admin_token)],
    )
    .await?;
    install_gateway_api(client).await?;
    let dir = std::env::temp_dir().join(format!("berth-chart-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(Platform {
        s3_endpoint,
        admin_endpoint,
        admin_token,
        region,
        dir,
    })
}

/// The Gateway API's CRDs (standard channel, from tools/gateway-api), then a GatewayClass and the
/// models' Gateway: one HTTP listener that admits routes from every namespace.
async fn install_gateway_api(client: &Client) -> Result<()> {
    berth_testenv::manifests::install_gateway_api_crds(client).await?;
    namespace(client, GATEWAY_NAMESPACE, &[]).await?;
    // A fresh discovery: the kinds were just installed.
    berth_testenv::manifests::apply_text(
        client,
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: berth-tests
spec:
  controllerName: berth.dev/tests
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {GATEWAY}
  namespace: {GATEWAY_NAMESPACE}
spec:
  gatewayClassName: berth-tests
  listeners:
    - name: http
      protocol: HTTP
      port: 80
      hostname: "*.{MODEL_DOMAIN}"
      allowedRoutes:
        namespaces:
          from: All
        kinds:
          - kind: HTTPRoute
"#
        ),
        "the models' Gateway",
    )
    .await?;
    Ok(())
}

/// The values a platform team would give the chart on this cluster: Berth's images by digest,
/// the operator on the real node, its network policy naming the API server and Garage, Garage as
/// the storage provider (its admin token by reference), and the models' Gateway.
pub fn values(env: &Env) -> Result<Value> {
    let p = &env.platform;
    let admin_port = p
        .admin_endpoint
        .rsplit(':')
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .context("Garage's admin endpoint has no port")?;
    let mut values = chart::real_node_values(&env.shared.images)?;
    chart::merge(
        &mut values,
        json!({
            "networkPolicy": {
                "providers": [{"to": [{"ipBlock": {"cidr": format!("{NODE_IP}/32")}}], "ports": [{"port": admin_port, "protocol": "TCP"}]}],
            },
            "credentials": {"storage": {"existingSecret": STORAGE_SECRET}},
            "settings": {
                "storage": {
                    "provider": "garage",
                    "endpoint": p.s3_endpoint,
                    "adminEndpoint": p.admin_endpoint,
                    "region": p.region,
                    "egressTo": {
                        "cidrs": [format!("{NODE_IP}/32")],
                        "ports": berth_services::port_of(&p.s3_endpoint).into_iter().collect::<Vec<_>>(),
                    },
                },
                "gatewayNamespaces": [GATEWAY_NAMESPACE],
                "models": {
                    "gateway": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
                    "domain": MODEL_DOMAIN,
                },
            },
        }),
    );
    Ok(values)
}

/// Polls `check` until it returns `Some`, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A name no other test in this run uses: `prefix-<n>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Creates (or keeps) a namespace with `labels`.
pub async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    namespaces
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels},
            })),
        )
        .await?;
    Ok(())
}
