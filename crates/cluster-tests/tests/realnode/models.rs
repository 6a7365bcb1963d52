//! MLModel for real: the fetch Job's pod runs berth-model-fetch from its image against Garage,
//! reached from the pod, into a volume from local-path-provisioner; the serving pods run
//! berth-model-server and pass their readiness probe; inference goes through the Service's
//! ClusterIP (kube-proxy); an update is watched by a client that never pauses; a server that
//! crashes for real leaves the old version serving.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::mlmodel::{MLModel, Phase};
use berth_testenv::realnode::NODE_NAME;

use crate::platform::platform;
use crate::support::{
    Env, ServiceTimeline, env, eventually, node_log_tail, place_on_real_node, unique,
};

/// The pinned `onnx` package the model server's tests and `cargo xtask dev` use.
const ONNX_VERSION: &str = "1.20.1";

/// A Python with the pinned `onnx`: the venv in Berth's cache that `cargo xtask dev` makes, made
/// here when missing.
fn python_with_onnx() -> Result<PathBuf> {
    let cache = std::env::var_os("BERTH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/berth")))
        .context("neither BERTH_CACHE nor HOME is set")?;
    let venv = cache.join(format!("onnx-{ONNX_VERSION}-venv"));
    let python = venv.join("bin/python");
    let has_onnx = |python: &Path| {
        Command::new(python)
            .args(["-c", "import onnx"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_onnx(&python) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .arg(format!("onnx=={ONNX_VERSION}"))
                .status()?
                .success();
        ensure!(
            ok && has_onnx(&python),
            "could not install onnx into {}",
            venv.display()
        );
    }
    Ok(python)
}

/// The model server's test models (mlp, and one with an operator no runtime knows).
pub(crate) fn make_models() -> Result<PathBuf> {
    let out = std::env::temp_dir().join(format!("berth-realnode-models-{}", std::process::id()));
    let status = Command::new(python_with_onnx()?)
        .arg(berth_testenv::util::repo_root().join("crates/model-server/tests/make_models.py"))
        .arg(&out)
        .status()?;
    ensure!(status.success(), "make_models.py failed ({status})");
    Ok(out)
}

/// The project's own S3 credentials, from its storage Secret.
pub(crate) async fn project_s3(client: &Client, ns: &str) -> Result<(aws_sdk_s3::Client, String)> {
    let secret: Secret = Api::namespaced(client.clone(), ns)
        .get("berth-storage")
        .await?;
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| -> Result<String> {
        Ok(String::from_utf8(
            data.get(k)
                .with_context(|| format!("berth-storage has no {k}"))?
                .0
                .clone(),
        )?)
    };
    let s3 = berth_services::s3_client(
        &get("AWS_ENDPOINT_URL")?,
        &get("AWS_REGION")?,
        &get("AWS_ACCESS_KEY_ID")?,
        &get("AWS_SECRET_ACCESS_KEY")?,
    );
    Ok((s3, get("BUCKET")?))
}

/// The mlp model's answer for x = [1, 2, 3] (make_models.py: W = [[1,-1],[2,0.5],[-3,1]],
/// b = [0.5,-0.25]): pre = xW + b = [-3.5, 2.75], y = relu(pre) = [0, 2.75].
const EXPECTED_Y: [f64; 2] = [0.0, 2.75];

fn request() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
}

/// One inference through the ClusterIP, on a fresh connection (so each request goes through
/// kube-proxy's choice of endpoint); returns the model version that answered.
pub(crate) async fn infer(http: &reqwest::Client, url: &str) -> Result<String> {
    let answer: Value = http
        .post(url)
        .json(&request())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let y = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "y"))
        .and_then(|t| t["data"].as_array())
        .context("no output y")?
        .iter()
        .filter_map(Value::as_f64)
        .collect::<Vec<_>>();
    if y != EXPECTED_Y {
        bail!("wrong answer {y:?}, expected {EXPECTED_Y:?}");
    }
    Ok(answer["model_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Answers of a [`Steady`] client: when each request started, and the version that answered or
/// the error (which names its start time).
pub(crate) type Answers = Vec<(Timestamp, Result<String, String>)>;

/// A client that sends inferences through a Service without pause until stopped, and a record
/// of what the Service's endpoints and pods did meanwhile (printed should a request be lost).
pub(crate) struct Steady {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Answers>,
    timeline: ServiceTimeline,
}

impl Steady {
    /// Starts sending to `url`, the ClusterIP of Service `service` (named as its model) in `ns`.
    pub(crate) fn start(
        env: &Env,
        http: &reqwest::Client,
        url: &str,
        ns: &str,
        service: &str,
    ) -> Self {
        let timeline = ServiceTimeline::start(
            &env.client,
            ns,
            service,
            &format!("berth.dev/component=server,berth.dev/model={service}"),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (http, url, stop) = (http.clone(), url.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Answers::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Timestamp::now();
                    let answer = infer(&http, &url)
                        .await
                        .map_err(|e| format!("at {started}: {e:#}"));
                    answers.push((started, answer));
                }
                answers
            })
        };
        Self {
            stop,
            task,
            timeline,
        }
    }

    /// Stops the client; returns every answer. When a request failed, prints the failures,
    /// each change of the Service's EndpointSlices and pods, and kube-proxy's last lines.
    pub(crate) async fn stop(self, env: &Env, what: &str) -> Result<Answers> {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.task.await?;
        let timeline = self.timeline.stop();
        let failures: Vec<&String> = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().err())
            .collect();
        if !failures.is_empty() {
            eprintln!(
                "{what}: failed requests: {failures:#?}\nwhat the Service's endpoints and pods did:\n{}\nkube-proxy's last lines:\n{}",
                timeline.join("\n"),
                node_log_tail(env, "kube-proxy", 60)
            );
        }
        Ok(answers)
    }
}

async fn model_status(
    models: &Api<MLModel>,
    name: &str,
) -> Result<berth_api::mlmodel::MLModelStatus> {
    Ok(models.get(name).await?.status.unwrap_or_default())
}

pub(crate) async fn until_ready_on(
    models: &Api<MLModel>,
    name: &str,
    version_uri: &str,
    previous: Option<&str>,
) -> Result<String> {
    eventually(
        &format!("MLModel {name} Ready serving {version_uri}"),
        Duration::from_secs(240),
        || async {
            let m = models.get(name).await?;
            let status = m.status.clone().unwrap_or_default();
            let serving = m.spec.source.uri == version_uri
                && status.phase == Some(Phase::Ready)
                && status.active_version == status.target_version
                && status.active_version.as_deref() != previous;
            Ok(serving.then(|| status.active_version.clone().unwrap_or_default()))
        },
    )
    .await
}

#[tokio::test]
async fn a_model_is_fetched_served_and_updated_on_the_real_node() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let models_dir = make_models()?;
    let client = &env.client;
    let ns = unique("rn-models");
    create_project(&env, &ns).await?;
    place_on_real_node(client, &ns).await?;
    let (s3, bucket) = project_s3(client, &ns).await?;
    let mlp = std::fs::read(models_dir.join("mlp/model.onnx"))?;
    for key in ["models/v1/model.onnx", "models/v2/model.onnx"] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(mlp.clone().into())
            .send()
            .await
            .with_context(|| format!("uploading s3://{bucket}/{key}"))?;
    }
    let unsupported = std::fs::read(models_dir.join("unsupported/model.onnx"))?;
    s3.put_object()
        .bucket(&bucket)
        .key("models/v3/model.onnx")
        .body(unsupported.into())
        .send()
        .await?;

    let models: Api<MLModel> = Api::namespaced(client.clone(), &ns);
    let v1_uri = format!("s3://{bucket}/models/v1/model.onnx");
    let model: MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "scorer", "namespace": ns},
        "spec": {
            "source": {"uri": v1_uri},
            "runtime": {"name": "onnx"},
            "replicas": 2,
            // Calls without a token: authentication is tested in auth.rs.
            "auth": {"mode": "none"},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            "storage": {"size": "64Mi"},
        },
    }))?;
    let started = Instant::now();
    models
        .patch(
            "scorer",
            &PatchParams::apply("berth-realnode-tests"),
            &Patch::Apply(&model),
        )
        .await?;
    let v1 = until_ready_on(&models, "scorer", &v1_uri, None).await?;
    eprintln!(
        "v1 ({v1}) Ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The download ran for real: the fetch Job's pod on the real node ended with success, into a
    // volume that local-path-provisioner made.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let fetch = pods
        .list(&ListParams::default().labels("berth.dev/component=download"))
        .await?;
    ensure!(!fetch.items.is_empty(), "no download pod");
    for pod in &fetch.items {
        let spec = pod.spec.clone().unwrap_or_default();
        ensure!(
            spec.node_name.as_deref() == Some(NODE_NAME),
            "{} not on {NODE_NAME}",
            pod.name_any()
        );
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        ensure!(
            phase.as_deref() == Some("Succeeded"),
            "{}: {phase:?}",
            pod.name_any()
        );
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let provisioned = volumes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|v| {
            v.spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.as_deref())
                == Some(ns.as_str())
        })
        .collect::<Vec<_>>();
    ensure!(!provisioned.is_empty(), "no volume for the model");
    for volume in &provisioned {
        let by = volume
            .annotations()
            .get("pv.kubernetes.io/provisioned-by")
            .cloned();
        ensure!(
            by.as_deref() == Some("rancher.io/local-path"),
            "{}: provisioned by {by:?}",
            volume.name_any()
        );
    }
    // The serving pods run on the real node and passed their readiness probe.
    let servers = pods
        .list(&ListParams::default().labels("berth.dev/component=server"))
        .await?;
    let ready_servers = servers
        .items
        .iter()
        .filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE_NAME)
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    ensure!(
        ready_servers == 2,
        "{ready_servers} ready serving pods on {NODE_NAME}"
    );

    // Inference through the Service's ClusterIP, from this machine through kube-proxy's rules.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cluster_ip = services
        .get("scorer")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let url = format!("http://{cluster_ip}/v2/models/scorer/infer");
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()?;
    // kube-proxy programs the Service's endpoints a moment after the pods are Ready.
    let first = eventually(
        "an answer through the ClusterIP",
        Duration::from_secs(30),
        || async { Ok(infer(&http, &url).await.ok()) },
    )
    .await
    .context("inference through the ClusterIP")?;
    ensure!(first == v1, "answered by {first}, expected {v1}");

    // An update while a client sends requests without pause.
    let steady = Steady::start(&env, &http, &url, &ns, "scorer");
    let v2_uri = format!("s3://{bucket}/models/v2/model.onnx");
    models
        .patch(
            "scorer",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"source": {"uri": v2_uri}}})),
        )
        .await?;
    let v2 = until_ready_on(&models, "scorer", &v2_uri, Some(&v1)).await?;
    ensure!(v2 != v1, "the update made no new version");
    // Until the old pods are gone as well.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(
        "the rollout to finish",
        Duration::from_secs(120),
        || async {
            let all = pods
                .list(&ListParams::default().labels("berth.dev/component=server"))
                .await?;
            let old = all
                .items
                .iter()
                .filter(|p| p.labels().get("berth.dev/version") == Some(&v1))
                .count();
            let d = deployments.get("scorer").await?.status.unwrap_or_default();
            Ok(
                (old == 0 && d.updated_replicas == Some(2) && d.available_replicas == Some(2))
                    .then_some(()),
            )
        },
    )
    .await?;
    // And on, past the old pods' last seconds, until the new version has answered for a while.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let timed = steady.stop(&env, "zero-downtime update").await?;
    let answers: Vec<&Result<String, String>> = timed.iter().map(|(_, a)| a).collect();
    let failures: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    let by_v1 = answers
        .iter()
        .filter(|a| a.as_deref() == Ok(v1.as_str()))
        .count();
    let by_v2 = answers
        .iter()
        .filter(|a| a.as_deref() == Ok(v2.as_str()))
        .count();
    let last_v1 = timed
        .iter()
        .rev()
        .find(|(_, a)| a.as_deref() == Ok(v1.as_str()));
    let first_v2 = timed.iter().find(|(_, a)| a.as_deref() == Ok(v2.as_str()));
    eprintln!(
        "zero-downtime update {v1} -> {v2}: {} requests, {} failed, {by_v1} answered by {v1} (the last at {:?}), {by_v2} by {v2} (the first at {:?})",
        answers.len(),
        failures.len(),
        last_v1.map(|(t, _)| t.to_string()),
        first_v2.map(|(t, _)| t.to_string()),
    );
    ensure!(
        failures.is_empty(),
        "{} requests failed: {failures:#?}",
        failures.len(),
    );
    ensure!(
        by_v1 + by_v2 == answers.len(),
        "answers from neither version"
    );
    ensure!(by_v2 > 0, "no answer from the new version");

    // A version whose server crashes for real (a model with an operator no runtime knows): the
    // model goes Degraded with the reason, and the active version keeps serving.
    let v3_uri = format!("s3://{bucket}/models/v3/model.onnx");
    models
        .patch(
            "scorer",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"source": {"uri": v3_uri}}})),
        )
        .await?;
    let degraded = eventually(
        "Degraded with the crash's reason",
        Duration::from_secs(240),
        || async {
            let status = model_status(&models, "scorer").await?;
            let c = berth_api::conditions::get(&status.conditions, "Degraded").cloned();
            Ok(c.filter(|c| c.status == "True")
                .map(|c| (c, status.active_version.clone())))
        },
    )
    .await?;
    let (condition, active) = degraded;
    eprintln!("degraded: {} {}", condition.reason, condition.message);
    ensure!(
        condition.reason == "CrashLoop",
        "reason {}: {}",
        condition.reason,
        condition.message
    );
    ensure!(
        active.as_deref() == Some(v2.as_str()),
        "active version {active:?}"
    );
    for _ in 0..20 {
        let by = infer(&http, &url)
            .await
            .context("the old version while the new one crashes")?;
        ensure!(by == v2, "answered by {by}");
    }
    Ok(())
}

pub(crate) async fn create_project(env: &Env, name: &str) -> Result<()> {
    crate::support::ready_project(&env.client, name, json!({"owners": ["ds@example.com"]})).await
}
