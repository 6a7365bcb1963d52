//! The answers to a request that does not get in (RFC 6750, §3), and the result label of
//! `berth_model_auth_requests_total`.
//!
//! - 401 Unauthorized, `WWW-Authenticate: Bearer realm="berth", error="invalid_token",
//!   error_description="..."`: the token is missing, malformed, expired, badly signed, from
//!   another issuer or for another audience.
//! - 403 Forbidden, `WWW-Authenticate: Bearer realm="berth", error="insufficient_scope",
//!   error_description="..."`: the token is valid, but its client, roles, groups, namespace
//!   or ServiceAccount are not allowed here.
//! - 503 Service Unavailable: the token could not be checked now (the JWKS or the API
//!   server cannot be reached); the client may retry.
//!
//! The body is always the Open Inference Protocol's error object, `{"error": "..."}`. No
//! message ever holds the token or any part of it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorBody;

/// The realm of every challenge.
pub const REALM: &str = "berth";

/// Why a request did not get in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// 401: no valid token (RFC 6750 `invalid_token`).
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a valid token that is not allowed here (RFC 6750 `insufficient_scope`).
    #[error("{0}")]
    Forbidden(String),
    /// 503: the token could not be checked now.
    #[error("{0}")]
    Unavailable(String),
}

impl Denied {
    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::Unauthenticated(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::Unavailable(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `result` label of `berth_model_auth_requests_total`.
    pub fn result(&self) -> AuthResult {
        match self {
            Self::Unauthenticated(_) => AuthResult::Unauthenticated,
            Self::Forbidden(_) => AuthResult::Forbidden,
            Self::Unavailable(_) => AuthResult::Error,
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) | Self::Unavailable(m) => m,
        }
    }
}

/// The `result` label of `berth_model_auth_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    Allowed,
    Unauthenticated,
    Forbidden,
    Error,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Error => "error",
        }
    }
}

/// A `WWW-Authenticate` challenge (RFC 6750 §3). The description is kept to the characters
/// RFC 6750 allows in `error_description` (printable ASCII but `"` and `\`).
pub fn challenge(error: &str, description: &str) -> HeaderValue {
    let description: String = description
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    let value =
        format!(r#"Bearer realm="{REALM}", error="{error}", error_description="{description}""#);
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(r#"Bearer realm="berth""#))
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.message().to_owned(),
            }),
        )
            .into_response();
        let error = match &self {
            Self::Unauthenticated(_) => Some("invalid_token"),
            Self::Forbidden(_) => Some("insufficient_scope"),
            Self::Unavailable(_) => None,
        };
        if let Some(error) = error {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge(error, self.message()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_follow_rfc_6750() {
        let resp = Denied::unauthenticated("the token has expired").into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="berth", error="invalid_token", error_description="the token has expired""#
        );
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"error":"the token has expired"}"#);

        let resp = Denied::forbidden("role \"x\" missing\n").into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            resp.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="berth", error="insufficient_scope", error_description="role 'x' missing?""#
        );

        let resp = Denied::unavailable("JWKS unreachable").into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
