//! Logging a person in the way a browser does, for tests and `cargo xtask dev --smoke`: the
//! OpenID Connect authorization code flow (Core 1.0 §3.1) with PKCE S256 (RFC 7636) on Keycloak's
//! HTTPS side, through its real login form, then the code exchanged with the client's secret.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::random_hex;
use crate::{ConsoleClient, Error, Keycloak, Result};

/// The tokens of one login.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The ID token: `aud` and `azp` are the client id.
    pub id_token: String,
    pub access_token: String,
}

/// Base64url without padding (RFC 4648 §5).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn answer(what: &str, message: String) -> Error {
    Error::Answer {
        what: what.to_owned(),
        message,
    }
}

impl Keycloak {
    /// Logs `username` in at `realm` for `client` over HTTPS: opens the authorization endpoint
    /// (code flow, PKCE S256, state and nonce), posts the user name and password to Keycloak's
    /// login form with its cookies, reads the redirect to `client.redirect_uri` (never followed)
    /// and exchanges its code with `client_secret` and the verifier, as the console does.
    ///
    /// Errors: [`Error::Answer`] without [`crate::KeycloakOptions::https`], when the form is
    /// missing (a wrong client or redirect URI), when the login does not redirect with the same
    /// state and a code (a wrong password), or when the token endpoint gives no ID token.
    pub async fn log_in(
        &self,
        realm: &str,
        client: &ConsoleClient,
        client_secret: &str,
        username: &str,
        password: &str,
    ) -> Result<Tokens> {
        let what = format!("logging {username} in at realm {realm}");
        let issuer = self
            .https_issuer(realm)
            .ok_or_else(|| answer(&what, "Keycloak serves no HTTPS".to_owned()))?;
        let ca = self
            .ca_pem()
            .ok_or_else(|| answer(&what, "Keycloak serves no HTTPS".to_owned()))?;
        let browser = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(
                reqwest::Certificate::from_pem(ca.as_bytes()).map_err(|e| Error::http(&what, e))?,
            )
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::http(&what, e))?;
        let verifier = random_hex(32)?;
        let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
        let state = random_hex(16)?;
        let page = browser
            .get(format!("{issuer}/protocol/openid-connect/auth"))
            .query(&[
                ("client_id", client.client_id.as_str()),
                ("redirect_uri", &client.redirect_uri),
                ("response_type", "code"),
                ("scope", "openid email profile"),
                ("state", &state),
                ("nonce", &random_hex(16)?),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .map_err(|e| Error::http(&what, e))?;
        let cookies: Vec<String> = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect();
        let status = page.status();
        let form = page.text().await.map_err(|e| Error::http(&what, e))?;
        let action = form
            .split("id=\"kc-form-login\"")
            .nth(1)
            .and_then(|rest| rest.split("action=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .map(|a| a.replace("&amp;", "&"))
            .ok_or_else(|| {
                answer(
                    &what,
                    format!(
                        "no login form ({status}): {}",
                        form.chars().take(400).collect::<String>()
                    ),
                )
            })?;
        let posted = browser
            .post(action)
            .header("Cookie", cookies.join("; "))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .map_err(|e| Error::http(&what, e))?;
        let location = posted
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                answer(
                    &what,
                    format!("no redirect after the form ({})", posted.status()),
                )
            })?;
        let url = reqwest::Url::parse(&location)
            .map_err(|e| answer(&what, format!("{e}: {location}")))?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state.as_str()) {
            return Err(answer(&what, format!("another state: {location}")));
        }
        let code = param("code").ok_or_else(|| answer(&what, format!("no code: {location}")))?;
        let body = crate::common::expect_success(
            &what,
            browser
                .post(format!("{issuer}/protocol/openid-connect/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &client.redirect_uri),
                    ("client_id", &client.client_id),
                    ("client_secret", client_secret),
                    ("code_verifier", &verifier),
                ])
                .send()
                .await,
        )
        .await?;
        let tokens: Value = crate::common::parse_json(&what, &body)?;
        let token = |name: &str| {
            tokens[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| answer(&what, format!("no {name} in the token answer")))
        };
        Ok(Tokens {
            id_token: token("id_token")?,
            access_token: token("access_token")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64url_is_rfc_4648_without_padding() {
        // RFC 4648 §10's vectors, unpadded; and RFC 7636 appendix B's challenge.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::b64url(plain.as_bytes()), encoded);
        }
        use sha2::Digest;
        assert_eq!(
            super::b64url(&sha2::Sha256::digest(
                b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
            )),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
