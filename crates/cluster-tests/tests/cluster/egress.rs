//! Egress a Project opens never reaches what no project may: even a platform admin's
//! `allowEgressTo: 0.0.0.0/0` leaves out link-local (the cloud metadata service) and the API
//! server's addresses, and a range wholly inside them opens nothing, with a note in NetworkReady.
//! (Admission refuses such ranges from non-admins: the attack suite.)

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use serde_json::json;

use berth_api::conditions::get;

use crate::project::{create, wait_ready};
use crate::support::{unique, with_operator};

#[tokio::test]
async fn egress_never_opens_the_api_server_or_link_local() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let api_server = Api::<Service>::namespaced(admin.clone(), "default")
        .get("kubernetes")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the kubernetes Service has no cluster IP")?;
    let name = unique("egress");
    // A platform admin may ask for all of this; admission lets them.
    create(
        &admin,
        &name,
        json!({
            "owners": ["ada@example.com"],
            "network": {"allowEgressTo": ["0.0.0.0/0", format!("{api_server}/32")]},
        }),
    )
    .await?;
    let project = wait_ready(&admin, &name).await?;
    let policy = Api::<NetworkPolicy>::namespaced(admin.clone(), &name)
        .get("berth-allow-extra-egress")
        .await?;
    let peers = policy
        .spec
        .and_then(|s| s.egress)
        .and_then(|e| e.into_iter().next())
        .and_then(|r| r.to)
        .unwrap_or_default();
    let blocks: Vec<(String, Vec<String>)> = peers
        .into_iter()
        .filter_map(|p| p.ip_block)
        .map(|b| (b.cidr, b.except.unwrap_or_default()))
        .collect();
    assert_eq!(
        blocks.len(),
        1,
        "the API server's own range opened a peer: {blocks:?}"
    );
    let (cidr, except) = &blocks[0];
    assert_eq!(cidr, "0.0.0.0/0");
    for kept_out in ["169.254.0.0/16".to_owned(), format!("{api_server}/32")] {
        assert!(
            except.contains(&kept_out),
            "{kept_out} not excepted: {except:?}"
        );
    }
    let network = project
        .status
        .as_ref()
        .and_then(|s| get(&s.conditions, "NetworkReady"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        network.contains(&format!("allowEgressTo {api_server}/32 opens nothing")),
        "{network}"
    );
    Ok(())
}
