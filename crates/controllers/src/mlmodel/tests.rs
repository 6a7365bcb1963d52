//! Unit tests of the pure parts: versions, the build, the rollout decision and exit codes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, MODEL};
use berth_api::mlmodel::{
    Autoscaling, CanarySpec, MLModel, MLModelSpec, MLModelStatus, ModelResources, ModelSettings,
    ModelSource, Phase, RuntimeName, RuntimeSpec, StorageSpec,
};
use berth_reconcile::Error;

use super::auth::Auth;
use super::build::{Environment, Plan, Version, build, download, parse_duration_seconds};
use super::host::Host;
use super::observe::{self, Download, Problem, Serving, fetch_problem, quota_problem};
use super::plan::{CanaryState, Observed, decide};

/// The default volume size (10Gi) in bytes: what archives may unpack to by default.
const TEN_GI: u64 = 10 * 1024 * 1024 * 1024;

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
            canary: None,
            auth: None,
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
        &Environment::default(),
        plan,
        &super::host::Host::None,
        Some(&Auth::None),
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
        serving,
        ..Default::default()
    }
}

/// The version `m`'s spec asks for under the default settings.
fn version(m: &MLModel) -> Version {
    Version::target(m, &ModelSettings::default())
}

/// The rollout decision for `m` (no canary).
fn decide_for(m: &MLModel, o: &Observed) -> super::plan::Decision {
    decide(m, &version(m), None, o, now())
}

/// A plan serving (when `serve`) and keeping `v`.
fn plan_of(v: &Version, serve: bool) -> Plan {
    Plan {
        serve: serve.then(|| v.clone()),
        volumes: vec![v.clone()],
        kept_jobs: BTreeMap::new(),
        autoscaled_replicas: None,
        canary: None,
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

/// The version covers what its objects cannot change: source, runtime and the volume (size,
/// class); replicas and resources are not part of it.
#[test]
fn the_version_is_the_source_runtime_and_volume() {
    let a = model("s3://models/fraud/model.onnx");
    let mut b = a.clone();
    b.spec.replicas = Some(5);
    b.spec.resources = Some(ModelResources {
        gpus: Some(1),
        ..Default::default()
    });
    let v = |m: &MLModel| version(m).key;
    assert_eq!(v(&a), v(&b));
    assert_eq!(v(&a).len(), 10);
    let mut c = a.clone();
    c.spec.source.uri = "s3://models/fraud/v2.onnx".into();
    assert_ne!(v(&a), v(&c));
    let mut d = a.clone();
    d.spec.runtime.name = RuntimeName::Triton;
    assert_ne!(v(&a), v(&d));
    // A claim's size cannot shrink and its class cannot change: either is a new volume.
    let mut e = a.clone();
    e.spec.storage = Some(berth_api::mlmodel::StorageSpec {
        size: Some("20Gi".into()),
        ..Default::default()
    });
    assert_ne!(v(&a), v(&e));
    let mut f = a.clone();
    f.spec.storage = Some(berth_api::mlmodel::StorageSpec {
        storage_class_name: Some("fast".into()),
        ..Default::default()
    });
    assert_ne!(v(&a), v(&f));
    // So is a new platform default size, for models that take the default.
    let bigger = ModelSettings {
        default_storage_size: "50Gi".into(),
        ..Default::default()
    };
    assert_ne!(v(&a), Version::target(&a, &bigger).key);
}

#[test]
fn a_new_model_downloads_first_and_serves_nothing_yet() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let d = decide_for(&m, &observed(Download::Absent, None));
    assert_eq!(d.phase, Phase::Pending);
    assert_eq!(d.plan.serve, None);
    let key = d.target.key.clone();
    assert_eq!(
        kinds(&m, &d.plan)?,
        vec![
            ("PersistentVolumeClaim".into(), format!("fraud-{key}")),
            (
                "Job".into(),
                super::build::download::job_name(
                    "fraud",
                    &ModelSettings::default(),
                    &d.target,
                    Some(TEN_GI)
                )
            ),
            ("Service".into(), "fraud".into()),
        ]
    );
    let running = decide_for(&m, &observed(Download::Running, None));
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
    let v = version(&m);
    let plan = plan_of(&v, true);
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &plan,
        &super::host::Host::None,
        Some(&Auth::None),
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
    let v = version(&m);
    let plan = plan_of(&v, false);
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &plan,
        &super::host::Host::None,
        Some(&Auth::None),
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
    // An archive may unpack to no more than the volume holds (10Gi by default).
    assert!(
        args.contains(&format!("--max-unpacked-bytes={TEN_GI}")),
        "{args:?}"
    );
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
    let v = version(&m);
    let plan = plan_of(&v, true);
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &plan,
        &super::host::Host::None,
        Some(&Auth::None),
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
    let v1 = version(&old);
    let mut m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    m.metadata.generation = Some(2);
    let v2 = version(&m);

    // Downloading: v1 serves, both volumes exist.
    let d = decide_for(
        &m,
        &observed(Download::Running, Some(serving(&v1.key, true, true))),
    );
    assert_eq!(d.phase, Phase::Updating);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.plan.volumes.len(), 2);
    assert!(d.ready);

    // Downloaded: the Deployment rolls to v2, v1 is still active.
    let d = decide_for(
        &m,
        &observed(Download::Succeeded, Some(serving(&v1.key, true, true))),
    );
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v2.key));
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.phase, Phase::Updating);

    // Rolling: v2 is the template but not everywhere yet.
    let d = decide_for(
        &m,
        &observed(Download::Succeeded, Some(serving(&v2.key, false, true))),
    );
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v1.key));
    assert!(d.ready, "the old replicas keep the Deployment available");

    // Rolled out: v2 is active and v1's volume goes.
    let d = decide_for(
        &m,
        &observed(Download::Succeeded, Some(serving(&v2.key, true, true))),
    );
    assert_eq!(d.active.as_ref().map(|v| &v.key), Some(&v2.key));
    assert_eq!(d.phase, Phase::Ready);
    assert_eq!(d.plan.volumes, vec![v2]);
}

#[test]
fn a_failed_update_keeps_the_old_version_and_drops_the_new_one() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = version(&old);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let failed = Download::Failed(fetch_problem(
        5,
        "berth-model-fetch: error: checksum mismatch",
        "s3://models/fraud/v2.onnx",
    ));
    let d = decide_for(&m, &observed(failed, Some(serving(&v1.key, true, true))));
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
    let d = decide_for(
        &later,
        &observed(Download::Absent, Some(serving(&v1.key, true, true))),
    );
    assert!(d.target_failed.is_some());
    assert_eq!(d.plan.volumes, vec![v1.clone()]);
    later.metadata.generation = Some(2);
    let d = decide_for(
        &later,
        &observed(Download::Absent, Some(serving(&v1.key, true, true))),
    );
    assert!(d.target_failed.is_none());
    assert_eq!(d.plan.volumes.len(), 2);
}

#[test]
fn a_crash_looping_rollout_rolls_back() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = version(&old);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let mut o = observed(
        Download::Succeeded,
        Some(Serving {
            template_version: Some(version(&m).key),
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
    let d = decide_for(&m, &o);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.target_failed.map(|f| f.stage), Some("Rollout".to_owned()));
}

#[test]
fn a_first_version_that_fails_is_failed() {
    let m = model("https://example.com/model.onnx");
    let failed = Download::Failed(fetch_problem(3, "", "https://example.com/model.onnx"));
    let d = decide_for(&m, &observed(failed, None));
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
    let v = version(&m);
    assert_eq!(
        v.existing_volume(),
        Some(("shared-models".into(), "fraud/v3".into()))
    );
    let d = decide_for(&m, &observed(Download::NotNeeded, None));
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
        (10, "ArchiveTooLarge"),
        (11, "InsecureRedirect"),
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

/// The children `built` holds, as (kind, name).
fn names_of(built: &super::build::Built) -> Vec<(String, String)> {
    built
        .children
        .iter()
        .map(|d| {
            (
                d.kind.resource.kind.clone(),
                d.object.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn child<T: serde::de::DeserializeOwned>(
    built: &super::build::Built,
    kind: &str,
    name: &str,
) -> Result<T, Error> {
    let desired = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == kind && d.object.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| Error::internal(format!("no {kind} {name}")))?;
    serde_json::from_value(
        serde_json::to_value(&desired.object).map_err(|e| Error::internal(e.to_string()))?,
    )
    .map_err(|e| Error::internal(e.to_string()))
}

/// Regression (a settings change froze every model): a new fetch image or default timeout
/// (a Berth upgrade) names a new download Job instead of asking the API server to change the
/// kept one, which it refuses with 422; the version (and so its volume) stays. Jobs and
/// claims are created only, never patched.
#[test]
fn a_settings_change_names_a_new_job_instead_of_changing_one() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let v = version(&m);
    let upgraded = ModelSettings {
        fetch_image: "berth.dev/model-fetch:9.9.9".into(),
        ..Default::default()
    };
    assert_eq!(Version::target(&m, &upgraded).key, v.key);
    let before = download::job_name("fraud", &ModelSettings::default(), &v, Some(TEN_GI));
    let after = download::job_name("fraud", &upgraded, &v, Some(TEN_GI));
    assert_ne!(before, after);
    let longer = ModelSettings {
        download_timeout_seconds: 7200,
        ..Default::default()
    };
    assert_ne!(
        before,
        download::job_name("fraud", &longer, &v, Some(TEN_GI))
    );

    let env = Environment::default();
    let built = build(
        &m,
        &upgraded,
        &env,
        &plan_of(&v, false),
        &Host::None,
        Some(&Auth::None),
    )?;
    assert!(names_of(&built).contains(&("Job".into(), after)));
    for child in &built.children {
        let immutable = matches!(
            child.kind.resource.kind.as_str(),
            "Job" | "PersistentVolumeClaim"
        );
        assert_eq!(child.create_only, immutable, "{}", child.kind.resource.kind);
    }
    // A version already downloaded keeps the Job that did it, whatever Berth would build now.
    let mut plan = plan_of(&v, true);
    plan.kept_jobs.insert(v.key.clone(), before.clone());
    let built = build(&m, &upgraded, &env, &plan, &Host::None, Some(&Auth::None))?;
    assert!(names_of(&built).contains(&("Job".into(), before)));
    Ok(())
}

/// Regression: switching from replicas to autoscaling kept the Deployment at one replica
/// until the HPA acted. Now the replicas running stay, within the autoscaler's bounds.
#[test]
fn switching_to_autoscaling_keeps_the_running_replicas() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let v = version(&m);
    let mut m = serving_model(m, &v);
    m.spec.replicas = None;
    m.spec.autoscaling = Some(Autoscaling {
        min_replicas: 1,
        max_replicas: 10,
        target_cpu_utilization: 70,
    });
    for (running, kept) in [(4, 4), (40, 10), (0, 1)] {
        let mut now_serving = serving(&v.key, true, true);
        now_serving.replicas = running;
        let d = decide_for(&m, &observed(Download::Succeeded, Some(now_serving)));
        assert_eq!(d.plan.autoscaled_replicas, Some(kept));
        let built = build(
            &m,
            &ModelSettings::default(),
            &Environment::default(),
            &d.plan,
            &Host::None,
            Some(&Auth::None),
        )?;
        let deployment: Deployment = child(&built, "Deployment", "fraud")?;
        assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(kept));
    }
    Ok(())
}

/// Regression: a quota that refused the download pod left the model waiting for its deadline.
/// The Job controller's FailedCreate message now fails the download at once, naming the
/// quota and what to change, and the old version keeps serving.
#[test]
fn a_quota_refusal_fails_the_download_and_names_the_quota() {
    let refusal = r#"pods "fraud-fetch-1-x" is forbidden: exceeded quota: berth-quota, requested: pods=1, used: pods=4, limited: pods=4"#;
    let p = quota_problem(refusal, "the download pod of s3://b/k")
        .unwrap_or_else(|| panic!("a quota refusal"));
    assert_eq!(p.reason, "QuotaExceeded");
    assert!(
        p.message.contains(
            "ResourceQuota berth-quota refuses the download pod of s3://b/k: it asks for pods=1, with pods=4 in use of pods=4"
        ),
        "{}",
        p.message
    );
    assert!(p.message.contains("spec.quota"), "{}", p.message);
    assert!(quota_problem("pods is forbidden: violates PodSecurity", "x").is_none());

    let job = Job::default();
    let failed = observe::download(Some(&job), &[], Some(refusal), "s3://b/k", "1h");
    assert!(
        matches!(&failed, Download::Failed(p) if p.reason == "QuotaExceeded"),
        "{failed:?}"
    );
    // Without a refusal the Job only waits for its pod.
    assert!(matches!(
        observe::download(Some(&job), &[], None, "s3://b/k", "1h"),
        Download::Waiting(_)
    ));

    let old = model("s3://models/fraud/v1.onnx");
    let v1 = version(&old);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let d = decide_for(&m, &observed(failed, Some(serving(&v1.key, true, true))));
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(
        d.target_failed.map(|f| f.reason),
        Some("QuotaExceeded".to_owned())
    );
    assert_eq!(d.phase, Phase::Ready);
}

/// A quota that refuses the new version's replicas fails the rollout with the quota's name.
#[test]
fn a_quota_refusing_replicas_fails_the_rollout() {
    let old = model("s3://models/fraud/v1.onnx");
    let v1 = version(&old);
    let m = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    let mut rolling = serving(&version(&m).key, false, true);
    rolling.replica_failure = Some(
        "pods \"fraud-x\" is forbidden: exceeded quota: team-limits, requested: requests.cpu=2, used: requests.cpu=3, limited: requests.cpu=4".into(),
    );
    let d = decide_for(&m, &observed(Download::Succeeded, Some(rolling)));
    let failure = d
        .target_failed
        .unwrap_or_else(|| panic!("the rollout should fail"));
    assert_eq!(failure.reason, "QuotaExceeded");
    assert_eq!(failure.stage, "Rollout");
    assert!(
        failure.message.contains("ResourceQuota team-limits"),
        "{}",
        failure.message
    );
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
}

/// Regression: replicas on a ReadWriteOnce volume spread over nodes failed only at the rollout
/// deadline. Several replicas of one version now share a node (required pod affinity).
#[test]
fn replicas_on_a_read_write_once_volume_share_a_node() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let v = version(&m);
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &plan_of(&v, true),
        &Host::None,
        Some(&Auth::None),
    )?;
    let deployment: Deployment = child(&built, "Deployment", "fraud")?;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    let term = pod
        .affinity
        .and_then(|a| a.pod_affinity)
        .and_then(|a| a.required_during_scheduling_ignored_during_execution)
        .unwrap_or_default();
    assert_eq!(term.len(), 1);
    assert_eq!(term[0].topology_key, "kubernetes.io/hostname");
    let labels = term[0]
        .label_selector
        .clone()
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    assert_eq!(labels.get("berth.dev/version"), Some(&v.key));

    // ReadWriteMany volumes, and a single replica, need no such rule.
    let rwx = ModelSettings {
        volume_access_mode: "ReadWriteMany".into(),
        ..Default::default()
    };
    let v = Version::target(&m, &rwx);
    let built = build(
        &m,
        &rwx,
        &Environment::default(),
        &plan_of(&v, true),
        &Host::None,
        Some(&Auth::None),
    )?;
    let deployment: Deployment = child(&built, "Deployment", "fraud")?;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    assert!(pod.affinity.is_none());
    Ok(())
}

/// Regression: /metrics was served on the model's public port. The model server's metrics
/// port is in the pod only; the Service forwards the http port alone.
#[test]
fn metrics_are_not_behind_the_service() -> Result<(), Error> {
    let m = model("s3://models/fraud/model.onnx");
    let v = version(&m);
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &plan_of(&v, true),
        &Host::None,
        Some(&Auth::None),
    )?;
    let deployment: Deployment = child(&built, "Deployment", "fraud")?;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--metrics-addr=0.0.0.0:9090".to_owned()),
        "{args:?}"
    );
    let ports: Vec<(Option<String>, i32)> = container
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.container_port))
        .collect();
    assert_eq!(
        ports,
        vec![
            (Some("http".into()), 8080),
            (Some("metrics".into()), 9090),
            (Some("grpc".into()), 9000)
        ]
    );
    assert!(
        args.contains(&"--grpc-addr=0.0.0.0:9000".to_owned()),
        "{args:?}"
    );
    let service: k8s_openapi::api::core::v1::Service = child(&built, "Service", "fraud")?;
    let targets: Vec<String> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| match p.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => Some(s),
            _ => None,
        })
        .collect();
    // The API over REST and over gRPC (same auth and limits), never the metrics port.
    assert_eq!(targets, vec!["http".to_owned(), "grpc".to_owned()]);
    Ok(())
}

fn canary_model(weight: i32) -> (MLModel, Version, Version) {
    let m = model("s3://models/fraud/v1.onnx");
    let v1 = version(&m);
    let mut m = serving_model(m, &v1);
    m.spec.canary = Some(CanarySpec {
        source: Some(ModelSource {
            uri: "s3://models/fraud/v2.onnx".into(),
            ..Default::default()
        }),
        runtime: None,
        weight,
    });
    let canary = Version::canary(&m, &ModelSettings::default())
        .unwrap_or_else(|| panic!("the spec has a canary"));
    (m, v1, canary)
}

/// A canary downloads beside the serving version, then runs as a Deployment of its own whose
/// replicas make its share behind the one Service; its readiness makes CanaryReady.
#[test]
fn a_canary_runs_beside_the_stable_version() -> Result<(), Error> {
    let (mut m, v1, canary) = canary_model(20);
    m.spec.replicas = Some(4);
    let mut o = observed(Download::Succeeded, Some(serving(&v1.key, true, true)));
    o.canary.download = Download::Running;
    let d = decide(&m, &v1, Some(&canary), &o, now());
    let state = d.canary.as_ref().map(|c| c.state.clone());
    assert_eq!(state, Some(CanaryState::Downloading));
    assert!(d.plan.canary.is_none());
    assert!(d.plan.volumes.iter().any(|v| v.key == canary.key));
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));

    o.canary.download = Download::Succeeded;
    let d = decide(&m, &v1, Some(&canary), &o, now());
    assert_eq!(
        d.canary.as_ref().map(|c| c.state.clone()),
        Some(CanaryState::Deploying)
    );
    // 4 stable replicas and 20 %: one canary replica, a fifth of the endpoints.
    assert_eq!(d.plan.canary.as_ref().map(|c| c.replicas), Some(1));
    let built = build(
        &m,
        &ModelSettings::default(),
        &Environment::default(),
        &d.plan,
        &Host::None,
        Some(&Auth::None),
    )?;
    assert_eq!(built.canary_split, Some(("replicas".to_owned(), 20)));
    let name = crate::names::kube::model_canary("fraud");
    let deployment: Deployment = child(&built, "Deployment", &name)?;
    let spec = deployment.spec.unwrap_or_default();
    assert_eq!(spec.replicas, Some(1));
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(
        labels.get("berth.dev/track").map(String::as_str),
        Some("canary")
    );
    assert_eq!(labels.get("berth.dev/version"), Some(&canary.key));
    // One Service selects both tracks.
    let service: k8s_openapi::api::core::v1::Service = child(&built, "Service", "fraud")?;
    let selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
    assert!(!selector.contains_key("berth.dev/track"), "{selector:?}");

    o.canary.serving = Some(serving(&canary.key, true, true));
    let d = decide(&m, &v1, Some(&canary), &o, now());
    assert_eq!(d.canary.map(|c| c.state), Some(CanaryState::Ready));
    Ok(())
}

/// A version asked for again while its old volume is still being deleted (a canary of the
/// version a promote just replaced, its pods still draining) gets no volume, Job or replicas
/// until the volume is gone: they would wait on a claim about to vanish. The stable version
/// serves meanwhile, and nothing counts as a failure.
#[test]
fn a_version_whose_old_volume_is_being_deleted_waits_for_it() {
    let (m, v1, canary) = canary_model(20);
    let waiting = Download::Waiting("the volume is still being deleted".into());
    let mut o = observed(Download::Succeeded, Some(serving(&v1.key, true, true)));
    o.canary.download = waiting.clone();
    o.volumes_deleting.insert(canary.key.clone());
    let d = decide(&m, &v1, Some(&canary), &o, now());
    assert_eq!(
        d.canary.as_ref().map(|c| c.state.clone()),
        Some(CanaryState::Downloading)
    );
    assert!(d.plan.canary.is_none());
    assert_eq!(d.plan.volumes, vec![v1.clone()]);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.phase, Phase::Ready);

    // The same for the spec's own version (a quick switch back to a version just replaced).
    let mut back = serving_model(model("s3://models/fraud/v2.onnx"), &v1);
    back.metadata.generation = Some(3);
    let v2 = version(&back);
    let mut o = observed(waiting, Some(serving(&v1.key, true, true)));
    o.volumes_deleting.insert(v2.key.clone());
    let d = decide_for(&back, &o);
    assert_eq!(d.plan.volumes, vec![v1.clone()]);
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));
    assert_eq!(d.phase, Phase::Updating);
    assert!(d.target_failed.is_none());

    // Once it is gone, the version gets its volume again.
    o.volumes_deleting.clear();
    o.target_download = Download::Absent;
    let d = decide_for(&back, &o);
    assert!(d.plan.volumes.iter().any(|v| v.key == v2.key));
}

/// A canary whose replicas crash is rolled back by Berth, with the reason, and is not tried
/// again until the spec changes; the stable version keeps serving throughout.
#[test]
fn a_failing_canary_rolls_back_by_itself() {
    let (m, v1, canary) = canary_model(20);
    let mut o = observed(Download::Succeeded, Some(serving(&v1.key, true, true)));
    o.canary.download = Download::Succeeded;
    o.canary.serving = Some(serving(&canary.key, false, false));
    o.canary.problem = Some(Problem {
        reason: "CrashLoop".into(),
        message: "the model server keeps crashing".into(),
        exit_code: Some(1),
    });
    let d = decide(&m, &v1, Some(&canary), &o, now());
    let Some(CanaryState::RolledBack(failure)) = d.canary.map(|c| c.state) else {
        panic!("the canary should be rolled back");
    };
    assert_eq!(failure.reason, "CrashLoop");
    assert_eq!(failure.stage, "Canary");
    assert!(d.plan.canary.is_none(), "no canary Deployment any more");
    assert!(!d.plan.volumes.iter().any(|v| v.key == canary.key));
    assert_eq!(d.plan.serve.as_ref().map(|v| &v.key), Some(&v1.key));

    // Recorded in the status, it holds once its pods are gone: no retry of the same spec.
    let mut later = m.clone();
    if let Some(status) = later.status.as_mut() {
        status.canary = Some(berth_api::mlmodel::CanaryStatus {
            version: canary.key.clone(),
            failure: Some(failure),
            ..Default::default()
        });
    }
    let fresh = observed(Download::Succeeded, Some(serving(&v1.key, true, true)));
    let d = decide(&later, &v1, Some(&canary), &fresh, now());
    assert!(matches!(
        d.canary.map(|c| c.state),
        Some(CanaryState::RolledBack(_))
    ));
    later.metadata.generation = Some(2);
    let d = decide(&later, &v1, Some(&canary), &fresh, now());
    assert_eq!(d.canary.map(|c| c.state), Some(CanaryState::Downloading));
}

/// With gateway exposure the route weighs a Service per track by the canary's weight.
#[test]
fn a_routed_canary_splits_by_route_weights() -> Result<(), Error> {
    let (mut m, v1, canary) = canary_model(20);
    m.spec.expose = Some(berth_api::mlmodel::ExposeSpec {
        mode: berth_api::mlmodel::ExposeMode::Gateway,
        ..Default::default()
    });
    let settings = ModelSettings {
        gateway: Some(berth_api::mlmodel::GatewayRef {
            name: "platform".into(),
            namespace: "gateways".into(),
            section_name: None,
        }),
        ..Default::default()
    };
    let env = Environment {
        http_route: Some(crate::discovery::HTTP_ROUTE.at("v1")),
        virtual_service: None,
    };
    let mut o = observed(Download::Succeeded, Some(serving(&v1.key, true, true)));
    o.canary.download = Download::Succeeded;
    let d = decide(&m, &v1, Some(&canary), &o, now());
    let host = Host::Granted("fraud.team.models.example".into());
    let built = build(&m, &settings, &env, &d.plan, &host, Some(&Auth::None))?;
    assert_eq!(built.canary_split, Some(("HTTPRoute".to_owned(), 20)));
    let route = built
        .children
        .iter()
        .find(|c| c.kind.resource.kind == "HTTPRoute")
        .ok_or_else(|| Error::internal("no HTTPRoute"))?;
    let backends = route.object.data["spec"]["rules"][0]["backendRefs"].clone();
    assert_eq!(
        backends,
        serde_json::json!([
            {"name": crate::names::kube::model_stable("fraud"), "port": 80, "weight": 80},
            {"name": crate::names::kube::model_canary("fraud"), "port": 80, "weight": 20},
        ])
    );
    Ok(())
}

proptest! {
    /// Whatever the spec, a version key is 10 hex digits and names fit in a DNS label.
    #[test]
    fn names_are_valid(uri in "s3://[a-z]{3,20}/[a-z0-9/._-]{0,200}", name in "[a-z][a-z0-9-]{0,38}[a-z0-9]") {
        let source = ModelSource { uri, ..Default::default() };
        let volume = super::build::VolumeSpec {
            size: "10Gi".into(),
            storage_class_name: None,
            access_mode: "ReadWriteOnce".into(),
        };
        let v = Version::of(&source, &RuntimeSpec::default(), &volume);
        prop_assert_eq!(v.key.len(), 10);
        let job = super::build::download::job_name(&name, &ModelSettings::default(), &v, Some(TEN_GI));
        prop_assert!(job.len() <= 63, "{}", job);
        prop_assert!(super::build::volume_name(&name, &v.key).len() <= 63);
    }
}

/// Regression (a tar or zip bomb filled the volume and failed as a retried disk error): the
/// download Job is told the volume's size as the most an archive may unpack to, so
/// berth-model-fetch refuses the bomb with its own exit code when it reaches it. A new size is a
/// new volume, so a new version and a new Job.
#[test]
fn archives_unpack_to_at_most_the_volume_size() {
    use super::build::VolumeSpec;
    let volume = |size: &str| VolumeSpec {
        size: size.into(),
        storage_class_name: None,
        access_mode: "ReadWriteOnce".into(),
    };
    assert_eq!(download::unpack_limit(&volume("10Gi")), Some(TEN_GI));
    assert_eq!(download::unpack_limit(&volume("1G")), Some(1_000_000_000));
    assert_eq!(
        download::unpack_limit(&volume("1500Mi")),
        Some(1500 * 1024 * 1024)
    );
    assert_eq!(download::unpack_limit(&volume("not a size")), None);
    assert_eq!(download::unpack_limit(&volume("0")), None);

    let mut m = model("s3://models/fraud/model.tar.gz");
    m.spec.storage = Some(StorageSpec {
        size: Some("2Gi".into()),
        ..Default::default()
    });
    let settings = ModelSettings::default();
    let v = Version::target(&m, &settings);
    let job = download::job_for(
        "fraud",
        &settings,
        &v,
        download::unpack_limit(&VolumeSpec::of(&m, &settings)),
    );
    let args = job
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.contains(&format!("--max-unpacked-bytes={}", 2u64 << 30)),
        "{args:?}"
    );
    assert_ne!(
        download::job_name("fraud", &settings, &v, Some(2 << 30)),
        download::job_name("fraud", &settings, &v, Some(TEN_GI)),
        "the limit is part of what names the Job"
    );
}
