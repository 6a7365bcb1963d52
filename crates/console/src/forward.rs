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

/// Fields a notebook's answer may not carry while every notebook shares the console's origin
/// (docs/console.md, "One origin for every notebook"): `Service-Worker-Allowed` would let a
/// service worker registered from one notebook's path control every path of the origin (without
/// it a worker's scope stays under the notebook's prefix), and `Clear-Site-Data` would wipe the
/// console's cookies and storage for the whole origin.
const ORIGIN_WIDE: [&str; 2] = ["service-worker-allowed", "clear-site-data"];

/// Whether cookie-path `path` stays under `prefix` (`/notebook/<ns>/<name>/`): equal to the
/// prefix with or without its final slash, or below it.
fn path_under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) || Some(path) == prefix.strip_suffix('/')
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Whether a notebook's `Set-Cookie` may reach the browser: parsed from its bytes (RFC 6265 §5.2,
/// not as UTF-8, so a non-ASCII field cannot hide its name), it must have a name (a nameless
/// cookie `=berth_console_session=x` is sent back by browsers as `berth_console_session=x`), not
/// be one of the console's cookies nor have a value that starts with one's name, and every `Path`
/// attribute must be under the notebook's own `prefix` (a missing Path defaults to the request's
/// directory, which is under it), and it may have no `Domain` attribute (which would set it for
/// the console's parent domain and every sibling site under it; JupyterLab sets none).
pub fn notebook_may_set(set_cookie: &[u8], prefix: &str) -> bool {
    let mut parts = set_cookie.split(|b| *b == b';');
    let pair = parts.next().unwrap_or_default();
    let Some(eq) = pair.iter().position(|b| *b == b'=') else {
        return false; // no name: a nameless cookie
    };
    let (name, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
    if name.is_empty()
        || session::CONSOLE_COOKIES.iter().any(|c| {
            name.eq_ignore_ascii_case(c.as_bytes())
                || value
                    .get(..c.len())
                    .is_some_and(|v| v.eq_ignore_ascii_case(c.as_bytes()))
        })
    {
        return false;
    }
    parts.all(|attribute| {
        let attribute = trim(attribute);
        let (key, val) = match attribute.iter().position(|b| *b == b'=') {
            Some(i) => (trim(&attribute[..i]), trim(&attribute[i + 1..])),
            None => (attribute, &[][..]),
        };
        if key.eq_ignore_ascii_case(b"domain") {
            return false;
        }
        !key.eq_ignore_ascii_case(b"path") || path_under(&String::from_utf8_lossy(val), prefix)
    })
}

/// Makes a notebook's answer (any status, a refused WebSocket handshake included) safe to pass on
/// from the console's origin: no hop-by-hop fields, no origin-wide fields ([`ORIGIN_WIDE`]), and
/// only the `Set-Cookie`s [`notebook_may_set`] allows for the notebook at `prefix`: a notebook's
/// server (which its team controls) must not log its visitors in as someone else (session
/// fixation) or out, nor set cookies for other notebooks' paths.
pub fn filter_answer(headers: &mut HeaderMap, prefix: &str) {
    drop_hop_by_hop(headers);
    for name in ORIGIN_WIDE {
        headers.remove(name);
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| notebook_may_set(v.as_bytes(), prefix))
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

fn gateway_timeout() -> Response<Body> {
    crate::pages::page(
        StatusCode::GATEWAY_TIMEOUT,
        "The notebook does not answer",
        "The notebook did not answer in time. Try again.",
    )
}

fn bad_gateway(what: &str) -> Response<Body> {
    crate::pages::page(
        StatusCode::BAD_GATEWAY,
        "The notebook does not answer",
        &format!("{what}. It may be starting; try again in a few seconds."),
    )
}

/// How long a notebook may take to send its answer's header (its body then streams for as long
/// as it lasts).
pub const RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(120);

/// Forwards an HTTP request to `authority` (`ip:port`) for the notebook at `prefix`
/// (`/notebook/<ns>/<name>/`) and streams the answer back.
pub async fn http(
    client: &UpstreamClient,
    authority: &str,
    prefix: &str,
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
    let answer = tokio::time::timeout(
        RESPONSE_HEADER_TIMEOUT,
        client.request(Request::from_parts(parts, body)),
    )
    .await;
    match answer {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            filter_answer(&mut parts.headers, prefix);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = %authority, error = %e, "the notebook cannot be reached");
            bad_gateway("The notebook cannot be reached")
        }
        Err(_) => {
            tracing::warn!(upstream = %authority, "the notebook did not answer in time");
            gateway_timeout()
        }
    }
}

/// Forwards a WebSocket handshake to `authority` for the notebook at `prefix`; on Jupyter's 101,
/// answers 101 to the caller and copies bytes both ways until either side closes or nothing
/// passes either way for [`WEBSOCKET_IDLE`].
pub async fn websocket(
    authority: &str,
    prefix: &str,
    mut request: Request<Body>,
) -> Response<Body> {
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
    let mut response = match tokio::time::timeout(
        RESPONSE_HEADER_TIMEOUT,
        sender.send_request(upstream),
    )
    .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(upstream = %authority, error = %e, "the notebook broke off the WebSocket handshake");
            return bad_gateway("The notebook broke off the WebSocket handshake");
        }
        Err(_) => return gateway_timeout(),
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Jupyter's own refusal (404 of an unknown kernel, 403 of its Origin check), filtered as
        // any other answer: a refusal must not set the console's cookies either.
        let (mut parts, body) = response.into_parts();
        filter_answer(&mut parts.headers, prefix);
        return Response::from_parts(parts, Body::new(body));
    }
    let jupyter = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        match (caller.await, jupyter.await) {
            (Ok(caller), Ok(jupyter)) => {
                let caller = TokioIo::new(caller);
                let jupyter = TokioIo::new(jupyter);
                if let Err(e) = pipe(caller, jupyter, WEBSOCKET_IDLE).await {
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

/// How long a proxied WebSocket may pass no byte either way before the console closes it (a
/// kernel's heartbeats and JupyterLab's pings keep a live session well under it).
pub const WEBSOCKET_IDLE: Duration = Duration::from_secs(3600);

/// Copies bytes both ways between `a` and `b` until both sides have closed, an error, or `idle`
/// without a byte either way (then `TimedOut`). A side's end of stream shuts the other's write
/// half, and the other direction keeps flowing until it ends too.
pub async fn pipe<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let (mut from_a, mut from_b) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            n = a_read.read(&mut from_a), if a_open => match n? {
                0 => { a_open = false; b_write.shutdown().await?; }
                n => b_write.write_all(&from_a[..n]).await?,
            },
            n = b_read.read(&mut from_b), if b_open => match n? {
                0 => { b_open = false; a_write.shutdown().await?; }
                n => a_write.write_all(&from_b[..n]).await?,
            },
            () = tokio::time::sleep(idle) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no byte either way for the idle timeout",
                ));
            }
        }
    }
    Ok(())
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
        let ws = upstream_headers(&h, true);
        assert_eq!(ws[header::UPGRADE], "websocket");
        assert_eq!(ws[header::CONNECTION], "Upgrade");
        assert!(ws.get(header::AUTHORIZATION).is_none());
    }

    const PREFIX: &str = "/notebook/a/b/";

    fn kept(set_cookies: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut answer = HeaderMap::new();
        for c in set_cookies {
            answer.append(header::SET_COOKIE, HeaderValue::from_bytes(c).unwrap());
        }
        filter_answer(&mut answer, PREFIX);
        answer
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn a_notebook_sets_no_console_cookie_in_any_spelling() {
        let left = kept(&[
            b"_xsrf=2; Path=/notebook/a/b/",
            b"berth_console_session=theirs; Path=/",
            b" berth_console_login=x",
            // Not UTF-8: its name must still be read (it used to be "" and pass).
            b"berth_console_session=\xff\xfe; Path=/notebook/a/b/",
            // Nameless: browsers send `=berth_console_session=x` back as the session cookie.
            b"=berth_console_session=fixed; Path=/notebook/a/b/",
            b"berth_console_session; Path=/notebook/a/b/",
            b"  =x",
            // Another name whose value starts with the console's cookie name.
            b"a=berth_console_session=fixed; Path=/notebook/a/b/",
            b"BERTH_CONSOLE_SESSION=x; Path=/notebook/a/b/",
        ]);
        assert_eq!(left, vec![b"_xsrf=2; Path=/notebook/a/b/".to_vec()]);
    }

    #[test]
    fn a_notebooks_cookies_stay_under_its_own_prefix() {
        let left = kept(&[
            b"_xsrf=1; Path=/notebook/a/b/",
            b"username-x=1; path=/notebook/a/b",
            b"k=1; Path=/notebook/a/b/lab; HttpOnly",
            b"d=1",
            b"wide=1; Path=/",
            b"other=1; Path=/notebook/a/c/",
            b"sibling=1; Path=/notebook/a/bb",
            b"twice=1; Path=/notebook/a/b/; Path=/",
            b"parent=1; Path=/notebook/a/b/; Domain=example.com",
            b"host=1; domain=console.example; Path=/notebook/a/b/",
        ]);
        let left: Vec<String> = left
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert_eq!(
            left,
            vec![
                "_xsrf=1; Path=/notebook/a/b/",
                "username-x=1; path=/notebook/a/b",
                "k=1; Path=/notebook/a/b/lab; HttpOnly",
                "d=1",
            ]
        );
    }

    #[test]
    fn origin_wide_fields_are_dropped_from_answers() {
        let mut answer = HeaderMap::new();
        answer.insert("service-worker-allowed", HeaderValue::from_static("/"));
        answer.insert("clear-site-data", HeaderValue::from_static("\"*\""));
        answer.insert(header::CONNECTION, HeaderValue::from_static("close"));
        answer.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        filter_answer(&mut answer, PREFIX);
        assert!(answer.get("service-worker-allowed").is_none());
        assert!(answer.get("clear-site-data").is_none());
        assert!(answer.get(header::CONNECTION).is_none());
        assert_eq!(answer[header::CONTENT_TYPE], "text/html");
    }

    /// A notebook refusing a WebSocket handshake (not 101) gets the same filter as any answer.
    #[tokio::test]
    async fn a_refused_websocket_handshake_is_filtered_too() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 403 Forbidden\r\nSet-Cookie: berth_console_session=fixed; Path=/\r\n\
                      Set-Cookie: =berth_console_session=y\r\nSet-Cookie: _xsrf=k; Path=/notebook/a/b/\r\n\
                      Clear-Site-Data: \"cookies\"\r\nContent-Length: 0\r\n\r\n",
                )
                .await;
        });
        let request = Request::builder()
            .uri("/notebook/a/b/api/kernels/k/channels")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap();
        let answer = websocket(&addr.to_string(), PREFIX, request).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let cookies: Vec<_> = answer
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .collect();
        assert_eq!(cookies, vec!["_xsrf=k; Path=/notebook/a/b/"]);
        assert!(answer.headers().get("clear-site-data").is_none());
    }

    #[tokio::test]
    async fn an_idle_pipe_closes_and_a_live_one_carries_bytes_both_ways() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let piped = tokio::spawn(pipe(a, b, Duration::from_millis(200)));
        a_peer.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        b_peer.write_all(b"pong").await.unwrap();
        a_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        let ended = tokio::time::timeout(Duration::from_secs(5), piped)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ended.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
    }
}
