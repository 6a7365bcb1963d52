//! `PlatformSettings`: the one place platform admins configure Berth. A singleton named `default`;
//! without it, the defaults below apply. A change reconciles every Project.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::members::EmailUserNames;
use crate::project::{DeletionPolicy, LimitRangeSpec, ResourceList, resource_list_schema};
use crate::providers::{IdentitySettings, RegistrySettings, StorageSettings};
use crate::quota::{canonical_cel, names_rule, once_rule};

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
#[x_kube(validation = Rule::new("!has(self.quota) || !has(self.quota.bucketMaximum) || !has(self.storage) || !has(self.storage.defaultQuota) || quantity(string(self.storage.defaultQuota)).compareTo(quantity(string(self.quota.bucketMaximum))) <= 0").message("storage.defaultQuota must not exceed quota.bucketMaximum"))]
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
    /// The namespace labels and annotations a Project may set without a platform admin. Empty by
    /// default: every key in `spec.namespaceLabels` and `spec.namespaceAnnotations` needs one.
    #[serde(default)]
    pub tenant_namespace_metadata: TenantNamespaceMetadata,
    /// Where projects may open egress without a platform admin, and where they never may.
    #[serde(default)]
    pub tenant_egress: TenantEgress,
    /// How the cluster's identity provider spells user names that are e-mail addresses:
    /// lowerCase (the default) or asWritten. Member RoleBindings use that form, and listings
    /// that differ only in case are one person.
    #[serde(default)]
    pub email_user_names: EmailUserNames,
    /// Namespaces reserved for the platform.
    #[serde(default)]
    pub namespaces: crate::namespaces::NamespaceSettings,
}

/// The namespace labels and annotations tenants may set through their Project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantNamespaceMetadata {
    /// Label key prefixes a Project may set without a platform admin, such as
    /// `team.example.com/` (a whole domain) or `cost-center` (that key, and keys starting with
    /// it). Labels select namespaces for policies, gateways and admission webhooks, so list only
    /// prefixes nothing on the platform selects on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub label_prefixes: Vec<String>,
    /// Annotation key prefixes a Project may set without a platform admin. Annotations steer
    /// admission plugins (node selectors, tolerations) and meshes, so list only harmless ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub annotation_prefixes: Vec<String>,
}

/// Where projects may open egress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantEgress {
    /// Address ranges (CIDR) a Project's `spec.network.allowEgressTo`, and tenants' own
    /// NetworkPolicies, may open egress to without a platform admin. A range inside one of
    /// these is allowed; anything else needs a platform admin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("tenantEgress.allowedCIDRs must list CIDRs, such as 203.0.113.0/24"))]
    #[serde(rename = "allowedCIDRs")]
    pub allowed_cidrs: Vec<String>,
    /// Address ranges no project reaches through `allowEgressTo` or its own NetworkPolicies,
    /// even inside an allowed range, in addition to link-local (169.254.0.0/16, fe80::/10) and
    /// the API server's addresses, which are always blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("tenantEgress.blockedCIDRs must list CIDRs, such as 10.0.0.1/32"))]
    #[serde(rename = "blockedCIDRs")]
    pub blocked_cidrs: Vec<String>,
}

/// Default and maximum quota. Resources compare by what they are, not how they are spelled
/// (`cpu` is `requests.cpu`; see [`crate::quota::canonical`]).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(default_within_maximum()).message("quota.default must not exceed quota.maximum for any resource, in any spelling (cpu is requests.cpu)"),
    validation = Rule::new(maximum_has_defaults()).message("every resource quota.maximum names needs a quota.default too (cpu and requests.cpu count as one), or a project that asks for nothing has no limit on it")
)]
pub struct QuotaSettings {
    /// The quota of a project that asks for none. It must name every resource the maximum names.
    #[serde(default = "default_quota")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(
        validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every quota value must be a quantity"),
        validation = Rule::new(names_rule()).message("every quota.default key must be a resource a ResourceQuota knows, such as requests.cpu, limits.memory, pods, requests.nvidia.com/gpu or count/secrets"),
        validation = Rule::new(once_rule()).message("quota.default names a resource twice in two spellings (such as cpu and requests.cpu); give it once")
    )]
    pub default: ResourceList,
    /// The most a project may ask for without a platform admin, for each resource in any of its
    /// spellings.
    #[serde(default)]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(
        validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every quota value must be a quantity"),
        validation = Rule::new(names_rule()).message("every quota.maximum key must be a resource a ResourceQuota knows, such as requests.cpu, limits.memory, pods, requests.nvidia.com/gpu or count/secrets"),
        validation = Rule::new(once_rule()).message("quota.maximum names a resource twice in two spellings (such as cpu and requests.cpu); give it once")
    )]
    pub maximum: ResourceList,
    /// The largest bucket size (`spec.storage.quota`) a Project may ask for without a platform
    /// admin. Unset: `storage.defaultQuota` is the largest; with neither, buckets have no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("quota.bucketMaximum must be a positive size, such as 1Ti"))]
    pub bucket_maximum: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
}

fn default_within_maximum() -> String {
    format!(
        "!has(self.maximum) || !has(self.default) || self.maximum.all(m, self.default.all(d, {} != {} || quantity(string(self.default[d])).compareTo(quantity(string(self.maximum[m]))) <= 0))",
        canonical_cel("d"),
        canonical_cel("m")
    )
}

fn maximum_has_defaults() -> String {
    format!(
        "!has(self.maximum) || self.maximum.all(m, has(self.default) && self.default.exists(d, {} == {}))",
        canonical_cel("d"),
        canonical_cel("m")
    )
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            default: default_quota(),
            maximum: ResourceList::new(),
            bucket_maximum: None,
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

/// The built-in default quota: compute, storage, no GPUs, and object counts.
fn default_quota() -> ResourceList {
    quantities(&[
        ("requests.cpu", "8"),
        ("requests.memory", "32Gi"),
        ("limits.cpu", "16"),
        ("limits.memory", "64Gi"),
        ("requests.nvidia.com/gpu", "0"),
        ("persistentvolumeclaims", "20"),
        ("requests.storage", "500Gi"),
        ("pods", "100"),
        ("services", "50"),
        ("secrets", "200"),
        ("configmaps", "200"),
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
            tenant_namespace_metadata: TenantNamespaceMetadata::default(),
            tenant_egress: TenantEgress::default(),
            email_user_names: EmailUserNames::default(),
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
