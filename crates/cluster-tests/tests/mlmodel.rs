//! The MLModel controller end to end: the real control plane, the operator as a real process under
//! its shipped RBAC, a real MinIO, and the real berth-model-fetch doing every download (see
//! `mlmodel/runtime.rs` for what the test plays in place of a kubelet and a storage
//! provisioner). One control plane for the binary; each test uses a namespace of its own.

#[path = "mlmodel/auth.rs"]
mod auth;
#[path = "mlmodel/runtime.rs"]
mod runtime;
#[path = "mlmodel/s3.rs"]
mod s3;
#[path = "mlmodel/serving.rs"]
mod serving;
#[allow(dead_code)]
#[path = "cluster/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use berth_api::conditions;
use berth_api::mlmodel::{MLModel, MLModelSpec, Phase};

use s3::{BUCKET, S3};
use support::eventually;

/// One test's world: an admin client, a namespace with the project storage Secret, the S3.
struct World {
    client: Client,
    ns: String,
    s3: S3,
}

/// The Istio gateway and model domain the platform settings name in these tests.
const ISTIO_GATEWAY: &str = "istio-system/models";
const DOMAIN: &str = "models.example.com";

/// Before the operator starts (it looks for route kinds once): Istio's real CRDs (the pinned
/// istio.io/api module) are installed, the Gateway API's are not, and the platform settings name
/// an Istio gateway and a model domain.
fn platform() -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let run = || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (_, client) = support::admin().await?;
                let binaries = berth_testenv::Binaries::locate()?;
                berth_testenv::manifests::apply_dirs(&client, &[binaries.istio_crds_dir()]).await?;
                let settings: Api<berth_api::PlatformSettings> = Api::all(client);
                let models =
                    json!({"spec": {"models": {"istioGateway": ISTIO_GATEWAY, "domain": DOMAIN}}});
                settings
                    .patch("default", &PatchParams::default(), &Patch::Merge(&models))
                    .await?;
                Ok(())
            })
        };
        std::thread::spawn(run)
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("preparing the platform panicked")))
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}

async fn world(prefix: &str) -> Result<World> {
    platform()?;
    let (_, client) = support::with_operator().await?;
    runtime::start()?;
    let s3 = s3::s3()?;
    let ns = support::project_namespace(&client, prefix).await?;
    s3.secret(&client, &ns, "berth-storage", &s3.secret_key.clone())
        .await?;
    // What a Project makes for its models' default auth (kubernetes, without an identity
    // provider): the account their servers run as. These namespaces have no Project.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "berth-model-auth"}}))?,
        )
        .await?;
    Ok(World { client, ns, s3 })
}

impl World {
    fn models(&self) -> Api<MLModel> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Puts a model file into the bucket under this test's namespace; returns its URI and sha256.
    async fn upload(&self, path: &str, body: &[u8]) -> Result<(String, String)> {
        let key = format!("{}/{path}", self.ns);
        self.s3.put(&key, body).await?;
        Ok((format!("s3://{BUCKET}/{key}"), hex(&Sha256::digest(body))))
    }

    async fn create(&self, name: &str, spec: Value) -> Result<MLModel> {
        let spec: MLModelSpec = serde_json::from_value(spec)?;
        Ok(self
            .models()
            .create(&PostParams::default(), &MLModel::new(name, spec))
            .await?)
    }

    async fn patch_spec(&self, name: &str, spec: Value) -> Result<()> {
        self.models()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    /// Waits until the model's status satisfies `check`.
    async fn until(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&MLModel) -> bool,
    ) -> Result<MLModel> {
        let models = self.models();
        let result = eventually(what, timeout, || async {
            let model = models.get(name).await?;
            Ok(check(&model).then_some(model))
        })
        .await;
        if result.is_err() {
            let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &self.ns,
                &kube::api::ApiResource::erase::<MLModel>(&()),
            );
            if let Ok(model) = raw.get(name).await {
                eprintln!(
                    "{name} at the time out: {}",
                    serde_json::to_string_pretty(&model.data).unwrap_or_default()
                );
            }
        }
        result
    }

    async fn names<K>(&self, label: &str) -> Result<Vec<String>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(api
            .list(&ListParams::default().labels(label))
            .await?
            .items
            .into_iter()
            .filter(|o| o.meta().deletion_timestamp.is_none())
            .map(|o| o.name_any())
            .collect())
    }
}

/// Whether `jobs` is exactly one download Job of `model`'s version `key`
/// (`<model>-fetch-<key>-<inputs>`).
fn only_job_of(jobs: &[String], model: &str, key: &str) -> bool {
    let prefix = format!("{model}-fetch-{key}-");
    jobs.len() == 1 && jobs[0].starts_with(&prefix) && jobs[0].len() == prefix.len() + 5
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn phase(model: &MLModel) -> Option<Phase> {
    model.status.as_ref().and_then(|s| s.phase)
}

fn condition(model: &MLModel, type_: &str) -> Option<(String, String)> {
    let status = model.status.as_ref()?;
    conditions::get(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

fn is_true(model: &MLModel, type_: &str) -> bool {
    model
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, type_))
}

fn failure_reason(model: &MLModel) -> Option<String> {
    model
        .status
        .as_ref()?
        .last_failure
        .as_ref()
        .map(|f| f.reason.clone())
}

fn active(model: &MLModel) -> Option<String> {
    model.status.as_ref()?.active_version.clone()
}

fn target(model: &MLModel) -> Option<String> {
    model.status.as_ref()?.target_version.clone()
}

/// Bytes that stand for a model file.
fn model_bytes(tag: &str, len: usize) -> Vec<u8> {
    tag.bytes().cycle().take(len).collect()
}

#[tokio::test]
async fn a_model_is_downloaded_served_and_updated_without_downtime() -> Result<()> {
    let w = world("mlm-happy").await?;
    let v1 = model_bytes("model-v1;", 256 * 1024);
    let (uri1, sha1) = w.upload("fraud/v1/model.onnx", &v1).await?;
    w.create(
        "fraud",
        json!({"source": {"uri": uri1, "sha256": sha1}, "replicas": 2}),
    )
    .await?;

    // The phases, as a user watching `kubectl get mlm` sees them.
    let mut seen: Vec<Phase> = Vec::new();
    let models = w.models();
    let started = Instant::now();
    let ready = loop {
        let model = models.get("fraud").await?;
        if let Some(p) = phase(&model)
            && seen.last() != Some(&p)
        {
            seen.push(p);
        }
        if phase(&model) == Some(Phase::Ready) {
            break model;
        }
        if started.elapsed() > Duration::from_secs(40) {
            bail!(
                "not Ready within 40 s; phases {seen:?}, status {:?}",
                model.status
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "phases: {seen:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(seen.contains(&Phase::Downloading), "{seen:?}");
    assert!(seen.contains(&Phase::Deploying), "{seen:?}");
    assert!(!seen.contains(&Phase::Failed), "{seen:?}");
    let status = ready.status.clone().unwrap_or_default();
    let v1_key = status.active_version.clone().context("no activeVersion")?;
    assert_eq!(status.target_version.as_deref(), Some(v1_key.as_str()));
    assert_eq!(
        status.url.as_deref(),
        Some(format!("http://fraud.{}.svc.cluster.local", w.ns).as_str())
    );
    for type_ in ["Downloaded", "Available", "Ready"] {
        let c = conditions::get(&status.conditions, type_).context(type_)?;
        assert_eq!(c.status, "True", "{type_}: {c:?}");
        assert_eq!(c.observed_generation, ready.metadata.generation);
    }

    // The real berth-model-fetch put the model into the version's volume.
    let file = runtime::volume_dir(&w.ns, &format!("fraud-{v1_key}")).join("model.onnx");
    assert_eq!(std::fs::read(&file)?, v1, "{}", file.display());

    // Ready came from the Deployment: every replica of the active version is available.
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), &w.ns);
    let deployment = deployments.get("fraud").await?;
    let dstatus = deployment.status.clone().unwrap_or_default();
    assert_eq!(dstatus.available_replicas, Some(2));
    let spec = deployment.spec.clone().unwrap_or_default();
    let rolling = spec
        .strategy
        .and_then(|s| s.rolling_update)
        .unwrap_or_default();
    assert_eq!(
        rolling.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
    );

    // Every child carries the labels and a controller reference to the model.
    let uid = ready.uid().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(w.client.clone(), &w.ns);
    let job = jobs
        .list(
            &ListParams::default()
                .labels(&format!("berth.dev/model=fraud,berth.dev/version={v1_key}")),
        )
        .await?
        .items
        .into_iter()
        .next()
        .context("no download Job of the first version")?;
    let job_spec = job.spec.clone().unwrap_or_default();
    assert!(job_spec.active_deadline_seconds.is_some());
    assert_eq!(job_spec.backoff_limit, Some(2));
    assert_eq!(job_spec.ttl_seconds_after_finished, None);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(w.client.clone(), &w.ns);
    let services: Api<Service> = Api::namespaced(w.client.clone(), &w.ns);
    let metas = vec![
        job.metadata.clone(),
        claims.get(&format!("fraud-{v1_key}")).await?.metadata,
        deployment.metadata.clone(),
        services.get("fraud").await?.metadata,
    ];
    for meta in metas {
        let labels = meta.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("berth.dev/model").map(String::as_str),
            Some("fraud")
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("berth")
        );
        assert!(
            meta.owner_references
                .unwrap_or_default()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true)),
            "{:?} has no controller reference to the model",
            meta.name
        );
    }

    // An update: sample the Service's ready endpoints and the Ready condition all along.
    let v2 = model_bytes("model-v2;", 300 * 1024);
    let (uri2, sha2) = w.upload("fraud/v2/model.onnx", &v2).await?;
    let done = Arc::new(AtomicBool::new(false));
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let ready_dropped = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, fewest, ready_dropped) = (done.clone(), fewest.clone(), ready_dropped.clone());
        let slices: Api<EndpointSlice> = Api::namespaced(w.client.clone(), &w.ns);
        let models = w.models();
        tokio::spawn(async move {
            let selector = ListParams::default().labels("kubernetes.io/service-name=fraud");
            while !done.load(Ordering::Relaxed) {
                if let Ok(list) = slices.list(&selector).await {
                    let ready = list
                        .items
                        .iter()
                        .flat_map(|s| s.endpoints.iter().flatten())
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                        .count();
                    fewest.fetch_min(ready, Ordering::Relaxed);
                }
                if let Ok(model) = models.get("fraud").await
                    && !is_true(&model, "Ready")
                {
                    ready_dropped.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    w.patch_spec("fraud", json!({"source": {"uri": uri2, "sha256": sha2}}))
        .await?;
    let mut phases: Vec<Phase> = Vec::new();
    let started = Instant::now();
    let updated = loop {
        let model = models.get("fraud").await?;
        if let Some(p) = phase(&model)
            && phases.last() != Some(&p)
        {
            phases.push(p);
        }
        let t = target(&model);
        if t.is_some()
            && t.as_deref() != Some(v1_key.as_str())
            && active(&model) == t
            && phase(&model) == Some(Phase::Ready)
        {
            break model;
        }
        if started.elapsed() > Duration::from_secs(40) {
            bail!(
                "the update did not finish within 40 s; phases {phases:?}, status {:?}",
                model.status
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let v2_key = active(&updated).context("no active version")?;
    eprintln!(
        "update phases: {phases:?} in {:.1} s; fewest ready endpoints {}",
        started.elapsed().as_secs_f64(),
        fewest.load(Ordering::Relaxed)
    );
    assert!(phases.contains(&Phase::Updating), "{phases:?}");
    assert!(
        !ready_dropped.load(Ordering::Relaxed),
        "Ready went False during the update"
    );
    assert!(
        fewest.load(Ordering::Relaxed) >= 1,
        "the Service lost its endpoints"
    );
    let file = runtime::volume_dir(&w.ns, &format!("fraud-{v2_key}")).join("model.onnx");
    assert_eq!(std::fs::read(&file)?, v2);

    // The old version's volume and Job go once the new one is active.
    eventually(
        "the old version's volume and Job to go",
        Duration::from_secs(20),
        || async {
            let claims = w
                .names::<PersistentVolumeClaim>("berth.dev/model=fraud")
                .await?;
            let jobs = w.names::<Job>("berth.dev/model=fraud").await?;
            Ok(
                (claims == vec![format!("fraud-{v2_key}")] && only_job_of(&jobs, "fraud", &v2_key))
                    .then_some(()),
            )
        },
    )
    .await?;

    // Nothing changed, nothing written: a steady model causes no writes.
    let fetch = w
        .names::<Job>("berth.dev/model=fraud")
        .await?
        .pop()
        .context("no download Job")?;
    let before = (
        models.get("fraud").await?.resource_version(),
        deployments.get("fraud").await?.resource_version(),
        jobs.get(&fetch).await?.resource_version(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = (
        models.get("fraud").await?.resource_version(),
        deployments.get("fraud").await?.resource_version(),
        jobs.get(&fetch).await?.resource_version(),
    );
    assert_eq!(before, after, "a steady model was written to");
    Ok(())
}

#[tokio::test]
async fn a_failed_update_leaves_the_old_version_serving() -> Result<()> {
    let w = world("mlm-degraded").await?;
    let v1 = model_bytes("churn-v1;", 64 * 1024);
    let (uri, sha) = w.upload("churn/model.onnx", &v1).await?;
    // Open (auth none): the crash below swaps the onnx runtime's image, which a model that
    // checks callers may not do (its server is what checks them).
    w.create(
        "churn",
        json!({"source": {"uri": uri, "sha256": sha}, "auth": {"mode": "none"}}),
    )
    .await?;
    let ready = w
        .until("churn", "churn to be Ready", Duration::from_secs(40), |m| {
            phase(m) == Some(Phase::Ready)
        })
        .await?;
    let v1_key = active(&ready).context("no active version")?;

    // A wrong checksum: the real berth-model-fetch refuses the download (exit code 5).
    let wrong = "0".repeat(64);
    let began = Instant::now();
    w.patch_spec("churn", json!({"source": {"sha256": wrong}}))
        .await?;
    let degraded = w
        .until(
            "churn",
            "churn to be Degraded by the checksum",
            Duration::from_secs(30),
            |m| is_true(m, "Degraded") && failure_reason(m).as_deref() == Some("ChecksumMismatch"),
        )
        .await?;
    eprintln!(
        "checksum mismatch surfaced in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let status = degraded.status.clone().unwrap_or_default();
    let failure = status.last_failure.clone().context("no lastFailure")?;
    assert_eq!(failure.exit_code, Some(5));
    assert!(failure.message.contains("sha256"), "{}", failure.message);
    assert_eq!(status.active_version.as_deref(), Some(v1_key.as_str()));
    assert_eq!(status.phase, Some(Phase::Ready));
    assert!(is_true(&degraded, "Ready"));
    assert_eq!(
        condition(&degraded, "Downloaded").map(|c| c.1),
        Some("ChecksumMismatch".to_owned())
    );
    let failed_key = status.target_version.clone().context("no target")?;
    // The failed version's Job and volume are removed; the old ones stay.
    eventually(
        "the failed version's Job and volume to go",
        Duration::from_secs(20),
        || async {
            let claims = w
                .names::<PersistentVolumeClaim>("berth.dev/model=churn")
                .await?;
            let jobs = w.names::<Job>("berth.dev/model=churn").await?;
            Ok(
                (claims == vec![format!("churn-{v1_key}")] && only_job_of(&jobs, "churn", &v1_key))
                    .then_some(()),
            )
        },
    )
    .await?;
    assert_ne!(failed_key, v1_key);

    // A runtime image that crashes: the download works, the rollout does not, and the
    // Deployment goes back to the version that works.
    let began = Instant::now();
    w.patch_spec(
        "churn",
        json!({"source": {"sha256": sha}, "runtime": {"image": "crashloop.invalid/model-server:1"}}),
    )
    .await?;
    let crashed = w
        .until(
            "churn",
            "churn to be Degraded by a crash loop",
            Duration::from_secs(40),
            |m| is_true(m, "Degraded") && failure_reason(m).as_deref() == Some("CrashLoop"),
        )
        .await?;
    eprintln!(
        "crash loop surfaced in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert_eq!(active(&crashed).as_deref(), Some(v1_key.as_str()));
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), &w.ns);
    eventually(
        "the Deployment to run the old version again, available",
        Duration::from_secs(20),
        || async {
            let d = deployments.get("churn").await?;
            let version = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref())
                .and_then(|l| l.get("berth.dev/version").cloned());
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            Ok((version.as_deref() == Some(v1_key.as_str()) && available >= 1).then_some(()))
        },
    )
    .await?;
    let model = w.models().get("churn").await?;
    assert!(is_true(&model, "Ready"));
    Ok(())
}

/// A TCP listener that accepts connections and never answers: a source that hangs.
async fn silent_server() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(port)
}

#[tokio::test]
async fn each_failure_has_its_own_reason_within_seconds() -> Result<()> {
    let w = world("mlm-fail").await?;
    let body = model_bytes("ok;", 16 * 1024);
    let (uri, _) = w.upload("present/model.onnx", &body).await?;
    w.s3.secret(&w.client, &w.ns, "wrong-key", "not-the-secret-key")
        .await?;
    let port = silent_server().await?;
    let missing = format!("s3://{BUCKET}/{}/absent/model.onnx", w.ns);
    let cases: Vec<(&str, Value, &str, Option<i32>)> = vec![
        (
            "not-found",
            json!({"source": {"uri": missing}}),
            "SourceNotFound",
            Some(3),
        ),
        (
            "denied",
            json!({"source": {"uri": uri, "secretName": "wrong-key"}}),
            "AccessDenied",
            Some(4),
        ),
        (
            "hangs",
            json!({"source": {"uri": format!("https://127.0.0.1:{port}/model.onnx"), "timeout": "3s"}}),
            "DeadlineExceeded",
            None,
        ),
        (
            "no-image",
            json!({"source": {"uri": uri}, "runtime": {"name": "custom", "image": "example.invalid/server:1", "port": 9000}}),
            "ImagePullFailed",
            None,
        ),
        (
            "too-big",
            json!({"source": {"uri": uri}, "resources": {"gpus": 8}}),
            "Unschedulable",
            None,
        ),
    ];
    let began = Instant::now();
    for (name, spec, _, _) in &cases {
        w.create(name, spec.clone()).await?;
    }
    let mut timings = Vec::new();
    for (name, _, reason, exit_code) in &cases {
        let model = w
            .until(
                name,
                &format!("{name} to fail with {reason}"),
                Duration::from_secs(40),
                |m| phase(m) == Some(Phase::Failed),
            )
            .await?;
        timings.push(format!("{name}: {:.1} s", began.elapsed().as_secs_f64()));
        let status = model.status.clone().unwrap_or_default();
        let failure = status.last_failure.clone().context("no lastFailure")?;
        assert_eq!(&failure.reason, reason, "{name}: {}", failure.message);
        if exit_code.is_some() {
            assert_eq!(failure.exit_code, *exit_code, "{name}");
        }
        assert!(!failure.message.is_empty());
        assert_eq!(
            condition(&model, "Ready").map(|c| c.1),
            Some((*reason).to_owned())
        );
        assert!(!is_true(&model, "Ready"));
    }
    eprintln!("failures surfaced after: {}", timings.join(", "));
    // Failed versions leave no Job or volume behind.
    eventually(
        "failed versions' Jobs and volumes to go",
        Duration::from_secs(20),
        || async {
            let claims = w
                .names::<PersistentVolumeClaim>("app.kubernetes.io/managed-by=berth")
                .await?;
            let jobs = w.names::<Job>("app.kubernetes.io/managed-by=berth").await?;
            Ok((claims.is_empty() && jobs.is_empty()).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_model_leaves_nothing_behind() -> Result<()> {
    let w = world("mlm-delete").await?;
    let (uri, _) = w
        .upload("gone/model.onnx", &model_bytes("gone;", 8 * 1024))
        .await?;
    // Exposure through a Gateway, in a cluster without the Gateway API: the model still serves
    // inside the cluster, and a condition says why it is not exposed.
    w.create(
        "gone",
        json!({"source": {"uri": uri}, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}, "expose": {"mode": "gateway"}}),
    )
    .await?;
    let ready = w
        .until("gone", "gone to be Ready", Duration::from_secs(40), |m| {
            phase(m) == Some(Phase::Ready)
        })
        .await?;
    assert_eq!(
        condition(&ready, "Exposed"),
        Some(("False".to_owned(), "GatewayAPINotInstalled".to_owned()))
    );
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(w.client.clone(), &w.ns);
    let hpa = hpas.get("gone").await?;
    assert_eq!(hpa.spec.max_replicas, 3);
    w.models().delete("gone", &DeleteParams::default()).await?;
    let label = "berth.dev/model=gone";
    eventually(
        "the model and every child to go",
        Duration::from_secs(30),
        || async {
            let left = [
                w.names::<PersistentVolumeClaim>(label).await?,
                w.names::<Job>(label).await?,
                w.names::<Deployment>(label).await?,
                w.names::<Service>(label).await?,
                w.names::<Pod>(label).await?,
                w.names::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(label)
                    .await?,
            ]
            .concat();
            let model = w.models().get_opt("gone").await?;
            Ok((left.is_empty() && model.is_none()).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn admission_explains_what_is_wrong() -> Result<()> {
    let (_, client) = support::admin().await?;
    let ns = support::namespace(&client, "mlm-admission").await?;
    let models: Api<MLModel> = Api::namespaced(client, &ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let ok = json!({"source": {"uri": "s3://models/fraud/model.onnx"}});
    models
        .create(&dry, &MLModel::new("valid", serde_json::from_value(ok)?))
        .await
        .context("a valid model is admitted")?;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "scheme",
            json!({"source": {"uri": "ftp://example.com/model.onnx"}}),
            "source.uri must start with s3://, https:// or pvc://",
        ),
        (
            "bucket",
            json!({"source": {"uri": "s3://A/model.onnx"}}),
            "the bucket name is 3 to 63",
        ),
        (
            "sha",
            json!({"source": {"uri": "https://example.com/m.onnx", "sha256": "abc"}}),
            "64 lowercase hex digits",
        ),
        (
            "prefix-sha",
            json!({"source": {"uri": "s3://models/fraud/", "sha256": "0".repeat(64)}}),
            "checks a single file",
        ),
        (
            "timeout",
            json!({"source": {"uri": "s3://models/m.onnx", "timeout": "3 days"}}),
            "source.timeout must be a duration",
        ),
        (
            "replicas",
            json!({"source": {"uri": "s3://models/m.onnx"}, "replicas": 0}),
            "spec.replicas",
        ),
        (
            "too-many",
            json!({"source": {"uri": "s3://models/m.onnx"}, "replicas": 101}),
            "spec.replicas",
        ),
        (
            "both",
            json!({"source": {"uri": "s3://models/m.onnx"}, "replicas": 2, "autoscaling": {"maxReplicas": 3}}),
            "set either replicas or autoscaling",
        ),
        (
            "min-max",
            json!({"source": {"uri": "s3://models/m.onnx"}, "autoscaling": {"minReplicas": 5, "maxReplicas": 3}}),
            "minReplicas must not exceed",
        ),
        (
            "custom",
            json!({"source": {"uri": "s3://models/m.onnx"}, "runtime": {"name": "custom"}}),
            "a custom runtime needs runtime.image",
        ),
        (
            "runtime",
            json!({"source": {"uri": "s3://models/m.onnx"}, "runtime": {"name": "pytorch"}}),
            "Unsupported value: \"pytorch\"",
        ),
        (
            "secret",
            json!({"source": {"uri": "https://example.com/m.onnx", "secretName": "creds"}}),
            "applies to s3:// sources only",
        ),
        (
            "size",
            json!({"source": {"uri": "s3://models/m.onnx"}, "storage": {"size": "lots"}}),
            "storage.size must be a positive quantity",
        ),
    ];
    let mut failures = Vec::new();
    for (name, spec, message) in cases {
        let object = json!({
            "apiVersion": "berth.dev/v1alpha1",
            "kind": "MLModel",
            "metadata": {"name": name},
            "spec": spec,
        });
        let model: MLModel = match serde_json::from_value(object.clone()) {
            Ok(m) => m,
            // A value the Rust types cannot hold (an unknown runtime) goes in untyped.
            Err(_) => {
                let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
                    models.clone().into_client(),
                    &ns,
                    &kube::api::ApiResource::erase::<MLModel>(&()),
                );
                match api.create(&dry, &serde_json::from_value(object)?).await {
                    Ok(_) => failures.push(format!("{name}: admitted")),
                    Err(e) if e.to_string().contains(message) => {}
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
                continue;
            }
        };
        match models.create(&dry, &model).await {
            Ok(_) => failures.push(format!("{name}: admitted")),
            Err(e) if e.to_string().contains(message) => {}
            Err(e) => failures.push(format!("{name}: expected {message:?}, got {e}")),
        }
    }
    if !failures.is_empty() {
        bail!("admission:\n{}", failures.join("\n"));
    }
    // The sample stays admissible.
    let sample_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/samples/models/mlmodel.yaml");
    let sample = std::fs::read_to_string(&sample_path)?;
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        models.clone().into_client(),
        &ns,
        &kube::api::ApiResource::erase::<MLModel>(&()),
    );
    for mut object in berth_testenv::manifests::parse_objects(&sample, "the sample")? {
        object.metadata.namespace = Some(ns.clone());
        raw.create(&dry, &object)
            .await
            .context("the sample MLModel is admitted")?;
    }

    // Project members: editors create models, viewers read them (deploy/rbac project roles).
    let (cluster, admin) = support::admin().await?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(admin.clone(), &ns);
    for (user, role) in [
        ("editor@example.com", "berth-project-editor"),
        ("viewer@example.com", "berth-project-viewer"),
    ] {
        bindings
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": role},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
                }))?,
            )
            .await?;
    }
    let editor: Api<MLModel> =
        Api::namespaced(cluster.impersonate("editor@example.com", &[]).await?, &ns);
    let viewer: Api<MLModel> =
        Api::namespaced(cluster.impersonate("viewer@example.com", &[]).await?, &ns);
    let by_editor = MLModel::new(
        "by-editor",
        serde_json::from_value(json!({"source": {"uri": "s3://models/m.onnx"}}))?,
    );
    eventually(
        "an editor to create a model",
        Duration::from_secs(20),
        || async { Ok(editor.create(&dry, &by_editor).await.ok().map(|_| ())) },
    )
    .await?;
    viewer
        .list(&ListParams::default())
        .await
        .context("a viewer lists models")?;
    let refused = viewer
        .create(&dry, &by_editor)
        .await
        .err()
        .context("a viewer cannot create a model")?;
    assert!(refused.to_string().contains("forbidden"), "{refused}");

    let bad_name = MLModel::new(
        "9lives",
        serde_json::from_value(json!({"source": {"uri": "s3://models/m.onnx"}}))?,
    );
    let e = models
        .create(&dry, &bad_name)
        .await
        .err()
        .context("a name starting with a digit is refused")?;
    assert!(e.to_string().contains("must start with a letter"), "{e}");
    Ok(())
}

#[tokio::test]
async fn istio_exposure_follows_the_spec() -> Result<()> {
    let w = world("mlm-istio").await?;
    let (uri, _) = w
        .upload("mesh/model.onnx", &model_bytes("mesh;", 8 * 1024))
        .await?;
    w.create(
        "mesh",
        json!({"source": {"uri": uri}, "expose": {"mode": "istio"}}),
    )
    .await?;
    let host = format!("mesh.{}.{DOMAIN}", w.ns);
    let ready = w
        .until(
            "mesh",
            "mesh to be Ready and exposed",
            Duration::from_secs(40),
            |m| phase(m) == Some(Phase::Ready) && is_true(m, "Exposed"),
        )
        .await?;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.url.clone()),
        Some(format!("http://{host}"))
    );
    let resource = kube::api::ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    };
    let services: Api<kube::api::DynamicObject> =
        Api::namespaced_with(w.client.clone(), &w.ns, &resource);
    let vs = services.get("mesh").await?;
    assert_eq!(vs.data["spec"]["hosts"], json!([host]));
    assert_eq!(vs.data["spec"]["gateways"], json!([ISTIO_GATEWAY]));
    assert_eq!(
        vs.data["spec"]["http"][0]["route"][0]["destination"]["host"],
        json!(format!("mesh.{}.svc.cluster.local", w.ns))
    );
    assert_eq!(
        vs.labels().get("berth.dev/model").map(String::as_str),
        Some("mesh")
    );
    // Back to cluster exposure: the VirtualService goes.
    w.patch_spec("mesh", json!({"expose": {"mode": "cluster"}}))
        .await?;
    eventually(
        "the VirtualService to go",
        Duration::from_secs(20),
        || async { Ok(services.get_opt("mesh").await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}
