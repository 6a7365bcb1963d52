//! The one naming authority: every name Berth claims, inside the cluster and outside it, is made
//! here and nowhere else. For each name this module decides
//!
//! - **its form**, deterministic, so that a crash between a create and a status write can never
//!   make a second object (the same input always gives the same name);
//! - **its uniqueness**: distinct inputs never give the same name (property-tested in `tests.rs`);
//!   names that cannot be unique by construction carry the owning Project's UID, which nobody
//!   chooses;
//! - **its limits**: a name a backend would refuse (a DNS label over 63 characters, a bucket name
//!   starting with `xn--`, a Harbor name with `--`) is refused here, up front, with the rule it
//!   breaks ([`Refused`]), instead of failing half-way at the backend;
//! - **its ownership marker**: what records, next to the name, which Project it belongs to (a
//!   label on Kubernetes objects, [`berth_providers::Owner`] outside the cluster).
//!
//! | what | name | owner marker |
//! | --- | --- | --- |
//! | namespace | `spec.namespace` or the project's name ([`namespace`]) | label `berth.dev/owner-uid` |
//! | member RoleBinding | `berth-<role>-<kind>-<slug>-<128-bit hash>` ([`kube::member_binding`]) | label |
//! | per-project ClusterRole(Binding) | `berth-project-<project>-owner`/`-member` | ownerReference |
//! | quota, limits, policies, accounts | fixed names ([`kube`]) in the project's namespace | label |
//! | admin-tier network policy | `berth-isolate-<project>` ([`kube::isolation_policy`]) | ownerReference |
//! | bucket | the platform template with one placeholder ([`outside::bucket`]) | tag, or marker key |
//! | access key, robot | `berth-<uid>-<serial>` ([`outside::credential`]) | the name itself |
//! | Garage marker key, Harbor marker robot | `berth-owner-<uid>` | the name itself |
//! | OIDC client, realm group | `berth-<project>` | attribute |
//! | registry project | the project's name, when Harbor takes it | marker robot |
//! | model volume, Job | `<model>-<version>`, `<model>-fetch-<version>-<inputs>` ([`kube`]) | label + ownerReference |
//! | model Deployment, Service, HPA, route | the model's name | label + ownerReference |
//! | canary Deployment and Service, stable Service | `<model>-canary-<hash>`, `<model>-stable-<hash>`: longer than any model name ([`kube::model_canary`]) | label + ownerReference |
//! | notebook StatefulSet, Service | the notebook's name | label + ownerReference |
//! | notebook home volume | `<notebook>-home` ([`kube::notebook_home`]) | label only: it outlives the Notebook |
//! | notebook data volume | `<notebook>-<volume>` ([`kube::notebook_volume`]) | labels only: it outlives the Notebook |
//! | notebook path | `/notebook/<namespace>/<notebook>/` ([`kube::notebook_path`]) | - |
//! | notebook host (console) | `<readable>-<100-bit hash>.<notebook domain>` ([`kube::notebook_host_label`]) | - |
//! | model host | `<model>.<namespace>.<domain>` ([`host`]) | status.hostname, first claimant |

pub mod host;
pub mod kube;
pub mod namespace;
pub mod outside;

#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

pub use self::namespace::namespace;

/// A name a backend would refuse, and the rule it breaks, in words for a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The name as it would have been.
    pub name: String,
    /// The rule, such as "a bucket name has 3 to 63 characters".
    pub rule: String,
}

impl Refused {
    fn new(name: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            rule: rule.into(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not usable: {}", self.name, self.rule)
    }
}

/// The first `n` hex characters of the SHA-256 of `input` (at most 64).
pub fn short_hash(input: &str, n: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..n.min(64)]
        .to_owned()
}

/// How many hex characters of SHA-256 a name derived from free text carries: 128 bits, so that no
/// two inputs anyone can find give the same name.
pub const HASH_HEX: usize = 32;

/// A DNS-1123 label made of `prefix` and a readable slug of `input`, made unique by 128 bits of a
/// hash of the raw input: `berth-owner-user-ada-example-co-1a2b…`. The slug is cut to fit 63
/// characters; the hash never is.
pub fn label_from(prefix: &str, input: &str) -> String {
    let mut slug: String = input
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let budget = 63usize.saturating_sub(prefix.len() + 1 + 1 + HASH_HEX);
    let slug: String = slug.trim_matches('-').chars().take(budget).collect();
    let slug = slug.trim_matches('-');
    let hash = short_hash(input, HASH_HEX);
    if slug.is_empty() {
        format!("{prefix}-{hash}")
    } else {
        format!("{prefix}-{slug}-{hash}")
    }
}

/// Whether `name` is a DNS-1123 label: 1 to 63 lowercase letters, digits and '-', starting and
/// ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain (the form of a PersistentVolumeClaim's name): at most
/// 253 characters, dot-separated DNS labels. It has no '/', so it never names another namespace.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// The 32 lowercase hex digits of a Kubernetes UID (a UUID), the part of names that no other
/// object can produce. A UID that is not a UUID (never seen from an API server) is hashed to the
/// same width.
pub fn uid_hex(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex
    } else {
        short_hash(uid, HASH_HEX)
    }
}
