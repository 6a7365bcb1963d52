//! `Notebook`: a Jupyter workspace in a project's namespace that keeps its state on a volume of its
//! own, stops when idle, and is reached by the project's members only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::project::{ResourceList, resource_list_schema};

/// The annotation the controller puts on a Notebook when it stops it for being idle: the time, in
/// RFC 3339. It goes with `spec.stopped: true` in one write, and is removed once the notebook is
/// started again.
pub const CULLED_AT_ANNOTATION: &str = "berth.dev/culled-at";

/// The idle timeout of a notebook that sets none.
pub const DEFAULT_IDLE_TIMEOUT: &str = "1h";

/// The size of a home volume when the notebook sets none.
pub const DEFAULT_HOME_SIZE: &str = "10Gi";

/// A Jupyter workspace: JupyterLab in a pod of the project's namespace, with HOME on a volume that
/// outlives stops, restarts and the Notebook itself.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Notebook",
    plural = "notebooks",
    singular = "notebook",
    shortname = "nb",
    namespaced,
    status = "NotebookStatus",
    doc = "A Jupyter workspace in the project's namespace: JupyterLab with HOME on a volume of its own that survives stops, restarts and the Notebook's deletion; stopped when idle; reachable by the project's members only (kubectl port-forward).",
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40").message("a Notebook name must start with a letter and have at most 40 lowercase letters, digits and '-' (it names the notebook's StatefulSet, Service and home volume)"),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Stopped","type":"boolean","jsonPath":".spec.stopped"}"#,
    printcolumn = r#"{"name":"Last Activity","type":"date","jsonPath":".status.lastActivity"}"#,
    printcolumn = r#"{"name":"Template","type":"string","jsonPath":".status.template","priority":1}"#,
    printcolumn = r#"{"name":"Bundle","type":"string","jsonPath":".status.bundle","priority":1}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".status.image","priority":1}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.image) && has(self.imageId))").message("set image (an image reference, if the template allows custom images) or imageId (one of the template's images), not both"),
    validation = Rule::new("!(has(self.resources) && has(self.bundle))").message("set bundle (one of the template's resource bundles) or resources (explicit, within the template's custom maximum), not both"),
)]
pub struct NotebookSpec {
    /// The NotebookTemplate (cluster-scoped, written by platform admins; `kubectl get nbt` lists
    /// them) whose images and bundles this notebook uses. Default: the template annotated
    /// berth.dev/default-template: "true"; with none, the notebook runs without a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub template: Option<String>,

    /// The id of one of the template's images (default: the template's defaultImage). An id the
    /// template redirects runs the image it redirects to, and the status says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub image_id: Option<String>,

    /// An image reference of your own, instead of imageId: only with a template that allows
    /// custom images (allowCustomImages), or without a template. Without either: Berth's Jupyter
    /// image, berth.dev/jupyter:<Berth's version>. The image must start JupyterLab (Jupyter
    /// Server 2) on port 8888 under the base URL in NB_PREFIX, with no token, as Kubeflow's
    /// notebook images do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// The id of one of the template's resource bundles (CPU, memory, GPUs, shared memory, where
    /// the pod runs). Default: the template's defaultBundle, unless resources is set. Changing it
    /// restarts the notebook with its home volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub bundle: Option<String>,

    /// Explicit CPU, memory and GPUs (such as limits {nvidia.com/gpu: "1"}) instead of a bundle:
    /// with a template, only if it has a custom maximum, and every value within it. Without a
    /// template and without resources, the project's defaults (its LimitRange) apply. Changing
    /// them restarts the notebook with its home volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<NotebookResources>,

    /// The home volume, mounted at /home/jovyan (HOME): files, `pip install --user` packages and
    /// virtual environments live there and survive stops and restarts.
    #[serde(default)]
    pub home: HomeVolume,

    /// Environment variables for the notebook's container (at most 64). NB_PREFIX, HOME and
    /// JUPYTER_* are set by Berth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub env: Vec<NotebookEnv>,

    /// true stops the notebook (its pod goes, its home volume stays); false (the default) runs it.
    /// Berth sets it to true when it culls an idle notebook; set it to false to start it again.
    #[serde(default)]
    pub stopped: bool,

    /// How long the notebook may be idle before Berth stops it, such as 30m or 4h (10s to 168h,
    /// and within the template's idleTimeout bounds; default: the template's, else 1h). Idle means: no kernel busy, and no activity of kernels, terminals or the
    /// Jupyter API (Jupyter's own /api/status last_activity) for that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$') && duration(self) >= duration('10s') && duration(self) <= duration('168h')").message("idleTimeout must be a duration of 10s to 168h, such as 30m or 4h"))]
    pub idle_timeout: Option<String>,
}

/// CPU and memory of the notebook's container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotebookResources {
    /// What the notebook is guaranteed, such as cpu: 500m and memory: 1Gi.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every resources.requests value must be a quantity, such as 500m or 2Gi"))]
    pub requests: ResourceList,
    /// The most the notebook may use, such as memory: 4Gi.
    #[serde(default, skip_serializing_if = "ResourceList::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every resources.limits value must be a quantity, such as 2 or 4Gi"))]
    pub limits: ResourceList,
}

/// The home volume of a notebook: a PersistentVolumeClaim named `<notebook>-home`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HomeVolume {
    /// The volume's size, such as 20Gi (default 10Gi). Set when the volume is made; a larger
    /// size later is asked of the volume (if its StorageClass allows expansion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("home.size must be a positive quantity, such as 10Gi"))]
    pub size: Option<String>,
    /// The StorageClass of the volume (default: the cluster's default class). Fixed once the
    /// volume exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// One environment variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotebookEnv {
    /// The variable's name: letters, digits and '_', not starting with a digit; not NB_PREFIX,
    /// HOME or JUPYTER_*.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(
        validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')").message("an env name has letters, digits and '_' and does not start with a digit"),
        validation = Rule::new("!(self in ['NB_PREFIX', 'HOME', 'NB_PORT']) && !self.startsWith('JUPYTER_')").message("NB_PREFIX, HOME, NB_PORT and JUPYTER_* are set by Berth")
    )]
    pub name: String,
    /// Its value.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Where a notebook is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotebookPhase {
    /// Running is asked for and the container is not ready yet.
    Starting,
    /// JupyterLab answers.
    Running,
    /// Stopped is asked for and the pod is still going.
    Stopping,
    /// Stopped by its user.
    Stopped,
    /// Stopped by Berth for being idle; set spec.stopped to false to start it again.
    Culled,
    /// It will not start on its own: see the Ready condition.
    Failed,
}

impl NotebookPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            NotebookPhase::Starting => "Starting",
            NotebookPhase::Running => "Running",
            NotebookPhase::Stopping => "Stopping",
            NotebookPhase::Stopped => "Stopped",
            NotebookPhase::Culled => "Culled",
            NotebookPhase::Failed => "Failed",
        }
    }
}

/// What Berth observed about a notebook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotebookStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Starting, Running, Stopping, Stopped, Culled or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NotebookPhase>,
    /// The path JupyterLab answers under: /notebook/<namespace>/<name>/. Reach it with
    /// `kubectl port-forward -n <namespace> svc/<name> 8888:http` and
    /// http://127.0.0.1:8888/notebook/<namespace>/<name>/lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The image the notebook runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The NotebookTemplate in use (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The template's image id in use, after redirects (absent: a custom image or no template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The template's bundle in use (absent: explicit resources or no template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// The last activity Jupyter reported (kernels, terminals, API), to the second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Time>,
    /// When Berth last stopped the notebook for being idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culled_at: Option<Time>,
    /// Ready: True when JupyterLab answers; False with Starting, Stopped, Culled, Unschedulable,
    /// ImagePullFailed, ConfigError, CrashLoop, QuotaExceeded or a template reason
    /// (TemplateNotFound, TemplateNotAllowed, UnknownImage, UnknownBundle, ...) and what to do.
    /// ImageCurrent: False with Redirected (the template's redirect message) or Deprecated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
