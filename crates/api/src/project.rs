//! `Project`: one object onboards a team into its own isolated, governed namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::providers::{ExternalStatus, RegistrySpec, StorageSpec};

/// The annotation that lets a Project take over a namespace that already exists. Only a platform
/// admin may set it (the shipped ValidatingAdmissionPolicy enforces that).
pub const ADOPT_NAMESPACE_ANNOTATION: &str = "berth.dev/adopt-namespace";
/// `"true"` lets a Project take over the bucket its name maps to although the bucket does not
/// record the Project as its owner (a bucket made outside Berth, or another Project's). Platform
/// admins only.
pub const ADOPT_STORAGE_ANNOTATION: &str = "berth.dev/adopt-storage";
/// `"true"` lets a Project take over the OIDC client and realm group its name maps to. Platform
/// admins only.
pub const ADOPT_IDENTITY_ANNOTATION: &str = "berth.dev/adopt-identity";
/// `"true"` lets a Project take over the registry project its name maps to. Platform admins only.
pub const ADOPT_REGISTRY_ANNOTATION: &str = "berth.dev/adopt-registry";
/// `"true"` on a Project being deleted: what Berth cannot remove outside the cluster (a provider
/// that is gone or keeps failing) is abandoned instead of holding the Project for ever; the
/// Event and the condition name each thing abandoned. Platform admins only.
pub const ABANDON_EXTERNAL_ANNOTATION: &str = "berth.dev/abandon-external";
/// `"true"` lets the Delete policy delete a namespace the Project adopted (which held data before
/// Berth); without it an adopted namespace is kept. Platform admins only.
pub const DELETE_ADOPTED_NAMESPACE_ANNOTATION: &str = "berth.dev/delete-adopted-namespace";

/// Every annotation only a platform admin may set or change on a Project.
pub const ADMIN_ANNOTATIONS: &[&str] = &[
    ADOPT_NAMESPACE_ANNOTATION,
    ADOPT_STORAGE_ANNOTATION,
    ADOPT_IDENTITY_ANNOTATION,
    ADOPT_REGISTRY_ANNOTATION,
    ABANDON_EXTERNAL_ANNOTATION,
    DELETE_ADOPTED_NAMESPACE_ANNOTATION,
];

/// A team's isolated, provisioned home on the platform.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Project",
    plural = "projects",
    shortname = "proj",
    status = "ProjectStatus",
    doc = "A team's isolated, provisioned home on the platform: one object gives it a namespace, access for its members, quota, limits, network isolation, pod security, and where the platform enables them a bucket with its own keys, an OIDC client and a registry project.",
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message("a project name must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Owners","type":"string","jsonPath":".status.owners"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.owners) && size(self.owners) > 0) || (has(self.members) && self.members.exists(m, m.role == 'owner'))").message("a project needs at least one owner: list one under spec.owners, or give a member role: owner"),
    validation = Rule::new("has(self.namespace) == has(oldSelf.namespace)").message("spec.namespace cannot be added or removed once the project exists; create a new project for a new namespace")
)]
pub struct ProjectSpec {
    /// Users who own the project, by e-mail address or user name. A shorthand for members with kind
    /// User and role owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(max = 64), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(o, size(o) > 0)").message("each owner must be a non-empty user name of at most 253 characters"))]
    pub owners: Vec<String>,

    /// The people, groups and service accounts that work in the project, each with a role. Together
    /// with `owners` there must be at least one owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["kind", "name"]), length(max = 256))]
    pub members: Vec<Member>,

    /// The namespace the project lives in. Defaults to the project's name. It cannot change later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("spec.namespace must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
        validation = Rule::new("self == oldSelf").message("spec.namespace cannot change once the project exists; create a new project for a new namespace")
    )]
    pub namespace: Option<String>,

    /// Extra labels for the namespace. Berth's own labels and the pod-security labels are set from
    /// the spec and cannot be overridden here. Without a platform admin, only keys starting with a
    /// prefix in the platform settings' `tenantNamespaceMetadata.labelPrefixes`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('pod-security.kubernetes.io/') && !k.startsWith('berth.dev/') && k != 'app.kubernetes.io/managed-by' && !k.startsWith('istio') && k != 'kubernetes.io/metadata.name')").message("namespaceLabels cannot set pod-security.kubernetes.io/*, berth.dev/*, istio*, app.kubernetes.io/managed-by or kubernetes.io/metadata.name: Berth sets those from the spec"))]
    pub namespace_labels: BTreeMap<String, String>,

    /// Extra annotations for the namespace. Without a platform admin, only keys starting with a
    /// prefix in the platform settings' `tenantNamespaceMetadata.annotationPrefixes`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('berth.dev/'))").message("namespaceAnnotations cannot set berth.dev/* annotations"))]
    pub namespace_annotations: BTreeMap<String, String>,

    /// The project's ResourceQuota. Each resource given here replaces the platform default for that
    /// resource; the rest keep their defaults. Asking for more than the platform maximum needs a
    /// platform admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_quota: Option<ResourceQuotaSpec>,

    /// Container defaults for pods that do not set requests or limits. Each value given replaces
    /// the platform default for that resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_range: Option<LimitRangeSpec>,

    /// Extra network access on top of the default isolation (which allows traffic inside the
    /// namespace, DNS, and ingress from the platform's gateway and monitoring namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// The Pod Security Standard the namespace enforces, audits and warns on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecuritySpec>,

    /// What happens to the namespace and its data when the project is deleted: Retain (the
    /// platform default unless its settings say otherwise) keeps it, detached and labelled as
    /// retained; Delete removes it with everything in it. Without it, the platform default at the
    /// time the project was created applies for the project's whole life (status.deletionPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The project's bucket and access key, when the platform has object storage enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// The project's OIDC client, when the platform has an identity provider enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpSpec>,

    /// The project's registry project and robot, when the platform has a registry enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistrySpec>,
}

/// One member of a project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind != 'ServiceAccount' || self.name.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("a ServiceAccount member is named 'name' (in the project's namespace) or 'namespace/name'"))]
pub struct Member {
    /// What kind of subject this is: User, Group or ServiceAccount.
    pub kind: MemberKind,
    /// The subject's name: an e-mail address or user name for a User, a group name for a Group,
    /// `name` (in the project's namespace) or `namespace/name` for a ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// What the member may do: owner manages the project and its members, editor works in it,
    /// viewer reads it.
    pub role: Role,
}

/// The kind of a member subject.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum MemberKind {
    User,
    Group,
    ServiceAccount,
}

/// A member's role in a project.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

/// Quantities by resource name, such as `cpu: "16"` or `memory: 32Gi`.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The schema of a [`ResourceList`]: bounded, so the API server can afford its CEL rules.
pub(crate) fn resource_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": {
            "x-kubernetes-int-or-string": true,
            "maxLength": 64,
        },
    })
}

/// The project's ResourceQuota.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceQuotaSpec {
    /// Hard limits by resource name, as in a ResourceQuota: `cpu`, `memory`, `requests.nvidia.com/gpu`,
    /// `persistentvolumeclaims`, `pods` and so on. Each resource once: `cpu` and `requests.cpu`
    /// (like `nvidia.com/gpu` and `requests.nvidia.com/gpu`) are one resource.
    #[serde(default)]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(
        validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every quota value must be a quantity, such as 16, 500m or 32Gi"),
        validation = Rule::new(crate::quota::names_rule()).message("every resourceQuota.hard key must be a resource a ResourceQuota knows, such as cpu, limits.memory, pods, nvidia.com/gpu or count/secrets"),
        validation = Rule::new(crate::quota::once_rule()).message("resourceQuota.hard names one resource twice (such as cpu and requests.cpu, which are the same); give it once")
    )]
    pub hard: ResourceList,
}

/// Container defaults, as in a LimitRange of type Container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LimitRangeSpec {
    /// Requests given to a container that sets none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every defaultRequest value must be a quantity, such as 100m or 256Mi"))]
    pub default_request: ResourceList,
    /// Limits given to a container that sets none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "resource_list_schema")]
    #[x_kube(validation = Rule::new("self.all(k, isQuantity(string(self[k])))").message("every default value must be a quantity, such as 1 or 1Gi"))]
    pub default: ResourceList,
}

/// Extra network access for the project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Namespaces whose pods may connect to this project's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(max = 64), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("allowIngressFromNamespaces must list namespace names (DNS labels)"))]
    pub allow_ingress_from_namespaces: Vec<String>,
    /// Address ranges outside the cluster that the project's pods may connect to, in CIDR
    /// notation, such as 10.20.0.0/16 or 203.0.113.7/32. Without a platform admin, only ranges
    /// inside the platform settings' `tenantEgress.allowedCIDRs`. Link-local addresses and the API
    /// server are never reachable this way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(max = 64), inner(length(max = 43)))]
    #[x_kube(
        validation = Rule::new("self.all(c, isCIDR(c))").message("allowEgressTo must list CIDRs, such as 10.20.0.0/16 or 203.0.113.7/32"),
        validation = Rule::new("self.all(c, !isCIDR(c) || !(cidr('169.254.0.0/16').containsCIDR(c) || cidr('fe80::/10').containsCIDR(c)))").message("allowEgressTo cannot open link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata service and the node's own services); Berth never opens egress to them")
    )]
    pub allow_egress_to: Vec<String>,
}

/// The Pod Security Standard for the namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSecuritySpec {
    /// restricted (the default), baseline or privileged. Privileged needs a platform admin.
    #[serde(default)]
    pub level: PodSecurityLevel,
}

/// A Pod Security Standard level.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum PodSecurityLevel {
    #[default]
    Restricted,
    Baseline,
    Privileged,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Restricted => "restricted",
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Privileged => "privileged",
        }
    }
}

/// What happens to the namespace when the project is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the namespace and everything in it, detached from Berth and labelled as retained.
    #[default]
    Retain,
    /// Delete the namespace and everything in it.
    Delete,
}

/// The project's OIDC client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IdpSpec {
    /// false opts the project out of an OIDC client and realm group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Redirect URIs the client accepts after login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 2048)))]
    #[x_kube(validation = Rule::new("self.all(u, isURL(u))").message("each redirect URI must be an absolute URL, such as https://example.com/callback"))]
    pub redirect_uris: Vec<String>,
}

/// What Berth observed about a project.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The namespace the project lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// True when the namespace existed before the project and a platform admin let the project
    /// adopt it: the Delete policy then keeps it unless a platform admin sets
    /// berth.dev/delete-adopted-namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_adopted: Option<bool>,
    /// The deletion policy in force: spec.deletionPolicy, else the platform default recorded when
    /// the project was first reconciled. A later change of the platform default changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// The owners, comma-separated, for `kubectl get projects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<String>,
    /// Quota use: what the ResourceQuota allows and what is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaUsage>,
    /// What the project has outside the cluster: its bucket, OIDC client and registry project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStatus>,
    /// The state of each part of the project: Ready, NamespaceReady, AccessReady, QuotaReady,
    /// NetworkReady, and StorageReady, IdentityReady and RegistryReady where enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Quota use as the ResourceQuota reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    /// What the quota allows.
    #[serde(default)]
    pub hard: ResourceList,
    /// What is in use.
    #[serde(default)]
    pub used: ResourceList,
}

impl Project {
    /// The namespace this project lives in: `spec.namespace`, or the project's name.
    pub fn namespace_name(&self) -> Option<&str> {
        self.spec
            .namespace
            .as_deref()
            .or(self.metadata.name.as_deref())
    }

    /// Whether a platform admin set the annotation `key` to `"true"`.
    pub fn admin_says(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    }

    /// The deletion policy in force: the spec's, else the one recorded when the project was first
    /// reconciled, else `default` (a project never reconciled yet).
    pub fn effective_deletion_policy(&self, default: DeletionPolicy) -> DeletionPolicy {
        self.spec
            .deletion_policy
            .or(self.status.as_ref().and_then(|s| s.deletion_policy))
            .unwrap_or(default)
    }
}
