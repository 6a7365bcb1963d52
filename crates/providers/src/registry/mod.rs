//! The image registry: a project per Project, its members by role, and a push/pull robot.

use async_trait::async_trait;

use crate::{Credential, IssuedCredential, Owner, Result, Secret};

/// How to reach the registry's API.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Harbor's base URL, e.g. `https://harbor.example.com`.
    pub url: String,
    pub admin_username: String,
    pub admin_password: Secret,
}

/// A member's role in the registry project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegistryRole {
    /// Harbor's projectAdmin (role id 1): a Project owner.
    Admin,
    /// Harbor's developer (role id 2): a Project editor.
    Developer,
    /// Harbor's guest (role id 3): a Project viewer.
    Guest,
}

/// What a registry project should be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryProjectSpec {
    pub name: String,
    /// Scan images when they are pushed.
    pub scan_on_push: bool,
    /// Refuse to serve images with vulnerabilities at or above `severity`.
    pub prevent_vulnerable: bool,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
}

/// What a member sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSync {
    /// Members with no registry account, so not added.
    pub missing_users: Vec<String>,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
}

/// An image registry Berth makes projects in. Harbor.
#[async_trait]
pub trait Registry: Send + Sync {
    /// `harbor`.
    fn kind(&self) -> &'static str;
    /// The host images are pushed to and pulled from (the dockerconfigjson key).
    fn host(&self) -> String;
    /// Reaches the API with the admin credentials.
    async fn check(&self) -> Result<()>;

    /// Creates the project, recording `owner` on it, if missing; if it exists, checks that it
    /// records `owner` ([`crate::ErrorKind::Conflict`], and nothing changed, if not, unless
    /// `owner.adopt`, which records it). Then sets its scan and vulnerability settings.
    /// Idempotent.
    async fn ensure_project(&self, spec: &RegistryProjectSpec, owner: &Owner) -> Result<()>;
    /// Makes the project's user members exactly these (username, role). Leaves the registry's
    /// own admin and robot accounts alone. Idempotent.
    async fn sync_members(
        &self,
        project: &str,
        members: &[(String, RegistryRole)],
    ) -> Result<MemberSync>;
    /// Deletes the project with its repositories if it records `owner`
    /// ([`crate::ErrorKind::Conflict`] and nothing deleted if not). Idempotent.
    async fn delete_project(&self, project: &str, owner: &Owner) -> Result<()>;

    /// The project's robots whose short name starts with `prefix`.
    async fn list_robots(&self, project: &str, prefix: &str) -> Result<Vec<Credential>>;
    /// Creates a robot called `name` with push and pull on `project` only, never expiring, its
    /// description recording `owner`.
    async fn create_robot(
        &self,
        project: &str,
        name: &str,
        owner: &Owner,
    ) -> Result<IssuedCredential>;
    /// Gives an existing robot a new secret, for one whose secret a crash lost before it was stored.
    async fn recover_robot(&self, project: &str, robot: &Credential) -> Result<IssuedCredential>;
    /// Deletes a robot. Idempotent.
    async fn delete_robot(&self, robot: &Credential) -> Result<()>;
}

pub mod harbor;

/// The registry client for these settings: Harbor, the one registry Berth supports.
pub fn connect(config: RegistryConfig) -> Result<std::sync::Arc<dyn Registry>> {
    Ok(std::sync::Arc::new(harbor::Harbor::new(config)?))
}
