//! The pure heart of the Project controller: from a Project and the platform settings to every
//! object that should exist for it. No IO; unit- and property-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec as K8sLimitRangeSpec, LocalObjectReference,
    Namespace, ResourceQuota, ResourceQuotaSpec as K8sResourceQuotaSpec, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject as RbacSubject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::ObjectMeta;
use serde_json::json;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, PROJECT};
use berth_api::settings::IstioMode;
use berth_api::{MemberKind, PlatformSettingsSpec, Project, Role};
use berth_reconcile::{Desired, Error};

use super::external::Part;
use super::members::{Subject, effective};
use crate::kinds;
use crate::names::label_from;

/// The ClusterRoles members are bound to in their namespace (shipped in deploy/rbac).
pub const OWNER_ROLE: &str = "berth-project-owner";
pub const EDITOR_ROLE: &str = "berth-project-editor";
pub const VIEWER_ROLE: &str = "berth-project-viewer";
/// The service account for automation in the project: an editor.
pub const AUTOMATION_ACCOUNT: &str = "project-automation";
/// Set on a namespace that outlived its Project under the Retain policy.
pub const RETAINED_LABEL: &str = "berth.dev/retained";

/// Everything a Project should have, in the order to apply it (the namespace first).
#[derive(Clone, Debug)]
pub struct Built {
    pub namespace: String,
    pub subjects: Vec<Subject>,
    pub children: Vec<Desired>,
}

/// What the builder needs to know about the cluster besides the spec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Environment {
    /// Istio's CRDs are installed, so an AuthorizationPolicy can be created.
    pub istio_installed: bool,
}

fn role_cluster_role(role: Role) -> &'static str {
    match role {
        Role::Owner => OWNER_ROLE,
        Role::Editor => EDITOR_ROLE,
        Role::Viewer => VIEWER_ROLE,
    }
}

/// Builds every desired child of `project`.
pub fn build(
    project: &Project,
    settings: &PlatformSettingsSpec,
    env: Environment,
) -> Result<Built, Error> {
    let name = project
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::internal("the project has no name"))?;
    let namespace = project
        .namespace_name()
        .ok_or_else(|| Error::internal("the project has no namespace"))?
        .to_owned();
    let owner = project
        .controller_owner_ref(&())
        .ok_or_else(|| Error::internal("the project has no uid yet"))?;
    let subjects = effective(project);

    let labels = || {
        BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (PROJECT.to_owned(), name.clone()),
        ])
    };
    let meta = |object_name: &str, ns: Option<&str>| ObjectMeta {
        name: Some(object_name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: Some(labels()),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    };
    let ns = Some(namespace.as_str());
    let mut children = Vec::new();

    // The namespace.
    let level = project
        .spec
        .pod_security
        .as_ref()
        .map(|p| p.level)
        .unwrap_or_default();
    let mut ns_labels = project.spec.namespace_labels.clone();
    ns_labels.extend(labels());
    for mode in ["enforce", "audit", "warn"] {
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.as_str().to_owned(),
        );
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_owned(),
        );
    }
    if settings.istio.enabled {
        match settings.istio.mode {
            IstioMode::Sidecar => ns_labels.insert("istio-injection".into(), "enabled".into()),
            IstioMode::Ambient => {
                ns_labels.insert("istio.io/dataplane-mode".into(), "ambient".into())
            }
        };
    }
    let mut ns_annotations = project.spec.namespace_annotations.clone();
    if settings.kubeflow.enabled {
        for (k, v) in [
            ("app.kubernetes.io/part-of", "kubeflow-profile"),
            ("katib.kubeflow.org/metrics-collector-injection", "enabled"),
            ("pipelines.kubeflow.org/enabled", "true"),
            ("serving.kubeflow.org/inferenceservice", "enabled"),
        ] {
            ns_labels.insert(k.into(), v.into());
        }
        if let Some(first) = subjects
            .iter()
            .find(|s| s.role == Role::Owner && s.kind == MemberKind::User)
        {
            ns_annotations.insert("owner".into(), first.name.clone());
        }
    }
    let mut ns_meta = meta(&namespace, None);
    ns_meta.labels = Some(ns_labels);
    if !ns_annotations.is_empty() {
        ns_meta.annotations = Some(ns_annotations);
    }
    children.push(Desired::new(
        &kinds::namespace(),
        &Namespace {
            metadata: ns_meta,
            ..Default::default()
        },
    )?);

    // Access in the namespace: one RoleBinding per member.
    for subject in &subjects {
        let kind = match subject.kind {
            MemberKind::User => "user",
            MemberKind::Group => "group",
            MemberKind::ServiceAccount => "sa",
        };
        let binding_name = label_from(
            &format!("berth-{}-{kind}", subject.role.as_str()),
            &subject.name,
        );
        children.push(Desired::new(
            &kinds::role_binding(),
            &RoleBinding {
                metadata: meta(&binding_name, ns),
                role_ref: cluster_role_ref(role_cluster_role(subject.role)),
                subjects: Some(vec![rbac_subject(subject, &namespace)]),
            },
        )?);
    }

    // Access to the Project object itself: owners manage it, everyone else may read it.
    /// A per-project ClusterRole: its name suffix, its verbs on the Project, and who gets it.
    type ProjectRole = (&'static str, &'static [&'static str], fn(&Subject) -> bool);
    let project_roles: [ProjectRole; 2] = [
        ("owner", &["get", "update", "patch", "delete"], |s| {
            s.role == Role::Owner
        }),
        ("member", &["get"], |s| s.role != Role::Owner),
    ];
    for (suffix, verbs, selects) in project_roles {
        let role_name = format!("berth-project-{name}-{suffix}");
        children.push(Desired::new(
            &kinds::cluster_role(),
            &ClusterRole {
                metadata: meta(&role_name, None),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![berth_api::GROUP.to_owned()]),
                    resources: Some(vec!["projects".to_owned()]),
                    resource_names: Some(vec![name.clone()]),
                    verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )?);
        let selected: Vec<RbacSubject> = subjects
            .iter()
            .filter(|s| selects(s))
            .map(|s| rbac_subject(s, &namespace))
            .collect();
        if !selected.is_empty() {
            children.push(Desired::new(
                &kinds::cluster_role_binding(),
                &ClusterRoleBinding {
                    metadata: meta(&role_name, None),
                    role_ref: cluster_role_ref(&role_name),
                    subjects: Some(selected),
                },
            )?);
        }
    }

    // Service accounts, each bound to its role.
    let mut accounts = vec![(AUTOMATION_ACCOUNT, EDITOR_ROLE)];
    if settings.kubeflow.enabled {
        accounts.push(("default-editor", EDITOR_ROLE));
        accounts.push(("default-viewer", VIEWER_ROLE));
    }
    // With a registry, every service account pulls with the project's robot.
    let pull_secrets = super::external::Part::Registry
        .enabled(project, settings)
        .then(|| {
            vec![LocalObjectReference {
                name: berth_api::providers::REGISTRY_SECRET.to_owned(),
            }]
        });
    for (account, role) in accounts {
        children.push(Desired::new(
            &kinds::service_account(),
            &ServiceAccount {
                metadata: meta(account, ns),
                image_pull_secrets: pull_secrets.clone(),
                ..Default::default()
            },
        )?);
        children.push(Desired::new(
            &kinds::role_binding(),
            &RoleBinding {
                metadata: meta(&format!("berth-sa-{account}"), ns),
                role_ref: cluster_role_ref(role),
                subjects: Some(vec![RbacSubject {
                    kind: "ServiceAccount".into(),
                    name: account.to_owned(),
                    namespace: Some(namespace.clone()),
                    api_group: None,
                }]),
            },
        )?);
    }

    // Quota and container defaults: the platform's, with the project's overrides.
    let hard = quota_hard(settings, project);
    children.push(Desired::new(
        &kinds::resource_quota(),
        &ResourceQuota {
            metadata: meta("berth-quota", ns),
            spec: Some(K8sResourceQuotaSpec {
                hard: Some(hard),
                ..Default::default()
            }),
            ..Default::default()
        },
    )?);
    let mut defaults = settings.limit_range.default.clone();
    let mut default_requests = settings.limit_range.default_request.clone();
    if let Some(limits) = &project.spec.limit_range {
        defaults.extend(limits.default.clone());
        default_requests.extend(limits.default_request.clone());
    }
    children.push(Desired::new(
        &kinds::limit_range(),
        &LimitRange {
            metadata: meta("berth-limits", ns),
            spec: Some(K8sLimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".into(),
                    default: (!defaults.is_empty()).then_some(defaults),
                    default_request: (!default_requests.is_empty()).then_some(default_requests),
                    ..Default::default()
                }],
            }),
        },
    )?);

    // Network isolation.
    for policy in network_policies(project, settings, &namespace) {
        let (policy_name, spec) = policy;
        children.push(Desired::new(
            &kinds::network_policy(),
            &NetworkPolicy {
                metadata: meta(policy_name, ns),
                spec: Some(spec),
            },
        )?);
    }

    // Istio: members in by the user-id header the gateway sets.
    if settings.istio.enabled && env.istio_installed {
        let users: Vec<String> = subjects
            .iter()
            .filter(|s| s.kind == MemberKind::User)
            .map(|s| format!("{}{}", settings.istio.user_id_prefix, s.name))
            .collect();
        let header = format!("request.headers[{}]", settings.istio.user_id_header);
        let mut rules = vec![json!({"from": [{"source": {"namespaces": [namespace]}}]})];
        if !users.is_empty() {
            rules.push(json!({"when": [{"key": header, "values": users}]}));
        }
        if !settings.monitoring_namespaces.is_empty() {
            rules.push(
                json!({"from": [{"source": {"namespaces": settings.monitoring_namespaces}}]}),
            );
        }
        let object = json!({
            "metadata": serde_json::to_value(meta("berth-members", ns)).map_err(|e| Error::internal(e.to_string()))?,
            "spec": {"action": "ALLOW", "rules": rules},
        });
        children.push(Desired::from_value(&kinds::authorization_policy(), object)?);
    }

    Ok(Built {
        namespace,
        subjects,
        children,
    })
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
) -> BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
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

fn cluster_role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

fn rbac_subject(subject: &Subject, project_namespace: &str) -> RbacSubject {
    match subject.kind {
        MemberKind::User => RbacSubject {
            kind: "User".into(),
            name: subject.name.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        },
        MemberKind::Group => RbacSubject {
            kind: "Group".into(),
            name: subject.name.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        },
        MemberKind::ServiceAccount => {
            let (ns, name) = subject
                .name
                .split_once('/')
                .unwrap_or((project_namespace, subject.name.as_str()));
            RbacSubject {
                kind: "ServiceAccount".into(),
                name: name.to_owned(),
                namespace: Some(ns.to_owned()),
                api_group: None,
            }
        }
    }
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

fn all_pods() -> LabelSelector {
    LabelSelector::default()
}

/// Default deny, then what is allowed: the namespace itself, DNS, the platform's gateway and
/// monitoring namespaces, and the project's own extra rules.
fn network_policies(
    project: &Project,
    settings: &PlatformSettingsSpec,
    namespace: &str,
) -> Vec<(&'static str, NetworkPolicySpec)> {
    let same_namespace = NetworkPolicyPeer {
        pod_selector: Some(all_pods()),
        ..Default::default()
    };
    let mut policies = vec![
        (
            "berth-default-deny",
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                ..Default::default()
            },
        ),
        (
            "berth-allow-same-namespace",
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
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
            "berth-allow-dns",
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
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
    let platform: Vec<String> = settings
        .gateway_namespaces
        .iter()
        .chain(&settings.monitoring_namespaces)
        .filter(|n| n.as_str() != namespace)
        .cloned()
        .collect();
    if !platform.is_empty() {
        policies.push((
            "berth-allow-platform",
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
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
            .filter(|_| Part::Storage.enabled(project, settings))
            .map(|s| &s.egress_to),
        settings
            .identity
            .as_ref()
            .filter(|_| Part::Identity.enabled(project, settings))
            .map(|s| &s.egress_to),
    ];
    for egress in peers.into_iter().flatten() {
        if !egress.namespaces.is_empty() {
            services.push(namespaces_peer(&egress.namespaces));
        }
        services.extend(egress.cidrs.iter().map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..Default::default()
        }));
    }
    if !services.is_empty() {
        policies.push((
            "berth-allow-platform-services",
            NetworkPolicySpec {
                pod_selector: Some(all_pods()),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(services),
                    ports: None,
                }]),
                ..Default::default()
            },
        ));
    }
    if let Some(network) = &project.spec.network {
        if !network.allow_ingress_from_namespaces.is_empty() {
            policies.push((
                "berth-allow-extra-ingress",
                NetworkPolicySpec {
                    pod_selector: Some(all_pods()),
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
                "berth-allow-extra-egress",
                NetworkPolicySpec {
                    pod_selector: Some(all_pods()),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(
                            network
                                .allow_egress_to
                                .iter()
                                .map(|cidr| NetworkPolicyPeer {
                                    ip_block: Some(IPBlock {
                                        cidr: cidr.clone(),
                                        except: None,
                                    }),
                                    ..Default::default()
                                })
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
