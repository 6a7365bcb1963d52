//! The auth check alone, on one thread: nanoseconds per `Auth::check` of a request carrying a
//! bearer token, for a token already verified (the steady state of a client that sends its
//! token again: SHA-256, cache lookup, header parsing) and for new tokens (the RS256 signature
//! check and claim validation each new token costs once). The issuer's JWKS is served
//! in-process on 127.0.0.1 (tests/issuer); the token is signed by its fixed RSA 2048 test key,
//! as Keycloak signs by default. Run by `bench/model-server/auth.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/issuer/mod.rs"]
mod issuer;

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use berth_model_server::auth::config::{JwksSource, OidcSettings};
use berth_model_server::auth::oidc::OidcVerifier;
use berth_model_server::auth::{Auth, AuthCounter, JwksTiming};
use serde_json::json;

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let key = issuer::SigningKey::rs256("bench-1");
    let issuer = issuer::Issuer::start(&[&key]).await;
    let settings = OidcSettings {
        issuer: issuer.url.clone(),
        jwks: JwksSource::Discovery(
            format!("{}/.well-known/openid-configuration", issuer.url)
                .parse()
                .unwrap(),
        ),
        audiences: vec!["bench-models".into()],
        clients: vec![],
        roles: vec!["model-user".into()],
        groups: vec![],
        ca_pem: None,
        clock_skew: Duration::from_secs(30),
    };
    let verifier = OidcVerifier::new(settings, JwksTiming::default()).unwrap();
    let auth = Auth::oidc(verifier, AuthCounter::default());

    let token = key.sign(&issuer.claims("bench-models"));
    let headers = bearer(&token);
    auth.check(&headers).await.unwrap();

    let n = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(auth.check(std::hint::black_box(&headers)).await.is_ok());
    }
    let cached = started.elapsed() / n;

    // The same on two threads at once, as the server's workers do.
    let auth2 = auth.clone();
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let auth = auth2.clone();
            let headers = headers.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for _ in 0..n {
                        std::hint::black_box(
                            auth.check(std::hint::black_box(&headers)).await.is_ok(),
                        );
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let parallel = started.elapsed() / n;

    let fresh: Vec<HeaderMap> = (0..500)
        .map(|i| {
            let mut claims = issuer.claims("bench-models");
            claims["jti"] = json!(format!("bench-{i}"));
            bearer(&key.sign(&claims))
        })
        .collect();
    let started = Instant::now();
    for headers in &fresh {
        assert!(auth.check(headers).await.is_ok());
    }
    let new = started.elapsed() / fresh.len() as u32;
    println!(
        "auth check, RS256 token of {} bytes: {:.2} µs per request with a token already verified on one thread, {:.2} µs each on two threads at once; {:.1} µs for a new token",
        token.len(),
        cached.as_secs_f64() * 1e6,
        parallel.as_secs_f64() * 1e6,
        new.as_secs_f64() * 1e6,
    );
}
