//! Deletion with the names the status records, and abandoning what a gone provider holds: three
//! steps the outage test in `main.rs` runs (storage on its Garage) before, during and after the
//! outage, so that they cost no control plane of their own.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use berth_api::Project;
use berth_services::Garage;

use super::support::*;
use super::takeover::message;
use super::{garage_buckets, garage_keys, key_prefix};

/// Before the outage: two Delete projects, Ready.
pub async fn before(platform: &mut Platform) -> Result<String> {
    for name in ["recorded", "doomed", "orphaned"] {
        platform
            .create_project(
                json!({"owners": [format!("{name}@example.com")], "deletionPolicy": "Delete"}),
                name,
            )
            .await?;
    }
    for name in ["recorded", "doomed", "orphaned"] {
        platform
            .wait_project(name, "Ready", Duration::from_secs(60), |p| {
                is_true(p, "Ready")
            })
            .await?;
    }
    key_prefix(platform, "doomed").await
}

/// During the outage: deleting a Delete project waits and says why; its owner cannot
/// abandon what the store holds, a platform admin can, and the Event names it.
pub async fn during(platform: &mut Platform) -> Result<()> {
    platform
        .projects()
        .delete("doomed", &DeleteParams::default())
        .await?;
    let p = platform
        .wait_project("doomed", "deletion blocked", Duration::from_secs(60), |p| {
            condition(p, "Ready").is_some_and(|(_, r)| r == "DeletionBlocked")
        })
        .await?;
    let m = message(&p, "Ready");
    assert!(
        m.contains("bucket doomed") && m.contains("berth.dev/abandon-external"),
        "{m}"
    );
    let as_owner = platform
        .plane
        .cluster()
        .impersonate("doomed@example.com", &[])
        .await?;
    let refused = Api::<Project>::all(as_owner)
        .patch(
            "doomed",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"berth.dev/abandon-external": "true"}}}),
            ),
        )
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.message.contains("only a platform admin")),
        "{refused:?}"
    );
    platform
        .annotate("doomed", "berth.dev/abandon-external", "true")
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while platform.projects().get_opt("doomed").await?.is_some() {
        if Instant::now() > deadline {
            bail!("doomed was not let go");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = Api::<Event>::all(platform.client.clone())
        .list(&ListParams::default().fields("involvedObject.name=doomed"))
        .await?;
    let abandoned = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Abandoned"))
        .and_then(|e| e.message.clone())
        .context("no Abandoned event")?;
    assert!(abandoned.contains("bucket doomed"), "{abandoned}");
    Ok(())
}

/// After the outage: the abandoned bucket and key are still there (nothing half-removed);
/// and after a template change, deleting a project removes the bucket its status records and
/// leaves alone a bucket someone made under the new template's name.
pub async fn after(platform: &mut Platform, garage: &Garage, doomed_keys: &str) -> Result<()> {
    assert!(garage_buckets(garage).await?.contains("doomed"));
    assert_eq!(garage_keys(garage, doomed_keys).await?.len(), 1);
    platform
        .settings(json!({"storage": {"bucketTemplate": "moved-{project}"}}))
        .await?;
    let bystander = garage.create_bucket("moved-recorded").await?;
    let key = garage.create_key("bystander", false).await?;
    garage.allow(&bystander, &key, true, true, false).await?;
    let bystander_s3 = s3(
        garage.s3_endpoint(),
        garage.region(),
        &key.access_key_id,
        &key.secret_access_key,
    );
    bystander_s3
        .put_object()
        .bucket("moved-recorded")
        .key("keep.txt")
        .body(b"mine".to_vec().into())
        .send()
        .await?;
    platform
        .projects()
        .delete("recorded", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while platform.projects().get_opt("recorded").await?.is_some() {
        if Instant::now() > deadline {
            bail!(
                "recorded was not deleted: {:?}",
                platform.projects().get("recorded").await?.status
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let buckets = garage_buckets(garage).await?;
    assert!(!buckets.contains("recorded"), "the recorded bucket stayed");
    assert!(
        buckets.contains("moved-recorded"),
        "a bucket that was never the project's went"
    );
    assert!(can_read(&bystander_s3, "moved-recorded", "keep.txt").await);

    // A project whose namespace is already going when it is deleted: its bucket and key go too.
    let orphaned_keys = key_prefix(platform, "orphaned").await?;
    Api::<Namespace>::all(platform.client.clone())
        .delete("orphaned", &DeleteParams::default())
        .await?;
    platform
        .projects()
        .delete("orphaned", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while platform.projects().get_opt("orphaned").await?.is_some() {
        if Instant::now() > deadline {
            bail!("orphaned was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!garage_buckets(garage).await?.contains("orphaned"));
    assert!(garage_keys(garage, &orphaned_keys).await?.is_empty());
    Ok(())
}
