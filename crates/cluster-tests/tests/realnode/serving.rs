//! Canary releases for real (issue 12): a canary at 20 % beside four stable replicas of
//! berth-model-server on the real node, the share measured over 2,000 requests through the
//! Service's ClusterIP (each on a fresh connection, so kube-proxy picks an endpoint for each),
//! then a promote and a roll back while a client sends requests without pause, losing none.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use berth_api::mlmodel::MLModel;

use crate::models::{Steady, create_project, infer, make_models, project_s3, until_ready_on};
use crate::platform::platform;
use crate::support::{Env, env, eventually, place_on_real_node, unique};

/// Requests for the split, and how far the canary's share may be from its weight.
const SPLIT_REQUESTS: usize = 2_000;
const TOLERANCE_PERCENT: f64 = 5.0;

/// Stops `steady` and checks that no request failed; returns how many it sent.
async fn no_request_lost(env: &Env, what: &str, steady: Steady) -> Result<usize> {
    let answers = steady.stop(env, what).await?;
    let failures: Vec<&String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    eprintln!(
        "{what}: {} requests, {} failed",
        answers.len(),
        failures.len()
    );
    ensure!(
        failures.is_empty(),
        "{what}: {} of {} requests failed, first: {:?}",
        failures.len(),
        answers.len(),
        failures.first()
    );
    ensure!(!answers.is_empty(), "{what}: no request was sent");
    Ok(answers.len())
}

/// Waits until the Service's endpoints are exactly `count` ready addresses.
async fn until_endpoints(
    client: &kube::Client,
    ns: &str,
    service: &str,
    count: usize,
) -> Result<()> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("{count} ready endpoints of {service}"),
        Duration::from_secs(60),
        || async {
            let list = slices
                .list(
                    &ListParams::default().labels(&format!("kubernetes.io/service-name={service}")),
                )
                .await?;
            let ready = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .filter(|e| e.conditions.as_ref().is_some_and(|c| c.ready == Some(true)))
                .count();
            Ok((ready == count).then_some(()))
        },
    )
    .await
}

#[tokio::test]
async fn a_canary_takes_its_share_and_promote_and_roll_back_lose_nothing() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let models_dir = make_models()?;
    let client = &env.client;
    let ns = unique("rn-canary");
    create_project(&env, &ns).await?;
    place_on_real_node(client, &ns).await?;
    let (s3, bucket) = project_s3(client, &ns).await?;
    let mlp = std::fs::read(models_dir.join("mlp/model.onnx"))?;
    for key in ["ranker/v1/model.onnx", "ranker/v2/model.onnx"] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(mlp.clone().into())
            .send()
            .await
            .with_context(|| format!("uploading s3://{bucket}/{key}"))?;
    }
    let v1_uri = format!("s3://{bucket}/ranker/v1/model.onnx");
    let v2_uri = format!("s3://{bucket}/ranker/v2/model.onnx");

    let started = Instant::now();
    let models: Api<MLModel> = Api::namespaced(client.clone(), &ns);
    let model: MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "ranker", "namespace": ns},
        "spec": {
            "source": {"uri": v1_uri},
            "runtime": {"name": "onnx"},
            "replicas": 4,
            // Calls without a token: authentication is tested in auth.rs.
            "auth": {"mode": "none"},
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
            "storage": {"size": "64Mi"},
        },
    }))?;
    models
        .patch(
            "ranker",
            &PatchParams::apply("berth-realnode-tests"),
            &Patch::Apply(&model),
        )
        .await?;
    let v1 = until_ready_on(&models, "ranker", &v1_uri, None).await?;
    eprintln!(
        "v1 ({v1}) Ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The canary: version v2 at 20 %, one replica beside four.
    models
        .patch(
            "ranker",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"canary": {"source": {"uri": v2_uri}, "weight": 20}}})),
        )
        .await?;
    let canary = eventually("the canary to serve", Duration::from_secs(180), || async {
        let status = models.get("ranker").await?.status.unwrap_or_default();
        let ready = berth_api::conditions::is_true(&status.conditions, "CanaryReady");
        Ok(status.canary.filter(|c| ready && c.ready_replicas == 1))
    })
    .await?;
    eprintln!(
        "canary {} serving after {:.1} s: {}",
        canary.version,
        started.elapsed().as_secs_f64(),
        canary.split
    );
    ensure!(
        canary.percent == 20,
        "status.canary.percent {}",
        canary.percent
    );
    until_endpoints(client, &ns, "ranker", 5).await?;

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cluster_ip = services
        .get("ranker")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let url = format!("http://{cluster_ip}/v2/models/ranker/infer");
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()?;
    // kube-proxy programs the endpoints a moment after they are ready.
    eventually(
        "answers from the canary",
        Duration::from_secs(30),
        || async {
            let mut by_canary = false;
            for _ in 0..20 {
                by_canary |= infer(&http, &url).await.ok().as_deref() == Some(&canary.version);
            }
            Ok(by_canary.then_some(()))
        },
    )
    .await?;

    // The split, over 2,000 requests, eight at a time, each on a fresh connection.
    let split_started = Instant::now();
    let answers: Vec<Result<String>> = futures::stream::iter(0..SPLIT_REQUESTS)
        .map(|_| infer(&http, &url))
        .buffer_unordered(8)
        .collect()
        .await;
    let failed = answers.iter().filter(|a| a.is_err()).count();
    let by_canary = answers
        .iter()
        .filter(|a| a.as_ref().ok() == Some(&canary.version))
        .count();
    let by_stable = answers
        .iter()
        .filter(|a| a.as_ref().ok() == Some(&v1))
        .count();
    let share = by_canary as f64 * 100.0 / SPLIT_REQUESTS as f64;
    eprintln!(
        "canary split: {by_canary} of {SPLIT_REQUESTS} requests ({share:.1} %) by the canary, {by_stable} by the stable version, {failed} failed, in {:.1} s",
        split_started.elapsed().as_secs_f64()
    );
    ensure!(failed == 0, "{failed} requests failed");
    ensure!(
        by_canary + by_stable == SPLIT_REQUESTS,
        "answers from neither version"
    );
    ensure!(
        (share - 20.0).abs() <= TOLERANCE_PERCENT,
        "the canary took {share:.1} % of the requests, not 20 % ± {TOLERANCE_PERCENT}"
    );

    // Promote while a client sends: the canary's source becomes the model's.
    let steady = Steady::start(&env, &http, &url, &ns, "ranker");
    models
        .patch(
            "ranker",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"source": {"uri": v2_uri}, "canary": null}})),
        )
        .await?;
    let promoted = until_ready_on(&models, "ranker", &v2_uri, Some(&v1)).await?;
    ensure!(
        promoted == canary.version,
        "promoted {promoted}, canary was {}",
        canary.version
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(
        "the canary Deployment to go",
        Duration::from_secs(120),
        || async {
            let names: Vec<String> = deployments
                .list(&ListParams::default().labels("berth.dev/model=ranker"))
                .await?
                .items
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .collect();
            Ok((names == vec!["ranker".to_owned()]).then_some(()))
        },
    )
    .await?;
    until_endpoints(client, &ns, "ranker", 4).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    no_request_lost(&env, "promote", steady).await?;

    // Roll back a canary while a client sends: add one, then remove it.
    models
        .patch(
            "ranker",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"canary": {"source": {"uri": v1_uri}, "weight": 20}}})),
        )
        .await?;
    eventually(
        "the second canary to serve",
        Duration::from_secs(180),
        || async {
            let status = models.get("ranker").await?.status.unwrap_or_default();
            Ok(berth_api::conditions::is_true(&status.conditions, "CanaryReady").then_some(()))
        },
    )
    .await?;
    until_endpoints(client, &ns, "ranker", 5).await?;
    let steady = Steady::start(&env, &http, &url, &ns, "ranker");
    tokio::time::sleep(Duration::from_secs(2)).await;
    models
        .patch(
            "ranker",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"canary": null}})),
        )
        .await?;
    until_endpoints(client, &ns, "ranker", 4).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    no_request_lost(&env, "roll back", steady).await?;
    eprintln!(
        "canary test took {:.1} s on the real node",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
