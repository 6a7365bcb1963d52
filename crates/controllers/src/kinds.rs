//! The kinds of children Berth's controllers create.

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};

use berth_api::providers::{IDENTITY_SECRET, REGISTRY_SECRET, STORAGE_SECRET};
use berth_reconcile::{ChildKind, Projection};

/// Namespaces hold user data: they are never pruned, only deleted by an explicit Delete policy.
/// Their annotations come from the Project's spec, so the cache keeps them.
pub fn namespace() -> ChildKind {
    ChildKind::of::<Namespace>(false, false).projected(Projection::AppliedWithAnnotations)
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
/// The Secrets with a project's credentials for its bucket, OIDC client and registry robot, and no
/// other: the operator watches (and may read) Secrets of these names only. They hold what the
/// project's workloads use: never pruned by the shared apply step, only removed when their part
/// is switched off.
///
/// They are watched as metadata only: the controller reads their labels, ownerReferences,
/// resourceVersion and Berth's annotations (`berth.dev/credential-id`, `-fingerprint`,
/// `rotation`), never the credentials, so the API server never sends those to the operator.
pub fn secret() -> ChildKind {
    ChildKind::of::<Secret>(true, false)
        .named(&[STORAGE_SECRET, IDENTITY_SECRET, REGISTRY_SECRET])
        .projected(Projection::Metadata)
}
/// Every kind the Project controller creates, with the optional kinds (AuthorizationPolicy,
/// ClusterNetworkPolicy, AdminNetworkPolicy) at the versions discovery found
/// (`crate::discovery`): a kind the cluster does not serve is neither built nor watched.
pub fn project_children_found(optional: &[ChildKind]) -> Vec<ChildKind> {
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
    kinds.extend(optional.iter().cloned());
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
/// model's labels from the templates, and their state tells why a version does not come up: the
/// cache keeps their status, not their spec.
pub fn pod() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::core::v1::Pod>(true, false).projected(Projection::Status)
}

/// Every kind the MLModel controller creates or watches; `routes` are the routing kinds the
/// cluster serves (HTTPRoute, VirtualService), at the version discovery found.
pub fn model_children(routes: &[ChildKind]) -> Vec<ChildKind> {
    let mut kinds = vec![
        persistent_volume_claim(),
        job(),
        deployment(),
        service(),
        horizontal_pod_autoscaler(),
        pod(),
    ];
    kinds.extend(routes.iter().cloned());
    kinds
}

/// A notebook's StatefulSet (one pod, or none while stopped).
pub fn stateful_set() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::apps::v1::StatefulSet>(true, true)
}
/// A notebook's home volume: never pruned and never owned, so it outlives stops, restarts and
/// the Notebook itself.
pub fn notebook_home() -> ChildKind {
    ChildKind::of::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(true, false)
}

/// The project's account a notebook's pod runs as (the Project controller's, read only).
pub fn notebook_account() -> ChildKind {
    ChildKind::of::<ServiceAccount>(true, false).named(&[crate::names::kube::AUTOMATION_ACCOUNT])
}
/// The project's registry pull secret, metadata only: a notebook's pod names it when it exists.
pub fn notebook_pull_secret() -> ChildKind {
    ChildKind::of::<Secret>(true, false)
        .named(&[REGISTRY_SECRET])
        .projected(Projection::Metadata)
}
/// The project's ResourceQuota and LimitRange, read only: whether a notebook fits.
pub fn notebook_quota() -> ChildKind {
    ChildKind::of::<ResourceQuota>(true, false).named(&[crate::names::kube::QUOTA])
}
pub fn notebook_limits() -> ChildKind {
    ChildKind::of::<LimitRange>(true, false).named(&[crate::names::kube::LIMITS])
}

/// Every kind the Notebook controller creates or watches. Home and data volumes are one kind
/// (PersistentVolumeClaims Berth made, never pruned).
pub fn notebook_children() -> Vec<ChildKind> {
    vec![
        notebook_home(),
        service(),
        stateful_set(),
        pod(),
        notebook_account(),
        notebook_pull_secret(),
        notebook_quota(),
        notebook_limits(),
    ]
}
