//! Test support: a tiny real HTTP/1.1 (optionally TLS) server on loopback with
//! scriptable misbehaviour, and helpers to run the real binary.
//!
//! Also used by `examples/serve.rs` (the benchmark's HTTPS server).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Length of the repeating block of the pseudo-random pattern body (a prime).
pub const PATTERN_PERIOD: usize = 1_048_573;

/// The repeating block of pattern bodies.
pub fn pattern_block() -> Arc<Vec<u8>> {
    let mut v = Vec::with_capacity(PATTERN_PERIOD);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..PATTERN_PERIOD {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push((x >> 24) as u8);
    }
    Arc::new(v)
}

#[derive(Clone)]
pub enum Body {
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes of the pattern (never held in memory whole).
    Pattern(u64),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Pattern(n) => *n,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Behavior {
    Normal,
    /// Answer with this status and a short text body.
    Status(u16),
    /// For the first `times` requests, send `after` bytes of the body and then drop the connection.
    DropAfter {
        after: u64,
        times: usize,
    },
    /// Send the headers and a little of the body, then nothing for a long time.
    Stall,
    /// Never honour Range (always 200 with the full body).
    IgnoreRange,
    /// Answer 302 Found with this Location.
    Redirect(&'static str),
}

pub struct Route {
    pub body: Body,
    pub behavior: Behavior,
    pub etag: String,
    hits: AtomicUsize,
}

impl Route {
    pub fn new(body: Body, behavior: Behavior) -> Route {
        Route {
            body,
            behavior,
            etag: "\"v1\"".into(),
            hits: AtomicUsize::new(0),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub log: Arc<Mutex<Vec<Logged>>>,
    /// PEM of the CA that signed the server certificate (TLS servers only).
    pub ca_pem: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn requests(&self, path: &str) -> Vec<Logged> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.path == path)
            .cloned()
            .collect()
    }

    pub async fn start(routes: Vec<(&str, Route)>, tls: bool) -> io::Result<Server> {
        Self::start_on("127.0.0.1:0", routes, tls).await
    }

    pub async fn start_on(bind: &str, routes: Vec<(&str, Route)>, tls: bool) -> io::Result<Server> {
        let routes: Arc<HashMap<String, Route>> = Arc::new(
            routes
                .into_iter()
                .map(|(p, r)| (p.to_string(), r))
                .collect(),
        );
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let block = pattern_block();
        let (acceptor, ca_pem) = if tls {
            let (a, ca) = tls_acceptor().map_err(io::Error::other)?;
            (Some(a), Some(ca))
        } else {
            (None, None)
        };
        let base = format!("{}://{}", if tls { "https" } else { "http" }, addr);
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let (routes, log, block, acceptor) = (
                    routes.clone(),
                    log2.clone(),
                    block.clone(),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(sock).await {
                                let _ = serve_conn(s, &routes, &log, &block).await;
                            }
                        }
                        None => {
                            let _ = serve_conn(sock, &routes, &log, &block).await;
                        }
                    }
                });
            }
        });
        Ok(Server {
            addr,
            base,
            log,
            ca_pem,
            task,
        })
    }
}

fn tls_acceptor()
-> Result<(tokio_rustls::TlsAcceptor, String), Box<dyn std::error::Error + Send + Sync>> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "berth-model-fetch-test-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem()))
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    routes: &HashMap<String, Route>,
    log: &Mutex<Vec<Logged>>,
    block: &[u8],
) -> io::Result<()> {
    // One request per connection (Connection: close).
    let mut buf = Vec::with_capacity(2048);
    let mut tmp = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut tmp).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let range = headers.get("range").cloned();
    let if_range = headers.get("if-range").cloned();
    log.lock().unwrap().push(Logged {
        path: path.clone(),
        range: range.clone(),
        if_range: if_range.clone(),
    });

    let Some(route) = routes.get(&path) else {
        return respond_text(&mut s, 404, "no such file").await;
    };
    let hit = route.hits.fetch_add(1, Ordering::SeqCst);
    if let Behavior::Status(code) = route.behavior {
        return respond_text(&mut s, code, "scripted status").await;
    }
    if let Behavior::Redirect(location) = route.behavior {
        let h = format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(h.as_bytes()).await?;
        return s.shutdown().await;
    }
    let len = route.body.len();
    let mut start = 0;
    let mut status = 200;
    let honour_range = route.behavior != Behavior::IgnoreRange
        && if_range.as_deref().is_none_or(|v| v == route.etag);
    if let (Some(r), true) = (&range, honour_range)
        && let Some(n) = r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<u64>().ok())
    {
        if n >= len {
            let h = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            s.write_all(h.as_bytes()).await?;
            return s.shutdown().await;
        }
        start = n;
        status = 206;
    }
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{}Accept-Ranges: bytes\r\nConnection: close\r\n",
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        },
        len - start,
        if route.etag.is_empty() {
            String::new()
        } else {
            format!("ETag: {}\r\n", route.etag)
        }
    );
    if status == 206 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{len}\r\n",
            len - 1
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    if method == "HEAD" {
        return s.shutdown().await;
    }
    let stop_at = match route.behavior {
        Behavior::DropAfter { after, times } if hit < times => Some(start + after),
        Behavior::Stall => Some(start + 1024.min(len - start)),
        _ => None,
    };
    let end = stop_at.unwrap_or(len).min(len);
    let mut pos = start;
    while pos < end {
        let n = match &route.body {
            Body::Bytes(b) => {
                let n = ((end - pos) as usize).min(64 * 1024);
                s.write_all(&b[pos as usize..pos as usize + n]).await?;
                n
            }
            Body::Pattern(_) => {
                let off = (pos % PATTERN_PERIOD as u64) as usize;
                let n = ((end - pos) as usize)
                    .min(256 * 1024)
                    .min(PATTERN_PERIOD - off);
                s.write_all(&block[off..off + n]).await?;
                n
            }
        };
        pos += n as u64;
    }
    s.flush().await?;
    if route.behavior == Behavior::Stall {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    if stop_at.is_some() {
        // Drop the connection mid-body (no TLS close_notify, no more bytes).
        return Ok(());
    }
    s.shutdown().await
}

async fn respond_text<S: AsyncWrite + Unpin>(s: &mut S, code: u16, text: &str) -> io::Result<()> {
    let h = format!(
        "HTTP/1.1 {code} Scripted\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    s.write_all(h.as_bytes()).await?;
    s.shutdown().await
}

/// SHA-256 (hex) of `len` bytes of the pattern.
pub fn pattern_sha256(len: u64) -> String {
    use sha2::{Digest, Sha256};
    let block = pattern_block();
    let mut h = Sha256::new();
    let mut pos = 0u64;
    while pos < len {
        let off = (pos % PATTERN_PERIOD as u64) as usize;
        let n = ((len - pos) as usize).min(PATTERN_PERIOD - off);
        h.update(&block[off..off + n]);
        pos += n as u64;
    }
    hex::encode(h.finalize())
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

/// Deterministic test data of `len` bytes.
pub fn data(len: usize) -> Vec<u8> {
    let block = pattern_block();
    (0..len).map(|i| block[i % PATTERN_PERIOD]).collect()
}
