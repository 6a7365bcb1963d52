//! One real node beside the kwok nodes: containerd, the kubelet, Debian's bridge CNI plugin,
//! kube-proxy, kube-router (NetworkPolicy only), and in-cluster CoreDNS and local-path-provisioner,
//! all built from pinned sources by `tools/node/build.sh`, running pods from images built here.
//!
//! The node is opt-in. It carries the label and the taint [`NODE_LABEL`]`=`[`NODE_LABEL_VALUE`]:
//! only pods that tolerate the taint (and select the label) run on it, so kwok's fake nodes stay
//! the default for everything else. A namespace opts all its pods in with
//! [`namespace_placement`] (the PodNodeSelector and PodTolerationRestriction admission plugins).
//!
//! Its addresses: the node (and the bridge's gateway) is [`NODE_IP`]; its pods take addresses
//! from [`POD_CIDR`] inside [`POD_RANGE`], Services from [`SERVICE_RANGE`]. Pods have routes to
//! those two ranges only; the host forwards only between pods on the bridge.
//!
//! iptables, cgroups and sysctls are the host's, so there is one real node per machine: starting
//! one takes a machine-wide lock (see [`HostLease`]), and everything it changed on the host is put
//! back when the process that started it ends in any way.

mod addons;
mod config;
mod coredns_image;
mod host;
mod images;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint, Toleration};
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use crate::controlplane::NodeAccess;
use crate::process::Process;
use crate::util::{free_ports, fresh_run_dir, locate_build};
use crate::{ControlPlane, Error};

pub use addons::STORAGE_CLASS;
pub use host::HostLease;
pub use images::{ImageRef, Images};

/// The node's name.
pub const NODE_NAME: &str = "berth-node";
/// The node's address: the bridge's, and its pods' gateway.
pub const NODE_IP: &str = "198.18.0.1";
/// The node's pod addresses.
pub const POD_CIDR: &str = "198.18.0.0/24";
/// Every pod address in the cluster (kwok's fake pods take theirs from 198.18.128.0/18).
pub const POD_RANGE: &str = "198.18.0.0/16";
/// Service addresses.
pub const SERVICE_RANGE: &str = "198.19.0.0/16";
/// The `kubernetes` Service's address (the first of the range).
pub const API_SERVICE_IP: &str = "198.19.0.1";
/// The cluster DNS Service's address.
pub const DNS_SERVICE_IP: &str = "198.19.0.10";
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The label and taint key that mark the real node, and their value.
pub const NODE_LABEL: &str = "berth.dev/node";
pub const NODE_LABEL_VALUE: &str = "real";
/// The node's bridge.
pub const NODE_BRIDGE: &str = "berth0";
/// The cgroup (in every hierarchy) that holds containerd, its shims and every pod.
pub const NODE_CGROUP: &str = "berth-node";
/// The user kube-router runs as (a client certificate), bound to a read-only role.
pub const KUBE_ROUTER_USER: &str = "berth:kube-router";

/// Where the node keeps its state. Fixed paths: there is one real node per machine, and socket
/// paths must stay short.
pub mod paths {
    pub const STATE: &str = "/run/berth-node";
    pub const DATA: &str = "/var/lib/berth-node";
    pub const LOCK: &str = "/run/berth-node.lock";
    pub const CONFIG: &str = "/var/lib/berth-node/config";
    pub const CONTAINERD_ROOT: &str = "/var/lib/berth-node/containerd";
    pub const CONTAINERD_STATE: &str = "/run/berth-node/containerd";
    pub const CONTAINERD_SOCKET: &str = "/run/berth-node/containerd.sock";
    pub const RUNC: &str = "/usr/sbin/runc";
    pub const RUNC_ROOT: &str = "/run/berth-node/runc";
    pub const CNI_BIN: &str = "/usr/lib/cni";
    pub const CNI_CONF: &str = "/var/lib/berth-node/cni/net.d";
    pub const CNI_IPAM: &str = "/var/lib/berth-node/cni/networks";
    pub const KUBELET_ROOT: &str = "/var/lib/berth-node/kubelet";
    pub const POD_LOGS: &str = "/var/lib/berth-node/pod-logs";
    pub const VOLUMES: &str = "/var/lib/berth-node/volumes";
}

/// The node's binaries, from `tools/node/build.sh` (or `BERTH_NODE_DIR`).
#[derive(Clone, Debug)]
pub struct NodeBinaries {
    dir: PathBuf,
}

const REQUIRED: &[&str] = &[
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "kube-router",
    "coredns",
];

impl NodeBinaries {
    /// `BERTH_NODE_DIR` if set; otherwise whatever `tools/node/build.sh` builds or finds in its
    /// cache (it also installs runc, the CNI plugins, iptables, ipset and nftables from Debian).
    pub fn locate() -> Result<Self, Error> {
        Self::at(locate_build("tools/node/build.sh", "BERTH_NODE_DIR")?)
    }

    /// The binaries in `dir`, checked to be all there.
    pub fn at(dir: PathBuf) -> Result<Self, Error> {
        for name in REQUIRED {
            if !dir.join(name).exists() {
                return Err(Error::RealNode(format!(
                    "{} has no {name}; run tools/node/build.sh",
                    dir.display()
                )));
            }
        }
        Ok(Self { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The annotations that put every pod of a namespace on the real node: the node selector
/// (PodNodeSelector) and the toleration (PodTolerationRestriction) its pods get by default.
pub fn namespace_placement() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "scheduler.alpha.kubernetes.io/node-selector".to_owned(),
            format!("{NODE_LABEL}={NODE_LABEL_VALUE}"),
        ),
        (
            "scheduler.alpha.kubernetes.io/defaultTolerations".to_owned(),
            serde_json::json!([{
                "key": NODE_LABEL, "operator": "Equal", "value": NODE_LABEL_VALUE, "effect": "NoSchedule"
            }])
            .to_string(),
        ),
    ])
}

/// The node selector that picks the real node.
pub fn node_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(NODE_LABEL.to_owned(), NODE_LABEL_VALUE.to_owned())])
}

/// The toleration of the real node's taint.
pub fn toleration() -> Toleration {
    Toleration {
        key: Some(NODE_LABEL.to_owned()),
        operator: Some("Equal".to_owned()),
        value: Some(NODE_LABEL_VALUE.to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Default::default()
    }
}

/// A running real node. Dropping it stops its processes and cleans the host up.
pub struct RealNode {
    processes: Vec<Process>,
    lease: Option<HostLease>,
    started_in: Duration,
    images: Images,
    logs: PathBuf,
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn progress(enabled: bool, message: &str) {
    if enabled {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "[berth-testenv] real node: {message}");
    }
}

/// A kubeconfig for a client certificate, trusting the cluster's CA.
fn cert_kubeconfig(access: &NodeAccess, user: &str, cert: &str, key: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "berth", "cluster": {
            "server": access.server,
            "certificate-authority-data": b64(&access.ca_cert),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(cert),
            "client-key-data": b64(key),
        }}],
        "contexts": [{"name": "berth", "context": {"cluster": "berth", "user": user}}],
        "current-context": "berth",
    })
    .to_string()
}

impl RealNode {
    /// Starts the node on the host `lease` holds, joined to `plane` (which must have been started
    /// with [`crate::Options::real_node`]), imports `images` into its containerd, and returns once
    /// the node is Ready and its add-ons (cluster DNS, the storage provisioner) run.
    pub async fn start(
        lease: HostLease,
        plane: &ControlPlane,
        binaries: &NodeBinaries,
        images: Images,
        show: bool,
    ) -> Result<Self, Error> {
        let begin = Instant::now();
        let node = Self::start_bare(lease, plane, binaries, images, show).await?;
        let client = plane.cluster().client().await?;
        addons::start(&client, &node.images, begin, show).await?;
        Ok(node)
    }

    /// [`RealNode::start`] without the add-ons: returns once the node is Ready. Its pods have no
    /// cluster DNS and no storage class.
    pub async fn start_bare(
        lease: HostLease,
        plane: &ControlPlane,
        binaries: &NodeBinaries,
        images: Images,
        show: bool,
    ) -> Result<Self, Error> {
        let begin = Instant::now();
        let access = plane.node_access().ok_or_else(|| {
            Error::RealNode(
                "the control plane was not started for a real node (Options::real_node)".into(),
            )
        })?;
        let client = plane.cluster().client().await?;
        let config = Path::new(paths::CONFIG);
        let [kubelet, kubelet_healthz, proxy_healthz, proxy_metrics] = free_ports()?;
        let ports = config::Ports {
            kubelet,
            kubelet_healthz,
            proxy_healthz,
            proxy_metrics,
        };
        let file = |name: &str| config.join(name).display().to_string();
        write(&config.join("ca.crt"), &access.ca_cert)?;
        write(
            &config.join("kubelet.crt"),
            &access.certs.kubelet_serving.cert,
        )?;
        write(
            &config.join("kubelet.key"),
            &access.certs.kubelet_serving.key,
        )?;
        let kubelet_user = format!("system:node:{NODE_NAME}");
        write(
            &config.join("kubelet.kubeconfig"),
            &cert_kubeconfig(
                access,
                &kubelet_user,
                &access.certs.kubelet.cert,
                &access.certs.kubelet.key,
            ),
        )?;
        write(
            &config.join("kube-proxy.kubeconfig"),
            &cert_kubeconfig(
                access,
                "system:kube-proxy",
                &access.certs.kube_proxy.cert,
                &access.certs.kube_proxy.key,
            ),
        )?;
        write(
            &config.join("kube-router.kubeconfig"),
            &cert_kubeconfig(
                access,
                KUBE_ROUTER_USER,
                &access.certs.kube_router.cert,
                &access.certs.kube_router.key,
            ),
        )?;
        let mut images = images;
        images.add(coredns_image::coredns_image(&binaries.path("coredns"))?);
        let sandbox = images
            .get("pause")
            .map(|i| i.reference.clone())
            .unwrap_or_else(|| "berth.dev/pause:not-built".to_owned());
        write(
            &config.join("containerd.toml"),
            &config::containerd(&sandbox),
        )?;
        write(
            &Path::new(paths::CNI_CONF).join("10-berth.conflist"),
            &config::cni(),
        )?;
        write(
            &config.join("kubelet.json"),
            &config::kubelet(
                ports,
                &file("ca.crt"),
                &file("kubelet.crt"),
                &file("kubelet.key"),
            ),
        )?;
        write(
            &config.join("kube-proxy.json"),
            &config::kube_proxy(ports, &file("kube-proxy.kubeconfig")),
        )?;
        // The logs outlive the node's directories (the cleanup removes those): they stay until
        // the next run's start sweeps them.
        let logs = fresh_run_dir("berth-testenv", "node")?;

        // The Node exists before the kubelet registers, with its pod CIDR (kwok's fake nodes keep
        // their own pod addresses), its label and its taint.
        register_node(&client).await?;
        addons::install_rbac(&client).await?;

        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            binaries.dir.display()
        );
        let env = [("PATH", path)];
        let log = |name: &str| logs.join(format!("{name}.log"));
        let mut processes = Vec::new();
        progress(show, "starting containerd");
        processes.push(Process::spawn_with_env(
            "containerd",
            &binaries.path("containerd"),
            &[format!("--config={}", file("containerd.toml"))],
            &env,
            &log("containerd"),
        )?);
        let mut node = RealNode {
            processes,
            lease: Some(lease),
            started_in: Duration::ZERO,
            images,
            logs: logs.clone(),
        };
        node.wait_for_containerd(binaries, begin).await?;
        // The images are imported while the kubelet starts: the node needs none to be Ready.
        let import = {
            let images = node.images.clone();
            let ctr = binaries.path("ctr");
            tokio::task::spawn_blocking(move || images.import(&ctr))
        };

        let kubelet_args = vec![
            format!("--config={}", file("kubelet.json")),
            format!("--kubeconfig={}", file("kubelet.kubeconfig")),
            format!("--root-dir={}", paths::KUBELET_ROOT),
            format!("--cert-dir={}", file("kubelet-pki")),
            format!("--hostname-override={NODE_NAME}"),
            format!("--node-ip={NODE_IP}"),
            "--v=1".into(),
        ];
        progress(show, "starting the kubelet and kube-proxy");
        node.processes.push(Process::spawn_with_env(
            "kubelet",
            &binaries.path("kubelet"),
            &kubelet_args,
            &env,
            &log("kubelet"),
        )?);
        node.processes.push(Process::spawn_with_env(
            "kube-proxy",
            &binaries.path("kube-proxy"),
            &[
                format!("--config={}", file("kube-proxy.json")),
                // 2: each sync of the rules with its time ("SyncProxyRules complete"), which
                // the serving tests print when a request is lost.
                "--v=2".into(),
            ],
            &env,
            &log("kube-proxy"),
        )?);
        node.wait_until_ready(&client, begin, Duration::from_secs(60))
            .await?;
        let imported = import
            .await
            .map_err(|e| Error::RealNode(format!("importing the images: {e}")))??;
        progress(
            show,
            &format!(
                "{imported} images imported into containerd after {:.1} s",
                begin.elapsed().as_secs_f64()
            ),
        );
        // kube-router reads the node's address from its status, which the kubelet has written
        // once the node is Ready.
        node.processes.push(Process::spawn_with_env(
            "kube-router",
            &binaries.path("kube-router"),
            &config::kube_router_args(&file("kube-router.kubeconfig")),
            &env,
            &log("kube-router"),
        )?);
        node.started_in = begin.elapsed();
        progress(
            show,
            &format!(
                "node {NODE_NAME} Ready in {:.1} s",
                node.started_in.as_secs_f64()
            ),
        );
        if let Some(lease) = &node.lease {
            lease.restore_sysctls()?;
        }
        Ok(node)
    }

    async fn wait_for_containerd(
        &mut self,
        binaries: &NodeBinaries,
        begin: Instant,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check_running()?;
            let ok = std::process::Command::new(binaries.path("ctr"))
                .args(["--address", paths::CONTAINERD_SOCKET, "version"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "containerd to answer on {} ({:.1} s after start; log {}/containerd.log)",
                        paths::CONTAINERD_SOCKET,
                        begin.elapsed().as_secs_f64(),
                        self.logs.display()
                    ),
                    seconds: 30,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_until_ready(
        &mut self,
        client: &kube::Client,
        begin: Instant,
        timeout: Duration,
    ) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let node = nodes.get(NODE_NAME).await?;
            let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let why: Vec<String> = conditions
                    .iter()
                    .filter(|c| c.type_ == "Ready")
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c.reason.clone().unwrap_or_default(),
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(Error::Timeout {
                    what: format!(
                        "node {NODE_NAME} to be Ready ({}; {:.1} s after start; logs in {})",
                        why.join("; "),
                        begin.elapsed().as_secs_f64(),
                        self.logs.display()
                    ),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How long the start took, from writing the configuration to the node Ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Where the node's processes log (kept after the run, until the next run's start).
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// The images imported into the node.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Fails with the component's log tail if any of the node's processes has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        for process in &mut self.processes {
            if let Some(status) = process.exited() {
                return Err(Error::Exited {
                    name: process.name().to_owned(),
                    status: status.to_string(),
                    log: process.log_path().to_path_buf(),
                    tail: process.log_tail(4000),
                });
            }
        }
        Ok(())
    }

    /// The resident memory of the node: each of its daemons, and containerd's shims with the
    /// containers they run, in KiB, from /proc.
    pub fn memory(&self) -> Vec<(String, u64)> {
        let mut usage: Vec<(String, u64)> = self
            .processes
            .iter()
            .map(|p| (p.name().to_owned(), rss_kib(p.pid()).unwrap_or(0)))
            .collect();
        let mut shims = 0;
        let mut pods = 0;
        for pid in node_cgroup_pids() {
            let Some(rss) = rss_kib(pid) else { continue };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "containerd-shim" || comm.starts_with("containerd-shim") {
                shims += rss;
            } else if !self.processes.iter().any(|p| p.pid() == pid) {
                pods += rss;
            }
        }
        usage.push(("containerd shims".into(), shims));
        usage.push(("pods' processes".into(), pods));
        usage
    }

    /// Stops the node's processes (the kubelet first, containerd last) and cleans the host up.
    pub fn stop(mut self) {
        self.stop_all(Duration::from_secs(5));
    }

    fn stop_all(&mut self, grace: Duration) {
        while let Some(mut process) = self.processes.pop() {
            process.stop(grace);
        }
        if let Some(lease) = self.lease.take() {
            lease.release(Duration::from_secs(60));
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.stop_all(Duration::ZERO);
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Every process in the node's cgroup (containerd, its shims, the containers), from the memory
/// hierarchy.
fn node_cgroup_pids() -> Vec<u32> {
    let root = Path::new("/sys/fs/cgroup/memory").join(NODE_CGROUP);
    let mut pids = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Creates (or completes) the Node object the kubelet will register as.
async fn register_node(client: &kube::Client) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_owned()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_owned(), NODE_NAME.to_owned()),
                ("kubernetes.io/os".to_owned(), "linux".to_owned()),
                (NODE_LABEL.to_owned(), NODE_LABEL_VALUE.to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(POD_CIDR.to_owned()),
            pod_cidrs: Some(vec![POD_CIDR.to_owned()]),
            taints: Some(vec![Taint {
                key: NODE_LABEL.to_owned(),
                value: Some(NODE_LABEL_VALUE.to_owned()),
                effect: "NoSchedule".to_owned(),
                time_added: None,
            }]),
            ..Default::default()
        }),
        status: None,
    };
    nodes
        .patch(
            NODE_NAME,
            &PatchParams::apply("berth-testenv").force(),
            &Patch::Apply(&node),
        )
        .await?;
    Ok(())
}
