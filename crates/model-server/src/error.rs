//! Errors a request can end in, and how each maps to an HTTP status and the
//! protocol's `{"error": "..."}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to a client. The message is the `error` string of the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or does not fit the model: 400.
    #[error("{0}")]
    BadRequest(String),
    /// No such model, version or path: 404.
    #[error("{0}")]
    NotFound(String),
    /// The request body is larger than the server accepts: 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Every inference slot is busy and the queue of waiting requests is full: 429. The client
    /// should retry later; the server read none of the body.
    #[error("{0}")]
    TooManyRequests(String),
    /// The request body did not arrive in time: 408.
    #[error("{0}")]
    RequestTimeout(String),
    /// The model is not loaded yet: 503.
    #[error("{0}")]
    NotReady(String),
    /// The server failed for a reason that is not the client's: 500.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::BadRequest(m)
            | Self::NotFound(m)
            | Self::PayloadTooLarge(m)
            | Self::TooManyRequests(m)
            | Self::RequestTimeout(m)
            | Self::NotReady(m)
            | Self::Internal(m) => m,
        }
    }
}

/// The protocol's error object: `{"error": $string}`.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(
                status = status.as_u16(),
                error = self.message(),
                "request failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                error = self.message(),
                "request rejected"
            );
        }
        let body = ErrorBody {
            error: self.message().to_owned(),
        };
        (status, Json(body)).into_response()
    }
}

/// Folds an error chain into one line: `outer: inner: root`, with any line
/// breaks inside a message turned into spaces.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    flatten_whitespace(&parts.join(": "))
}

/// Turns every run of whitespace (including line breaks) into one space.
pub fn flatten_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_the_protocol() {
        assert_eq!(ApiError::bad_request("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::not_found("x").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ApiError::NotReady("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::PayloadTooLarge("x".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::TooManyRequests("x".into()).status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            ApiError::internal("x").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn error_response_has_the_protocol_body() {
        let resp = ApiError::bad_request("unknown input 'q'").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let ctype = resp
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(ctype, "application/json");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body, serde_json::json!({"error": "unknown input 'q'"}));
    }

    #[test]
    fn one_line_joins_the_chain_and_drops_line_breaks() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer\nproblem")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("root   cause"));
        assert_eq!(one_line(&e), "outer problem: root cause");
    }
}
