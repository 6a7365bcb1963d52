//! The one interface every outside part (storage, identity, registry) implements, whatever its
//! provider: sync it, revoke its credentials, delete its data. The orchestrator in `mod.rs` runs
//! them alike; it never asks which part it holds.

use async_trait::async_trait;

use berth_api::PlatformSettingsSpec;
use berth_providers::{Credential, Error, Owner};

use super::super::build::secret::Contents;
use super::super::validate::{OutsideNames, Validated};

/// What a part's sync needs to know.
pub struct Input<'a> {
    pub project: &'a Validated<'a>,
    pub settings: &'a PlatformSettingsSpec,
    /// The id of the credential the part's Secret holds (its `berth.dev/credential-id`), if it
    /// has one.
    pub current: Option<String>,
    /// The part's Secret's credential fingerprint, where the part keeps one.
    pub fingerprint: Option<String>,
    /// A rotation was asked for that the Secret does not answer yet.
    pub rotate: bool,
    /// The project's owner record, with `adopt` as a platform admin set it for this part.
    pub owner: Owner,
}

/// What a sync did.
pub struct Synced {
    /// The names it claimed (bucket, client id and group, registry project), for the status.
    pub claimed: Claimed,
    /// New contents for the part's Secret when its credentials changed; None when the Secret
    /// already holds the right ones.
    pub secret: Option<Contents>,
    /// For the condition.
    pub message: String,
    /// What to revoke once the Secret holds the new credentials.
    pub replaced: Option<Replaced>,
}

/// The names a part holds outside the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimed {
    pub bucket: Option<String>,
    pub oidc_client: Option<String>,
    pub oidc_group: Option<String>,
    pub registry_project: Option<String>,
}

/// Credentials a sync replaced, to revoke once the new ones are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replaced {
    /// Storage keys or registry robots.
    Credentials(Vec<Credential>),
    /// The previous secret of this OIDC client.
    ClientSecret(String),
}

/// Whose names a revoke or delete works on.
pub struct Held<'a> {
    pub names: &'a OutsideNames,
    pub owner: Owner,
}

/// One outside part on its provider.
#[async_trait]
pub trait OutsidePart: Send + Sync {
    /// Makes the part exist as the project says, on what records the project as its owner
    /// (a conflict otherwise), and returns what the Secret should hold.
    async fn sync(&self, input: &Input<'_>) -> Result<Synced, Error>;
    /// Revokes credentials a sync replaced.
    async fn revoke_replaced(&self, replaced: &Replaced) -> Result<(), Error>;
    /// Revokes every credential the project holds in this part (its keys, its client, its
    /// robots). Its data stays. Returns what was revoked, for the Event.
    async fn revoke(&self, held: &Held<'_>) -> Result<Vec<String>, Error>;
    /// Removes the part's data (the bucket with its objects, the group, the registry project
    /// with its images), each only if it records the project as its owner. Returns what was
    /// removed, and what was left alone because it is not the project's.
    async fn delete(&self, held: &Held<'_>) -> Result<Removed, Error>;
}

/// What a delete did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub removed: Vec<String>,
    /// Things under the project's names that are someone else's: left as they are.
    pub left_alone: Vec<String>,
}

impl Removed {
    /// Runs a delete of one thing, sorting a conflict (not the project's) into `left_alone`.
    pub fn record(&mut self, what: String, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Ok(()) => {
                self.removed.push(what);
                Ok(())
            }
            Err(e) if e.kind == berth_providers::ErrorKind::Conflict => {
                self.left_alone
                    .push(super::problem::in_berths_words(&e.message));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
