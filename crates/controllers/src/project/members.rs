//! The effective members of a project come from [`berth_api::members::effective`]: `owners` and
//! `members` merged, each subject once with its strongest role, e-mail user names matched without
//! regard to case and written the way the platform's identity provider issues them
//! (`PlatformSettings.spec.emailUserNames`). The RoleBindings, the Istio user list, the identity
//! provider's realm group and the registry's members all use that one list.

use berth_api::Role;

pub use berth_api::members::Subject;

/// The owners' names, for `kubectl get projects`.
pub fn owners_summary(subjects: &[Subject]) -> String {
    subjects
        .iter()
        .filter(|s| s.role == Role::Owner)
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::members::{EmailUserNames, effective};
    use berth_api::{Member, MemberKind, ProjectSpec};

    #[test]
    fn owners_and_members_merge_with_the_strongest_role_whatever_the_case() {
        let spec = ProjectSpec {
            owners: vec!["Ada@Example.com".into()],
            members: vec![
                Member {
                    kind: MemberKind::User,
                    name: "ada@example.com".into(),
                    role: Role::Viewer,
                },
                Member {
                    kind: MemberKind::Group,
                    name: "team".into(),
                    role: Role::Editor,
                },
                Member {
                    kind: MemberKind::User,
                    name: "bob@example.com".into(),
                    role: Role::Viewer,
                },
            ],
            ..Default::default()
        };
        let subjects = effective(&spec, EmailUserNames::LowerCase);
        assert_eq!(subjects.len(), 3);
        assert!(subjects.contains(&Subject {
            kind: MemberKind::User,
            name: "ada@example.com".into(),
            role: Role::Owner
        }));
        assert_eq!(owners_summary(&subjects), "ada@example.com");
    }
}
