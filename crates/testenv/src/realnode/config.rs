//! The configuration files of the real node's components, as text. Pure: paths and ports in,
//! file contents out.

use serde_json::json;

use super::{
    CLUSTER_DOMAIN, DNS_SERVICE_IP, NODE_BRIDGE, NODE_CGROUP, NODE_IP, NODE_NAME, POD_CIDR,
    POD_RANGE, SERVICE_RANGE, paths,
};

/// containerd 2.x (config version 3). Everything lives under the node's own directories; plugins
/// that would read or create host-wide paths (NRI's socket, /opt/containerd, CDI, tracing) are off.
/// `restrict_oom_score_adj`: root here lacks CAP_SYS_RESOURCE, so runc could not lower a
/// container's oom_score_adj below containerd's own, and every sandbox would fail with "can't get
/// final child's PID from pipe: EOF" (the cause shows only in runc's debug log).
pub fn containerd(sandbox_image: &str) -> String {
    format!(
        r#"version = 3
root = "{root}"
state = "{state}"
imports = []
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[cgroup]
  path = "/{cgroup}/containerd"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{sandbox_image}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_cdi = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
    max_conf_num = 1
    use_internal_loopback = true

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{root}/image-verifiers"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#,
        root = paths::CONTAINERD_ROOT,
        state = paths::CONTAINERD_STATE,
        socket = paths::CONTAINERD_SOCKET,
        cgroup = NODE_CGROUP,
        runc = paths::RUNC,
        runc_root = paths::RUNC_ROOT,
        cni_bin = paths::CNI_BIN,
        cni_conf = paths::CNI_CONF,
    )
}

/// The CNI network: Debian's bridge plugin on the node's bridge with host-local addresses from the
/// node's pod CIDR. Pods get routes to the pod and Service ranges only, no default route, and no
/// masquerade: they cannot reach past this machine.
pub fn cni() -> String {
    let gateway = NODE_IP;
    json!({
        "cniVersion": "1.0.0",
        "name": "berth",
        "plugins": [{
            "type": "bridge",
            "bridge": NODE_BRIDGE,
            "isGateway": true,
            "isDefaultGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR, "gateway": gateway}]],
                "routes": [{"dst": POD_RANGE}, {"dst": SERVICE_RANGE}],
                "dataDir": paths::CNI_IPAM,
            },
        }],
    })
    .to_string()
}

/// Ports the node's components listen on: the kubelet's API on the node's address, the rest on
/// loopback.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub kubelet: u16,
    pub kubelet_healthz: u16,
    pub proxy_healthz: u16,
    pub proxy_metrics: u16,
}

/// The KubeletConfiguration. cgroup v1 (this machine's hybrid layout) needs `failCgroupV1: false`;
/// the pods' cgroups live under `/<NODE_CGROUP>` so cleanup finds exactly ours. Image garbage
/// collection is off: the images were imported, and nothing could pull them again.
pub fn kubelet(ports: Ports, ca_file: &str, cert: &str, key: &str) -> String {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "tlsCertFile": cert,
        "tlsPrivateKeyFile": key,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": ca_file},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": format!("/{NODE_CGROUP}"),
        "failCgroupV1": false,
        "failSwapOn": false,
        "containerRuntimeEndpoint": format!("unix://{}", paths::CONTAINERD_SOCKET),
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",
        "podLogsDir": paths::POD_LOGS,
        "registerNode": true,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": false,
        "maxPods": 110,
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
        "protectKernelDefaults": false,
        "makeIPTablesUtilChains": true,
        "enableProfilingHandler": false,
        "enableDebuggingHandlers": true,
    })
    .to_string()
}

/// The KubeProxyConfiguration: iptables mode, NodePorts only on the node's address, and no
/// conntrack sysctls touched (zero leaves each as the kernel has it).
pub fn kube_proxy(ports: Ports, kubeconfig: &str) -> String {
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": format!("127.0.0.1:{}", ports.proxy_healthz),
        "metricsBindAddress": format!("127.0.0.1:{}", ports.proxy_metrics),
        "mode": "iptables",
        "clusterCIDR": POD_RANGE,
        "nodePortAddresses": [format!("{NODE_IP}/32")],
        "iptables": {"localhostNodePorts": false, "masqueradeAll": false},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    })
    .to_string()
}

/// kube-router as the NetworkPolicy enforcer only: no routing, no service proxy, no CNI.
pub fn kube_router_args(kubeconfig: &str) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--hostname-override={NODE_NAME}"),
        "--run-firewall=true".into(),
        "--run-router=false".into(),
        "--run-service-proxy=false".into(),
        "--enable-cni=false".into(),
        "--enable-ipv4=true".into(),
        "--enable-ipv6=false".into(),
        format!("--service-cluster-ip-range={SERVICE_RANGE}"),
        // Its health server would listen on every interface.
        "--health-port=0".into(),
        "--metrics-port=0".into(),
        "--iptables-sync-period=5m".into(),
        "--ipvs-sync-period=5m".into(),
        "--v=1".into(),
    ]
}
