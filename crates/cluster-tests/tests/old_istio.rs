//! Older optional kinds. An older Istio: its CRDs serve v1beta1 (and v1alpha3) but not v1, as
//! before Istio 1.22, made from the pinned istio.io/api CRDs with the v1 version taken out. And the
//! older network-policy-api (v0.1.1), which serves AdminNetworkPolicy v1alpha1. Berth finds the
//! served versions by discovery: a Project with Istio enabled gets a v1beta1 AuthorizationPolicy
//! and an AdminNetworkPolicy, its NetworkReady condition names both versions, and it is deleted
//! with them; an MLModel exposed through Istio gets a v1beta1 VirtualService and says so in its
//! Exposed condition, and is deleted with it. Its own binary and control plane, since the CRDs
//! differ from the other tests'.

#[allow(dead_code)]
#[path = "cluster/support.rs"]
mod support;

#[path = "optional/admin_tier.rs"]
mod admin_tier;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use berth_api::mlmodel::{MLModel, MLModelSpec};
use berth_api::{PlatformSettings, Project};
use berth_testenv::{Binaries, ControlPlane, Options};

use support::eventually;

/// The groups whose v1 the older Istio does not serve.
const ISTIO_GROUPS: [&str; 2] = ["networking.istio.io", "security.istio.io"];

/// Istio's CRDs as an older release had them: v1 taken out, v1beta1 (or v1alpha3) the stored one.
fn without_v1(crds_dir: &std::path::Path, out: &std::path::Path) -> Result<usize> {
    let mut changed = 0;
    std::fs::create_dir_all(out)?;
    for entry in std::fs::read_dir(crds_dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let origin = path.display().to_string();
        let mut documents = Vec::new();
        for object in berth_testenv::manifests::parse_objects(&text, &origin)? {
            let mut value = serde_json::to_value(&object)?;
            let group = value["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if ISTIO_GROUPS.contains(&group.as_str())
                && let Some(versions) = value["spec"]["versions"].as_array_mut()
                && versions.iter().any(|v| v["name"] == "v1")
            {
                versions.retain(|v| v["name"] != "v1");
                let stored = versions
                    .iter()
                    .position(|v| v["name"] == "v1beta1")
                    .or(Some(0).filter(|_| !versions.is_empty()));
                for (i, version) in versions.iter_mut().enumerate() {
                    version["storage"] = json!(Some(i) == stored);
                }
                changed += 1;
            }
            documents.push(serde_json::to_string(&value)?);
        }
        // JSON is YAML: one document per object.
        std::fs::write(
            out.join(path.file_name().context("a CRD file without a name")?),
            documents.join("\n---\n"),
        )?;
    }
    Ok(changed)
}

fn virtual_service_v1beta1() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1beta1".into(),
        api_version: "networking.istio.io/v1beta1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    }
}

fn authorization_policy_v1beta1() -> ApiResource {
    ApiResource {
        group: "security.istio.io".into(),
        version: "v1beta1".into(),
        api_version: "security.istio.io/v1beta1".into(),
        kind: "AuthorizationPolicy".into(),
        plural: "authorizationpolicies".into(),
    }
}

fn condition<'a>(
    model: &'a MLModel,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    model
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

#[tokio::test]
async fn an_istio_without_v1_still_reconciles_deletes_and_says_which_version_it_found() -> Result<()>
{
    let binaries = Binaries::locate()?;
    let plane = ControlPlane::start(Options {
        binaries: Some(binaries.clone()),
        ..Options::default()
    })
    .await?;
    let client = plane.cluster().client().await?;
    let old = plane.dir().join("istio-v1beta1");
    let changed = without_v1(&binaries.istio_crds_dir(), &old)?;
    assert!(changed >= 2, "no Istio CRD had a v1 to take out");
    let legacy_policy_api = admin_tier::crds_dir(&binaries, "legacy")?;
    berth_testenv::manifests::apply_dirs(&client, &[old, legacy_policy_api]).await?;
    let settings: Api<PlatformSettings> = Api::all(client.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "istio": {"enabled": true},
                "gatewayNamespaces": ["istio-system"],
                "models": {"istioGateway": "istio-system/models", "domain": "models.example.com"},
            }})),
        )
        .await?;
    let (operator, _) = plane
        .cluster()
        .start_operator(
            &berth_testenv::operator_binary()?,
            plane.dir(),
            "operator.log",
            &[],
        )
        .await?;

    // A Project reconciles with Istio enabled: its members' AuthorizationPolicy at v1beta1, its
    // admin-tier policy as an AdminNetworkPolicy, and NetworkReady names what it found.
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": "older"},
        "spec": {"owners": ["Ada@Example.com"], "deletionPolicy": "Delete"},
    }))?;
    let projects: Api<Project> = Api::all(client.clone());
    projects.create(&PostParams::default(), &project).await?;
    let ready = eventually(
        "the project to be Ready",
        Duration::from_secs(60),
        || async {
            let p = projects.get("older").await?;
            Ok(p.status
                .as_ref()
                .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
                .then_some(p))
        },
    )
    .await
    .with_context(|| operator.log_tail(4000))?;
    let network = ready
        .status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, "NetworkReady"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    for found in [
        "AuthorizationPolicy security.istio.io/v1beta1",
        "AdminNetworkPolicy policy.networking.k8s.io/v1alpha1",
    ] {
        assert!(
            network.contains(found),
            "NetworkReady does not name {found}: {network}"
        );
    }
    let authorization: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "older", &authorization_policy_v1beta1());
    let members = authorization.get("berth-members").await?;
    // Members as the identity provider issues their names: lower-case.
    assert!(
        members.data["spec"]["rules"]
            .to_string()
            .contains("\"ada@example.com\""),
        "{}",
        members.data["spec"]
    );
    let anp = admin_tier::resource("AdminNetworkPolicy", "v1alpha1");
    admin_tier::expect_policy(
        &client,
        &anp,
        "older",
        "older",
        &["berth-system", "istio-system", "monitoring", "older"],
    )
    .await?;
    let refused =
        admin_tier::operator_cannot_widen(plane.cluster(), plane.dir(), &anp, "older", "older")
            .await?;
    eprintln!("the operator's token and AdminNetworkPolicy: {refused} attempts, all refused");
    let refused =
        admin_tier::owner_cannot_undo(plane.cluster(), &client, &anp, "older", "ada@example.com")
            .await?;
    eprintln!("the owner and AdminNetworkPolicy: {refused} attempts, all refused");

    // An MLModel exposed through Istio: a v1beta1 VirtualService, and the condition says so.
    let spec: MLModelSpec = serde_json::from_value(json!({
        "source": {"uri": "s3://models/older/model.onnx"},
        "expose": {"mode": "istio"},
    }))?;
    let models: Api<MLModel> = Api::namespaced(client.clone(), "older");
    models
        .create(&PostParams::default(), &MLModel::new("mesh", spec))
        .await?;
    let exposed = eventually(
        "the model's Exposed condition",
        Duration::from_secs(60),
        || async {
            let model = models.get("mesh").await?;
            Ok(condition(&model, "Exposed").cloned())
        },
    )
    .await
    .with_context(|| operator.log_tail(4000))?;
    assert_eq!(exposed.status, "True", "{exposed:?}");
    assert_eq!(exposed.reason, "VirtualServiceApplied");
    assert!(
        exposed.message.contains("networking.istio.io/v1beta1"),
        "{}",
        exposed.message
    );
    let services: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "older", &virtual_service_v1beta1());
    // The status is written before the children are applied.
    let service = eventually(
        "the v1beta1 VirtualService",
        Duration::from_secs(30),
        || async { Ok(services.get_opt("mesh").await?) },
    )
    .await?;
    assert_eq!(
        service.data["spec"]["gateways"],
        json!(["istio-system/models"])
    );
    let log = operator.log_tail(200_000);
    assert!(
        log.contains("VirtualService networking.istio.io/v1beta1"),
        "the operator does not say what it found:\n{}",
        operator.log_tail(4000)
    );

    // Deletion: the model's finalizer runs and takes the VirtualService with it.
    models.delete("mesh", &DeleteParams::default()).await?;
    eventually("the model to go", Duration::from_secs(60), || async {
        Ok(models.get_opt("mesh").await?.is_none().then_some(()))
    })
    .await
    .with_context(|| operator.log_tail(4000))?;
    assert!(services.get_opt("mesh").await?.is_none());

    // And the Project's, with its AuthorizationPolicy (in the namespace it deletes) and its
    // admin-tier policy (which goes with the Project).
    projects.delete("older", &DeleteParams::default()).await?;
    eventually("the project to go", Duration::from_secs(60), || async {
        Ok(projects.get_opt("older").await?.is_none().then_some(()))
    })
    .await
    .with_context(|| operator.log_tail(4000))?;
    admin_tier::expect_gone(&client, &anp, "older").await?;
    plane.kill();
    Ok(())
}
