//! Issue 12 on kwok nodes: quota refusals as failure reasons within seconds, and canary releases
//! (share by replicas behind the one Service, promote, automatic roll back).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use berth_api::mlmodel::{MLModel, Phase};

use super::{World, active, condition, failure_reason, is_true, model_bytes, phase, world};
use crate::support::eventually;

fn canary_ready(model: &MLModel) -> Option<(String, String)> {
    condition(model, "CanaryReady")
}

async fn quota(w: &World, name: &str, hard: serde_json::Value) -> Result<()> {
    let quotas: Api<ResourceQuota> = Api::namespaced(w.client.clone(), &w.ns);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"hard": hard},
    }))?;
    quotas.create(&PostParams::default(), &quota).await?;
    // Until the quota controller has counted what is used, admission refuses with "status
    // unknown", which is not the refusal under test.
    eventually(
        "the quota to be counted",
        Duration::from_secs(20),
        || async {
            let quota = quotas.get(name).await?;
            Ok(quota
                .status
                .and_then(|s| s.used)
                .is_some_and(|u| !u.is_empty())
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// Regression: a quota that refused the download pod left the model waiting until the Job's
/// deadline, and one that refused the version's volume surfaced as a reconcile error. Both are
/// now the new version's failure within seconds, naming the quota, while the old version keeps
/// serving.
#[tokio::test]
async fn quota_refusals_fail_the_update_within_seconds() -> Result<()> {
    let w = world("mlm-quota").await?;
    let (uri1, sha1) = w
        .upload("scoring/v1/model.onnx", &model_bytes("q-v1;", 32 * 1024))
        .await?;
    w.create("scoring", json!({"source": {"uri": uri1, "sha256": sha1}}))
        .await?;
    let ready = w
        .until(
            "scoring",
            "scoring to be Ready",
            Duration::from_secs(40),
            |m| phase(m) == Some(Phase::Ready),
        )
        .await?;
    let v1 = active(&ready).context("no active version")?;

    // One serving pod runs; the quota allows no second pod.
    quota(&w, "team-pods", json!({"pods": "1"})).await?;
    let (uri2, sha2) = w
        .upload("scoring/v2/model.onnx", &model_bytes("q-v2;", 32 * 1024))
        .await?;
    let began = Instant::now();
    w.patch_spec("scoring", json!({"source": {"uri": uri2, "sha256": sha2}}))
        .await?;
    let refused = w
        .until(
            "scoring",
            "the download pod's quota refusal",
            Duration::from_secs(30),
            |m| failure_reason(m).as_deref() == Some("QuotaExceeded"),
        )
        .await?;
    eprintln!(
        "a pod quota refusal surfaced in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let failure = refused
        .status
        .as_ref()
        .and_then(|s| s.last_failure.clone())
        .context("no lastFailure")?;
    assert!(
        failure
            .message
            .contains("ResourceQuota team-pods refuses the download pod"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("pods=1"), "{}", failure.message);
    assert_eq!(failure.stage, "Download");
    assert_eq!(active(&refused).as_deref(), Some(v1.as_str()));
    assert!(is_true(&refused, "Ready"));
    assert!(is_true(&refused, "Degraded"));

    // A storage quota that refuses the next version's volume.
    let quotas: Api<ResourceQuota> = Api::namespaced(w.client.clone(), &w.ns);
    quotas.delete("team-pods", &DeleteParams::default()).await?;
    quota(&w, "team-storage", json!({"persistentvolumeclaims": "1"})).await?;
    let (uri3, sha3) = w
        .upload("scoring/v3/model.onnx", &model_bytes("q-v3;", 32 * 1024))
        .await?;
    let began = Instant::now();
    w.patch_spec("scoring", json!({"source": {"uri": uri3, "sha256": sha3}}))
        .await?;
    let refused = w
        .until(
            "scoring",
            "the volume's quota refusal",
            Duration::from_secs(30),
            |m| {
                m.status
                    .as_ref()
                    .and_then(|s| s.last_failure.as_ref())
                    .is_some_and(|f| {
                        f.reason == "QuotaExceeded" && f.message.contains("team-storage")
                    })
            },
        )
        .await?;
    eprintln!(
        "a storage quota refusal surfaced in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let failure = refused
        .status
        .as_ref()
        .and_then(|s| s.last_failure.clone())
        .context("no lastFailure")?;
    assert!(
        failure.message.contains("refuses the volume scoring-"),
        "{}",
        failure.message
    );
    assert_eq!(active(&refused).as_deref(), Some(v1.as_str()));
    assert!(is_true(&refused, "Ready"));
    Ok(())
}

/// A canary at 20 % beside 4 stable replicas runs one replica of its own behind the one
/// Service; promoting it is a spec change that rolls the stable Deployment to it; a canary
/// whose download fails is rolled back by Berth with the reason, the stable version serving
/// throughout.
#[tokio::test]
async fn a_canary_is_deployed_promoted_and_rolled_back() -> Result<()> {
    let w = world("mlm-canary").await?;
    let (uri1, sha1) = w
        .upload("ranker/v1/model.onnx", &model_bytes("c-v1;", 32 * 1024))
        .await?;
    let (uri2, sha2) = w
        .upload("ranker/v2/model.onnx", &model_bytes("c-v2;", 32 * 1024))
        .await?;
    w.create(
        "ranker",
        json!({"source": {"uri": uri1, "sha256": sha1}, "replicas": 4}),
    )
    .await?;
    let ready = w
        .until(
            "ranker",
            "ranker to be Ready",
            Duration::from_secs(40),
            |m| phase(m) == Some(Phase::Ready),
        )
        .await?;
    let v1 = active(&ready).context("no active version")?;

    w.patch_spec(
        "ranker",
        json!({"canary": {"source": {"uri": uri2, "sha256": sha2}, "weight": 20}}),
    )
    .await?;
    let serving = w
        .until(
            "ranker",
            "the canary to serve",
            Duration::from_secs(40),
            |m| canary_ready(m).is_some_and(|c| c.0 == "True"),
        )
        .await?;
    let status = serving.status.clone().unwrap_or_default();
    let canary = status.canary.clone().context("no status.canary")?;
    assert_eq!((canary.replicas, canary.ready_replicas), (1, 1));
    assert_eq!(canary.percent, 20);
    assert_eq!(canary.method, "replicas");
    assert_eq!(canary.split, format!("{v1} 80% / {} 20%", canary.version));
    assert_eq!(status.active_version.as_deref(), Some(v1.as_str()));
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), &w.ns);
    let names = w.names::<Deployment>("berth.dev/model=ranker").await?;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("ranker-canary-")),
        "{names:?}"
    );
    assert_eq!(
        deployments
            .get("ranker")
            .await?
            .spec
            .and_then(|s| s.replicas),
        Some(4)
    );

    // Promote: the canary's source becomes the model's, and the canary goes.
    w.patch_spec(
        "ranker",
        json!({"source": {"uri": uri2, "sha256": sha2}, "canary": null}),
    )
    .await?;
    let promoted = w
        .until(
            "ranker",
            "the promoted version to serve",
            Duration::from_secs(40),
            |m| active(m).as_deref() == Some(canary.version.as_str()) && is_true(m, "Ready"),
        )
        .await?;
    assert!(canary_ready(&promoted).is_none());
    assert!(promoted.status.as_ref().is_some_and(|s| s.canary.is_none()));
    eventually(
        "the canary Deployment to go",
        Duration::from_secs(20),
        || async {
            let names = w.names::<Deployment>("berth.dev/model=ranker").await?;
            Ok((names == vec!["ranker".to_owned()]).then_some(()))
        },
    )
    .await?;

    // A canary whose download fails (a wrong checksum) is rolled back by itself.
    let wrong = "0".repeat(64);
    w.patch_spec(
        "ranker",
        json!({"canary": {"source": {"uri": uri1, "sha256": wrong}, "weight": 50}}),
    )
    .await?;
    let rolled_back = w
        .until(
            "ranker",
            "the failed canary to be rolled back",
            Duration::from_secs(30),
            |m| canary_ready(m).is_some_and(|c| c.1 == "ChecksumMismatch"),
        )
        .await?;
    let status = rolled_back.status.clone().unwrap_or_default();
    let canary = status.canary.context("no status.canary")?;
    assert_eq!(canary.percent, 0);
    assert_eq!(canary.failure.map(|f| f.stage).as_deref(), Some("Canary"));
    assert!(is_true(&rolled_back, "Ready"));
    assert_eq!(
        status.active_version.as_deref(),
        promoted
            .status
            .as_ref()
            .and_then(|s| s.active_version.as_deref())
    );
    Ok(())
}
