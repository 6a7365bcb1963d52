//! The pure heart of the MLModel controller: from a model, the platform settings and the rollout
//! plan to every object that should exist for it. No IO.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvFromSource, EnvVar, HTTPGetAction, Lifecycle,
    LifecycleHandler, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Service, ServicePort,
    ServiceSpec, SleepAction, TCPSocketAction, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::ObjectMeta;
use serde_json::json;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, MODEL};
use berth_api::mlmodel::{
    ExposeMode, MLModel, ModelSettings, ModelSource, RuntimeName, RuntimeSpec,
};
use berth_reconcile::{ChildKind, Desired, Error};

use super::host::Host;
use crate::kinds;

/// The label that tells a model's serving pods from its download pods.
pub const COMPONENT: &str = "berth.dev/component";
/// The label naming the version a download or serving pod belongs to.
pub const VERSION: &str = "berth.dev/version";
/// Values of [`COMPONENT`].
pub const SERVER: &str = "server";
pub const DOWNLOAD: &str = "download";
/// Where the model is mounted in every container.
pub const MODEL_DIR: &str = "/mnt/models";
/// The serving port of every built-in runtime, named `http` in the pod.
pub const RUNTIME_PORT: i32 = 8080;
/// The download container's name (the Job's pod failure policy names it).
pub const FETCH_CONTAINER: &str = "fetch";
/// The serving container's name.
pub const SERVER_CONTAINER: &str = "model";
/// The Secret an s3:// source takes its credentials from unless it names another: the one the
/// Project's storage gives every project namespace.
pub const DEFAULT_STORAGE_SECRET: &str = "berth-storage";
/// Exit codes of berth-model-fetch that retrying cannot fix: bad arguments, not found, access
/// denied, checksum mismatch, its own deadline, an archive that cannot be unpacked. The Job fails
/// at once on these instead of using its retries.
pub const FINAL_EXIT_CODES: [i32; 6] = [2, 3, 4, 5, 6, 8];
/// Seconds a serving pod that is being replaced keeps serving before it is asked to stop.
pub const PRE_STOP_SECONDS: i64 = 5;
/// The user and group the model's containers run as (Pod Security "restricted").
const RUN_AS: i64 = 65532;

/// What the builder needs to know about the cluster besides the spec: the routing kinds it serves,
/// at the version discovery found (`crate::discovery`).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// Gateway API's HTTPRoute, if served.
    pub http_route: Option<ChildKind>,
    /// Istio's VirtualService, if served.
    pub virtual_service: Option<ChildKind>,
}

/// One version of a model: what makes it, and its content key.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub key: String,
    pub source: ModelSource,
    pub runtime: RuntimeSpec,
}

impl Version {
    /// The version a source and runtime make: the first 10 hex digits of the SHA-256 of their
    /// canonical JSON. Replicas, resources and exposure are not part of it.
    pub fn of(source: &ModelSource, runtime: &RuntimeSpec) -> Self {
        let text = serde_json::to_string(&json!({"source": source, "runtime": runtime}))
            .unwrap_or_default();
        Self {
            key: crate::names::short_hash(&text, 10),
            source: source.clone(),
            runtime: runtime.clone(),
        }
    }

    /// The PVC and subPath a pvc:// source names, if it is one.
    pub fn existing_volume(&self) -> Option<(String, String)> {
        let rest = self.source.uri.strip_prefix("pvc://")?;
        let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
        Some((claim.to_owned(), path.trim_matches('/').to_owned()))
    }

    /// Whether this version is downloaded by a Job (every source but pvc://).
    pub fn downloads(&self) -> bool {
        self.existing_volume().is_none()
    }
}

/// The names of a model's children (made by the naming authority).
pub use crate::names::kube::{model_job as job_name, model_volume as volume_name};

/// What the Deployment serves and which volumes exist, as decided by the rollout plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The version the Deployment's pods run, if any.
    pub serve: Option<Version>,
    /// The versions whose volume and download Job are kept or made.
    pub volumes: Vec<Version>,
    /// Replicas of the Deployment when autoscaling owns the count: carried over while a new
    /// version rolls out.
    pub autoscaled_replicas: Option<i32>,
}

/// How the model is reached, as built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The Service only.
    Cluster,
    /// A route of `kind` at `api_version` was built.
    Routed {
        kind: &'static str,
        api_version: String,
    },
    /// The route cannot be made: why, and what to do.
    NotPossible { reason: String, message: String },
}

/// Everything a model should have.
#[derive(Clone, Debug)]
pub struct Built {
    pub children: Vec<Desired>,
    pub url: String,
    pub exposure: Exposure,
    /// The host the model holds on the gateway, for its status.
    pub host: Option<String>,
}

/// Builds every desired child of `model` under `plan`, exposed under `host` (decided among every
/// model by `super::host::decide`).
pub fn build(
    model: &MLModel,
    settings: &ModelSettings,
    env: Environment,
    plan: &Plan,
    host: &Host,
) -> Result<Built, Error> {
    let name = model
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::internal("the model has no name"))?;
    let namespace = model
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| Error::internal("the model has no namespace"))?;
    let owner = model
        .controller_owner_ref(&())
        .ok_or_else(|| Error::internal("the model has no uid yet"))?;
    let ctx = Ctx {
        name: &name,
        namespace: &namespace,
        owner: &owner,
        settings,
    };
    let mut children = Vec::new();

    for version in &plan.volumes {
        if !version.downloads() {
            continue;
        }
        children.push(Desired::new(
            &kinds::persistent_volume_claim(),
            &ctx.volume(model, version),
        )?);
        children.push(Desired::new(&kinds::job(), &ctx.job(version))?);
    }

    if let Some(version) = &plan.serve {
        children.push(Desired::new(
            &kinds::deployment(),
            &ctx.deployment(model, version, plan.autoscaled_replicas),
        )?);
        if let Some(auto) = &model.spec.autoscaling {
            children.push(Desired::new(
                &kinds::horizontal_pod_autoscaler(),
                &HorizontalPodAutoscaler {
                    metadata: ctx.meta(&name, BTreeMap::new()),
                    spec: HorizontalPodAutoscalerSpec {
                        scale_target_ref: CrossVersionObjectReference {
                            api_version: Some("apps/v1".into()),
                            kind: "Deployment".into(),
                            name: name.clone(),
                        },
                        min_replicas: Some(auto.min_replicas),
                        max_replicas: auto.max_replicas,
                        metrics: Some(vec![MetricSpec {
                            type_: "Resource".into(),
                            resource: Some(ResourceMetricSource {
                                name: "cpu".into(),
                                target: MetricTarget {
                                    type_: "Utilization".into(),
                                    average_utilization: Some(auto.target_cpu_utilization),
                                    ..Default::default()
                                },
                            }),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )?);
        }
    }

    // The Service exists from the start, so the model's address is stable across versions.
    children.push(Desired::new(
        &kinds::service(),
        &Service {
            metadata: ctx.meta(&name, BTreeMap::new()),
            spec: Some(ServiceSpec {
                selector: Some(ctx.server_selector()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )?);

    let service_host = format!("{name}.{namespace}.svc.cluster.local");
    let expose = model.spec.expose.clone().unwrap_or_default();
    let cluster_url = format!("http://{service_host}");
    let host = match host {
        Host::Granted(h) => Some(h.clone()),
        Host::None => None,
        Host::Refused { reason, message } => {
            return Ok(Built {
                children,
                url: cluster_url,
                exposure: Exposure::NotPossible {
                    reason: reason.clone(),
                    message: message.clone(),
                },
                host: None,
            });
        }
    };
    let (exposure, url) = match expose.mode {
        ExposeMode::Cluster => (Exposure::Cluster, cluster_url),
        ExposeMode::Gateway => match (&settings.gateway, &env.http_route) {
            (_, None) => (
                Exposure::NotPossible {
                    reason: "GatewayAPINotInstalled".into(),
                    message: "expose.mode is gateway but the Gateway API (HTTPRoute) is not installed in this cluster; the model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (None, Some(_)) => (
                Exposure::NotPossible {
                    reason: "GatewayNotConfigured".into(),
                    message: "expose.mode is gateway but the platform settings name no Gateway (models.gateway); ask a platform admin. The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(gateway), Some(route)) => {
                let mut parent = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name, "namespace": gateway.namespace});
                if let Some(section) = &gateway.section_name {
                    parent["sectionName"] = json!(section);
                }
                let mut spec = json!({
                    "parentRefs": [parent],
                    "rules": [{"backendRefs": [{"name": name, "port": 80}]}],
                });
                if let Some(host) = &host {
                    spec["hostnames"] = json!([host]);
                }
                children.push(Desired::from_value(
                    route,
                    json!({"metadata": ctx.meta(&name, BTreeMap::new()), "spec": spec}),
                )?);
                let url = host
                    .as_ref()
                    .map(|h| format!("http://{h}"))
                    .unwrap_or(cluster_url);
                let routed = Exposure::Routed {
                    kind: "HTTPRoute",
                    api_version: route.resource.api_version.clone(),
                };
                (routed, url)
            }
        },
        ExposeMode::Istio => match (&settings.istio_gateway, &env.virtual_service, &host) {
            (_, None, _) => (
                Exposure::NotPossible {
                    reason: "IstioNotInstalled".into(),
                    message: "expose.mode is istio but Istio (VirtualService) is not installed in this cluster; the model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (None, Some(_), _) => (
                Exposure::NotPossible {
                    reason: "IstioGatewayNotConfigured".into(),
                    message: "expose.mode is istio but the platform settings name no Istio gateway (models.istioGateway); ask a platform admin. The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(_), Some(_), None) => (
                Exposure::NotPossible {
                    reason: "NoHostname".into(),
                    message: "expose.mode is istio but there is no host name: set expose.hostname (the platform sets no model domain). The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(gateway), Some(route), Some(host)) => {
                children.push(Desired::from_value(
                    route,
                    json!({
                        "metadata": ctx.meta(&name, BTreeMap::new()),
                        "spec": {
                            "hosts": [host],
                            "gateways": [gateway],
                            "http": [{"route": [{"destination": {"host": service_host, "port": {"number": 80}}}]}],
                        },
                    }),
                )?);
                let routed = Exposure::Routed {
                    kind: "VirtualService",
                    api_version: route.resource.api_version.clone(),
                };
                (routed, format!("http://{host}"))
            }
        },
    };

    let host = host.filter(|_| expose.mode != ExposeMode::Cluster);
    Ok(Built {
        children,
        url,
        exposure,
        host,
    })
}

struct Ctx<'a> {
    name: &'a str,
    namespace: &'a str,
    owner: &'a OwnerReference,
    settings: &'a ModelSettings,
}

impl Ctx<'_> {
    fn labels(&self, extra: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (MODEL.to_owned(), self.name.to_owned()),
        ]);
        labels.extend(extra);
        labels
    }

    fn meta(&self, object_name: &str, extra: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(object_name.to_owned()),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(self.labels(extra)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    fn server_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MODEL.to_owned(), self.name.to_owned()),
            (COMPONENT.to_owned(), SERVER.to_owned()),
        ])
    }

    fn version_labels(component: &str, version: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (COMPONENT.to_owned(), component.to_owned()),
            (VERSION.to_owned(), version.to_owned()),
        ])
    }

    fn volume(&self, model: &MLModel, version: &Version) -> PersistentVolumeClaim {
        let storage = model.spec.storage.clone().unwrap_or_default();
        let size = storage
            .size
            .unwrap_or_else(|| self.settings.default_storage_size.clone());
        PersistentVolumeClaim {
            metadata: self.meta(
                &volume_name(self.name, &version.key),
                BTreeMap::from([(VERSION.to_owned(), version.key.clone())]),
            ),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![self.settings.volume_access_mode.clone()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
                    ..Default::default()
                }),
                storage_class_name: storage.storage_class_name,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn job(&self, version: &Version) -> Job {
        let timeout = version
            .source
            .timeout
            .as_deref()
            .and_then(parse_duration_seconds)
            .unwrap_or(self.settings.download_timeout_seconds)
            .max(1);
        let mut args = vec![
            version.source.uri.clone(),
            MODEL_DIR.to_owned(),
            format!("--timeout={timeout}s"),
            "--progress-interval=30s".to_owned(),
        ];
        if let Some(sha) = &version.source.sha256 {
            args.push(format!("--sha256={sha}"));
        }
        let env_from = version.source.uri.starts_with("s3://").then(|| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: version
                        .source
                        .secret_name
                        .clone()
                        .unwrap_or_else(|| DEFAULT_STORAGE_SECRET.to_owned()),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        });
        let labels = self.labels(Self::version_labels(DOWNLOAD, &version.key));
        Job {
            metadata: self.meta(
                &job_name(self.name, &version.key),
                Self::version_labels(DOWNLOAD, &version.key),
            ),
            spec: Some(JobSpec {
                // The whole download, retries included, is bounded; a finished Job is kept (no
                // TTL) so that its outcome stays readable until the version is replaced.
                active_deadline_seconds: Some(timeout),
                backoff_limit: Some(self.settings.download_backoff_limit),
                pod_failure_policy: Some(PodFailurePolicy {
                    rules: vec![PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                            container_name: Some(FETCH_CONTAINER.into()),
                            operator: "In".into(),
                            values: FINAL_EXIT_CODES.to_vec(),
                        }),
                        on_pod_conditions: None,
                    }],
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        automount_service_account_token: Some(false),
                        security_context: Some(pod_security()),
                        containers: vec![Container {
                            name: FETCH_CONTAINER.into(),
                            image: Some(self.settings.fetch_image.clone()),
                            command: Some(vec!["berth-model-fetch".into()]),
                            args: Some(args),
                            env: Some(vec![EnvVar {
                                name: "AWS_EC2_METADATA_DISABLED".into(),
                                value: Some("true".into()),
                                ..Default::default()
                            }]),
                            env_from,
                            volume_mounts: Some(vec![VolumeMount {
                                name: "model".into(),
                                mount_path: MODEL_DIR.into(),
                                ..Default::default()
                            }]),
                            resources: Some(ResourceRequirements {
                                requests: Some(quantities(&[("cpu", "100m"), ("memory", "64Mi")])),
                                limits: Some(quantities(&[("cpu", "1"), ("memory", "256Mi")])),
                                ..Default::default()
                            }),
                            security_context: Some(container_security()),
                            // berth-model-fetch prints one line saying what went wrong.
                            termination_message_policy: Some("FallbackToLogsOnError".into()),
                            ..Default::default()
                        }],
                        volumes: Some(vec![Volume {
                            name: "model".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: volume_name(self.name, &version.key),
                                // false is the default, and the API server leaves it out.
                                read_only: None,
                            }),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn deployment(&self, model: &MLModel, version: &Version, carried: Option<i32>) -> Deployment {
        let replicas = if model.spec.autoscaling.is_some() {
            carried
        } else {
            Some(model.spec.replicas.unwrap_or(1))
        };
        let mut pod_labels = self.labels(Self::version_labels(SERVER, &version.key));
        pod_labels.insert("app.kubernetes.io/name".into(), self.name.to_owned());
        let (claim, sub_path) = match version.existing_volume() {
            Some((claim, path)) => (claim, Some(path).filter(|p| !p.is_empty())),
            None => (volume_name(self.name, &version.key), None),
        };
        Deployment {
            metadata: self.meta(self.name, BTreeMap::new()),
            spec: Some(DeploymentSpec {
                replicas,
                selector: LabelSelector {
                    match_labels: Some(self.server_selector()),
                    ..Default::default()
                },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(0)),
                        max_surge: Some(IntOrString::Int(1)),
                    }),
                }),
                progress_deadline_seconds: Some(self.settings.rollout_deadline_seconds),
                revision_history_limit: Some(3),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        automount_service_account_token: Some(false),
                        security_context: Some(pod_security()),
                        containers: vec![self.server_container(model, version, sub_path)],
                        volumes: Some(vec![Volume {
                            name: "model".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: claim,
                                read_only: Some(true),
                            }),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn server_container(
        &self,
        model: &MLModel,
        version: &Version,
        sub_path: Option<String>,
    ) -> Container {
        let runtime = &version.runtime;
        let images = &self.settings.runtime_images;
        let name = self.name;
        let http = |path: String| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        };
        let env = |pairs: &[(&str, &str)]| -> Vec<EnvVar> {
            pairs
                .iter()
                .map(|(k, v)| EnvVar {
                    name: (*k).into(),
                    value: Some((*v).into()),
                    ..Default::default()
                })
                .collect()
        };
        let (image, args, port, probe, vars) = match runtime.name {
            RuntimeName::Onnx => (
                images.onnx.clone(),
                vec![
                    format!("--model-path={MODEL_DIR}"),
                    format!("--model-name={name}"),
                    format!("--model-version={}", version.key),
                    format!("--http-addr=0.0.0.0:{RUNTIME_PORT}"),
                ],
                RUNTIME_PORT,
                http("/v2/health/ready".into()),
                vec![],
            ),
            RuntimeName::Tensorflow => (
                images.tensorflow.clone(),
                vec![
                    format!("--model_name={name}"),
                    format!("--model_base_path={MODEL_DIR}"),
                    format!("--rest_api_port={RUNTIME_PORT}"),
                    "--port=9000".into(),
                ],
                RUNTIME_PORT,
                http(format!("/v1/models/{name}")),
                vec![],
            ),
            RuntimeName::Triton => (
                images.triton.clone(),
                vec![
                    "tritonserver".into(),
                    format!("--model-repository={MODEL_DIR}"),
                    format!("--http-port={RUNTIME_PORT}"),
                    "--grpc-port=9000".into(),
                ],
                RUNTIME_PORT,
                http("/v2/health/ready".into()),
                vec![],
            ),
            RuntimeName::Mlserver => (
                images.mlserver.clone(),
                vec!["mlserver".into(), "start".into(), MODEL_DIR.into()],
                RUNTIME_PORT,
                http("/v2/health/ready".into()),
                env(&[
                    ("MLSERVER_HTTP_PORT", "8080"),
                    ("MLSERVER_GRPC_PORT", "9000"),
                    ("MLSERVER_MODEL_NAME", name),
                    ("MLSERVER_MODEL_URI", MODEL_DIR),
                ]),
            ),
            RuntimeName::Custom => {
                let port = runtime.port.unwrap_or(RUNTIME_PORT);
                let probe = match &runtime.readiness_path {
                    Some(path) => http(path.clone()),
                    None => Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::String("http".into()),
                            ..Default::default()
                        }),
                        period_seconds: Some(5),
                        failure_threshold: Some(3),
                        ..Default::default()
                    },
                };
                (String::new(), vec![], port, probe, vec![])
            }
        };
        let image = runtime.image.clone().unwrap_or(image);
        let mut args = args;
        args.extend(runtime.args.iter().cloned());
        let mut vars = vars;
        vars.extend(env(&[
            ("MODEL_PATH", MODEL_DIR),
            ("BERTH_MODEL_VERSION", &version.key),
        ]));
        Container {
            name: SERVER_CONTAINER.into(),
            image: Some(image),
            args: Some(args).filter(|a| !a.is_empty()),
            env: Some(vars),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(probe),
            // A replaced pod keeps serving while the Service's endpoints forget it: without the
            // pause, kube-proxy on some node still sends it new connections after it stopped
            // listening, and they fail (seen on the real node during a rollout).
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction {
                        seconds: PRE_STOP_SECONDS,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            resources: resources(model),
            volume_mounts: Some(vec![VolumeMount {
                name: "model".into(),
                mount_path: MODEL_DIR.into(),
                read_only: Some(true),
                sub_path,
                ..Default::default()
            }]),
            security_context: Some(container_security()),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        }
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
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

fn pod_security() -> PodSecurityContext {
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

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Seconds in a duration such as `90s`, `30m` or `1h30m` (the form the CRD admits).
pub fn parse_duration_seconds(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(total)
}
