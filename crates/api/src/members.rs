//! Who is in a project, once each: `spec.owners` and `spec.members` merged, each subject with its
//! strongest role, and user names that are e-mail addresses matched without regard to case.
//!
//! E-mail addresses name one mailbox whatever their case (in practice; RFC 5321 lets the local
//! part differ, and no identity provider Berth supports uses that), and identity providers issue
//! them in one form, lower-case as a rule. `Ada.Lovelace@Example.com` as owner and
//! `ada.lovelace@example.com` as viewer are therefore one person, an owner, and the RoleBinding
//! names them the way the platform's identity provider spells them ([`EmailUserNames`]).

use std::collections::BTreeMap;

use crate::project::{MemberKind, ProjectSpec, Role};

/// One subject with its role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject {
    pub kind: MemberKind,
    pub name: String,
    pub role: Role,
}

/// How the cluster's identity provider spells user names that are e-mail addresses in the tokens
/// it issues, so RoleBindings name the identity that actually logs in.
#[derive(
    schemars::JsonSchema,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[serde(rename_all = "camelCase")]
pub enum EmailUserNames {
    /// Lower-case, as Keycloak, Dex, Google and most others issue them.
    #[default]
    LowerCase,
    /// As the first listing in the Project writes it.
    AsWritten,
}

/// Whether `name` is a user name compared without case: an e-mail address.
pub fn is_email(name: &str) -> bool {
    name.contains('@') && !name.starts_with("system:")
}

/// The key two listings of one person share.
fn identity(kind: MemberKind, name: &str) -> (MemberKind, String) {
    if kind == MemberKind::User && is_email(name) {
        (kind, name.to_lowercase())
    } else {
        (kind, name.to_owned())
    }
}

/// `owners` (as User owners) and `members`, each subject once with its strongest role. E-mail user
/// names match without case and come out in the form `form` says. Names are trimmed; empty ones
/// are skipped. Sorted, so the result is stable.
pub fn effective(spec: &ProjectSpec, form: EmailUserNames) -> Vec<Subject> {
    let listed = spec
        .owners
        .iter()
        .map(|o| (MemberKind::User, o.trim(), Role::Owner))
        .chain(spec.members.iter().map(|m| (m.kind, m.name.trim(), m.role)));
    // By identity: the name as first written, and the strongest role.
    let mut by_identity: BTreeMap<(MemberKind, String), (String, Role)> = BTreeMap::new();
    for (kind, name, role) in listed {
        if name.is_empty() {
            continue;
        }
        by_identity
            .entry(identity(kind, name))
            .and_modify(|(_, r)| *r = (*r).min(role))
            .or_insert_with(|| (name.to_owned(), role));
    }
    let mut subjects: Vec<Subject> = by_identity
        .into_iter()
        .map(|((kind, lowered), (written, role))| Subject {
            kind,
            name: match form {
                EmailUserNames::LowerCase => lowered,
                EmailUserNames::AsWritten => written,
            },
            role,
        })
        .collect();
    subjects.sort();
    subjects
}

/// The listings of one person under more than one spelling: for each, the spellings as written.
/// Admission refuses these on new Projects; [`effective`] merges them on Projects admitted before.
pub fn case_duplicates(spec: &ProjectSpec) -> Vec<Vec<String>> {
    let mut spelled: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let users = spec.owners.iter().map(|o| o.trim()).chain(
        spec.members
            .iter()
            .filter(|m| m.kind == MemberKind::User)
            .map(|m| m.name.trim()),
    );
    for name in users.filter(|n| is_email(n)) {
        let forms = spelled.entry(name.to_lowercase()).or_default();
        if !forms.iter().any(|f| f == name) {
            forms.push(name.to_owned());
        }
    }
    spelled.into_values().filter(|f| f.len() > 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Member;
    use proptest::prelude::*;

    fn member(kind: MemberKind, name: &str, role: Role) -> Member {
        Member {
            kind,
            name: name.into(),
            role,
        }
    }

    #[test]
    fn case_duplicates_merge_into_the_strongest_role_in_the_providers_form() {
        let spec = ProjectSpec {
            owners: vec!["Ada.Lovelace@Example.com".into()],
            members: vec![
                member(MemberKind::User, "ada.lovelace@example.com", Role::Viewer),
                member(MemberKind::Group, "Team", Role::Editor),
                member(MemberKind::Group, "team", Role::Viewer),
                member(MemberKind::User, "Bob", Role::Viewer),
            ],
            ..Default::default()
        };
        let lower = effective(&spec, EmailUserNames::LowerCase);
        assert!(lower.contains(&Subject {
            kind: MemberKind::User,
            name: "ada.lovelace@example.com".into(),
            role: Role::Owner,
        }));
        // Groups and user names that are not e-mail addresses keep their case: Kubernetes
        // compares them exactly.
        assert_eq!(lower.len(), 4, "{lower:?}");
        assert!(lower.iter().any(|s| s.name == "Bob"));
        let written = effective(&spec, EmailUserNames::AsWritten);
        assert!(written.contains(&Subject {
            kind: MemberKind::User,
            name: "Ada.Lovelace@Example.com".into(),
            role: Role::Owner,
        }));
        assert_eq!(
            case_duplicates(&spec),
            [vec![
                "Ada.Lovelace@Example.com".to_owned(),
                "ada.lovelace@example.com".to_owned()
            ]]
        );
    }

    #[test]
    fn system_names_are_never_folded() {
        assert!(!is_email("system:serviceaccount:a:b@c"));
        assert!(is_email("a@b.c"));
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Owner), Just(Role::Editor), Just(Role::Viewer)]
    }

    fn flip_case(name: &str, mask: u64) -> String {
        name.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    proptest! {
        /// However a person's address is cased across listings, they come out once, with the
        /// strongest role any listing gives them.
        #[test]
        fn one_person_once_with_the_strongest_role(
            local in "[a-z][a-z.]{0,10}",
            listings in prop::collection::vec((any::<u64>(), role()), 1..6),
        ) {
            let address = format!("{local}@example.com");
            let spec = ProjectSpec {
                members: listings
                    .iter()
                    .map(|(mask, role)| member(MemberKind::User, &flip_case(&address, *mask), *role))
                    .collect(),
                ..Default::default()
            };
            let subjects = effective(&spec, EmailUserNames::LowerCase);
            prop_assert_eq!(subjects.len(), 1);
            prop_assert_eq!(&subjects[0].name, &address);
            let strongest = listings.iter().map(|(_, r)| *r).min();
            prop_assert_eq!(Some(subjects[0].role), strongest);
        }
    }
}
