//! Where users look. A Project is cluster-scoped, and the API server would keep its Events in
//! `default`, which its members cannot read and everyone else may. Berth publishes them in the
//! project's namespace instead, where its members read them, and the rest (a project whose
//! namespace is not, or no longer, its own) in the operator's namespace, which only platform admins
//! read: nothing about a project lands in `default`.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::json;

use crate::project::{create, wait_condition, wait_ready};
use crate::support::{eventually, unique, with_operator};

/// The Events about Project `name` in `namespace`, as `client` may list them.
async fn project_events(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, kube::Error> {
    Ok(Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Project,involvedObject.name={name}"
        )))
        .await?
        .items)
}

#[tokio::test]
async fn members_read_their_projects_events_and_default_holds_none() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let name = unique("events");
    let viewer = format!("viewer-{name}@example.com");
    let outsider = format!("outsider-{name}@example.com");
    create(
        &admin,
        &name,
        json!({
            "owners": [format!("owner-{name}@example.com")],
            "members": [{"kind": "User", "name": viewer, "role": "viewer"}],
        }),
    )
    .await?;
    wait_ready(&admin, &name).await?;

    // A viewer reads the project's Events in its namespace.
    let as_viewer = cluster.impersonate(&viewer, &[]).await?;
    let seen = eventually(
        "the viewer to read the project's Ready Event",
        Duration::from_secs(30),
        || async {
            let events = project_events(&as_viewer, &name, &name).await.ok();
            Ok(events.filter(|e| {
                e.iter()
                    .any(|e| e.reason.as_deref() == Some("ProjectReady"))
            }))
        },
    )
    .await?;
    assert!(
        seen.iter().all(|e| e.involved_object.uid.is_some()),
        "the Events name the Project by its UID"
    );
    // Someone else cannot.
    let as_outsider = cluster.impersonate(&outsider, &[]).await?;
    assert!(
        project_events(&as_outsider, &name, &name).await.is_err(),
        "a non-member read the project's Events"
    );

    // A project that cannot have its namespace: its Events go to the platform admins.
    let conflicted = unique("events-conflict");
    create(
        &admin,
        &conflicted,
        json!({"owners": ["a@example.com"], "namespace": name}),
    )
    .await?;
    wait_condition(&admin, &conflicted, "Ready", "False", "NamespaceConflict").await?;
    eventually(
        "the conflict's Event in berth-system",
        Duration::from_secs(30),
        || async {
            let events = project_events(&admin, "berth-system", &conflicted).await?;
            Ok((!events.is_empty()).then_some(()))
        },
    )
    .await?;
    assert!(
        project_events(&admin, &name, &conflicted).await?.is_empty(),
        "another project's Events landed in a namespace it does not own"
    );

    // Nothing about either project in default, which everyone may read.
    for project in [&name, &conflicted] {
        let in_default = project_events(&admin, "default", project).await?;
        assert!(
            in_default.is_empty(),
            "Events of project {project} in default: {:?}",
            in_default.iter().map(|e| &e.message).collect::<Vec<_>>()
        );
    }
    Ok(())
}
