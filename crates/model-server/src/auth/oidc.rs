//! Bearer JWTs of an OpenID Connect issuer (e.g. a Keycloak realm), checked natively.
//!
//! A token gets in when, in order (RFC 7519 §7.2, RFC 8725, OpenID Connect Core §3.1.3.7):
//! 1. it is a JWS whose `alg` is asymmetric (RS256/384/512, PS256/384/512, ES256/384,
//!    EdDSA): `none` and the HMAC algorithms are refused, so a public key can never be used
//!    as an HMAC secret;
//! 2. the issuer's JWKS holds its `kid` (see [`super::jwks`]) and that key verifies `alg`;
//! 3. its signature verifies;
//! 4. `iss` is exactly `--oidc-issuer`, `aud` holds one of `--oidc-audience`, `exp` has not
//!    passed and `nbf`/`iat` are not in the future, each with `--clock-skew-secs` of leeway;
//!
//! Then (403 otherwise) its `azp` is one of `--oidc-client`, it holds one of `--oidc-role`
//! (in `realm_access.roles` or `resource_access.*.roles`, Keycloak's role claims) and one of
//! `--oidc-group` (in `groups`), each only when given.
//!
//! Verdicts are cached by the token's SHA-256 for at most [`VERDICT_TTL`] and never past
//! the token's `exp` (see [`super::cache`]); a key removed from the JWKS thus stops
//! letting its tokens in within that time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{AlgorithmFamily, Validation};
use serde::Deserialize;

use super::Principal;
use super::answer::Denied;
use super::cache::{self, VerdictCache};
use super::config::OidcSettings;
use super::jwks::{JwksCache, JwksTiming, KeyError};

/// How long a verdict on a token is kept at most.
pub const VERDICT_TTL: Duration = Duration::from_secs(60);

/// How many verdicts are kept at most.
pub const MAX_VERDICTS: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
struct Roles {
    #[serde(default)]
    roles: Vec<String>,
}

/// The claims looked at beyond those `jsonwebtoken` validates (`exp`, `nbf`, `iss`, `aud`).
#[derive(Debug, Deserialize)]
struct Claims {
    exp: f64,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    realm_access: Option<Roles>,
    #[serde(default)]
    resource_access: Option<HashMap<String, Roles>>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// Checks bearer JWTs against one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    jwks: Arc<JwksCache>,
    verdicts: VerdictCache,
}

/// An HTTP client trusting the system's roots (webpki) plus `ca_pem`'s certificates, following
/// no redirects.
pub fn http_client(ca_pem: Option<&[u8]>, what: &str) -> Result<reqwest::Client, String> {
    // No redirects: the issuer's keys come from the configured or discovered URL only, and an
    // https URL is never followed to http.
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("berth-model-server/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("{what}: not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{what}: holds no PEM certificate"));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {}", crate::error::one_line(&e)))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl OidcVerifier {
    /// A verifier for `settings`, fetching keys with the given timing. Call
    /// [`OidcVerifier::start`] inside a Tokio runtime to fetch the keys at once and keep them
    /// fresh.
    pub fn new(settings: OidcSettings, timing: JwksTiming) -> Result<Self, String> {
        let client = http_client(settings.ca_pem.as_deref(), "--oidc-ca-file")?;
        let jwks = Arc::new(JwksCache::new(
            settings.issuer.clone(),
            settings.jwks.clone(),
            client,
            timing,
        ));
        Ok(Self {
            settings,
            jwks,
            verdicts: VerdictCache::new(MAX_VERDICTS),
        })
    }

    /// Fetches the keys now and every refresh interval, in the background.
    pub fn start(&self) {
        self.jwks.start();
    }

    /// The key cache.
    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// Checks `token`: who the caller is, or 401/403/503.
    pub async fn verify(&self, token: &str) -> Result<(), Denied> {
        let hash = cache::hash(token);
        if let Some(verdict) = self.verdicts.get(&hash) {
            return verdict;
        }
        let claims = self.check(token).await?;
        // Never past `exp` (plus the leeway it was checked with).
        let left = claims.exp + self.settings.clock_skew.as_secs_f64() - now_secs();
        let ttl = VERDICT_TTL.min(Duration::from_secs_f64(left.clamp(0.0, 86_400.0)));
        let verdict = self.authorize(&claims);
        let caller = Principal::from_claims(claims);
        match &verdict {
            Ok(()) => tracing::debug!(caller = %caller.name, "token verified"),
            Err(denied) => {
                tracing::debug!(caller = %caller.name, reason = %denied, "token refused")
            }
        }
        self.verdicts
            .put(hash, Instant::now() + ttl, verdict.clone());
        verdict
    }

    /// Authentication: signature and registered claims.
    async fn check(&self, token: &str) -> Result<Claims, Denied> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Denied::unauthenticated(
                "the bearer token is not a well-formed signed JWT with a supported algorithm",
            )
        })?;
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(Denied::unauthenticated(format!(
                "the token's algorithm {alg:?} is not accepted: only the issuer's asymmetric keys sign tokens"
            )));
        }
        let key = self
            .jwks
            .key(header.kid.as_deref(), alg)
            .await
            .map_err(|e| match e {
                KeyError::Unknown => Denied::unauthenticated(
                    "the token is signed with a key the issuer does not publish",
                ),
                // The reason (URLs, addresses) is logged by the cache, not told to the caller.
                KeyError::Unavailable(_) => Denied::unavailable(
                    "cannot check the token now: the issuer's keys cannot be fetched; retry later",
                ),
            })?;
        if !key.algorithms.contains(&alg) || key.key.family() != alg.family() {
            return Err(Denied::unauthenticated(format!(
                "the token's algorithm {alg:?} is not the one of its key"
            )));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.settings.clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| Denied::unauthenticated(describe(e.kind(), &self.settings)))?;
        let claims = data.claims;
        let skew = self.settings.clock_skew.as_secs_f64();
        if let Some(iat) = claims.iat
            && iat > now_secs() + skew
        {
            return Err(Denied::unauthenticated(
                "the token is issued in the future (iat), beyond the allowed clock skew",
            ));
        }
        Ok(claims)
    }

    /// Authorization of verified claims: client, roles and groups.
    fn authorize(&self, claims: &Claims) -> Result<(), Denied> {
        let s = &self.settings;
        if !s.clients.is_empty() {
            let azp = claims.azp.as_deref().unwrap_or("");
            if !s.clients.iter().any(|c| c == azp) {
                return Err(Denied::forbidden(format!(
                    "the token was issued to client '{azp}', which may not call this model"
                )));
            }
        }
        if !s.roles.is_empty() {
            let realm = claims.realm_access.iter().flat_map(|r| &r.roles);
            let clients = claims
                .resource_access
                .iter()
                .flat_map(|m| m.values())
                .flat_map(|r| &r.roles);
            let mut held = realm.chain(clients);
            if !held.any(|r| s.roles.contains(r)) {
                return Err(Denied::forbidden(format!(
                    "the token holds none of the roles allowed to call this model ({})",
                    s.roles.join(", ")
                )));
            }
        }
        if !s.groups.is_empty() {
            let mut groups = claims.groups.iter().flatten();
            if !groups.any(|g| {
                s.groups
                    .iter()
                    .any(|a| a == g || g.strip_prefix('/') == Some(a))
            }) {
                return Err(Denied::forbidden(format!(
                    "the token is in none of the groups allowed to call this model ({})",
                    s.groups.join(", ")
                )));
            }
        }
        Ok(())
    }
}

impl Principal {
    fn from_claims(claims: Claims) -> Self {
        Self {
            name: claims
                .preferred_username
                .or(claims.sub)
                .unwrap_or_else(|| "?".to_owned())
                .into(),
        }
    }
}

/// Why `jsonwebtoken` refused a token, for the caller (never the token itself).
fn describe(kind: &ErrorKind, settings: &OidcSettings) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => {
            format!("the token is not issued by {}", settings.issuer)
        }
        ErrorKind::InvalidAudience => format!(
            "the token is not for this model: its audience must hold one of {}",
            settings.audiences.join(", ")
        ),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no '{claim}' claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not the one of its key".to_owned(),
        _ => "the token is malformed".to_owned(),
    }
}
