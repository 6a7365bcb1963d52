//! No takeover, inside the cluster: every attempt made the way a tenant would make it (by
//! impersonating a project creator or owner), against the real API server's admission and the
//! operator under its shipped RBAC. Each attempt fails with the message a user sees, and the
//! victim (a namespace, another project, the platform) is shown unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::conditions::get;
use berth_api::{PlatformSettings, Project};

use crate::project::{create, wait_condition, wait_ready};
use crate::support::{Cluster, eventually, unique, with_operator};

pub const WAIT: Duration = Duration::from_secs(60);

/// A user who may create Projects (the berth-project-creator role), and a client acting as them.
async fn creator(cluster: &Cluster, admin: &Client) -> Result<(String, Client)> {
    let user = format!("{}@example.com", unique("creator"));
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(unique("creator")),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "berth-project-creator".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.clone(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    namespace: None,
                }]),
            },
        )
        .await?;
    let client = cluster.impersonate(&user, &[]).await?;
    // The binding takes a moment to reach the authorizer.
    let probe = client.clone();
    let me = user.clone();
    eventually("the creator role to apply", WAIT, || {
        let probe = probe.clone();
        let me = me.clone();
        async move {
            let dry = attempt(
                &probe,
                &unique("probe"),
                json!({"owners": [me]}),
                json!({}),
                true,
            )
            .await;
            Ok(dry.is_ok().then_some(()))
        }
    })
    .await?;
    Ok((user, client))
}

/// Creates a Project as `client` (or only tries, with `dry_run`).
async fn attempt(
    client: &Client,
    name: &str,
    spec: Value,
    annotations: Value,
    dry_run: bool,
) -> Result<Project, kube::Error> {
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name, "annotations": annotations}, "spec": spec,
    }))
    .map_err(kube::Error::SerdeError)?;
    Api::<Project>::all(client.clone())
        .create(
            &PostParams {
                dry_run,
                ..Default::default()
            },
            &project,
        )
        .await
}

/// The message a refused request gets, or an error if it was admitted.
pub fn refusal<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> Result<String> {
    match result {
        Err(kube::Error::Api(status)) => Ok(status.message),
        other => bail!("{what} was admitted: {other:?}"),
    }
}

fn ready_message(p: &Project, type_: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| get(&s.conditions, type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

async fn config_map(client: &Client, namespace: &str, name: &str, value: &str) -> Result<()> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("value".to_owned(), value.to_owned())])),
                ..Default::default()
            },
        )
        .await?;
    Ok(())
}

async fn config_value(client: &Client, namespace: &str, name: &str) -> Result<Option<String>> {
    Ok(Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .and_then(|d| d.get("value").cloned()))
}

#[tokio::test]
async fn a_creator_cannot_take_a_namespace_the_platform_trusts() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let (user, as_creator) = creator(cluster, &admin).await?;
    // A platform admin reserves a namespace of their own.
    let vault = unique("vault");
    Api::<PlatformSettings>::all(admin.clone())
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"namespaces": {"reserved": [vault]}}})),
        )
        .await?;
    // The shipped settings name istio-system (gateway) and monitoring; Berth runs in berth-system.
    let cases = [
        ("kube-system", "belong to Kubernetes"),
        ("kube-berth-new", "belong to Kubernetes"),
        ("default", "belongs to the cluster"),
        ("berth-system", "Berth's operator runs in it"),
        ("istio-system", "gatewayNamespaces"),
        ("monitoring", "monitoringNamespaces"),
        (vault.as_str(), "namespaces.reserved"),
    ];
    let mut attempts = 0;
    for (namespace, why) in cases {
        // Asked for as spec.namespace, and as the project's own name.
        for (name, spec) in [
            (
                unique("grab"),
                json!({"owners": [user], "namespace": namespace}),
            ),
            (namespace.to_owned(), json!({"owners": [user]})),
        ] {
            attempts += 1;
            let message = refusal(
                &format!("a Project for {namespace}"),
                attempt(&as_creator, &name, spec, json!({}), false).await,
            )?;
            assert!(
                message.contains("reserved for the platform") && message.contains(why),
                "{namespace}: {message}"
            );
        }
    }
    eprintln!("{attempts} attempts on platform namespaces, all refused at admission");

    // The operator refuses it too (admission cannot see what a platform admin bypasses): a
    // Project for monitoring gets a condition, and nothing is created.
    let name = unique("admin-grab");
    create(
        &admin,
        &name,
        json!({"owners": ["ada@example.com"], "namespace": "monitoring"}),
    )
    .await?;
    let p = wait_condition(&admin, &name, "Ready", "False", "NamespaceReserved").await?;
    let message = ready_message(&p, "Ready");
    assert!(message.contains("monitoringNamespaces"), "{message}");
    let monitoring = Api::<Namespace>::all(admin.clone())
        .get_opt("monitoring")
        .await?;
    assert!(
        monitoring.is_none_or(|ns| !ns.labels().contains_key("berth.dev/project")),
        "the operator made or took monitoring"
    );
    Api::<Project>::all(admin)
        .delete(&name, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_settings_change_never_makes_a_project_trusted() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let (user, as_creator) = creator(cluster, &admin).await?;
    let tenant = unique("tenant");
    attempt(
        &as_creator,
        &tenant,
        json!({"owners": [user]}),
        json!({}),
        false,
    )
    .await?;
    wait_ready(&admin, &tenant).await?;
    let neighbour = unique("neighbour");
    create(&admin, &neighbour, json!({"owners": ["ada@example.com"]})).await?;
    wait_ready(&admin, &neighbour).await?;

    // The platform later names the tenant's namespace as a gateway namespace (by mistake, or
    // because the tenant asked for a name the platform meant to use), with a real one beside it.
    let settings: Api<PlatformSettings> = Api::all(admin.clone());
    let before = settings.get("default").await?.spec.gateway_namespaces;
    let real = unique("gateway");
    let mut changed = before.clone();
    changed.extend([tenant.clone(), real.clone()]);
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"gatewayNamespaces": changed}})),
        )
        .await?;
    let checked = async {
        let p = wait_condition(
            &admin,
            &tenant,
            "NamespaceReady",
            "False",
            "NamespaceReserved",
        )
        .await?;
        let message = ready_message(&p, "NamespaceReady");
        assert!(
            message.contains("gatewayNamespaces")
                && message.contains("no longer lets other projects trust it"),
            "{message}"
        );
        // Every project follows the settings (the real gateway is admitted), yet none trusts
        // the tenant's namespace.
        let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &neighbour);
        let text = eventually("the neighbour to admit the new gateway", WAIT, || async {
            let text = serde_json::to_string(&policies.get_opt("berth-allow-platform").await?)?;
            Ok(text.contains(&real).then_some(text))
        })
        .await?;
        assert!(
            !text.contains(&tenant),
            "the neighbour trusts the tenant: {text}"
        );
        // The tenant keeps its namespace, isolated as before.
        assert!(
            Api::<NetworkPolicy>::namespaced(admin.clone(), &tenant)
                .get_opt("berth-default-deny")
                .await?
                .is_some()
        );
        anyhow::Ok(())
    }
    .await;
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"gatewayNamespaces": before}})),
        )
        .await?;
    checked?;
    wait_ready(&admin, &tenant).await?;
    Ok(())
}

#[tokio::test]
async fn namespaces_that_exist_are_never_taken_nor_deleted() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    // The victims: another team's project with data, and a namespace made outside Berth.
    let victim = unique("victim");
    create(&admin, &victim, json!({"owners": ["victim@example.com"]})).await?;
    wait_ready(&admin, &victim).await?;
    config_map(&admin, &victim, "results", "0.97").await?;
    let bindings = |ns: String| {
        let admin = admin.clone();
        async move {
            let mut names: Vec<(String, Option<String>)> =
                Api::<RoleBinding>::namespaced(admin, &ns)
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .map(|b| (b.name_any(), b.metadata.uid.clone()))
                    .collect();
            names.sort();
            anyhow::Ok(names)
        }
    };
    let victim_bindings = bindings(victim.clone()).await?;
    let theirs = unique("theirs");
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(theirs.clone()),
                    labels: Some(BTreeMap::from([("team".to_owned(), "theirs".to_owned())])),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    config_map(&admin, &theirs, "ledger", "42").await?;

    // The attacker asks for both, with the Delete policy, hoping to delete them later.
    let (user, as_attacker) = creator(cluster, &admin).await?;
    let grab_victim = unique("grab");
    attempt(
        &as_attacker,
        &grab_victim,
        json!({"owners": [user], "namespace": victim, "deletionPolicy": "Delete"}),
        json!({}),
        false,
    )
    .await?;
    attempt(
        &as_attacker,
        &theirs,
        json!({"owners": [user], "deletionPolicy": "Delete"}),
        json!({}),
        false,
    )
    .await?;
    for (project, expected) in [
        (&grab_victim, format!("belongs to project {victim}")),
        (&theirs, "was not created by Berth".to_owned()),
    ] {
        let p = wait_condition(&admin, project, "Ready", "False", "NamespaceConflict").await?;
        let message = ready_message(&p, "Ready");
        assert!(
            message.contains(&expected) && message.contains("berth.dev/adopt-namespace"),
            "{message}"
        );
    }
    // Owners of their conflicting projects (Berth gives them access to the Project object, so
    // that they can fix or delete it), they cannot adopt either namespace themselves.
    for project in [&grab_victim, &theirs] {
        let projects: Api<Project> = Api::all(as_attacker.clone());
        let adopt = json!({"metadata": {"annotations": {"berth.dev/adopt-namespace": "true"}}});
        let message = eventually(
            "the owner's access to reach the authorizer",
            WAIT,
            || async {
                let result = projects
                    .patch(project, &PatchParams::default(), &Patch::Merge(&adopt))
                    .await;
                let message = refusal("an owner's adopt annotation", result)?;
                Ok((!message.contains("cannot patch")).then_some(message))
            },
        )
        .await?;
        assert!(message.contains("only a platform admin"), "{message}");
    }
    // Nor read what is in them.
    for ns in [&victim, &theirs] {
        let denied = Api::<ConfigMap>::namespaced(as_attacker.clone(), ns)
            .list(&ListParams::default())
            .await;
        assert!(
            matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403),
            "{ns}: {denied:?}"
        );
    }
    // Deleting their projects deletes nothing that was never theirs.
    for project in [&grab_victim, &theirs] {
        Api::<Project>::all(as_attacker.clone())
            .delete(project, &DeleteParams::default())
            .await?;
    }
    eventually("the attacker's projects to go", WAIT, || async {
        let projects: Api<Project> = Api::all(admin.clone());
        Ok((projects.get_opt(&grab_victim).await?.is_none()
            && projects.get_opt(&theirs).await?.is_none())
        .then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (ns, map, value) in [(&victim, "results", "0.97"), (&theirs, "ledger", "42")] {
        let live = Api::<Namespace>::all(admin.clone()).get(ns).await?;
        assert!(
            live.metadata.deletion_timestamp.is_none(),
            "{ns} is being deleted"
        );
        assert_eq!(config_value(&admin, ns, map).await?.as_deref(), Some(value));
    }
    let live = Api::<Namespace>::all(admin.clone()).get(&theirs).await?;
    assert_eq!(
        live.labels().get("team").map(String::as_str),
        Some("theirs")
    );
    assert!(!live.labels().contains_key("berth.dev/project"));
    assert!(bindings(theirs.clone()).await?.is_empty());
    assert_eq!(bindings(victim.clone()).await?, victim_bindings);
    wait_ready(&admin, &victim).await?;
    Ok(())
}

#[tokio::test]
async fn an_adopted_namespace_outlives_delete_unless_an_admin_asks() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let mut kept = Vec::new();
    for delete_it in [false, true] {
        let name = unique("adopted");
        Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
        config_map(&admin, &name, "before-berth", "data").await?;
        let mut annotations = json!({"berth.dev/adopt-namespace": "true"});
        if delete_it {
            annotations["berth.dev/delete-adopted-namespace"] = json!("true");
        }
        let project: Project = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"owners": ["ada@example.com"], "deletionPolicy": "Delete"},
        }))?;
        let projects: Api<Project> = Api::all(admin.clone());
        projects.create(&PostParams::default(), &project).await?;
        let ready = wait_ready(&admin, &name).await?;
        assert_eq!(
            ready.status.as_ref().and_then(|s| s.namespace_adopted),
            Some(true)
        );
        projects.delete(&name, &DeleteParams::default()).await?;
        eventually("the project to go", WAIT, || async {
            Ok(projects.get_opt(&name).await?.is_none().then_some(()))
        })
        .await?;
        kept.push((name, delete_it));
    }
    for (name, delete_it) in kept {
        let namespaces: Api<Namespace> = Api::all(admin.clone());
        if delete_it {
            eventually("the adopted namespace an admin let go", WAIT, || async {
                let ns = namespaces.get_opt(&name).await?;
                Ok(ns
                    .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
                    .then_some(()))
            })
            .await?;
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let ns = namespaces.get(&name).await?;
            assert!(
                ns.metadata.deletion_timestamp.is_none(),
                "{name} is being deleted"
            );
            assert_eq!(
                config_value(&admin, &name, "before-berth")
                    .await?
                    .as_deref(),
                Some("data")
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn only_a_platform_admin_sets_the_takeover_annotations() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let (user, as_creator) = creator(cluster, &admin).await?;
    let keys = [
        "berth.dev/adopt-namespace",
        "berth.dev/adopt-storage",
        "berth.dev/adopt-identity",
        "berth.dev/adopt-registry",
        "berth.dev/abandon-external",
        "berth.dev/delete-adopted-namespace",
    ];
    let mine = unique("mine");
    attempt(
        &as_creator,
        &mine,
        json!({"owners": [user]}),
        json!({}),
        false,
    )
    .await?;
    wait_ready(&admin, &mine).await?;
    let mut attempts = 0;
    for key in keys {
        attempts += 2;
        let message = refusal(
            key,
            attempt(
                &as_creator,
                &unique("annotated"),
                json!({"owners": [user]}),
                json!({key: "true"}),
                true,
            )
            .await,
        )?;
        assert!(
            message.contains("only a platform admin may set") && message.contains(key),
            "{key}: {message}"
        );
        // As the owner of an existing project, too.
        let message = refusal(
            key,
            Api::<Project>::all(as_creator.clone())
                .patch(
                    &mine,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": {key: "true"}}})),
                )
                .await,
        )?;
        assert!(message.contains(key), "{key}: {message}");
    }
    eprintln!("{attempts} attempts to set an admin-only annotation, all refused");
    let p = Api::<Project>::all(admin.clone()).get(&mine).await?;
    assert!(
        p.annotations().keys().all(|k| !keys.contains(&k.as_str())),
        "{:?}",
        p.annotations()
    );
    Ok(())
}
