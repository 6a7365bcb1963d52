//! Real object stores and a real OIDC provider on loopback, for Berth's tests and `cargo xtask dev`.
//!
//! Like `berth-testenv` does for the Kubernetes control plane, each service here is a real server
//! built from a pinned source by a script under `tools/` (into `${BERTH_CACHE:-~/.cache/berth}`),
//! started on free loopback ports with a fresh data directory and credentials generated at random:
//!
//! - [`Minio::start`]: a MinIO server (`tools/minio/build.sh`).
//! - [`Garage::start`]: a single-node Garage cluster with its layout applied (`tools/garage/build.sh`).
//! - [`Keycloak::start`]: Keycloak in dev mode with a bootstrap admin (`tools/keycloak/build.sh`).
//!
//! Each returns once its server answers its readiness check, stops its server when dropped, and
//! removes its data directory. Every process is started through [`berth_testenv::Process`], so the
//! kernel kills it when the process that started it ends in any way (panic, Ctrl-C, SIGKILL).
//! Progress goes to stderr unless `BERTH_QUIET` is set.

mod common;
mod error;
mod garage;
mod keycloak;
mod keycloak_login;
mod keycloak_realm;
mod minio;
mod relay;
mod s3;
mod tls;

pub use error::Error;
pub use garage::{GARAGE_REGION, Garage, GarageKey};
pub use keycloak::{KEYCLOAK_ADMIN, Keycloak, KeycloakOptions};
pub use keycloak_login::Tokens;
pub use keycloak_realm::{Account, ConsoleClient};
pub use minio::{MINIO_REGION, Minio};
pub use relay::Relay;
pub use s3::s3_client;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The TCP port a service's URL names (or its scheme's default), such as 3900 for
/// `http://198.18.0.1:3900`: what a PlatformSettings `egressTo.ports` lists for it.
/// `None` when `url` is not a URL.
pub fn port_of(url: &str) -> Option<u16> {
    reqwest::Url::parse(url).ok()?.port_or_known_default()
}

#[cfg(test)]
mod port_tests {
    #[test]
    fn ports_of_urls() {
        assert_eq!(super::port_of("http://198.18.0.1:3900"), Some(3900));
        assert_eq!(
            super::port_of("https://keycloak.example.com/realms/x"),
            Some(443)
        );
        assert_eq!(super::port_of("not a url"), None);
    }
}
