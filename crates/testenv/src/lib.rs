//! A real Kubernetes control plane on loopback, for Berth's tests, benchmarks and `cargo xtask dev`.
//!
//! [`ControlPlane::start`] runs etcd, kube-apiserver (RBAC, token authentication, service-account
//! signing keys), kube-controller-manager, kube-scheduler and kwok with fake nodes, all built from
//! their pinned Go modules by `tools/build.sh`, each on a free port. It returns once every component
//! is healthy, the nodes are Ready and Berth's CRDs are established.
//!
//! Tests call [`shared`]: one control plane per test binary, shared by every test in it, or the
//! cluster named by `BERTH_TEST_KUBECONFIG` when that is set. Each test makes its own clients with
//! [`Cluster::client`] and [`Cluster::impersonate`], and uses names of its own so tests run in parallel.
//! Every process dies with the process that started it, on a panic or Ctrl-C too.
//!
//! [`shared_real_node`] is the same with one real node beside the kwok nodes (see [`realnode`]):
//! real containers, networking, NetworkPolicy, DNS and storage, for the tests that need them.

mod authn;
mod binaries;
pub mod chart;
mod cluster;
mod controlplane;
mod error;
mod health;
mod kwok;
pub mod manifests;
pub mod model_runtime;
mod pki;
mod process;
pub mod realnode;
pub mod traefik;
pub mod util;

pub use authn::{TrustedIssuer, authentication_config};
pub use binaries::{Binaries, operator_binary};
pub use cluster::Cluster;
pub use controlplane::{ControlPlane, Options};
pub use error::Error;
pub use kwok::{
    CRASHES_REGISTRY, EXIT_CODE_ANNOTATION, EXIT_MESSAGE_ANNOTATION, PULL_FAILS_REGISTRY,
};
pub use process::Process;
pub use realnode::RealNode;

use std::sync::{Mutex, OnceLock};

/// The environment variable that points tests at an existing cluster instead of starting one.
pub const KUBECONFIG_ENV: &str = "BERTH_TEST_KUBECONFIG";

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The shared control plane, taken and killed when the process exits. Should that never run (a
/// SIGKILL), the kernel still kills the children (see `process`) and the next start removes the
/// data directory.
static SHARED_CONTROL_PLANE: Mutex<Option<ControlPlane>> = Mutex::new(None);

extern "C" fn kill_shared_control_plane() {
    if let Ok(mut guard) = SHARED_CONTROL_PLANE.lock()
        && let Some(control_plane) = guard.take()
    {
        control_plane.kill();
    }
}

#[allow(unsafe_code)]
fn kill_shared_control_plane_at_exit() {
    // SAFETY: registers a plain function with no arguments; it only takes a lock and kills children.
    unsafe {
        libc::atexit(kill_shared_control_plane);
    }
}

/// The cluster every test in this binary shares, started on first use.
///
/// With `BERTH_TEST_KUBECONFIG` set, that cluster is used as it is (Berth's CRDs are still applied).
/// Otherwise a control plane is started once, on a thread of its own so no test's runtime owns it.
pub fn shared() -> Result<&'static Cluster, Error> {
    let shared = SHARED.get_or_init(|| {
        let started = std::thread::spawn(|| -> Result<Cluster, Error> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting a runtime for the control plane", e))?;
            runtime.block_on(async {
                match std::env::var_os(KUBECONFIG_ENV) {
                    Some(path) => {
                        let cluster = Cluster::from_kubeconfig_file(path.as_ref()).await?;
                        cluster.install_berth().await?;
                        Ok(cluster)
                    }
                    None => {
                        let control_plane = ControlPlane::start(Options::default()).await?;
                        let cluster = control_plane.cluster().clone();
                        if let Ok(mut guard) = SHARED_CONTROL_PLANE.lock() {
                            *guard = Some(control_plane);
                            kill_shared_control_plane_at_exit();
                        }
                        Ok(cluster)
                    }
                }
            })
        })
        .join();
        match started {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the control plane's start-up thread panicked".to_owned()),
        }
    });
    match shared {
        Ok(cluster) => Ok(cluster),
        Err(message) => Err(Error::SharedStartFailed(message.clone())),
    }
}

/// A cluster with a real node, and what it is made of.
pub struct RealNodeCluster {
    pub cluster: Cluster,
    pub images: realnode::Images,
    /// How long the node took from its start to Ready, when this process started it.
    pub node_started_in: Option<std::time::Duration>,
    /// Where the node's processes log (kubelet, kube-proxy, kube-router, containerd), when this
    /// process started the node.
    pub node_logs: Option<std::path::PathBuf>,
}

static SHARED_REAL: OnceLock<Result<RealNodeCluster, String>> = OnceLock::new();

/// The real node and its control plane, stopped in that order when the process exits. Should that
/// never run (SIGKILL), the kernel kills the processes and `tools/node/host.sh` cleans the host.
static SHARED_REAL_PARTS: Mutex<Option<(RealNode, ControlPlane)>> = Mutex::new(None);

extern "C" fn kill_shared_real_node() {
    if let Ok(mut guard) = SHARED_REAL_PARTS.lock()
        && let Some((node, control_plane)) = guard.take()
    {
        drop(node);
        control_plane.kill();
    }
}

#[allow(unsafe_code)]
fn kill_shared_real_node_at_exit() {
    // SAFETY: registers a plain function with no arguments; it only takes a lock and stops children.
    unsafe {
        libc::atexit(kill_shared_real_node);
    }
}

/// Starts a control plane with one real node beside its kwok nodes: builds what is missing
/// (`tools/build.sh`, `tools/node/build.sh`, the images), takes the machine's real node (waiting
/// while another run holds it), and returns once the node is Ready with DNS and storage running.
pub async fn start_real_node(options: Options) -> Result<(ControlPlane, RealNode), Error> {
    let show = options.progress;
    let node_binaries = realnode::NodeBinaries::locate()?;
    let images = realnode::Images::locate()?;
    let binaries = match options.binaries.clone() {
        Some(binaries) => binaries,
        None => Binaries::locate()?,
    };
    let lease = realnode::HostLease::acquire(show)?;
    let control_plane = ControlPlane::start(Options {
        real_node: true,
        binaries: Some(binaries),
        ..options
    })
    .await?;
    let node = RealNode::start(lease, &control_plane, &node_binaries, images, show).await?;
    Ok((control_plane, node))
}

/// The cluster with a real node that every real-node test in this binary shares, started on first
/// use (see [`start_real_node`]). With `BERTH_TEST_KUBECONFIG` set, that cluster is used; it must
/// have a Ready real node (a `cargo xtask dev` cluster has one), and the images come from
/// `BERTH_IMAGES`.
pub fn shared_real_node() -> Result<&'static RealNodeCluster, Error> {
    shared_real_node_with(true)
}

/// [`shared_real_node`] without Berth: for tests that install it themselves, with its Helm
/// charts ([`chart`]). With `BERTH_TEST_KUBECONFIG` set, that cluster is used as it is.
pub fn shared_real_node_without_berth() -> Result<&'static RealNodeCluster, Error> {
    shared_real_node_with(false)
}

fn shared_real_node_with(install_berth: bool) -> Result<&'static RealNodeCluster, Error> {
    let shared = SHARED_REAL.get_or_init(|| {
        let started = std::thread::spawn(move || -> Result<RealNodeCluster, Error> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting a runtime for the real node", e))?;
            runtime.block_on(async {
                match std::env::var_os(KUBECONFIG_ENV) {
                    Some(path) => {
                        let cluster = Cluster::from_kubeconfig_file(path.as_ref()).await?;
                        if install_berth {
                            cluster.install_berth().await?;
                        }
                        Ok(RealNodeCluster {
                            cluster,
                            images: realnode::Images::locate()?,
                            node_started_in: None,
                            node_logs: None,
                        })
                    }
                    None => {
                        let (control_plane, node) = start_real_node(Options {
                            install_berth,
                            ..Options::default()
                        })
                        .await?;
                        let shared = RealNodeCluster {
                            cluster: control_plane.cluster().clone(),
                            images: node.images().clone(),
                            node_started_in: Some(node.started_in()),
                            node_logs: Some(node.logs().to_path_buf()),
                        };
                        if let Ok(mut guard) = SHARED_REAL_PARTS.lock() {
                            *guard = Some((node, control_plane));
                            kill_shared_real_node_at_exit();
                        }
                        Ok(shared)
                    }
                }
            })
        })
        .join();
        match started {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the real node's start-up thread panicked".to_owned()),
        }
    });
    match shared {
        Ok(cluster) => Ok(cluster),
        Err(message) => Err(Error::SharedStartFailed(message.clone())),
    }
}
