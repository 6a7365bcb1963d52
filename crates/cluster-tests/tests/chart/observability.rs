//! What the chart's dashboard and alerts read is what the operator exports, and the operator's
//! own NetworkPolicy lets the monitoring namespaces scrape it and nobody else.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use berth_testenv::chart::NAMESPACE;
use berth_testenv::realnode;

use crate::support::{Env, eventually, namespace};

/// The metric families (`berth_…`, without `_total`, `_bucket`, `_sum`, `_count`) that `text`
/// names.
fn families_named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("berth_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

/// Runs the helper image's shell with `script` in `namespace` on the real node; its log.
async fn run(client: &Client, namespace: &str, image: &str, script: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = "scrape";
    let _ = pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
    eventually("the previous pod gone", Duration::from_secs(30), || async {
        Ok(pods.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeSelector": realnode::node_selector(),
            "tolerations": [realnode::toleration()],
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    eventually("the scrape pod to end", Duration::from_secs(60), || async {
        let phase = pods.get(name).await?.status.and_then(|s| s.phase);
        Ok(matches!(phase.as_deref(), Some("Succeeded" | "Failed")).then_some(()))
    })
    .await?;
    let log = pods.logs(name, &LogParams::default()).await?;
    let _ = pods.delete(name, &DeleteParams::default()).await;
    Ok(log)
}

pub async fn metrics_are_what_the_chart_reads(client: &Client, env: &Env) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let ips: Vec<String> = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=berth-operator"))
        .await?
        .items
        .iter()
        .filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
        .collect();
    ensure!(!ips.is_empty(), "no operator pod has an address");
    // From the node (which the policy lets in, for the kubelet's probes).
    let mut exported = BTreeSet::new();
    for ip in &ips {
        let text = reqwest::get(format!("http://{ip}:8080/metrics"))
            .await?
            .error_for_status()?
            .text()
            .await?;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                exported.extend(rest.split(' ').next().map(str::to_owned));
            }
        }
    }
    let root = berth_testenv::util::repo_root();
    let mut read = BTreeSet::new();
    for file in [
        "charts/berth/dashboards/berth.json",
        "charts/berth/templates/prometheusrule.yaml",
    ] {
        read.extend(families_named(
            &std::fs::read_to_string(root.join(file)).with_context(|| file.to_owned())?,
        ));
    }
    eprintln!("    the dashboard and alerts read {read:?}; the operator exports {exported:?}");
    // A counter family with no sample yet (no reconcile has failed) has no line at all: such a
    // family must at least be registered, under its name, in crates/reconcile/src/metrics.rs.
    let registry = std::fs::read_to_string(root.join("crates/reconcile/src/metrics.rs"))?;
    let missing: Vec<_> = read
        .difference(&exported)
        .filter(|family| {
            let registered = family
                .strip_prefix("berth_")
                .is_some_and(|name| registry.contains(&format!("\"{name}\",")));
            !registered
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "read but neither exported nor registered: {missing:?}"
    );

    // The operator's NetworkPolicy: a monitoring namespace scrapes, another namespace cannot.
    let image = env.shared.images.reference("helper")?;
    let script = format!(
        "if timeout 4 wget -q -O- http://{}:8080/metrics >/dev/null 2>&1; then echo reached; else echo blocked; fi",
        ips[0]
    );
    namespace(client, "monitoring", &[]).await?;
    namespace(client, "chart-outsider", &[]).await?;
    let from_monitoring = run(client, "monitoring", &image, &script).await?;
    let from_outsider = run(client, "chart-outsider", &image, &script).await?;
    eprintln!(
        "    metrics port from monitoring: {}, from another namespace: {}",
        from_monitoring.trim(),
        from_outsider.trim()
    );
    ensure!(
        from_monitoring.trim() == "reached",
        "monitoring: {from_monitoring}"
    );
    ensure!(
        from_outsider.trim() == "blocked",
        "outsider: {from_outsider}"
    );
    Ok(())
}

#[test]
fn families_are_read_from_names() {
    let names = families_named(
        "rate(berth_reconcile_errors_total{x}[5m]) histogram_quantile(0.9, berth_reconcile_duration_seconds_bucket) berth_writes_total",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "berth_reconcile_duration_seconds",
            "berth_reconcile_errors",
            "berth_writes"
        ]
    );
}
