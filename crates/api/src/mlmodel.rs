//! `MLModel`: one object fetches a model, serves it behind a Service and keeps it served while it
//! changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::model_auth::{AuthMode, AuthSpec, AuthStatus, ModelAuthSettings};
use crate::project::{ResourceList, resource_list_schema};

/// A machine-learning model served over HTTP: downloaded into a volume of its own, then served by
/// a runtime behind a Service, and updated without downtime.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "MLModel",
    plural = "mlmodels",
    singular = "mlmodel",
    shortname = "mlm",
    namespaced,
    status = "MLModelStatus",
    doc = "A machine-learning model served over HTTP: Berth downloads it into a volume of its own, serves it with the chosen runtime behind a Service, and rolls out changes without downtime.",
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40").message("an MLModel name must start with a letter and have at most 40 lowercase letters, digits and '-' (it names the model's Service and Deployment)"),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Active","type":"string","jsonPath":".status.activeVersion"}"#,
    printcolumn = r#"{"name":"Auth","type":"string","jsonPath":".status.auth.mode"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.targetVersion","priority":1}"#,
    printcolumn = r#"{"name":"Degraded","type":"string","jsonPath":".status.conditions[?(@.type==\"Degraded\")].status","priority":1}"#,
    printcolumn = r#"{"name":"Canary","type":"string","jsonPath":".status.canary.split","priority":1}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))").message("set either replicas or autoscaling, not both: with autoscaling the number of replicas follows the load"),
    validation = Rule::new(ONNX_IMAGE_RULE).message("the onnx runtime checks callers itself, so it runs the platform's image: to serve with your own image, use runtime.name: custom (Berth puts its auth proxy in front of it), or set auth.mode: none"),
    validation = Rule::new(ONNX_ARGS_RULE).message("the onnx runtime takes only these arguments: --inference-threads, --max-queued-requests, --request-body-timeout-secs, --max-request-bytes, --memory-budget-bytes, --shutdown-timeout-secs, each as --flag=NUMBER (its addresses and auth are Berth's)")
)]
pub struct MLModelSpec {
    /// Where the model comes from.
    pub source: ModelSource,

    /// What serves the model. Defaults to onnx, Berth's own ONNX server.
    #[serde(default)]
    pub runtime: RuntimeSpec,

    /// How many copies of the model serve requests (1 to 100; default 1). Leave it out when
    /// autoscaling is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: Option<i32>,

    /// Scale the number of replicas with CPU use, through a HorizontalPodAutoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// CPU, memory and GPUs for each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ModelResources>,

    /// The volume the model is downloaded into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// How the model is reached: cluster (a Service, the default), gateway (a Gateway API
    /// HTTPRoute on the platform's Gateway) or istio (an Istio VirtualService).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<ExposeSpec>,

    /// A second version served beside the stable one, taking a share of the requests. Promote it
    /// by making its source (and runtime) the model's and removing canary; roll it back by
    /// removing canary. A canary that fails is rolled back by Berth, with the reason in the
    /// CanaryReady condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,

    /// Who may call the model: oidc (tokens of the platform's identity provider), kubernetes
    /// (ServiceAccount tokens) or none (an explicit opt-out). Default: oidc when the project has
    /// an OIDC client, kubernetes otherwise; never none unless asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
}

/// A canary: a second version that takes a share of the requests.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.source) || has(self.runtime)").message("canary needs a source or a runtime (or both): what the canary version serves differently"))]
pub struct CanarySpec {
    /// Where the canary's model comes from. Default: the model's own source (a canary of a
    /// runtime only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
    /// What serves the canary. Default: the model's own runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeSpec>,
    /// The share of requests the canary takes, in percent (1 to 99). With cluster exposure the
    /// share follows the ratio of canary to stable replicas; with gateway and istio exposure,
    /// the route's weights (docs/models.md says how close each comes).
    #[schemars(range(min = 1, max = 99))]
    pub weight: i32,
}

/// Where the model comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.sha256) || !self.uri.endsWith('/')").message("source.sha256 checks a single file, but source.uri ends with '/' (a whole prefix): remove sha256 or name one file"),
    validation = Rule::new("!has(self.sha256) || !self.uri.startsWith('pvc://')").message("source.sha256 is checked while downloading, and a pvc:// source is not downloaded: remove sha256"),
    validation = Rule::new("!has(self.secretName) || self.uri.startsWith('s3://')").message("source.secretName holds S3 credentials and applies to s3:// sources only"),
    validation = Rule::new("!has(self.timeout) || !self.uri.startsWith('pvc://')").message("source.timeout bounds the download, and a pvc:// source is not downloaded: remove timeout")
)]
pub struct ModelSource {
    /// The model's location: `s3://bucket/key` (one file), `s3://bucket/prefix/` (every file
    /// under the prefix), `https://host/path` (one file; .tar, .tar.gz and .zip archives are
    /// unpacked) or `pvc://claim/path` (a PersistentVolumeClaim in this namespace that already
    /// holds the model, used as it is).
    #[schemars(length(min = 6, max = 2048))]
    #[x_kube(
        validation = Rule::new("self.startsWith('s3://') || self.startsWith('https://') || self.startsWith('pvc://')").message("source.uri must start with s3://, https:// or pvc://, for example s3://models/fraud/model.onnx"),
        validation = Rule::new("!self.startsWith('s3://') || self.matches('^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$')").message("an s3:// source is s3://bucket/key: the bucket name is 3 to 63 lowercase letters, digits, '.' and '-'"),
        validation = Rule::new("!self.startsWith('https://') || isURL(self)").message("an https:// source must be a valid URL, for example https://example.com/models/model.onnx"),
        validation = Rule::new("!self.startsWith('https://') || !isURL(self) || url(self).getHostname() != ''").message("an https:// source must name a host, for example https://example.com/models/model.onnx"),
        validation = Rule::new("!self.startsWith('pvc://') || self.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/.*)?$')").message("a pvc:// source is pvc://claim-name/path/in/volume, naming a PersistentVolumeClaim in this namespace")
    )]
    pub uri: String,

    /// The SHA-256 of the file (64 hex digits). The download fails with ChecksumMismatch when the
    /// bytes differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[a-f0-9]{64}$')").message("source.sha256 must be 64 lowercase hex digits, as printed by sha256sum"))]
    pub sha256: Option<String>,

    /// How long the download may take in all, retries included, such as 10m or 1h (at most 24h;
    /// default: the platform's, 1h unless changed). A download still running then fails with
    /// DeadlineExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')").message("source.timeout must be a duration of 1s to 24h, such as 90s, 30m or 2h"))]
    pub timeout: Option<String>,

    /// A Secret in this namespace holding the S3 credentials (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, and optionally AWS_ENDPOINT_URL and AWS_REGION). Default: the
    /// project's storage Secret, berth-storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("source.secretName must be the name of a Secret (lowercase letters, digits, '-' and '.')"))]
    pub secret_name: Option<String>,
}

/// An onnx runtime (the default) keeps the platform's image unless the model opts out of auth:
/// the server in that image is what checks callers (found in review: an editor's own image, or
/// the canary's, served without any check while the status said oidc).
const ONNX_IMAGE_RULE: &str = "(has(self.auth) && has(self.auth.mode) && self.auth.mode == 'none') || ((!has(self.runtime) || (has(self.runtime.name) && self.runtime.name != 'onnx') || !has(self.runtime.image)) && (!has(self.canary) || !has(self.canary.runtime) || (has(self.canary.runtime.name) && self.canary.runtime.name != 'onnx') || !has(self.canary.runtime.image)))";

/// An onnx runtime's arguments are limited to its tuning flags: the server's addresses and auth
/// flags are Berth's (found in review: `--oidc-jwks-url` pointed the check at the tenant's own
/// keys; `proxy` would have turned the server into a proxy).
const ONNX_ARGS_RULE: &str = "(!has(self.runtime) || (has(self.runtime.name) && self.runtime.name != 'onnx') || !has(self.runtime.args) || self.runtime.args.all(a, a.matches('^--(inference-threads|max-queued-requests|request-body-timeout-secs|max-request-bytes|memory-budget-bytes|shutdown-timeout-secs)=[0-9]+$'))) && (!has(self.canary) || !has(self.canary.runtime) || (has(self.canary.runtime.name) && self.canary.runtime.name != 'onnx') || !has(self.canary.runtime.args) || self.canary.runtime.args.all(a, a.matches('^--(inference-threads|max-queued-requests|request-body-timeout-secs|max-request-bytes|memory-budget-bytes|shutdown-timeout-secs)=[0-9]+$')))";

/// What serves the model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.name != 'custom' || (has(self.image) && has(self.port))").message("a custom runtime needs runtime.image (the container image that serves the model) and runtime.port (the port it listens on)"),
    validation = Rule::new("self.name == 'custom' || !has(self.port)").message("runtime.port applies to custom runtimes only: the built-in runtimes listen on 8080")
)]
pub struct RuntimeSpec {
    /// onnx (Berth's ONNX server, the default), tensorflow (TensorFlow Serving), triton (NVIDIA
    /// Triton), mlserver (Seldon MLServer) or custom (your own image).
    #[serde(default)]
    pub name: RuntimeName,

    /// The container image. Required for custom; for the others it replaces the platform's
    /// default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Arguments for the container. For custom runtimes the model is in /mnt/models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    pub args: Vec<String>,

    /// The port a custom runtime listens on for HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,

    /// The HTTP path that answers 200 once a custom runtime is ready to serve. Without it the
    /// port accepting connections counts as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("runtime.readinessPath must start with '/', such as /health"))]
    pub readiness_path: Option<String>,
}

/// The runtimes Berth knows.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum RuntimeName {
    /// Berth's ONNX server (Open Inference Protocol v2).
    #[default]
    Onnx,
    /// TensorFlow Serving (a SavedModel directory).
    Tensorflow,
    /// NVIDIA Triton Inference Server (a model repository).
    Triton,
    /// Seldon MLServer.
    Mlserver,
    /// Your own image, arguments and port.
    Custom,
}

impl RuntimeName {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeName::Onnx => "onnx",
            RuntimeName::Tensorflow => "tensorflow",
            RuntimeName::Triton => "triton",
            RuntimeName::Mlserver => "mlserver",
            RuntimeName::Custom => "custom",
        }
    }
}

/// Replicas that follow CPU use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct Autoscaling {
    /// The fewest replicas (1 to 100; default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// The most replicas (1 to 100).
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// The average CPU use, in percent of the CPU request, that the autoscaler aims for (1 to
    /// 100; default 80).
    #[serde(default = "eighty")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: i32,
}

fn one() -> i32 {
    1
}
fn eighty() -> i32 {
    80
}

/// Resources of each replica.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelResources {
    /// What each replica is guaranteed, such as cpu: "1" and memory: 2Gi.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every resources.requests value must be a quantity, such as 500m or 2Gi"))]
    pub requests: ResourceList,
    /// The most each replica may use, such as memory: 4Gi.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every resources.limits value must be a quantity, such as 2 or 4Gi"))]
    pub limits: ResourceList,
    /// NVIDIA GPUs for each replica (0 to 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub gpus: Option<i32>,
}

/// The volume each version of the model is downloaded into.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// The volume's size, such as 20Gi (default: the platform's, 10Gi unless changed). Leave
    /// room for archives, which are unpacked beside themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.size must be a positive quantity, such as 10Gi"))]
    pub size: Option<String>,
    /// The StorageClass of the volume (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// How the model is reached.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.hostname) || self.mode != 'cluster'").message("expose.hostname applies to gateway and istio exposure only; a cluster model is reached at its Service"))]
pub struct ExposeSpec {
    /// cluster (a Service, the default), gateway (a Gateway API HTTPRoute on the platform's
    /// Gateway) or istio (an Istio VirtualService on the platform's Istio gateway).
    #[serde(default)]
    pub mode: ExposeMode,
    /// The host name clients use, under the platform's model domain, such as
    /// fraud.models.example.com. Default: <model>.<namespace>.<the platform's model domain>. A
    /// host outside the domain, or one another model holds already, is not exposed (Exposed is
    /// False with the reason); the first model to claim a host keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("expose.hostname must be a DNS name, such as fraud.models.example.com"),
        validation = Rule::new("self.split('.').all(l, size(l) <= 63)").message("expose.hostname: each dot-separated part must be at most 63 characters"),
        validation = Rule::new("!self.split('.').exists(l, l.startsWith('xn--'))").message("expose.hostname: punycode (xn--) labels are not accepted"),
        validation = Rule::new("size(self.split('.')) >= 2").message("expose.hostname must be a full name under the platform's model domain, such as fraud.models.example.com")
    )]
    pub hostname: Option<String>,
}

/// How the model is reached.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum ExposeMode {
    /// A ClusterIP Service only.
    #[default]
    Cluster,
    /// A Gateway API HTTPRoute attached to the platform's Gateway.
    Gateway,
    /// An Istio VirtualService bound to the platform's Istio gateway.
    Istio,
}

/// Where an MLModel is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing started yet.
    Pending,
    /// The first version is downloading.
    Downloading,
    /// The first version is downloaded and its replicas are starting.
    Deploying,
    /// The active version serves requests.
    Ready,
    /// A new version is downloading or rolling out while the active one keeps serving.
    Updating,
    /// No version serves requests; see lastFailure.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Downloading => "Downloading",
            Phase::Deploying => "Deploying",
            Phase::Ready => "Ready",
            Phase::Updating => "Updating",
            Phase::Failed => "Failed",
        }
    }
}

/// The most recent failure of a version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// Why, in one word: SourceNotFound, AccessDenied, ChecksumMismatch, DeadlineExceeded,
    /// NetworkError, UnpackFailed, DownloadFailed, Unschedulable, ImagePullFailed, CrashLoop or
    /// RolloutTimeout.
    pub reason: String,
    /// What happened and what to do about it.
    pub message: String,
    /// The download's exit code, when the download failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When Berth saw the failure.
    pub time: Time,
    /// Download (the download Job failed), Rollout (the replicas did not come up) or Canary (the
    /// canary version failed and was rolled back).
    pub stage: String,
    /// The version that failed.
    pub version: String,
    /// The generation of the spec that failed. Berth tries that version again only once the
    /// spec changes.
    pub generation: i64,
}

/// What Berth observed about a model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MLModelStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Downloading, Deploying, Ready, Updating or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Where clients send requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How callers are checked, as deployed: the mode, and the issuer and audiences a token must
    /// carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
    /// The version serving requests: a hash of the source and the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,
    /// The host name this model holds on the platform's gateway, once it is exposed there. Another
    /// model asking for it later is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The version the spec asks for. It differs from activeVersion while an update rolls out,
    /// or after an update failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// The source of the active version, kept so that it serves on while the spec asks for
    /// another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_source: Option<ModelSource>,
    /// The runtime of the active version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_runtime: Option<RuntimeSpec>,
    /// Replicas ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The most recent failure, kept until a version becomes active after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
    /// The canary, while spec.canary asks for one: its version, readiness and share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Downloaded, Available, Ready, Degraded, Exposed and, with a canary, CanaryReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Where a canary is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The canary's version: a hash of its source, runtime and volume.
    pub version: String,
    /// Canary replicas asked for.
    #[serde(default)]
    pub replicas: i32,
    /// Canary replicas ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The share of requests the canary takes as deployed, in percent (the replica ratio with
    /// cluster exposure, the route's weight otherwise); 0 while it is not serving.
    #[serde(default)]
    pub percent: i32,
    /// How the requests are split: replicas (behind the one Service), HTTPRoute or
    /// VirtualService.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// `<stable version> <percent>% / <canary version> <percent>%`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub split: String,
    /// Why the canary was rolled back, when it failed. Berth tries it again only once the spec
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The platform's model settings (`PlatformSettings.spec.models`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSettings {
    /// The image of the download Job (berth-model-fetch).
    #[serde(default = "default_fetch_image")]
    pub fetch_image: String,
    /// The default image of each built-in runtime.
    #[serde(default)]
    pub runtime_images: RuntimeImages,
    /// How long a download may take when the model sets no source.timeout, in seconds.
    #[serde(default = "default_download_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub download_timeout_seconds: i64,
    /// How often a download Job retries after a failure that may pass (network, disk).
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 10))]
    pub download_backoff_limit: i32,
    /// How long a new version's replicas may take to become ready before the rollout counts as
    /// failed and the previous version keeps serving, in seconds.
    #[serde(default = "default_rollout_deadline")]
    #[schemars(range(min = 10, max = 7200))]
    pub rollout_deadline_seconds: i32,
    /// How many restarts of a replica count as a crash loop.
    #[serde(default = "default_crash_restarts")]
    #[schemars(range(min = 1, max = 100))]
    pub crash_loop_restarts: i32,
    /// The volume size of a model that sets none.
    #[serde(default = "default_storage_size")]
    #[schemars(length(max = 32))]
    pub default_storage_size: String,
    /// The access mode of model volumes: ReadWriteOnce suits one replica or one node;
    /// ReadWriteMany lets replicas on many nodes share a version's volume.
    #[serde(default = "default_access_mode")]
    pub volume_access_mode: String,
    /// The Gateway that exposure mode gateway attaches HTTPRoutes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRef>,
    /// The Istio gateway (namespace/name) that exposure mode istio binds VirtualServices to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_gateway: Option<String>,
    /// The domain every exposed model's host name lives under: by default
    /// <model>.<namespace>.<domain>. A model may name its own host only under it. Without a domain,
    /// no model is exposed on the gateway under a host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$') && self.split('.').all(l, size(l) <= 63)").message("models.domain must be a DNS name, such as models.example.com"))]
    pub domain: Option<String>,
    /// How model servers check tokens.
    #[serde(default)]
    pub auth: ModelAuthSettings,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            fetch_image: default_fetch_image(),
            runtime_images: RuntimeImages::default(),
            download_timeout_seconds: default_download_timeout(),
            download_backoff_limit: default_backoff_limit(),
            rollout_deadline_seconds: default_rollout_deadline(),
            crash_loop_restarts: default_crash_restarts(),
            default_storage_size: default_storage_size(),
            volume_access_mode: default_access_mode(),
            gateway: None,
            istio_gateway: None,
            domain: None,
            auth: ModelAuthSettings::default(),
        }
    }
}

/// The registry part of the references of Berth's own images. `cargo xtask images` builds them
/// here and a node loads them from their archives; they are never pulled.
pub const IMAGE_REGISTRY: &str = "berth.dev";

/// The tag of Berth's own images: the version of Berth's crates.
pub const IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");

/// `berth.dev/<name>:<version>`, the reference of Berth's own image `name` (`model-fetch`,
/// `model-server`, `operator`, `pause`). The built-in defaults name images by this tag only: a
/// digest cannot be compiled into the binaries the images hold. `cargo xtask images` writes the
/// same references with their digests (`target/images/settings.yaml`), and the platform applies
/// that over these defaults (docs/development.md, "Images").
pub fn berth_image(name: &str) -> String {
    format!("{IMAGE_REGISTRY}/{name}:{IMAGE_TAG}")
}

fn default_fetch_image() -> String {
    berth_image("model-fetch")
}
fn default_download_timeout() -> i64 {
    3600
}
fn default_backoff_limit() -> i32 {
    2
}
fn default_rollout_deadline() -> i32 {
    600
}
fn default_crash_restarts() -> i32 {
    3
}
fn default_storage_size() -> String {
    "10Gi".to_owned()
}
fn default_access_mode() -> String {
    "ReadWriteOnce".to_owned()
}

/// The default image of each built-in runtime.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeImages {
    /// Berth's ONNX server.
    #[serde(default = "default_onnx_image")]
    pub onnx: String,
    /// TensorFlow Serving.
    #[serde(default = "default_tensorflow_image")]
    pub tensorflow: String,
    /// NVIDIA Triton.
    #[serde(default = "default_triton_image")]
    pub triton: String,
    /// Seldon MLServer.
    #[serde(default = "default_mlserver_image")]
    pub mlserver: String,
}

impl Default for RuntimeImages {
    fn default() -> Self {
        Self {
            onnx: default_onnx_image(),
            tensorflow: default_tensorflow_image(),
            triton: default_triton_image(),
            mlserver: default_mlserver_image(),
        }
    }
}

fn default_onnx_image() -> String {
    berth_image("model-server")
}
fn default_tensorflow_image() -> String {
    "tensorflow/serving:2.18.0".to_owned()
}
fn default_triton_image() -> String {
    "nvcr.io/nvidia/tritonserver:25.01-py3".to_owned()
}
fn default_mlserver_image() -> String {
    "seldonio/mlserver:1.6.1".to_owned()
}

/// A Gateway API Gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRef {
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace.
    pub namespace: String,
    /// The listener to attach to, if not all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}
