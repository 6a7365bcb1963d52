//! Unit tests of the pure parts: versions, the build, the rollout decision and exit codes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, MODEL};
use berth_api::mlmodel::{
    Autoscaling, MLModel, MLModelSpec, MLModelStatus, ModelResources, ModelSettings, ModelSource,
    Phase, RuntimeName, RuntimeSpec,
};
use berth_reconcile::Error;

use super::build::{Environment, Plan, Version, build, parse_duration_seconds};
use super::observe::{Download, Problem, Serving, fetch_problem};
use super::plan::{Observed, decide};

fn model(uri: &str) -> MLModel {
    let mut m = MLModel::new(
        "fraud",
        MLModelSpec {
            source: ModelSource {
                uri: uri.into(),
                ..Default::default()
            },
            runtime: RuntimeSpec::default(),
            replicas: Some(2),
            autoscaling: None,
            resources: None,
            storage: None,
            expose: None,
        },
    );
    m.metadata.namespace = Some("team".into());
    m.metadata.uid = Some("0b7e7a52-0000-4000-8000-000000000001".into());
    m.metadata.generation = Some(1);
    m
}

fn kinds(model: &MLModel, plan: &Plan) -> Result<Vec<(String, String)>, Error> {
    Ok(build(
        model,
        &ModelSettings::default(),
        Environment::default(),
        plan,
        &super::host::Host::None,
    )?
    .children
    .iter()
    .map(|d| {
        (
            d.kind.resource.kind.clone(),
            d.object.metadata.name.clone().unwrap_or_default(),
        )
    })
    .collect())
}

fn now() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

fn observed(download: Download, serving: Option<Serving>) -> Observed {
    Observed {
        target_download: download,
        target_problem: None,
        active_problem: None,
        serving,
    }
}

fn serving(version: &str, rolled_out: bool, available: bool) -> Serving {
    Serving {
        template_version: Some(version.into()),
        replicas: 2,
        ready_replicas: if available { 2 } else { 0 },
        rolled_out,
        available,
        ..Default::default()
    }
}

/// The model with `active` recorded as its serving version.
fn serving_model(mut m: MLModel, active: &Version) -> MLModel {
    m.status = Some(MLModelStatus {
        active_version: Some(active.key.clone()),
        active_source: Some(active.source.clone()),
        active_runtime: Some(active.runtime.clone()),
        ..Default::default()
    });
    m
}

#[test]
fn the_version_is_the_source_and_runtime_only() {
    let a = model("s3://models/fraud/model.onnx");
    let mut b = a.clone();
    b.spec.replicas = Some(5);
    b.spec.resources = Some(ModelResources {
        gpus: Some(1),
        ..Default::default()
    });
    let v = |m: &MLModel| Version::of(&m.spec.source, &m.spec.runtime).key;
    assert_eq!(v(&a), v(&b));
    assert_eq!(v(&a).len(), 10);
    let mut c = a.clone();
    c.spec.source.uri = "s3://models/fraud/v2.onnx".into();
    assert_ne!(v(&a), v(&c));
    let mut d = a.clone();
    d.spec.runtime.name = RuntimeName::Triton;
    assert_ne!(v(&a), v(&d));
}

#[test]
fn a_new_model_downloads_first_and_serves_nothing_yet() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let d = decide(&m, &observed(Download::Absent, None), now());
    assert_eq!(d.phase, Phase::Pending);
    assert_eq!(d.plan.serve, None);
    let key = d.target.key.clone();
    assert_eq!(
        kinds(&m, &d.plan)?,
        vec![
            ("PersistentVolumeClaim".into(), format!("fraud-{key}")),
            ("Job".into(), format!("fraud-fetch-{key}")),
            ("Service".into(), "fraud".into()),
        ]
    );
    let running = decide(&m, &observed(Download::Running, None), now());
    assert_eq!(running.phase, Phase::Downloading);
    Ok(())
}

#[test]
fn every_child_is_labelled_and_owned() -> Result<(), Error> {
    let mut m = model("s3://models/fraud/model.onnx");
    m.spec.replicas = None;
    m.spec.autoscaling = Some(Autoscaling {
        min_replicas: 1,
        max_replicas: 4,
        target_cpu_utilization: 70,
    });
    let v = Version::of(&m.spec.source, &m.spec.runtime);
    let plan = Plan {
        serve: Some(v.clone()),
        volumes: vec![v],
        autoscaled_replicas: None,
    };
    let built = build(
        &m,
        &ModelSettings::default(),
        Environment::default(),
        &plan,
        &super::host::Host::None,
    )?;
    assert_eq!(
        built.children.len(),
        5,
        "PVC, Job, Deployment, HPA, Service"
    );
    for child in &built.children {
        let labels = child.object.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY).map(String::as_str),
            Some(MANAGED_BY_VALUE)
        );
        assert_eq!(labels.get(MODEL).map(String::as_str), Some("fraud"));
        let owners = child
            .object
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default();
        assert!(
            owners
                .iter()
                .any(|o| o.controller == Some(true) && o.kind == "MLModel")
        );
    }
    Ok(())
}

#[test]
fn the_download_job_is_bounded_and_kept() -> Result<(), Error> {
    let mut m = model("s3://models/fraud/model.onnx");
    m.spec.source.timeout = Some("1h30m".into());
    let v = Version::of(&m.spec.source, &m.spec.runtime);
    let plan = Plan {
        serve: None,
        volumes: vec![v],
        autoscaled_replicas: None,
    };
    let built = build(
        &m,
        &ModelSettings::default(),
        Environment::default(),
        &plan,
        &super::host::Host::None,
    )?;
    let job = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == "Job")
        .ok_or_else(|| Error::internal("no Job"))?;
    let job: Job = serde_json::from_value(
        serde_json::to_value(&job.object).map_err(|e| Error::internal(e.to_string()))?,
    )
    .map_err(|e| Error::internal(e.to_string()))?;
    let spec = job.spec.unwrap_or_default();
    assert_eq!(spec.active_deadline_seconds, Some(5400));
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.ttl_seconds_after_finished, None);
    let pod = spec.template.spec.unwrap_or_default();
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert!(args.contains(&"--timeout=5400s".to_owned()), "{args:?}");
    let env_from = pod.containers[0].env_from.clone().unwrap_or_default();
    assert_eq!(
        env_from[0].secret_ref.as_ref().map(|s| s.name.as_str()),
        Some("berth-storage")
    );
    Ok(())
}

#[test]
fn the_deployment_rolls_without_losing_replicas() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let v = Version::of(&m.spec.source, &m.spec.runtime);
    let plan = Plan {
        serve: Some(v.clone()),
        volumes: vec![v],
        autoscaled_replicas: None,
    };
    let built = build(
        &m,
        &ModelSettings::default(),
        Environment::default(),
        &plan,
        &super::host::Host::None,
    )?;
    let desired = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == "Deployment")
        .ok_or_else(|| Error::internal("no Deployment"))?;
    let deployment: Deployment = serde_json::from_value(
        serde_json::to_value(&desired.object).map_err(|e| Error::internal(e.to_string()))?,
    )
    .map_err(|e| Error::internal(e.to_string()))?;
    let spec = deployment.spec.unwrap_or_default();
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .unwrap_or_default();
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );
    let pod = spec.template.spec.unwrap_or_default();
    assert!(pod.containers[0].readiness_probe.is_some());
    assert_eq!(spec.replicas, Some(2));
    Ok(())
}

#[test]
fn an_update_serves_the_old_version_until_the_new_one_rolled_out() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = Version::of(&old.spec.source, &old.spec.runtime);
    let mut m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    m.metadata.generation = Some(2);
    let v2 = Version::of(&m.spec.source, &m.spec.runtime);

    // Downloading: v1 serves, both volumes exist.
    let d = decide(
        &m,
        &observed(Download::Running, Some(serving(&v1.key, true, true))),
        now(),
    );
    assert_eq!(d.phase, Phase::Updating);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.plan.volumes.len(), 2);
    assert!(d.ready);

    // Downloaded: the Deployment rolls to v2, v1 is still active.
    let d = decide(
        &m,
        &observed(Download::Succeeded, Some(serving(&v1.key, true, true))),
        now(),
    );
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v2.key));
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.phase, Phase::Updating);

    // Rolling: v2 is the template but not everywhere yet.
    let d = decide(
        &m,
        &observed(Download::Succeeded, Some(serving(&v2.key, false, true))),
        now(),
    );
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v1.key));
    assert!(d.ready, "the old replicas keep the Deployment available");

    // Rolled out: v2 is active and v1's volume goes.
    let d = decide(
        &m,
        &observed(Download::Succeeded, Some(serving(&v2.key, true, true))),
        now(),
    );
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v2.key));
    assert_eq!(d.phase, Phase::Ready);
    assert_eq!(d.plan.volumes, vec![v2]);
}

#[test]
fn a_failed_update_keeps_the_old_version_and_drops_the_new_one() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = Version::of(&old.spec.source, &old.spec.runtime);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let failed = Download::Failed(fetch_problem(
        5,
        "berth-model-fetch: error: checksum mismatch",
        "s3://models/fraud/v2.onnx",
    ));
    let d = decide(
        &m,
        &observed(failed, Some(serving(&v1.key, true, true))),
        now(),
    );
    assert_eq!(d.phase, Phase::Ready);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.plan.volumes, vec![v1.clone()]);
    let failure = d.target_failed.clone();
    assert_eq!(
        failure.as_ref().map(|f| f.reason.as_str()),
        Some("ChecksumMismatch")
    );
    assert_eq!(failure.as_ref().and_then(|f| f.exit_code), Some(5));

    // Recorded, the failure holds once the Job is gone: no retry until the spec changes.
    let mut later = m.clone();
    if let Some(status) = later.status.as_mut() {
        status.last_failure = failure;
    }
    let d = decide(
        &later,
        &observed(Download::Absent, Some(serving(&v1.key, true, true))),
        now(),
    );
    assert!(d.target_failed.is_some());
    assert_eq!(d.plan.volumes, vec![v1.clone()]);
    later.metadata.generation = Some(2);
    let d = decide(
        &later,
        &observed(Download::Absent, Some(serving(&v1.key, true, true))),
        now(),
    );
    assert!(d.target_failed.is_none());
    assert_eq!(d.plan.volumes.len(), 2);
}

#[test]
fn a_crash_looping_rollout_rolls_back() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = Version::of(&old.spec.source, &old.spec.runtime);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let mut o = observed(
        Download::Succeeded,
        Some(Serving {
            template_version: Some(Version::of(&m.spec.source, &m.spec.runtime).key),
            replicas: 2,
            ready_replicas: 2,
            available: true,
            ..Default::default()
        }),
    );
    o.target_problem = Some(Problem {
        reason: "CrashLoop".into(),
        message: "crashing".into(),
        exit_code: Some(1),
    });
    let d = decide(&m, &o, now());
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.target_failed.map(|f| f.stage), Some("Rollout".to_owned()));
}

#[test]
fn a_first_version_that_fails_is_failed() {
    let m = model("https://example.com/model.onnx");
    let failed = Download::Failed(fetch_problem(3, "", "https://example.com/model.onnx"));
    let d = decide(&m, &observed(failed, None), now());
    assert_eq!(d.phase, Phase::Failed);
    assert_eq!(d.plan.volumes, vec![]);
    assert_eq!(
        d.last_failure.map(|f| f.reason),
        Some("SourceNotFound".to_owned())
    );
}

#[test]
fn an_existing_volume_is_served_without_a_download() -> Result<(), Error> {
    let m = model("pvc://shared-models/fraud/v3");
    let v = Version::of(&m.spec.source, &m.spec.runtime);
    assert_eq!(
        v.existing_volume(),
        Some(("shared-models".into(), "fraud/v3".into()))
    );
    let d = decide(&m, &observed(Download::NotNeeded, None), now());
    assert_eq!(d.phase, Phase::Deploying);
    let names: Vec<String> = kinds(&m, &d.plan)?.into_iter().map(|k| k.0).collect();
    assert_eq!(names, vec!["Deployment".to_owned(), "Service".to_owned()]);
    Ok(())
}

#[test]
fn exit_codes_name_their_failures() {
    let reasons: BTreeMap<i32, &str> = BTreeMap::from([
        (1, "DownloadFailed"),
        (2, "InvalidSource"),
        (3, "SourceNotFound"),
        (4, "AccessDenied"),
        (5, "ChecksumMismatch"),
        (6, "DeadlineExceeded"),
        (7, "NetworkError"),
        (8, "UnpackFailed"),
        (9, "DiskError"),
    ]);
    for (code, reason) in reasons {
        let p = fetch_problem(
            code,
            "berth-model-fetch: error: not found: s3://b/k does not exist",
            "s3://b/k",
        );
        assert_eq!(p.reason, reason);
        assert_eq!(p.exit_code, Some(code));
        assert!(p.message.contains("s3://b/k"));
    }
}

#[test]
fn durations_parse_as_the_crd_admits_them() {
    assert_eq!(parse_duration_seconds("90s"), Some(90));
    assert_eq!(parse_duration_seconds("1h30m"), Some(5400));
    assert_eq!(parse_duration_seconds("2h"), Some(7200));
    assert_eq!(parse_duration_seconds("10"), None);
    assert_eq!(parse_duration_seconds("5d"), None);
}

proptest! {
    /// Whatever the spec, a version key is 10 hex digits and names fit in a DNS label.
    #[test]
    fn names_are_valid(uri in "s3://[a-z]{3,20}/[a-z0-9/._-]{0,200}", name in "[a-z][a-z0-9-]{0,38}[a-z0-9]") {
        let source = ModelSource { uri, ..Default::default() };
        let v = Version::of(&source, &RuntimeSpec::default());
        prop_assert_eq!(v.key.len(), 10);
        prop_assert!(super::build::job_name(&name, &v.key).len() <= 63);
        prop_assert!(super::build::volume_name(&name, &v.key).len() <= 63);
    }
}
