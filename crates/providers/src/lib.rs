//! What a Project gets outside the cluster, behind one trait per kind of service:
//!
//! - [`storage::ObjectStore`]: a bucket and an access key that reaches that bucket only. Garage
//!   and MinIO through their admin APIs, AWS S3 with IAM.
//! - [`identity::IdentityProvider`]: a confidential OIDC client and a realm group of the project's
//!   members. Keycloak.
//! - [`registry::Registry`]: a registry project with members by role and a push/pull robot.
//!   Harbor, through its v2.0 API.
//!
//! Every operation is idempotent and looks before it creates, so a crash between a create and the
//! caller's next write never leaves a duplicate. Names are chosen by the caller and deterministic.
//! Secrets travel as [`Secret`], which never prints its value, and no error message carries one.
//!
//! **Ownership.** A name alone proves nothing: anyone may have made a bucket, a client or a registry
//! project under it before Berth. So everything Berth makes records its [`Owner`] (the owning
//! Project's UID), where the backend allows it, and every call that would use something that
//! already exists checks that record first. Found and matching: it is used. Absent or different:
//! the call fails with [`ErrorKind::Conflict`] and changes nothing, unless [`Owner::adopt`] says a
//! platform admin asked for the takeover, in which case the record is written. Where each backend
//! keeps the record:
//!
//! | what | Garage | MinIO, AWS | Keycloak | Harbor |
//! | --- | --- | --- | --- | --- |
//! | bucket | a local alias of the owner's marker key (a key with no rights, named by [`Owner::marker`]) | the bucket tag [`OWNER_TAG`] | | |
//! | access key | its name (the caller puts the UID in it) | its name | | |
//! | OIDC client, group | | | the attribute [`OWNER_TAG`] | |
//! | registry project | | | | a marker robot named by [`Owner::marker`] (Harbor keeps no other free-form project metadata) |
//! | robot | | | | its name and description |

pub mod error;
pub mod identity;
pub mod registry;
pub mod secret;
pub mod storage;

pub use error::{Error, ErrorKind};
pub use secret::Secret;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The tag, attribute or description key that records a Project's UID on what Berth makes for it.
pub const OWNER_TAG: &str = "berth.dev/project-uid";

/// Whose a bucket, key, client, group, registry project or robot is, and how that is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The owning Project's UID (a UUID the Kubernetes API server assigned; nobody chooses it).
    pub uid: String,
    /// The name of the object that records ownership where the backend has neither tags nor
    /// attributes: Garage's marker key, Harbor's marker robot. Chosen by the caller's naming
    /// authority; it carries the UID, so no other owner can produce it.
    pub marker: String,
    /// A platform admin asked to take over what exists under the name although it lacks this
    /// owner's record: write the record instead of failing with [`ErrorKind::Conflict`].
    pub adopt: bool,
}

impl Owner {
    /// What a description records: `berth.dev/project-uid=<uid>`.
    pub fn record(&self) -> String {
        format!("{OWNER_TAG}={}", self.uid)
    }
}

/// A credential a provider issued under a caller-chosen name: an access key, a robot account.
/// Listing returns these; the secret half is only ever returned by the call that creates or
/// resets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The provider's identifier: the access key id, the robot's id.
    pub id: String,
    /// The name Berth gave it (the key's name, the robot's short name).
    pub name: String,
}

/// A credential with its secret half, as written to the project's Secret.
#[derive(Clone, Debug)]
pub struct IssuedCredential {
    pub credential: Credential,
    /// What a client logs in with: the access key id, the robot's full login name.
    pub login: String,
    pub secret: Secret,
}
