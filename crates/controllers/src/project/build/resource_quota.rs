//! The project's ResourceQuota: the platform's default with the project's values in place of the
//! ones they name, whatever spelling either uses (`berth_api::quota::merge`). Keys come out in
//! their canonical form (`cpu` is written `requests.cpu`), so a resource is never limited twice
//! under two names, and a project's ask always replaces the default for the same resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec as K8sResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use berth_api::{PlatformSettingsSpec, Project};
use berth_reconcile::{Desired, Error};

use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::QUOTA;

pub fn build(project: &Validated, settings: &PlatformSettingsSpec) -> Result<Desired, Error> {
    Desired::new(
        &kinds::resource_quota(),
        &ResourceQuota {
            metadata: namespaced(project, QUOTA),
            spec: Some(K8sResourceQuotaSpec {
                hard: Some(quota_hard(settings, project.project)),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

/// The platform's default quota with the project's values in place of the defaults for the same
/// resources, keys canonical (`berth_api::quota::canonical`).
pub fn quota_hard(
    settings: &PlatformSettingsSpec,
    project: &Project,
) -> BTreeMap<String, Quantity> {
    let asked = project
        .spec
        .resource_quota
        .as_ref()
        .map(|q| q.hard.clone())
        .unwrap_or_default();
    berth_api::quota::merge(&settings.quota.default, &asked)
}
