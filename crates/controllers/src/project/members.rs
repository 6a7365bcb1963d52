//! The effective members of a project: `owners` and `members` merged, each subject once, with its
//! strongest role.

use std::collections::BTreeMap;

use berth_api::{MemberKind, Project, Role};

/// One subject with its role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subject {
    pub kind: MemberKind,
    pub name: String,
    pub role: Role,
}

/// `spec.owners` (as User owners) and `spec.members`, de-duplicated by kind and name; a subject
/// listed twice keeps the stronger role. Sorted, so the result is stable.
pub fn effective(project: &Project) -> Vec<Subject> {
    let mut by_subject: BTreeMap<(MemberKind, String), Role> = BTreeMap::new();
    let listed = project
        .spec
        .owners
        .iter()
        .map(|o| (MemberKind::User, o.trim().to_owned(), Role::Owner))
        .chain(
            project
                .spec
                .members
                .iter()
                .map(|m| (m.kind, m.name.trim().to_owned(), m.role)),
        );
    for (kind, name, role) in listed {
        if name.is_empty() {
            continue;
        }
        by_subject
            .entry((kind, name))
            .and_modify(|r| *r = (*r).min(role))
            .or_insert(role);
    }
    by_subject
        .into_iter()
        .map(|((kind, name), role)| Subject { kind, name, role })
        .collect()
}

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
    use berth_api::{Member, ProjectSpec};

    #[test]
    fn owners_and_members_merge_with_the_strongest_role() {
        let project = Project::new(
            "p",
            ProjectSpec {
                owners: vec!["ada@example.com".into()],
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
            },
        );
        let subjects = effective(&project);
        assert_eq!(subjects.len(), 3);
        assert!(subjects.contains(&Subject {
            kind: MemberKind::User,
            name: "ada@example.com".into(),
            role: Role::Owner
        }));
        assert_eq!(owners_summary(&subjects), "ada@example.com");
    }
}
