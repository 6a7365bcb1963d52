//! Load generator for berth-model-server: drives a running server's infer
//! endpoint with N concurrent clients for a bounded time and number of
//! requests per level, and prints requests per second and p50/p99 latency.
//!
//! Loopback only: the target must be an address on this machine.
//! Run through `bench/model-server/run.sh`, which starts the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    url: String,
    /// Model name to call (the `mlp` test model: x FP32 [N, 3]).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Rows per request (the batch dimension).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrency levels, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Seconds per level (upper bound).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Requests per level (upper bound).
    #[arg(long, default_value_t = 200_000)]
    max_requests: u64,
    /// Seconds of warm-up before the first level.
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Level {
    concurrency: usize,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn drive(
    client: &reqwest::Client,
    url: &str,
    body: &Arc<Vec<u8>>,
    concurrency: usize,
    seconds: u64,
    max_requests: u64,
) -> Level {
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, issued) =
            (client.clone(), url.to_owned(), body.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, err) = t.await.unwrap();
        latencies.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Level {
        concurrency,
        ok: latencies.len() as u64,
        errors,
        elapsed,
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let host = args
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let addr: std::net::SocketAddr = host
        .parse()
        .unwrap_or_else(|_| panic!("--url must be http://IP:PORT, got {}", args.url));
    assert!(
        addr.ip().is_loopback(),
        "the benchmark only targets loopback"
    );

    let url = format!(
        "{}/v2/models/{}/infer",
        args.url.trim_end_matches('/'),
        args.model
    );
    let data: Vec<f32> = (0..args.batch * 3)
        .map(|i| (i % 7) as f32 * 0.5 - 1.0)
        .collect();
    let body = Arc::new(
        serde_json::to_vec(&json!({
            "inputs": [{"name": "x", "shape": [args.batch, 3], "datatype": "FP32", "data": data}]
        }))
        .unwrap(),
    );
    let max_c = args.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_c)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // One checked request: the server answers, and with the right shape.
    let first = client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await
        .unwrap();
    assert!(
        first.status().is_success(),
        "first request: {}",
        first.status()
    );
    let v: serde_json::Value = first.json().await.unwrap();
    assert_eq!(v["outputs"][0]["shape"][0], json!(args.batch));

    if args.warmup_seconds > 0 {
        drive(
            &client,
            &url,
            &body,
            max_c.min(8),
            args.warmup_seconds,
            u64::MAX,
        )
        .await;
    }

    println!(
        "berth-model-server benchmark: model {} batch {} ({} bytes/request), up to {}s or {} requests per level",
        args.model,
        args.batch,
        body.len(),
        args.seconds,
        args.max_requests
    );
    println!(
        "{:>11} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "concurrency", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    for &c in &args.concurrency {
        let level = drive(&client, &url, &body, c, args.seconds, args.max_requests).await;
        let rps = level.ok as f64 / level.elapsed.as_secs_f64();
        println!(
            "{:>11} {:>9} {:>7} {:>10.0} {:>10.3} {:>10.3}",
            level.concurrency,
            level.ok,
            level.errors,
            rps,
            percentile(&level.latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&level.latencies, 99.0).as_secs_f64() * 1e3,
        );
    }
}
