//! The platform with Istio and Kubeflow compatibility switched on, against Istio's real CRDs (from
//! the pinned istio.io/api module): namespaces join the mesh, members get in through an
//! AuthorizationPolicy keyed on the user-id header, Kubeflow's labels and service accounts appear.
//! Its own binary, so changing the platform settings cannot disturb other tests. The operator's
//! /metrics is checked here too. The control plane also serves the current network-policy-api
//! (ClusterNetworkPolicy), so each project gets its admin-tier policy as one.

#[path = "optional/admin_tier.rs"]
mod admin_tier;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use berth_api::{PlatformSettings, Project};
use berth_testenv::{Binaries, ControlPlane, Options};

#[tokio::test]
async fn istio_and_kubeflow_compatibility() -> Result<()> {
    let binaries = Binaries::locate()?;
    let plane = ControlPlane::start(Options {
        binaries: Some(binaries.clone()),
        ..Options::default()
    })
    .await?;
    let client = plane.cluster().client().await?;
    berth_testenv::manifests::apply_dirs(
        &client,
        &[
            binaries.istio_crds_dir(),
            admin_tier::crds_dir(&binaries, "current")?,
        ],
    )
    .await?;
    let settings: Api<PlatformSettings> = Api::all(client.clone());
    let on = json!({"spec": {"istio": {"enabled": true, "userIdHeader": "kubeflow-userid", "userIdPrefix": "accounts.example.com:"}, "kubeflow": {"enabled": true}}});
    settings
        .patch("default", &PatchParams::default(), &Patch::Merge(&on))
        .await?;

    let (mut operator, port) = plane
        .cluster()
        .start_operator(
            &berth_testenv::operator_binary()?,
            plane.dir(),
            "operator.log",
            &[],
        )
        .await?;

    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": "mesh"},
        "spec": {"owners": ["ada@example.com"], "members": [{"kind": "User", "name": "bob@example.com", "role": "viewer"}]},
    }))?;
    let projects: Api<Project> = Api::all(client.clone());
    projects.create(&PostParams::default(), &project).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = operator.exited() {
            bail!(
                "the operator exited with {status}:\n{}",
                operator.log_tail(4000)
            );
        }
        let p = projects.get("mesh").await?;
        if p.status
            .as_ref()
            .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the project did not become Ready: {:?}", p.status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ns = Api::<Namespace>::all(client.clone()).get("mesh").await?;
    assert_eq!(
        ns.labels().get("istio-injection").map(String::as_str),
        Some("enabled")
    );
    assert_eq!(
        ns.labels()
            .get("app.kubernetes.io/part-of")
            .map(String::as_str),
        Some("kubeflow-profile")
    );
    assert_eq!(
        ns.annotations().get("owner").map(String::as_str),
        Some("ada@example.com")
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "mesh");
    for account in ["default-editor", "default-viewer", "project-automation"] {
        assert!(
            accounts.get_opt(account).await?.is_some(),
            "{account} missing"
        );
    }
    let policies: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "mesh", &authorization_policy_kind());
    let policy = policies.get("berth-members").await?;
    let rules = policy.data["spec"]["rules"].to_string();
    assert!(
        rules.contains("request.headers[kubeflow-userid]"),
        "{rules}"
    );
    assert!(
        rules.contains("accounts.example.com:ada@example.com"),
        "{rules}"
    );
    assert!(
        rules.contains("accounts.example.com:bob@example.com"),
        "{rules}"
    );

    // The admin-tier policy, at the newest version the cluster serves, and NetworkReady says so.
    let cnp = admin_tier::resource("ClusterNetworkPolicy", "v1beta1");
    admin_tier::expect_policy(
        &client,
        &cnp,
        "mesh",
        "mesh",
        &["berth-system", "istio-system", "mesh", "monitoring"],
    )
    .await?;
    let network = projects
        .get("mesh")
        .await?
        .status
        .and_then(|s| berth_api::conditions::get(&s.conditions, "NetworkReady").cloned())
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        network
            .contains("ClusterNetworkPolicy policy.networking.k8s.io/v1beta1 berth-isolate-mesh")
            && network.contains("AuthorizationPolicy security.istio.io/v1"),
        "{network}"
    );
    let refused =
        admin_tier::operator_cannot_widen(plane.cluster(), plane.dir(), &cnp, "mesh", "mesh")
            .await?;
    eprintln!("the operator's token and ClusterNetworkPolicy: {refused} attempts, all refused");
    let refused =
        admin_tier::owner_cannot_undo(plane.cluster(), &client, &cnp, "mesh", "ada@example.com")
            .await?;
    eprintln!("the owner and ClusterNetworkPolicy: {refused} attempts, all refused");

    // The operator's metrics count the reconciles.
    let metrics = http_get(port, "/metrics").await?;
    assert!(
        metrics.contains("berth_reconciles_total{controller=\"project\",result=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_reconcile_duration_seconds"),
        "{metrics}"
    );

    // The admin-tier policy goes with the Project.
    projects
        .delete("mesh", &kube::api::DeleteParams::default())
        .await?;
    admin_tier::expect_gone(&client, &cnp, "mesh").await?;
    plane.kill();
    Ok(())
}

fn authorization_policy_kind() -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: "security.istio.io".into(),
        version: "v1".into(),
        api_version: "security.istio.io/v1".into(),
        kind: "AuthorizationPolicy".into(),
        plural: "authorizationpolicies".into(),
    }
}

/// A plain HTTP GET on loopback.
async fn http_get(port: u16, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}
