//! One leader at a time, under a hung renew call: the leader's lease traffic goes through a proxy
//! that the test stalls (it keeps the connection open and forwards nothing, so the renewal hangs,
//! as it would on a half-dead network path), while its controllers keep their own connection. The
//! leader must stop acting before the standby takes over. Its own binary and control plane, since
//! two operators compete for one lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use berth_api::Project;
use berth_testenv::{ControlPlane, Options, Process};

/// The timing both replicas run with: a 6 s lease, a 4 s renew deadline, a renewal every second.
const TIMING: [&str; 3] = [
    "--lease-duration-seconds=6",
    "--renew-deadline-seconds=4",
    "--retry-period-seconds=1",
];

/// A TCP proxy to `upstream` that forwards both ways until stalled; from then on it forwards
/// nothing, and keeps every connection open.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, flag.clone()),
                        pump(server_read, client_write, flag)
                    );
                });
            }
        });
        Ok(Self { port, stalled })
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        // Once stalled, hold the bytes (and the connection) for good.
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

async fn holder(client: &Client) -> Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "berth-system");
    Ok(leases
        .get_opt("berth-operator")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

fn holds(identity: Option<&str>, process: &Process) -> bool {
    identity.is_some_and(|i| i.ends_with(&format!("-{}", process.pid())))
}

async fn create_project(client: &Client, name: &str) -> Result<()> {
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": name},
        "spec": {"owners": ["ada@example.com"]},
    }))?;
    Api::<Project>::all(client.clone())
        .create(&PostParams::default(), &project)
        .await?;
    Ok(())
}

async fn ready(client: &Client, name: &str) -> Result<bool> {
    let project = Api::<Project>::all(client.clone()).get(name).await?;
    Ok(project
        .status
        .as_ref()
        .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready")))
}

#[tokio::test]
async fn a_hung_renewal_stops_the_leader_before_a_standby_takes_over() -> Result<()> {
    let plane = ControlPlane::start(Options::default()).await?;
    let client = plane.cluster().client().await?;
    let binary = berth_testenv::operator_binary()?;

    // The leader's lease traffic goes through the proxy.
    let config = plane.cluster().config().await?;
    let upstream = config
        .cluster_url
        .authority()
        .map(ToString::to_string)
        .context("the API server's URL has no host and port")?;
    let proxy = StallingProxy::start(upstream.clone()).await?;
    let lease_kubeconfig = plane.dir().join("lease.kubeconfig");
    plane
        .cluster()
        .operator_kubeconfig(&lease_kubeconfig)
        .await?;
    let text = std::fs::read_to_string(&lease_kubeconfig)?
        .replace(&upstream, &format!("127.0.0.1:{}", proxy.port));
    std::fs::write(&lease_kubeconfig, text)?;

    let mut args: Vec<String> = TIMING.iter().map(|s| (*s).to_owned()).collect();
    args.push(format!(
        "--leader-election-kubeconfig={}",
        lease_kubeconfig.display()
    ));
    let (mut leader, _) = plane
        .cluster()
        .start_operator(&binary, plane.dir(), "leader.log", &args)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds(holder(&client).await?.as_deref(), &leader) {
        if let Some(status) = leader.exited() {
            bail!(
                "the leader exited with {status}:\n{}",
                leader.log_tail(4000)
            );
        }
        if Instant::now() > deadline {
            bail!("the first replica did not lead:\n{}", leader.log_tail(4000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timing: Vec<String> = TIMING.iter().map(|s| (*s).to_owned()).collect();
    let (standby, _) = plane
        .cluster()
        .start_operator(&binary, plane.dir(), "standby.log", &timing)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !standby
        .log_tail(100_000)
        .contains("another replica leads; standing by")
    {
        if Instant::now() > deadline {
            bail!(
                "the second replica did not stand by:\n{}",
                standby.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leader acts.
    create_project(&client, "before").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&client, "before").await? {
        if Instant::now() > deadline {
            bail!("the leader did not reconcile:\n{}", leader.log_tail(4000));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its renewal hangs from now on.
    proxy.stall();
    let stalled = Instant::now();
    let mut stopped = None;
    let mut taken_over = None;
    let deadline = stalled + Duration::from_secs(30);
    while stopped.is_none() || taken_over.is_none() {
        if stopped.is_none() && leader.exited().is_some() {
            stopped = Some(Instant::now());
        }
        if taken_over.is_none() && holds(holder(&client).await?.as_deref(), &standby) {
            taken_over = Some(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "after the stall: leader stopped {stopped:?}, standby took over {taken_over:?}\nleader:\n{}\nstandby:\n{}",
                leader.log_tail(4000),
                standby.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stopped, taken_over) = (stopped.unwrap_or(stalled), taken_over.unwrap_or(stalled));
    eprintln!(
        "stall to leader stop: {:?}; stall to standby lead: {:?}; gap {:?}",
        stopped - stalled,
        taken_over - stalled,
        taken_over.saturating_duration_since(stopped)
    );
    assert!(
        stopped < taken_over,
        "the standby took over {:?} before the old leader stopped",
        stopped - taken_over
    );
    // It stopped because its renewal hung, within the renew deadline (4 s) and a little.
    assert!(stopped - stalled <= Duration::from_secs(6));
    let log = leader.log_tail(200_000);
    assert!(
        log.contains("renewing the lease hung past the renew deadline")
            || log.contains("could not renew the lease within the renew deadline"),
        "{}",
        leader.log_tail(4000)
    );
    assert!(log.contains("lost the leader lease: exiting"));

    // The new leader acts.
    create_project(&client, "after").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&client, "after").await? {
        if Instant::now() > deadline {
            bail!(
                "the new leader did not reconcile:\n{}",
                standby.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let owner = Api::<Project>::all(client.clone()).get("after").await?;
    assert!(owner.finalizers().iter().any(|f| f == "berth.dev/project"));
    drop(standby);
    plane.kill();
    Ok(())
}
