//! Keycloak unreachable for 60 s. The operator reaches Keycloak through a TCP relay on loopback
//! that the test closes for the outage: connections are refused, as they are when Keycloak's
//! process is down, while the real Keycloak keeps its data (it runs with an in-memory database, so
//! stopping its process would lose the realm, which is a different fault). During the outage the
//! in-cluster parts of new Projects still become Ready and the reason is in the status within 10 s;
//! everything is Ready within 30 s of Keycloak's return, with one client and one group per Project.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use berth_services::Keycloak;

use crate::providers::{Baseline, Owned, owned};
use crate::support::{Platform, condition, in_cluster_ready, is_ready};

const REALM: &str = "berth";
const OUTAGE: Duration = Duration::from_secs(60);

/// A TCP relay from a fixed loopback port to `upstream`, which can be closed (connections refused,
/// open ones cut) and opened again on the same port.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn open(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut relay = Self {
            addr: listener.local_addr()?,
            upstream,
            tasks: JoinSet::new(),
        };
        relay.serve(listener);
        Ok(relay)
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Refuses new connections and cuts the open ones.
    fn close(&mut self) {
        self.tasks.abort_all();
    }

    /// Listens again on the same port.
    async fn reopen(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.serve(listener);
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => bail!("rebinding {}: {e}", self.addr),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

#[tokio::test]
#[ignore = "fault suite, minutes: PROPTEST_CASES=50000 cargo xtask test -- -p berth-cluster-tests --test faults -- --include-ignored"]
async fn a_keycloak_outage_leaves_the_cluster_side_alone_says_why_and_heals() -> Result<()> {
    let (platform, keycloak) = tokio::join!(Platform::start(), Keycloak::start());
    let (mut platform, keycloak) = (platform?, keycloak?);
    keycloak.create_realm(REALM).await?;
    let upstream: SocketAddr = keycloak.base_url().trim_start_matches("http://").parse()?;
    let mut relay = Relay::open(upstream).await?;
    platform
        .admin_secret(
            "keycloak-admin",
            &[
                ("username", keycloak.admin_username()),
                ("password", keycloak.admin_password()),
            ],
        )
        .await?;
    platform
        .settings(json!({"identity": {
            "provider": "keycloak", "url": format!("http://{}", relay.addr), "realm": REALM,
            "adminSecretRef": {"name": "keycloak-admin"},
        }}))
        .await?;
    let baseline = Baseline::take(None, Some((&keycloak, REALM))).await?;
    let spec = json!({"idp": {"redirectUris": ["https://app.example.com/callback"]}});
    let before: Vec<String> = (0..5).map(|i| format!("idp-{i}")).collect();
    platform.create_projects(&before, &spec, 5).await?;
    platform
        .wait_all(&before, "Ready", Duration::from_secs(120), false, is_ready)
        .await?;

    relay.close();
    let down = Instant::now();
    eprintln!("Keycloak unreachable (connections refused) for {OUTAGE:?}");
    let during: Vec<String> = (0..3).map(|i| format!("idp-new-{i}")).collect();
    platform.create_projects(&during, &spec, 3).await?;
    let created = Instant::now();
    // The reason, within 10 s, beside in-cluster parts that are Ready.
    platform
        .wait_all(
            &during,
            "in-cluster Ready with the identity reason shown",
            Duration::from_secs(10),
            false,
            |p| {
                in_cluster_ready(p)
                    && condition(p, "IdentityReady")
                        .is_some_and(|(s, r, m)| s == "False" && !r.is_empty() && !m.is_empty())
            },
        )
        .await?;
    let all = platform.all_projects().await?;
    let shown = condition(&all[&during[0]], "IdentityReady");
    eprintln!(
        "reason shown {:.1} s after creation: {shown:?}",
        created.elapsed().as_secs_f64()
    );
    // The Projects made before the outage stay Ready: nothing in the cluster depends on Keycloak.
    let untouched: Vec<String> = before.clone();
    platform
        .wait_all(
            &untouched,
            "still Ready",
            Duration::from_secs(1),
            false,
            is_ready,
        )
        .await?;
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    platform
        .wait_all(
            &during,
            "in-cluster Ready",
            Duration::from_secs(1),
            false,
            in_cluster_ready,
        )
        .await?;

    relay.reopen().await?;
    let back = Instant::now();
    let mut names = before.clone();
    names.extend(during.iter().cloned());
    platform
        .wait_all(&names, "Ready", Duration::from_secs(30), false, is_ready)
        .await?;
    eprintln!(
        "all Ready {:.1} s after Keycloak returned",
        back.elapsed().as_secs_f64()
    );

    let projects: Vec<_> = platform.all_projects().await?.into_values().collect();
    let (outside, strays) = owned(
        &platform.client,
        &projects,
        &baseline,
        None,
        Some((&keycloak, REALM)),
    )
    .await?;
    let one = Owned {
        clients: 1,
        groups: 1,
        ..Owned::default()
    };
    let wrong: Vec<String> = outside
        .iter()
        .filter(|(_, o)| **o != one)
        .map(|(n, o)| format!("{n}: {o:?}"))
        .collect();
    assert!(
        wrong.is_empty() && strays.is_empty(),
        "not exactly one client and group each:\n{}\n{}",
        wrong.join("\n"),
        strays.join("\n")
    );
    Ok(())
}
