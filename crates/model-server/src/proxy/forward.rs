//! Forwarding one request to the upstream runtime and its answer back, as a gateway
//! (RFC 9110 §7.6): bodies stream through in both directions (never buffered), hop-by-hop
//! headers are dropped, and the caller's credentials never reach the runtime.

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::uri::{Authority, Scheme, Uri};
use axum::http::{Request, Response, StatusCode, Version};
use axum::response::IntoResponse;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::error::ErrorBody;

/// The client of the upstream runtime: HTTP/1.1, pooled connections.
pub type UpstreamClient = Client<HttpConnector, Body>;

/// A client for the upstream: connections kept alive between requests, `TCP_NODELAY`.
pub fn upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector)
}

/// Headers that are never forwarded, beside those the `Connection` header names: the
/// hop-by-hop fields of RFC 9110 §7.6.1 (and `Keep-Alive`, `Proxy-Connection` of older
/// HTTP/1), `Expect`, answered by this proxy already, and the caller's credentials
/// (`Authorization`, `Proxy-Authorization`), which are for this proxy, not for the runtime.
const DROPPED_REQUEST_HEADERS: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::EXPECT,
];

/// Hop-by-hop headers of an answer (RFC 9110 §7.6.1).
const DROPPED_RESPONSE_HEADERS: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Removes `fixed` and every header the `Connection` header lists (RFC 9110 §7.6.1).
pub fn drop_hop_by_hop(headers: &mut HeaderMap, fixed: &[HeaderName]) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(fixed) {
        headers.remove(name);
    }
}

/// The request as sent to `upstream`: same method, path, query and end-to-end headers,
/// without `Authorization` and hop-by-hop headers, `Host` set to the upstream, HTTP/1.1.
pub fn upstream_request(
    request: Request<Body>,
    upstream: &Authority,
) -> Result<Request<Body>, String> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("cannot make the upstream URL: {e}"))?;
    parts.version = Version::HTTP_11;
    drop_hop_by_hop(&mut parts.headers, &DROPPED_REQUEST_HEADERS);
    parts.headers.remove(header::AUTHORIZATION);
    if let Some(host) = parts.headers.remove(header::HOST) {
        parts
            .headers
            .insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    parts.headers.insert(
        header::HOST,
        header::HeaderValue::from_str(upstream.as_str())
            .map_err(|e| format!("the upstream is not a valid Host: {e}"))?,
    );
    Ok(Request::from_parts(parts, body))
}

/// Sends `request` to `upstream` and streams its answer back; 502 (OIP error body) when the
/// upstream cannot be reached or breaks off before its answer's head.
pub async fn forward(
    client: &UpstreamClient,
    upstream: &Authority,
    request: Request<Body>,
) -> Result<Response<Body>, Response<Body>> {
    let request = upstream_request(request, upstream).map_err(|e| bad_gateway(&e))?;
    match client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            drop_hop_by_hop(&mut parts.headers, &DROPPED_RESPONSE_HEADERS);
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(e) => {
            let reason = crate::error::one_line(&e);
            tracing::warn!(upstream = %upstream, error = %reason, "the upstream cannot be reached");
            Err(bad_gateway(&format!(
                "the model's runtime at {upstream} cannot be reached"
            )))
        }
    }
}

/// 502 Bad Gateway with the protocol's error body.
pub fn bad_gateway(message: &str) -> Response<Body> {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(ErrorBody {
            error: message.to_owned(),
        }),
    )
        .into_response()
}

/// The bytes a request's header fields take (name, value and 4 bytes of `: ` and CRLF each).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_request_has_no_credentials_nor_hop_by_hop_headers() {
        let request = Request::builder()
            .method("POST")
            .uri("/v2/models/m/infer?x=1")
            .header(header::HOST, "model.example")
            .header(header::AUTHORIZATION, "Bearer secret")
            .header(header::PROXY_AUTHORIZATION, "Basic secret")
            .header(header::CONNECTION, "keep-alive, X-Hop")
            .header("x-hop", "1")
            .header(header::TRANSFER_ENCODING, "chunked")
            .header(header::TE, "trailers")
            .header(header::UPGRADE, "websocket")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "r1")
            .body(Body::empty())
            .unwrap();
        let upstream: Authority = "127.0.0.1:8000".parse().unwrap();
        let sent = upstream_request(request, &upstream).unwrap();
        assert_eq!(sent.uri(), "http://127.0.0.1:8000/v2/models/m/infer?x=1");
        assert_eq!(sent.method(), "POST");
        let h = sent.headers();
        for gone in [
            "authorization",
            "proxy-authorization",
            "connection",
            "x-hop",
            "transfer-encoding",
            "te",
            "upgrade",
        ] {
            assert!(h.get(gone).is_none(), "{gone} was forwarded");
        }
        assert_eq!(h[header::HOST], "127.0.0.1:8000");
        assert_eq!(h["x-forwarded-host"], "model.example");
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h["x-request-id"], "r1");
    }
}
