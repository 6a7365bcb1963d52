//! The first step of every reconcile: from a Project, the platform settings and what the caches
//! say, either a [`Validated`] project (its namespace, members, names and policy, each checked) or
//! an [`Invalid`] one with every problem in words a user understands. Pure.
//!
//! It checks what the CRD schema cannot (or must hold even if the schema was bypassed):
//! an owner, the namespace's form and that it is not the platform's, service account members,
//! quantities. The names of the outside parts are checked per part later: a bad bucket name holds
//! up the bucket, not the namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use berth_api::members::effective;
use berth_api::project::DeletionPolicy;
use berth_api::{MemberKind, PlatformSettingsSpec, Project, Role};

use super::members::Subject;
use crate::names::{self, Refused, outside};

/// A Project that passed validation: everything build, apply and status need, checked.
#[derive(Clone, Debug)]
pub struct Validated<'a> {
    pub project: &'a Project,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub subjects: Vec<Subject>,
    /// The deletion policy in force (see [`Project::effective_deletion_policy`]), recorded in the
    /// status so that it never changes with the platform default.
    pub deletion_policy: DeletionPolicy,
    /// Set when the project already had its namespace before the platform named it in its
    /// settings: why it is reserved now. The project keeps it, isolated as before, but no other
    /// project trusts it, and its status says so.
    pub now_reserved: Option<String>,
    /// The names it has (or will get) outside the cluster.
    pub outside: OutsideNames,
    /// The controller ownerReference of its cluster-scoped children (per-project ClusterRoles):
    /// those go with the Project. Namespaced children carry the UID label instead.
    pub owner_reference: OwnerReference,
}

/// A Project's names outside the cluster: the ones its status records (claimed earlier), else the
/// ones the naming authority gives now. A name a backend would refuse is kept with its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideNames {
    pub bucket: Result<String, Refused>,
    pub oidc_client: String,
    pub oidc_group: String,
    pub registry_project: Result<String, Refused>,
    /// The prefix of the project's storage keys and registry robots.
    pub credential_prefix: String,
}

/// Why a Project cannot be reconciled as it is; nothing is created for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// `InvalidSpec` or `NamespaceReserved`.
    pub reason: &'static str,
    pub message: String,
}

/// What validation needs from the caches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Known {
    /// The project's namespace already carries its UID: Berth made (or adopted) it for it.
    pub namespace_ours: bool,
}

/// Validates `project`. `operator_namespace` is where Berth runs.
pub fn validate<'a>(
    project: &'a Project,
    settings: &PlatformSettingsSpec,
    operator_namespace: &str,
    known: Known,
) -> Result<Validated<'a>, Invalid> {
    let mut problems = Vec::new();
    let subjects = effective(&project.spec, settings.email_user_names);
    if !subjects.iter().any(|s| s.role == Role::Owner) {
        problems.push(
            "the project has no owner: list one under spec.owners, or give a member role: owner"
                .to_owned(),
        );
    }
    for subject in subjects
        .iter()
        .filter(|s| s.kind == MemberKind::ServiceAccount)
    {
        let (ns, name) = subject
            .name
            .split_once('/')
            .unwrap_or(("", subject.name.as_str()));
        if name.is_empty() || name.contains('/') || (subject.name.contains('/') && ns.is_empty()) {
            problems.push(format!(
                "service account member {:?} must be written 'name' or 'namespace/name'",
                subject.name
            ));
        }
    }
    let lists = [
        (
            "spec.resourceQuota.hard",
            project.spec.resource_quota.as_ref().map(|q| &q.hard),
        ),
        (
            "spec.limitRange.default",
            project.spec.limit_range.as_ref().map(|l| &l.default),
        ),
        (
            "spec.limitRange.defaultRequest",
            project
                .spec
                .limit_range
                .as_ref()
                .map(|l| &l.default_request),
        ),
    ];
    for (field, list) in lists {
        for (resource, quantity) in list.into_iter().flatten() {
            if let Err(e) = berth_api::quantity::parse(&quantity.0) {
                problems.push(format!("{field}.{resource}: {e}"));
            }
        }
    }
    // Admission refuses a quota that names one resource twice (`cpu` and `requests.cpu`); one
    // admitted before that rule, or by someone who bypassed it, says which value to keep.
    if let Some(quota) = &project.spec.resource_quota
        && let Err(duplicate) = berth_api::quota::normalise(&quota.hard)
    {
        problems.push(format!("spec.resourceQuota.hard: {duplicate}"));
    }
    let namespace = match names::namespace(project) {
        Ok(ns) => Some(ns),
        Err(refused) => {
            problems.push(format!("spec.namespace {refused}"));
            None
        }
    };
    // Every editor can run pods as a ServiceAccount of the namespace, so one as owner would make
    // every editor an owner. Admission refuses it; this holds for what it did not see.
    if let Some(ns) = &namespace {
        let own_account_user = format!("system:serviceaccount:{ns}:");
        for subject in subjects.iter().filter(|s| s.role == Role::Owner) {
            let in_namespace = match subject.kind {
                MemberKind::ServiceAccount => subject
                    .name
                    .split_once('/')
                    .is_none_or(|(account_ns, _)| account_ns == ns),
                MemberKind::User => subject.name.starts_with(&own_account_user),
                MemberKind::Group => false,
            };
            if in_namespace {
                problems.push(format!(
                    "service account {:?} is in the project's own namespace and cannot be an owner: every editor can run pods as it. Give it role editor, or use an account of another namespace",
                    subject.name
                ));
            }
        }
    }
    let (Some(namespace), Some(uid), Some(owner_reference)) = (
        namespace.filter(|_| problems.is_empty()),
        project.uid(),
        project.controller_owner_ref(&()),
    ) else {
        if problems.is_empty() {
            problems.push("the project has no uid yet".to_owned());
        }
        return Err(Invalid {
            reason: "InvalidSpec",
            message: problems.join("; "),
        });
    };

    let mut now_reserved = None;
    if let Some(why) = names::namespace::reserved(&namespace, operator_namespace, settings) {
        if !known.namespace_ours {
            return Err(Invalid {
                reason: "NamespaceReserved",
                message: format!(
                    "namespace {namespace} is reserved for the platform: {why}. Choose another spec.namespace; nothing was created"
                ),
            });
        }
        now_reserved = Some(format!(
            "namespace {namespace} is now reserved for the platform ({why}). The project keeps it, isolated as before, but Berth no longer lets other projects trust it: a platform admin removes it from PlatformSettings, or moves this project to another namespace"
        ));
    }

    let name = project.name_any();
    let outside = outside_names(project, settings, &uid, &namespace);
    Ok(Validated {
        project,
        deletion_policy: project.effective_deletion_policy(settings.default_deletion_policy),
        name,
        uid,
        namespace,
        subjects,
        now_reserved,
        outside,
        owner_reference,
    })
}

/// The project's names outside the cluster: those its status records, else the naming
/// authority's for its name, namespace and UID under these settings.
pub fn outside_names(
    project: &Project,
    settings: &PlatformSettingsSpec,
    uid: &str,
    namespace: &str,
) -> OutsideNames {
    let name = project.name_any();
    let recorded = project.status.as_ref().and_then(|s| s.external.as_ref());
    let template = settings
        .storage
        .as_ref()
        .map(|s| s.bucket_template.as_str())
        .unwrap_or(outside::PROJECT_PLACEHOLDER);
    OutsideNames {
        bucket: match recorded.and_then(|r| r.bucket.clone()) {
            Some(bucket) => Ok(bucket),
            None => outside::bucket(template, &name, namespace),
        },
        oidc_client: recorded
            .and_then(|r| r.oidc_client_id.clone())
            .unwrap_or_else(|| outside::oidc_client(&name)),
        oidc_group: recorded
            .and_then(|r| r.oidc_group.clone())
            .unwrap_or_else(|| outside::oidc_group(&name)),
        registry_project: match recorded.and_then(|r| r.registry_project.clone()) {
            Some(p) => Ok(p),
            None => outside::registry_project(&name),
        },
        credential_prefix: outside::credential_prefix(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ProjectSpec;
    use berth_api::project::ResourceQuotaSpec;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn project(spec: ProjectSpec) -> Project {
        let mut p = Project::new("team-a", spec);
        p.metadata.uid = Some("3f1c0a7e-0000-4000-8000-000000000001".into());
        p
    }

    fn owned(ns: Option<&str>) -> Project {
        project(ProjectSpec {
            owners: vec!["ada@example.com".into()],
            namespace: ns.map(str::to_owned),
            ..Default::default()
        })
    }

    #[test]
    fn a_seed_like_project_is_valid() {
        let p = project(ProjectSpec {
            owners: vec!["data.scientist@example.com".into()],
            resource_quota: Some(ResourceQuotaSpec {
                hard: [
                    ("cpu".to_owned(), Quantity("16".into())),
                    ("memory".to_owned(), Quantity("32Gi".into())),
                ]
                .into(),
            }),
            ..Default::default()
        });
        let v = validate(&p, &Default::default(), "berth-system", Known::default());
        let v = v.ok();
        assert_eq!(v.as_ref().map(|v| v.namespace.as_str()), Some("team-a"));
        assert_eq!(
            v.map(|v| v.outside.credential_prefix),
            Some("berth-3f1c0a7e000040008000000000000001-".to_owned())
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = project(ProjectSpec {
            namespace: Some("Not_A_Label".into()),
            resource_quota: Some(ResourceQuotaSpec {
                hard: [("cpu".to_owned(), Quantity("lots".into()))].into(),
            }),
            ..Default::default()
        });
        let invalid = validate(&p, &Default::default(), "berth-system", Known::default());
        let message = invalid.err().map(|e| e.message).unwrap_or_default();
        assert!(message.contains("no owner"), "{message}");
        assert!(message.contains("DNS label"), "{message}");
        assert!(message.contains("spec.resourceQuota.hard.cpu"), "{message}");
    }

    #[test]
    fn what_admission_refuses_holds_for_projects_it_never_saw() {
        let mut p = owned(None);
        p.spec.members = vec![
            berth_api::Member {
                kind: MemberKind::ServiceAccount,
                name: "robot".into(),
                role: Role::Owner,
            },
            berth_api::Member {
                kind: MemberKind::User,
                name: "system:serviceaccount:team-a:bot".into(),
                role: Role::Owner,
            },
            berth_api::Member {
                kind: MemberKind::ServiceAccount,
                name: "other-ns/robot".into(),
                role: Role::Owner,
            },
        ];
        p.spec.resource_quota = Some(ResourceQuotaSpec {
            hard: [
                ("cpu".to_owned(), Quantity("1".into())),
                ("requests.cpu".to_owned(), Quantity("1000".into())),
            ]
            .into(),
        });
        let message = validate(&p, &Default::default(), "berth-system", Known::default())
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            message.contains("\"robot\" is in the project's own namespace"),
            "{message}"
        );
        assert!(
            message.contains("system:serviceaccount:team-a:bot"),
            "{message}"
        );
        assert!(!message.contains("other-ns/robot"), "{message}");
        assert!(
            message.contains("the same resource (requests.cpu)"),
            "{message}"
        );
    }

    #[test]
    fn platform_namespaces_are_refused_unless_already_the_projects() {
        let settings = PlatformSettingsSpec {
            monitoring_namespaces: vec!["monitoring".into()],
            ..Default::default()
        };
        for ns in [
            "kube-system",
            "kube-public",
            "default",
            "berth-system",
            "monitoring",
        ] {
            let p = owned(Some(ns));
            let invalid = validate(&p, &settings, "berth-system", Known::default()).err();
            assert_eq!(
                invalid.as_ref().map(|i| i.reason),
                Some("NamespaceReserved"),
                "{ns}"
            );
            assert!(
                invalid.is_some_and(|i| i.message.contains("reserved for the platform")),
                "{ns}"
            );
        }
        // The settings named it after the project had it: kept, flagged.
        let p = owned(Some("monitoring"));
        let v = validate(
            &p,
            &settings,
            "berth-system",
            Known {
                namespace_ours: true,
            },
        );
        assert!(
            v.ok()
                .and_then(|v| v.now_reserved)
                .is_some_and(|m| m.contains("monitoringNamespaces"))
        );
    }

    #[test]
    fn the_policy_is_the_one_recorded_at_creation() {
        let mut settings = PlatformSettingsSpec::default();
        let mut p = owned(None);
        let first = validate(&p, &settings, "berth-system", Known::default());
        assert_eq!(
            first.map(|v| v.deletion_policy).ok(),
            Some(DeletionPolicy::Retain)
        );
        p.status = Some(berth_api::ProjectStatus {
            deletion_policy: Some(DeletionPolicy::Retain),
            ..Default::default()
        });
        settings.default_deletion_policy = DeletionPolicy::Delete;
        let later = validate(&p, &settings, "berth-system", Known::default());
        assert_eq!(
            later.map(|v| v.deletion_policy).ok(),
            Some(DeletionPolicy::Retain)
        );
    }

    #[test]
    fn recorded_names_win_over_a_changed_template() {
        let settings = PlatformSettingsSpec {
            storage: serde_json::from_value(serde_json::json!({
                "provider": "garage", "endpoint": "http://s3", "adminEndpoint": "http://admin",
                "adminSecretRef": {"name": "x"}, "bucketTemplate": "new-{project}",
            }))
            .ok(),
            ..Default::default()
        };
        let mut p = owned(None);
        p.status = Some(berth_api::ProjectStatus {
            external: Some(berth_api::providers::ExternalStatus {
                bucket: Some("team-a".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let v = validate(&p, &settings, "berth-system", Known::default());
        assert_eq!(
            v.ok().map(|v| v.outside.bucket),
            Some(Ok("team-a".to_owned()))
        );
    }
}
