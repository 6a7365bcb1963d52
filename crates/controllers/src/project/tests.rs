//! Unit and property tests of the pure build step.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, OWNER_UID, PROJECT};
use berth_api::project::{NetworkSpec, PodSecuritySpec, ResourceQuotaSpec};
use berth_api::{
    Member, MemberKind, PlatformSettingsSpec, PodSecurityLevel, Project, ProjectSpec, Role,
};

use super::build::{Built, Environment, quota_hard};
use super::validate::{Known, validate};

const UID: &str = "3f1c0a7e-0000-4000-8000-000000000001";

/// Validates, then builds.
fn build(
    project: &Project,
    settings: &PlatformSettingsSpec,
    env: Environment,
) -> Result<Built, berth_reconcile::Error> {
    let v = validate(project, settings, "berth-system", Known::default())
        .map_err(|i| berth_reconcile::Error::invalid(i.message))?;
    super::build::build(&v, settings, &env)
}

fn istio(installed: bool) -> Environment {
    Environment {
        authorization_policy: installed
            .then(|| crate::discovery::AUTHORIZATION_POLICY.at("v1beta1")),
        ..Default::default()
    }
}

fn with_uid(mut project: Project) -> Project {
    project.metadata.uid = Some(UID.into());
    project
}

fn seed_project() -> Project {
    with_uid(Project::new(
        "example-project",
        ProjectSpec {
            owners: vec![
                "data.scientist@example.com".into(),
                "mle@example.com".into(),
            ],
            resource_quota: Some(ResourceQuotaSpec {
                hard: BTreeMap::from([
                    ("cpu".to_owned(), Quantity("16".into())),
                    ("memory".to_owned(), Quantity("32Gi".into())),
                ]),
            }),
            ..Default::default()
        },
    ))
}

fn kinds_of(
    project: &Project,
    settings: &PlatformSettingsSpec,
    env: Environment,
) -> Vec<(String, String)> {
    build(project, settings, env)
        .unwrap()
        .children
        .iter()
        .map(|d| {
            (
                d.kind.resource.kind.clone(),
                d.object.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn the_seed_project_gets_everything_it_needs() {
    let built = build(
        &seed_project(),
        &PlatformSettingsSpec::default(),
        Environment::default(),
    )
    .unwrap();
    assert_eq!(
        built
            .namespace()
            .and_then(|n| n.object.metadata.name.clone()),
        Some("example-project".to_owned())
    );
    let names = kinds_of(
        &seed_project(),
        &PlatformSettingsSpec::default(),
        Environment::default(),
    );
    assert_eq!(names[0], ("Namespace".into(), "example-project".into()));
    let count = |kind: &str| names.iter().filter(|(k, _)| k == kind).count();
    // Two owners plus the automation account.
    assert_eq!(count("RoleBinding"), 3);
    // The automation account and the model servers' (kubernetes auth mode).
    assert_eq!(count("ServiceAccount"), 2);
    assert_eq!(count("ResourceQuota"), 1);
    assert_eq!(count("LimitRange"), 1);
    assert_eq!(count("NetworkPolicy"), 3);
    // Owners may manage the Project itself; there are no other members to read it.
    assert_eq!(count("ClusterRole"), 2);
    // The owners', and the model servers' account to berth-token-reviewer.
    assert_eq!(count("ClusterRoleBinding"), 2);
    assert_eq!(count("AuthorizationPolicy"), 0);
}

#[test]
fn namespace_carries_pod_security_and_user_labels() {
    let mut project = seed_project();
    project.spec.pod_security = Some(PodSecuritySpec {
        level: PodSecurityLevel::Baseline,
    });
    project.spec.namespace_labels = BTreeMap::from([("team".to_owned(), "risk".to_owned())]);
    let built = build(
        &project,
        &PlatformSettingsSpec::default(),
        Environment::default(),
    )
    .unwrap();
    let labels = built.children[0].object.metadata.labels.clone().unwrap();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "baseline");
    assert_eq!(labels["team"], "risk");
    assert_eq!(labels[PROJECT], "example-project");
}

#[test]
fn project_quota_replaces_the_defaults_it_names_in_any_spelling() {
    let hard = quota_hard(&PlatformSettingsSpec::default(), &seed_project());
    // `cpu` and `requests.cpu` are one resource: the project's ask replaces the default, and the
    // quota names it once, canonically.
    assert_eq!(hard["requests.cpu"], Quantity("16".into()));
    assert_eq!(hard["requests.memory"], Quantity("32Gi".into()));
    assert!(!hard.contains_key("cpu"));
    assert!(!hard.contains_key("memory"));
    assert!(hard.contains_key("limits.cpu"));
    // What the project does not name keeps its default, GPUs included.
    assert_eq!(hard["requests.nvidia.com/gpu"], Quantity("0".into()));
    let mut gpus = seed_project();
    if let Some(q) = gpus.spec.resource_quota.as_mut() {
        q.hard.insert("nvidia.com/gpu".into(), Quantity("2".into()));
        q.hard.insert("count/secrets".into(), Quantity("10".into()));
    }
    let hard = quota_hard(&PlatformSettingsSpec::default(), &gpus);
    assert_eq!(hard["requests.nvidia.com/gpu"], Quantity("2".into()));
    assert_eq!(hard["secrets"], Quantity("10".into()));
    assert!(!hard.contains_key("nvidia.com/gpu") && !hard.contains_key("count/secrets"));
}

#[test]
fn settings_switch_on_istio_and_kubeflow() {
    let mut settings = PlatformSettingsSpec::default();
    settings.istio.enabled = true;
    settings.kubeflow.enabled = true;
    let env = istio(true);
    let built = build(&seed_project(), &settings, env.clone()).unwrap();
    let labels = built.children[0].object.metadata.labels.clone().unwrap();
    assert_eq!(labels["istio-injection"], "enabled");
    assert_eq!(labels["app.kubernetes.io/part-of"], "kubeflow-profile");
    let names = kinds_of(&seed_project(), &settings, env);
    assert!(names.contains(&("ServiceAccount".into(), "default-editor".into())));
    assert!(names.contains(&("ServiceAccount".into(), "default-viewer".into())));
    assert!(names.contains(&("AuthorizationPolicy".into(), "berth-members".into())));
    // At the version discovery found.
    let built = build(&seed_project(), &settings, istio(true)).unwrap();
    let policy = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == "AuthorizationPolicy")
        .map(|d| d.kind.resource.api_version.clone());
    assert_eq!(policy.as_deref(), Some("security.istio.io/v1beta1"));
    // Istio enabled but not installed: no AuthorizationPolicy is attempted.
    let names = kinds_of(&seed_project(), &settings, Environment::default());
    assert!(!names.iter().any(|(k, _)| k == "AuthorizationPolicy"));
}

#[test]
fn extra_network_rules_become_policies() {
    let mut project = seed_project();
    project.spec.network = Some(NetworkSpec {
        allow_ingress_from_namespaces: vec!["ingress-team".into()],
        allow_egress_to: vec!["10.20.0.0/16".into()],
    });
    let settings = PlatformSettingsSpec {
        gateway_namespaces: vec!["istio-system".into()],
        ..Default::default()
    };
    let names = kinds_of(&project, &settings, Environment::default());
    for policy in [
        "berth-default-deny",
        "berth-allow-same-namespace",
        "berth-allow-dns",
        "berth-allow-platform",
        "berth-allow-extra-ingress",
        "berth-allow-extra-egress",
    ] {
        assert!(
            names.contains(&("NetworkPolicy".into(), policy.into())),
            "{policy} missing"
        );
    }
}

#[test]
fn a_platform_namespace_a_project_owns_is_never_trusted() {
    let settings = PlatformSettingsSpec {
        gateway_namespaces: vec!["istio-system".into(), "gw-taken".into()],
        monitoring_namespaces: vec!["monitoring".into()],
        ..Default::default()
    };
    let env = Environment {
        untrusted: ["gw-taken".to_owned()].into(),
        ..Default::default()
    };
    let built = build(&seed_project(), &settings, env).unwrap();
    let platform = built
        .children
        .iter()
        .find(|d| d.object.metadata.name.as_deref() == Some("berth-allow-platform"))
        .map(|d| d.object.data["spec"].to_string())
        .unwrap_or_default();
    assert!(
        platform.contains("istio-system") && platform.contains("monitoring"),
        "{platform}"
    );
    assert!(!platform.contains("gw-taken"), "{platform}");
}

#[test]
fn an_adopted_namespace_is_marked_so() {
    let env = Environment {
        adopted: true,
        ..Default::default()
    };
    let built = build(&seed_project(), &PlatformSettingsSpec::default(), env).unwrap();
    let annotations = built
        .namespace()
        .and_then(|n| n.object.metadata.annotations.clone())
        .unwrap_or_default();
    assert_eq!(
        annotations
            .get(super::build::ADOPTED_ANNOTATION)
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn a_credentials_secret_has_no_owner_and_records_only_ids() {
    let project = seed_project();
    let v = validate(
        &project,
        &PlatformSettingsSpec::default(),
        "berth-system",
        Known::default(),
    )
    .unwrap();
    let contents = super::build::secret::Contents {
        type_: "Opaque".into(),
        data: BTreeMap::from([("AWS_SECRET_ACCESS_KEY".to_owned(), "s3cr3t".to_owned())]),
        credential_id: "GK123".into(),
        fingerprint: None,
    };
    let secret =
        super::build::secret::credentials(&v, "berth-storage", &contents, Some("2026-11-30"));
    assert!(secret.metadata.owner_references.is_none());
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["berth.dev/credential-id"], "GK123");
    assert_eq!(annotations["berth.dev/rotation"], "2026-11-30");
    assert!(!format!("{annotations:?}").contains("s3cr3t"));
    assert_eq!(
        secret
            .metadata
            .labels
            .unwrap_or_default()
            .get(OWNER_UID)
            .map(String::as_str),
        Some(UID)
    );
}

fn member_strategy() -> impl Strategy<Value = Member> {
    (
        prop_oneof![
            Just(MemberKind::User),
            Just(MemberKind::Group),
            Just(MemberKind::ServiceAccount)
        ],
        "[ -~]{1,80}",
        prop_oneof![Just(Role::Owner), Just(Role::Editor), Just(Role::Viewer)],
    )
        .prop_map(|(kind, name, role)| Member { kind, name, role })
}

proptest! {
    #[test]
    fn every_child_is_labelled_and_owned(
        owners in proptest::collection::vec("[ -~]{1,60}", 0..4),
        members in proptest::collection::vec(member_strategy(), 0..12),
        ingress in proptest::collection::vec("[a-z][a-z0-9-]{0,20}", 0..3),
        istio in any::<bool>(),
        kubeflow in any::<bool>(),
        namespace in proptest::option::of("[a-z]([a-z0-9-]{0,30}[a-z0-9])?"),
    ) {
        let mut owners = owners;
        owners.push("ada@example.com".into());
        let project = with_uid(Project::new("p", ProjectSpec {
            owners,
            members,
            namespace,
            network: Some(NetworkSpec { allow_ingress_from_namespaces: ingress, allow_egress_to: vec![] }),
            ..Default::default()
        }));
        let mut settings = PlatformSettingsSpec::default();
        settings.istio.enabled = istio;
        settings.kubeflow.enabled = kubeflow;
        // Specs validation refuses (a ServiceAccount member with two '/') are not built.
        let built = build(&project, &settings, self::istio(istio));
        prop_assume!(built.is_ok());
        let built = built.unwrap();
        let mut names = std::collections::HashSet::new();
        for child in &built.children {
            let meta = &child.object.metadata;
            let labels = meta.labels.clone().unwrap_or_default();
            prop_assert_eq!(labels.get(MANAGED_BY).map(String::as_str), Some(MANAGED_BY_VALUE));
            prop_assert_eq!(labels.get(PROJECT).map(String::as_str), Some("p"));
            prop_assert_eq!(labels.get(OWNER_UID).map(String::as_str), Some(UID));
            let owner = meta.owner_references.clone().unwrap_or_default();
            if child.kind.namespaced || child.kind.resource.kind == "Namespace" {
                // The garbage collector must never take a namespace or what is in it.
                prop_assert!(owner.is_empty(), "{} {:?} has an ownerReference", child.kind.resource.kind, meta.name);
            } else {
                prop_assert_eq!(owner.len(), 1);
                prop_assert_eq!(owner[0].controller, Some(true));
                prop_assert_eq!(owner[0].kind.as_str(), "Project");
            }
            let name = meta.name.clone().unwrap_or_default();
            prop_assert!(!name.is_empty() && name.len() <= 253, "bad name {}", name);
            prop_assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'), "bad name {}", name);
            // Deterministic and unique: never two objects of a kind with one name.
            prop_assert!(names.insert((child.kind.resource.kind.clone(), meta.namespace.clone(), name.clone())), "duplicate {}", name);
        }
    }
}

mod outside {
    use k8s_openapi::api::core::v1::ResourceQuotaStatus;
    use k8s_openapi::jiff::Timestamp;

    use berth_api::conditions::{self, Status};
    use berth_api::providers::{AdminSecretRef, RegistrySpec, StorageProvider, StorageSettings};

    use super::super::part::{Part, PartState};
    use super::super::status::{Applied, Outcome, Summary, status};
    use super::*;
    use berth_api::members::{EmailUserNames, effective};

    fn applied(parts: Vec<(Part, PartState)>) -> Outcome {
        Outcome::Applied(Box::new(Applied {
            quota: Some(ResourceQuotaStatus {
                hard: Some(BTreeMap::from([("pods".into(), Quantity("10".into()))])),
                used: None,
            }),
            network_policies: 4,
            parts,
            ..Default::default()
        }))
    }

    fn summary(project: &Project) -> Summary {
        Summary {
            namespace: "example-project".into(),
            subjects: effective(&project.spec, EmailUserNames::LowerCase),
            deletion_policy: Some(berth_api::DeletionPolicy::Retain),
        }
    }

    fn storage_settings() -> PlatformSettingsSpec {
        PlatformSettingsSpec {
            storage: Some(StorageSettings {
                provider: StorageProvider::Garage,
                endpoint: "http://127.0.0.1:3900".into(),
                admin_endpoint: "http://127.0.0.1:3903".into(),
                region: "garage".into(),
                admin_secret_ref: AdminSecretRef {
                    name: "garage-admin".into(),
                },
                bucket_template: "{project}".into(),
                default_quota: None,
                egress_to: berth_api::providers::EgressPeers {
                    namespaces: vec!["storage".into()],
                    cidrs: vec!["10.9.0.0/16".into()],
                    ports: vec![],
                },
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_status_records_the_policy_and_a_namespace_the_platform_now_reserves() {
        let project = seed_project();
        let outcome = Outcome::Applied(Box::new(Applied {
            now_reserved: Some("namespace example-project is now reserved for the platform".into()),
            ..Default::default()
        }));
        let s = status(&project, &summary(&project), &outcome, Timestamp::now());
        assert_eq!(s.deletion_policy, Some(berth_api::DeletionPolicy::Retain));
        let ns = conditions::get(&s.conditions, "NamespaceReady");
        assert_eq!(ns.map(|c| c.reason.as_str()), Some("NamespaceReserved"));
        assert!(!conditions::is_true(&s.conditions, "Ready"));
        // Invalid: the recorded policy stays.
        let mut later = project.clone();
        later.status = Some(s);
        let invalid = Outcome::Invalid {
            reason: "InvalidSpec".into(),
            message: "no owner".into(),
        };
        let mut sum = summary(&later);
        sum.deletion_policy = None;
        let s = status(&later, &sum, &invalid, Timestamp::now());
        assert_eq!(s.deletion_policy, Some(berth_api::DeletionPolicy::Retain));
    }

    #[test]
    fn ready_covers_only_the_enabled_parts() {
        let project = seed_project();
        let s = status(
            &project,
            &summary(&project),
            &applied(vec![
                (Part::Storage, PartState::Disabled),
                (Part::Identity, PartState::Disabled),
                (Part::Registry, PartState::Disabled),
            ]),
            Timestamp::now(),
        );
        assert!(conditions::is_true(&s.conditions, "Ready"));
        assert!(conditions::get(&s.conditions, "StorageReady").is_none());
    }

    #[test]
    fn a_failing_provider_holds_ready_but_not_the_cluster_side() {
        let project = seed_project();
        let s = status(
            &project,
            &summary(&project),
            &applied(vec![
                (
                    Part::Storage,
                    PartState::Set(
                        Status::False,
                        "StorageUnreachable".into(),
                        "connection refused".into(),
                    ),
                ),
                (Part::Identity, PartState::Disabled),
                (
                    Part::Registry,
                    PartState::Set(Status::True, "RegistryProvisioned".into(), "ok".into()),
                ),
            ]),
            Timestamp::now(),
        );
        for t in [
            "NamespaceReady",
            "AccessReady",
            "NetworkReady",
            "RegistryReady",
        ] {
            assert!(conditions::is_true(&s.conditions, t), "{t}");
        }
        let ready = conditions::get(&s.conditions, "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("False"));
        assert_eq!(ready.map(|c| c.reason.as_str()), Some("StorageUnreachable"));
    }

    #[test]
    fn a_part_waiting_out_its_backoff_keeps_its_condition() {
        let mut project = seed_project();
        let first = status(
            &project,
            &summary(&project),
            &applied(vec![(
                Part::Storage,
                PartState::Set(Status::False, "StorageUnreachable".into(), "down".into()),
            )]),
            Timestamp::now(),
        );
        project.status = Some(first.clone());
        let second = status(
            &project,
            &summary(&project),
            &applied(vec![(Part::Storage, PartState::Unchanged)]),
            Timestamp::now(),
        );
        assert_eq!(
            conditions::get(&second.conditions, "StorageReady"),
            conditions::get(&first.conditions, "StorageReady")
        );
        assert!(!conditions::is_true(&second.conditions, "Ready"));
    }

    #[test]
    fn project_pods_may_reach_the_object_store_unless_opted_out() {
        let settings = storage_settings();
        let mut project = seed_project();
        let policy = |project: &Project| {
            build(project, &settings, Environment::default())
                .ok()
                .and_then(|b| {
                    b.children.into_iter().find(|d| {
                        d.object.metadata.name.as_deref() == Some("berth-allow-platform-services")
                    })
                })
                .map(|d| d.object.data["spec"]["egress"].clone())
        };
        assert_eq!(
            policy(&project),
            Some(serde_json::json!([{"to": [
                {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["storage"]}]}},
                {"ipBlock": {"cidr": "10.9.0.0/16"}},
            ]}]))
        );
        project.spec.storage = Some(berth_api::providers::StorageSpec {
            enabled: Some(false),
            quota: None,
        });
        assert_eq!(policy(&project), None);
    }

    /// Regression (the object store and the identity provider on one address, as on a single
    /// node: a project without storage but with identity reached the object store too): each
    /// service's egress is its own rule, opening only the ports the settings name.
    #[test]
    fn each_platform_service_opens_its_own_ports_only() {
        let mut settings = storage_settings();
        let peers = |port: i32| berth_api::providers::EgressPeers {
            namespaces: vec![],
            cidrs: vec!["198.18.0.1/32".into()],
            ports: vec![port],
        };
        if let Some(storage) = settings.storage.as_mut() {
            storage.egress_to = peers(3900);
        }
        let mut identity: berth_api::providers::IdentitySettings =
            serde_json::from_value(serde_json::json!({
                "provider": "keycloak",
                "url": "http://198.18.0.1:8180",
                "realm": "berth",
                "adminSecretRef": {"name": "keycloak-admin"},
            }))
            .unwrap();
        identity.egress_to = peers(8180);
        settings.identity = Some(identity);
        let mut project = seed_project();
        let policy = |project: &Project| {
            build(project, &settings, Environment::default())
                .ok()
                .and_then(|b| {
                    b.children.into_iter().find(|d| {
                        d.object.metadata.name.as_deref() == Some("berth-allow-platform-services")
                    })
                })
                .map(|d| d.object.data["spec"]["egress"].clone())
        };
        let rule = |port: i32| {
            serde_json::json!({
                "to": [{"ipBlock": {"cidr": "198.18.0.1/32"}}],
                "ports": [{"protocol": "TCP", "port": port}],
            })
        };
        assert_eq!(
            policy(&project),
            Some(serde_json::json!([rule(3900), rule(8180)]))
        );
        project.spec.storage = Some(berth_api::providers::StorageSpec {
            enabled: Some(false),
            quota: None,
        });
        assert_eq!(policy(&project), Some(serde_json::json!([rule(8180)])));
    }

    #[test]
    fn projects_opt_out_and_service_accounts_pull_with_the_robot() {
        let mut settings = storage_settings();
        let mut project = seed_project();
        assert!(Part::Storage.enabled(&project, &settings));
        project.spec.storage = Some(berth_api::providers::StorageSpec {
            enabled: Some(false),
            quota: None,
        });
        assert!(!Part::Storage.enabled(&project, &settings));
        assert!(!Part::Registry.enabled(&project, &settings));

        settings.registry = Some(
            serde_json::from_value(serde_json::json!({
                "provider": "harbor", "url": "https://harbor.example.com",
                "adminSecretRef": {"name": "harbor-admin"},
            }))
            .unwrap_or_else(|_| unreachable!()),
        );
        let built = build(&project, &settings, Environment::default());
        let Ok(built) = built else {
            unreachable!("the seed project builds")
        };
        let sa = built
            .children
            .iter()
            .find(|d| d.kind.resource.kind == "ServiceAccount")
            .map(|d| d.object.data["imagePullSecrets"].clone());
        assert_eq!(sa, Some(serde_json::json!([{"name": "berth-registry"}])));
        project.spec.registry = Some(RegistrySpec {
            enabled: Some(false),
        });
        let Ok(built) = build(&project, &settings, Environment::default()) else {
            unreachable!("the seed project builds")
        };
        assert!(
            built
                .children
                .iter()
                .filter(|d| d.kind.resource.kind == "ServiceAccount")
                .all(|d| d.object.data.get("imagePullSecrets").is_none())
        );
    }
}

#[test]
fn the_console_reaches_notebooks_only_where_the_console_runs_elsewhere() {
    let project = seed_project();
    let settings = PlatformSettingsSpec::default();
    let policy = ("NetworkPolicy".to_owned(), "berth-allow-console".to_owned());
    let with = |console: Option<&str>| Environment {
        console_namespace: console.map(str::to_owned),
        ..Default::default()
    };
    assert!(kinds_of(&project, &settings, with(Some("berth-system"))).contains(&policy));
    assert!(!kinds_of(&project, &settings, with(None)).contains(&policy));
}
