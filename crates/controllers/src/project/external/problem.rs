//! Why an outside part did not sync, as its condition says it: what failed and what to do, in
//! Berth's words. A provider's own answer (a response body, the URL of its admin API, the chain of
//! a connection error) is the problem's `detail`, which goes to the operator log only: the
//! conditions and Events of a Project are read by its members, and a provider's admin endpoint and
//! raw answers are the platform's business.

use berth_providers::{Error as ProviderError, ErrorKind};

/// Why a part cannot be synced: its condition's reason and message, and what the provider said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    /// For the condition and Events: Berth's words, no URL of an endpoint, no raw answer.
    pub message: String,
    /// The provider's own message, for the operator log only.
    pub detail: Option<String>,
}

impl Problem {
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            detail: None,
        }
    }

    /// The message and, where there is one, the provider's own words: for the operator log.
    pub fn log_text(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} [provider said: {detail}]", self.message),
            None => self.message.clone(),
        }
    }

    /// A provider error as the condition of `part` ("Storage", "Identity", "Registry") says it:
    /// what was being done, what kind of failure it was and what to fix, where `field` is the
    /// part's field in PlatformSettings. The provider's message is kept in `detail`.
    pub fn from_error(part: &str, field: &str, e: &ProviderError) -> Self {
        let operation = operation(&e.message);
        let (what, hint) = match e.kind {
            ErrorKind::Unreachable => (
                format!("{operation}: no answer from the {field} provider"),
                format!(
                    "check {field}'s URL in PlatformSettings and that the service is up; Berth retries"
                ),
            ),
            ErrorKind::Unauthorized => (
                format!("{operation}: the {field} provider rejected the admin credentials"),
                format!("update the Secret named by {field}.adminSecretRef"),
            ),
            ErrorKind::Forbidden => (
                format!("{operation}: the {field} provider refused it to the admin identity"),
                format!(
                    "grant the admin identity in {field}.adminSecretRef the rights Berth needs (docs/providers.md)"
                ),
            ),
            ErrorKind::Backend => (
                format!("{operation}: the {field} provider answered with an error"),
                "Berth retries; the operator log has the provider's answer".to_owned(),
            ),
            // These are Berth's own findings (a missing realm, a name the provider refuses,
            // something of someone else's under the name): say them, without endpoints or a
            // provider's answer.
            ErrorKind::NotConfigured => (
                in_berths_words(&e.message),
                format!("fix {field} in PlatformSettings"),
            ),
            ErrorKind::Rejected => (
                in_berths_words(&e.message),
                "the provider refused the request as invalid; the operator log has its answer"
                    .to_owned(),
            ),
            ErrorKind::Conflict => (
                in_berths_words(&e.message),
                "nothing of it was used or changed".to_owned(),
            ),
        };
        Self {
            reason: e.kind.reason(part),
            message: format!("{what}: {hint}"),
            detail: Some(e.message.clone()),
        }
    }
}

/// What a provider was doing: its message up to the first `": "`, in Berth's words.
fn operation(message: &str) -> String {
    let head = message.split(": ").next().unwrap_or(message);
    in_berths_words(head)
}

/// `text` without what only the operator log may hold: every URL (a provider's admin endpoint, a
/// request's address in a connection error) becomes "its configured URL", and the server's answer
/// after `HTTP <status>` is cut off.
pub fn in_berths_words(text: &str) -> String {
    let text = match text.find(": HTTP ") {
        // "<what>: HTTP 400 Bad Request: <the server's body>" keeps the status only.
        Some(at) => {
            let rest = &text[at + 2..];
            let status_end = rest.find(": ").unwrap_or(rest.len());
            format!("{}: {}", &text[..at], &rest[..status_end])
        }
        None => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        out.push_str(&rest[..at]);
        let url = &rest[at..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .unwrap_or(url.len());
        out.push_str("its configured URL");
        rest = &url[end..];
    }
    out.push_str(rest);
    out.replace("\"its configured URL\"", "its configured URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_endpoint_and_no_answer_reaches_the_condition() {
        let cases = [
            ErrorKind::Unreachable,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::Backend,
            ErrorKind::Rejected,
            ErrorKind::NotConfigured,
            ErrorKind::Conflict,
        ];
        for kind in cases {
            let e = ProviderError::new(
                kind,
                "Garage admin API CreateBucket: HTTP 400 Bad Request: {\"code\":\"InvalidRequest\",\"message\":\"internal path /srv/garage/meta\"} from http://10.9.0.3:3903/v2/CreateBucket",
            );
            let p = Problem::from_error("Storage", "storage", &e);
            assert!(!p.message.contains("http"), "{kind:?}: {}", p.message);
            assert!(!p.message.contains("10.9.0.3"), "{kind:?}: {}", p.message);
            assert!(
                !p.message.contains("/srv/garage"),
                "{kind:?}: {}",
                p.message
            );
            assert!(
                p.message.starts_with("Garage admin API CreateBucket"),
                "{}",
                p.message
            );
            assert!(p.log_text().contains("http://10.9.0.3:3903"));
            assert!(p.log_text().contains("/srv/garage/meta"));
        }
    }

    #[test]
    fn berths_own_findings_are_kept_without_urls() {
        let e = ProviderError::new(
            ErrorKind::NotConfigured,
            "reading realm x of Keycloak at https://id.internal:8443/: Keycloak at \"https://id.internal:8443\" has no realm \"no-such-realm\": create it, or set the realm Berth uses",
        );
        let p = Problem::from_error("Identity", "identity", &e);
        assert_eq!(p.reason, "IdentityNotConfigured");
        assert!(
            p.message.contains("no realm \"no-such-realm\""),
            "{}",
            p.message
        );
        assert!(!p.message.contains("id.internal"), "{}", p.message);
        assert!(p.message.ends_with("fix identity in PlatformSettings"));
        let unreachable = Problem::from_error(
            "Storage",
            "storage",
            &ProviderError::new(
                ErrorKind::Unreachable,
                "Garage admin API ListKeys: no answer from http://127.0.0.1:1: error sending request for url (http://127.0.0.1:1/v2/ListKeys): connection refused",
            ),
        );
        assert_eq!(
            unreachable.message,
            "Garage admin API ListKeys: no answer from the storage provider: check storage's URL in PlatformSettings and that the service is up; Berth retries"
        );
    }
}
