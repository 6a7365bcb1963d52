//! A loopback HTTPS server for the benchmark: serves `/blob`, SIZE bytes of a
//! pseudo-random pattern generated on the fly, with a fresh self-signed CA.
//!
//! `cargo run --release --example serve -- SIZE CA_OUT` prints
//! `URL SHA256` on one line once it listens, then serves until killed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Behavior, Body, Route, Server, pattern_sha256};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let size: u64 = args.next().ok_or("usage: serve SIZE CA_OUT")?.parse()?;
    let ca_out = args.next().ok_or("usage: serve SIZE CA_OUT")?;
    let sha = pattern_sha256(size);
    let server = Server::start(
        vec![("/blob", Route::new(Body::Pattern(size), Behavior::Normal))],
        true,
    )
    .await?;
    std::fs::write(&ca_out, server.ca_pem.as_deref().unwrap_or_default())?;
    println!("{} {sha}", server.url("/blob"));
    tokio::signal::ctrl_c().await?;
    Ok(())
}
