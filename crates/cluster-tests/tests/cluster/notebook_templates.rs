//! NotebookTemplates on the real control plane with kwok nodes (4 nvidia.com/gpu each), the
//! operator under its shipped RBAC, and a project owner acting as themselves (impersonated).
//! What admission refuses, and the chart's template, are in `notebook_template_admission.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::Project;
use berth_api::conditions::get;
use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;

use crate::project::{create, wait_ready};
use crate::support::{eventually, unique, with_operator};

const WAIT: Duration = Duration::from_secs(60);
/// The namespace label the second template selects on: only a platform admin sets it (through the
/// Project's spec.namespaceLabels; PlatformSettings lets tenants set no prefix).
const TIER: &str = "platform.example.com/gpu-tier";

/// A static volume for a notebook's home, bound to its claim in advance (no provisioner here).
async fn home_volume(admin: &Client, namespace: &str, notebook: &str) -> Result<()> {
    let volume: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": unique("nb-home")},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "berth-static",
            "hostPath": {"path": format!("/tmp/{}", unique("berth-nb-home"))},
            "claimRef": {"namespace": namespace, "name": format!("{notebook}-home")},
        },
    }))?;
    Api::<PersistentVolume>::all(admin.clone())
        .create(&PostParams::default(), &volume)
        .await?;
    Ok(())
}

async fn spawn(owner: &Client, admin: &Client, ns: &str, name: &str, spec: Value) -> Result<()> {
    home_volume(admin, ns, name).await?;
    let mut spec = spec;
    spec["home"] = json!({"size": "1Gi", "storageClassName": "berth-static"});
    let notebook: Notebook = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))?;
    Api::<Notebook>::namespaced(owner.clone(), ns)
        .create(&PostParams::default(), &notebook)
        .await?;
    Ok(())
}

/// Waits until the notebook's Ready condition has `reason`; returns the notebook.
async fn until_reason(client: &Client, ns: &str, name: &str, reason: &str) -> Result<Notebook> {
    let api: Api<Notebook> = Api::namespaced(client.clone(), ns);
    let last = std::sync::Mutex::new(String::new());
    let found = eventually(
        &format!("notebook {ns}/{name} Ready reason {reason}"),
        WAIT,
        || async {
            let nb = api.get(name).await?;
            let ready = nb
                .status
                .as_ref()
                .and_then(|s| get(&s.conditions, "Ready"))
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default();
            let hit = ready.starts_with(&format!("{reason}:"));
            if let Ok(mut l) = last.lock() {
                *l = ready;
            }
            Ok(hit.then_some(nb))
        },
    )
    .await;
    found.with_context(|| {
        format!(
            "last Ready: {}",
            last.lock().map(|l| l.clone()).unwrap_or_default()
        )
    })
}

fn ready_message(nb: &Notebook) -> String {
    nb.status
        .as_ref()
        .and_then(|s| get(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

pub fn template(name: &str, spec: Value) -> Result<NotebookTemplate> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "NotebookTemplate",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

/// The refusal of an API call: its HTTP code and message.
pub fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> Result<(u16, String)> {
    match result {
        Err(kube::Error::Api(status)) => Ok((status.code, status.message)),
        other => bail!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tenant_spawns_from_templates_within_what_they_allow_and_cannot_grant_itself_one()
-> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let began = std::time::Instant::now();
    let step = |what: &str| {
        eprintln!(
            "[notebook_templates] {what} after {:.1} s",
            began.elapsed().as_secs_f64()
        )
    };
    let ns = unique("nbt");
    let owner_name = format!("{}@example.com", unique("nbt-owner"));
    create(
        &admin,
        &ns,
        json!({"owners": [owner_name], "resourceQuota": {"hard": {"requests.nvidia.com/gpu": "32"}}}),
    )
    .await?;

    // The admin's templates: one for this project (GPU bundles, a redirected image, custom
    // maxima), one for projects with an admin-set namespace label only.
    let gpu = unique("nbt-gpu");
    let tiered = unique("nbt-tiered");
    let templates: Api<NotebookTemplate> = Api::all(admin.clone());
    templates
        .create(
            &PostParams::default(),
            &template(
                &gpu,
                json!({
                    "displayName": "GPU lab",
                    "images": [
                        {"id": "py311", "image": "berth.dev/jupyter:test", "labels": {"python": "3.11"}},
                        {"id": "py310", "image": "berth.dev/jupyter:old", "redirect": {"to": "py311", "message": "Python 3.10 is retired; this notebook now runs Python 3.11"}},
                    ],
                    "defaultImage": "py311",
                    "bundles": [
                        {"id": "gpu-1", "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                         "gpu": {"resource": "nvidia.com/gpu", "count": 1}, "sharedMemory": "256Mi",
                         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
                        {"id": "gpu-16", "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                         "gpu": {"resource": "nvidia.com/gpu", "count": 16}},
                    ],
                    "defaultBundle": "gpu-1",
                    "custom": {"maximum": {"cpu": "2", "memory": "4Gi"}},
                    "projects": {"matchLabels": {"berth.dev/project": ns}},
                }),
            )?,
        )
        .await?;
    templates
        .create(
            &PostParams::default(),
            &template(
                &tiered,
                json!({
                    "displayName": "A100 lab",
                    "images": [{"id": "py311", "image": "berth.dev/jupyter:test"}],
                    "defaultImage": "py311",
                    "projects": {"matchLabels": {TIER: "a100"}},
                }),
            )?,
        )
        .await?;
    wait_ready(&admin, &ns).await?;
    step("the project is ready");

    let owner = cluster.impersonate(&owner_name, &[]).await?;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);

    // 1. A GPU bundle on kwok nodes with 4 GPUs each: the pod schedules, with its GPU, and the
    //    redirected image shows in status with the admin's message.
    spawn(
        &owner,
        &admin,
        &ns,
        "gpu",
        json!({"template": gpu, "bundle": "gpu-1", "imageId": "py310"}),
    )
    .await?;
    // 2. A bundle asking for more GPUs than any node has: Unschedulable, naming the resource.
    spawn(
        &owner,
        &admin,
        &ns,
        "huge",
        json!({"template": gpu, "bundle": "gpu-16"}),
    )
    .await?;
    // 3. A template not offered to this project.
    spawn(&owner, &admin, &ns, "tiered", json!({"template": tiered})).await?;
    // 4. Explicit resources over the template's maximum.
    spawn(
        &owner,
        &admin,
        &ns,
        "custom",
        json!({"template": gpu, "resources": {"requests": {"cpu": "3"}, "limits": {"memory": "8Gi"}}}),
    )
    .await?;

    let running = until_reason(&owner, &ns, "gpu", "Running").await?;
    step("the GPU notebook runs");
    let status = running.status.clone().context("no status")?;
    ensure!(
        status.template.as_deref() == Some(gpu.as_str()),
        "{status:?}"
    );
    ensure!(status.bundle.as_deref() == Some("gpu-1"), "{status:?}");
    ensure!(status.image_id.as_deref() == Some("py311"), "{status:?}");
    ensure!(
        status.image.as_deref() == Some("berth.dev/jupyter:test"),
        "{status:?}"
    );
    let current = get(&status.conditions, "ImageCurrent").context("no ImageCurrent")?;
    ensure!(
        current.status == "False"
            && current.reason == "Redirected"
            && current.message
                == "image py310 is redirected to py311: Python 3.10 is retired; this notebook now runs Python 3.11",
        "{current:?}"
    );
    // The admin rewords the redirect: the notebook's status follows the template.
    let mut reworded = templates.get(&gpu).await?;
    reworded.spec.images[1]
        .redirect
        .as_mut()
        .context("no redirect")?
        .message = "Python 3.10 went away on 1 December".into();
    reworded.metadata.managed_fields = None;
    templates
        .replace(&gpu, &PostParams::default(), &reworded)
        .await?;
    let notebooks: Api<Notebook> = Api::namespaced(owner.clone(), &ns);
    eventually(
        "the notebook's status to follow the template's change",
        WAIT,
        || async {
            let nb = notebooks.get("gpu").await?;
            Ok(nb
                .status
                .as_ref()
                .and_then(|s| get(&s.conditions, "ImageCurrent"))
                .is_some_and(|c| c.message.ends_with("Python 3.10 went away on 1 December"))
                .then_some(()))
        },
    )
    .await?;
    let pod = pods.get("gpu-0").await?;
    let spec = pod.spec.clone().context("pod without spec")?;
    ensure!(spec.node_name.is_some(), "the GPU pod is not scheduled");
    let limits = spec.containers[0]
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    ensure!(
        limits.get("nvidia.com/gpu").map(|q| q.0.as_str()) == Some("1"),
        "{limits:?}"
    );
    ensure!(
        spec.volumes.iter().flatten().any(|v| v.name == "shm"
            && v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()) == Some("Memory")),
        "no /dev/shm volume"
    );

    let huge = until_reason(&owner, &ns, "huge", "Unschedulable").await?;
    step("the 16-GPU notebook is Unschedulable");
    let message = ready_message(&huge);
    ensure!(
        message.starts_with("no node has enough nvidia.com/gpu (asks 16)")
            && message.contains("Insufficient nvidia.com/gpu")
            && message.contains("pick a smaller bundle than gpu-16"),
        "{message}"
    );

    let tiered_nb = until_reason(&owner, &ns, "tiered", "TemplateNotAllowed").await?;
    ensure!(
        ready_message(&tiered_nb).contains("is not offered to this project"),
        "{}",
        ready_message(&tiered_nb)
    );
    let custom = until_reason(&owner, &ns, "custom", "ResourcesAboveMaximum").await?;
    let message = ready_message(&custom);
    ensure!(
        message.contains("requests.cpu 3 is above the maximum 2")
            && message.contains("limits.memory 8Gi is above the maximum 4Gi"),
        "{message}"
    );
    // Refused notebooks get no pod (nor a StatefulSet).
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), &ns);
    for refused in ["tiered", "custom"] {
        ensure!(
            sets.get_opt(refused).await?.is_none(),
            "{refused} got a StatefulSet"
        );
    }

    // 5. The tenant cannot grant itself the tiered template: not by writing templates, not by
    //    labelling its namespace, directly or through its Project.
    let as_owner: Api<NotebookTemplate> = Api::all(owner.clone());
    let mut failures = Vec::new();
    let mine = template(
        &unique("nbt-mine"),
        json!({"displayName": "Mine", "images": [{"id": "a", "image": "x/a"}], "defaultImage": "a"}),
    )?;
    let attempts: Vec<(&str, kube::Result<()>)> = vec![
        (
            "create a NotebookTemplate",
            as_owner
                .create(&PostParams::default(), &mine)
                .await
                .map(|_| ()),
        ),
        (
            "open the tiered template to all projects",
            as_owner
                .patch(
                    &tiered,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"projects": null}})),
                )
                .await
                .map(|_| ()),
        ),
        (
            "delete the GPU template",
            as_owner.delete(&gpu, &Default::default()).await.map(|_| ()),
        ),
        (
            "label the project's namespace",
            Api::<Namespace>::all(owner.clone())
                .patch(
                    &ns,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"labels": {TIER: "a100"}}})),
                )
                .await
                .map(|_| ()),
        ),
        (
            "set the label through the Project's namespaceLabels",
            Api::<Project>::all(owner.clone())
                .patch(
                    &ns,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"namespaceLabels": {TIER: "a100"}}})),
                )
                .await
                .map(|_| ()),
        ),
    ];
    for (what, result) in attempts {
        match refusal(result) {
            Ok((403, _)) => {}
            Ok((code, message)) => failures.push(format!("{what}: {code} {message}")),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    // As a project creator, the owner cannot make a new project carrying the label either.
    crate::attacks::grant_creator(&admin, &owner_name).await?;
    let labelled: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": unique("nbt-forged")},
        "spec": {"owners": [owner_name], "namespaceLabels": {TIER: "a100"}},
    }))?;
    let projects_as_owner: Api<Project> = Api::all(owner.clone());
    let refused = eventually(
        "the creator's new project with the label to be refused by admission",
        WAIT,
        || async {
            match projects_as_owner
                .create(&PostParams::default(), &labelled)
                .await
            {
                Ok(p) => bail!("a tenant created a project labelled {TIER}: {p:?}"),
                // Until the binding reaches the authorizer, RBAC refuses first.
                Err(kube::Error::Api(s))
                    if s.message.contains("namespace labels need a platform admin") =>
                {
                    Ok(Some(s.message))
                }
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await?;
    ensure!(refused.contains(TIER), "{refused}");
    step("the creator is refused the label");
    // The tenant may read the templates (a spawner lists them).
    ensure!(
        as_owner.get(&gpu).await.is_ok(),
        "the owner cannot read the template offered to them"
    );
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing changed: the template, the namespace, the notebook's refusal.
    let unchanged = templates.get(&tiered).await?;
    ensure!(
        unchanged
            .spec
            .projects
            .as_ref()
            .map(|p| p.match_labels.clone())
            == Some(BTreeMap::from([(TIER.to_owned(), "a100".to_owned())]))
    );
    let namespace = Api::<Namespace>::all(admin.clone()).get(&ns).await?;
    ensure!(!namespace.labels().contains_key(TIER));
    until_reason(&owner, &ns, "tiered", "TemplateNotAllowed").await?;

    // 6. A platform admin can: the Project's namespace label reaches the namespace, and the
    //    notebook that was refused starts (its namespace's change wakes it).
    Api::<Project>::all(admin.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"namespaceLabels": {TIER: "a100"}}})),
        )
        .await?;
    let started = until_reason(&owner, &ns, "tiered", "Running").await?;
    step("the admin-labelled project's notebook runs");
    ensure!(started.status.as_ref().and_then(|s| s.template.as_deref()) == Some(tiered.as_str()));

    templates.delete(&gpu, &Default::default()).await?;
    templates.delete(&tiered, &Default::default()).await?;
    Ok(())
}
