//! The auth proxy in front of a runtime that does not check tokens itself (every runtime but
//! onnx), and the API token of a pod in `kubernetes` auth mode.
//!
//! `berth-model-server proxy` (the onnx runtime's image) listens on the pod's `http` port, the
//! one the Service targets; it checks each request as the model server would, strips the
//! caller's `Authorization` header and forwards the request to the runtime on 127.0.0.1, which
//! moved to a port of its own (`runtime`, not in the Service). The kubelet probes the runtime on
//! that port; the proxy's own liveness is on its `metrics` port.

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, HTTPGetAction,
    KeyToPath, ObjectFieldSelector, Probe, ProjectedVolumeSource, ResourceRequirements,
    ServiceAccountTokenProjection, TCPSocketAction, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Ctx;
use super::runtime::{METRICS_PORT, RUNTIME_PORT, container_security, port, pre_stop, quantities};
use crate::mlmodel::auth::Auth;

/// The proxy container's name.
pub const PROXY_CONTAINER: &str = "auth-proxy";
/// The port a built-in runtime listens on behind the proxy (named `runtime`).
pub const BEHIND_PROXY_PORT: i32 = 8081;
/// The port the proxy listens on when a custom runtime asks for 8080 itself.
pub const ALTERNATE_HTTP_PORT: i32 = 8000;
/// The metrics port of the proxy when a custom runtime asks for 9090 itself.
pub const ALTERNATE_METRICS_PORT: i32 = 9091;
/// The projected volume holding a `kubernetes` mode pod's API token, CA and namespace.
pub const TOKEN_VOLUME: &str = "berth-api-access";
/// Where the in-cluster configuration is read from (the standard ServiceAccount mount).
pub const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// How long the API token lives before the kubelet replaces it (the server re-reads it).
pub const TOKEN_SECONDS: i64 = 3600;

/// The proxy's `http` and `metrics` ports in front of a runtime on `upstream`: 8080 and 9090,
/// unless the runtime asks for one of them itself (a custom runtime), then 8000 or 9091.
pub fn ports(upstream: i32) -> (i32, i32) {
    let http = if upstream == RUNTIME_PORT {
        ALTERNATE_HTTP_PORT
    } else {
        RUNTIME_PORT
    };
    let metrics = if upstream == METRICS_PORT {
        ALTERNATE_METRICS_PORT
    } else {
        METRICS_PORT
    };
    (http, metrics)
}

fn http_probe(path: &str, port_name: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port_name.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The kubelet's probes of berth-model-server (or its proxy) on its unauthenticated `metrics`
/// port: readiness `/v2/health/ready` and liveness `/v2/health/live`.
pub fn health_probes() -> (Probe, Probe) {
    (
        http_probe("/v2/health/ready", "metrics", 5),
        Probe {
            initial_delay_seconds: Some(5),
            ..http_probe("/v2/health/live", "metrics", 10)
        },
    )
}

/// The proxy container in front of a runtime listening on `upstream` (127.0.0.1).
pub fn container(ctx: &Ctx, auth: &Auth, upstream: i32) -> Container {
    let (http, metrics) = ports(upstream);
    let mut args = vec![
        "proxy".to_owned(),
        format!("--listen=0.0.0.0:{http}"),
        format!("--upstream=127.0.0.1:{upstream}"),
        format!("--metrics-addr=0.0.0.0:{metrics}"),
    ];
    args.extend(auth.args());
    Container {
        name: PROXY_CONTAINER.into(),
        image: Some(ctx.settings.runtime_images.onnx.clone()),
        args: Some(args),
        ports: Some(vec![port("http", http), port("metrics", metrics)]),
        // Ready once it listens; alive while its metrics address answers.
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            initial_delay_seconds: Some(5),
            ..http_probe("/v2/health/live", "metrics", 10)
        }),
        // It keeps forwarding while the Service's endpoints forget a replaced pod, like the
        // runtime behind it.
        lifecycle: Some(pre_stop()),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "50m"), ("memory", "32Mi")])),
            limits: Some(quantities(&[("cpu", "1"), ("memory", "256Mi")])),
            ..Default::default()
        }),
        volume_mounts: token_mount(auth).map(|m| vec![m]),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

/// The mount of the API token into the container that checks tokens, in `kubernetes` mode only:
/// no other container of the pod (a custom runtime) gets it.
pub fn token_mount(auth: &Auth) -> Option<VolumeMount> {
    matches!(auth, Auth::Kubernetes { .. }).then(|| VolumeMount {
        name: TOKEN_VOLUME.into(),
        mount_path: TOKEN_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    })
}

/// The projected API token (of the pod's ServiceAccount, for the API server, rotated by the
/// kubelet), the cluster's CA and the namespace: what an in-cluster client reads. `kubernetes`
/// mode only.
pub fn token_volume(auth: &Auth) -> Option<Volume> {
    matches!(auth, Auth::Kubernetes { .. }).then(|| Volume {
        name: TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(TOKEN_SECONDS),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    })
}
