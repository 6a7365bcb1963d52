//! Where users look, and what they read there. A Project's conditions and Events say what failed
//! and what to do in Berth's words; the providers' admin endpoints and raw answers go to the
//! operator's log only. Its Events land in its namespace, where its members read them, and never
//! in `default`, which anyone may read.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use berth_api::Project;

use crate::support::Platform;

/// Every condition of `project` is free of `endpoints` and of the providers' raw answers, which
/// the operator's log holds instead.
pub fn conditions_keep_endpoints_and_answers_to_the_log(
    platform: &Platform,
    project: &Project,
    endpoints: &[&str],
) -> Result<()> {
    let conditions = project
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let text: String = conditions
        .iter()
        .map(|c| format!("{}: {}\n", c.type_, c.message))
        .collect();
    for endpoint in endpoints {
        if text.contains(endpoint) {
            bail!("a condition names the admin endpoint {endpoint}:\n{text}");
        }
    }
    assert!(
        !text.contains("http://"),
        "a condition holds a URL:\n{text}"
    );
    let log = platform.operator_log();
    // The identity provider's answer named its URL: the log has it.
    assert!(
        endpoints.iter().any(|e| log.contains(e)),
        "the operator's log lacks the provider's own words"
    );
    // The object store's answer to the wrong token, as the log has it, is in no condition.
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("StorageAdminCredentialsRejected"))
        .filter_map(|l| l.split("[provider said: ").nth(1))
        .filter_map(|rest| rest.split(']').next())
        .collect();
    let Some(detail) = said.first() else {
        bail!("the operator's log has no provider answer for the rejected token:\n{log}");
    };
    // "<operation>: <what Garage answered>": the answer is the part after the operation.
    let answer = detail.split_once(": ").map(|(_, a)| a).unwrap_or(detail);
    assert!(
        !answer.is_empty() && !text.contains(answer),
        "the provider's answer {answer:?} reached a condition:\n{text}"
    );
    let storage = conditions
        .iter()
        .find(|c| c.type_ == "StorageReady")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        storage.contains("rejected the admin credentials")
            && storage.contains("storage.adminSecretRef"),
        "StorageReady does not say what failed and what to do: {storage}"
    );
    eprintln!("StorageReady says: {storage}\nthe operator's log alone has: {detail}");
    Ok(())
}

/// The Events about Project `name` in `namespace`, as `client` may list them.
async fn project_events(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, kube::Error> {
    Ok(Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!(
            "involvedObject.kind=Project,involvedObject.name={name}"
        )))
        .await?
        .items)
}

/// `member` reads the Events of project `name` (whose namespace has the same name) that tell its
/// providers' failures; `default` holds no Event about it.
pub async fn members_read_events_and_default_holds_none(
    platform: &Platform,
    name: &str,
    member: &str,
) -> Result<()> {
    let as_member = platform.plane.cluster().impersonate(member, &[]).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = project_events(&as_member, name, name).await;
        if let Ok(events) = &events
            && events
                .iter()
                .any(|e| e.message.as_deref().is_some_and(|m| m.contains("Storage")))
        {
            break events.clone();
        }
        if tokio::time::Instant::now() > deadline {
            bail!("member {member} read no Event about the storage failure: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for e in &events {
        let m = e.message.as_deref().unwrap_or_default();
        assert!(!m.contains("http://"), "an Event holds a URL: {m}");
    }
    let in_default = project_events(&platform.client, "default", name).await?;
    assert!(
        in_default.is_empty(),
        "Events of project {name} in default: {:?}",
        in_default.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    // Nor any Event in default that names the project's bucket or a provider's failure.
    let all_default = Api::<Event>::namespaced(platform.client.clone(), "default")
        .list(&ListParams::default())
        .await?;
    for e in &all_default.items {
        let m = e.message.as_deref().unwrap_or_default();
        assert!(
            !m.contains(name) && !m.contains("Storage") && !m.contains("Identity"),
            "an Event in default tells about a project: {m}"
        );
    }
    Ok(())
}
