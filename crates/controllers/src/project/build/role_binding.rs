//! Access in the namespace: one RoleBinding per member, to Berth's owner, editor or viewer role.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject as RbacSubject};

use berth_api::MemberKind;
use berth_reconcile::{Desired, Error};

use super::super::members::Subject;
use super::super::validate::Validated;
use super::meta::namespaced;
use crate::kinds;
use crate::names::kube::{member_binding, member_role};

/// One RoleBinding per member.
pub fn members(project: &Validated) -> Result<Vec<Desired>, Error> {
    project
        .subjects
        .iter()
        .map(|subject| {
            binding(
                project,
                &member_binding(subject.role, subject.kind, &subject.name),
                member_role(subject.role),
                rbac_subject(subject, &project.namespace),
            )
        })
        .collect()
}

/// A RoleBinding of `name` in the project's namespace, of `subject` to the ClusterRole `role`.
pub fn binding(
    project: &Validated,
    name: &str,
    role: &str,
    subject: RbacSubject,
) -> Result<Desired, Error> {
    Desired::new(
        &kinds::role_binding(),
        &RoleBinding {
            metadata: namespaced(project, name),
            role_ref: cluster_role_ref(role),
            subjects: Some(vec![subject]),
        },
    )
}

pub fn cluster_role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// A member as an RBAC subject. A ServiceAccount member written `name` is in the project's
/// namespace; `namespace/name` is elsewhere.
pub fn rbac_subject(subject: &Subject, project_namespace: &str) -> RbacSubject {
    match subject.kind {
        MemberKind::User | MemberKind::Group => RbacSubject {
            kind: if subject.kind == MemberKind::User {
                "User".into()
            } else {
                "Group".into()
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::members::EmailUserNames;
    use berth_api::{Member, PlatformSettingsSpec, Project, ProjectSpec, Role};

    use crate::project::validate::{Known, validate};

    /// The owner listed as `Ada.Lovelace@Example.com` and again as a viewer in lower case.
    fn duplicated() -> Project {
        let mut p = Project::new(
            "team-a",
            ProjectSpec {
                owners: vec!["Ada.Lovelace@Example.com".into()],
                members: vec![Member {
                    kind: MemberKind::User,
                    name: "ada.lovelace@example.com".into(),
                    role: Role::Viewer,
                }],
                ..Default::default()
            },
        );
        p.metadata.uid = Some("3f1c0a7e-0000-4000-8000-000000000001".into());
        p
    }

    fn bindings(settings: &PlatformSettingsSpec) -> Vec<(String, String, String)> {
        let p = duplicated();
        let Ok(v) = validate(&p, settings, "berth-system", Known::default()) else {
            unreachable!("valid")
        };
        let Ok(built) = members(&v) else {
            unreachable!("builds")
        };
        built
            .iter()
            .map(|d| {
                (
                    d.object.data["roleRef"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    d.object.data["subjects"][0]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    d.object.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn one_person_in_two_spellings_is_one_owner_named_as_the_provider_issues_it() {
        let lower = bindings(&PlatformSettingsSpec::default());
        assert_eq!(lower.len(), 1, "{lower:?}");
        assert_eq!(lower[0].0, "berth-project-owner");
        assert_eq!(lower[0].1, "ada.lovelace@example.com");
        let written = bindings(&PlatformSettingsSpec {
            email_user_names: EmailUserNames::AsWritten,
            ..Default::default()
        });
        assert_eq!(written.len(), 1, "{written:?}");
        assert_eq!(written[0].1, "Ada.Lovelace@Example.com");
    }
}
