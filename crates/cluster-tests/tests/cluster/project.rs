//! The Project controller on the real control plane, with the operator under its shipped RBAC.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::Project;
use berth_api::conditions::{get, is_true};

use crate::support::{eventually, unique, with_operator};

const WAIT: Duration = Duration::from_secs(60);

pub async fn create(client: &Client, name: &str, spec: serde_json::Value) -> Result<Project> {
    let projects: Api<Project> = Api::all(client.clone());
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name}, "spec": spec,
    }))?;
    Ok(projects.create(&PostParams::default(), &project).await?)
}

pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<Project> {
    let projects: Api<Project> = Api::all(client.clone());
    eventually(
        &format!("project {name} {type_}={status} ({reason})"),
        WAIT,
        || async {
            let p = projects.get(name).await?;
            let ok = p
                .status
                .as_ref()
                .and_then(|s| get(&s.conditions, type_))
                .is_some_and(|c| c.status == status && c.reason == reason);
            Ok(ok.then_some(p))
        },
    )
    .await
}

pub async fn wait_ready(client: &Client, name: &str) -> Result<Project> {
    wait_condition(client, name, "Ready", "True", "ProjectReady").await
}

async fn wait_gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} to be gone"), WAIT, || async {
        Ok(api.get_opt(name).await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test]
async fn the_seed_project_gets_a_ready_isolated_namespace() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("seed");
    create(
        &client,
        &name,
        json!({
            "owners": ["data.scientist@example.com", "mle@example.com"],
            "resourceQuota": {"hard": {"cpu": "16", "memory": "32Gi"}},
            "idp": {"redirectUris": ["https://example.com"]},
        }),
    )
    .await?;
    let project = wait_ready(&client, &name).await?;
    let status = project.status.clone().context("no status")?;
    assert_eq!(status.namespace.as_deref(), Some(name.as_str()));
    assert_eq!(
        status.owners.as_deref(),
        Some("data.scientist@example.com,mle@example.com")
    );
    assert_eq!(status.observed_generation, project.metadata.generation);
    for t in [
        "NamespaceReady",
        "AccessReady",
        "QuotaReady",
        "NetworkReady",
    ] {
        assert!(
            is_true(&status.conditions, t),
            "{t} not True: {:?}",
            status.conditions
        );
    }
    let quota = status.quota.context("no quota usage")?;
    // `cpu` is `requests.cpu`: the quota names each resource once, in its canonical form.
    assert_eq!(quota.hard["requests.cpu"].0, "16");
    assert_eq!(quota.hard["requests.memory"].0, "32Gi");
    assert!(!quota.hard.contains_key("cpu"), "{:?}", quota.hard);
    assert!(quota.used.contains_key("requests.cpu"));

    let ns = Api::<Namespace>::all(client.clone()).get(&name).await?;
    let labels = ns.labels();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "berth");
    // Tracked by label and UID: no ownerReference, so the garbage collector never takes it.
    assert_eq!(labels.get("berth.dev/owner-uid"), project.uid().as_ref());
    assert!(ns.owner_references().is_empty());

    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &name)
        .list(&ListParams::default())
        .await?;
    let owners: Vec<String> = bindings
        .items
        .iter()
        .filter(|b| b.role_ref.name == "berth-project-owner")
        .flat_map(|b| b.subjects.clone().unwrap_or_default())
        .map(|s| s.name)
        .collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &name)
        .list(&ListParams::default())
        .await?;
    let names: Vec<String> = policies.items.iter().map(|p| p.name_any()).collect();
    for expected in [
        "berth-default-deny",
        "berth-allow-same-namespace",
        "berth-allow-dns",
    ] {
        assert!(names.contains(&expected.to_owned()), "{names:?}");
    }
    assert!(
        names.contains(&"berth-allow-model-auth".to_owned()),
        "{names:?}"
    );
    let sa = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &name);
    assert!(sa.get_opt("project-automation").await?.is_some());
    // Its models' servers check ServiceAccount tokens as berth-model-auth, which may create
    // TokenReviews (through the shipped berth-token-reviewer role) and nothing else.
    assert!(sa.get_opt("berth-model-auth").await?.is_some());
    let reviewer = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(client.clone())
        .get(&format!("berth-project-{name}-token-reviewer"))
        .await?;
    assert_eq!(reviewer.role_ref.name, "berth-token-reviewer");
    let subjects = reviewer.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].name, "berth-model-auth");
    assert_eq!(subjects[0].namespace.as_deref(), Some(name.as_str()));
    Ok(())
}

#[tokio::test]
async fn member_changes_follow_and_a_removed_member_loses_access() -> Result<()> {
    let (cluster, client) = with_operator().await?;
    let name = unique("members");
    let bob = format!("bob-{name}@example.com");
    create(&client, &name, json!({"owners": ["ada@example.com"]})).await?;
    wait_ready(&client, &name).await?;
    let as_bob: Api<ConfigMap> = Api::namespaced(cluster.impersonate(&bob, &[]).await?, &name);
    assert!(as_bob.list(&ListParams::default()).await.is_err());

    let projects: Api<Project> = Api::all(client.clone());
    let add = json!({"spec": {"members": [{"kind": "User", "name": bob, "role": "editor"}]}});
    projects
        .patch(&name, &PatchParams::default(), &Patch::Merge(&add))
        .await?;
    eventually("bob to gain access", WAIT, || async {
        Ok(as_bob
            .list(&ListParams::default())
            .await
            .is_ok()
            .then_some(()))
    })
    .await?;
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("bobs".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    as_bob.create(&PostParams::default(), &cm).await?;

    let remove = json!({"spec": {"members": null}});
    projects
        .patch(&name, &PatchParams::default(), &Patch::Merge(&remove))
        .await?;
    eventually("bob to lose access", WAIT, || async {
        Ok(matches!(as_bob.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 403).then_some(()))
    })
    .await?;
    // His data stays: access follows the members list, data does not.
    assert!(
        Api::<ConfigMap>::namespaced(client, &name)
            .get_opt("bobs")
            .await?
            .is_some()
    );
    Ok(())
}

#[tokio::test]
async fn drift_is_restored() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("drift");
    create(&client, &name, json!({"owners": ["ada@example.com"]})).await?;
    wait_ready(&client, &name).await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    let before = policies.get("berth-default-deny").await?.uid();
    policies
        .delete("berth-default-deny", &DeleteParams::default())
        .await?;
    eventually("the deleted policy to come back", WAIT, || async {
        Ok(policies
            .get_opt("berth-default-deny")
            .await?
            .filter(|p| p.uid() != before)
            .map(|_| ()))
    })
    .await?;

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &name);
    let edit = json!({"spec": {"hard": {"pods": "100000"}}});
    quotas
        .patch("berth-quota", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    eventually("the edited quota to be restored", WAIT, || async {
        let q = quotas.get("berth-quota").await?;
        let pods = q
            .spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("pods").cloned());
        Ok((pods.map(|p| p.0) == Some("100".into())).then_some(()))
    })
    .await
}

#[tokio::test]
async fn an_existing_namespace_is_never_adopted_silently() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("taken");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                "owner".to_owned(),
                "someone-else".to_owned(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;
    create(&client, &name, json!({"owners": ["ada@example.com"]})).await?;
    let project = wait_condition(
        &client,
        &name,
        "NamespaceReady",
        "False",
        "NamespaceConflict",
    )
    .await?;
    let message = get(
        &project.status.clone().unwrap_or_default().conditions,
        "Ready",
    )
    .map(|c| c.message.clone())
    .unwrap_or_default();
    assert!(
        message.contains("not created by Berth") && message.contains("berth.dev/adopt-namespace"),
        "{message}"
    );
    // Untouched: no labels, owner or children added.
    let live = namespaces.get(&name).await?;
    assert!(!live.labels().contains_key("berth.dev/project"));
    assert!(live.owner_references().is_empty());
    assert!(
        Api::<RoleBinding>::namespaced(client.clone(), &name)
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );

    // A platform admin adopts it explicitly.
    let projects: Api<Project> = Api::all(client.clone());
    let adopt = json!({"metadata": {"annotations": {"berth.dev/adopt-namespace": "true"}}});
    projects
        .patch(&name, &PatchParams::default(), &Patch::Merge(&adopt))
        .await?;
    wait_ready(&client, &name).await?;
    let live = namespaces.get(&name).await?;
    assert_eq!(live.labels().get("berth.dev/project"), Some(&name));
    assert_eq!(
        live.labels().get("owner").map(String::as_str),
        Some("someone-else")
    );
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_namespace_and_its_data() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("retain");
    create(&client, &name, json!({"owners": ["ada@example.com"], "members": [{"kind": "User", "name": "bob@example.com", "role": "editor"}]})).await?;
    wait_ready(&client, &name).await?;
    let data: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("results".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("accuracy".to_owned(), "0.97".to_owned())])),
        ..Default::default()
    };
    data.create(&PostParams::default(), &cm).await?;

    let projects: Api<Project> = Api::all(client.clone());
    projects.delete(&name, &DeleteParams::default()).await?;
    wait_gone(&projects, &name).await?;
    // Give the garbage collector time to act on anything it would delete.
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &name);
    eventually("member access to be removed", WAIT, || async {
        let left = bindings.list(&ListParams::default()).await?.items;
        Ok(left
            .iter()
            .all(|b| {
                b.role_ref.name != "berth-project-editor" || b.name_any().starts_with("berth-sa-")
            })
            .then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ns = Api::<Namespace>::all(client.clone()).get(&name).await?;
    assert!(
        ns.metadata.deletion_timestamp.is_none(),
        "the retained namespace is being deleted"
    );
    assert_eq!(
        ns.labels().get("berth.dev/retained").map(String::as_str),
        Some("true")
    );
    assert!(ns.owner_references().is_empty());
    assert_eq!(
        data.get("results").await?.data.unwrap_or_default()["accuracy"],
        "0.97"
    );
    assert!(
        Api::<NetworkPolicy>::namespaced(client.clone(), &name)
            .get_opt("berth-default-deny")
            .await?
            .is_some()
    );

    let events: Api<Event> = Api::all(client);
    let retained = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?
        .items
        .into_iter()
        .any(|e| e.reason.as_deref() == Some("Retained"));
    assert!(retained, "no Retained event");
    Ok(())
}

#[tokio::test]
async fn delete_policy_removes_the_namespace() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("delete");
    create(
        &client,
        &name,
        json!({"owners": ["ada@example.com"], "deletionPolicy": "Delete"}),
    )
    .await?;
    wait_ready(&client, &name).await?;
    Api::<Project>::all(client.clone())
        .delete(&name, &DeleteParams::default())
        .await?;
    wait_gone(&Api::<Namespace>::all(client), &name).await
}

#[tokio::test]
async fn an_invalid_spec_changes_nothing_and_says_why() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("invalid");
    create(
        &client,
        &name,
        json!({"owners": ["ada@example.com"], "namespace": "kube-berth-test"}),
    )
    .await?;
    let project = wait_condition(&client, &name, "Ready", "False", "NamespaceReserved").await?;
    let message = get(&project.status.unwrap_or_default().conditions, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("reserved"), "{message}");
    assert!(
        Api::<Namespace>::all(client)
            .get_opt("kube-berth-test")
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn admission_rejects_bad_specs_in_words_a_user_understands() -> Result<()> {
    let (_, client) = with_operator().await?;
    let cases = [
        (
            json!({"members": [{"kind": "User", "name": "a@example.com", "role": "viewer"}]}),
            "at least one owner",
        ),
        (
            json!({"owners": ["a@example.com"], "resourceQuota": {"hard": {"cpu": "lots"}}}),
            "must be a quantity",
        ),
        (
            json!({"owners": ["a@example.com"], "network": {"allowEgressTo": ["10.0.0.0/33"]}}),
            "CIDR",
        ),
        (
            json!({"owners": ["a@example.com"], "namespace": "Not_A_Label"}),
            "DNS label",
        ),
        (
            json!({"owners": ["a@example.com"], "members": [{"kind": "User", "name": "b", "role": "admin"}]}),
            "admin",
        ),
        (
            json!({"owners": ["a@example.com"], "namespaceLabels": {"pod-security.kubernetes.io/enforce": "privileged"}}),
            "namespaceLabels",
        ),
    ];
    for (spec, expected) in cases {
        let name = unique("reject");
        match create(&client, &name, spec.clone()).await {
            Err(e) => {
                let text = format!("{e:#}");
                assert!(
                    text.contains(expected),
                    "for {spec}: expected {expected:?} in {text}"
                );
            }
            Ok(_) => panic!("{spec} was admitted"),
        }
    }
    // The namespace cannot change later.
    let name = unique("immutable");
    create(
        &client,
        &name,
        json!({"owners": ["a@example.com"], "namespace": format!("{name}-ns")}),
    )
    .await?;
    let change = json!({"spec": {"namespace": format!("{name}-other")}});
    let result = Api::<Project>::all(client)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&change))
        .await;
    let text = format!(
        "{:?}",
        result.err().context("the namespace change was admitted")?
    );
    assert!(text.contains("cannot change"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_steady_project_is_not_written() -> Result<()> {
    let (_, client) = with_operator().await?;
    let name = unique("steady");
    create(&client, &name, json!({"owners": ["ada@example.com"]})).await?;
    wait_ready(&client, &name).await?;
    // Let the transition settle (quota usage, in-flight checks), then nothing may move.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let versions = |client: Client, name: String| async move {
        let mut v = vec![
            Api::<Project>::all(client.clone())
                .get(&name)
                .await?
                .resource_version(),
        ];
        v.push(
            Api::<Namespace>::all(client.clone())
                .get(&name)
                .await?
                .resource_version(),
        );
        for p in Api::<NetworkPolicy>::namespaced(client.clone(), &name)
            .list(&ListParams::default())
            .await?
            .items
        {
            v.push(p.resource_version());
        }
        for b in Api::<RoleBinding>::namespaced(client.clone(), &name)
            .list(&ListParams::default())
            .await?
            .items
        {
            v.push(b.resource_version());
        }
        anyhow::Ok(v)
    };
    let before = versions(client.clone(), name.clone()).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(before, versions(client, name).await?);
    Ok(())
}
