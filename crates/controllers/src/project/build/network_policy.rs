//! Network isolation: default deny, then what is allowed: the namespace itself, DNS, the
//! platform's gateway and monitoring namespaces, the platform's object store and identity
//! provider where the project uses them, and the project's own extra rules.
//!
//! A namespace the settings name as the platform's but that belongs to a project (the settings
//! changed after the project had it) is never trusted: it is left out of every peer list.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use berth_api::PlatformSettingsSpec;
use berth_reconcile::{Desired, Error};

use super::super::part::Part;
use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::{
    ALLOW_DNS, ALLOW_EXTRA_EGRESS, ALLOW_EXTRA_INGRESS, ALLOW_PLATFORM, ALLOW_PLATFORM_SERVICES,
    ALLOW_SAME_NAMESPACE, DEFAULT_DENY,
};

pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
) -> Result<Vec<Desired>, Error> {
    policies(project, settings, untrusted)
        .into_iter()
        .map(|(name, spec)| {
            Desired::new(
                &kinds::network_policy(),
                &NetworkPolicy {
                    metadata: namespaced(project, name),
                    spec: Some(spec),
                },
            )
        })
        .collect()
}

fn namespaces_peer(names: &[String]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "In".into(),
                values: Some(names.to_vec()),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cidr_peer(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: None,
        }),
        ..Default::default()
    }
}

fn all_pods() -> Option<LabelSelector> {
    Some(LabelSelector::default())
}

fn policies(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
) -> Vec<(&'static str, NetworkPolicySpec)> {
    let namespace = project.namespace.as_str();
    let trusted = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| n.as_str() != namespace && !untrusted.contains(n.as_str()))
            .cloned()
            .collect()
    };
    let same_namespace = NetworkPolicyPeer {
        pod_selector: all_pods(),
        ..Default::default()
    };
    let mut policies = vec![
        (
            DEFAULT_DENY,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ..Default::default()
            },
        ),
        (
            ALLOW_SAME_NAMESPACE,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![same_namespace.clone()]),
                    ports: None,
                }]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![same_namespace]),
                    ports: None,
                }]),
            },
        ),
        (
            ALLOW_DNS,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![namespaces_peer(&["kube-system".to_owned()])]),
                    ports: Some(
                        ["UDP", "TCP"]
                            .into_iter()
                            .map(|protocol| NetworkPolicyPort {
                                protocol: Some(protocol.into()),
                                port: Some(IntOrString::Int(53)),
                                end_port: None,
                            })
                            .collect(),
                    ),
                }]),
                ..Default::default()
            },
        ),
    ];
    let mut platform = trusted(&settings.gateway_namespaces);
    platform.extend(trusted(&settings.monitoring_namespaces));
    if !platform.is_empty() {
        policies.push((
            ALLOW_PLATFORM,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![namespaces_peer(&platform)]),
                    ports: None,
                }]),
                ..Default::default()
            },
        ));
    }
    // The platform's object store and identity provider, where this project uses them.
    let mut services: Vec<NetworkPolicyPeer> = Vec::new();
    let peers = [
        settings
            .storage
            .as_ref()
            .filter(|_| Part::Storage.enabled(project.project, settings))
            .map(|s| &s.egress_to),
        settings
            .identity
            .as_ref()
            .filter(|_| Part::Identity.enabled(project.project, settings))
            .map(|s| &s.egress_to),
    ];
    for egress in peers.into_iter().flatten() {
        let namespaces = trusted(&egress.namespaces);
        if !namespaces.is_empty() {
            services.push(namespaces_peer(&namespaces));
        }
        services.extend(egress.cidrs.iter().map(|c| cidr_peer(c)));
    }
    if !services.is_empty() {
        policies.push((
            ALLOW_PLATFORM_SERVICES,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(services),
                    ports: None,
                }]),
                ..Default::default()
            },
        ));
    }
    if let Some(network) = &project.project.spec.network {
        if !network.allow_ingress_from_namespaces.is_empty() {
            policies.push((
                ALLOW_EXTRA_INGRESS,
                NetworkPolicySpec {
                    pod_selector: all_pods(),
                    policy_types: Some(vec!["Ingress".into()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(vec![namespaces_peer(
                            &network.allow_ingress_from_namespaces,
                        )]),
                        ports: None,
                    }]),
                    ..Default::default()
                },
            ));
        }
        if !network.allow_egress_to.is_empty() {
            policies.push((
                ALLOW_EXTRA_EGRESS,
                NetworkPolicySpec {
                    pod_selector: all_pods(),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(
                            network
                                .allow_egress_to
                                .iter()
                                .map(|c| cidr_peer(c))
                                .collect(),
                        ),
                        ports: None,
                    }]),
                    ..Default::default()
                },
            ));
        }
    }
    policies
}
