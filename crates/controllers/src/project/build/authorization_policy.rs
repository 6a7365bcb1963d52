//! Istio's AuthorizationPolicy: members in by the user-id header the gateway sets, traffic from
//! inside the namespace, and monitoring.

use serde_json::json;

use berth_api::{MemberKind, PlatformSettingsSpec};
use berth_reconcile::{ChildKind, Desired, Error};

use super::super::validate::Validated;
use super::meta::namespaced;
use crate::names::kube::MEMBERS_AUTHORIZATION;

/// The AuthorizationPolicy as `kind`: `security.istio.io` at the version the cluster serves
/// (`v1`, or `v1beta1` before Istio 1.22; the fields Berth sets are the same). User members are
/// named in the form the identity provider issues (`PlatformSettings.spec.emailUserNames`).
pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    kind: &ChildKind,
) -> Result<Desired, Error> {
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
        kind,
        json!({"metadata": metadata, "spec": {"action": "ALLOW", "rules": rules}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::AUTHORIZATION_POLICY;
    use crate::project::validate::{Known, validate};
    use berth_api::{Member, Project, ProjectSpec, Role};

    #[test]
    fn members_are_named_as_the_identity_provider_issues_them() {
        let mut p = Project::new(
            "team-a",
            ProjectSpec {
                owners: vec!["Ada@Example.com".into()],
                members: vec![Member {
                    kind: MemberKind::User,
                    name: "ada@example.com".into(),
                    role: Role::Viewer,
                }],
                ..Default::default()
            },
        );
        p.metadata.uid = Some("3f1c0a7e-0000-4000-8000-000000000001".into());
        let mut settings = PlatformSettingsSpec::default();
        settings.istio.user_id_prefix = "accounts:".into();
        let Ok(v) = validate(&p, &settings, "berth-system", Known::default()) else {
            unreachable!("valid")
        };
        let Ok(d) = build(&v, &settings, &AUTHORIZATION_POLICY.at("v1beta1")) else {
            unreachable!("builds")
        };
        assert_eq!(
            d.object.types.as_ref().map(|t| t.api_version.as_str()),
            Some("security.istio.io/v1beta1")
        );
        assert_eq!(
            d.object.data["spec"]["rules"][1]["when"][0]["values"],
            json!(["accounts:ada@example.com"])
        );
    }
}
