//! `berth-model-server proxy`: the real binary, in front of an upstream runtime in-process
//! on 127.0.0.1, with `--auth oidc` against a real HTTP issuer in-process (see `issuer/`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issuer;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::routing::{any, get, post};
use futures::StreamExt;
use issuer::{Issuer, SigningKey};
use serde_json::{Value, json};
use tokio::sync::Notify;

const AUDIENCE: &str = "team-models";
const MIB: usize = 1 << 20;

/// The proxy binary, killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn start(upstream: SocketAddr, auth: &[&str]) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth-model-server"))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(["--upstream", &upstream.to_string()])
            .args(auth)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth-model-server proxy");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("proxy: {line}");
                for (metrics, marker) in [
                    (false, "listening on http://"),
                    (true, "serving metrics on http://"),
                ] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        let addr: SocketAddr =
                            rest.split(['/', ' ']).next().unwrap().parse().unwrap();
                        let _ = tx.send((metrics, addr));
                    }
                }
            }
        });
        let (mut addr, mut metrics_addr) = (None, None);
        while addr.is_none() || metrics_addr.is_none() {
            let (metrics, a) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the proxy did not say where it listens");
            if metrics {
                metrics_addr = Some(a);
            } else {
                addr = Some(a);
            }
        }
        Proxy {
            child,
            addr: addr.unwrap(),
            metrics_addr: metrics_addr.unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// What the upstream saw, and the hand-offs of the streaming tests.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    headers: Mutex<Option<HeaderMap>>,
    /// The upstream holds the first chunk of a request body.
    first_chunk_in: Notify,
    /// The client holds the first chunk of the answer.
    first_chunk_out: Notify,
}

async fn echo_headers(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> axum::Json<Value> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.headers.lock().unwrap() = Some(headers);
    axum::Json(json!({"ok": true}))
}

/// Counts a request body's bytes as they come, saying when the first chunk is in.
async fn count(State(seen): State<Arc<Seen>>, request: Request) -> axum::Json<Value> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let mut body = request.into_body().into_data_stream();
    let mut bytes = 0;
    while let Some(chunk) = body.next().await {
        if bytes == 0 {
            seen.first_chunk_in.notify_one();
        }
        bytes += chunk.unwrap().len();
    }
    axum::Json(json!({"bytes": bytes}))
}

/// Answers 1 MiB, then waits for the client to hold it, then 31 MiB more.
async fn stream(State(seen): State<Arc<Seen>>) -> Body {
    let chunks = futures::stream::unfold(0usize, move |sent| {
        let seen = seen.clone();
        async move {
            match sent {
                0 => {}
                1 => seen.first_chunk_out.notified().await,
                32 => return None,
                _ => {}
            }
            Some((
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; MIB])),
                sent + 1,
            ))
        }
    });
    Body::from_stream(chunks)
}

async fn upstream() -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/headers", any(echo_headers))
        .route("/count", post(count))
        .route("/stream", get(stream))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

async fn oidc_proxy() -> (Proxy, Arc<Seen>, Issuer, SigningKey) {
    let key = SigningKey::es256("k1");
    let issuer = Issuer::start(&[&key]).await;
    let (up, seen) = upstream().await;
    let proxy = Proxy::start(
        up,
        &[
            "--auth",
            "oidc",
            "--oidc-issuer",
            &issuer.url,
            "--oidc-audience",
            AUDIENCE,
        ],
    );
    (proxy, seen, issuer, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_checked_requests_reach_the_upstream_and_never_with_the_token() {
    let (proxy, seen, issuer, key) = oidc_proxy().await;
    let client = reqwest::Client::new();
    let token = key.sign(&issuer.claims(AUDIENCE));

    // No token, a bad one, another audience's: answered by the proxy, never forwarded.
    let other = key.sign(&issuer.claims("other-project"));
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Bearer {other}")),
    ] {
        let mut request = client.get(proxy.url("/headers"));
        if let Some(auth) = &auth {
            request = request.header("authorization", auth);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{auth:?}");
        let challenge = answer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="berth", error="invalid_token""#),
            "{challenge}"
        );
        let body: Value = answer.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);

    // A valid token: forwarded without Authorization nor hop-by-hop headers.
    let answer = client
        .get(proxy.url("/headers?q=1"))
        .bearer_auth(&token)
        .header("x-request-id", "r-1")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret-to-this-hop")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    let headers = seen.headers.lock().unwrap().clone().unwrap();
    assert!(
        headers.get("authorization").is_none(),
        "the upstream saw the caller's token"
    );
    assert!(headers.get("x-hop").is_none());
    assert_eq!(headers["x-request-id"], "r-1");
    assert_eq!(headers["host"], seen_upstream_host(&headers));

    // Health and metrics on the metrics address need no token.
    let live = client
        .get(format!("http://{}/v2/health/live", proxy.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = client
        .get(format!("http://{}/v2/health/ready", proxy.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(format!("http://{}/metrics", proxy.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"berth_model_auth_requests_total{result="allowed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"berth_model_auth_requests_total{result="unauthenticated"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"berth_model_proxy_requests_total{code="401"} 3"#),
        "{metrics}"
    );
    // On the public port, health is the upstream's and needs a token like any path.
    let public = client
        .get(proxy.url("/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 401);
}

fn seen_upstream_host(headers: &HeaderMap) -> String {
    // The proxy sets Host to the upstream's HOST:PORT and keeps the caller's as X-Forwarded-Host.
    assert!(
        headers["x-forwarded-host"]
            .to_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    headers["host"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_both_ways() {
    let (proxy, seen, issuer, key) = oidc_proxy().await;
    let client = reqwest::Client::new();
    let token = key.sign(&issuer.claims(AUDIENCE));

    // Request: the upstream must hold the first MiB before the client sends the rest; a
    // proxy that buffered the body would never let it, and this would time out.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let sending = tokio::spawn({
        let client = client.clone();
        let url = proxy.url("/count");
        let token = token.clone();
        async move { client.post(url).bearer_auth(token).body(body).send().await }
    });
    tx.send(Ok(Bytes::from(vec![b'a'; MIB]))).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), seen.first_chunk_in.notified())
        .await
        .expect("the upstream did not get the first MiB while the request was still being sent");
    for _ in 1..64 {
        tx.send(Ok(Bytes::from(vec![b'a'; MIB]))).await.unwrap();
    }
    drop(tx);
    let answer = sending.await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["bytes"], 64 * MIB);

    // Answer: the client gets the first MiB before the upstream sends the rest.
    let mut answer = client
        .get(proxy.url("/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut got = 0;
    while got < MIB {
        let chunk = tokio::time::timeout(Duration::from_secs(20), answer.chunk())
            .await
            .expect("the first MiB of the answer did not come through on its own")
            .unwrap()
            .unwrap();
        got += chunk.len();
    }
    seen.first_chunk_out.notify_one();
    while let Some(chunk) = answer.chunk().await.unwrap() {
        got += chunk.len();
    }
    assert_eq!(got, 32 * MIB);
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_upstream_is_502_and_not_ready() {
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(port, &["--auth", "none"]);
    let client = reqwest::Client::new();
    let answer = client
        .post(proxy.url("/v2/models/m/infer"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["error"],
        format!("the model's runtime at {port} cannot be reached")
    );
    let ready = client
        .get(format!("http://{}/v2/health/ready", proxy.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = client
        .get(format!("http://{}/v2/health/live", proxy.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    // Oversized header sections are refused before anything else.
    let answer = client
        .get(proxy.url("/x"))
        .header("x-big", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 431);
}
