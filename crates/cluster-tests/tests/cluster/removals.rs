//! Removals apply: whatever leaves a Project's spec leaves its children at the next reconcile. The
//! namespace is the hard case: Berth creates it with a plain create (so a namespace that appears
//! at the same moment is a conflict), and fields written that way belong to a create, not to the
//! server-side apply that later keeps the namespace in shape, so apply alone never removed them.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::project::{create, wait_ready};
use crate::support::{eventually, unique, with_operator};

#[tokio::test]
async fn what_leaves_the_spec_leaves_the_children() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let name = unique("removals");
    // A platform admin may set all of this.
    create(
        &admin,
        &name,
        json!({
            "owners": ["ada@example.com"],
            "members": [{"kind": "User", "name": "bob@example.com", "role": "viewer"}],
            "namespaceLabels": {"team": "a", "keep": "b"},
            "namespaceAnnotations": {"note": "x", "stays": "y"},
            "resourceQuota": {"hard": {"count/deployments.apps": "5", "pods": "7"}},
            "limitRange": {"default": {"cpu": "2"}},
            "network": {"allowEgressTo": ["203.0.113.0/24"], "allowIngressFromNamespaces": ["monitoring-x"]},
        }),
    )
    .await?;
    wait_ready(&admin, &name).await?;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let quotas: Api<ResourceQuota> = Api::namespaced(admin.clone(), &name);
    let limits: Api<LimitRange> = Api::namespaced(admin.clone(), &name);
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &name);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &name);
    let bob_bound = || async {
        Ok::<_, anyhow::Error>(
            bindings
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|b| {
                    serde_json::to_string(&b.subjects)
                        .unwrap_or_default()
                        .contains("bob@example.com")
                }),
        )
    };
    let ns = namespaces.get(&name).await?;
    assert_eq!(ns.labels().get("team").map(String::as_str), Some("a"));
    assert_eq!(ns.annotations().get("note").map(String::as_str), Some("x"));
    let hard = quotas
        .get("berth-quota")
        .await?
        .spec
        .and_then(|s| s.hard)
        .unwrap_or_default();
    assert!(hard.contains_key("count/deployments.apps"), "{hard:?}");
    assert!(
        policies
            .get_opt("berth-allow-extra-egress")
            .await?
            .is_some()
    );
    assert!(
        policies
            .get_opt("berth-allow-extra-ingress")
            .await?
            .is_some()
    );
    assert!(bob_bound().await?);

    Api::<berth_api::Project>::all(admin.clone())
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "members": null,
                "namespaceLabels": {"team": null},
                "namespaceAnnotations": {"note": null},
                "resourceQuota": {"hard": {"count/deployments.apps": null}},
                "limitRange": null,
                "network": null,
            }})),
        )
        .await?;

    eventually(
        "every removal to apply",
        Duration::from_secs(60),
        || async {
            let ns = namespaces.get(&name).await?;
            let hard = quotas
                .get("berth-quota")
                .await?
                .spec
                .and_then(|s| s.hard)
                .unwrap_or_default();
            let default_cpu = limits
                .get("berth-limits")
                .await?
                .spec
                .map(|s| s.limits)
                .unwrap_or_default()
                .first()
                .and_then(|l| l.default.clone())
                .and_then(|d| d.get("cpu").cloned());
            let done = !ns.labels().contains_key("team")
                && ns.labels().get("keep").map(String::as_str) == Some("b")
                && !ns.annotations().contains_key("note")
                && ns.annotations().get("stays").map(String::as_str) == Some("y")
                && !hard.contains_key("count/deployments.apps")
                && hard.get("pods").map(|q| q.0.as_str()) == Some("7")
                && default_cpu.map(|q| q.0) == Some("1".to_owned())
                && policies
                    .get_opt("berth-allow-extra-egress")
                    .await?
                    .is_none()
                && policies
                    .get_opt("berth-allow-extra-ingress")
                    .await?
                    .is_none()
                && !bob_bound().await?;
            Ok(done.then_some(()))
        },
    )
    .await?;
    Ok(())
}
