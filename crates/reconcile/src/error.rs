//! Errors carry a category. The category decides the requeue, the condition reason and the Event.

use std::time::Duration;

/// What kind of failure a reconcile hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// The user's spec cannot be built as it is; retrying will not help until it changes.
    InvalidSpec,
    /// Something else holds what we need (a namespace we did not create, a write conflict).
    Conflict,
    /// A dependency (the API server, a provider) did not answer; it should come back by itself.
    DependencyUnavailable,
    /// A bug or an unexpected answer.
    Internal,
}

impl Category {
    /// The condition reason and Event reason for this category.
    pub fn reason(self) -> &'static str {
        match self {
            Category::InvalidSpec => "InvalidSpec",
            Category::Conflict => "Conflict",
            Category::DependencyUnavailable => "DependencyUnavailable",
            Category::Internal => "InternalError",
        }
    }

    pub fn as_label(self) -> &'static str {
        match self {
            Category::InvalidSpec => "invalid_spec",
            Category::Conflict => "conflict",
            Category::DependencyUnavailable => "dependency_unavailable",
            Category::Internal => "internal",
        }
    }
}

/// A reconcile failure: its category, a message for the people who read conditions and Events
/// (what failed and what to do, in Berth's words: no credentials, no raw backend bodies, no admin
/// endpoints), and the raw detail, which goes to the operator log only ([`Error::log_text`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub category: Category,
    pub message: String,
    /// What the backend said, for the operator log; never shown in a condition or an Event.
    pub detail: Option<String>,
}

impl Error {
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
            detail: None,
        }
    }

    /// An error whose `detail` (a backend's body, an admin URL) is for the operator log only.
    pub fn with_detail(
        category: Category,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            category,
            message: message.into(),
            detail: Some(detail.into()),
        }
    }

    /// The message and, where there is one, the detail: for the operator log.
    pub fn log_text(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} [{detail}]", self.message),
            None => self.message.clone(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Category::InvalidSpec, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Category::Internal, message)
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        let category = match &e {
            kube::Error::Api(status) if status.code == 409 => Category::Conflict,
            kube::Error::Api(status) if status.code == 422 || status.code == 400 => {
                Category::InvalidSpec
            }
            kube::Error::Api(status) if status.code == 403 => Category::Internal,
            kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
                Category::DependencyUnavailable
            }
            kube::Error::Api(_) => Category::Internal,
            _ => Category::DependencyUnavailable,
        };
        let message = match &e {
            // The API server's own message is meant for users (an admission policy's words, a
            // validation error); the status around it is not.
            kube::Error::Api(status) if !status.message.is_empty() => {
                format!("the Kubernetes API refused a write: {}", status.message)
            }
            kube::Error::Api(status) => format!(
                "the Kubernetes API answered {} {}",
                status.code, status.reason
            ),
            _ => "the Kubernetes API could not be reached; Berth retries".to_owned(),
        };
        Self::with_detail(category, message, e.to_string())
    }
}

/// Capped exponential backoff: 1 s, 2 s, 4 s … up to `cap`, for the `failures`-th failure in a row.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_users_see_leaves_the_raw_answer_to_the_log() {
        let status = kube::core::Status::failure("denied by berth-operator-scope", "Forbidden")
            .with_code(403);
        let e = Error::from(kube::Error::Api(Box::new(status)));
        assert_eq!(
            e.message,
            "the Kubernetes API refused a write: denied by berth-operator-scope"
        );
        assert!(!e.message.contains("ErrorResponse") && !e.message.contains("Status {"));
        assert!(e.log_text().contains("403"));
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, cap), Duration::from_secs(2));
        assert_eq!(backoff(5, cap), Duration::from_secs(16));
        assert_eq!(backoff(40, cap), cap);
    }
}
