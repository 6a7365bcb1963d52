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

pub mod error;
pub mod identity;
pub mod registry;
pub mod secret;
pub mod storage;

pub use error::{Error, ErrorKind};
pub use secret::Secret;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
