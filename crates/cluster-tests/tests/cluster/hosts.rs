//! No takeover of host names on the platform's shared gateway: a model's host lives under the
//! platform's model domain (refused at admission otherwise), and the first model to claim a host
//! keeps it. Each attempt is made by impersonating a project owner.

use anyhow::{Context, Result};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use berth_api::PlatformSettings;
use berth_api::conditions::get;
use berth_api::mlmodel::MLModel;

use crate::project::{create, wait_ready};
use crate::support::{eventually, unique, with_operator};
use crate::takeover::{WAIT, refusal};

#[tokio::test]
async fn model_hosts_stay_under_the_domain_and_with_their_first_claimant() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let domain = "models.takeover.example.com";
    Api::<PlatformSettings>::all(admin.clone())
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"models": {"domain": domain}}})),
        )
        .await?;
    let (alice, mallory) = (unique("alice"), unique("mallory"));
    for team in [&alice, &mallory] {
        create(
            &admin,
            team,
            json!({"owners": [format!("{team}@example.com")]}),
        )
        .await?;
        wait_ready(&admin, team).await?;
    }
    let as_owner = |team: String| async move {
        cluster
            .impersonate(&format!("{team}@example.com"), &[])
            .await
            .context("impersonating")
    };
    let model = |name: &str, hostname: Option<&str>| -> Result<MLModel> {
        let mut expose = json!({"mode": "gateway"});
        if let Some(h) = hostname {
            expose["hostname"] = json!(h);
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
            "metadata": {"name": name},
            "spec": {"source": {"uri": "https://example.com/model.onnx"}, "expose": expose},
        }))?)
    };
    let host = format!("fraud.{domain}");
    let alices: Api<MLModel> = Api::namespaced(as_owner(alice.clone()).await?, &alice);
    let mallorys: Api<MLModel> = Api::namespaced(as_owner(mallory.clone()).await?, &mallory);
    alices
        .create(&PostParams::default(), &model("fraud", Some(&host))?)
        .await?;
    let held = eventually("alice's model to hold its host", WAIT, || async {
        let m = alices.get("fraud").await?;
        Ok(m.status
            .and_then(|s| s.hostname)
            .filter(|h| *h == host)
            .map(|_| ()))
    })
    .await;
    held?;

    // Mallory asks for alice's host: admitted (it is under the domain), never granted.
    mallorys
        .create(&PostParams::default(), &model("thief", Some(&host))?)
        .await?;
    let refused = eventually("mallory's model to be refused the host", WAIT, || async {
        let m = mallorys.get("thief").await?;
        let exposed = m
            .status
            .as_ref()
            .and_then(|s| get(&s.conditions, "Exposed"))
            .cloned();
        Ok(exposed
            .filter(|c| c.reason == "HostnameConflict")
            .map(|c| (c, m)))
    })
    .await?;
    assert!(
        refused.0.message.contains(&format!("{alice}/fraud")),
        "{}",
        refused.0.message
    );
    assert!(refused.1.status.and_then(|s| s.hostname).is_none());
    assert_eq!(
        alices.get("fraud").await?.status.and_then(|s| s.hostname),
        Some(host.clone()),
        "alice lost her host"
    );
    // Hosts outside the domain (another team's login page), at admission.
    for outside in ["login.example.com", &format!("x.evil{domain}"), domain] {
        let message = refusal(
            outside,
            mallorys
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &model(&unique("phish"), Some(outside))?,
                )
                .await,
        )?;
        assert!(
            message.contains("outside the platform model domain"),
            "{outside}: {message}"
        );
    }
    // The default host is unambiguous: <model>.<namespace>.<domain>.
    mallorys
        .create(&PostParams::default(), &model("fraud", None)?)
        .await?;
    let default_host = format!("fraud.{mallory}.{domain}");
    eventually("mallory's default host", WAIT, || async {
        let m = mallorys.get("fraud").await?;
        Ok((m.status.and_then(|s| s.hostname) == Some(default_host.clone())).then_some(()))
    })
    .await?;
    Ok(())
}
