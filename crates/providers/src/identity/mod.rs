//! Identity: a confidential OIDC client per Project, and a realm group of its members.

use async_trait::async_trait;

use crate::{Owner, Result, Secret};

/// How to reach the identity provider's admin side.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// Keycloak's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The realm where clients and groups are made.
    pub realm: String,
    /// The realm the admin user logs in to (usually `master`).
    pub admin_realm: String,
    pub admin_username: String,
    pub admin_password: Secret,
}

/// What a Project's OIDC client should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// The client id, deterministic per Project.
    pub client_id: String,
    /// Shown in the admin console.
    pub description: String,
    pub redirect_uris: Vec<String>,
}

/// The client as it is.
#[derive(Clone, Debug)]
pub struct ClientState {
    pub client_id: String,
    /// The provider's internal id.
    pub id: String,
    pub secret: Secret,
}

/// What a group sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSync {
    /// Members that have no account in the realm, so could not be added.
    pub missing_users: Vec<String>,
    pub added: usize,
    pub removed: usize,
}

/// An OIDC provider Berth makes clients in. Keycloak.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// `keycloak`.
    fn kind(&self) -> &'static str;
    /// The issuer URL clients verify tokens against.
    fn issuer(&self) -> String;
    /// Logs in and looks up the realm; the error says whether the endpoint, the credentials or the
    /// realm is wrong.
    async fn check(&self) -> Result<()>;

    /// Creates the confidential client, recording `owner` on it, if no client has this client id;
    /// else checks that the client records `owner` ([`crate::ErrorKind::Conflict`], and nothing
    /// changed, if not, unless `owner.adopt`) and updates its redirect URIs and description.
    /// Returns it with its current secret. Never makes a second client.
    async fn ensure_client(&self, spec: &ClientSpec, owner: &Owner) -> Result<ClientState>;
    /// Gives the client a new secret. Where the provider supports it the old secret stays valid
    /// until [`IdentityProvider::revoke_old_secret`], so that the caller can store the new one first.
    async fn rotate_secret(&self, client_id: &str) -> Result<ClientState>;
    /// Ends the old secret's validity after a rotation. Idempotent.
    async fn revoke_old_secret(&self, client_id: &str) -> Result<()>;
    /// Deletes the client if it records `owner` ([`crate::ErrorKind::Conflict`] and nothing
    /// deleted if it records another). Idempotent.
    async fn delete_client(&self, client_id: &str, owner: &Owner) -> Result<()>;

    /// Makes the group `name` exist, recording `owner`, with exactly these members (by username),
    /// among the realm's existing users. A group that exists without `owner`'s record is left as
    /// it is ([`crate::ErrorKind::Conflict`]) unless `owner.adopt`. Idempotent.
    async fn sync_group(
        &self,
        name: &str,
        usernames: &[String],
        owner: &Owner,
    ) -> Result<GroupSync>;
    /// Deletes the group if it records `owner` ([`crate::ErrorKind::Conflict`] if it records
    /// another). Idempotent.
    async fn delete_group(&self, name: &str, owner: &Owner) -> Result<()>;
}

pub mod keycloak;

/// The identity provider client for these settings: Keycloak, the one Berth supports.
pub fn connect(config: IdentityConfig) -> Result<std::sync::Arc<dyn IdentityProvider>> {
    Ok(std::sync::Arc::new(keycloak::Keycloak::new(config)?))
}
