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

/// A reconcile failure: its category and a message safe to show a user (no credentials).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub category: Category,
    pub message: String,
}

impl Error {
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
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
        Self::new(category, e.to_string())
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
    fn backoff_doubles_then_caps() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, cap), Duration::from_secs(2));
        assert_eq!(backoff(5, cap), Duration::from_secs(16));
        assert_eq!(backoff(40, cap), cap);
    }
}
