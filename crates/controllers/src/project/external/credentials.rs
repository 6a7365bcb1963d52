//! Which credential a Project's Secret should hold, decided from what the provider has and what the
//! Secret says. Pure, so that every crash point can be tested without a server.
//!
//! Credentials are named `<prefix><serial>` (`crate::names::outside::credential`), the prefix
//! carrying the Project's UID, so only the Project's own are ever considered. The Secret records
//! the id of the one in use. The rule:
//! - the Secret's credential exists and no rotation is asked for: keep it;
//! - else, a credential newer than the Secret's exists (a crash lost it before its Secret was
//!   written): recover it, never make another;
//! - else: create `<prefix><highest serial + 1>`.
//!
//! Every other credential under the prefix is revoked, but only once the Secret holds the new one.

use berth_providers::Credential;

use crate::names::outside::{credential, credential_serial};

/// What to do about the credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Secret's credential is fine.
    Keep(Credential),
    /// Give this existing credential a known secret and write it to the Secret.
    Recover(Credential),
    /// Create a credential with this name and write it to the Secret.
    Create(String),
}

/// The decision, and the credentials to revoke once the Secret has been written.
pub fn decide(
    existing: &[Credential],
    current_id: Option<&str>,
    rotate: bool,
    prefix: &str,
) -> (Decision, Vec<Credential>) {
    let serial = |c: &Credential| credential_serial(prefix, &c.name);
    let ours: Vec<&Credential> = existing.iter().filter(|c| serial(c).is_some()).collect();
    let current = current_id.and_then(|id| ours.iter().find(|c| c.id == id).copied());
    let others = |keep: Option<&Credential>| -> Vec<Credential> {
        ours.iter()
            .filter(|c| keep.is_none_or(|k| k.id != c.id))
            .map(|c| (*c).clone())
            .collect()
    };
    if let Some(current) = current
        && !rotate
    {
        return (Decision::Keep(current.clone()), others(Some(current)));
    }
    let current_serial = current.and_then(serial);
    let newer = ours
        .iter()
        .filter(|c| current.is_none_or(|cur| cur.id != c.id))
        .filter(|c| current_serial.is_none_or(|s| serial(c).is_some_and(|n| n > s)))
        .max_by_key(|c| serial(c));
    if let Some(newer) = newer {
        return (Decision::Recover((*newer).clone()), others(Some(newer)));
    }
    let next = ours.iter().filter_map(|c| serial(c)).max().unwrap_or(0) + 1;
    (Decision::Create(credential(prefix, next)), others(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str) -> Credential {
        Credential {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_first_credential_is_created() {
        assert_eq!(
            decide(&[], None, false, "p-"),
            (Decision::Create("p-1".into()), vec![])
        );
    }

    #[test]
    fn the_secrets_credential_is_kept_and_leftovers_revoked() {
        let existing = [c("A", "p-1"), c("B", "p-2"), c("X", "other-1")];
        let (d, revoke) = decide(&existing, Some("B"), false, "p-");
        assert_eq!(d, Decision::Keep(c("B", "p-2")));
        assert_eq!(revoke, vec![c("A", "p-1")]);
    }

    #[test]
    fn a_credential_lost_in_a_crash_is_recovered_not_duplicated() {
        // Created, then the operator died before the Secret was written: the Secret is missing.
        let (d, revoke) = decide(&[c("A", "p-1")], None, false, "p-");
        assert_eq!(d, Decision::Recover(c("A", "p-1")));
        assert!(revoke.is_empty());
        // Mid-rotation: the Secret still names the old one, a newer one exists.
        let (d, revoke) = decide(&[c("A", "p-1"), c("B", "p-2")], Some("A"), true, "p-");
        assert_eq!(d, Decision::Recover(c("B", "p-2")));
        assert_eq!(revoke, vec![c("A", "p-1")]);
    }

    #[test]
    fn rotation_creates_the_next_and_revokes_the_old_afterwards() {
        let (d, revoke) = decide(&[c("A", "p-1")], Some("A"), true, "p-");
        assert_eq!(d, Decision::Create("p-2".into()));
        assert_eq!(revoke, vec![c("A", "p-1")]);
    }

    #[test]
    fn a_secret_naming_a_deleted_credential_gets_a_new_one() {
        let (d, revoke) = decide(&[], Some("gone"), false, "p-");
        assert_eq!(d, Decision::Create("p-1".into()));
        assert!(revoke.is_empty());
    }
}
