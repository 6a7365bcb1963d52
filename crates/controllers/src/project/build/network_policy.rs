//! Network isolation: default deny, then what is allowed: the namespace itself, DNS, the
//! platform's gateway and monitoring namespaces, the platform's object store and identity
//! provider where the project uses them, the console's pods to notebooks' JupyterLab port, and
//! the project's own extra rules.
//!
//! A namespace the settings name as the platform's but that belongs to a project (the settings
//! changed after the project had it) is never trusted: it is left out of every peer list.
//!
//! `spec.network.allowEgressTo` never opens what no project may reach: link-local (the cloud
//! metadata service), the API server's addresses and `PlatformSettings.tenantEgress.blockedCIDRs`
//! are cut out of each range (`ipBlock.except`, `berth_api::egress::ip_block`), and a range that
//! lies wholly inside them opens nothing, with a note for the NetworkReady condition. Admission
//! refuses such ranges from non-admins; this holds for platform admins and for settings that
//! changed later.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use berth_api::PlatformSettingsSpec;
use berth_api::egress::{Cidr, ip_block};
use berth_reconcile::{Desired, Error};

use super::super::part::Part;
use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::{
    ALLOW_CONSOLE, ALLOW_DNS, ALLOW_EXTRA_EGRESS, ALLOW_EXTRA_INGRESS, ALLOW_PLATFORM,
    ALLOW_PLATFORM_SERVICES, ALLOW_SAME_NAMESPACE, CONSOLE_POD_LABEL, DEFAULT_DENY,
};

/// The project's NetworkPolicies, and notes for its NetworkReady condition about egress ranges
/// that open less than they ask (or nothing). `blocked` is what no project's egress may reach;
/// `console` is the namespace the console runs in (see [`console_policy`]).
pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
    blocked: &[Cidr],
    console: Option<&str>,
) -> Result<(Vec<Desired>, Vec<String>), Error> {
    let (mut policies, notes) = policies(project, settings, untrusted, blocked);
    if let Some(console) = console.filter(|c| *c != project.namespace && !untrusted.contains(*c)) {
        policies.push((ALLOW_CONSOLE, console_policy(console)));
    }
    let desired = policies
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
        .collect::<Result<_, _>>()?;
    Ok((desired, notes))
}

/// The namespaces whose traffic into the project's namespace the platform admits: the settings'
/// gateway and monitoring namespaces that are still the platform's (not the project's own, not
/// one a project holds), and the project's `spec.network.allowIngressFromNamespaces`.
pub fn trusted_ingress(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = settings
        .gateway_namespaces
        .iter()
        .chain(&settings.monitoring_namespaces)
        .filter(|n| n.as_str() != project.namespace && !untrusted.contains(n.as_str()))
        .cloned()
        .collect();
    if let Some(network) = &project.project.spec.network {
        out.extend(network.allow_ingress_from_namespaces.iter().cloned());
    }
    out
}

/// The peers `allowEgressTo` opens, each without the blocked ranges inside it, and a note for each
/// range that opens less than it names.
fn egress_peers(asked: &[String], blocked: &[Cidr]) -> (Vec<NetworkPolicyPeer>, Vec<String>) {
    let mut peers = Vec::new();
    let mut notes = Vec::new();
    for text in asked {
        let Ok(range) = Cidr::parse(text) else {
            notes.push(format!(
                "allowEgressTo {text:?} is not a CIDR range and opens nothing"
            ));
            continue;
        };
        match ip_block(&range, blocked) {
            Some((cidr, except)) => {
                if !except.is_empty() {
                    notes.push(format!(
                        "allowEgressTo {text} opens it except {}, which no project may reach",
                        except.join(", ")
                    ));
                }
                peers.push(NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr,
                        except: Some(except).filter(|e| !e.is_empty()),
                    }),
                    ..Default::default()
                });
            }
            None => notes.push(format!(
                "allowEgressTo {text} opens nothing: it lies inside a range no project may reach (link-local, the API server's addresses or PlatformSettings.spec.tenantEgress.blockedCIDRs)"
            )),
        }
    }
    (peers, notes)
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

/// Ingress to notebooks' pods (label `berth.dev/notebook`) on JupyterLab's port from the
/// console's pods only: label `app.kubernetes.io/name: berth-console` in namespace `console`
/// (by `kubernetes.io/metadata.name`, which the API server sets and no tenant can forge; no
/// tenant may create pods in the operator's namespace). The console checks every caller with
/// the API server before it forwards (docs/console.md).
pub fn console_policy(console: &str) -> NetworkPolicySpec {
    let (key, value) = CONSOLE_POD_LABEL;
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: berth_api::labels::NOTEBOOK.into(),
                operator: "Exists".into(),
                values: None,
            }]),
            ..Default::default()
        }),
        policy_types: Some(vec!["Ingress".into()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some([(key.to_owned(), value.to_owned())].into()),
                    ..Default::default()
                }),
                ..namespaces_peer(&[console.to_owned()])
            }]),
            ports: Some(vec![NetworkPolicyPort {
                protocol: Some("TCP".into()),
                port: Some(IntOrString::Int(crate::notebook::build::PORT)),
                end_port: None,
            }]),
        }]),
        ..Default::default()
    }
}

fn all_pods() -> Option<LabelSelector> {
    Some(LabelSelector::default())
}

type Policies = Vec<(&'static str, NetworkPolicySpec)>;

fn policies(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    untrusted: &BTreeSet<String>,
    blocked: &[Cidr],
) -> (Policies, Vec<String>) {
    let mut notes = Vec::new();
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
    // The platform's object store and identity provider, where this project uses them: one
    // rule each, so that each opens its own ports only.
    let mut services: Vec<NetworkPolicyEgressRule> = Vec::new();
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
        let mut to = Vec::new();
        let namespaces = trusted(&egress.namespaces);
        if !namespaces.is_empty() {
            to.push(namespaces_peer(&namespaces));
        }
        to.extend(egress.cidrs.iter().map(|c| cidr_peer(c)));
        if to.is_empty() {
            continue;
        }
        let ports = (!egress.ports.is_empty()).then(|| {
            egress
                .ports
                .iter()
                .map(|p| NetworkPolicyPort {
                    protocol: Some("TCP".into()),
                    port: Some(IntOrString::Int(*p)),
                    end_port: None,
                })
                .collect()
        });
        services.push(NetworkPolicyEgressRule {
            to: Some(to),
            ports,
        });
    }
    if !services.is_empty() {
        policies.push((
            ALLOW_PLATFORM_SERVICES,
            NetworkPolicySpec {
                pod_selector: all_pods(),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(services),
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
        let (peers, egress_notes) = egress_peers(&network.allow_egress_to, blocked);
        notes.extend(egress_notes);
        // No peer left: no policy. An egress rule without peers would open everything.
        if !peers.is_empty() {
            policies.push((
                ALLOW_EXTRA_EGRESS,
                NetworkPolicySpec {
                    pod_selector: all_pods(),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(peers),
                        ports: None,
                    }]),
                    ..Default::default()
                },
            ));
        }
    }
    (policies, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Cidr {
        Cidr::parse(text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn egress_never_opens_what_no_project_may_reach() {
        let mut blocked = berth_api::egress::link_local();
        blocked.push(c("198.19.0.1/32"));
        blocked.push(c("203.0.113.128/25"));
        let asked: Vec<String> = [
            "0.0.0.0/0",
            "169.254.169.254/32",
            "203.0.113.0/24",
            "203.0.113.200/32",
            "192.0.2.0/24",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let (peers, notes) = egress_peers(&asked, &blocked);
        let blocks: Vec<(String, Vec<String>)> = peers
            .iter()
            .filter_map(|p| p.ip_block.clone())
            .map(|b| (b.cidr, b.except.unwrap_or_default()))
            .collect();
        assert_eq!(
            blocks,
            vec![
                (
                    "0.0.0.0/0".to_owned(),
                    vec![
                        "169.254.0.0/16".to_owned(),
                        "198.19.0.1/32".to_owned(),
                        "203.0.113.128/25".to_owned()
                    ]
                ),
                (
                    "203.0.113.0/24".to_owned(),
                    vec!["203.0.113.128/25".to_owned()]
                ),
                ("192.0.2.0/24".to_owned(), vec![]),
            ]
        );
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("169.254.169.254/32 opens nothing"))
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("203.0.113.200/32 opens nothing"))
        );
    }

    #[test]
    fn only_the_consoles_pods_reach_notebooks_and_only_on_jupyters_port() {
        let spec = console_policy("berth-system");
        let text = serde_json::to_value(&spec).unwrap_or_default();
        assert_eq!(
            text["podSelector"],
            serde_json::json!({"matchExpressions": [{"key": "berth.dev/notebook", "operator": "Exists"}]})
        );
        assert_eq!(text["policyTypes"], serde_json::json!(["Ingress"]));
        assert!(spec.egress.is_none());
        // One peer: the namespace AND the pod label (one peer with both selectors, not two).
        assert_eq!(
            text["ingress"],
            serde_json::json!([{
                "from": [{
                    "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["berth-system"]}]},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "berth-console"}},
                }],
                "ports": [{"port": 8888, "protocol": "TCP"}],
            }])
        );
    }

    #[test]
    fn a_range_that_opens_nothing_leaves_no_policy() {
        let blocked = berth_api::egress::link_local();
        let (peers, notes) = egress_peers(&["169.254.0.0/16".to_owned()], &blocked);
        assert!(peers.is_empty());
        assert_eq!(notes.len(), 1);
    }
}
