//! Kubernetes ServiceAccount tokens, checked with a TokenReview
//! (`POST /apis/authentication.k8s.io/v1/tokenreviews`) against the API server.
//!
//! The server calls the API server with its in-cluster config: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
//! the CA of `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`, and the pod's projected
//! token from `/var/run/secrets/kubernetes.io/serviceaccount/token`, re-read every
//! [`TOKEN_REREAD`] since the kubelet rotates it. The pod's ServiceAccount needs `create` on
//! `tokenreviews` (the `system:auth-delegator` ClusterRole grants it).
//!
//! A caller's token gets in when the review says `status.authenticated`, `status.audiences`
//! holds one of `--kubernetes-audience` (sent as `spec.audiences`), and `status.user.username`
//! is `system:serviceaccount:NS:NAME` with NS one of `--kubernetes-namespace` and, when
//! `--kubernetes-service-account` is given, NAME one of them (403 otherwise). Verdicts are
//! cached by the token's SHA-256: [`ALLOWED_TTL`] for a token that got in, [`DENIED_TTL`] for
//! one that did not; a review that failed (API server unreachable, 5xx) is not cached.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::Principal;
use super::answer::Denied;
use super::cache::{self, VerdictCache};
use super::config::KubernetesSettings;

/// How long a token that got in is let in again without a review.
pub const ALLOWED_TTL: Duration = Duration::from_secs(30);
/// How long a token that did not get in is refused again without a review.
pub const DENIED_TTL: Duration = Duration::from_secs(10);
/// How many verdicts are kept at most.
pub const MAX_VERDICTS: usize = 10_000;
/// How often the pod's own token is read again from its file.
pub const TOKEN_REREAD: Duration = Duration::from_secs(60);

/// Where the in-cluster credentials are.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The request of a TokenReview (authentication.k8s.io/v1), only the fields sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    spec: Spec<'a>,
}

#[derive(Debug, Serialize)]
struct Spec<'a> {
    token: &'a str,
    audiences: &'a [String],
}

/// The answer of a TokenReview, only the fields read.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewAnswer {
    #[serde(default)]
    pub status: ReviewStatus,
}

/// `status` of a TokenReview.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewStatus {
    #[serde(default)]
    pub authenticated: bool,
    #[serde(default)]
    pub user: ReviewUser,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `status.user` of a TokenReview.
#[derive(Debug, Default, Deserialize)]
pub struct ReviewUser {
    #[serde(default)]
    pub username: String,
}

/// The pod's own token, read again from its file every [`TOKEN_REREAD`].
struct ProjectedToken {
    path: PathBuf,
    reread: Duration,
    read: Mutex<Option<(Instant, String)>>,
}

impl ProjectedToken {
    fn get(&self) -> Result<String, String> {
        if let Ok(read) = self.read.lock()
            && let Some((at, token)) = &*read
            && at.elapsed() < self.reread
        {
            return Ok(token.clone());
        }
        let token = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read the pod's token {}: {e}", self.path.display()))?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(format!("the pod's token {} is empty", self.path.display()));
        }
        if let Ok(mut read) = self.read.lock() {
            *read = Some((Instant::now(), token.clone()));
        }
        Ok(token)
    }
}

/// Checks ServiceAccount tokens with TokenReviews.
pub struct TokenReviewer {
    settings: KubernetesSettings,
    url: Url,
    client: reqwest::Client,
    own_token: ProjectedToken,
    verdicts: VerdictCache,
}

impl TokenReviewer {
    /// A reviewer using the pod's in-cluster config (see the module docs). Errors name what
    /// is missing.
    pub fn in_cluster(settings: KubernetesSettings) -> Result<Self, String> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
            "--auth kubernetes needs the in-cluster config, but KUBERNETES_SERVICE_HOST is not set"
                .to_owned()
        })?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".to_owned());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let api = Url::parse(&format!("https://{host}:{port}"))
            .map_err(|e| format!("KUBERNETES_SERVICE_HOST/PORT do not make a URL: {e}"))?;
        let dir = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let ca = std::fs::read(dir.join("ca.crt"))
            .map_err(|e| format!("cannot read {SERVICE_ACCOUNT_DIR}/ca.crt: {e}"))?;
        let reviewer = Self::new(settings, api, dir.join("token"), Some(&ca))?;
        reviewer.own_token.get()?;
        Ok(reviewer)
    }

    /// A reviewer calling the API server at `api` with the token of `token_file`, trusting
    /// only `ca_pem` when given (an `http` URL is only for tests of the request/answer mapping).
    pub fn new(
        settings: KubernetesSettings,
        api: Url,
        token_file: PathBuf,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("berth-model-server/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the API server's CA is not PEM: {e}"))?;
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {}", crate::error::one_line(&e)))?;
        let url = api
            .join("/apis/authentication.k8s.io/v1/tokenreviews")
            .map_err(|e| format!("{api}: {e}"))?;
        Ok(Self {
            settings,
            url,
            client,
            own_token: ProjectedToken {
                path: token_file,
                reread: TOKEN_REREAD,
                read: Mutex::new(None),
            },
            verdicts: VerdictCache::new(MAX_VERDICTS),
        })
    }

    /// The same reviewer reading its own token again every `every` (default [`TOKEN_REREAD`]).
    pub fn with_token_reread(mut self, every: Duration) -> Self {
        self.own_token.reread = every;
        self
    }

    /// Checks `token`: who the caller is, or 401/403/503.
    pub async fn review(&self, token: &str) -> Result<(), Denied> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !plausible(token, now) {
            return Err(Denied::unauthenticated(
                "the token is not an unexpired ServiceAccount token (a JWT with exp)",
            ));
        }
        let hash = cache::hash(token);
        if let Some(verdict) = self.verdicts.get(&hash) {
            return verdict;
        }
        let status = self.ask(token).await?;
        let verdict = decide(&self.settings, &status).map(|caller| {
            tracing::debug!(caller = %caller.name, "ServiceAccount token reviewed");
        });
        let ttl = if verdict.is_ok() {
            ALLOWED_TTL
        } else {
            DENIED_TTL
        };
        self.verdicts
            .put(hash, Instant::now() + ttl, verdict.clone());
        verdict
    }

    /// Sends the review; a failure to get an answer is 503.
    async fn ask(&self, token: &str) -> Result<ReviewStatus, Denied> {
        let own = self.own_token.get().map_err(Denied::unavailable)?;
        let review = TokenReview {
            api_version: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: Spec {
                token,
                audiences: &self.settings.audiences,
            },
        };
        let response = self
            .client
            .post(self.url.clone())
            .bearer_auth(own)
            .json(&review)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %crate::error::one_line(&e), "the TokenReview failed");
                Denied::unavailable(
                    "cannot check the token now: the TokenReview failed; retry later",
                )
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            tracing::warn!(
                status = status.as_u16(),
                "the API server refused this pod's TokenReview: its ServiceAccount needs `create` on tokenreviews.authentication.k8s.io (e.g. the system:auth-delegator ClusterRole)"
            );
            return Err(Denied::unavailable(
                "cannot check the token now: this server may not create TokenReviews",
            ));
        }
        if !status.is_success() {
            tracing::warn!(status = status.as_u16(), "the TokenReview failed");
            return Err(Denied::unavailable(format!(
                "cannot check the token now: the TokenReview answered HTTP {}; retry later",
                status.as_u16()
            )));
        }
        let answer: ReviewAnswer = response.json().await.map_err(|e| {
            tracing::warn!(error = %crate::error::one_line(&e), "the TokenReview's answer does not parse");
            Denied::unavailable("cannot check the token now: the TokenReview's answer does not parse")
        })?;
        Ok(answer.status)
    }
}

/// Seconds a token's `exp` may have passed and still be sent for review (clock skew).
pub const EXPIRY_SKEW_SECS: u64 = 300;

/// Whether `token` is worth a TokenReview at `now` (seconds since the epoch): a JWT whose
/// payload is a JSON object with an `exp` not more than [`EXPIRY_SKEW_SECS`] past, which is what
/// every token the TokenRequest API (`kubectl create token`) makes. Found in review: every
/// string became a TokenReview, so a flood of made-up tokens was a flood on the API server and
/// pushed the allowed verdicts out of the cache. The signature stays the API server's to check.
pub fn plausible(token: &str, now: u64) -> bool {
    use base64::Engine as _;
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return false;
    };
    serde_json::from_slice::<Claims>(&bytes)
        .is_ok_and(|c| c.exp.saturating_add(EXPIRY_SKEW_SECS) >= now)
}

/// The verdict on a TokenReview's `status` (see the module docs).
pub fn decide(settings: &KubernetesSettings, status: &ReviewStatus) -> Result<Principal, Denied> {
    if !status.authenticated {
        if let Some(error) = &status.error {
            tracing::debug!(error = %error, "TokenReview: not authenticated");
        }
        return Err(Denied::unauthenticated(
            "the token is not a valid Kubernetes token for this model's audience",
        ));
    }
    if !status
        .audiences
        .iter()
        .any(|a| settings.audiences.contains(a))
    {
        return Err(Denied::unauthenticated(format!(
            "the token is not made for this model: its audience must be one of {}",
            settings.audiences.join(", ")
        )));
    }
    let username = &status.user.username;
    let Some((namespace, name)) = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    else {
        return Err(Denied::forbidden(format!(
            "'{username}' is not a ServiceAccount; only ServiceAccounts of {} may call this model",
            settings.namespaces.join(", ")
        )));
    };
    if !settings.namespaces.iter().any(|n| n == namespace) {
        return Err(Denied::forbidden(format!(
            "ServiceAccounts of namespace '{namespace}' may not call this model"
        )));
    }
    if !settings.service_accounts.is_empty() && !settings.service_accounts.iter().any(|n| n == name)
    {
        return Err(Denied::forbidden(format!(
            "ServiceAccount '{namespace}/{name}' may not call this model"
        )));
    }
    Ok(Principal {
        name: username.as_str().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unexpired_jwts_are_sent_for_review() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |claims: &str| format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims));
        let now = 1_800_000_000;
        assert!(plausible(&jwt(r#"{"exp":1800000600,"iss":"k8s"}"#), now));
        assert!(
            plausible(&jwt(r#"{"exp":1799999800}"#), now),
            "within the skew"
        );
        assert!(!plausible(&jwt(r#"{"exp":1799999000}"#), now), "expired");
        assert!(!plausible(&jwt(r#"{"iss":"k8s"}"#), now), "no exp");
        assert!(!plausible(&jwt("[1,2]"), now));
        assert!(!plausible("x1234", now), "not a JWT");
        assert!(!plausible("a.b.c.d", now));
        assert!(!plausible(&format!("{}.!!!.sig", b64("{}")), now));
    }

    fn settings(service_accounts: &[&str]) -> KubernetesSettings {
        KubernetesSettings {
            audiences: vec!["model-a".into()],
            namespaces: vec!["team".into()],
            service_accounts: service_accounts.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn status(authenticated: bool, username: &str, audiences: &[&str]) -> ReviewStatus {
        ReviewStatus {
            authenticated,
            user: ReviewUser {
                username: username.into(),
            },
            audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
            error: None,
        }
    }

    #[test]
    fn the_review_decides() {
        let any = settings(&[]);
        let sa = "system:serviceaccount:team:client";
        assert_eq!(
            &*decide(&any, &status(true, sa, &["model-a"])).unwrap().name,
            sa
        );
        let denied = |s: &KubernetesSettings, st: ReviewStatus| decide(s, &st).unwrap_err();
        assert_eq!(
            denied(&any, status(false, sa, &["model-a"])).status(),
            StatusCode::UNAUTHORIZED
        );
        // A token for another audience (e.g. the API server's) is not one for this model.
        assert_eq!(
            denied(&any, status(true, sa, &["https://kubernetes.default.svc"])).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            denied(&any, status(true, sa, &[])).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            denied(
                &any,
                status(true, "system:serviceaccount:other:client", &["model-a"])
            )
            .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            denied(&any, status(true, "alice", &["model-a"])).status(),
            StatusCode::FORBIDDEN
        );
        // A namespace that merely starts like an allowed one is another namespace.
        assert_eq!(
            denied(
                &any,
                status(true, "system:serviceaccount:team-b:x", &["model-a"])
            )
            .status(),
            StatusCode::FORBIDDEN
        );
        let only = settings(&["client"]);
        assert!(decide(&only, &status(true, sa, &["model-a"])).is_ok());
        assert_eq!(
            denied(
                &only,
                status(true, "system:serviceaccount:team:other", &["model-a"])
            )
            .status(),
            StatusCode::FORBIDDEN
        );
    }
}
