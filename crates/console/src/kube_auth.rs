//! Who a caller is and what they may do, as the API server answers:
//! - a bearer token becomes an identity with a TokenReview
//!   (`POST /apis/authentication.k8s.io/v1/tokenreviews`), any token the API server accepts
//!   (a ServiceAccount's from `kubectl create token`, or an OIDC token where the API server trusts
//!   the issuer);
//! - opening notebook `<ns>/<name>` is a SubjectAccessReview
//!   (`POST /apis/authorization.k8s.io/v1/subjectaccessreviews`) as that user, their groups, uid
//!   and extra: verb `create`, group `berth.dev`, resource `notebooks`, subresource `connect`,
//!   that namespace and name. Like `create pods/exec`: opening JupyterLab runs code (a terminal,
//!   kernels), so viewers, who may `get` notebooks, may not open them; owners and editors may
//!   (deploy/rbac/10-project-roles.yaml), and platform admins.
//!
//! Both answers are cached in memory for a few seconds ([`REVIEW_TTL`]), allows and denials
//! alike, keyed by the SHA-256 of the token (never the token itself) and by the identity and
//! notebook: a member removed from a project keeps opening its notebooks for at most
//! [`REVIEW_TTL`] (and an open WebSocket stays open until it closes: see docs/console.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long an answer of the API server is reused: the revocation delay.
pub const REVIEW_TTL: Duration = Duration::from_secs(5);
/// Answers kept at most (older ones are dropped when full).
pub const MAX_CACHED: usize = 10_000;

/// An authenticated caller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    pub username: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Why a caller is not let through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no identity (bad or expired token).
    Unauthenticated(String),
    /// 503: the API server did not answer.
    Unavailable(String),
}

struct Cached<T> {
    until: Instant,
    value: T,
}

/// A small time-limited map.
struct Cache<K, V> {
    entries: Mutex<HashMap<K, Cached<V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Cache<K, V> {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.value.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_CACHED {
                let now = Instant::now();
                entries.retain(|_, c| c.until > now);
                if entries.len() >= MAX_CACHED {
                    entries.clear();
                }
            }
            entries.insert(
                key,
                Cached {
                    until: Instant::now() + REVIEW_TTL,
                    value,
                },
            );
        }
    }
}

/// Asks the API server, with the console's own ServiceAccount (which may create TokenReviews and
/// SubjectAccessReviews, deploy/rbac/30-console.yaml).
pub struct Reviewer {
    client: kube::Client,
    tokens: Cache<[u8; 32], Result<Identity, Refusal>>,
    access: Cache<(Identity, String, String), bool>,
}

impl Reviewer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            tokens: Cache::new(),
            access: Cache::new(),
        }
    }

    /// Who `token` is, by a TokenReview (no audiences: the API server's own).
    pub async fn authenticate(&self, token: &str) -> Result<Identity, Refusal> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.tokens.get(&key) {
            return known;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(error = %e, "the TokenReview failed");
                return Err(Refusal::Unavailable(
                    "cannot check the token now: the TokenReview failed; retry later".into(),
                ));
            }
        };
        let status = answer.status.unwrap_or_default();
        let verdict = match (status.authenticated, status.user) {
            (Some(true), Some(user)) if user.username.as_deref().is_some_and(|u| !u.is_empty()) => {
                Ok(Identity {
                    username: user.username.unwrap_or_default(),
                    uid: user.uid.filter(|u| !u.is_empty()),
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default(),
                })
            }
            _ => Err(Refusal::Unauthenticated(
                "the bearer token is not one the API server accepts (expired, revoked or made for another audience)".into(),
            )),
        };
        self.tokens.put(key, verdict.clone());
        verdict
    }

    /// Whether `who` may `create notebooks/connect` on Notebook `namespace/name`, by a
    /// SubjectAccessReview.
    pub async fn may_open(
        &self,
        who: &Identity,
        namespace: &str,
        name: &str,
    ) -> Result<bool, Refusal> {
        let key = (who.clone(), namespace.to_owned(), name.to_owned());
        if let Some(known) = self.access.get(&key) {
            return Ok(known);
        }
        let review = SubjectAccessReview {
            spec: sar_spec(who, namespace, name),
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the SubjectAccessReview failed");
                Refusal::Unavailable(
                    "cannot check access now: the SubjectAccessReview failed; retry later".into(),
                )
            })?;
        let allowed = answer
            .status
            .is_some_and(|s| s.allowed && !s.denied.unwrap_or(false));
        self.access.put(key, allowed);
        Ok(allowed)
    }
}

/// The review of `create notebooks.berth.dev/connect <namespace>/<name>` as `who`.
pub fn sar_spec(who: &Identity, namespace: &str, name: &str) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(who.username.clone()),
        uid: who.uid.clone(),
        groups: Some(who.groups.clone()).filter(|g| !g.is_empty()),
        extra: Some(who.extra.clone()).filter(|e| !e.is_empty()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some("create".into()),
            group: Some("berth.dev".into()),
            resource: Some("notebooks".into()),
            subresource: Some("connect".into()),
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            ..Default::default()
        }),
        non_resource_attributes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_asks_to_connect_to_that_notebook_as_the_user() {
        let who = Identity {
            username: "ds@example.com".into(),
            uid: Some("u1".into()),
            groups: vec!["oidc:team".into()],
            extra: BTreeMap::new(),
        };
        let spec = sar_spec(&who, "team-a", "lab");
        assert_eq!(spec.user.as_deref(), Some("ds@example.com"));
        assert_eq!(spec.groups, Some(vec!["oidc:team".to_owned()]));
        assert_eq!(spec.uid.as_deref(), Some("u1"));
        let r = spec.resource_attributes.unwrap();
        assert_eq!(r.verb.as_deref(), Some("create"));
        assert_eq!(r.group.as_deref(), Some("berth.dev"));
        assert_eq!(r.resource.as_deref(), Some("notebooks"));
        assert_eq!(r.subresource.as_deref(), Some("connect"));
        assert_eq!(r.namespace.as_deref(), Some("team-a"));
        assert_eq!(r.name.as_deref(), Some("lab"));
    }
}
