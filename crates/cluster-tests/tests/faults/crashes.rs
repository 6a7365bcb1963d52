//! The operator SIGKILLed ten times at random points while 200 Projects with storage (real Garage)
//! and identity (real Keycloak) are onboarded. Each kill is shown to land while work is pending.
//! Afterwards every Project has exactly what an undisturbed reference Project has, in the cluster
//! (children by label and owner) and outside it (one bucket, key, owner marker, client and group each, and
//! nothing that belongs to no Project).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::ResourceExt;
use serde_json::json;

use berth_cluster_tests::census::Census;
use berth_services::{Garage, Keycloak};

use crate::providers::{Baseline, Owned, owned};
use crate::support::{Platform, Rng, is_ready};

const REALM: &str = "berth";
const KILLS: usize = 10;
const PER_ROUND: usize = 20;
const REFERENCE: &str = "crash-ref";

/// Garage for storage and Keycloak for identity, configured the way a platform team would.
pub async fn outside_services(
    platform: &Platform,
    garage: &Garage,
    keycloak: &Keycloak,
) -> Result<()> {
    keycloak.create_realm(REALM).await?;
    platform
        .admin_secret("garage-admin", &[("adminToken", garage.admin_token())])
        .await?;
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
        .settings(json!({
            "storage": {
                "provider": "garage",
                "endpoint": garage.s3_endpoint(),
                "adminEndpoint": garage.admin_endpoint(),
                "region": garage.region(),
                "adminSecretRef": {"name": "garage-admin"},
            },
            "identity": {"provider": "keycloak", "url": keycloak.base_url(), "realm": REALM, "adminSecretRef": {"name": "keycloak-admin"}},
        }))
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "fault suite, minutes: PROPTEST_CASES=50000 cargo xtask test -- -p berth-cluster-tests --test faults -- --include-ignored"]
async fn the_operator_killed_ten_times_mid_onboarding_leaves_exactly_one_of_everything()
-> Result<()> {
    let (platform, garage, keycloak) =
        tokio::join!(Platform::start(), Garage::start(), Keycloak::start());
    let (mut platform, garage, keycloak) = (platform?, garage?, keycloak?);
    outside_services(&platform, &garage, &keycloak).await?;
    // No Project exists yet: whatever the services hold now is not Berth's.
    let baseline = Baseline::take(Some(&garage), Some((&keycloak, REALM))).await?;
    let spec = json!({"idp": {"redirectUris": ["https://app.example.com/callback"]}});

    // The reference onboards undisturbed.
    let reference = vec![REFERENCE.to_owned()];
    platform.create_projects(&reference, &spec, 1).await?;
    platform
        .wait_all(
            &reference,
            "Ready",
            Duration::from_secs(120),
            false,
            is_ready,
        )
        .await?;

    let mut rng = Rng::from_env();
    let mut names = reference.clone();
    let mut kills = Vec::new();
    for round in 0..KILLS {
        let batch: Vec<String> = (0..PER_ROUND)
            .map(|i| format!("crash-{round}-{i}"))
            .collect();
        platform.create_projects(&batch, &spec, 8).await?;
        names.extend(batch.iter().cloned());
        // A random point inside this batch's work: after `threshold` of its Projects are Ready.
        let threshold = rng.below(PER_ROUND as u64) as usize;
        let deadline = Instant::now() + Duration::from_secs(180);
        let (ready, pending) = loop {
            let all = platform.all_projects().await?;
            let ready_in_batch = batch
                .iter()
                .filter(|n| all.get(*n).is_some_and(is_ready))
                .count();
            let pending = names
                .iter()
                .filter(|n| !all.get(*n).is_some_and(is_ready))
                .count();
            if ready_in_batch >= threshold {
                break (names.len() - pending, pending);
            }
            if Instant::now() > deadline {
                let stuck: Vec<String> = batch
                    .iter()
                    .filter_map(|n| all.get(n).filter(|p| !is_ready(p)))
                    .take(3)
                    .map(|p| {
                        let conditions = p.status.as_ref().map(|s| {
                            s.conditions
                                .iter()
                                .filter(|c| c.status != "True")
                                .map(|c| format!("{} {}: {}", c.type_, c.reason, c.message))
                                .collect::<Vec<_>>()
                        });
                        format!("{}: {conditions:?}", p.name_any())
                    })
                    .collect();
                bail!(
                    "round {round}: only {ready_in_batch} of the batch Ready after 180 s; e.g.\n{}",
                    stuck.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        platform.kill_operator();
        eprintln!(
            "kill {}: SIGKILL with {ready} Ready and {pending} pending (threshold {threshold} of the batch)",
            round + 1
        );
        assert!(
            pending > 0,
            "kill {} landed with no work pending: the test did not test a crash mid-work",
            round + 1
        );
        kills.push(pending);
        platform.restart_operator().await?;
    }
    assert_eq!(kills.len(), KILLS);

    let begin = Instant::now();
    platform
        .wait_all(&names, "Ready", Duration::from_secs(900), false, is_ready)
        .await?;
    eprintln!(
        "all {} Projects Ready {:.1} s after the last restart; pending at each kill: {kills:?}",
        names.len(),
        begin.elapsed().as_secs_f64()
    );

    let projects: Vec<_> = platform.all_projects().await?.into_values().collect();
    let census = Census::take(&platform.client, &projects).await?;
    let differences = census.differences(REFERENCE);
    assert!(
        differences.is_empty(),
        "in the cluster, Projects differ from the reference {:?}:\n{}",
        census.per_project.get(REFERENCE),
        differences.join("\n")
    );
    let (outside, strays) = owned(
        &platform.client,
        &projects,
        &baseline,
        Some(&garage),
        Some((&keycloak, REALM)),
    )
    .await?;
    let one = Owned {
        buckets: 1,
        keys: 1,
        markers: 1,
        clients: 1,
        groups: 1,
    };
    let wrong: Vec<String> = outside
        .iter()
        .filter(|(_, o)| **o != one)
        .map(|(n, o)| format!("{n}: {o:?}"))
        .collect();
    assert!(
        wrong.is_empty() && strays.is_empty(),
        "outside the cluster, not exactly one of each:\n{}\n{}",
        wrong.join("\n"),
        strays.join("\n")
    );
    eprintln!(
        "{} Projects: each with {:?} in the cluster and one bucket, key, owner marker, client and group",
        projects.len(),
        census.per_project.get(REFERENCE)
    );
    Ok(())
}
