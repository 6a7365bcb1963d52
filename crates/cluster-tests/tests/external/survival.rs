//! Tenant data survives without the operator. Against the real control plane, whose garbage
//! collector deletes whatever has an ownerReference to an object that is gone, with the operator
//! as a real process under its shipped RBAC:
//!
//! - a settings change of the default deletion policy after a Project was created changes nothing
//!   for it (the policy is recorded on the Project);
//! - the operator stopped, a Retain Project deleted and its finalizer removed by hand (the usual
//!   "fix" for a stuck one): its namespace and everything in it stay;
//! - the Project CRD deleted (an uninstall) with the operator running: even a Delete Project keeps
//!   its namespace.
//!
//! It runs in the external binary, side by side with the object store's outage test, on a control
//! plane of its own (it stops the operator and deletes the CRD) with a real Garage: what a Delete
//! project holds outside the cluster survives an uninstall too. Most of its time is the garbage
//! collector's own delay in watching a newly installed kind (its discovery runs every 30 s), which
//! overlaps that way with the store's 30 s outage.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::{DeletionPolicy, Project};
use berth_services::Garage;
use berth_testenv::{ControlPlane, Process};

use super::storage_settings;
use super::support::{Platform, can_read, s3_from_secret};

const WAIT: Duration = Duration::from_secs(60);

async fn start_operator(plane: &ControlPlane, run: u32) -> Result<Process> {
    let (process, _) = plane
        .cluster()
        .start_operator(
            &berth_testenv::operator_binary()?,
            plane.dir(),
            &format!("operator-{run}.log"),
            &[],
        )
        .await?;
    Ok(process)
}

/// Whether the garbage collector and the operator left `bucket` on Garage.
async fn bucket_stays(garage: &Garage, bucket: &str) -> Result<bool> {
    Ok(super::garage_buckets(garage).await?.contains(bucket))
}

async fn until<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready(client: &Client, name: &str) -> Result<Project> {
    let api: Api<Project> = Api::all(client.clone());
    until(&format!("{name} Ready"), || async {
        let p = api.get(name).await?;
        let ok = p
            .status
            .as_ref()
            .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"));
        Ok(ok.then_some(p))
    })
    .await
}

/// A project's namespace with a tenant's data in it (a ConfigMap, a Secret, a volume claim), and
/// a canary: a ConfigMap with an ownerReference to the Project, which the garbage collector
/// deletes once the Project is gone. When the canary is gone, the collector has acted.
async fn fill(client: &Client, project: &Project) -> Result<()> {
    let ns = project.name_any();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: meta("results"),
                data: Some(BTreeMap::from([("auc".to_owned(), "0.97".to_owned())])),
                ..Default::default()
            },
        )
        .await?;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("db-password"),
                string_data: Some(BTreeMap::from([("password".to_owned(), "p4ss".to_owned())])),
                ..Default::default()
            },
        )
        .await?;
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "features"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &claim)
        .await?;
    let mut canary = meta("gc-canary");
    canary.owner_references = Some(vec![OwnerReference {
        api_version: "berth.dev/v1alpha1".into(),
        kind: "Project".into(),
        name: ns.clone(),
        uid: project.uid().context("no uid")?,
        controller: None,
        block_owner_deletion: None,
    }]);
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: canary,
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}

/// Waits until the garbage collector removed the canary, then checks that the namespace and the
/// tenant's data, and Berth's isolation, are all still there.
async fn survived(client: &Client, ns: &str) -> Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    until(&format!("the garbage collector to act on {ns}"), || async {
        Ok(maps.get_opt("gc-canary").await?.is_none().then_some(()))
    })
    .await?;
    let namespace = Api::<Namespace>::all(client.clone()).get(ns).await?;
    assert!(
        namespace.metadata.deletion_timestamp.is_none(),
        "namespace {ns} is being deleted"
    );
    assert!(namespace.owner_references().is_empty());
    let results = maps.get("results").await?;
    assert_eq!(results.data.unwrap_or_default()["auc"], "0.97");
    assert!(
        Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt("db-password")
            .await?
            .is_some()
    );
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get("features")
        .await?;
    assert!(claim.metadata.deletion_timestamp.is_none());
    // Berth's own objects stay too: the namespace keeps its isolation.
    assert!(
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get_opt("berth-default-deny")
            .await?
            .is_some(),
        "{ns} lost its default-deny policy"
    );
    Ok(())
}

async fn gone(api: &Api<Project>, name: &str) -> Result<()> {
    until(&format!("project {name} to go"), || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

fn recorded(p: &Project) -> Option<DeletionPolicy> {
    p.status.as_ref().and_then(|s| s.deletion_policy)
}

pub async fn tenant_data_survives_a_removed_finalizer_a_stopped_operator_and_a_deleted_crd()
-> Result<()> {
    let begin = std::time::Instant::now();
    let (platform, garage) = tokio::join!(Platform::start(), Garage::start());
    let (mut platform, garage) = (platform?, garage?);
    platform
        .admin_secret("garage-admin", &[("adminToken", garage.admin_token())])
        .await?;
    platform
        .settings(json!({"storage": storage_settings(&garage)}))
        .await?;
    let plane = &platform.plane;
    let client = platform.client.clone();
    let projects: Api<Project> = Api::all(client.clone());
    // The garbage collector watches a new kind only from its next discovery sync (every 30 s):
    // a Project deleted at once, with a dependent, gets that going while the rest is set up.
    let warmup: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": "warmup"}, "spec": {"owners": ["nobody@example.com"]},
    }))?;
    let warmup = projects.create(&PostParams::default(), &warmup).await?;
    let mut canary = ObjectMeta {
        name: Some("warmup-canary".into()),
        owner_references: Some(vec![OwnerReference {
            api_version: "berth.dev/v1alpha1".into(),
            kind: "Project".into(),
            name: "warmup".into(),
            uid: warmup.uid().context("no uid")?,
            controller: None,
            block_owner_deletion: None,
        }]),
        ..Default::default()
    };
    canary.namespace = Some("default".into());
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: canary,
                ..Default::default()
            },
        )
        .await?;
    projects.delete("warmup", &DeleteParams::default()).await?;
    for (name, policy) in [
        ("kept", None),
        ("flipped", None),
        ("doomed", Some("Delete")),
    ] {
        let mut spec = json!({"owners": [format!("{name}@example.com")]});
        if let Some(policy) = policy {
            spec["deletionPolicy"] = json!(policy);
        }
        let project: Project = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        projects.create(&PostParams::default(), &project).await?;
    }
    for (name, policy) in [
        ("kept", DeletionPolicy::Retain),
        ("flipped", DeletionPolicy::Retain),
        ("doomed", DeletionPolicy::Delete),
    ] {
        let p = ready(&client, name).await?;
        assert_eq!(recorded(&p), Some(policy), "{name}");
        fill(&client, &p).await?;
        let storage = Api::<Secret>::namespaced(client.clone(), name)
            .get("berth-storage")
            .await?;
        s3_from_secret(&storage)?
            .put_object()
            .bucket(name)
            .key("weights.bin")
            .body(b"tenant data".to_vec().into())
            .send()
            .await?;
        // Nothing in the namespace points at the Project.
        for rb in Api::<RoleBinding>::namespaced(client.clone(), name)
            .list(&ListParams::default())
            .await?
            .items
        {
            assert!(rb.owner_references().is_empty(), "{}", rb.name_any());
        }
    }

    eprintln!(
        "{:.1} s: three projects Ready with their data",
        begin.elapsed().as_secs_f64()
    );
    // 1. The platform default changes to Delete: a project created before keeps Retain.
    platform
        .settings(json!({"defaultDeletionPolicy": "Delete"}))
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recorded(&projects.get("flipped").await?),
        Some(DeletionPolicy::Retain)
    );
    projects.delete("flipped", &DeleteParams::default()).await?;
    gone(&projects, "flipped").await?;
    eprintln!("{:.1} s: flipped is gone", begin.elapsed().as_secs_f64());
    survived(&client, "flipped").await?;
    assert!(bucket_stays(&garage, "flipped").await?);
    eprintln!(
        "{:.1} s: 1/3: a settings change of the default did not turn Retain into Delete",
        begin.elapsed().as_secs_f64()
    );

    // 2. The operator is down; a Retain project is deleted and its finalizer removed by hand.
    platform.operator.stop(Duration::from_secs(5));
    projects.delete("kept", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        projects.get_opt("kept").await?.is_some(),
        "the finalizer should hold the project while the operator is down"
    );
    projects
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await?;
    gone(&projects, "kept").await?;
    survived(&client, "kept").await?;
    assert!(bucket_stays(&garage, "kept").await?);
    eprintln!(
        "{:.1} s: 2/3: the operator stopped and the finalizer removed by hand: the data stayed",
        begin.elapsed().as_secs_f64()
    );

    // 3. The operator is back, and the Project CRD is deleted (an uninstall): even the project
    //    whose policy is Delete keeps its namespace.
    let mut operator = start_operator(plane, 2).await?;
    ready(&client, "doomed").await?;
    let doomed_s3 = s3_from_secret(
        &Api::<Secret>::namespaced(client.clone(), "doomed")
            .get("berth-storage")
            .await?,
    )?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("projects.berth.dev", &DeleteParams::default())
        .await?;
    until("the Project CRD to go", || async {
        Ok(crds
            .get_opt("projects.berth.dev")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    survived(&client, "doomed").await?;
    assert!(bucket_stays(&garage, "doomed").await?);
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields("involvedObject.name=doomed"))
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("UninstallRetains")),
        "no UninstallRetains event"
    );
    // And outside the cluster: the Delete project's bucket, its data and its key.
    assert!(can_read(&doomed_s3, "doomed", "weights.bin").await);
    eprintln!(
        "{:.1} s: 3/3: the CRD deleted: a Delete project's namespace and bucket stayed",
        begin.elapsed().as_secs_f64()
    );
    operator.stop(Duration::from_secs(5));
    Ok(())
}
