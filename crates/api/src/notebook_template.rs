//! `NotebookTemplate`: what a platform admin offers data scientists for their notebooks (like
//! Kubeflow Notebooks 2.0's WorkspaceKind): the images to pick from (with deprecations and
//! redirects to newer ones), the resource bundles (CPU, memory, GPUs, shared memory, where the pod
//! may run), optional explicit resources within maxima, the idle timeout, and which projects may
//! use it. Cluster-scoped; platform admins write it, every authenticated user reads it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::notebook::{ActivityProbe, NotebookResources};
use crate::project::{ResourceList, resource_list_schema};

/// The annotation that makes a NotebookTemplate the default, with the value `"true"`: a Notebook
/// that names no template uses it. With no template so annotated, such a Notebook runs without a
/// template (Berth's Jupyter image or its own `image`, its own `resources`); with more than one,
/// such a Notebook is refused (`AmbiguousDefaultTemplate`) until an admin keeps one.
pub const DEFAULT_TEMPLATE_ANNOTATION: &str = "berth.dev/default-template";

/// What a platform admin offers for notebooks: images, resource bundles, limits, the idle timeout,
/// and which projects may use it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "NotebookTemplate",
    plural = "notebooktemplates",
    singular = "notebooktemplate",
    shortname = "nbt",
    doc = "What platform admins offer for notebooks (like Kubeflow's WorkspaceKind): the images to pick from, with deprecations and redirects; resource bundles with CPU, memory, GPUs, shared memory, tolerations, node selectors and affinity; explicit resources within maxima; the idle timeout; and which projects may use it (by their namespace's labels, which tenants cannot set). Annotate one berth.dev/default-template: \"true\" to make it the default.",
    validation = Rule::new("size(self.metadata.name) <= 63").message("a NotebookTemplate name has at most 63 characters"),
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Default Image","type":"string","jsonPath":".spec.defaultImage"}"#,
    printcolumn = r#"{"name":"Default Bundle","type":"string","jsonPath":".spec.defaultBundle"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.images.all(i, self.images.exists_one(j, j.id == i.id))").message("every images[].id must be unique within the template"),
    validation = Rule::new("self.images.exists(i, i.id == self.defaultImage)").message("defaultImage must be the id of one of the template's images"),
    validation = Rule::new("self.images.all(i, !has(i.redirect) || (i.redirect.to != i.id && self.images.exists(j, j.id == i.redirect.to)))").message("an image's redirect.to must name another image id of the same template"),
    validation = Rule::new("!has(self.bundles) || self.bundles.all(b, self.bundles.exists_one(c, c.id == b.id))").message("every bundles[].id must be unique within the template"),
    validation = Rule::new("has(self.defaultBundle) == (has(self.bundles) && size(self.bundles) > 0)").message("set defaultBundle exactly when the template has bundles"),
    validation = Rule::new("!has(self.defaultBundle) || (has(self.bundles) && self.bundles.exists(b, b.id == self.defaultBundle))").message("defaultBundle must be the id of one of the template's bundles"),
)]
pub struct NotebookTemplateSpec {
    /// The name a spawner shows, such as "JupyterLab".
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,

    /// A sentence or two a spawner shows under the name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub description: String,

    /// The images a notebook may pick by id (1 to 64).
    #[schemars(length(min = 1, max = 64))]
    pub images: Vec<TemplateImage>,

    /// The id of the image a notebook gets when it names none.
    #[schemars(length(min = 1, max = 63))]
    pub default_image: String,

    /// Whether a notebook may name an image reference of its own (spec.image) instead of an id.
    /// Default false: only the template's images run.
    #[serde(default)]
    pub allow_custom_images: bool,

    /// The resource bundles a notebook may pick by id (at most 32). Without bundles (and without
    /// `custom`), a notebook's container gets no requests or limits of its own and the project's
    /// LimitRange defaults apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub bundles: Vec<ResourceBundle>,

    /// The id of the bundle a notebook gets when it names neither a bundle nor explicit resources.
    /// Required when there are bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub default_bundle: Option<String>,

    /// Allows explicit spec.resources instead of a bundle, each value at most the maximum given
    /// here. Without it, a notebook must use a bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<CustomResources>,

    /// The idle timeout of notebooks that set none, and the bounds of one they set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<IdleTimeoutPolicy>,

    /// How Berth tells that a notebook of this template is idle: Jupyter's activity API (the
    /// default), a command in the container (`exec`) or an HTTP endpoint (`http`), for images that
    /// run another IDE. A notebook's own spec.activityProbe takes precedence. Culling is a
    /// convenience, not a limit: a user can always keep a notebook busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_probe: Option<ActivityProbe>,

    /// Which projects may use the template, by the labels of the project's namespace. Absent:
    /// every project. Select on labels tenants cannot set: `berth.dev/project` (the project's name,
    /// written by Berth), `kubernetes.io/metadata.name`, or a label a platform admin sets in the
    /// Project's spec.namespaceLabels outside the prefixes PlatformSettings lets tenants use
    /// (tenantNamespaceMetadata.labelPrefixes); admission refuses keys under those prefixes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<ProjectSelector>,
}

/// One image of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateImage {
    /// The id a notebook names in spec.imageId, such as jupyter-py311: lowercase letters, digits,
    /// '-' and '.'.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("an image id has lowercase letters, digits, '-' and '.', and starts and ends with a letter or digit"))]
    pub id: String,

    /// The image reference, such as berth.dev/jupyter:0.1.0 or registry.example.com/lab@sha256:….
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// The name a spawner shows, such as "Python 3.11, CUDA 12.4".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    pub display_name: String,

    /// Facts a spawner may show or filter on, such as python: "3.11" and cuda: "12.4".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub labels: BTreeMap<String, String>,

    /// Not offered by spawners. A notebook that names it (one already using it) still runs.
    #[serde(default)]
    pub hidden: bool,

    /// Still runs, with a warning in the notebook's status (condition ImageCurrent=False, reason
    /// Deprecated) and an Event.
    #[serde(default)]
    pub deprecated: bool,

    /// Notebooks that name this id run another image of the template instead, and their status
    /// says so with the message (condition ImageCurrent=False, reason Redirected). Redirects are
    /// followed up to the number of images; a loop is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<ImageRedirect>,
}

/// Where an image id now leads.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRedirect {
    /// The id of the image to run instead, in the same template.
    #[schemars(length(min = 1, max = 63))]
    pub to: String,
    /// What the notebook's status says, such as "Python 3.10 is retired; your notebook now runs
    /// Python 3.11".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    pub message: String,
}

/// A resource bundle: CPU, memory, GPUs, shared memory and where the pod may run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBundle {
    /// The id a notebook names in spec.bundle, such as small or gpu-1: lowercase letters, digits,
    /// '-' and '.'.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("a bundle id has lowercase letters, digits, '-' and '.', and starts and ends with a letter or digit"))]
    pub id: String,

    /// The name a spawner shows, such as "2 CPUs, 8 GiB, 1 GPU".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    pub display_name: String,

    /// CPU and memory requests and limits of the notebook's container, such as requests
    /// {cpu: "2", memory: 8Gi}, limits {memory: 8Gi}. GPUs go in `gpu`.
    #[serde(default)]
    pub resources: NotebookResources,

    /// GPUs of the container, set as both request and limit (Kubernetes counts extended resources
    /// as whole devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,

    /// The size of /dev/shm (an emptyDir of medium Memory, counted in the container's memory),
    /// such as 1Gi; PyTorch's data loaders need more than the 64 MiB default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("sharedMemory must be a positive quantity, such as 1Gi"))]
    pub shared_memory: Option<String>,

    /// Tolerations of the pod, such as one for the GPU nodes' taint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,

    /// Node labels the pod's node must have, such as nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub node_selector: BTreeMap<String, String>,

    /// Affinity of the pod, as in a PodSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// A number of GPUs of one resource.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// The extended resource the device plugin advertises: `<vendor domain>/<name>`, such as
    /// nvidia.com/gpu, amd.com/gpu, gpu.intel.com/i915 or nvidia.com/mig-1g.10gb.
    #[schemars(length(min = 3, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\\\.)+[a-z]{2,}/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$') && !self.split('/')[0].endsWith('kubernetes.io') && !self.split('/')[0].endsWith('k8s.io')").message("gpu.resource must be a device plugin's extended resource, <vendor domain>/<name>, such as nvidia.com/gpu or amd.com/gpu"))]
    pub resource: String,
    /// How many devices (1 to 64).
    #[schemars(range(min = 1, max = 64))]
    pub count: i32,
}

/// Explicit resources a notebook may ask for instead of a bundle.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CustomResources {
    /// The most a notebook may ask, request or limit, per resource, such as cpu: "8",
    /// memory: 64Gi, nvidia.com/gpu: "2". A resource not listed may not be asked for.
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every custom.maximum value must be a quantity, such as 8 or 64Gi"))]
    pub maximum: ResourceList,
}

/// The idle timeout of a template's notebooks.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(!has(self.minimum) || !has(self.maximum) || duration(self.minimum) <= duration(self.maximum)) && (!has(self.defaultTimeout) || ((!has(self.minimum) || duration(self.minimum) <= duration(self.defaultTimeout)) && (!has(self.maximum) || duration(self.defaultTimeout) <= duration(self.maximum))))").message("idleTimeout needs minimum <= defaultTimeout <= maximum"))]
pub struct IdleTimeoutPolicy {
    /// The idle timeout of a notebook that sets none, such as 2h (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('168h')").message("idleTimeout.defaultTimeout must be a duration of 10s to 168h, such as 2h"))]
    pub default_timeout: Option<String>,
    /// The shortest idle timeout a notebook may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('168h')").message("idleTimeout.minimum must be a duration of 10s to 168h, such as 10m"))]
    pub minimum: Option<String>,
    /// The longest idle timeout a notebook may set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('168h')").message("idleTimeout.maximum must be a duration of 10s to 168h, such as 24h"))]
    pub maximum: Option<String>,
}

/// A label selector over the labels of a project's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSelector {
    /// Labels the namespace must have, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on the namespace's labels, as in a Kubernetes label selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One requirement of a label selector.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)").message("In and NotIn need values; Exists and DoesNotExist take none"))]
pub struct SelectorRequirement {
    /// The label's key.
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: SelectorOperator,
    /// The values for In and NotIn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub values: Vec<String>,
}

/// How a requirement compares a label.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl ProjectSelector {
    /// Whether a namespace with `labels` is selected (every label and every requirement holds).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// Every label key the selector reads.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.match_labels
            .keys()
            .map(String::as_str)
            .chain(self.match_expressions.iter().map(|r| r.key.as_str()))
    }
}
