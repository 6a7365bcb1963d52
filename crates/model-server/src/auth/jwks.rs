//! The issuer's signing keys: a JWKS (RFC 7517) fetched over HTTP(S), kept by `kid`.
//!
//! - Found by OpenID Connect Discovery 1.0 (`jwks_uri` of `<issuer>/.well-known/openid-configuration`,
//!   whose `issuer` must be the configured one, §4.3) unless a JWKS URL is given.
//! - Refreshed every [`JwksTiming::refresh_every`] (key rotation: new keys appear, retired ones
//!   go), and refetched at once when a token names a `kid` the cache does not hold, at most once
//!   per [`JwksTiming::min_refetch`] so that tokens with made-up `kid`s cannot make the server
//!   hammer the issuer.
//! - A failed fetch keeps the keys already held.
//! - Only keys for signatures with an asymmetric algorithm are kept: `use: enc` keys,
//!   symmetric (`oct`) keys and keys whose `alg` is not a JWS signature algorithm are skipped.
//!   A key that declares its `alg` verifies only that algorithm; one that does not verifies
//!   the algorithms of its type and curve (RSA: RS256..PS512, P-256: ES256, P-384: ES384,
//!   Ed25519: EdDSA).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use reqwest::Url;
use serde::de::DeserializeOwned;

use super::config::JwksSource;

/// The largest discovery document or JWKS read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// How often the keys are fetched.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    /// Fetch the JWKS again this often, whatever the tokens say (default 5 min).
    pub refresh_every: Duration,
    /// Fetch it again for an unknown `kid` at most this often (default 10 s).
    pub min_refetch: Duration,
    /// Time limit of one HTTP request (default 10 s).
    pub request_timeout: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            refresh_every: Duration::from_secs(300),
            min_refetch: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// One verification key.
pub struct VerifyKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The algorithms this key may verify.
    pub algorithms: Vec<Algorithm>,
}

/// Why a key could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The JWKS holds no such key (after a refetch, if one was due).
    Unknown,
    /// No keys could be fetched at all: the reason of the last failure.
    Unavailable(String),
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    without_kid: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// The key named `kid`; without a `kid`, the one key that verifies `alg`, if only one does.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => {
                let mut fitting = self
                    .by_kid
                    .values()
                    .chain(&self.without_kid)
                    .filter(|k| k.algorithms.contains(&alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

struct FetchState {
    /// When a fetch was last tried.
    last_attempt: Option<Instant>,
    /// The JWKS URL found by discovery.
    discovered: Option<Url>,
}

/// The JWKS of one issuer, cached by `kid`.
pub struct JwksCache {
    issuer: String,
    source: JwksSource,
    client: reqwest::Client,
    timing: JwksTiming,
    keys: RwLock<Arc<KeySet>>,
    /// Serializes fetches; holds when the last one was tried.
    fetch: tokio::sync::Mutex<FetchState>,
    last_error: Mutex<Option<String>>,
}

impl JwksCache {
    /// A cache for `issuer`'s keys from `source`, fetched with `client`. Nothing is fetched
    /// until [`JwksCache::start`] or the first [`JwksCache::key`].
    pub fn new(
        issuer: String,
        source: JwksSource,
        client: reqwest::Client,
        timing: JwksTiming,
    ) -> Self {
        Self {
            issuer,
            source,
            client,
            timing,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: None,
                discovered: None,
            }),
            last_error: Mutex::new(None),
        }
    }

    /// Fetches the keys now, then every `refresh_every`, in a task that ends when the cache
    /// is dropped.
    pub fn start(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.timing.refresh_every;
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                cache.refresh().await;
                drop(cache);
                tokio::time::sleep(every).await;
            }
        });
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token's `kid` (and `alg`, when it names no `kid`): from the cache, or
    /// after a refetch if the key is unknown and none was tried within `min_refetch`.
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<VerifyKey>, KeyError> {
        if let Some(key) = self.current().find(kid, alg) {
            return Ok(key);
        }
        {
            let mut state = self.fetch.lock().await;
            let due = state
                .last_attempt
                .is_none_or(|t| t.elapsed() >= self.timing.min_refetch);
            if due {
                self.fetch_locked(&mut state).await;
            }
        }
        let keys = self.current();
        if let Some(key) = keys.find(kid, alg) {
            return Ok(key);
        }
        if keys.len() == 0
            && let Some(reason) = self.last_error.lock().ok().and_then(|e| e.clone())
        {
            return Err(KeyError::Unavailable(reason));
        }
        Err(KeyError::Unknown)
    }

    /// Fetches the keys now (waiting for a fetch under way). Returns how many are held.
    pub async fn refresh(&self) -> usize {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state).await;
        self.len()
    }

    async fn fetch_locked(&self, state: &mut FetchState) {
        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(state).await {
            Ok(set) => {
                tracing::debug!(keys = set.len(), "fetched the issuer's JWKS");
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Arc::new(set);
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
            }
            Err(reason) => {
                // Discover again next time: the issuer may have moved its keys.
                state.discovered = None;
                tracing::warn!(issuer = %self.issuer, error = %reason, "cannot fetch the issuer's keys; keeping the keys held");
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(reason);
                }
            }
        }
    }

    async fn jwks_url(&self, state: &mut FetchState) -> Result<Url, String> {
        match &self.source {
            JwksSource::Url(url) => Ok(url.clone()),
            JwksSource::Discovery(url) => {
                if let Some(found) = &state.discovered {
                    return Ok(found.clone());
                }
                #[derive(serde::Deserialize)]
                struct Discovery {
                    issuer: String,
                    jwks_uri: String,
                }
                let doc: Discovery =
                    get_json(&self.client, url, self.timing.request_timeout).await?;
                if doc.issuer != self.issuer {
                    return Err(format!(
                        "the discovery document at {url} is for issuer '{}', not '{}' (set --oidc-issuer to the `iss` of the tokens, and --oidc-jwks-url if the issuer is reached at another address)",
                        doc.issuer, self.issuer
                    ));
                }
                let jwks_uri = Url::parse(&doc.jwks_uri).map_err(|e| {
                    format!("the discovery document at {url} has no valid jwks_uri: {e}")
                })?;
                if !matches!(jwks_uri.scheme(), "http" | "https") {
                    return Err(format!("the jwks_uri of {url} is not an http(s) URL"));
                }
                state.discovered = Some(jwks_uri.clone());
                Ok(jwks_uri)
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = self.jwks_url(state).await?;
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = get_json(&self.client, &url, self.timing.request_timeout).await?;
        let mut set = KeySet::default();
        for value in doc.keys {
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(jwk) => jwk,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping a JWK that does not parse");
                    continue;
                }
            };
            let Some(key) = verify_key(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match &key.kid {
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key);
                }
                None => set.without_kid.push(key),
            }
        }
        if set.len() == 0 {
            return Err(format!("the JWKS at {url} holds no signature key"));
        }
        Ok(set)
    }
}

/// A signature verification key of `jwk`, or `None` if it is not one (encryption key,
/// symmetric key, unsupported type or curve, or not for `verify`).
pub fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    let common = &jwk.common;
    if matches!(
        common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if let Some(ops) = &common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return None;
    }
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys are never accepted: the issuer's secret is not ours to hold.
        _ => return None,
    };
    let algorithms = match common.key_algorithm {
        None => by_type.to_vec(),
        Some(declared) => {
            let alg = signature_algorithm(declared)?;
            if !by_type.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: common.key_id.clone(),
        key,
        algorithms,
    })
}

/// The asymmetric JWS algorithm a JWK's `alg` names, if it names one.
fn signature_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// GETs `url` and parses its JSON body, read up to [`MAX_DOCUMENT_BYTES`]. Errors are one
/// line naming the URL.
pub async fn get_json<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
) -> Result<T, String> {
    let mut response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", crate::error::one_line(&e)))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {}", crate::error::one_line(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "GET {url}: the document is over {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn keys_and_their_algorithms() {
        let ec = verify_key(&jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "kid": "e"
        })))
        .unwrap();
        assert_eq!(ec.algorithms, [Algorithm::ES256]);
        assert_eq!(ec.kid.as_deref(), Some("e"));
        // A declared alg narrows the key to it; one of another type drops the key.
        let declared = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "alg": "ES256", "use": "sig"
        });
        assert_eq!(
            verify_key(&jwk(declared)).unwrap().algorithms,
            [Algorithm::ES256]
        );
        let wrong = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "alg": "RS256"
        });
        assert!(verify_key(&jwk(wrong)).is_none());
        // Encryption keys, keys not for verify, and symmetric keys are skipped.
        let enc = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "use": "enc"
        });
        assert!(verify_key(&jwk(enc)).is_none());
        let sign_only = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y, "key_ops": ["sign"]
        });
        assert!(verify_key(&jwk(sign_only)).is_none());
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"});
        assert!(verify_key(&jwk(oct)).is_none());
    }
}
