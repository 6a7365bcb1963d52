//! The console's vendored browser assets (crates/console/assets/README.md): htmx, compiled into
//! the binary and served under a path that carries its version, so it can be cached for a year
//! (`immutable`): a new version is a new path.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};

/// htmx as published on npm (`htmx.org@4.0.1`, `dist/htmx.min.js`).
pub const HTMX: &[u8] = include_bytes!("../assets/htmx-4.0.1.min.js");
/// Where pages load it from.
pub const HTMX_PATH: &str = "/assets/htmx-4.0.1.min.js";
/// npm's `dist.integrity` of the `htmx.org@4.0.1` tarball the file was taken from.
pub const HTMX_TARBALL_INTEGRITY: &str = "sha512-oF7JgXhDW9UXCy/k1ZYFUQgzu/rm19ORWPSPNL91vPluB2PB9+MV55tyQdH/w7o2EAbTYUG5SDW1R60mdkdqGg==";
/// The SHA-512 of `dist/htmx.min.js` in that tarball (Subresource Integrity form).
pub const HTMX_SHA512: &str = "sha512-xspa3t9MrzLkwdfo67LbsusW+t3z2LG1cjkA8seYXH3kWokLTlZGrNPNGZJnHF9apv32h6Q4R8XWBCW4EiNptA==";

/// `GET /assets/htmx-4.0.1.min.js`: cached for a year, never sniffed.
pub async fn htmx() -> Response<Body> {
    let mut response = Response::new(Body::from(HTMX));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sha2::{Digest, Sha512};

    #[test]
    fn the_vendored_htmx_is_the_published_one() {
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(HTMX));
        assert_eq!(format!("sha512-{digest}"), HTMX_SHA512);
        assert!(HTMX_TARBALL_INTEGRITY.starts_with("sha512-"));
        assert!(HTMX_PATH.contains("4.0.1"));
    }
}
