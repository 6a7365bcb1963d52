//! Cross-site request forgery (docs/console.md, "CSRF"). Every POST of a browser session must
//! carry the session's CSRF token (256 random bits made at login, kept in the session on the
//! server) in the form field `csrf` or the `X-CSRF-Token` header (htmx), compared in constant
//! time; and no POST may come from another site (`Sec-Fetch-Site` other than `same-origin` or
//! `none`, or an `Origin` that is not the console's). A refused POST is 403 and changes nothing.
//!
//! A caller authenticated by `Authorization: Bearer` carries no ambient credential a third-party
//! page could make a browser send, so it needs no token; the `Origin` rule still applies.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq as _;

/// The form field of the token.
pub const FIELD: &str = "csrf";
/// The header of the token (htmx requests).
pub const HEADER: &str = "x-csrf-token";

/// Why a POST is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// Whether `headers` show a request from the console's own pages (`origin`,
/// `scheme://host[:port]`): `Sec-Fetch-Site` must be `same-origin` (or `none`: typed by the
/// user) when present, and `Origin` must equal `origin` when present.
pub fn same_site(headers: &HeaderMap, origin: &str) -> Result<(), Refused> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !matches!(site, "same-origin" | "none") {
            return Err(Refused("this form was sent from another site"));
        }
    }
    if let Some(from) = headers.get(axum::http::header::ORIGIN)
        && from.as_bytes() != origin.as_bytes()
    {
        return Err(Refused("this form was sent from another origin"));
    }
    Ok(())
}

/// Whether the token sent (`form`'s field, else the header) is `expected`, in constant time.
pub fn token_matches(
    expected: &str,
    form: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let sent = form.or_else(|| headers.get(HEADER).and_then(|v| v.to_str().ok()));
    let Some(sent) = sent else {
        return Err(Refused(
            "this form has no CSRF token; reload the page and try again",
        ));
    };
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(Refused(
            "this form's CSRF token is not your session's; reload the page and try again",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_token_must_be_the_sessions() {
        let h = HeaderMap::new();
        assert!(token_matches("abc", Some("abc"), &h).is_ok());
        assert!(token_matches("abc", Some("abd"), &h).is_err());
        assert!(token_matches("abc", Some("ab"), &h).is_err());
        assert!(token_matches("abc", None, &h).is_err());
        assert!(token_matches("", Some(""), &h).is_err(), "no empty token");
        let mut htmx = HeaderMap::new();
        htmx.insert(HEADER, HeaderValue::from_static("abc"));
        assert!(token_matches("abc", None, &htmx).is_ok());
    }

    #[test]
    fn only_the_consoles_own_pages_may_post() {
        let origin = "https://console.example";
        let mut h = HeaderMap::new();
        assert!(same_site(&h, origin).is_ok(), "old clients send neither");
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert(
            "origin",
            HeaderValue::from_static("https://console.example"),
        );
        assert!(same_site(&h, origin).is_ok());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_site(&h, origin).is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(
            same_site(&h, origin).is_err(),
            "a sibling subdomain is another site's page"
        );
        h.remove("sec-fetch-site");
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(same_site(&h, origin).is_err());
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(same_site(&h, origin).is_err());
    }
}
