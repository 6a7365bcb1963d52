//! The Notebook controller on kwok nodes: the pod runs as the project's account with its pull
//! secret, a data volume that cannot be mounted holds the notebook (no pod) until it can, and a
//! notebook over the project's quota says so with the numbers, as its owner sees it, and starts
//! once another notebook stops. (Jupyter itself, culling and who may open a notebook are tested
//! on the real node: tests/realnode/notebooks.rs.)

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use berth_api::notebook::Notebook;

use crate::project::{create, wait_ready};
use crate::support::{eventually, project_namespace, unique, with_operator};

const WAIT: Duration = Duration::from_secs(60);

fn notebook(name: &str, spec: Value) -> Result<Notebook> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

/// The notebook's Ready condition as (reason, message), once `check` accepts it.
async fn ready_reason(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&str, &str) -> bool,
) -> Result<(String, String)> {
    let api: Api<Notebook> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("notebook {name}: {what}"), WAIT, || async {
        let nb = api.get(name).await?;
        Ok(nb
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == "Ready")
            .filter(|c| check(&c.reason, &c.message))
            .map(|c| (c.reason.clone(), c.message.clone())))
    })
    .await
}

async fn replicas(client: &Client, namespace: &str, name: &str, want: i32) -> Result<StatefulSet> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("StatefulSet {name} with {want} replicas"),
        WAIT,
        || async {
            Ok(api
                .get_opt(name)
                .await?
                .filter(|s| s.spec.as_ref().and_then(|s| s.replicas) == Some(want)))
        },
    )
    .await
}

fn labelled(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some([(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())].into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_pod_pulls_with_the_project_secret_and_waits_for_its_data_volume() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let ns = project_namespace(&admin, "nb-wiring").await?;
    // What the Project controller makes in a project's namespace with the registry part on.
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: labelled("project-automation"),
                ..Default::default()
            },
        )
        .await?;
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: labelled("berth-registry"),
                type_: Some("kubernetes.io/dockerconfigjson".into()),
                string_data: Some(
                    [(".dockerconfigjson".to_owned(), r#"{"auths":{}}"#.to_owned())].into(),
                ),
                ..Default::default()
            },
        )
        .await?;
    let notebooks: Api<Notebook> = Api::namespaced(admin.clone(), &ns);

    // Admission refuses a claim of another namespace and a system path, with the reason.
    for (volume, words) in [
        (
            json!({"name": "x", "mountPath": "/data", "existingClaim": "other/claim"}),
            "existingClaim is the name of a PersistentVolumeClaim in the notebook's namespace",
        ),
        (
            json!({"name": "x", "mountPath": "/etc/x", "new": {"size": "1Gi"}}),
            "mountPath may not be a system directory",
        ),
    ] {
        let refused = notebooks
            .create(
                &PostParams::default(),
                &notebook("refused", json!({"volumes": [volume]}))?,
            )
            .await;
        match refused {
            Err(kube::Error::Api(e)) if e.message.contains(words) => {}
            other => bail!("expected a refusal saying {words:?}, got {other:?}"),
        }
    }

    notebooks
        .create(
            &PostParams::default(),
            &notebook(
                "lab",
                json!({"volumes": [
                    {"name": "data", "mountPath": "/data", "new": {"size": "1Gi"}},
                    {"name": "shared", "mountPath": "/home/jovyan/shared", "existingClaim": "datasets", "readOnly": true},
                ]}),
            )?,
        )
        .await?;
    // The claim does not exist: a reason, what to do, and no pod.
    let (_, message) = ready_reason(&admin, &ns, "lab", "VolumeNotFound", |r, _| {
        r == "VolumeNotFound"
    })
    .await?;
    assert!(message.contains("datasets"), "{message}");
    let held = replicas(&admin, &ns, "lab", 0).await?;
    let pod = held.spec.and_then(|s| s.template.spec).unwrap_or_default();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("project-automation")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    let secrets: Vec<String> = pod
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(secrets, vec!["berth-registry".to_owned()]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
    assert!(
        claims.get_opt("lab-data").await?.is_none(),
        "a held notebook made a new claim"
    );
    assert!(
        Api::<Pod>::namespaced(admin.clone(), &ns)
            .get_opt("lab-0")
            .await?
            .is_none()
    );

    // The claim appears: the notebook starts with both volumes.
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "datasets"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    claims.create(&PostParams::default(), &pvc).await?;
    let running = replicas(&admin, &ns, "lab", 1).await?;
    let pod = running
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/home/jovyan/shared" && m.read_only == Some(true))
    );
    let data = eventually("the new claim lab-data", WAIT, || async {
        Ok(claims.get_opt("lab-data").await?)
    })
    .await?;
    assert!(data.metadata.owner_references.is_none());

    // A claim that is someone else's is never taken over.
    let squatter: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "lab-more"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    claims.create(&PostParams::default(), &squatter).await?;
    notebooks
        .patch(
            "lab",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumes": [
                {"name": "data", "mountPath": "/data", "new": {"size": "1Gi"}},
                {"name": "more", "mountPath": "/more", "new": {"size": "1Gi"}},
            ]}})),
        )
        .await?;
    // Its pod exists: the change is not applied, and the pod is left as it is.
    let (_, message) =
        ready_reason(&admin, &ns, "lab", "VolumeTaken", |r, _| r == "VolumeTaken").await?;
    assert!(message.contains("keeps running as it was"), "{message}");
    let kept_running = replicas(&admin, &ns, "lab", 1).await?;
    assert!(
        !kept_running
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.volumes)
            .unwrap_or_default()
            .iter()
            .any(|v| v.name == "data-more"),
        "the change was applied"
    );
    let kept = claims.get("lab-more").await?;
    assert!(kept.labels().is_empty(), "the squatter's claim was changed");
    let _ = Api::<Namespace>::all(admin.clone())
        .delete(&ns, &Default::default())
        .await;
    Ok(())
}

#[tokio::test]
async fn a_notebook_over_quota_says_so_with_the_numbers_and_starts_when_room_appears() -> Result<()>
{
    let (cluster, admin) = with_operator().await?;
    let name = unique("nb-quota");
    let owner = format!("owner-{name}@example.com");
    create(
        &admin,
        &name,
        json!({
            "owners": [owner],
            "resourceQuota": {"hard": {"requests.memory": "3Gi"}},
        }),
    )
    .await?;
    wait_ready(&admin, &name).await?;
    let as_owner = cluster.impersonate(&owner, &[]).await?;
    let notebooks: Api<Notebook> = Api::namespaced(as_owner.clone(), &name);
    let two_gi = json!({"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}});
    notebooks
        .create(&PostParams::default(), &notebook("first", two_gi.clone())?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &name);
    eventually("pod first-0", WAIT, || async {
        Ok(pods.get_opt("first-0").await?)
    })
    .await?;
    // The pod runs as the project's account, with no token.
    let first = replicas(&admin, &name, "first", 1).await?;
    let pod = first.spec.and_then(|s| s.template.spec).unwrap_or_default();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("project-automation")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));

    notebooks
        .create(&PostParams::default(), &notebook("second", two_gi)?)
        .await?;
    let (_, message) = ready_reason(&as_owner, &name, "second", "QuotaExceeded", |r, _| {
        r == "QuotaExceeded"
    })
    .await?;
    assert!(
        message.contains(
            "needs requests.memory 2Gi but the project has 1Gi of 3Gi left (quota berth-quota)"
        ),
        "{message}"
    );
    replicas(&admin, &name, "second", 0).await?;
    assert!(pods.get_opt("second-0").await?.is_none());

    // The owner stops the first notebook: the second starts.
    notebooks
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"stopped": true}})),
        )
        .await?;
    replicas(&admin, &name, "second", 1).await?;
    eventually("pod second-0", WAIT, || async {
        Ok(pods.get_opt("second-0").await?)
    })
    .await?;
    ready_reason(
        &as_owner,
        &name,
        "second",
        "no longer QuotaExceeded",
        |r, _| r != "QuotaExceeded",
    )
    .await?;
    Ok(())
}

/// An owner who makes a Service named like a notebook beforehand, as an ExternalName pointing
/// anywhere, does not keep it: once the Notebook exists its Service is a ClusterIP owned by the
/// Notebook (the console dials only such a Service's cluster IP).
#[tokio::test]
async fn a_service_made_beforehand_becomes_the_notebooks_cluster_ip() -> Result<()> {
    use k8s_openapi::api::core::v1::Service;
    let (cluster, admin) = with_operator().await?;
    let name = unique("nb-svc");
    let owner = format!("owner-{name}@example.com");
    create(&admin, &name, json!({"owners": [owner]})).await?;
    wait_ready(&admin, &name).await?;
    let as_owner = cluster.impersonate(&owner, &[]).await?;
    let services: Api<Service> = Api::namespaced(as_owner.clone(), &name);
    let squat: Service = serde_json::from_value(json!({
        "metadata": {"name": "lab"},
        "spec": {"type": "ExternalName", "externalName": "berth-operator.berth-system.svc"},
    }))?;
    services.create(&PostParams::default(), &squat).await?;
    let notebooks: Api<Notebook> = Api::namespaced(as_owner.clone(), &name);
    notebooks
        .create(&PostParams::default(), &notebook("lab", json!({}))?)
        .await?;
    let uid = notebooks.get("lab").await?.uid().unwrap_or_default();
    let service = eventually("the notebook's Service", WAIT, || async {
        let s = services.get("lab").await?;
        let owned = s
            .owner_references()
            .iter()
            .any(|o| o.kind == "Notebook" && o.uid == uid && o.controller == Some(true));
        let spec = s.spec.clone().unwrap_or_default();
        let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        Ok((owned
            && spec.type_.as_deref() == Some("ClusterIP")
            && !cluster_ip.is_empty()
            && cluster_ip != "None")
            .then_some(s))
    })
    .await?;
    // The member's externalName field stays (the API server ignores it for a ClusterIP, and it
    // is the member's field), but it no longer decides anything: the Service has a cluster IP
    // and the notebook's selector.
    let spec = service.spec.unwrap_or_default();
    assert_eq!(
        spec.selector.unwrap_or_default().get("berth.dev/notebook"),
        Some(&"lab".to_owned())
    );
    Ok(())
}

/// The operator holds no exec right of its own (RBAC cannot confine one to Berth's namespaces, and
/// admission policies are not consulted for exec): tried with its own token, exec is refused
/// everywhere until an admin binds `berth-notebook-exec` in a namespace, and then allowed there
/// only.
#[tokio::test]
async fn the_operator_execs_only_where_an_admin_granted_it() -> Result<()> {
    use kube::api::AttachParams;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    let (cluster, admin) = crate::support::admin().await?;
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("operator-exec")));
    cluster.operator_kubeconfig(&path).await?;
    let operator = Client::try_from(
        kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path)?,
            &KubeConfigOptions::default(),
        )
        .await?,
    )?;
    let granted = project_namespace(&admin, "nb-exec").await?;
    let other = project_namespace(&admin, "nb-exec-other").await?;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lab-0"},
        "spec": {"containers": [{"name": "notebook", "image": "127.0.0.1:1/none"}]},
    }))?;
    for ns in [&granted, &other] {
        Api::<Pod>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await?;
    }
    // The answer to an exec of `date` as the operator: None when it was let through.
    let exec = async |ns: &str| -> Option<String> {
        let params = AttachParams::default()
            .container("notebook")
            .stdin(false)
            .stdout(true)
            .stderr(false);
        match Api::<Pod>::namespaced(operator.clone(), ns)
            .exec("lab-0", ["date"], &params)
            .await
        {
            Err(kube::Error::Api(status)) => Some(format!("{} {}", status.code, status.message)),
            Err(other) => Some(other.to_string()),
            Ok(_) => None,
        }
    };
    let forbidden = |answer: &Option<String>| {
        answer
            .as_deref()
            .is_some_and(|a| a.starts_with("403") && a.contains("pods/exec"))
    };
    for ns in [&granted, &other] {
        let answer = exec(ns).await;
        assert!(forbidden(&answer), "{answer:?}");
    }
    berth_testenv::manifests::grant_notebook_exec(&admin, &granted).await?;
    let answer = eventually("exec allowed where granted", WAIT, || async {
        let answer = exec(&granted).await;
        Ok((!forbidden(&answer)).then_some(answer))
    })
    .await?;
    // Past authorization; kwok's nodes may or may not answer an exec.
    assert!(
        !answer.as_deref().is_some_and(|a| a.starts_with("403")),
        "{answer:?}"
    );
    let answer = exec(&other).await;
    assert!(forbidden(&answer), "{answer:?}");
    Ok(())
}
