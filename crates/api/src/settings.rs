//! `PlatformSettings`: the one place platform admins configure Berth. A singleton named `default`;
//! without it, the defaults below apply. A change reconciles every Project.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::project::{DeletionPolicy, LimitRangeSpec, ResourceList, resource_list_schema};
use crate::providers::{IdentitySettings, RegistrySettings, StorageSettings};

/// The name of the one PlatformSettings object Berth reads.
pub const SETTINGS_NAME: &str = "default";

/// How Berth provisions every Project on this platform.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "PlatformSettings",
    plural = "platformsettings",
    singular = "platformsettings",
    shortname = "bps",
    doc = "Platform-wide settings for Berth. A singleton: Berth reads the object named 'default'.",
    validation = Rule::new("self.metadata.name == 'default'").message("PlatformSettings is a singleton: name it 'default'")
)]
#[serde(rename_all = "camelCase")]
pub struct PlatformSettingsSpec {
    /// Default and maximum quota for projects.
    #[serde(default)]
    pub quota: QuotaSettings,
    /// Container defaults for every project's LimitRange, so pods without requests are admitted.
    #[serde(default = "default_limit_range")]
    pub limit_range: LimitRangeSpec,
    /// Namespaces of the ingress gateways, allowed to reach every project's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 63)))]
    pub gateway_namespaces: Vec<String>,
    /// Namespaces of the monitoring stack, allowed to reach every project's pods to scrape them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 63)))]
    pub monitoring_namespaces: Vec<String>,
    /// Istio integration.
    #[serde(default)]
    pub istio: IstioSettings,
    /// Kubeflow compatibility: Kubeflow's namespace labels and its default-editor and
    /// default-viewer service accounts in every project.
    #[serde(default)]
    pub kubeflow: KubeflowSettings,
    /// The deletion policy of projects that do not set one.
    #[serde(default)]
    pub default_deletion_policy: DeletionPolicy,
    /// The object store every Project gets a bucket and an access key in. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSettings>,
    /// The OIDC provider every Project gets a confidential client and a group in. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySettings>,
    /// The image registry every Project gets a project and a robot in. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistrySettings>,
    /// How MLModels are downloaded, served and exposed.
    #[serde(default)]
    pub models: crate::mlmodel::ModelSettings,
    /// Namespaces reserved for the platform.
    #[serde(default)]
    pub namespaces: crate::namespaces::NamespaceSettings,
}

/// Default and maximum quota.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.maximum) || !has(self.default) || self.maximum.all(k, !(k in self.default) || quantity(string(self.default[k])).compareTo(quantity(string(self.maximum[k]))) <= 0)").message("quota.default must not exceed quota.maximum"))]
pub struct QuotaSettings {
    /// The quota of a project that asks for none.
    #[serde(default = "default_quota")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every quota value must be a quantity"))]
    pub default: ResourceList,
    /// The most a project may ask for without a platform admin.
    #[serde(default)]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every quota value must be a quantity"))]
    pub maximum: ResourceList,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            default: default_quota(),
            maximum: ResourceList::new(),
        }
    }
}

fn quantities(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity((*v).to_owned()),
            )
        })
        .collect()
}

fn default_quota() -> ResourceList {
    quantities(&[
        ("requests.cpu", "8"),
        ("requests.memory", "32Gi"),
        ("limits.cpu", "16"),
        ("limits.memory", "64Gi"),
        ("persistentvolumeclaims", "20"),
        ("requests.storage", "500Gi"),
        ("pods", "100"),
    ])
}

fn default_limit_range() -> LimitRangeSpec {
    LimitRangeSpec {
        default_request: quantities(&[("cpu", "100m"), ("memory", "256Mi")]),
        default: quantities(&[("cpu", "1"), ("memory", "1Gi")]),
    }
}

/// The settings in force when no PlatformSettings object exists, and for every field one leaves out.
impl Default for PlatformSettingsSpec {
    fn default() -> Self {
        Self {
            quota: QuotaSettings::default(),
            limit_range: default_limit_range(),
            gateway_namespaces: Vec::new(),
            monitoring_namespaces: Vec::new(),
            istio: IstioSettings::default(),
            kubeflow: KubeflowSettings::default(),
            default_deletion_policy: DeletionPolicy::Retain,
            storage: None,
            identity: None,
            registry: None,
            models: crate::mlmodel::ModelSettings::default(),
            namespaces: Default::default(),
        }
    }
}

/// Istio integration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioSettings {
    /// Label namespaces for Istio and create an AuthorizationPolicy that lets members in.
    #[serde(default)]
    pub enabled: bool,
    /// sidecar (istio-injection=enabled) or ambient (istio.io/dataplane-mode=ambient).
    #[serde(default)]
    pub mode: IstioMode,
    /// The request header the gateway puts the authenticated user id in.
    #[serde(default = "default_user_id_header")]
    pub user_id_header: String,
    /// A prefix the gateway puts before the user id in that header.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id_prefix: String,
}

impl Default for IstioSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: IstioMode::default(),
            user_id_header: default_user_id_header(),
            user_id_prefix: String::new(),
        }
    }
}

fn default_user_id_header() -> String {
    "kubeflow-userid".to_owned()
}

/// How workloads join the mesh.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum IstioMode {
    #[default]
    Sidecar,
    Ambient,
}

/// Kubeflow compatibility.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KubeflowSettings {
    /// Add Kubeflow's profile labels to namespaces and its default-editor and default-viewer
    /// service accounts to projects.
    #[serde(default)]
    pub enabled: bool,
}
