//! A real OIDC issuer's public side, in-process on 127.0.0.1: a discovery document and a
//! JWKS served over HTTP by axum, with signing keys made in the test (ECDSA P-256 by rcgen,
//! and one fixed RSA test key, `rsa-test-key.pem`, used nowhere else), and tokens signed
//! with them by `jsonwebtoken`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A fixed RSA 2048 test key (PKCS#8), only ever used by these tests.
pub const RSA_TEST_KEY: &str = include_str!("rsa-test-key.pem");

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    /// The public key as PEM (SPKI), for the "public key as HMAC secret" attack.
    pub public_pem: String,
}

impl SigningKey {
    /// A new ECDSA P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        Self::with(kid, Algorithm::ES256, encoding, pair.public_key_pem())
    }

    /// The fixed RSA test key (RS256).
    pub fn rs256(kid: &str) -> Self {
        let encoding = EncodingKey::from_rsa_pem(RSA_TEST_KEY.as_bytes()).unwrap();
        Self::with(kid, Algorithm::RS256, encoding, String::new())
    }

    fn with(kid: &str, alg: Algorithm, encoding: EncodingKey, public_pem: String) -> Self {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
            public_pem,
        }
    }

    /// `claims` signed by this key, with its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: &Value, kid: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A token with `alg: HS256` whose HMAC secret is `secret` (e.g. the issuer's public key).
pub fn hmac_signed(claims: &Value, kid: &str, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

struct Published {
    issuer: String,
    keys: Mutex<Vec<Jwk>>,
    jwks_hits: AtomicUsize,
}

/// The issuer: `http://127.0.0.1:PORT/realms/test`, its discovery document and JWKS.
pub struct Issuer {
    pub url: String,
    published: Arc<Published>,
}

impl Issuer {
    /// Serves `keys` on a free loopback port.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/realms/test");
        let published = Arc::new(Published {
            issuer: url.clone(),
            keys: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(
                "/realms/test/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/realms/test/protocol/openid-connect/certs", get(jwks))
            .with_state(published.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, published }
    }

    /// Publishes `keys` instead (a key rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.published.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.published.jwks_hits.load(Ordering::SeqCst)
    }

    /// Claims valid for `audience` for the next five minutes.
    pub fn claims(&self, audience: &str) -> Value {
        let now = now();
        json!({
            "iss": self.url, "aud": audience, "sub": "user-1", "azp": "team-client",
            "preferred_username": "alice", "iat": now, "nbf": now - 1, "exp": now + 300,
            "realm_access": {"roles": ["offline_access"]},
            "resource_access": {"team-client": {"roles": ["model-user"]}},
            "groups": ["/ml-team"],
        })
    }
}

async fn discovery(State(p): State<Arc<Published>>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": p.issuer,
        "jwks_uri": format!("{}/protocol/openid-connect/certs", p.issuer),
    }))
}

async fn jwks(State(p): State<Arc<Published>>) -> axum::Json<Value> {
    p.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mut keys: Vec<Value> = p
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|k| serde_json::to_value(k).unwrap())
        .collect();
    // Like Keycloak's: an encryption key beside the signing keys, which must be skipped.
    keys.push(json!({"kid": "enc-1", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        "e": "AQAB"}));
    axum::Json(json!({ "keys": keys }))
}
