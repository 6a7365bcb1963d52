//! Berth's CRDs install, and a custom object round-trips through the API server, status included.

use std::time::Duration;

use anyhow::Result;
use berth_api::{Member, MemberKind, Project, ProjectSpec, ProjectStatus, Role};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{admin, eventually, unique};

fn project(name: &str) -> Project {
    Project::new(
        name,
        ProjectSpec {
            members: vec![
                Member {
                    kind: MemberKind::User,
                    name: "ada@example.com".into(),
                    role: Role::Owner,
                },
                Member {
                    kind: MemberKind::Group,
                    name: "ml-team".into(),
                    role: Role::Viewer,
                },
            ],
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn berth_crds_are_established() -> Result<()> {
    let (_, client) = admin().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for expected in berth_api::crds() {
        let name = expected.metadata.name.clone().unwrap_or_default();
        let crd = crds.get(&name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not established");
    }
    Ok(())
}

#[tokio::test]
async fn project_round_trips_with_its_status_subresource() -> Result<()> {
    let (_, client) = admin().await?;
    let projects: Api<Project> = Api::all(client);
    let name = unique("roundtrip");

    let created = projects
        .create(&PostParams::default(), &project(&name))
        .await?;
    assert_eq!(created.spec, project(&name).spec);
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none());

    // Status goes through the status subresource and does not bump the generation.
    let status = json!({ "status": { "observedGeneration": 1, "namespace": name } });
    projects
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let read = projects.get(&name).await?;
    assert_eq!(
        read.status,
        Some(ProjectStatus {
            observed_generation: Some(1),
            namespace: Some(name.clone()),
            ..Default::default()
        })
    );
    assert_eq!(read.metadata.generation, Some(1));

    // A status written through the main resource is ignored; a spec change bumps the generation.
    let spec_change = json!({
        "spec": { "members": [{ "kind": "User", "name": "grace@example.com", "role": "owner" }] },
        "status": { "observedGeneration": 99 },
    });
    let changed = projects
        .patch(&name, &PatchParams::default(), &Patch::Merge(&spec_change))
        .await?;
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(changed.status.and_then(|s| s.observed_generation), Some(1));
    assert_eq!(changed.spec.members[0].name, "grace@example.com");

    projects.delete(&name, &DeleteParams::default()).await?;
    eventually(
        "the project to be deleted",
        Duration::from_secs(10),
        || async { Ok(projects.get_opt(&name).await?.is_none().then_some(())) },
    )
    .await
}

#[tokio::test]
async fn schema_rejects_an_unknown_role() -> Result<()> {
    let (_, client) = admin().await?;
    let projects: Api<Project> = Api::all(client);
    let name = unique("badrole");
    let mut bad = serde_json::to_value(project(&name))?;
    bad["spec"]["members"][0]["role"] = json!("superuser");
    let request = kube::core::Request::new("/apis/berth.dev/v1alpha1/projects")
        .create(&PostParams::default(), serde_json::to_vec(&bad)?)?;
    let result = projects
        .clone()
        .into_client()
        .request::<Project>(request)
        .await;
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("superuser"), "{}", status.message);
        }
        other => panic!("expected a 422 rejection, got {other:?}"),
    }
    assert!(projects.get_opt(&name).await?.is_none());
    Ok(())
}
