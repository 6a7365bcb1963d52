//! A platform team's whole path with the charts, on one cluster with the real node: dry-run,
//! install, upgrade to a changed chart, uninstall, install again, and the leader's pod deleted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::Project;
use berth_testenv::chart::{self, CHART, CRDS_CHART, NAMESPACE};
use berth_testenv::realnode::{self, NODE_NAME};

use crate::support::{Env, MANAGER, env, eventually, unique, values};

const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=berth-operator";

fn step(began: Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", began.elapsed().as_secs_f64());
}

/// Server-side applies every object of a rendered chart as a dry run: the API server validates
/// and admits each, and stores nothing.
async fn dry_run(client: &Client, rendered: &str, origin: &str) -> Result<usize> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let objects = berth_testenv::manifests::parse_objects(rendered, origin)?;
    let params = PatchParams::apply(MANAGER).force().dry_run();
    for object in &objects {
        let types = object.types.clone().context("an object without a kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("the cluster does not serve {gvk:?}"))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.namespace().as_deref().unwrap_or(NAMESPACE),
                &resource,
            ),
        };
        api.patch(&object.name_any(), &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("dry-run of {} {}", types.kind, object.name_any()))?;
    }
    Ok(objects.len())
}

/// Applies a Project of `owner` (storage on or off) and waits until it is Ready.
async fn project_ready(client: &Client, name: &str, spec: Value) -> Result<Project> {
    let projects: Api<Project> = Api::all(client.clone());
    projects
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
                "metadata": {"name": name}, "spec": spec,
            })),
        )
        .await?;
    ready(client, name).await
}

async fn ready(client: &Client, name: &str) -> Result<Project> {
    let projects: Api<Project> = Api::all(client.clone());
    eventually(
        &format!("Project {name} Ready"),
        Duration::from_secs(90),
        || async {
            let p = projects.get(name).await?;
            let conditions = p.status.clone().map(|s| s.conditions).unwrap_or_default();
            Ok(berth_api::conditions::is_true(&conditions, "Ready").then_some(p))
        },
    )
    .await
}

/// The operator's pods: name -> (node, ready).
async fn operator_pods(client: &Client) -> Result<BTreeMap<String, (String, bool)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(pods
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            (p.name_any(), (node, ready))
        })
        .collect())
}

async fn leader(client: &Client) -> Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(leases
        .get_opt("berth-operator")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// Waits until one of the running operator pods holds the lease; returns its name.
async fn elected(client: &Client, not: Option<&str>) -> Result<String> {
    eventually(
        "an operator pod to lead",
        Duration::from_secs(60),
        || async {
            let pods = operator_pods(client).await?;
            Ok(leader(client)
                .await?
                .filter(|h| pods.contains_key(h) && Some(h.as_str()) != not))
        },
    )
    .await
}

/// The Garage bucket names.
async fn buckets(env: &Env) -> Result<Vec<String>> {
    let url = format!("{}/v2/ListBuckets", env.platform.admin_endpoint);
    let answer: Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&env.platform.admin_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["globalAliases"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect())
}

/// A pod of the tenant's on the real node that sleeps: (uid, restarts).
async fn tenant_pod(client: &Client, namespace: &str, image: &str) -> Result<(String, i32)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "tenant-work"},
        "spec": {
            "nodeSelector": realnode::node_selector(),
            "tolerations": [realnode::toleration()],
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "work", "image": image, "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", "sleep 100000"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))?;
    if pods.get_opt("tenant-work").await?.is_none() {
        pods.create(&PostParams::default(), &pod).await?;
    }
    tenant_state(client, namespace).await
}

async fn tenant_state(client: &Client, namespace: &str) -> Result<(String, i32)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    eventually(
        "the tenant's pod running",
        Duration::from_secs(60),
        || async {
            let pod = pods.get("tenant-work").await?;
            let status = pod.status.clone().unwrap_or_default();
            let running = status.phase.as_deref() == Some("Running");
            let restarts = status
                .container_statuses
                .unwrap_or_default()
                .first()
                .map(|c| c.restart_count)
                .unwrap_or(0);
            Ok(running.then(|| (pod.uid().unwrap_or_default(), restarts)))
        },
    )
    .await
}

/// A copy of `charts/` changed the way a new Berth release changes it: a new field in the
/// PlatformSettings CRD, the same in the values schema, and new chart versions.
fn changed_charts(dir: &Path) -> Result<std::path::PathBuf> {
    let root = berth_testenv::util::repo_root();
    let out = dir.join("charts-next");
    let _ = std::fs::remove_dir_all(&out);
    for chart in [CHART, CRDS_CHART] {
        copy_dir(
            &root.join(chart),
            &out.join(Path::new(chart).strip_prefix("charts")?),
        )?;
    }
    // The new field, in the CRD...
    let crd_path = out.join("berth-crds/templates/platformsettings.berth.dev.yaml");
    let text = std::fs::read_to_string(&crd_path)?;
    let (header, body) = text.split_once('\n').context("an empty CRD template")?;
    let mut crd: Value = serde_yaml::from_str(body)?;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["upgradeMarker"] =
        json!({"type": "string", "description": "A field the next release adds."});
    std::fs::write(
        &crd_path,
        format!("{header}\n{}", serde_yaml::to_string(&crd)?),
    )?;
    // ...and in the values schema.
    let schema_path = out.join("berth/values.schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path)?)?;
    schema["properties"]["settings"]["properties"]["upgradeMarker"] =
        json!({"type": "string", "description": "A setting the next release adds."});
    std::fs::write(&schema_path, serde_json::to_vec_pretty(&schema)?)?;
    for chart in ["berth", "berth-crds"] {
        let path = out.join(chart).join("Chart.yaml");
        let text =
            std::fs::read_to_string(&path)?.replace("\nversion: 0.1.0\n", "\nversion: 0.1.1\n");
        std::fs::write(&path, text)?;
    }
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The PlatformSettings `default`, untyped (it may carry fields these types do not know).
async fn settings(client: &Client) -> Result<Option<DynamicObject>> {
    // Typed for its name and plural (from_gvk would guess `platformsettingses`), read untyped.
    let resource = ApiResource::erase::<berth_api::PlatformSettings>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    Ok(api.get_opt("default").await?)
}

/// A file of the operator pod `uid`'s cgroup (v1, `controller`), as the real node's kubelet makes
/// it (cgroupfs driver, under `/berth-node`, by QoS class).
fn pod_cgroup_file(controller: &str, uid: &str, file: &str) -> Option<String> {
    ["burstable/", "besteffort/", ""].iter().find_map(|qos| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{controller}/{}/kubepods/{qos}pod{uid}/{file}",
            realnode::NODE_CGROUP
        ))
        .ok()
    })
}

/// Each operator pod's CPU (millicores averaged over 5 s, and seconds used since it started) and
/// working-set memory (MiB: usage minus inactive file pages, as the kubelet computes it), read
/// from the pod's cgroup on the real node.
async fn usage(client: &Client) -> Result<Vec<(String, u64, f64, u64)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let listed: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await?
        .items
        .into_iter()
        .filter_map(|p| Some((p.name_any(), p.uid()?)))
        .collect();
    let cpu = |uid: &str| -> Option<u64> {
        pod_cgroup_file("cpuacct", uid, "cpuacct.usage")?
            .trim()
            .parse()
            .ok()
    };
    let before: Vec<Option<u64>> = listed.iter().map(|(_, uid)| cpu(uid)).collect();
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let mut out = Vec::new();
    for ((name, uid), before) in listed.iter().zip(before) {
        let (Some(before), Some(after)) = (before, cpu(uid)) else {
            continue;
        };
        let usage: u64 = pod_cgroup_file("memory", uid, "memory.usage_in_bytes")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let inactive: u64 = pod_cgroup_file("memory", uid, "memory.stat")
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("total_inactive_file "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        let millicores = after.saturating_sub(before) / (window.as_millis() as u64 * 1000);
        let seconds = after as f64 / 1e9;
        out.push((
            name.clone(),
            millicores,
            seconds,
            usage.saturating_sub(inactive) >> 20,
        ));
    }
    ensure!(
        !out.is_empty(),
        "no operator pod's cgroup found under /sys/fs/cgroup/*/{}",
        realnode::NODE_CGROUP
    );
    Ok(out)
}

#[tokio::test]
async fn install_upgrade_uninstall_reinstall_and_failover() -> Result<()> {
    let env = env().await?;
    let client = &env.client;
    let helm = &env.helm;
    let began = Instant::now();
    let values = values(&env)?;
    let dir = env.platform.dir.clone();

    step(
        began,
        "1/6 helm template + server-side dry-run of both charts",
    );
    let crds = helm
        .run(&["template", chart::CRDS_RELEASE, CRDS_CHART])
        .await?;
    let n = dry_run(client, &crds, "charts/berth-crds").await?;
    // The berth chart's kinds need the CRDs: install them, then dry-run the rest.
    helm.run(&[
        "upgrade",
        "--install",
        chart::CRDS_RELEASE,
        CRDS_CHART,
        "--namespace",
        NAMESPACE,
        "--wait",
    ])
    .await?;
    std::fs::write(dir.join("values.json"), serde_json::to_vec_pretty(&values)?)?;
    let values_file = dir.join("values.json").display().to_string();
    let rendered = helm
        .run(&[
            "template",
            chart::RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--values",
            &values_file,
        ])
        .await?;
    let m = dry_run(client, &rendered, "charts/berth").await?;
    eprintln!(
        "    dry-run: {n} + {m} objects admitted; charts/berth renders {} bytes",
        rendered.len()
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    ensure!(
        deployments.get_opt("berth-operator").await?.is_none(),
        "the dry run stored something"
    );

    step(
        began,
        "2/6 helm install: two replicas on the real node, a leader, a Project Ready",
    );
    let install_began = Instant::now();
    chart::install(helm, None, &values, &dir).await?;
    let pods = operator_pods(client).await?;
    ensure!(pods.len() == 2, "operator pods: {pods:?}");
    for (name, (node, ready)) in &pods {
        ensure!(
            node == NODE_NAME && *ready,
            "pod {name} on {node}, ready {ready}"
        );
    }
    let first_leader = elected(client, None).await?;
    let a = unique("chart-a");
    let project_a = project_ready(client, &a, json!({"owners": ["owner@example.com"]})).await?;
    let install_to_ready = install_began.elapsed();
    eprintln!(
        "    install to a Project Ready: {:.1} s (leader {first_leader})",
        install_to_ready.as_secs_f64()
    );
    ensure!(buckets(&env).await?.contains(&a), "no bucket {a} in Garage");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace_uid = namespaces.get(&a).await?.uid();
    // A tenant's workload on the real node.
    let namespaces_api: Api<Namespace> = Api::all(client.clone());
    namespaces_api
        .patch(
            &a,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": realnode::namespace_placement()}})),
        )
        .await?;
    let tenant = tenant_pod(client, &a, &env.shared.images.reference("helper")?).await?;
    for (pod, cpu, total, memory) in usage(client).await? {
        eprintln!(
            "    {pod}: {cpu}m CPU now, {total:.2} CPU s since start, {memory} MiB working set (after onboarding one Project)"
        );
    }
    crate::observability::metrics_are_what_the_chart_reads(client, &env).await?;

    step(
        began,
        "3/6 helm upgrade to a changed chart (a new CRD field, a new setting)",
    );
    let before = ready(client, &a).await?;
    let next = changed_charts(&dir)?;
    let mut next_values = values.clone();
    next_values["settings"]["upgradeMarker"] = json!("next");
    chart::install(helm, Some(&next), &next_values, &dir).await?;
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("platformsettings.berth.dev")
        .await?;
    let crd_text = serde_json::to_string(&crd.spec)?;
    ensure!(
        crd_text.contains("upgradeMarker"),
        "the CRD was not upgraded"
    );
    let upgraded = settings(client).await?.context("no PlatformSettings")?;
    ensure!(
        upgraded.data["spec"]["upgradeMarker"] == json!("next"),
        "the new setting did not arrive: {}",
        upgraded.data["spec"]
    );
    let new_leader = elected(client, None).await?;
    ensure!(
        !pods.contains_key(&new_leader),
        "the operator pods did not roll"
    );
    // The new leader reconciles a new Project, and left the old one as it was.
    let b = unique("chart-b");
    project_ready(
        client,
        &b,
        json!({"owners": ["owner@example.com"], "storage": {"enabled": false}}),
    )
    .await?;
    let after = ready(client, &a).await?;
    // Untouched: the same object, spec and generation. Its status may be rewritten by the new
    // leader with what changed meanwhile (the tenant pod's quota usage); shown when it was.
    ensure!(
        after.metadata.uid == before.metadata.uid
            && after.metadata.generation == before.metadata.generation
            && serde_json::to_value(&after.spec)? == serde_json::to_value(&before.spec)?,
        "Project {a} was changed during the upgrade"
    );
    if after.resource_version() != before.resource_version() {
        let (old, new) = (
            serde_json::to_value(&before.status)?,
            serde_json::to_value(&after.status)?,
        );
        let changed: Vec<&String> = new
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| old.get(k.as_str()) != Some(v))
            .map(|(k, _)| k)
            .collect();
        eprintln!("    Project {a}: status rewritten by the new leader, fields {changed:?}");
        ensure!(
            changed.iter().all(|k| *k == "quota" || *k == "conditions"),
            "Project {a}: status fields {changed:?} changed during the upgrade"
        );
    }
    ensure!(namespaces.get(&a).await?.uid() == namespace_uid);
    ensure!(
        tenant_state(client, &a).await? == tenant,
        "the tenant's pod restarted"
    );

    step(
        began,
        "4/6 helm uninstall (both releases): Projects, namespaces, buckets, settings stay",
    );
    helm.run(&[
        "uninstall",
        chart::RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
    ])
    .await?;
    helm.run(&[
        "uninstall",
        chart::CRDS_RELEASE,
        "--namespace",
        NAMESPACE,
        "--wait",
    ])
    .await?;
    ensure!(
        deployments.get_opt("berth-operator").await?.is_none(),
        "the operator stayed"
    );
    let projects: Api<Project> = Api::all(client.clone());
    for name in [&a, &b] {
        ensure!(
            projects.get_opt(name).await?.is_some(),
            "Project {name} is gone"
        );
        let ns = namespaces
            .get_opt(name)
            .await?
            .context("a namespace is gone")?;
        ensure!(
            ns.metadata.deletion_timestamp.is_none(),
            "namespace {name} is being deleted"
        );
    }
    ensure!(buckets(&env).await?.contains(&a), "bucket {a} is gone");
    ensure!(
        settings(client).await?.is_some(),
        "the PlatformSettings are gone"
    );
    ensure!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt("berth-project-owner")
            .await?
            .is_some(),
        "the project roles members are bound to are gone"
    );
    ensure!(
        tenant_state(client, &a).await? == tenant,
        "the tenant's pod restarted"
    );
    // Nothing removed later either (the garbage collector had its chance).
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(projects.get_opt(&a).await?.is_some() && buckets(&env).await?.contains(&a));

    step(began, "5/6 a second install finds them and carries on");
    chart::install(helm, None, &values, &dir).await?;
    elected(client, None).await?;
    ensure!(
        namespaces.get(&a).await?.uid() == namespace_uid,
        "namespace {a} was made anew"
    );
    // A change to a Project made before the uninstall is reconciled now.
    let member = "late-member@example.com";
    project_ready(
        client,
        &a,
        json!({"owners": ["owner@example.com"], "members": [{"kind": "User", "name": member, "role": "viewer"}]}),
    )
    .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &a);
    eventually(
        "the new member's RoleBinding",
        Duration::from_secs(60),
        || async {
            let all = bindings.list(&ListParams::default()).await?;
            Ok(all
                .items
                .iter()
                .any(|b| b.subjects.iter().flatten().any(|s| s.name == member))
                .then_some(()))
        },
    )
    .await?;
    ensure!(buckets(&env).await?.contains(&a));
    ensure!(project_a.metadata.uid == ready(client, &a).await?.metadata.uid);
    crate::gateway::a_gateway_model_gets_an_attached_route(client, &b).await?;

    step(
        began,
        "6/6 the leader's pod deleted: the standby takes over and reconciles",
    );
    let old = elected(client, None).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let deleted = Instant::now();
    pods.delete(&old, &DeleteParams::default()).await?;
    let taken = elected(client, Some(&old)).await?;
    eprintln!(
        "    {taken} took over from {old} {:.1} s after the delete",
        deleted.elapsed().as_secs_f64()
    );
    let c = unique("chart-c");
    project_ready(
        client,
        &c,
        json!({"owners": ["owner@example.com"], "storage": {"enabled": false}}),
    )
    .await?;
    eprintln!(
        "    Project {c} Ready {:.1} s after the delete",
        deleted.elapsed().as_secs_f64()
    );
    for (pod, cpu, total, memory) in usage(client).await? {
        eprintln!(
            "    {pod}: {cpu}m CPU now, {total:.2} CPU s since start, {memory} MiB working set"
        );
    }
    step(began, "done");
    Ok(())
}
