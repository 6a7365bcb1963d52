//! The HTTP floor of the model-server benchmark: a server on the same HTTP stack as
//! `berth-model-server` (axum 0.8 over hyper's HTTP/1, tokio's multi-threaded runtime, default
//! worker count) that reads each request's body and answers every request with the same bytes, the
//! response `berth-model-server` gave to the benchmark's request. What is left between this and
//! berth-model-server is the inference itself: parsing, validation, the model, encoding.
//!
//!     http-floor --addr 127.0.0.1:0 --response response.json
//!
//! Prints `listening on http://ADDR` on stderr once bound. Stops on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::any;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The response body to send, byte for byte (served as application/json).
    #[arg(long)]
    response: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let body = Bytes::from(
        std::fs::read(&args.response)
            .with_context(|| format!("reading {}", args.response.display()))?,
    );
    let answer = move |request: Bytes| {
        let body = body.clone();
        async move {
            // The request is read whole, as an infer handler must.
            drop(request);
            ([(header::CONTENT_TYPE, "application/json")], body)
        }
    };
    let app = Router::new().fallback(any(answer));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
