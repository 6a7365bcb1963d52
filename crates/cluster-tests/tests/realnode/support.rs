//! What the real-node tests share: the cluster with the real node (one per binary), one test at a
//! time, pods placed on the real node, and their outcome read back from the kubelet.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, HTTPGetAction, Namespace, Pod, PodSecurityContext,
    PodSpec, Probe, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, LogParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{Mutex, MutexGuard};

use berth_testenv::RealNodeCluster;
use berth_testenv::realnode;

/// Real-node tests run one after another: they share one node, and some measure it.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// One test's view of the shared cluster.
pub struct Env {
    pub shared: &'static RealNodeCluster,
    pub client: Client,
    _serial: MutexGuard<'static, ()>,
}

/// Waits for the tests before this one, then the cluster (started on first use).
pub async fn env() -> Result<Env> {
    let serial = SERIAL.lock().await;
    let shared = tokio::task::spawn_blocking(berth_testenv::shared_real_node)
        .await?
        .context("starting the cluster with a real node")?;
    let client = shared.cluster.client().await?;
    Ok(Env {
        shared,
        client,
        _serial: serial,
    })
}

impl Env {
    /// The reference of one of the built images.
    pub fn image(&self, name: &str) -> Result<String> {
        Ok(self.shared.images.reference(name)?)
    }
}

/// A name no other test in this run uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
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

/// Creates (or keeps) a namespace with `labels`.
pub async fn namespace(client: &Client, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .patch(
            name,
            &PatchParams::apply("berth-realnode-tests").force(),
            &Patch::Apply(&ns),
        )
        .await?;
    Ok(())
}

/// Puts every pod of `namespace` on the real node from now on (PodNodeSelector and
/// PodTolerationRestriction), as a platform team would for a namespace of real workloads.
pub async fn place_on_real_node(client: &Client, namespace: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"annotations": realnode::namespace_placement()}});
    namespaces
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The pod security context of the `restricted` level, as user 65532.
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        run_as_group: Some(65532),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container security context of the `restricted` level.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod on the real node (its label and the toleration of its taint) running `script` with the
/// helper image's shell, under the `restricted` level.
pub fn shell_pod(
    name: &str,
    image: &str,
    script: &str,
    labels: &[(&str, &str)],
    restart: &str,
) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_selector: Some(realnode::node_selector()),
            tolerations: Some(vec![realnode::toleration()]),
            restart_policy: Some(restart.to_owned()),
            security_context: Some(restricted_pod()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("Never".into()),
                command: Some(vec!["/bin/sh".into(), "-c".into(), script.to_owned()]),
                security_context: Some(restricted_container()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs `pod` in `namespace` until its container ends; returns its exit code and its log (read
/// through the apiserver from the kubelet).
pub async fn run_to_end(
    client: &Client,
    namespace: &str,
    pod: Pod,
    timeout: Duration,
) -> Result<(i32, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = pod.name_any();
    pods.create(&PostParams::default(), &pod).await?;
    let finished = eventually(&format!("pod {namespace}/{name} to end"), timeout, || {
        let pods = pods.clone();
        let name = name.clone();
        async move {
            let pod = pods.get(&name).await?;
            let code = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code);
            Ok(code)
        }
    })
    .await;
    let logs = pods
        .logs(&name, &LogParams::default())
        .await
        .unwrap_or_default();
    let _ = pods.delete(&name, &DeleteParams::default()).await;
    let code = finished.with_context(|| format!("its log so far:\n{logs}"))?;
    Ok((code, logs))
}

/// A web server pod on the real node (busybox httpd on port 8080) that answers its own name, and
/// a Service for it; returns the pod's address and the Service's ClusterIP once it is ready.
pub async fn web_server(
    client: &Client,
    namespace: &str,
    name: &str,
    image: &str,
) -> Result<(String, String)> {
    let script = format!(
        "mkdir -p /tmp/www && echo {name} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    );
    let mut pod = shell_pod(name, image, &script, &[("app", name)], "Always");
    if let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        container.ports = Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]);
        container.readiness_probe = Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/".into()),
                port: IntOrString::Int(8080),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        });
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.create(&PostParams::default(), &pod).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = services.create(&PostParams::default(), &service).await?;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service has no ClusterIP")?;
    let ip = ready_pod_ip(client, namespace, name, Duration::from_secs(60)).await?;
    // kube-proxy programs the Service a moment after the pod is Ready: wait until this machine
    // (the node, which every policy lets in) connects through it.
    let address = format!("{cluster_ip}:80");
    eventually(
        &format!("Service {namespace}/{name} programmed by kube-proxy"),
        Duration::from_secs(30),
        || async {
            let connect = tokio::net::TcpStream::connect(address.as_str());
            Ok(tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()
                .and_then(Result::ok)
                .map(|_| ()))
        },
    )
    .await?;
    Ok((ip, cluster_ip))
}

/// Waits until pod `name` is Ready; returns its address.
pub async fn ready_pod_ip(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("pod {namespace}/{name} Ready"), timeout, || {
        let pods = pods.clone();
        let name = name.to_owned();
        async move {
            let pod = pods.get(&name).await?;
            let status = pod.status.unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(if ready { status.pod_ip } else { None })
        }
    })
    .await
}

/// The shell function the connection checks use: `probe NAME URL` prints `NAME reached` when a
/// TCP connection was made and HTTP answered (any status), `NAME blocked (...)` when it was
/// refused or timed out (4 s).
pub const PROBE: &str = r#"probe() {
  out=$(timeout 4 wget -q -O- "$2" 2>&1); rc=$?
  if [ $rc = 0 ] || echo "$out" | grep -q "HTTP/1"; then echo "$1 reached"; else echo "$1 blocked (rc $rc: $(echo $out | head -c 80))"; fi
}
"#;

/// The outcome of each probe in a log: name -> reached.
pub fn outcomes(log: &str) -> BTreeMap<String, bool> {
    log.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(' ')?;
            if rest == "reached" {
                Some((name.to_owned(), true))
            } else if rest.starts_with("blocked") {
                Some((name.to_owned(), false))
            } else {
                None
            }
        })
        .collect()
}

/// Creates a Project and waits until it is Ready (its namespace, policies and, where enabled,
/// its bucket).
pub(crate) async fn ready_project(
    client: &kube::Client,
    name: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let projects: Api<berth_api::Project> = Api::all(client.clone());
    let project: berth_api::Project = serde_json::from_value(serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Project",
        "metadata": {"name": name},
        "spec": spec,
    }))?;
    projects
        .patch(
            name,
            &kube::api::PatchParams::apply("berth-realnode-tests").force(),
            &kube::api::Patch::Apply(&project),
        )
        .await?;
    eventually(
        &format!("Project {name} Ready"),
        Duration::from_secs(90),
        || {
            let projects = projects.clone();
            async move {
                let p = projects.get(name).await?;
                let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
                Ok(berth_api::conditions::is_true(&conditions, "Ready").then_some(()))
            }
        },
    )
    .await
}

/// A record, with times, of what a Service's EndpointSlices and the pods behind it did while a
/// test's client called it: each change of a slice (every address with its `ready`, `serving`
/// and `terminating` conditions) and of a pod (address, Ready, deletion, phase). Printed beside
/// failed requests it tells where a lost request went: to an address the slices no longer listed
/// (the node's rules lagged: kube-proxy) or to one they still listed while its pod was gone (the
/// slices lagged: the EndpointSlice controller).
pub struct ServiceTimeline {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceTimeline {
    /// Starts watching the slices of Service `service` and the pods matching `pod_selector`.
    pub fn start(client: &Client, namespace: &str, service: &str, pod_selector: &str) -> Self {
        use futures::StreamExt;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use kube::runtime::watcher;

        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let slices = watcher::watcher(
            Api::<EndpointSlice>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}")),
        )
        .map(|event| event.map(|e| Change::of(e, describe_slice)));
        let pods = watcher::watcher(
            Api::<Pod>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(pod_selector),
        )
        .map(|event| event.map(|e| Change::of(e, describe_pod)));
        let record = lines.clone();
        let task = tokio::spawn(async move {
            let mut last: BTreeMap<String, String> = BTreeMap::new();
            let mut events = std::pin::pin!(futures::stream::select(slices, pods));
            while let Some(event) = events.next().await {
                let line = match event {
                    Ok(Some(Change::Seen(key, text))) => (key, text),
                    Ok(Some(Change::Gone(key))) => (key.clone(), format!("{key} deleted")),
                    Ok(None) => continue,
                    Err(e) => ("watch".to_owned(), format!("watch error: {e}")),
                };
                let (key, text) = line;
                if last.get(&key) == Some(&text) {
                    continue;
                }
                last.insert(key, text.clone());
                if let Ok(mut lines) = record.lock() {
                    lines.push(format!("{} {text}", k8s_openapi::jiff::Timestamp::now()));
                }
            }
        });
        Self { lines, task }
    }

    /// Stops watching; returns what was seen, one line a change, oldest first.
    pub fn stop(self) -> Vec<String> {
        self.task.abort();
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A watch event that says something: an object (its key) as it is now (its description), or gone.
enum Change {
    Seen(String, String),
    Gone(String),
}

impl Change {
    fn of<K>(
        event: kube::runtime::watcher::Event<K>,
        describe: fn(&K) -> (String, String),
    ) -> Option<Self> {
        use kube::runtime::watcher::Event;
        match event {
            Event::Apply(o) | Event::InitApply(o) => {
                let (key, text) = describe(&o);
                Some(Change::Seen(key, text))
            }
            Event::Delete(o) => Some(Change::Gone(describe(&o).0)),
            Event::Init | Event::InitDone => None,
        }
    }
}

/// (`slice NAME`, every address with its ready/serving/terminating conditions as 1, 0 or -).
fn describe_slice(slice: &k8s_openapi::api::discovery::v1::EndpointSlice) -> (String, String) {
    let key = format!("slice {}", slice.name_any());
    let flag = |v: Option<bool>| match v {
        Some(true) => "1",
        Some(false) => "0",
        None => "-",
    };
    let addresses = slice
        .endpoints
        .iter()
        .flatten()
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            format!(
                "{} r{}s{}t{}",
                e.addresses.join(","),
                flag(c.ready),
                flag(c.serving),
                flag(c.terminating)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    (
        key.clone(),
        format!("{key}: [{addresses}] (ready/serving/terminating)"),
    )
}

/// (`pod NAME`, its address, phase, Ready and whether it is being deleted).
fn describe_pod(pod: &Pod) -> (String, String) {
    let key = format!("pod {}", pod.name_any());
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let deleting = if pod.metadata.deletion_timestamp.is_some() {
        " deleting"
    } else {
        ""
    };
    let text = format!(
        "{key}: {} {} ready={ready}{deleting}",
        status.pod_ip.unwrap_or_else(|| "-".into()),
        status.phase.unwrap_or_default()
    );
    (key, text)
}

/// The last `lines` lines of a node component's log (`kubelet`, `kube-proxy`, `kube-router`,
/// `containerd`), or why there are none (a cluster this process did not start).
pub fn node_log_tail(env: &Env, component: &str, lines: usize) -> String {
    let Some(dir) = &env.shared.node_logs else {
        return format!("({component}'s log: the node was not started by this process)");
    };
    let path = dir.join(format!("{component}.log"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}
