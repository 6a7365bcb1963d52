//! Forwarding to a notebook's JupyterLab, as a gateway (RFC 9110 §7.6): HTTP bodies stream both
//! ways (never buffered), WebSocket upgrades become a byte pipe between the browser's connection
//! and a fresh connection to Jupyter (hyper's upgrades), hop-by-hop headers are dropped, and the
//! caller's credentials for the console (`Authorization`, `Proxy-Authorization`, the console's
//! cookies) never reach Jupyter. `Host` is kept as the browser sent it: Jupyter compares a
//! WebSocket's `Origin` with it.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::session;

/// The client of notebooks: HTTP/1.1, pooled.
pub type UpstreamClient = Client<HttpConnector, Body>;

pub fn upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Hop-by-hop fields (RFC 9110 §7.6.1, and Keep-Alive/Proxy-Connection of HTTP/1.0), and the
/// console's credentials.
const DROPPED: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(&DROPPED) {
        headers.remove(name);
    }
}

/// The headers Jupyter gets: the caller's, without hop-by-hop fields, credentials for the console
/// and the console's cookies. `websocket`: keep the upgrade's own fields.
pub fn upstream_headers(from: &HeaderMap, websocket: bool) -> HeaderMap {
    let mut headers = from.clone();
    let upgrade = headers.get(header::UPGRADE).cloned();
    drop_hop_by_hop(&mut headers);
    headers.remove(header::COOKIE);
    if let Some(kept) = session::without_console_cookies(from)
        && let Ok(value) = HeaderValue::from_str(&kept)
    {
        headers.insert(header::COOKIE, value);
    }
    if websocket && let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    headers
}

/// Removes every `Set-Cookie` of a notebook's answer that would set one of the console's own
/// cookies: a notebook's server (which its team controls) must not log its visitors in as
/// someone else (session fixation) or out.
pub fn drop_console_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let name = v
                .to_str()
                .ok()
                .and_then(|t| t.split('=').next())
                .map(str::trim)
                .unwrap_or_default();
            name != session::SESSION_COOKIE && name != session::LOGIN_COOKIE
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// Whether the request asks for a WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn bad_gateway(what: &str) -> Response<Body> {
    crate::pages::page(
        StatusCode::BAD_GATEWAY,
        "The notebook does not answer",
        &format!("{what}. It may be starting; try again in a few seconds."),
    )
}

/// Forwards an HTTP request to `authority` (`host:port`) and streams the answer back.
pub async fn http(
    client: &UpstreamClient,
    authority: &str,
    request: Request<Body>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
    else {
        return bad_gateway("The notebook's address is not valid");
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = upstream_headers(&parts.headers, false);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            drop_hop_by_hop(&mut parts.headers);
            drop_console_cookies(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => {
            tracing::warn!(upstream = %authority, error = %e, "the notebook cannot be reached");
            bad_gateway("The notebook cannot be reached")
        }
    }
}

/// Forwards a WebSocket handshake to `authority`; on Jupyter's 101, answers 101 to the caller
/// and copies bytes both ways until either side closes.
pub async fn websocket(authority: &str, mut request: Request<Body>) -> Response<Body> {
    let caller = hyper::upgrade::on(&mut request);
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let stream = match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(upstream = %authority, error = %e, "the notebook cannot be reached");
            return bad_gateway("The notebook cannot be reached");
        }
        Err(_) => return bad_gateway("The notebook cannot be reached in time"),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(upstream = %authority, error = %e, "no HTTP with the notebook");
                return bad_gateway("The notebook cannot be reached");
            }
        };
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "a WebSocket's upstream connection ended");
        }
    });
    let mut upstream = Request::builder()
        .method(request.method())
        .uri(path)
        .version(Version::HTTP_11)
        .body(Body::empty());
    if let Ok(req) = upstream.as_mut() {
        *req.headers_mut() = upstream_headers(request.headers(), true);
        if !req.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(authority)
        {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    let Ok(upstream) = upstream else {
        return bad_gateway("The WebSocket request cannot be made");
    };
    let mut response = match sender.send_request(upstream).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(upstream = %authority, error = %e, "the notebook broke off the WebSocket handshake");
            return bad_gateway("The notebook broke off the WebSocket handshake");
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Jupyter's own refusal (404 of an unknown kernel, 403 of its Origin check), as is.
        let (parts, body) = response.into_parts();
        return Response::from_parts(parts, Body::new(body));
    }
    let jupyter = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        match (caller.await, jupyter.await) {
            (Ok(caller), Ok(jupyter)) => {
                let mut caller = TokioIo::new(caller);
                let mut jupyter = TokioIo::new(jupyter);
                if let Err(e) = tokio::io::copy_bidirectional(&mut caller, &mut jupyter).await {
                    tracing::debug!(error = %e, "a WebSocket ended");
                }
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "a WebSocket upgrade failed"),
        }
    });
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for name in [
        header::UPGRADE,
        header::CONNECTION,
        header::SEC_WEBSOCKET_ACCEPT,
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        if let Some(value) = response.headers().get(&name) {
            answer = answer.header(name, value);
        }
    }
    answer
        .body(Body::empty())
        .unwrap_or_else(|_| bad_gateway("The WebSocket answer cannot be made"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jupyter_never_sees_the_consoles_credentials() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("_xsrf=1; berth_console_session=s"),
        );
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, X-Hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::HOST, HeaderValue::from_static("console.example"));
        let sent = upstream_headers(&h, false);
        for gone in [
            "authorization",
            "proxy-authorization",
            "x-hop",
            "upgrade",
            "connection",
        ] {
            assert!(sent.get(gone).is_none(), "{gone} was forwarded");
        }
        assert_eq!(sent[header::COOKIE], "_xsrf=1");
        assert_eq!(sent[header::HOST], "console.example");
        let mut answer = HeaderMap::new();
        for c in [
            "_xsrf=2; Path=/notebook/a/b/",
            "berth_console_session=theirs; Path=/",
            " berth_console_login=x",
        ] {
            answer.append(header::SET_COOKIE, HeaderValue::from_str(c).unwrap());
        }
        drop_console_cookies(&mut answer);
        let left: Vec<_> = answer.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(left, vec!["_xsrf=2; Path=/notebook/a/b/"]);
        let ws = upstream_headers(&h, true);
        assert_eq!(ws[header::UPGRADE], "websocket");
        assert_eq!(ws[header::CONNECTION], "Upgrade");
        assert!(ws.get(header::AUTHORIZATION).is_none());
    }
}
