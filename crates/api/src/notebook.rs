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

    /// Extra data volumes (at most 16), each mounted at its own path: an existing
    /// PersistentVolumeClaim of the notebook's namespace (`existingClaim`), or a new one Berth
    /// makes, `<notebook>-<volume name>`, which like the home volume outlives the Notebook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("each volume needs a name of its own"),
        validation = Rule::new("self.all(a, self.exists_one(b, b.mountPath == a.mountPath))").message("each volume needs a mountPath of its own")
    )]
    pub volumes: Vec<DataVolume>,

    /// How Berth tells whether the notebook is idle. Default: Jupyter's own activity API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_probe: Option<ActivityProbe>,
}

/// The label Berth puts on a data volume it made for a notebook (with `berth.dev/notebook`): the
/// volume's name in `spec.volumes`. A notebook's home volume does not carry it.
pub const VOLUME_LABEL: &str = "berth.dev/notebook-volume";

/// The paths a data volume may not be mounted at, nor under: the system's own directories.
pub const FORBIDDEN_MOUNT_PATHS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var/run", "/var/lib", "/tmp",
];

/// An extra data volume of a notebook: an existing PersistentVolumeClaim of the notebook's
/// namespace, or a new one Berth makes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.existingClaim) != has(self.new)").message("a volume is either existingClaim (a PersistentVolumeClaim of the namespace) or new (one Berth makes), exactly one of them"))]
pub struct DataVolume {
    /// The volume's name: a DNS label of at most 22 characters, not `home` nor ending in `-home`.
    /// A new volume's PersistentVolumeClaim is `<notebook>-<name>`.
    #[schemars(length(min = 1, max = 22))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("a volume name starts with a letter and has lowercase letters, digits and '-' (at most 22)"),
        validation = Rule::new("self != 'home' && !self.endsWith('-home')").message("'home' and names ending in '-home' are kept for home volumes")
    )]
    pub name: String,
    /// Where the volume appears in the container: an absolute path such as /data or
    /// /home/jovyan/datasets; not /home/jovyan itself (the home volume), /home, nor the system's
    /// directories (/dev, /proc, /sys, /etc, /usr, /bin, /sbin, /lib*, /boot, /root, /run, /tmp,
    /// /var/run, /var/lib) or anything under them.
    #[schemars(length(min = 2, max = 256))]
    #[x_kube(
        validation = Rule::new("self.matches('^(/[A-Za-z0-9._-]+)+$') && !self.matches('(^|/)[.][.]?(/|$)')").message("mountPath is an absolute path of letters, digits, '.', '_' and '-', such as /data, with no '.' or '..' part and no trailing '/'"),
        validation = Rule::new("self != '/home/jovyan' && self != '/home'").message("mountPath /home/jovyan is the home volume's (and /home holds it); mount data volumes elsewhere, such as /data or /home/jovyan/data"),
        validation = Rule::new("!['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/root', '/run', '/sbin', '/sys', '/usr', '/var/run', '/var/lib', '/tmp'].exists(p, self == p || self.startsWith(p + '/'))").message("mountPath may not be a system directory (/bin, /boot, /dev, /etc, /lib*, /proc, /root, /run, /sbin, /sys, /tmp, /usr, /var/run, /var/lib) or under one; use a path such as /data")
    )]
    pub mount_path: String,
    /// An existing PersistentVolumeClaim of the notebook's own namespace, by name. It must be Bound
    /// (or Pending, waiting for its first pod), and its access mode must allow this mount: a
    /// ReadOnlyMany claim needs readOnly: true; a ReadWriteOnce claim used by another pod and a
    /// ReadWriteOncePod claim in use are refused (Ready=False, VolumeInUse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("existingClaim is the name of a PersistentVolumeClaim in the notebook's namespace"))]
    pub existing_claim: Option<String>,
    /// A new volume Berth makes, `<notebook>-<name>`. It has no owner: it outlives the Notebook,
    /// and removing it from spec.volumes keeps it (delete it with kubectl when its data may go).
    #[serde(default, rename = "new", skip_serializing_if = "Option::is_none")]
    pub new_claim: Option<NewVolume>,
    /// true mounts the volume read-only (default false).
    #[serde(default)]
    pub read_only: bool,
}

/// A volume Berth makes for a notebook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NewVolume {
    /// The size, such as 50Gi. A larger size later is asked of the volume (if its StorageClass
    /// allows expansion).
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("new.size must be a positive quantity, such as 50Gi"))]
    pub size: String,
    /// The StorageClass (default: the cluster's default class). Fixed once the volume exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// The access modes (default [ReadWriteOnce]). ReadWriteMany lets other notebooks mount it
    /// too, where the StorageClass supports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub access_modes: Vec<AccessMode>,
}

/// A PersistentVolume access mode, as Kubernetes spells it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    /// Read-write by the pods of one node.
    ReadWriteOnce,
    /// Read-only by many nodes.
    ReadOnlyMany,
    /// Read-write by many nodes.
    ReadWriteMany,
    /// Read-write by one pod.
    ReadWriteOncePod,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }
}

/// How Berth tells whether a notebook is idle. Exactly one of the three. Shared by `Notebook` and
/// `NotebookTemplate`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.jupyter), has(self.exec), has(self.http)].filter(x, x).size() == 1").message("an activityProbe is exactly one of jupyter, exec or http"))]
pub struct ActivityProbe {
    /// Jupyter's own activity (api/status, api/kernels, api/terminals), read through the API
    /// server's pod proxy: `jupyter: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jupyter: Option<JupyterProbe>,
    /// A command run in the notebook's container that prints the last activity time (RFC 3339, or
    /// Unix seconds) on its standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    /// An HTTP GET on the container's port whose JSON answer has `lastActivity` (RFC 3339 or Unix
    /// seconds) or `lastHeartbeat` (Unix milliseconds, as code-server's /healthz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
}

/// Jupyter's activity API: no settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct JupyterProbe {}

/// A command that prints the last activity time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecProbe {
    /// The command and its arguments (no shell unless you name one), at most 16 parts.
    #[schemars(length(min = 1, max = 16))]
    pub command: Vec<String>,
    /// How long it may run, 1 to 30 seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 30))]
    pub timeout_seconds: Option<i32>,
}

/// An HTTP endpoint that answers the last activity time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// The container's port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The path, such as /healthz.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.matches('^(/[A-Za-z0-9._~-]*)+$') && !self.matches('(^|/)[.][.]?(/|$)')").message("http.path is a path such as /healthz: '/'-separated letters, digits, '.', '_', '~' and '-', with no '.' or '..' part and no query"))]
    pub path: String,
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
