//! Parsing of the `SOURCE` argument.

use crate::error::FetchError;
use url::Url;

/// Where the artifact comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `s3://bucket/key`: one object.
    S3Object { bucket: String, key: String },
    /// `s3://bucket/prefix/` or `s3://bucket`: every object under the prefix.
    S3Prefix { bucket: String, prefix: String },
    /// `https://…` (or `http://…`): one file.
    Http(Url),
}

impl Source {
    pub fn parse(s: &str) -> Result<Source, FetchError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, key) = match rest.split_once('/') {
                Some((b, k)) => (b, k),
                None => (rest, ""),
            };
            if bucket.is_empty() {
                return Err(FetchError::BadArgs(format!(
                    "{s:?} has no bucket name; expected s3://BUCKET/KEY or s3://BUCKET/PREFIX/"
                )));
            }
            return Ok(if key.is_empty() || key.ends_with('/') {
                Source::S3Prefix {
                    bucket: bucket.to_string(),
                    prefix: key.to_string(),
                }
            } else {
                Source::S3Object {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }
            });
        }
        let url = Url::parse(s).map_err(|e| {
            FetchError::BadArgs(format!(
                "cannot understand source {:?} ({e}); expected s3://BUCKET/KEY, s3://BUCKET/PREFIX/ or https://HOST/PATH",
                redact_str(s)
            ))
        })?;
        match url.scheme() {
            "https" | "http" => Ok(Source::Http(url)),
            other => Err(FetchError::BadArgs(format!(
                "unsupported source scheme {other:?}; use s3:// or https://"
            ))),
        }
    }

    /// The default file name for a single-object source.
    pub fn file_name(&self) -> Option<String> {
        let last = match self {
            Source::S3Object { key, .. } => key.rsplit('/').next().map(str::to_string),
            Source::S3Prefix { .. } => None,
            Source::Http(url) => url
                .path_segments()
                .and_then(|mut segs| segs.next_back())
                .map(percent_decode),
        }?;
        if last.is_empty() || last == "." || last == ".." || last.contains('/') {
            None
        } else {
            Some(last)
        }
    }

    /// A printable form of the source without credentials or query strings.
    pub fn display(&self) -> String {
        match self {
            Source::S3Object { bucket, key } => format!("s3://{bucket}/{key}"),
            Source::S3Prefix { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Source::Http(url) => redact(url),
        }
    }
}

/// A URL without user info, query or fragment (presigned URLs carry signatures there).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let had_query = u.query().is_some();
    u.set_query(None);
    u.set_fragment(None);
    let mut s = u.to_string();
    if had_query {
        s.push_str("?…");
    }
    s
}

fn redact_str(s: &str) -> String {
    match Url::parse(s) {
        Ok(u) => redact(&u),
        Err(_) => s.split(['?', '@']).next().unwrap_or_default().to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            Source::parse("s3://b/models/m.bin").unwrap(),
            Source::S3Object {
                bucket: "b".into(),
                key: "models/m.bin".into()
            }
        );
        assert_eq!(
            Source::parse("s3://b/models/").unwrap(),
            Source::S3Prefix {
                bucket: "b".into(),
                prefix: "models/".into()
            }
        );
        assert_eq!(
            Source::parse("s3://b").unwrap(),
            Source::S3Prefix {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert!(matches!(
            Source::parse("s3:///k"),
            Err(FetchError::BadArgs(_))
        ));
        assert!(matches!(
            Source::parse("ftp://x/y"),
            Err(FetchError::BadArgs(_))
        ));
        assert!(matches!(
            Source::parse("nonsense"),
            Err(FetchError::BadArgs(_))
        ));
        let s =
            Source::parse("https://u:p@h.example/a/model%20v1.tar.gz?X-Amz-Signature=s").unwrap();
        assert_eq!(s.file_name().as_deref(), Some("model v1.tar.gz"));
        let d = s.display();
        assert!(!d.contains("u:p") && !d.contains("Signature"), "{d}");
        assert_eq!(
            Source::parse("https://h.example/").unwrap().file_name(),
            None
        );
    }
}
