//! The axum layer in front of every route of the public port: takes the bearer token of
//! `Authorization` (RFC 6750 §2.1), has it checked, counts the result, and answers 401, 403
//! or 503 (see [`super::answer`]) without running the handler, or runs it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use prometheus_client::metrics::counter::Counter;

use super::answer::{AuthResult, Denied};
use super::config::AuthSettings;
use super::jwks::JwksTiming;
use super::oidc::OidcVerifier;
use super::token_review::TokenReviewer;
use super::{AuthCounter, AuthLabels};

/// The longest bearer token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

enum Checker {
    Oidc(OidcVerifier),
    Kubernetes(TokenReviewer),
}

/// A configured check, shared by every request.
pub struct Auth {
    checker: Checker,
    /// The series of `berth_model_auth_requests_total`, by [`AuthResult`], resolved once.
    counts: [Counter; 4],
}

fn series(counter: &AuthCounter) -> [Counter; 4] {
    [
        AuthResult::Allowed,
        AuthResult::Unauthenticated,
        AuthResult::Forbidden,
        AuthResult::Error,
    ]
    .map(|result| {
        counter
            .get_or_create(&AuthLabels {
                result: result.as_str(),
            })
            .clone()
    })
}

impl Auth {
    /// The check for `settings` (`None` for `--auth none`), counting into `counter`. For
    /// `kubernetes`, reads the in-cluster config. Call inside a Tokio runtime: `oidc` starts
    /// fetching the issuer's keys in the background.
    pub fn from_settings(
        settings: AuthSettings,
        counter: AuthCounter,
    ) -> Result<Option<Arc<Self>>, String> {
        let checker = match settings {
            AuthSettings::None => return Ok(None),
            AuthSettings::Oidc(oidc) => {
                let verifier = OidcVerifier::new(oidc, JwksTiming::default())?;
                verifier.start();
                Checker::Oidc(verifier)
            }
            AuthSettings::Kubernetes(k) => Checker::Kubernetes(TokenReviewer::in_cluster(k)?),
        };
        Ok(Some(Arc::new(Self {
            checker,
            counts: series(&counter),
        })))
    }

    /// A check by `verifier` (already started, or to start).
    pub fn oidc(verifier: OidcVerifier, counter: AuthCounter) -> Arc<Self> {
        Arc::new(Self {
            checker: Checker::Oidc(verifier),
            counts: series(&counter),
        })
    }

    /// A check by `reviewer`.
    pub fn kubernetes(reviewer: TokenReviewer, counter: AuthCounter) -> Arc<Self> {
        Arc::new(Self {
            checker: Checker::Kubernetes(reviewer),
            counts: series(&counter),
        })
    }

    /// Checks the request's headers, and counts the result.
    pub async fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let result = match bearer_token(headers) {
            Ok(token) => match &self.checker {
                Checker::Oidc(v) => v.verify(token).await,
                Checker::Kubernetes(r) => r.review(token).await,
            },
            Err(denied) => Err(denied),
        };
        let index = match &result {
            Ok(_) => 0,
            Err(denied) => match denied.result() {
                AuthResult::Allowed => 0,
                AuthResult::Unauthenticated => 1,
                AuthResult::Forbidden => 2,
                AuthResult::Error => 3,
            },
        };
        self.counts[index].inc();
        result
    }
}

/// The token of the one `Authorization: Bearer <token>` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Denied> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Denied::unauthenticated(
            "this model needs a bearer token: send Authorization: Bearer <token>",
        ));
    };
    if values.next().is_some() {
        return Err(Denied::unauthenticated(
            "the request has more than one Authorization header",
        ));
    }
    let malformed = || Denied::unauthenticated("the Authorization header is not 'Bearer <token>'");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim_start_matches(' ');
    // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || token.len() > MAX_TOKEN_BYTES
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(malformed());
    }
    Ok(token)
}

/// The middleware: runs the handler only for a request whose token gets in.
pub async fn require_token(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    match auth.check(request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            match &denied {
                Denied::Unavailable(reason) => {
                    tracing::warn!(error = %reason, "cannot check a token");
                }
                other => tracing::debug!(reason = %other, "request refused"),
            }
            denied.into_response()
        }
    }
}

/// The same for the gRPC API: a refused call is answered with a gRPC status in a
/// trailers-only response (HTTP 200, `grpc-status` 16 `UNAUTHENTICATED`, 7
/// `PERMISSION_DENIED` or 14 `UNAVAILABLE`, the reason in `grpc-message`), as gRPC clients
/// expect, plus the same `WWW-Authenticate` challenge. The token comes in the
/// `authorization` metadata, `Bearer <token>`.
pub async fn require_token_grpc(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    match auth.check(request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            let challenge = denied.clone().into_response();
            let status = match &denied {
                Denied::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
                Denied::Forbidden(m) => tonic::Status::permission_denied(m.clone()),
                Denied::Unavailable(m) => {
                    tracing::warn!(error = %m, "cannot check a token");
                    tonic::Status::unavailable(m.clone())
                }
            };
            let mut response = status.into_http::<axum::body::Body>();
            if let Some(value) = challenge.headers().get(header::WWW_AUTHENTICATE) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value.clone());
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def-_~+/="])).unwrap(),
            "abc.def-_~+/="
        );
        assert_eq!(bearer_token(&headers(&["bearer  a.b.c"])).unwrap(), "a.b.c");
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\"b",
            "a.b.c",
        ] {
            let err = bearer_token(&headers(&[bad])).unwrap_err();
            assert!(matches!(err, Denied::Unauthenticated(_)), "{bad}");
            assert!(
                !err.to_string().contains("dXNl"),
                "the token is never echoed"
            );
        }
        assert!(
            bearer_token(&headers(&[]))
                .unwrap_err()
                .to_string()
                .contains("needs a bearer token")
        );
        assert!(bearer_token(&headers(&["Bearer a", "Bearer b"])).is_err());
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(bearer_token(&headers(&[&long])).is_err());
    }
}
