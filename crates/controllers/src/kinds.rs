//! The kinds of children Berth's controllers create.

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::ApiResource;

use berth_reconcile::ChildKind;

/// Namespaces hold user data: they are never pruned, only deleted by an explicit Delete policy.
pub fn namespace() -> ChildKind {
    ChildKind::of::<Namespace>(false, false)
}
pub fn role_binding() -> ChildKind {
    ChildKind::of::<RoleBinding>(true, true)
}
pub fn cluster_role() -> ChildKind {
    ChildKind::of::<ClusterRole>(false, true)
}
pub fn cluster_role_binding() -> ChildKind {
    ChildKind::of::<ClusterRoleBinding>(false, true)
}
pub fn resource_quota() -> ChildKind {
    ChildKind::of::<ResourceQuota>(true, true)
}
pub fn limit_range() -> ChildKind {
    ChildKind::of::<LimitRange>(true, true)
}
pub fn network_policy() -> ChildKind {
    ChildKind::of::<NetworkPolicy>(true, true)
}
/// Service accounts may own tokens and be used by running pods: pruned like the rest, since only
/// Berth's own accounts carry Berth's labels.
pub fn service_account() -> ChildKind {
    ChildKind::of::<ServiceAccount>(true, true)
}
/// The Secrets with a project's credentials for its bucket, OIDC client and registry robot.
pub fn secret() -> ChildKind {
    ChildKind::of::<Secret>(true, true)
}
/// Istio's AuthorizationPolicy, which has no Rust type here.
pub fn authorization_policy() -> ChildKind {
    ChildKind {
        resource: ApiResource {
            group: "security.istio.io".into(),
            version: "v1".into(),
            api_version: "security.istio.io/v1".into(),
            kind: "AuthorizationPolicy".into(),
            plural: "authorizationpolicies".into(),
        },
        namespaced: true,
        prune: true,
    }
}

/// Every kind the Project controller creates; Istio's only when its CRD is installed.
pub fn project_children(istio_installed: bool) -> Vec<ChildKind> {
    let mut kinds = vec![
        namespace(),
        role_binding(),
        cluster_role(),
        cluster_role_binding(),
        resource_quota(),
        limit_range(),
        network_policy(),
        service_account(),
        secret(),
    ];
    if istio_installed {
        kinds.push(authorization_policy());
    }
    kinds
}

