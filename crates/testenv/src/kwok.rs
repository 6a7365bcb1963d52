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
    std::fs::write(out, config).map_err(|e| Error::io(format!("writing {}", out.display()), e))
}

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
        "--cidr=10.244.0.1/16".into(),
        "--node-ip=10.244.0.1".into(),
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
