//! The containers of a serving pod.
//!
//! Ports of a serving pod:
//!
//! | port | what | reached by |
//! |---|---|---|
//! | `http` (8080) | the Open Inference Protocol (or the runtime's own API) and health | the Service (port 80), the route |
//! | `grpc` (9000, onnx only) | the Open Inference Protocol over gRPC, with the same auth and limits | the Service (port 9000, `appProtocol: kubernetes.io/h2c`) |
//! | `metrics` (9090, onnx and the auth proxy) | Prometheus metrics and unauthenticated health of berth-model-server (or its proxy) | the pod's address only: not in the Service or the route |
//! | `runtime` (8081, or a custom runtime's port; behind the auth proxy only) | the runtime itself, without the auth check | the pod's address only, and the proxy on 127.0.0.1 |

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler,
    PodSecurityContext, Probe, ResourceRequirements, SeccompProfile, SecurityContext, SleepAction,
    TCPSocketAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use berth_api::mlmodel::{MLModel, RuntimeName};

use super::proxy::{self, BEHIND_PROXY_PORT, health_probes, token_mount};
use super::{Ctx, MODEL_DIR, Version};
use crate::mlmodel::auth::Auth;

/// The serving port of every built-in runtime, named `http` in the pod.
pub const RUNTIME_PORT: i32 = 8080;
/// berth-model-server's metrics port: not part of the Service, so not public.
pub const METRICS_PORT: i32 = 9090;
/// berth-model-server's gRPC port (the Open Inference Protocol's `GRPCInferenceService`), named
/// `grpc` in the pod and the Service: onnx only, checked like the `http` port.
pub const GRPC_PORT: i32 = 9000;
/// The serving container's name.
pub const SERVER_CONTAINER: &str = "model";
/// Seconds a serving pod that is being replaced keeps serving before it is asked to stop.
pub const PRE_STOP_SECONDS: i64 = 15;
/// The user and group the model's containers run as (Pod Security "restricted").
const RUN_AS: i64 = 65532;

/// What a runtime needs: image, arguments, port, the readiness path it answers (none: the port
/// accepting connections), and environment.
struct Runtime {
    image: String,
    args: Vec<String>,
    port: i32,
    ready_path: Option<String>,
    env: Vec<EnvVar>,
}

fn env(pairs: &[(&str, &str)]) -> Vec<EnvVar> {
    pairs
        .iter()
        .map(|(k, v)| EnvVar {
            name: (*k).into(),
            value: Some((*v).into()),
            ..Default::default()
        })
        .collect()
}

fn probe_of(path: Option<&String>, port_name: &str, period: i32) -> Probe {
    match path {
        Some(path) => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.clone()),
                port: IntOrString::String(port_name.into()),
                ..Default::default()
            }),
            period_seconds: Some(period),
            failure_threshold: Some(3),
            ..Default::default()
        },
        None => Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(port_name.into()),
                ..Default::default()
            }),
            period_seconds: Some(period),
            failure_threshold: Some(3),
            ..Default::default()
        },
    }
}

/// The containers of a serving pod of `version` checking callers as `auth` says, mounting the
/// model at [`MODEL_DIR`] (its `sub_path` for a pvc:// source).
///
/// - onnx: berth-model-server checks tokens itself; with auth on, the kubelet probes its
///   unauthenticated `metrics` port (every path of `http` needs a token).
/// - every other runtime with auth on: the runtime moves to a port of its own (`runtime`, 8081
///   for the built-ins, `runtime.port` for custom) and the auth proxy takes `http`
///   ([`super::proxy`]); the kubelet probes the runtime on its own port.
/// - `none`: the runtime alone on `http`, as before authentication existed.
pub fn containers(
    ctx: &Ctx,
    version: &Version,
    sub_path: Option<String>,
    auth: &Auth,
) -> Vec<Container> {
    let is_onnx = version.runtime.name == RuntimeName::Onnx;
    let proxied = auth.enabled() && !is_onnx;
    let listen = match (proxied, version.runtime.name) {
        (_, RuntimeName::Custom) => version.runtime.port.unwrap_or(RUNTIME_PORT),
        (true, _) => BEHIND_PROXY_PORT,
        (false, _) => RUNTIME_PORT,
    };
    let mut runtime = runtime(ctx, version, listen);
    if is_onnx {
        runtime.args.extend(auth.args());
    }
    let mut vars = runtime.env;
    vars.extend(env(&[
        ("MODEL_PATH", MODEL_DIR),
        ("BERTH_MODEL_VERSION", &version.key),
    ]));
    let port_name = if proxied { "runtime" } else { "http" };
    let mut ports = vec![port(port_name, runtime.port)];
    if is_onnx {
        ports.push(port("metrics", METRICS_PORT));
        ports.push(port("grpc", GRPC_PORT));
    }
    let (readiness, liveness) = if is_onnx && auth.enabled() {
        let (ready, live) = health_probes();
        (ready, Some(live))
    } else {
        (probe_of(runtime.ready_path.as_ref(), port_name, 5), None)
    };
    let mut mounts = vec![VolumeMount {
        name: "model".into(),
        mount_path: MODEL_DIR.into(),
        read_only: Some(true),
        sub_path,
        ..Default::default()
    }];
    if is_onnx {
        mounts.extend(token_mount(auth));
    }
    let mut out = vec![Container {
        name: SERVER_CONTAINER.into(),
        image: Some(runtime.image),
        args: Some(runtime.args).filter(|a| !a.is_empty()),
        env: Some(vars),
        ports: Some(ports),
        readiness_probe: Some(readiness),
        liveness_probe: liveness,
        lifecycle: Some(pre_stop()),
        resources: resources(ctx.model),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }];
    if proxied {
        out.push(proxy::container(ctx, auth, runtime.port));
    }
    out
}

/// The runtime of `version`, its built-in flavours listening on `listen`.
fn runtime(ctx: &Ctx, version: &Version, listen: i32) -> Runtime {
    let spec = &version.runtime;
    let images = &ctx.settings.runtime_images;
    let name = ctx.name;
    let mut runtime = match spec.name {
        RuntimeName::Onnx => Runtime {
            image: images.onnx.clone(),
            args: vec![
                format!("--model-path={MODEL_DIR}"),
                format!("--model-name={name}"),
                format!("--model-version={}", version.key),
                format!("--http-addr=0.0.0.0:{listen}"),
                format!("--metrics-addr=0.0.0.0:{METRICS_PORT}"),
                format!("--grpc-addr=0.0.0.0:{GRPC_PORT}"),
            ],
            port: listen,
            ready_path: Some("/v2/health/ready".into()),
            env: vec![],
        },
        RuntimeName::Tensorflow => Runtime {
            image: images.tensorflow.clone(),
            args: vec![
                format!("--model_name={name}"),
                format!("--model_base_path={MODEL_DIR}"),
                format!("--rest_api_port={listen}"),
                "--port=9000".into(),
            ],
            port: listen,
            ready_path: Some(format!("/v1/models/{name}")),
            env: vec![],
        },
        RuntimeName::Triton => Runtime {
            image: images.triton.clone(),
            args: vec![
                "tritonserver".into(),
                format!("--model-repository={MODEL_DIR}"),
                format!("--http-port={listen}"),
                "--grpc-port=9000".into(),
            ],
            port: listen,
            ready_path: Some("/v2/health/ready".into()),
            env: vec![],
        },
        RuntimeName::Mlserver => Runtime {
            image: images.mlserver.clone(),
            args: vec!["mlserver".into(), "start".into(), MODEL_DIR.into()],
            port: listen,
            ready_path: Some("/v2/health/ready".into()),
            env: env(&[
                ("MLSERVER_HTTP_PORT", &listen.to_string()),
                ("MLSERVER_GRPC_PORT", "9000"),
                ("MLSERVER_MODEL_NAME", name),
                ("MLSERVER_MODEL_URI", MODEL_DIR),
            ]),
        },
        RuntimeName::Custom => Runtime {
            image: String::new(),
            args: vec![],
            port: spec.port.unwrap_or(listen),
            ready_path: spec.readiness_path.clone(),
            env: vec![],
        },
    };
    if let Some(image) = &spec.image {
        runtime.image = image.clone();
    }
    runtime.args.extend(spec.args.iter().cloned());
    runtime
}

pub(super) fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A replaced pod keeps serving while the Service's endpoints forget it: without the pause,
/// kube-proxy on some node still sends it new connections after it stopped listening, and they
/// fail (seen on the real node during a rollout). 5 s was not enough on a loaded node (kube-proxy
/// dropped the old pod later, and a few requests of a rollout found no route to it); 15 s is
/// within the default 30 s grace period. A version asked for again while its old volume is still
/// held by such draining pods waits for it (`plan::Observed::volumes_deleting`).
pub(super) fn pre_stop() -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction {
                seconds: PRE_STOP_SECONDS,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `pairs` as a resource list.
pub fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

fn resources(model: &MLModel) -> Option<ResourceRequirements> {
    let spec = model.spec.resources.as_ref()?;
    let mut requests = spec.requests.clone();
    let mut limits = spec.limits.clone();
    if let Some(gpus) = spec.gpus.filter(|g| *g > 0) {
        requests.insert("nvidia.com/gpu".into(), Quantity(gpus.to_string()));
        limits.insert("nvidia.com/gpu".into(), Quantity(gpus.to_string()));
    }
    Some(ResourceRequirements {
        requests: Some(requests).filter(|r| !r.is_empty()),
        limits: Some(limits).filter(|l| !l.is_empty()),
        ..Default::default()
    })
}

/// The pod security context of the `restricted` level, as user 65532.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container security context of the `restricted` level.
pub fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
