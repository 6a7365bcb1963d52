//! The admin-tier network policy, shared by the binaries whose control planes serve the
//! network-policy-api (`istio.rs`: ClusterNetworkPolicy from the current release; `old_istio.rs`:
//! AdminNetworkPolicy v1alpha1 from the legacy one, as most enforcers implement it). The CRDs come
//! from the pinned Go module (`tools/network-policy-api`, built by tools/build.sh). No enforcer runs
//! here (kube-network-policies needs the kernel's nft queue, which this machine lacks): what is
//! shown is what Berth writes and what the API server admits, not packets dropped.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

use berth_testenv::{Binaries, Cluster};

/// The CRDs of one release: `current` (ClusterNetworkPolicy) or `legacy` (AdminNetworkPolicy).
pub fn crds_dir(binaries: &Binaries, release: &str) -> Result<PathBuf> {
    let dir = binaries.path("network-policy-api-crds").join(release);
    if !dir.is_dir() {
        bail!(
            "{} is missing: run tools/build.sh (it extracts the network-policy-api CRDs)",
            dir.display()
        );
    }
    Ok(dir)
}

pub fn resource(kind: &str, version: &str) -> ApiResource {
    ApiResource {
        group: "policy.networking.k8s.io".into(),
        version: version.into(),
        api_version: format!("policy.networking.k8s.io/{version}"),
        kind: kind.into(),
        // AdminNetworkPolicy → adminnetworkpolicies.
        plural: format!("{}ies", kind.to_lowercase().trim_end_matches('y')),
    }
}

/// Waits for project `project`'s admin-tier policy and checks it: one namespace as subject, by
/// name and Berth's labels; one rule, denying ingress from every namespace but `trusted`.
pub async fn expect_policy(
    client: &Client,
    resource: &ApiResource,
    project: &str,
    namespace: &str,
    trusted: &[&str],
) -> Result<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let name = format!("berth-isolate-{project}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let policy = loop {
        if let Some(p) = api.get_opt(&name).await? {
            break p;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no {} {name}", resource.kind);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let selector = json!({"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": trusted},
    ]});
    let peer = if resource.kind == "AdminNetworkPolicy" {
        json!({"namespaces": {"namespaceSelector": selector}})
    } else {
        json!({"namespaces": selector})
    };
    let spec = &policy.data["spec"];
    assert_eq!(
        spec["subject"],
        json!({"namespaces": {"matchLabels": {
            "kubernetes.io/metadata.name": namespace,
            "app.kubernetes.io/managed-by": "berth",
            "berth.dev/project": project,
        }}})
    );
    assert_eq!(
        spec["ingress"],
        json!([{"name": "berth-deny-other-namespaces", "action": "Deny", "from": [peer]}])
    );
    assert_eq!(spec["priority"], 99);
    if resource.kind == "ClusterNetworkPolicy" {
        assert_eq!(spec["tier"], "Admin");
    }
    assert!(spec.get("egress").is_none_or(Value::is_null));
    assert!(
        policy
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.kind == "Project" && r.name == project && r.controller == Some(true)),
        "it goes with the Project"
    );
    Ok(policy)
}

/// Waits until the policy is gone.
pub async fn expect_gone(client: &Client, resource: &ApiResource, project: &str) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let name = format!("berth-isolate-{project}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while api.get_opt(&name).await?.is_some() {
        if tokio::time::Instant::now() > deadline {
            bail!("{} {name} outlived its Project", resource.kind);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The operator's own token tries to write admin-tier policies beyond its job (dry runs): each is
/// refused by deploy/rbac/22-operator-scope.yaml. Returns the number of attempts.
pub async fn operator_cannot_widen(
    cluster: &Cluster,
    dir: &std::path::Path,
    resource: &ApiResource,
    namespace: &str,
    project: &str,
) -> Result<usize> {
    let path = dir.join("operator-token.kubeconfig");
    cluster.operator_kubeconfig(&path).await?;
    let operator = Client::try_from(
        Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path)?,
            &KubeConfigOptions::default(),
        )
        .await?,
    )?;
    let api: Api<DynamicObject> = Api::all_with(operator, resource);
    let berths = json!({"namespaces": {"matchLabels": {
        "kubernetes.io/metadata.name": namespace,
        "app.kubernetes.io/managed-by": "berth",
        "berth.dev/project": project,
    }}});
    let everyone = if resource.kind == "AdminNetworkPolicy" {
        json!([{"namespaces": {"namespaceSelector": {}}}])
    } else {
        json!([{"namespaces": {}}])
    };
    let policy = |name: &str, subject: Value, action: &str| -> Result<DynamicObject> {
        let mut spec = json!({"priority": 1, "subject": subject,
            "ingress": [{"name": "r", "action": action, "from": everyone}]});
        if resource.kind == "ClusterNetworkPolicy" {
            spec["tier"] = json!("Admin");
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": name}, "spec": spec,
        }))?)
    };
    let allow = if resource.kind == "AdminNetworkPolicy" {
        "Allow"
    } else {
        "Accept"
    };
    let attempts = [
        (
            "a policy that admits traffic Berth's policies deny",
            policy(&format!("berth-isolate-{project}"), berths.clone(), allow)?,
        ),
        (
            "a policy that passes traffic around the platform's admin tier",
            policy(&format!("berth-isolate-{project}"), berths.clone(), "Pass")?,
        ),
        (
            "a policy for kube-system, which carries no Berth labels",
            policy(
                &format!("berth-isolate-{project}"),
                json!({"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}),
                "Deny",
            )?,
        ),
        (
            "a policy under a name the naming module never gives",
            policy("platform-deny-all", berths.clone(), "Deny")?,
        ),
    ];
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut wrong = Vec::new();
    for (what, object) in &attempts {
        match api.create(&dry, object).await {
            Err(kube::Error::Api(status))
                if status.code == 403
                    && status
                        .message
                        .contains("writes only in namespaces it manages") =>
            {
                eprintln!("refused, as it should be: {what}")
            }
            other => wrong.push(format!("{what}: {other:?}")),
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the operator's token wrote admin-tier policies beyond its job:\n{}",
            wrong.join("\n")
        );
    }
    // What its job needs goes through (under a name no project holds: a dry run still conflicts
    // with an existing object).
    let own = policy("berth-isolate-dry-run", berths, "Deny")?;
    api.create(&dry, &own)
        .await
        .context("the operator's own kind of policy was refused")?;
    Ok(attempts.len())
}

/// A project's owner tries to undo or outrank its admin-tier policy: delete it, edit it, or write
/// an admin-tier policy of their own that admits everyone. Each is refused (no project role grants
/// any right on these cluster-scoped kinds), and the policy is unchanged. Returns the attempts.
pub async fn owner_cannot_undo(
    cluster: &Cluster,
    admin: &Client,
    resource: &ApiResource,
    project: &str,
    owner: &str,
) -> Result<usize> {
    let as_owner = cluster.impersonate(owner, &[]).await?;
    let mine: Api<DynamicObject> = Api::all_with(as_owner, resource);
    let theirs: Api<DynamicObject> = Api::all_with(admin.clone(), resource);
    let name = format!("berth-isolate-{project}");
    let before = theirs.get(&name).await?.data;
    let everyone = if resource.kind == "AdminNetworkPolicy" {
        json!({"namespaces": {"namespaceSelector": {}}})
    } else {
        json!({"namespaces": {}})
    };
    let mut spec = json!({"priority": 0,
        "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": project}}},
        "ingress": [{"name": "all", "action": if resource.kind == "AdminNetworkPolicy" { "Allow" } else { "Accept" }, "from": [everyone]}]});
    if resource.kind == "ClusterNetworkPolicy" {
        spec["tier"] = json!("Admin");
    }
    let open: DynamicObject = serde_json::from_value(json!({
        "apiVersion": resource.api_version, "kind": resource.kind,
        "metadata": {"name": format!("open-{project}")}, "spec": spec,
    }))?;
    let results = [
        (
            "delete the project's admin-tier policy",
            mine.delete(&name, &Default::default()).await.err(),
        ),
        (
            "edit the project's admin-tier policy",
            mine.patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&json!({"spec": {"ingress": null}})),
            )
            .await
            .err(),
        ),
        (
            "write an admin-tier policy that admits everyone",
            mine.create(&PostParams::default(), &open).await.err(),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, error) in &results {
        match error {
            Some(kube::Error::Api(status)) if status.code == 403 => {
                eprintln!("refused, as it should be: the owner tried to {what}")
            }
            other => wrong.push(format!("{what}: {other:?}")),
        }
    }
    if !wrong.is_empty() {
        bail!("the owner got past the admin tier:\n{}", wrong.join("\n"));
    }
    assert_eq!(theirs.get(&name).await?.data, before, "the policy changed");
    Ok(results.len())
}
