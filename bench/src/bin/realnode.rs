//! The real node's cost: how long from its start to Ready, and the resident memory of its
//! processes (kubelet, containerd, kube-proxy, kube-router, the shims and what the pods run).
//!
//! `cargo run -p berth-bench --bin realnode [-- --bare] [--hold SECONDS]`
//!
//! Starts a control plane with the real node (with `--bare`, without cluster DNS and the storage
//! provisioner, which need Berth's images), prints the figures, keeps it up for `--hold` seconds
//! (default 0), then stops it and cleans the host up.

use std::time::{Duration, Instant};

use anyhow::Result;
use berth_testenv::realnode::{HostLease, Images, NodeBinaries};
use berth_testenv::{ControlPlane, Options, RealNode};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Without the add-ons (CoreDNS, local-path-provisioner).
    #[arg(long)]
    bare: bool,
    /// Seconds to keep the node up after measuring.
    #[arg(long, default_value_t = 0)]
    hold: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let binaries = NodeBinaries::locate()?;
    let images = if args.bare {
        std::env::var_os("BERTH_IMAGES")
            .map(|p| Images::read(p.as_ref()))
            .transpose()?
            .unwrap_or_default()
    } else {
        Images::locate()?
    };
    let begin = Instant::now();
    let lease = HostLease::acquire(true)?;
    let plane = ControlPlane::start(Options {
        real_node: true,
        ..Options::default()
    })
    .await?;
    let plane_ready = begin.elapsed();
    let node = if args.bare {
        RealNode::start_bare(lease, &plane, &binaries, images, true).await?
    } else {
        RealNode::start(lease, &plane, &binaries, images, true).await?
    };
    println!("control plane ready: {:.1} s", plane_ready.as_secs_f64());
    println!(
        "node Ready after its start: {:.1} s",
        node.started_in().as_secs_f64()
    );
    println!("everything up: {:.1} s", begin.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut total = 0;
    for (name, kib) in node.memory() {
        println!("memory {name}: {:.1} MiB", kib as f64 / 1024.0);
        total += kib;
    }
    println!("memory total: {:.1} MiB", total as f64 / 1024.0);
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let stopping = Instant::now();
    node.stop();
    plane.stop();
    println!(
        "stopped and cleaned up in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    Ok(())
}
