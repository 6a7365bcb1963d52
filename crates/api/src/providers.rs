//! What a Project gets outside the cluster: the platform's provider settings, each Project's
//! options, and what the status reports. The admin credentials are never here: the settings name
//! a Secret in the operator's namespace, and only the operator reads it.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The Secret a Project's storage credentials are written to, in its namespace.
pub const STORAGE_SECRET: &str = "berth-storage";
/// The Secret a Project's OIDC client is written to, in its namespace.
pub const IDENTITY_SECRET: &str = "berth-oidc";
/// The `kubernetes.io/dockerconfigjson` Secret of a Project's registry robot, in its namespace.
pub const REGISTRY_SECRET: &str = "berth-registry";

/// Set it on a Project (any new value, such as a date) to rotate its storage access key.
pub const ROTATE_STORAGE_ANNOTATION: &str = "berth.dev/rotate-storage-key";
/// Set it on a Project (any new value) to rotate its OIDC client secret.
pub const ROTATE_IDENTITY_ANNOTATION: &str = "berth.dev/rotate-oidc-secret";
/// Set it on a Project (any new value) to rotate its registry robot's secret.
pub const ROTATE_REGISTRY_ANNOTATION: &str = "berth.dev/rotate-registry-robot";

/// A Secret in the operator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdminSecretRef {
    /// The Secret's name, in the operator's namespace (berth-system).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The object store every Project gets a bucket in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider == 'aws' || size(self.endpoint) > 0").message("storage.endpoint is required for garage and minio: the S3 URL clients use, such as http://garage.storage:3900"),
    validation = Rule::new("self.provider != 'garage' || size(self.adminEndpoint) > 0").message("storage.adminEndpoint is required for garage: its admin API URL, such as http://garage.storage:3903")
)]
pub struct StorageSettings {
    /// garage, minio or aws.
    pub provider: StorageProvider,
    /// The S3 endpoint the projects' clients use, written to AWS_ENDPOINT_URL. Empty for aws.
    #[serde(default)]
    #[schemars(length(max = 2048))]
    pub endpoint: String,
    /// Garage's admin API URL. For minio the admin API is at `endpoint`; unused for aws.
    #[serde(default)]
    #[schemars(length(max = 2048))]
    pub admin_endpoint: String,
    /// The region clients sign with, written to AWS_REGION and AWS_DEFAULT_REGION.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// The Secret with the admin credentials: key `adminToken` for garage; keys `accessKeyId` and
    /// `secretAccessKey` for minio and aws.
    pub admin_secret_ref: AdminSecretRef,
    /// The bucket name: `{project}` and `{namespace}` are replaced; the result must be a valid
    /// bucket name (3 to 63 lowercase letters, digits, '-' and '.', not like an IP address, not
    /// starting with xn-- or sthree-, not ending with -s3alias or --ol-s3). A project keeps the
    /// bucket name it got first: changing the template affects new projects only.
    #[serde(default = "default_bucket_template")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9.{}-]+$')").message("storage.bucketTemplate may hold lowercase letters, digits, '-', '.' and the placeholders {project} and {namespace}"))]
    pub bucket_template: String,
    /// The size quota of a bucket whose Project asks for none, where the backend has quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_quota: Option<Quantity>,
    /// Where the object store runs, so that every project's pods (model downloads, notebooks)
    /// may reach it through the default-deny network isolation.
    #[serde(default, skip_serializing_if = "EgressPeers::is_empty")]
    pub egress_to: EgressPeers,
}

/// Where a platform service runs, for the NetworkPolicy that lets project pods reach it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EgressPeers {
    /// Namespaces the service runs in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("egressTo.namespaces must list namespace names (DNS labels)"))]
    pub namespaces: Vec<String>,
    /// Address ranges the service is reached at, in CIDR notation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("egressTo.cidrs must list CIDRs, such as 10.20.0.0/16"))]
    pub cidrs: Vec<String>,
    /// The TCP ports the service listens on (default: every port). Name them: a range shared
    /// with other services (one address for several, as on a single node) then opens this
    /// service's ports only, and not, say, the object store to a project that has no bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

impl EgressPeers {
    /// Whether no peer is named (the ports alone open nothing).
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.cidrs.is_empty()
    }
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_bucket_template() -> String {
    "{project}".to_owned()
}

/// An object store Berth provisions in.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StorageProvider {
    Garage,
    Minio,
    Aws,
}

impl StorageProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageProvider::Garage => "garage",
            StorageProvider::Minio => "minio",
            StorageProvider::Aws => "aws",
        }
    }
}

/// The OIDC provider every Project gets a client in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySettings {
    /// keycloak.
    pub provider: IdentityProviderKind,
    /// The provider's base URL, such as https://keycloak.example.com.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// The realm clients and groups are made in.
    #[schemars(length(min = 1, max = 255))]
    pub realm: String,
    /// The realm the admin user logs in to.
    #[serde(default = "default_admin_realm")]
    #[schemars(length(min = 1, max = 255))]
    pub admin_realm: String,
    /// The Secret with the admin user: keys `username` and `password`.
    pub admin_secret_ref: AdminSecretRef,
    /// Where the provider runs, so that project pods may reach it (to log in, or to check tokens)
    /// through the default-deny network isolation.
    #[serde(default, skip_serializing_if = "EgressPeers::is_empty")]
    pub egress_to: EgressPeers,
}

fn default_admin_realm() -> String {
    "master".to_owned()
}

/// An OIDC provider Berth makes clients in.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum IdentityProviderKind {
    Keycloak,
}

/// The image registry every Project gets a project in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySettings {
    /// harbor.
    pub provider: RegistryProviderKind,
    /// The registry's URL, such as https://harbor.example.com.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// The Secret with the admin user: keys `username` and `password`.
    pub admin_secret_ref: AdminSecretRef,
    /// Scan every image when it is pushed.
    #[serde(default = "yes")]
    pub scan_on_push: bool,
    /// Refuse to serve images with vulnerabilities at or above `severity`.
    #[serde(default = "yes")]
    pub prevent_vulnerable_images: bool,
    /// low, medium, high or critical.
    #[serde(default = "default_severity")]
    pub severity: Severity,
}

fn yes() -> bool {
    true
}

fn default_severity() -> Severity {
    Severity::High
}

/// An image registry Berth makes projects in.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RegistryProviderKind {
    Harbor,
}

/// A vulnerability severity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// The project's bucket.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// false opts the project out: no bucket and no key are made, and its credentials Secret is
    /// removed. A bucket made earlier is kept with its objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A size limit for the bucket, such as 100Gi, where the object store has quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0'))").message("storage.quota must be a positive size, such as 100Gi"))]
    pub quota: Option<Quantity>,
}

/// The project's registry project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySpec {
    /// false opts the project out of a registry project and robot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// What the project has outside the cluster: the names it claimed, each recorded once its owner
/// record was checked. Deletion removes these names, never names computed again from settings
/// that may have changed since.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStatus {
    /// The bucket's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The OIDC client's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_client_id: Option<String>,
    /// The realm group of the project's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_group: Option<String>,
    /// The registry project's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_project: Option<String>,
}
