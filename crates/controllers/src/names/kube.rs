//! Names of the Kubernetes objects Berth makes: a Project's children in its namespace and the
//! cluster, and an MLModel's children in its namespace. Names fixed here are the same in every
//! project namespace (one of each per namespace); the rest are derived so that two inputs never
//! share a name.

use berth_api::{MemberKind, Role};

use super::label_from;

/// The ClusterRoles members are bound to in their namespace (shipped in deploy/rbac).
pub const OWNER_ROLE: &str = "berth-project-owner";
pub const EDITOR_ROLE: &str = "berth-project-editor";
pub const VIEWER_ROLE: &str = "berth-project-viewer";
/// Every ClusterRole name deploy/rbac ships: no per-project name may equal one.
pub const SHIPPED_CLUSTER_ROLES: &[&str] = &[
    OWNER_ROLE,
    EDITOR_ROLE,
    VIEWER_ROLE,
    "berth-project-edit-berth-kinds",
    "berth-project-view-berth-kinds",
    "berth-project-creator",
    "berth-platform-admin",
    "berth-operator",
    TOKEN_REVIEWER_ROLE,
    NOTEBOOK_EXEC_ROLE,
];

/// The ClusterRole (shipped in deploy/rbac, bound to nobody) that lets the operator exec into pods
/// of a namespace for notebooks' exec activity probes, once an admin binds it there.
pub const NOTEBOOK_EXEC_ROLE: &str = "berth-notebook-exec";

/// The ClusterRole that allows only `create tokenreviews` (shipped in deploy/rbac): what a model
/// server in `kubernetes` auth mode needs to check its callers' ServiceAccount tokens.
pub const TOKEN_REVIEWER_ROLE: &str = "berth-token-reviewer";
/// The ServiceAccount Berth's model servers (and auth proxies) run as in `kubernetes` auth mode,
/// one per project namespace, bound to [`TOKEN_REVIEWER_ROLE`] by [`token_reviewer_binding`].
pub const MODEL_AUTH_ACCOUNT: &str = "berth-model-auth";
/// The NetworkPolicy that lets a project's model servers in `kubernetes` auth mode reach the API
/// server (for TokenReviews), which no other pod of the project reaches.
pub const ALLOW_MODEL_AUTH: &str = "berth-allow-model-auth";

/// The ClusterRoleBinding of a project's [`MODEL_AUTH_ACCOUNT`] to [`TOKEN_REVIEWER_ROLE`]:
/// `berth-project-<project>-token-reviewer`. A project name is a DNS label, so no two projects
/// share one, and it never equals a per-project role (those end in `-owner` or `-member`).
/// `deploy/rbac/22-operator-scope.yaml` lets the operator write bindings of this form only to that
/// role and that account.
pub fn token_reviewer_binding(project: &str) -> String {
    format!("berth-project-{project}-token-reviewer")
}

/// The audience a ServiceAccount token must be made for to call model `model` of `namespace` in
/// `kubernetes` auth mode: `mlmodels.berth.dev/<namespace>/<model>`. Each model has its own, so a
/// token made for one model is refused by every other.
pub fn model_audience(namespace: &str, model: &str) -> String {
    format!("mlmodels.{}/{namespace}/{model}", berth_api::GROUP)
}

/// The service account for automation in the project: an editor.
pub const AUTOMATION_ACCOUNT: &str = "project-automation";
/// Kubeflow's service accounts, with Kubeflow compatibility on.
pub const KUBEFLOW_EDITOR_ACCOUNT: &str = "default-editor";
pub const KUBEFLOW_VIEWER_ACCOUNT: &str = "default-viewer";

/// The ResourceQuota and LimitRange of a project.
pub const QUOTA: &str = "berth-quota";
pub const LIMITS: &str = "berth-limits";

/// The NetworkPolicies of a project.
pub const DEFAULT_DENY: &str = "berth-default-deny";
pub const ALLOW_SAME_NAMESPACE: &str = "berth-allow-same-namespace";
pub const ALLOW_DNS: &str = "berth-allow-dns";
pub const ALLOW_PLATFORM: &str = "berth-allow-platform";
pub const ALLOW_PLATFORM_SERVICES: &str = "berth-allow-platform-services";
pub const ALLOW_EXTRA_INGRESS: &str = "berth-allow-extra-ingress";
pub const ALLOW_EXTRA_EGRESS: &str = "berth-allow-extra-egress";
/// The console's pods (in the operator's namespace) reach notebooks' JupyterLab.
pub const ALLOW_CONSOLE: &str = "berth-allow-console";
/// The label that tells the console's pods (with the operator's namespace, which tenants cannot
/// name: `kubernetes.io/metadata.name`).
pub const CONSOLE_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "berth-console");

/// Istio's AuthorizationPolicy that lets a project's members in.
pub const MEMBERS_AUTHORIZATION: &str = "berth-members";

/// The admin-tier network policy of a project (an AdminNetworkPolicy or a ClusterNetworkPolicy,
/// cluster-scoped): `berth-isolate-<project>`. A project name is a DNS label, so the name is a
/// DNS subdomain of at most 77 characters and no two projects share one.
/// `deploy/rbac/22-operator-scope.yaml` lets the operator write admin-tier policies of this form
/// only (`^berth-isolate-[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).
pub fn isolation_policy(project: &str) -> String {
    format!("berth-isolate-{project}")
}

/// The ClusterRole a member of `role` is bound to in the namespace.
pub fn member_role(role: Role) -> &'static str {
    match role {
        Role::Owner => OWNER_ROLE,
        Role::Editor => EDITOR_ROLE,
        Role::Viewer => VIEWER_ROLE,
    }
}

/// A member's RoleBinding: `berth-<role>-<user|group|sa>-<slug>-<hash of the subject>`.
pub fn member_binding(role: Role, kind: MemberKind, subject: &str) -> String {
    let kind = match kind {
        MemberKind::User => "user",
        MemberKind::Group => "group",
        MemberKind::ServiceAccount => "sa",
    };
    label_from(&format!("berth-{}-{kind}", role.as_str()), subject)
}

/// The RoleBinding of one of Berth's service accounts: `berth-sa-<account>`. The `berth-sa-`
/// prefix never starts a member binding (those start `berth-<role>-`).
pub fn account_binding(account: &str) -> String {
    format!("berth-sa-{account}")
}

/// Who a per-project ClusterRole is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectRole {
    /// Owners: get, update, patch and delete the Project.
    Owner,
    /// Everyone else: get it.
    Member,
}

/// A per-project ClusterRole (and its binding): `berth-project-<project>-owner` or `-member`.
/// It never equals a shipped ClusterRole: those do not end in `-owner` or `-member` after a
/// `berth-project-` prefix with a non-empty project name.
pub fn project_role(project: &str, role: ProjectRole) -> String {
    let suffix = match role {
        ProjectRole::Owner => "owner",
        ProjectRole::Member => "member",
    };
    format!("berth-project-{project}-{suffix}")
}

/// A model version's volume: `<model>-<version>` (a model name has at most 40 characters and no
/// version key is `fetch-…`, so volume and Job names never meet). The version key hashes every
/// input of the volume that cannot change once it exists (size, class, access mode: see
/// `mlmodel::build::Version`), so a claim is never asked to change; Berth only creates it.
pub fn model_volume(model: &str, version: &str) -> String {
    format!("{model}-{version}")
}

/// A model version's download Job: `<model>-fetch-<version>-<inputs>`, where `inputs` is the
/// short hash of what a Job cannot change once created (its pod template: the fetch image, the
/// arguments, the platform's timeout). A Berth upgrade or a settings change that alters them names
/// a new Job instead of asking the API server to change the old one (which it refuses). At most
/// 40 + 7 + 10 + 1 + 5 = 63 characters, a DNS label, as the Job's pods' labels need.
pub fn model_job(model: &str, version: &str, inputs: &str) -> String {
    format!("{model}-fetch-{version}-{inputs}")
}

/// How many hex digits of the Job's inputs hash its name carries.
pub const MODEL_JOB_INPUTS_HEX: usize = 5;

/// The longest model name (the CRD admits at most 40 characters).
pub const MODEL_NAME_MAX: usize = 40;

/// A name derived from a model name that no model can have: `<model>-<role>-<hex>`, padded with
/// a hash of the model's name to more than [`MODEL_NAME_MAX`] characters (at most 63, a DNS
/// label). So the canary's Deployment and Service never take the name of another model's, and
/// two models' derived names never meet.
fn beyond_model_names(model: &str, role: &str) -> String {
    let stem = format!("{model}-{role}-");
    // A model name of 1 to 40 characters makes a stem of 9 to 48: 6 to 32 hex digits.
    let hex = (MODEL_NAME_MAX + 1).saturating_sub(stem.len()).max(6);
    format!("{stem}{}", super::short_hash(model, hex))
}

/// The canary's Deployment and Service (`<model>-canary-<hash>`, longer than any model name).
pub fn model_canary(model: &str) -> String {
    beyond_model_names(model, "canary")
}

/// The Service of a model's stable replicas only, which a route weighs against the canary's
/// (`<model>-stable-<hash>`, longer than any model name).
pub fn model_stable(model: &str) -> String {
    beyond_model_names(model, "stable")
}

/// A notebook's home volume: `<notebook>-home`. It carries no ownerReference (it outlives the
/// Notebook), so it is told from a namesake by its labels (`berth.dev/notebook`, managed-by).
/// The notebook's StatefulSet and Service take the notebook's name, its pod `<notebook>-0`.
pub fn notebook_home(notebook: &str) -> String {
    format!("{notebook}-home")
}

/// A data volume Berth makes for a notebook: `<notebook>-<volume>`, a DNS label (at most 63
/// characters: a notebook name has at most 40, a volume name at most 22). Like the home volume it
/// has no ownerReference and is told from a namesake by its labels (`berth.dev/notebook`,
/// `berth.dev/notebook-volume`, managed-by). The form is not unique by construction (`a` + `b-c`
/// and `a-b` + `c` give `a-b-c`): the labels tell whose it is, and a volume of another notebook is
/// never taken over (Ready=False, VolumeTaken). A volume name is never `home` nor ends in `-home`
/// (the CRD refuses it), so no data volume takes a home volume's name.
pub fn notebook_volume(notebook: &str, volume: &str) -> Result<String, super::Refused> {
    let name = format!("{notebook}-{volume}");
    if !super::is_dns_label(&name) || volume == "home" || volume.ends_with("-home") {
        return Err(super::Refused::new(
            name,
            "a notebook's data volume is <notebook>-<volume>, a DNS label of at most 63 characters whose volume part is not home nor ends in -home",
        ));
    }
    Ok(name)
}

/// The pod of a notebook's StatefulSet (one replica): `<notebook>-0`.
pub fn notebook_pod(notebook: &str) -> String {
    format!("{notebook}-0")
}

/// The DNS label of a notebook's own origin, `<label>.<console --notebook-domain>`:
/// `<readable>-<100-bit hash>`, made in berth-api (the console depends on it, not on this crate).
pub use berth_api::notebook_host::label as notebook_host_label;

/// The path JupyterLab answers under, its base URL (Kubeflow's `NB_PREFIX`):
/// `/notebook/<namespace>/<notebook>/`.
pub fn notebook_path(namespace: &str, notebook: &str) -> String {
    format!("/notebook/{namespace}/{notebook}/")
}
