//! Authentication of the public port: `--auth none|oidc|kubernetes`.
//!
//! - [`config`]: the flags (a table of them is in its docs) and their checks.
//! - [`oidc`]: bearer JWTs of an OpenID Connect issuer, verified against its JWKS ([`jwks`]).
//! - [`token_review`]: Kubernetes ServiceAccount tokens, checked with a TokenReview.
//! - [`cache`]: verdicts kept for a short time by the token's SHA-256.
//! - [`middleware`]: the axum layer that answers 401/403/503 before any handler runs (and
//!   its gRPC twin, answering `UNAUTHENTICATED`/`PERMISSION_DENIED`/`UNAVAILABLE`).
//! - [`answer`]: those answers (RFC 6750) and the `result` of
//!   `berth_model_auth_requests_total{result="allowed|unauthenticated|forbidden|error"}`.
//!
//! With a check, every path of the public port, health included, and every call of the gRPC
//! API (`--grpc-addr`) needs a token; the
//! kubelet's probes go to `/v2/health/live` and `/v2/health/ready` on the metrics address,
//! which are not checked.

pub mod answer;
pub mod cache;
pub mod config;
pub mod jwks;
pub mod middleware;
pub mod oidc;
pub mod token_review;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use answer::{AuthResult, Denied};
pub use config::{AuthArgs, AuthMode, AuthSettings};
pub use jwks::JwksTiming;
pub use middleware::{Auth, require_token, require_token_grpc};

/// Who a request comes from, once checked: the token's `preferred_username` or `sub`, or
/// the ServiceAccount's user name. Only for logs (at debug, when a token is first checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: std::sync::Arc<str>,
}

/// Labels of `berth_model_auth_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    pub result: &'static str,
}

/// `berth_model_auth_requests_total{result}`: requests checked, by result.
pub type AuthCounter = Family<AuthLabels, Counter>;

/// Registers `berth_model_auth_requests_total` in `registry` (which must have no prefix) and
/// returns it. Every result is present from the start, at 0.
pub fn register_metrics(registry: &mut Registry) -> AuthCounter {
    let counter = AuthCounter::default();
    for result in [
        AuthResult::Allowed,
        AuthResult::Unauthenticated,
        AuthResult::Forbidden,
        AuthResult::Error,
    ] {
        let _ = counter.get_or_create(&AuthLabels {
            result: result.as_str(),
        });
    }
    registry.register(
        "berth_model_auth_requests",
        "Requests checked by --auth, by result: allowed, unauthenticated (401), forbidden (403), error (503: the token could not be checked)",
        counter.clone(),
    );
    counter
}
