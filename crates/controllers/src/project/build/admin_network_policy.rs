//! The project's admin-tier network policy, where the cluster serves the network-policy-api
//! (`policy.networking.k8s.io`): a ClusterNetworkPolicy with `tier: Admin` (v0.3 and later), else
//! an AdminNetworkPolicy (v1alpha1, v0.1). Admin-tier policies are evaluated before every
//! NetworkPolicy, and the project's members cannot write them, so what this one denies stays
//! denied whatever NetworkPolicies a tenant writes in the namespace.
//!
//! What it says, one rule: **deny ingress to the project's namespace from every namespace except**
//! the namespace itself, the platform's gateway and monitoring namespaces (those that are still
//! the platform's, as in the NetworkPolicies), and the project's own
//! `spec.network.allowIngressFromNamespaces`. It only denies: traffic from the namespaces it
//! leaves out is not matched, so it goes on to any other admin-tier policy of the platform and then
//! to the namespace's NetworkPolicies (Berth's default deny and its allow rules) exactly as without
//! it. It never uses `Allow`/`Accept` or `Pass`, which would skip the platform's other admin-tier
//! policies. Egress is left to the NetworkPolicies and to admission (which refuses tenant
//! NetworkPolicies that open egress), because an admin-tier egress rule would also block what a
//! platform admin opens on purpose.
//!
//! Its subject selects the namespace by name *and* by Berth's labels, and it goes with the
//! Project (controller ownerReference), like the per-project ClusterRoles.
//! `deploy/rbac/22-operator-scope.yaml` lets the operator write nothing else of these kinds.
//!
//! Sources: network-policy-api's API reference (`apis/v1alpha1` AdminNetworkPolicy, `apis/v1alpha2`
//! and `v1beta1` ClusterNetworkPolicy) and NPEP-133 (rule order and actions).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use berth_api::PlatformSettingsSpec;
use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, PROJECT};
use berth_reconcile::{ChildKind, Desired, Error};

use super::super::validate::Validated;
use super::meta::owned;
use super::network_policy::trusted_ingress;
use crate::names::kube::isolation_policy;

/// The policy's priority: 0 (first) to 1000. Every enforcer supports 0–99 (OVN-Kubernetes
/// supports no more), and Berth's policy is the last among those, so a platform admin's own
/// admin-tier policies, at lower numbers, come first. Berth's policies select one namespace
/// each, so they never compete with one another.
pub const PRIORITY: i32 = 99;

/// The name of the namespace label the API server sets on every namespace.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Builds the admin-tier policy as `kind` (ClusterNetworkPolicy or AdminNetworkPolicy).
pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
    kind: &ChildKind,
    console: Option<&str>,
) -> Result<Desired, Error> {
    let mut allowed = trusted_ingress(project, settings, untrusted);
    allowed.insert(project.namespace.clone());
    // Not denied here, so the NetworkPolicy berth-allow-console decides: the console's pods
    // only, to notebooks only, on Jupyter's port only.
    if let Some(console) = console.filter(|c| !untrusted.contains(*c)) {
        allowed.insert(console.to_owned());
    }
    let allowed: Vec<String> = allowed.into_iter().collect();
    let others = json!({"matchExpressions": [
        {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": allowed},
    ]});
    let subject = json!({"namespaces": {"matchLabels": {
        NAMESPACE_NAME_LABEL: project.namespace,
        MANAGED_BY: MANAGED_BY_VALUE,
        PROJECT: project.name,
    }}});
    let rule_name = "berth-deny-other-namespaces";
    let spec = match kind.resource.kind.as_str() {
        // v1alpha1: a namespaces peer holds a namespaceSelector.
        "AdminNetworkPolicy" => json!({
            "priority": PRIORITY,
            "subject": subject,
            "ingress": [{"name": rule_name, "action": "Deny", "from": [{"namespaces": {"namespaceSelector": others}}]}],
        }),
        // v1alpha2 and later: a namespaces peer is the selector itself, and the tier is named.
        _ => json!({
            "tier": "Admin",
            "priority": PRIORITY,
            "subject": subject,
            "ingress": [{"name": rule_name, "action": "Deny", "from": [{"namespaces": others}]}],
        }),
    };
    let metadata: Value = serde_json::to_value(owned(project, &isolation_policy(&project.name)))
        .map_err(|e| Error::internal(e.to_string()))?;
    Desired::from_value(kind, json!({"metadata": metadata, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{ADMIN_NETWORK_POLICY, CLUSTER_NETWORK_POLICY};
    use crate::project::validate::{Known, validate};
    use berth_api::project::NetworkSpec;
    use berth_api::{Project, ProjectSpec};

    fn project() -> Project {
        let mut p = Project::new(
            "team-a",
            ProjectSpec {
                owners: vec!["ada@example.com".into()],
                network: Some(NetworkSpec {
                    allow_ingress_from_namespaces: vec!["partners".into()],
                    allow_egress_to: vec![],
                }),
                ..Default::default()
            },
        );
        p.metadata.uid = Some("3f1c0a7e-0000-4000-8000-000000000001".into());
        p
    }

    fn settings() -> PlatformSettingsSpec {
        PlatformSettingsSpec {
            gateway_namespaces: vec!["gateways".into(), "gw-taken".into()],
            monitoring_namespaces: vec!["monitoring".into()],
            ..Default::default()
        }
    }

    fn built(kind: &ChildKind) -> Desired {
        let p = project();
        let Ok(v) = validate(&p, &settings(), "berth-system", Known::default()) else {
            unreachable!("the project is valid")
        };
        let untrusted = BTreeSet::from(["gw-taken".to_owned()]);
        match build(&v, &settings(), &untrusted, kind, None) {
            Ok(d) => d,
            Err(e) => unreachable!("{e}"),
        }
    }

    #[test]
    fn a_cluster_network_policy_denies_every_namespace_but_the_trusted_ones() {
        let d = built(&CLUSTER_NETWORK_POLICY.at("v1alpha2"));
        assert_eq!(
            d.object.metadata.name.as_deref(),
            Some("berth-isolate-team-a")
        );
        assert_eq!(
            d.object.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(
            d.object.data["spec"],
            json!({
                "tier": "Admin",
                "priority": 99,
                "subject": {"namespaces": {"matchLabels": {
                    "kubernetes.io/metadata.name": "team-a",
                    "app.kubernetes.io/managed-by": "berth",
                    "berth.dev/project": "team-a",
                }}},
                "ingress": [{
                    "name": "berth-deny-other-namespaces",
                    "action": "Deny",
                    "from": [{"namespaces": {"matchExpressions": [{
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["gateways", "monitoring", "partners", "team-a"],
                    }]}}],
                }],
            })
        );
    }

    #[test]
    fn an_admin_network_policy_says_the_same_in_v1alpha1() {
        let d = built(&ADMIN_NETWORK_POLICY.at("v1alpha1"));
        let spec = &d.object.data["spec"];
        assert!(spec.get("tier").is_none());
        assert_eq!(spec["priority"], 99);
        assert_eq!(
            spec["ingress"][0]["from"][0]["namespaces"]["namespaceSelector"]["matchExpressions"][0]
                ["values"],
            json!(["gateways", "monitoring", "partners", "team-a"])
        );
        assert_eq!(spec["ingress"][0]["action"], "Deny");
    }
}
