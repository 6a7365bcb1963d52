//! HTTPS (and HTTP) downloads with reqwest.

use crate::error::{FetchError, chain};
use crate::remote::{ByteStream, Opened};
use crate::source::redact;
use futures::TryStreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use std::path::Path;
use std::time::Duration;
use url::Url;

/// A redirect from https to http, refused by the client's redirect policy.
#[derive(Debug, thiserror::Error)]
#[error("{from} redirected to {to}, which is not https; refused")]
struct Downgrade {
    from: String,
    to: String,
}

/// Follows at most 10 redirects, never from https to http: once a download started on
/// https, the rest of it (and any credentials in the URL) must not travel in the clear.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let was_secure = attempt.previous().iter().any(|u| u.scheme() == "https");
        if was_secure && attempt.url().scheme() != "https" {
            let from = attempt.previous().last().map(redact).unwrap_or_default();
            let to = redact(attempt.url());
            attempt.error(Downgrade { from, to })
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

pub(crate) fn client(
    ca_file: Option<&Path>,
    read_timeout: Duration,
) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("berth-model-fetch/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect_policy())
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(read_timeout);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            FetchError::BadArgs(format!("cannot read CA file {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            FetchError::BadArgs(format!(
                "CA file {} is not PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(FetchError::BadArgs(format!(
                "CA file {} holds no certificate",
                path.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| FetchError::Internal(format!("cannot build the HTTP client: {}", chain(&e))))
}

pub(crate) struct HttpObject {
    pub(crate) client: reqwest::Client,
    pub(crate) url: Url,
}

impl HttpObject {
    pub(crate) fn display(&self) -> String {
        redact(&self.url)
    }

    pub(crate) async fn open(
        &self,
        offset: u64,
        validator: Option<&str>,
    ) -> Result<Opened, FetchError> {
        let mut req = self.client.get(self.url.clone());
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
            if let Some(v) = validator {
                req = req.header(IF_RANGE, v);
            }
        }
        let resp = req.send().await.map_err(|e| self.net_err(&e))?;
        let status = resp.status();
        let what = self.display();
        match status {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let range = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((start, total)) if start == offset => Ok(Opened::Resumed {
                        body: self.body(resp),
                        total,
                    }),
                    // A range we did not ask for: start over without a range.
                    _ => {
                        drop(resp);
                        Box::pin(self.open(0, None)).await
                    }
                }
            }
            s if s.is_success() && s != StatusCode::PARTIAL_CONTENT => {
                let validator = validator_of(resp.headers());
                let total = resp.content_length();
                Ok(Opened::Full {
                    body: self.body(resp),
                    total,
                    validator,
                })
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => Ok(Opened::RangeNotSatisfiable),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(FetchError::NotFound(format!(
                "{what} does not exist (HTTP {})",
                status.as_u16()
            ))),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(FetchError::AccessDenied(format!(
                    "the server refused access to {what} (HTTP {}); check the URL's credentials or that it has not expired",
                    status.as_u16()
                )))
            }
            _ => Err(FetchError::Network(format!(
                "the server answered HTTP {} for {what}",
                status.as_u16()
            ))),
        }
    }

    fn body(&self, resp: reqwest::Response) -> ByteStream {
        let what = self.display();
        Box::pin(resp.bytes_stream().map_err(move |e| {
            FetchError::Network(format!(
                "the transfer of {what} broke off: {}",
                chain(&e.without_url())
            ))
        }))
    }

    fn net_err(&self, e: &reqwest::Error) -> FetchError {
        let what = self.display();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(d) = err.downcast_ref::<Downgrade>() {
                return FetchError::InsecureRedirect(format!("downloading {what}: {d}"));
            }
            cur = err.source();
        }
        FetchError::Network(format!("cannot download {what}: {}", reqwest_detail(e)))
    }
}

fn reqwest_detail(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect to the server"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        cur = s.source();
    }
    msg.replace('\n', " ")
}

fn validator_of(h: &reqwest::header::HeaderMap) -> Option<String> {
    if let Some(etag) = h.get(ETAG).and_then(|v| v.to_str().ok()) {
        // If-Range only works with strong validators.
        if !etag.starts_with("W/") {
            return Some(etag.to_string());
        }
    }
    h.get(LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
