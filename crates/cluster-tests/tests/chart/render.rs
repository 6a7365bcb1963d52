//! The charts as Helm reads and renders them, without a cluster: lint, the same output twice,
//! values refused by the schema, credentials by reference only, images by digest, and the
//! monitoring objects following what the cluster serves.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use berth_testenv::chart::{self, CHART, CRDS_CHART, Helm};

/// Helm, for commands that never reach a cluster.
fn helm() -> Result<Helm> {
    let dir = berth_testenv::util::locate_build("tools/helm/build.sh", chart::HELM_DIR_ENV)?;
    Ok(Helm::at(
        &dir.join("helm"),
        Path::new("/nonexistent/kubeconfig"),
    )?)
}

/// `helm template` of the berth chart with `args`; its objects, or Helm's error.
async fn template(helm: &Helm, args: &[&str]) -> Result<(String, Vec<DynamicObject>)> {
    let mut all = vec![
        "template",
        chart::RELEASE,
        CHART,
        "--namespace",
        chart::NAMESPACE,
    ];
    all.extend_from_slice(args);
    let text = helm.run(&all).await?;
    let objects = berth_testenv::manifests::parse_objects(&text, "helm template")?;
    Ok((text, objects))
}

fn find<'a>(objects: &'a [DynamicObject], kind: &str, name: &str) -> Option<&'a DynamicObject> {
    objects
        .iter()
        .find(|o| o.types.as_ref().is_some_and(|t| t.kind == kind) && o.name_any() == name)
}

fn kinds(objects: &[DynamicObject]) -> Vec<String> {
    objects
        .iter()
        .filter_map(|o| {
            o.types
                .as_ref()
                .map(|t| format!("{}/{}", t.kind, o.name_any()))
        })
        .collect()
}

#[tokio::test]
async fn both_charts_pass_helm_lint_strictly() -> Result<()> {
    let helm = helm()?;
    for chart in [CRDS_CHART, CHART] {
        let out = helm.run(&["lint", "--strict", chart]).await?;
        eprintln!("{out}");
        ensure!(out.contains("0 chart(s) failed"), "{chart}: {out}");
    }
    Ok(())
}

#[tokio::test]
async fn the_charts_render_the_same_output_twice() -> Result<()> {
    let helm = helm()?;
    let (first, objects) = template(&helm, &[]).await?;
    let (second, _) = template(&helm, &[]).await?;
    ensure!(first == second, "two renders of charts/berth differ");
    let crds = ["template", chart::CRDS_RELEASE, CRDS_CHART];
    let crds_first = helm.run(&crds).await?;
    ensure!(
        crds_first == helm.run(&crds).await?,
        "two renders of charts/berth-crds differ"
    );
    eprintln!(
        "rendered: charts/berth {} bytes ({} objects), charts/berth-crds {} bytes",
        first.len(),
        objects.len(),
        crds_first.len()
    );
    // What a default install makes.
    for (kind, name) in [
        ("Deployment", "berth-operator"),
        ("PodDisruptionBudget", "berth-operator"),
        ("NetworkPolicy", "berth-operator"),
        ("Service", "berth-operator-metrics"),
        ("ConfigMap", "berth-dashboard"),
        ("PlatformSettings", "default"),
        ("ServiceAccount", "berth-operator"),
        ("ClusterRole", "berth-operator"),
        ("ValidatingAdmissionPolicy", "berth-operator-scope"),
    ] {
        ensure!(
            find(&objects, kind, name).is_some(),
            "no {kind}/{name} in {:?}",
            kinds(&objects)
        );
    }
    // No Namespace (the installer makes it) and no monitoring kinds the cluster does not serve.
    ensure!(!kinds(&objects).iter().any(|k| k.starts_with("Namespace/")));
    ensure!(
        !kinds(&objects)
            .iter()
            .any(|k| k.starts_with("ServiceMonitor/"))
    );
    Ok(())
}

#[tokio::test]
async fn unknown_values_are_refused() -> Result<()> {
    let helm = helm()?;
    for typo in [
        "operater.replicas=3",
        "operator.replica=3",
        "settings.quotaa.default.pods=1",
        "settings.storage.endpiont=http://x",
        "credentials.storage.secret=x",
    ] {
        let refused = template(&helm, &["--set", typo]).await;
        let message = match refused {
            Ok(_) => anyhow::bail!("--set {typo} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        let key = typo
            .split('=')
            .next()
            .unwrap_or(typo)
            .rsplit('.')
            .next()
            .unwrap_or(typo);
        ensure!(
            message.contains("additional properties") || message.contains("additionalProperties"),
            "--set {typo}: {message}"
        );
        ensure!(
            message.contains(key),
            "--set {typo} names no {key}: {message}"
        );
    }
    Ok(())
}

const STORAGE: &str = "settings.storage.provider=garage,settings.storage.endpoint=http://garage:3900,settings.storage.adminEndpoint=http://garage:3903,settings.storage.region=garage";

fn settings_spec(objects: &[DynamicObject]) -> Result<Value> {
    Ok(find(objects, "PlatformSettings", "default")
        .context("no PlatformSettings")?
        .data["spec"]
        .clone())
}

#[tokio::test]
async fn provider_credentials_are_given_by_reference() -> Result<()> {
    let helm = helm()?;
    // A provider without credentials is refused, with what to do.
    let missing = template(&helm, &["--set", STORAGE]).await;
    let message = format!(
        "{:#}",
        missing
            .err()
            .context("storage without credentials rendered")?
    );
    ensure!(
        message.contains("credentials.storage.existingSecret"),
        "{message}"
    );

    // By reference: the settings name the Secret, and the chart makes none.
    let (_, objects) = template(
        &helm,
        &[
            "--set",
            STORAGE,
            "--set",
            "credentials.storage.existingSecret=garage-admin",
        ],
    )
    .await?;
    ensure!(
        settings_spec(&objects)?["storage"]["adminSecretRef"] == json!({"name": "garage-admin"})
    );
    ensure!(!kinds(&objects).iter().any(|k| k.starts_with("Secret/")));

    // Quick start: a Secret of the chart's.
    let (_, objects) = template(
        &helm,
        &[
            "--set",
            STORAGE,
            "--set",
            "credentials.storage.create.adminToken=t0ken",
        ],
    )
    .await?;
    ensure!(
        settings_spec(&objects)?["storage"]["adminSecretRef"]
            == json!({"name": "berth-storage-admin"})
    );
    let secret =
        find(&objects, "Secret", "berth-storage-admin").context("no quick-start Secret")?;
    ensure!(secret.data["stringData"]["adminToken"] == json!("t0ken"));

    // Both at once, or credentials for a provider that is not configured, are refused.
    let both = template(
        &helm,
        &[
            "--set",
            STORAGE,
            "--set",
            "credentials.storage.existingSecret=a,credentials.storage.create.adminToken=b",
        ],
    )
    .await;
    ensure!(format!("{:#}", both.err().context("both rendered")?).contains("not both"));
    let unused = template(&helm, &["--set", "credentials.identity.existingSecret=kc"]).await;
    ensure!(
        format!("{:#}", unused.err().context("unused credentials rendered")?)
            .contains("settings.identity is not")
    );
    Ok(())
}

#[tokio::test]
async fn images_are_pinned_by_digest_and_follow_a_private_registry() -> Result<()> {
    let helm = helm()?;
    let digest = format!("sha256:{}", "a".repeat(64));
    let (_, objects) = template(
        &helm,
        &[
            "--set",
            &format!("images.operator.digest={digest},images.modelFetch.digest={digest},images.modelServer.digest={digest}"),
            "--set",
            "images.operator.repository=registry.example.com/berth/operator",
            "--set",
            "imagePullSecrets[0].name=regcred",
        ],
    )
    .await?;
    let deployment = find(&objects, "Deployment", "berth-operator").context("no Deployment")?;
    let pod = &deployment.data["spec"]["template"]["spec"];
    ensure!(
        pod["containers"][0]["image"]
            == json!(format!(
                "registry.example.com/berth/operator:0.1.0@{digest}"
            ))
    );
    ensure!(pod["imagePullSecrets"] == json!([{"name": "regcred"}]));
    let models = &settings_spec(&objects)?["models"];
    ensure!(models["fetchImage"] == json!(format!("berth.dev/model-fetch:0.1.0@{digest}")));
    ensure!(
        models["runtimeImages"]["onnx"] == json!(format!("berth.dev/model-server:0.1.0@{digest}"))
    );
    // A bad digest is refused by the schema.
    ensure!(
        template(&helm, &["--set", "images.operator.digest=latest"])
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn the_deployment_is_restricted_and_elects_a_leader() -> Result<()> {
    let helm = helm()?;
    let (_, objects) = template(&helm, &[]).await?;
    let deployment = find(&objects, "Deployment", "berth-operator").context("no Deployment")?;
    let spec = &deployment.data["spec"];
    ensure!(spec["replicas"] == json!(2));
    let pod = &spec["template"]["spec"];
    ensure!(pod["securityContext"]["runAsNonRoot"] == json!(true));
    ensure!(pod["securityContext"]["seccompProfile"]["type"] == json!("RuntimeDefault"));
    let container = &pod["containers"][0];
    ensure!(container["securityContext"]["allowPrivilegeEscalation"] == json!(false));
    ensure!(container["securityContext"]["capabilities"]["drop"] == json!(["ALL"]));
    ensure!(container["securityContext"]["readOnlyRootFilesystem"] == json!(true));
    let env: Vec<&str> = container["env"]
        .as_array()
        .context("no env")?
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in ["POD_NAMESPACE", "POD_NAME", "BERTH_LEADER_ELECT"] {
        ensure!(env.contains(&name), "no {name} in {env:?}");
    }
    ensure!(container["readinessProbe"]["httpGet"]["path"] == json!("/readyz"));
    ensure!(container["livenessProbe"]["httpGet"]["path"] == json!("/healthz"));
    ensure!(container["resources"]["requests"]["memory"].is_string());
    // A renew deadline past the lease is refused.
    let bad = template(
        &helm,
        &["--set", "operator.leaderElection.renewDeadlineSeconds=20"],
    )
    .await;
    ensure!(format!("{:#}", bad.err().context("rendered")?).contains("renewDeadlineSeconds"));
    Ok(())
}

#[tokio::test]
async fn monitoring_follows_what_the_cluster_serves() -> Result<()> {
    let helm = helm()?;
    let served = [
        "--api-versions",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "--api-versions",
        "monitoring.coreos.com/v1/PrometheusRule",
    ];
    let (_, objects) = template(&helm, &served).await?;
    ensure!(find(&objects, "ServiceMonitor", "berth-operator").is_some());
    let rule = find(&objects, "PrometheusRule", "berth-operator").context("no PrometheusRule")?;
    let rules = rule.data["spec"]["groups"][0]["rules"].to_string();
    for metric in [
        "berth_reconcile_errors_total",
        "berth_reconcile_duration_seconds_bucket",
    ] {
        ensure!(rules.contains(metric), "no {metric} in the rules");
    }
    let mut off = served.to_vec();
    off.extend([
        "--set",
        "metrics.serviceMonitor.enabled=false,metrics.prometheusRule.enabled=false",
    ]);
    let (_, objects) = template(&helm, &off).await?;
    ensure!(find(&objects, "ServiceMonitor", "berth-operator").is_none());
    ensure!(find(&objects, "PrometheusRule", "berth-operator").is_none());
    let (_, objects) = template(&helm, &["--set", "metrics.serviceMonitor.enabled=true"]).await?;
    ensure!(find(&objects, "ServiceMonitor", "berth-operator").is_some());
    // The dashboard is JSON Grafana can read.
    let (_, objects) = template(&helm, &[]).await?;
    let dashboard = find(&objects, "ConfigMap", "berth-dashboard").context("no dashboard")?;
    let json: Value = serde_json::from_str(
        dashboard.data["data"]["berth.json"]
            .as_str()
            .context("no berth.json")?,
    )?;
    ensure!(json["panels"].as_array().is_some_and(|p| p.len() >= 6));
    Ok(())
}
