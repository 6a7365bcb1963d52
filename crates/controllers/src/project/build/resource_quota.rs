//! The project's ResourceQuota: the platform's default with the project's values in place of the
//! ones they name.

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

/// Quota names that mean the same resource: `cpu` is `requests.cpu`, and so on.
const QUOTA_ALIASES: &[(&str, &str)] = &[
    ("cpu", "requests.cpu"),
    ("memory", "requests.memory"),
    ("ephemeral-storage", "requests.ephemeral-storage"),
];

/// The platform's default quota with the project's values in place of the defaults they name (a
/// project's `cpu` replaces the default `requests.cpu`, since both mean the same).
pub fn quota_hard(
    settings: &PlatformSettingsSpec,
    project: &Project,
) -> BTreeMap<String, Quantity> {
    let mut hard = settings.quota.default.clone();
    if let Some(quota) = &project.spec.resource_quota {
        for (resource, value) in &quota.hard {
            for (a, b) in QUOTA_ALIASES {
                if resource == a {
                    hard.remove(*b);
                } else if resource == b {
                    hard.remove(*a);
                }
            }
            hard.insert(resource.clone(), value.clone());
        }
    }
    hard
}
