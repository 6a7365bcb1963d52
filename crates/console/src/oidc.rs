//! Browser login: the OpenID Connect authorization code flow (OpenID Connect Core 1.0 §3.1) with
//! PKCE S256 (RFC 7636), `state` (bound to the browser by the login cookie) and `nonce` (bound to
//! the ID token), against the platform's identity provider (Keycloak's realm).
//!
//! Hand-written on reqwest and jsonwebtoken, which the workspace already builds: the
//! `openidconnect` crate would add its own tree (oauth2, serde_with, chrono, RSA and curve crates)
//! to the cold build for four HTTP calls. Discovery (`<issuer>/.well-known/openid-configuration`)
//! gives the endpoints; the ID token's signature is checked with the issuer's JWKS key of the
//! token's `kid` (re-fetched once on an unknown kid), its `iss`, `aud` (the client id), `exp` and
//! `nonce`.
//!
//! Who the user is: the `email` claim, **only when `email_verified` is true**, lower-cased
//! (`EmailUserNames::LowerCase`, how Project RoleBindings spell e-mail users), with the configured
//! prefix; groups from the `groups` claim with the configured prefix. A user who sets their own
//! e-mail in the identity provider to an owner's has it unverified, and gets no session.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::kube_auth::Identity;

/// How the console is registered with the identity provider.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The exact issuer (`iss`), e.g. `https://keycloak.example/realms/berth`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `<console URL>/oauth2/callback`.
    pub redirect_uri: String,
    /// Put before the e-mail to make the Kubernetes user name (e.g. `oidc:`); empty by default,
    /// as Project owners are listed by bare e-mail.
    pub username_prefix: String,
    /// Put before each group.
    pub groups_prefix: String,
    /// Extra trusted CA certificates (PEM) for an https issuer whose certificate no public root
    /// signs (a platform's own CA; the local platform's Keycloak). `None`: the public roots only.
    pub ca_pem: Option<String>,
}

/// The endpoints discovery gives.
#[derive(Clone, Debug, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// The claims read from the ID token.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub exp: u64,
}

/// The answer of the token endpoint (RFC 6749 §5.1), only what is read.
#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    /// The refresh token, to get a fresh ID token before this one expires.
    refresh_token: Option<String>,
    /// Seconds the refresh token (the identity provider's session) lives: Keycloak's
    /// `refresh_expires_in`, its SSO session idle timeout.
    refresh_expires_in: Option<u64>,
}

/// A finished login: the ID token's claims, the token itself, and how long the provider's own
/// session lives (seconds), when it says.
#[derive(Debug)]
pub struct Finished {
    pub claims: Claims,
    pub id_token: String,
    pub session_secs: Option<u64>,
    /// The refresh token, when the provider gave one.
    pub refresh_token: Option<String>,
}

/// The OIDC client.
pub struct Oidc {
    pub settings: OidcSettings,
    http: reqwest::Client,
    provider: tokio::sync::OnceCell<Provider>,
    keys: Mutex<Option<JwkSet>>,
}

/// A failed login, said to the user in a page (never a token or secret).
#[derive(Debug)]
pub struct LoginError(pub String);

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(message: impl Into<String>) -> LoginError {
    LoginError(message.into())
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The prefix Kubernetes reserves for its own users and groups.
pub const RESERVED: &str = "system:";

/// The prefix of the realm groups Berth makes per Project (`berth-<project>`,
/// crates/controllers/src/names/outside.rs): their names are chosen by Project creators, so the
/// console never acts as a member of one.
pub const PROJECT_GROUP_PREFIX: &str = "berth-";

/// Who the verified `claims` are (see the module docs), or why they get no session. Groups that
/// start with `system:` (before or after the prefix) are dropped, and a user name that does is
/// refused.
pub fn identity(claims: &Claims, settings: &OidcSettings) -> Result<Identity, LoginError> {
    let email = claims
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            err("your account has no e-mail address; the console names users by their verified e-mail")
        })?;
    if claims.email_verified != Some(true) {
        return Err(err(format!(
            "your e-mail address {email} is not verified by the identity provider; verify it there, then log in again"
        )));
    }
    let username = format!("{}{}", settings.username_prefix, email.to_lowercase());
    if username.starts_with(RESERVED) {
        return Err(err(format!(
            "the user name {username} is in Kubernetes' reserved system: namespace; the console does not log it in"
        )));
    }
    Ok(Identity {
        username,
        uid: None,
        // Kubernetes reserves `system:` (system:masters is cluster-admin): an identity provider's
        // group of that name (any realm admin can make one) must not become it.
        groups: claims
            .groups
            .iter()
            .filter(|g| !g.starts_with(RESERVED))
            // Berth names a Project's realm group `berth-<project>`, a name its creator picks:
            // never a Kubernetes group (the API server's AuthenticationConfiguration drops them
            // too).
            .filter(|g| !g.starts_with(PROJECT_GROUP_PREFIX))
            .map(|g| format!("{}{g}", settings.groups_prefix))
            .filter(|g| !g.starts_with(RESERVED))
            .collect(),
        extra: Default::default(),
    })
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder();
        if let Some(pem) = &settings.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("the issuer's CA certificates: {e}"))?;
            anyhow::ensure!(
                !certificates.is_empty(),
                "the issuer's CA file holds no PEM certificate"
            );
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http
            .user_agent(concat!("berth-console/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            settings,
            http,
            provider: tokio::sync::OnceCell::new(),
            keys: Mutex::new(None),
        })
    }

    /// The provider's endpoints, discovered once (retried on the next login when it failed).
    pub async fn provider(&self) -> Result<&Provider, LoginError> {
        self.provider
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let provider: Provider = self.get_json(&url).await?;
                if provider.issuer != self.settings.issuer {
                    return Err(err(format!(
                        "the identity provider says its issuer is {}, not {}",
                        provider.issuer, self.settings.issuer
                    )));
                }
                Ok(provider)
            })
            .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LoginError> {
        let response = self.http.get(url).send().await.map_err(|e| {
            tracing::warn!(%url, error = %e, "the identity provider cannot be reached");
            err("the identity provider cannot be reached; retry later")
        })?;
        if !response.status().is_success() {
            tracing::warn!(%url, status = response.status().as_u16(), "the identity provider refused");
            return Err(err(
                "the identity provider answered with an error; retry later",
            ));
        }
        response.json().await.map_err(|e| {
            tracing::warn!(%url, error = %e, "the identity provider's answer does not parse");
            err("the identity provider's answer does not parse")
        })
    }

    /// Where to send the browser to log in.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, LoginError> {
        let provider = self.provider().await?;
        let mut url = reqwest::Url::parse(&provider.authorization_endpoint)
            .map_err(|_| err("the identity provider's authorization endpoint is not a URL"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges `code` (with the PKCE verifier) for an ID token and checks it.
    pub async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Finished, LoginError> {
        let answer = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.settings.redirect_uri.as_str()),
                ("code_verifier", verifier),
            ])
            .await
            .map_err(|_| {
                err("the identity provider refused the login (expired or reused code); log in again")
            })?;
        let id_token = answer
            .id_token
            .ok_or_else(|| err("the identity provider gave no ID token (scope openid)"))?;
        let claims = self.verify(&id_token, Some(nonce)).await?;
        Ok(Finished {
            claims,
            id_token,
            session_secs: answer.refresh_expires_in.filter(|s| *s > 0),
            refresh_token: answer.refresh_token,
        })
    }

    /// A fresh ID token for the session of `refresh_token` (RFC 6749 §6; OpenID Connect Core
    /// 1.0 §12): checked like the first one (signature, `iss`, `aud`, `exp`), and its `nonce`, if
    /// it carries one, must be the login's. Fails when the identity provider's session has ended
    /// (logged out, expired, user disabled): the console's session then ends too.
    pub async fn refresh(&self, refresh_token: &str, nonce: &str) -> Result<Finished, LoginError> {
        let answer = self
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .await?;
        let id_token = answer
            .id_token
            .ok_or_else(|| err("the identity provider gave no ID token on refresh"))?;
        let claims = self.verify(&id_token, None).await?;
        if claims.nonce.as_deref().is_some_and(|n| n != nonce) {
            return Err(err("the refreshed ID token's nonce is not this login's"));
        }
        Ok(Finished {
            claims,
            id_token,
            session_secs: answer.refresh_expires_in.filter(|s| *s > 0),
            // Keycloak rotates refresh tokens when configured; keep the old one otherwise.
            refresh_token: answer
                .refresh_token
                .or_else(|| Some(refresh_token.to_owned())),
        })
    }

    /// A call of the token endpoint with the client's credentials.
    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, LoginError> {
        let provider = self.provider().await?;
        let response = self
            .http
            .post(&provider.token_endpoint)
            .basic_auth(&self.settings.client_id, Some(&self.settings.client_secret))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the token endpoint cannot be reached");
                err("the identity provider cannot be reached; retry later")
            })?;
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "the token endpoint refused"
            );
            return Err(err("the identity provider refused; log in again"));
        }
        response
            .json()
            .await
            .map_err(|_| err("the identity provider's token answer does not parse"))
    }

    /// Checks the ID token's signature and claims.
    async fn verify(&self, token: &str, nonce: Option<&str>) -> Result<Claims, LoginError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| err("the ID token is not a signed JWT"))?;
        let alg = header.alg;
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::ES256
                | Algorithm::ES384
        ) {
            return Err(err(format!(
                "the ID token's algorithm {alg:?} is not accepted"
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            tracing::warn!(error = %e, "an ID token was refused");
            err("the ID token does not check out (signature, issuer, audience or expiry)")
        })?;
        if let Some(nonce) = nonce
            && data.claims.nonce.as_deref() != Some(nonce)
        {
            return Err(err("the ID token's nonce is not this login's"));
        }
        Ok(data.claims)
    }

    /// The key of `kid` from the JWKS (fetched again once when the kid is unknown).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, LoginError> {
        let find = |set: &JwkSet| -> Option<DecodingKey> {
            let jwk = match kid {
                Some(kid) => set.find(kid)?,
                None if set.keys.len() == 1 => set.keys.first()?,
                None => return None,
            };
            DecodingKey::from_jwk(jwk).ok()
        };
        if let Ok(keys) = self.keys.lock()
            && let Some(key) = keys.as_ref().and_then(find)
        {
            return Ok(key);
        }
        let provider = self.provider().await?;
        let set: JwkSet = self.get_json(&provider.jwks_uri).await?;
        let key = find(&set);
        if let Ok(mut keys) = self.keys.lock() {
            *keys = Some(set);
        }
        key.ok_or_else(|| err("the ID token is signed with a key the issuer does not publish"))
    }

    /// Where to send the browser to end its identity provider session too, when the provider
    /// has one (RP-Initiated Logout 1.0).
    pub async fn end_session_url(&self, id_token: &str, after: &str) -> Option<String> {
        let provider = self.provider().await.ok()?;
        let mut url = reqwest::Url::parse(provider.end_session_endpoint.as_deref()?).ok()?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("post_logout_redirect_uri", after)
            .append_pair("client_id", &self.settings.client_id);
        Some(url.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "http://kc/realms/berth".into(),
            client_id: "berth-console".into(),
            client_secret: "s".into(),
            redirect_uri: "http://console/oauth2/callback".into(),
            username_prefix: String::new(),
            groups_prefix: "oidc:".into(),
            ca_pem: None,
        }
    }

    #[test]
    fn pkce_s256_is_rfc_7636s() {
        // BASE64URL(SHA256(verifier)) without padding, as computed independently by
        // `printf %s VERIFIER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d =`.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ0kXUcuYq8eNwdZ9ypr7nrPfkcWsk"),
            "o1dGH1pU0tbrEzF4gG4Eo2zuep5CRLGJ_PR2vASctC4"
        );
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let with = |pem: &str| {
            Oidc::new(OidcSettings {
                ca_pem: Some(pem.into()),
                ..settings()
            })
        };
        assert!(with("").is_err(), "an empty CA file is refused");
        assert!(with("not a certificate").is_err());
        assert!(
            Oidc::new(settings()).is_ok(),
            "no CA file: the public roots"
        );
    }

    #[test]
    fn only_a_verified_email_names_the_user() {
        let verified = Claims {
            email: Some("DS@Example.com".into()),
            email_verified: Some(true),
            groups: vec!["team".into()],
            ..Default::default()
        };
        let who = identity(&verified, &settings()).unwrap();
        assert_eq!(who.username, "ds@example.com");
        assert_eq!(who.groups, vec!["oidc:team".to_owned()]);
        // A user who typed an owner's e-mail into their own account: not verified, no session.
        for unverified in [Some(false), None] {
            let claims = Claims {
                email_verified: unverified,
                ..verified.clone()
            };
            let refused = identity(&claims, &settings()).unwrap_err();
            assert!(refused.0.contains("not verified"), "{refused}");
        }
        let no_email = Claims {
            email: None,
            email_verified: Some(true),
            ..Default::default()
        };
        assert!(identity(&no_email, &settings()).is_err());
        let prefixed = OidcSettings {
            username_prefix: "oidc:".into(),
            ..settings()
        };
        assert_eq!(
            identity(&verified, &prefixed).unwrap().username,
            "oidc:ds@example.com"
        );
    }

    #[test]
    fn system_groups_and_users_never_come_from_the_identity_provider() {
        let claims = Claims {
            email: Some("ds@example.com".into()),
            email_verified: Some(true),
            groups: vec![
                "system:masters".into(),
                "team".into(),
                "system:authenticated".into(),
                // A Project named platform-admin gets the realm group berth-platform-admin.
                "berth-platform-admin".into(),
            ],
            ..Default::default()
        };
        let unprefixed = OidcSettings {
            groups_prefix: String::new(),
            ..settings()
        };
        assert_eq!(
            identity(&claims, &unprefixed).unwrap().groups,
            vec!["team".to_owned()]
        );
        let system_prefix = OidcSettings {
            groups_prefix: "system:".into(),
            ..settings()
        };
        assert!(identity(&claims, &system_prefix).unwrap().groups.is_empty());
        let system_user = OidcSettings {
            username_prefix: "system:".into(),
            ..settings()
        };
        let refused = identity(&claims, &system_user).unwrap_err();
        assert!(refused.0.contains("reserved"), "{refused}");
        let email = Claims {
            email: Some("System:admin@example.com".into()),
            ..claims
        };
        assert!(identity(&email, &settings()).is_err(), "lower-cased first");
    }
}
