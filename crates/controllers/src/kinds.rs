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
/// The Secrets with a project's credentials for its bucket, OIDC client and registry robot. They
/// hold what the project's workloads use: never pruned by the shared apply step, only removed when
/// their part is switched off.
pub fn secret() -> ChildKind {
    ChildKind::of::<Secret>(true, false)
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

/// What an MLModel creates. Model volumes are pruned: each holds a downloaded copy of a version
/// that its source still has, and an old version's volume must go once a new one is active.
pub fn job() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::batch::v1::Job>(true, true)
}
pub fn persistent_volume_claim() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(true, true)
}
pub fn deployment() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::apps::v1::Deployment>(true, true)
}
pub fn service() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::core::v1::Service>(true, true)
}
pub fn horizontal_pod_autoscaler() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(true, true)
}
/// Pods are watched, never applied or pruned: their Job or ReplicaSet owns them. They carry the
/// model's labels from the templates, and their state tells why a version does not come up.
pub fn pod() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::core::v1::Pod>(true, false)
}
/// Gateway API's HTTPRoute, which has no Rust type here.
pub fn http_route() -> ChildKind {
    ChildKind {
        resource: ApiResource {
            group: "gateway.networking.k8s.io".into(),
            version: "v1".into(),
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "HTTPRoute".into(),
            plural: "httproutes".into(),
        },
        namespaced: true,
        prune: true,
    }
}
/// Istio's VirtualService, which has no Rust type here.
pub fn virtual_service() -> ChildKind {
    ChildKind {
        resource: ApiResource {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            plural: "virtualservices".into(),
        },
        namespaced: true,
        prune: true,
    }
}

/// Every kind the MLModel controller creates or watches; the routing kinds only when their CRDs
/// are installed.
pub fn model_children(gateway_api_installed: bool, istio_installed: bool) -> Vec<ChildKind> {
    let mut kinds = vec![
        persistent_volume_claim(),
        job(),
        deployment(),
        service(),
        horizontal_pod_autoscaler(),
        pod(),
    ];
    if gateway_api_installed {
        kinds.push(http_route());
    }
    if istio_installed {
        kinds.push(virtual_service());
    }
    kinds
}
