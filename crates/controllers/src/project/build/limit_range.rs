//! Container defaults, so pods without requests or limits are admitted under the quota.

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};

use berth_api::PlatformSettingsSpec;
use berth_reconcile::{Desired, Error};

use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::LIMITS;

pub fn build(project: &Validated, settings: &PlatformSettingsSpec) -> Result<Desired, Error> {
    let mut defaults = settings.limit_range.default.clone();
    let mut default_requests = settings.limit_range.default_request.clone();
    if let Some(limits) = &project.project.spec.limit_range {
        defaults.extend(limits.default.clone());
        default_requests.extend(limits.default_request.clone());
    }
    Desired::new(
        &kinds::limit_range(),
        &LimitRange {
            metadata: namespaced(project, LIMITS),
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default: (!defaults.is_empty()).then_some(defaults),
                    default_request: (!default_requests.is_empty()).then_some(default_requests),
                    ..Default::default()
                }],
            }),
        },
    )
}
