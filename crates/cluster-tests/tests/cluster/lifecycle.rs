//! Deletion works the way Berth relies on: the garbage collector removes dependents of a deleted
//! owner, and a namespace with workloads in it finishes terminating.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use crate::support::{admin, eventually, namespace};

fn config_map(name: &str, owner: Option<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() -> Result<()> {
    let (_, client) = admin().await?;
    let ns = namespace(&client, "gc").await?;
    let maps: Api<ConfigMap> = Api::namespaced(client, &ns);
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await?;
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.context("owner has no uid")?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    for i in 0..3 {
        maps.create(
            &PostParams::default(),
            &config_map(&format!("dependent-{i}"), Some(reference.clone())),
        )
        .await?;
    }
    // An unrelated object must survive.
    maps.create(&PostParams::default(), &config_map("bystander", None))
        .await?;

    maps.delete("owner", &DeleteParams::default()).await?;
    eventually(
        "the dependents to be collected",
        Duration::from_secs(60),
        || async {
            let mut left = 0;
            for i in 0..3 {
                if maps.get_opt(&format!("dependent-{i}")).await?.is_some() {
                    left += 1;
                }
            }
            Ok((left == 0).then_some(()))
        },
    )
    .await?;
    assert!(maps.get_opt("bystander").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_with_workloads_finishes() -> Result<()> {
    let (_, client) = admin().await?;
    let ns = namespace(&client, "nsdel").await?;
    let labels = BTreeMap::from([("app".to_owned(), "busy".to_owned())]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(
            &PostParams::default(),
            &Deployment {
                metadata: ObjectMeta {
                    name: Some("busy".into()),
                    ..Default::default()
                },
                spec: Some(DeploymentSpec {
                    replicas: Some(2),
                    selector: LabelSelector {
                        match_labels: Some(labels.clone()),
                        ..Default::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "main".into(),
                                image: Some("registry.invalid/berth/test:1".into()),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await?;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &config_map("data", None))
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually(
        "pods to run before the delete",
        Duration::from_secs(60),
        || async { Ok((pods.list(&ListParams::default()).await?.items.len() == 2).then_some(())) },
    )
    .await?;

    let namespaces: Api<Namespace> = Api::all(client);
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    eventually(
        "the namespace to finish terminating",
        Duration::from_secs(90),
        || async { Ok(namespaces.get_opt(&ns).await?.is_none().then_some(())) },
    )
    .await
}
