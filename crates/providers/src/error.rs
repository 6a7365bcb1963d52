//! Why a provider call failed, sorted so that a condition can say what to fix.

/// What kind of failure, and so what the platform team should fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The endpoint did not answer: refused, timed out, DNS. Retried with backoff.
    Unreachable,
    /// The admin credentials were rejected (401, or a signature the server does not accept).
    Unauthorized,
    /// The admin credentials are valid but lack a right this call needs (403).
    Forbidden,
    /// A configured thing is missing: an unknown realm, a registry that has no such API.
    NotConfigured,
    /// The server refused the request as invalid (400, 422): usually a name or setting it does not
    /// accept.
    Rejected,
    /// Anything else the server answered (5xx, an unexpected body). Retried with backoff.
    Backend,
    /// Something exists under the name that is not the caller's: it lacks the caller's ownership
    /// record or carries another one. Nothing was changed; a platform admin decides.
    Conflict,
}

impl ErrorKind {
    /// The condition reason for this kind of failure of `provider` ("Storage", "Identity",
    /// "Registry"): e.g. `StorageUnreachable`.
    pub fn reason(self, provider: &str) -> String {
        let suffix = match self {
            ErrorKind::Unreachable => "Unreachable",
            ErrorKind::Unauthorized => "AdminCredentialsRejected",
            ErrorKind::Forbidden => "AdminForbidden",
            ErrorKind::NotConfigured => "NotConfigured",
            ErrorKind::Rejected => "Rejected",
            ErrorKind::Backend => "BackendError",
            ErrorKind::Conflict => "Conflict",
        };
        format!("{provider}{suffix}")
    }
}

/// A provider call that failed. The message names the operation and what the server said; it
/// never contains a credential.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Sorts a transport error: no answer at all is [`ErrorKind::Unreachable`].
    pub fn transport(what: &str, e: &reqwest::Error) -> Self {
        // reqwest's Display includes the URL, which never carries credentials here.
        let kind = if e.is_connect() || e.is_timeout() || e.is_request() {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Backend
        };
        Self::new(kind, format!("{what}: {e}"))
    }

    /// Sorts an HTTP answer that was not a success. `body` is the server's answer, cut short.
    pub fn status(what: &str, status: reqwest::StatusCode, body: &str) -> Self {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            400 | 409 | 422 => ErrorKind::Rejected,
            _ => ErrorKind::Backend,
        };
        let body: String = body.chars().take(300).collect();
        Self::new(kind, format!("{what}: HTTP {status}: {}", body.trim()))
    }

    /// A [`ErrorKind::Conflict`]: `what` (e.g. `bucket team-a`) exists and `whose` says what its
    /// ownership record shows instead of the caller's.
    pub fn conflict(what: &str, whose: &str) -> Self {
        Self::new(
            ErrorKind::Conflict,
            format!("{what} already exists and {whose}"),
        )
    }

    /// Whether retrying later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Unreachable | ErrorKind::Backend)
    }
}
