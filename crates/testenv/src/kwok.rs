//! kwok: fake nodes and the pod lifecycle, since no container runtime runs here.
//!
//! kwok manages the nodes that carry [`NODE_ANNOTATION`]. Its stages (from the pinned kwok module)
//! initialise those nodes and keep their leases, make scheduled pods Running and Ready, complete Job
//! pods, and finish deletions. Pod and Service IPs exist only in status: nothing listens on them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::Error;

/// The annotation kwok is told to manage nodes by.
pub const NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";
const NODE_ANNOTATION_VALUE: &str = "fake";

/// Joins every stage YAML in `stages_dir` into one multi-document config for `kwok --config`.
pub fn write_config(stages_dir: &Path, out: &Path) -> Result<(), Error> {
    let mut files: Vec<_> = std::fs::read_dir(stages_dir)
        .map_err(|e| Error::io(format!("reading {}", stages_dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut config = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        config.push_str("---\n");
        config.push_str(&text);
        config.push('\n');
    }
    config.push_str(BERTH_STAGES);
    std::fs::write(out, config).map_err(|e| Error::io(format!("writing {}", out.display()), e))
}

/// The annotation that ends a held model download pod: its container terminates with this exit
/// code (see [`BERTH_STAGES`]).
pub const EXIT_CODE_ANNOTATION: &str = "berth.dev/test-exit-code";
/// The termination message that goes with [`EXIT_CODE_ANNOTATION`].
pub const EXIT_MESSAGE_ANNOTATION: &str = "berth.dev/test-exit-message";
/// Images under this registry fail to pull (it cannot exist: `.invalid` is reserved).
pub const PULL_FAILS_REGISTRY: &str = "example.invalid/";
/// Containers of images under this registry start and crash, again and again.
pub const CRASHES_REGISTRY: &str = "crashloop.invalid/";

/// Berth's own stages, on top of kwok's stock ones. Each has weight 1, so it wins over a stock
/// stage (weight 0) that matches the same pod.
///
/// - `berth-download-hold`: a running MLModel download pod (`berth.dev/component=download`) is not
///   completed by kwok's `pod-complete`; it runs until whoever plays the container runtime (the
///   tests run the real berth-model-fetch with the pod's arguments) sets
///   [`EXIT_CODE_ANNOTATION`].
/// - `berth-container-exit`: a running pod with [`EXIT_CODE_ANNOTATION`] terminates with that
///   code and [`EXIT_MESSAGE_ANNOTATION`] as its message: Succeeded for 0, Failed otherwise.
/// - `berth-image-pull-failed`: a scheduled pod with an image under [`PULL_FAILS_REGISTRY`] waits
///   in ErrImagePull, as a kubelet reports an image that does not exist.
/// - `berth-crash-loop`: a scheduled pod with an image under [`CRASHES_REGISTRY`] runs, never
///   becomes ready, and waits in CrashLoopBackOff after 5 restarts with exit code 1.
pub const BERTH_STAGES: &str = r#"---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: berth-download-hold
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.labels["berth.dev/component"]'
      operator: 'In'
      values: ['download']
    - key: '.metadata.annotations["berth.dev/test-exit-code"]'
      operator: 'DoesNotExist'
  weight: 1
  next: {}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: berth-container-exit
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.annotations["berth.dev/test-exit-code"]'
      operator: 'Exists'
  weight: 1
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $code := index .metadata.annotations "berth.dev/test-exit-code" }}
      {{ $message := or (index .metadata.annotations "berth.dev/test-exit-message") "" }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{ $code }}
            finishedAt: {{ $now | Quote }}
            message: {{ $message | Quote }}
            reason: {{ if eq $code "0" }}Completed{{ else }}Error{{ end }}
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: berth-image-pull-failed
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '[.spec.containers[].image | startswith("example.invalid/")] | any'
      operator: 'In'
      values: ['true']
  weight: 1
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          waiting:
            reason: ErrImagePull
            message: {{ printf "failed to pull and unpack image %q: not found" .image | Quote }}
      {{ end }}
      phase: Pending
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: berth-crash-loop
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '[.spec.containers[].image | startswith("crashloop.invalid/")] | any'
      operator: 'In'
      values: ['true']
  weight: 1
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 5
        started: false
        lastState:
          terminated:
            exitCode: 1
            reason: Error
            message: "cannot load model: unsupported operator"
            finishedAt: {{ $now | Quote }}
            startedAt: {{ $now | Quote }}
        state:
          waiting:
            reason: CrashLoopBackOff
            message: "back-off 5m0s restarting failed container"
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"#;

/// The flags kwok runs with.
pub fn args(kubeconfig: &Path, config: &Path, server_port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--config={}", config.display()),
        "--manage-all-nodes=false".into(),
        format!(
            "--manage-nodes-with-annotation-selector={NODE_ANNOTATION}={NODE_ANNOTATION_VALUE}"
        ),
        format!("--server-address=127.0.0.1:{server_port}"),
        "--node-lease-duration-seconds=40".into(),
        // Fake pods' addresses: in the pod range (198.18.0.0/16), clear of the real node's
        // 198.18.0.0/24; nothing listens on them, and a real node's host routes them nowhere.
        "--cidr=198.18.128.1/18".into(),
        // The fake nodes' address: loopback, so that nothing sent to a fake kubelet (a log
        // request through the apiserver, say) leaves this machine.
        "--node-ip=127.0.0.1".into(),
    ]
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_owned())
}

/// A fake node with room for many pods, and GPUs for models that ask for them.
fn node(name: &str) -> Node {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", "64"),
        ("memory", "256Gi"),
        ("pods", "500"),
        ("ephemeral-storage", "1Ti"),
        ("nvidia.com/gpu", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), quantity(v)))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(BTreeMap::from([(
                NODE_ANNOTATION.to_owned(),
                NODE_ANNOTATION_VALUE.to_owned(),
            )])),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), name.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
                ("type".to_owned(), "kwok".to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..Default::default()
        }),
    }
}

/// Creates `count` fake nodes (keeping any that exist) and waits until kwok reports each Ready.
pub async fn create_nodes(client: &Client, count: u32, timeout: Duration) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = (0..count).map(|i| format!("kwok-node-{i}")).collect();
    for name in &names {
        match nodes.create(&PostParams::default(), &node(name)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut ready = 0;
        for name in &names {
            let node = nodes.get(name).await?;
            let is_ready = node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if is_ready {
                ready += 1;
            }
        }
        if ready == names.len() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: format!("kwok to make {} nodes Ready ({ready} are)", names.len()),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
