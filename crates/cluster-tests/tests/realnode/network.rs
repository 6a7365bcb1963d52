//! Real pods, real traffic: a pod runs on the real node, reaches a Service through kube-proxy and
//! resolves it through CoreDNS; and the isolation every Project gets, checked cell by cell with
//! real TCP connections (4 s bound each) while kube-router enforces the NetworkPolicies.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

use berth_testenv::realnode::{NODE_IP, NODE_NAME};

use crate::platform::platform;
use crate::support::{
    PROBE, env, namespace, outcomes, ready_project, run_to_end, shell_pod, unique, web_server,
};

#[tokio::test]
async fn a_pod_runs_on_the_real_node_and_reaches_a_service_by_name() -> Result<()> {
    let env = env().await?;
    let helper = env.image("helper")?;
    let ns = unique("rn-basic");
    namespace(&env.client, &ns, &[]).await?;
    let (pod_ip, cluster_ip) = web_server(&env.client, &ns, "web", &helper).await?;
    ensure!(
        pod_ip.starts_with("198.18.0."),
        "the pod's address {pod_ip} is not from the node's pod CIDR"
    );
    ensure!(
        cluster_ip.starts_with("198.19."),
        "the Service's address {cluster_ip} is not from the service range"
    );
    let script = format!(
        "{PROBE}\
         echo \"user $(id -u)\"\n\
         echo \"route $(ip route 2>/dev/null | tr '\\n' ';')\"\n\
         for i in $(seq 1 30); do timeout 4 wget -q -O- http://web.{ns}.svc.cluster.local/ && echo by-name-ok && break; sleep 0.5; done\n\
         probe pod http://{pod_ip}:8080/\n\
         probe service http://{cluster_ip}/\n\
         probe outside http://203.0.113.1/\n"
    );
    let (code, log) = run_to_end(
        &env.client,
        &ns,
        shell_pod("client", &helper, &script, &[], "Never"),
        Duration::from_secs(60),
    )
    .await?;
    eprintln!("client log:\n{log}");
    ensure!(code == 0, "the client pod exited with {code}");
    ensure!(log.contains("user 65532"), "not run as 65532:\n{log}");
    // The Service's name resolved through CoreDNS, and the answer came through kube-proxy.
    ensure!(log.contains("web\nby-name-ok"), "no answer by name:\n{log}");
    let seen = outcomes(&log);
    ensure!(seen.get("pod") == Some(&true), "{seen:?}");
    ensure!(seen.get("service") == Some(&true), "{seen:?}");
    // Pods have no way off this machine: no default route, and the host forwards nothing else.
    ensure!(seen.get("outside") == Some(&false), "{seen:?}");

    // It ran on the real node, as the kubelet reports.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &ns);
    let web = pods.get("web").await?;
    ensure!(
        web.spec.and_then(|s| s.node_name).as_deref() == Some(NODE_NAME),
        "the web pod is not on {NODE_NAME}"
    );
    Ok(())
}

#[tokio::test]
async fn projects_are_isolated_from_each_other_for_real() -> Result<()> {
    let env = env().await?;
    let platform = platform(&env).await?;
    let helper = env.image("helper")?;
    let client = &env.client;
    let a = unique("rn-iso-a");
    let b = unique("rn-iso-b");
    ready_project(client, &a, json!({"owners": ["a@example.com"]})).await?;
    ready_project(
        client,
        &b,
        // No object store, and no identity provider either: in this test both listen on the
        // node's address, which the identity provider's egress (once auth.rs set it) would open.
        json!({"owners": ["b@example.com"], "storage": {"enabled": false}, "idp": {"enabled": false}}),
    )
    .await?;
    let gateway = "istio-system";
    namespace(client, gateway, &[]).await?;
    let outsider = unique("rn-iso-out");
    namespace(client, &outsider, &[]).await?;

    let (a_ip, a_svc) = web_server(client, &a, "a-web", &helper).await?;
    let (b_ip, b_svc) = web_server(client, &b, "b-web", &helper).await?;
    let store = platform.s3_endpoint.clone();
    ensure!(store.starts_with(&format!("http://{NODE_IP}:")), "{store}");

    // Each cell: (client namespace, probe name, URL, expected to connect).
    let cells: Vec<(&str, &str, String, bool)> = vec![
        (&a, "a->a-pod", format!("http://{a_ip}:8080/"), true),
        (
            &a,
            "a->a-service",
            format!("http://a-web.{a}.svc.cluster.local/"),
            true,
        ),
        (&a, "a->b-pod", format!("http://{b_ip}:8080/"), false),
        (&a, "a->b-service", format!("http://{b_svc}/"), false),
        (&a, "a->object-store", format!("{store}/"), true),
        (&b, "b->b-pod", format!("http://{b_ip}:8080/"), true),
        (&b, "b->a-service", format!("http://{a_svc}/"), false),
        (&b, "b->object-store", format!("{store}/"), false),
        (
            gateway,
            "gateway->a-pod",
            format!("http://{a_ip}:8080/"),
            true,
        ),
        (
            &outsider,
            "outsider->a-pod",
            format!("http://{a_ip}:8080/"),
            false,
        ),
    ];
    let mut by_namespace: BTreeMap<&str, String> = BTreeMap::new();
    for (ns, name, url, _) in &cells {
        by_namespace
            .entry(ns)
            .or_insert_with(|| PROBE.to_owned())
            .push_str(&format!("probe '{name}' {url}\n"));
    }
    // DNS from inside a project: the default-deny lets it through to kube-system only.
    if let Some(script) = by_namespace.get_mut(a.as_str()) {
        script.push_str(
            "if nslookup kubernetes.default.svc.cluster.local 2>&1 | grep -qE '198\\.19\\.0\\.1([^0-9]|$)'; then echo a-dns reached; else echo a-dns blocked; fi\n",
        );
    }
    let mut seen = BTreeMap::new();
    for (ns, script) in &by_namespace {
        let (_, log) = run_to_end(
            client,
            ns,
            shell_pod(&unique("probe"), &helper, script, &[], "Never"),
            Duration::from_secs(120),
        )
        .await
        .with_context(|| format!("probing from {ns}"))?;
        eprintln!("from {ns}:\n{log}");
        seen.extend(outcomes(&log));
    }
    let mut matrix = String::new();
    let mut wrong = Vec::new();
    for (_, name, _, expected) in &cells {
        let got = seen.get(*name).copied();
        matrix.push_str(&format!(
            "  {name:<20} expected {:<9} got {}\n",
            if *expected { "reach" } else { "blocked" },
            match got {
                Some(true) => "reach",
                Some(false) => "blocked",
                None => "no answer",
            }
        ));
        if got != Some(*expected) {
            wrong.push(*name);
        }
    }
    let dns = seen.get("a-dns").copied();
    matrix.push_str(&format!(
        "  {:<20} expected resolve   got {dns:?}\n",
        "a-dns"
    ));
    eprintln!("isolation matrix:\n{matrix}");
    ensure!(wrong.is_empty(), "cells that differ: {wrong:?}\n{matrix}");
    ensure!(
        dns == Some(true),
        "a pod in a project cannot resolve names\n{matrix}"
    );
    Ok(())
}
