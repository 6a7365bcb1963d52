//! Istio's AuthorizationPolicy: members in by the user-id header the gateway sets, traffic from
//! inside the namespace, and monitoring.

use serde_json::json;

use berth_api::{MemberKind, PlatformSettingsSpec};
use berth_reconcile::{Desired, Error};

use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::MEMBERS_AUTHORIZATION;

pub fn build(project: &Validated, settings: &PlatformSettingsSpec) -> Result<Desired, Error> {
    let users: Vec<String> = project
        .subjects
        .iter()
        .filter(|s| s.kind == MemberKind::User)
        .map(|s| format!("{}{}", settings.istio.user_id_prefix, s.name))
        .collect();
    let header = format!("request.headers[{}]", settings.istio.user_id_header);
    let mut rules = vec![json!({"from": [{"source": {"namespaces": [project.namespace]}}]})];
    if !users.is_empty() {
        rules.push(json!({"when": [{"key": header, "values": users}]}));
    }
    if !settings.monitoring_namespaces.is_empty() {
        rules.push(json!({"from": [{"source": {"namespaces": settings.monitoring_namespaces}}]}));
    }
    let metadata = serde_json::to_value(namespaced(project, MEMBERS_AUTHORIZATION))
        .map_err(|e| Error::internal(e.to_string()))?;
    Desired::from_value(
        &kinds::authorization_policy(),
        json!({"metadata": metadata, "spec": {"action": "ALLOW", "rules": rules}}),
    )
}
