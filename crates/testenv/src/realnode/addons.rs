//! What runs in the cluster for the real node: kube-router's read-only role, cluster DNS (CoreDNS,
//! Service `kube-system/kube-dns` at [`DNS_SERVICE_IP`]) and storage (local-path-provisioner with
//! its StorageClass [`STORAGE_CLASS`], the default class of a cluster with a real node). Both run
//! as pods on the real node, from images built here, under the `restricted` pod security level
//! where they can (the provisioner's helper pods need a host path, so its namespace is
//! `privileged`).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;

use crate::Error;
use crate::manifests::apply_text;

use super::images::Images;
use super::{
    CLUSTER_DOMAIN, DNS_SERVICE_IP, KUBE_ROUTER_USER, NODE_LABEL, NODE_LABEL_VALUE, paths,
};

/// The StorageClass of the real node's volumes (local-path-provisioner, `WaitForFirstConsumer`).
pub const STORAGE_CLASS: &str = "local-path";

/// The images the add-ons run, by their name in the images manifest.
pub const COREDNS_IMAGE: &str = "coredns";
pub const PROVISIONER_IMAGE: &str = "local-path-provisioner";
pub const PROVISIONER_HELPER_IMAGE: &str = "helper";

/// kube-router's rights: it reads what NetworkPolicies select and writes nothing.
const KUBE_ROUTER_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: berth:kube-router
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, nodes, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: berth:kube-router
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "berth:kube-router"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "KUBE_ROUTER_USER"}
"#;

/// Grants kube-router its role; before it starts.
pub async fn install_rbac(client: &Client) -> Result<(), Error> {
    apply_text(
        client,
        &KUBE_ROUTER_RBAC.replace("KUBE_ROUTER_USER", KUBE_ROUTER_USER),
        "realnode kube-router RBAC",
    )
    .await?;
    Ok(())
}

/// Placement on the real node and the security context of the `restricted` level, shared by the
/// add-ons' pod templates.
fn placement() -> String {
    format!(
        r#"      nodeSelector: {{"{NODE_LABEL}": "{NODE_LABEL_VALUE}"}}
      tolerations:
        - {{key: "{NODE_LABEL}", operator: Equal, value: "{NODE_LABEL_VALUE}", effect: NoSchedule}}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {{type: RuntimeDefault}}"#
    )
}

const CONTAINER_SECURITY: &str = r#"          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}"#;

fn coredns(image: &str) -> String {
    let placement = placement();
    format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: coredns, namespace: kube-system}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "berth:coredns"}}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "berth:coredns"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "berth:coredns"}}
subjects:
  - {{kind: ServiceAccount, name: coredns, namespace: kube-system}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: coredns, namespace: kube-system}}
data:
  Corefile: |
    .:53 {{
        errors
        health :8080
        ready :8181
        kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }}
        cache 5
        loadbalance
    }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {{matchLabels: {{k8s-app: kube-dns}}}}
  template:
    metadata:
      labels: {{k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
{placement}
      containers:
        - name: coredns
          image: "{image}"
          imagePullPolicy: Never
          args: ["-conf", "/etc/coredns/Corefile"]
          ports:
            - {{name: dns, containerPort: 53, protocol: UDP}}
            - {{name: dns-tcp, containerPort: 53, protocol: TCP}}
          readinessProbe:
            httpGet: {{path: /ready, port: 8181}}
            periodSeconds: 2
          livenessProbe:
            httpGet: {{path: /health, port: 8080}}
            periodSeconds: 10
          resources:
            requests: {{cpu: 50m, memory: 32Mi}}
            limits: {{memory: 128Mi}}
{CONTAINER_SECURITY}
          volumeMounts:
            - {{name: config, mountPath: /etc/coredns, readOnly: true}}
      volumes:
        - name: config
          configMap: {{name: coredns}}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  clusterIP: {DNS_SERVICE_IP}
  selector: {{k8s-app: kube-dns}}
  ports:
    - {{name: dns, port: 53, targetPort: 53, protocol: UDP}}
    - {{name: dns-tcp, port: 53, targetPort: 53, protocol: TCP}}
"#
    )
}

/// local-path-provisioner, after upstream's `deploy/local-path-storage.yaml` (v0.0.30): its
/// volumes are directories under [`paths::VOLUMES`] on the real node, made and removed by helper
/// pods.
fn provisioner(image: &str, helper: &str) -> String {
    let placement = placement();
    let volumes = paths::VOLUMES;
    format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: local-path-storage
  labels:
    pod-security.kubernetes.io/enforce: privileged
  annotations:
    scheduler.alpha.kubernetes.io/node-selector: "{NODE_LABEL}={NODE_LABEL_VALUE}"
    scheduler.alpha.kubernetes.io/defaultTolerations: '[{{"key":"{NODE_LABEL}","operator":"Equal","value":"{NODE_LABEL_VALUE}","effect":"NoSchedule"}}]'
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: local-path-provisioner, namespace: local-path-storage}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: local-path-provisioner, namespace: local-path-storage}}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: local-path-provisioner, namespace: local-path-storage}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: local-path-provisioner}}
subjects:
  - {{kind: ServiceAccount, name: local-path-provisioner, namespace: local-path-storage}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "berth:local-path-provisioner"}}
rules:
  - apiGroups: [""]
    resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [persistentvolumes]
    verbs: [get, list, watch, create, patch, update, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
  - apiGroups: [storage.k8s.io]
    resources: [storageclasses]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "berth:local-path-provisioner"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "berth:local-path-provisioner"}}
subjects:
  - {{kind: ServiceAccount, name: local-path-provisioner, namespace: local-path-storage}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: local-path-config, namespace: local-path-storage}}
data:
  config.json: |-
    {{"nodePathMap": [{{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["{volumes}"]}}]}}
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      tolerations:
        - {{key: "{NODE_LABEL}", operator: Equal, value: "{NODE_LABEL_VALUE}", effect: NoSchedule}}
      containers:
      - name: helper-pod
        image: "{helper}"
        imagePullPolicy: Never
        # The volumes' parent directory is root's; the helper makes each volume 0777 in it.
        securityContext: {{runAsUser: 0, runAsNonRoot: false}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: local-path-provisioner
  namespace: local-path-storage
spec:
  replicas: 1
  selector: {{matchLabels: {{app: local-path-provisioner}}}}
  template:
    metadata:
      labels: {{app: local-path-provisioner}}
    spec:
      serviceAccountName: local-path-provisioner
{placement}
      containers:
        - name: local-path-provisioner
          image: "{image}"
          imagePullPolicy: Never
          command: [local-path-provisioner, start, --config, /etc/config/config.json,
                    --helper-image, "{helper}", --service-account-name, local-path-provisioner]
          env:
            - name: POD_NAMESPACE
              valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
            - {{name: CONFIG_MOUNT_PATH, value: /etc/config/}}
          resources:
            requests: {{cpu: 20m, memory: 32Mi}}
            limits: {{memory: 128Mi}}
{CONTAINER_SECURITY}
          volumeMounts:
            - {{name: config, mountPath: /etc/config/}}
      volumes:
        - name: config
          configMap: {{name: local-path-config}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {STORAGE_CLASS}
  annotations: {{storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
"#
    )
}

/// Starts cluster DNS and the storage provisioner and waits until both are available.
pub async fn start(
    client: &Client,
    images: &Images,
    begin: Instant,
    show: bool,
) -> Result<(), Error> {
    apply_text(
        client,
        &coredns(&images.reference(COREDNS_IMAGE)?),
        "realnode CoreDNS",
    )
    .await?;
    apply_text(
        client,
        &provisioner(
            &images.reference(PROVISIONER_IMAGE)?,
            &images.reference(PROVISIONER_HELPER_IMAGE)?,
        ),
        "realnode local-path-provisioner",
    )
    .await?;
    for (namespace, name) in [
        ("kube-system", "coredns"),
        ("local-path-storage", "local-path-provisioner"),
    ] {
        wait_available(client, namespace, name, Duration::from_secs(60)).await?;
        if show {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "[berth-testenv] real node: {namespace}/{name} available after {:.1} s",
                begin.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn wait_available(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    loop {
        let available = deployments
            .get_opt(name)
            .await?
            .and_then(|d| d.status)
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if available > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why = pod_states(client, namespace, name).await;
            return Err(Error::Timeout {
                what: format!(
                    "{namespace}/{name} on the real node to be available (pod logs under {}; {why})",
                    paths::POD_LOGS
                ),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the pods of `namespace`/`name` (by its `k8s-app` or `app` label) and their namespace's
/// latest warnings say, in one line: the pod logs are gone once the node stops, so a timeout
/// must carry its reason.
async fn pod_states(client: &Client, namespace: &str, name: &str) -> String {
    use k8s_openapi::api::core::v1::{Event, Pod};
    use kube::api::ListParams;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut found = Vec::new();
    for selector in ["k8s-app=kube-dns".to_owned(), format!("app={name}")] {
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            for pod in list.items.into_iter().filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(name))
            }) {
                let status = pod.status.unwrap_or_default();
                let containers: Vec<String> = status
                    .container_statuses
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| {
                        let state = c.state.unwrap_or_default();
                        let what = match (state.waiting, state.terminated, state.running) {
                            (Some(w), _, _) => format!(
                                "waiting {} {}",
                                w.reason.unwrap_or_default(),
                                w.message.unwrap_or_default()
                            ),
                            (_, Some(t), _) => format!(
                                "terminated {} {}",
                                t.reason.unwrap_or_default(),
                                t.exit_code
                            ),
                            (_, _, Some(_)) => format!("running, ready {}", c.ready),
                            _ => "no state".to_owned(),
                        };
                        format!("{} {what} (restarts {})", c.name, c.restart_count)
                    })
                    .collect();
                found.push(format!(
                    "pod {} {} on {}: {}",
                    pod.metadata.name.unwrap_or_default(),
                    status.phase.unwrap_or_default(),
                    pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
                    containers.join(", ")
                ));
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    if found.is_empty() {
        found.push("no pod".to_owned());
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = events.list(&ListParams::default()).await {
        let mut warnings: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .collect();
        warnings.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
        for e in warnings.iter().rev().take(3) {
            found.push(format!(
                "event {} {}: {}",
                e.involved_object.name.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            ));
        }
    }
    found.join("; ")
}
