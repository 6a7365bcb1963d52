//! Workloads run: the scheduler places pods on kwok's nodes, kwok makes them Ready and completes Jobs,
//! and kube-controller-manager's deployment, replicaset and job controllers drive them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

use crate::support::{admin, eventually, namespace};

fn pod_template(app: &str, restart_policy: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.invalid/berth/test:1".into()),
                ..Default::default()
            }],
            restart_policy: Some(restart_policy.into()),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn deployment_with_two_replicas_becomes_available() -> Result<()> {
    let (_, client) = admin().await?;
    let ns = namespace(&client, "deploy").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
                ..Default::default()
            },
            template: pod_template("web", "Always"),
            ..Default::default()
        }),
        ..Default::default()
    };
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;

    eventually(
        "the deployment to be Available with 2 replicas",
        Duration::from_secs(60),
        || async {
            let status = deployments.get("web").await?.status.unwrap_or_default();
            let available = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            Ok((available && status.available_replicas == Some(2)).then_some(()))
        },
    )
    .await?;

    // The pods are bound to kwok nodes by the scheduler, and Ready through kwok.
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(list.items.len(), 2);
    for pod in list.items {
        let node = pod.spec.and_then(|s| s.node_name).unwrap_or_default();
        assert!(node.starts_with("kwok-node-"), "pod bound to {node:?}");
        let ready = pod
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready);
    }
    Ok(())
}

#[tokio::test]
async fn job_completes() -> Result<()> {
    let (_, client) = admin().await?;
    let ns = namespace(&client, "job").await?;
    let jobs: Api<Job> = Api::namespaced(client, &ns);
    let job = Job {
        metadata: ObjectMeta {
            name: Some("fetch".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            active_deadline_seconds: Some(120),
            template: pod_template("fetch", "Never"),
            ..Default::default()
        }),
        ..Default::default()
    };
    jobs.create(&PostParams::default(), &job).await?;
    eventually("the job to complete", Duration::from_secs(60), || async {
        let status = jobs.get("fetch").await?.status.unwrap_or_default();
        let complete = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        Ok((complete && status.succeeded == Some(1)).then_some(()))
    })
    .await
}
