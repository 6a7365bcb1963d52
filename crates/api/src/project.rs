//! `Project`: one object onboards a team into its own namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A team's isolated, provisioned home on the platform: its namespace, its members' access, and the
/// resources that follow the members list.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Project",
    plural = "projects",
    shortname = "proj",
    status = "ProjectStatus",
    doc = "A team's isolated, provisioned home on the platform: one object gives it a namespace, access for its members, quota, limits, network isolation and pod security.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".status.namespace"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    /// The people, groups and service accounts that work in this project, each with a role.
    /// At least one member must be an owner.
    #[schemars(length(min = 1))]
    pub members: Vec<Member>,

    /// The namespace the project lives in. Defaults to the project's name and cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One member of a project.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// What kind of subject this is: User, Group or ServiceAccount.
    pub kind: MemberKind,
    /// The subject's name: an e-mail address or user name for a User, a group name for a Group,
    /// `namespace/name` or a plain name in the project's namespace for a ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// What the member may do: owner manages the project and its members, editor works in it,
    /// viewer reads it.
    pub role: Role,
}

/// The kind of a member subject.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MemberKind {
    User,
    Group,
    ServiceAccount,
}

/// A member's role in a project.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

/// What Berth observed about a project.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The namespace the project lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The state of each part of the project: Ready, NamespaceReady, AccessReady and so on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Project {
    /// The namespace this project lives in: `spec.namespace`, or the project's name.
    pub fn namespace_name(&self) -> Option<&str> {
        self.spec
            .namespace
            .as_deref()
            .or(self.metadata.name.as_deref())
    }
}
