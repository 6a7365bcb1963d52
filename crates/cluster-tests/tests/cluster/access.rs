//! Who may do what, checked by impersonation against the real API server's RBAC and admission.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use berth_api::{PlatformSettings, Project};

use crate::project::{create, wait_ready};
use crate::support::{eventually, unique, with_operator};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Verb {
    Get,
    List,
    Create,
    Delete,
}

const ALL: [Verb; 4] = [Verb::Get, Verb::List, Verb::Create, Verb::Delete];

fn restricted_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": "registry.invalid/berth/test:1",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }))
    .unwrap_or_else(|_| Pod {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(PodSpec { containers: vec![Container::default()], ..Default::default() }),
        status: None,
    })
}

/// Whether `verb` is allowed on `api`. Creates and deletes are dry runs: authorization and
/// admission run in full, nothing is stored.
async fn allowed<K>(api: &Api<K>, verb: Verb, existing: &str, new: &K) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let result = match verb {
        Verb::Get => api.get(existing).await.map(|_| ()),
        Verb::List => api.list(&ListParams::default()).await.map(|_| ()),
        Verb::Create => api
            .create(
                &PostParams {
                    dry_run: true,
                    ..Default::default()
                },
                new,
            )
            .await
            .map(|_| ()),
        Verb::Delete => api
            .delete(
                existing,
                &DeleteParams {
                    dry_run: true,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

struct Subjects {
    owner: Client,
    editor: Client,
    viewer: Client,
    outsider: Client,
    other_owner: Client,
}

#[tokio::test]
async fn access_matrix_by_impersonation() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let name = unique("matrix");
    let other = unique("matrix-other");
    let id = |who: &str| format!("{who}-{name}@example.com");
    create(
        &admin,
        &name,
        json!({
            "owners": [id("owner")],
            "members": [
                {"kind": "User", "name": id("editor"), "role": "editor"},
                {"kind": "User", "name": id("viewer"), "role": "viewer"},
            ],
        }),
    )
    .await?;
    create(&admin, &other, json!({"owners": [id("other")]})).await?;
    wait_ready(&admin, &name).await?;
    wait_ready(&admin, &other).await?;

    // Objects to get and delete.
    Api::<Pod>::namespaced(admin.clone(), &name)
        .create(&PostParams::default(), &restricted_pod("existing"))
        .await?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("existing".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), &name)
        .create(&PostParams::default(), &secret)
        .await?;
    let binding = |n: &str| RoleBinding {
        metadata: ObjectMeta {
            name: Some(n.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "view".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: "guest@example.com".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &name)
        .create(&PostParams::default(), &binding("existing"))
        .await?;

    let s = Subjects {
        owner: cluster.impersonate(&id("owner"), &[]).await?,
        editor: cluster.impersonate(&id("editor"), &[]).await?,
        viewer: cluster.impersonate(&id("viewer"), &[]).await?,
        outsider: cluster.impersonate(&id("outsider"), &[]).await?,
        other_owner: cluster.impersonate(&id("other"), &[]).await?,
    };
    // RBAC changes reach the authorizer's cache quickly, but not instantly.
    let owner_pods: Api<Pod> = Api::namespaced(s.owner.clone(), &name);
    eventually("the owner's access", Duration::from_secs(30), || async {
        Ok(owner_pods
            .list(&ListParams::default())
            .await
            .is_ok()
            .then_some(()))
    })
    .await?;

    let yes = [true; 4];
    let no = [false; 4];
    let read = [true, true, false, false];
    let get_only = [true, false, false, false];
    let get_delete = [true, false, false, true];
    let mut failures = Vec::new();
    let rows: [(&str, &Client, [[bool; 4]; 5]); 5] = [
        //               pods   secrets rolebindings namespace  project
        ("owner", &s.owner, [yes, yes, yes, get_only, get_delete]),
        ("editor", &s.editor, [yes, yes, no, get_only, get_only]),
        ("viewer", &s.viewer, [read, no, no, get_only, get_only]),
        ("outsider", &s.outsider, [no, no, no, no, no]),
        (
            "owner of another project",
            &s.other_owner,
            [no, no, no, no, no],
        ),
    ];
    for (who, client, expected) in rows {
        for (i, verb) in ALL.iter().enumerate() {
            let cells = [
                (
                    "pods",
                    allowed(
                        &Api::<Pod>::namespaced((*client).clone(), &name),
                        *verb,
                        "existing",
                        &restricted_pod("new"),
                    )
                    .await?,
                ),
                (
                    "secrets",
                    allowed(
                        &Api::<Secret>::namespaced((*client).clone(), &name),
                        *verb,
                        "existing",
                        &Secret {
                            metadata: ObjectMeta {
                                name: Some("new".into()),
                                ..Default::default()
                            },
                            ..Default::default()
                        },
                    )
                    .await?,
                ),
                (
                    "rolebindings",
                    allowed(
                        &Api::<RoleBinding>::namespaced((*client).clone(), &name),
                        *verb,
                        "existing",
                        &binding("new"),
                    )
                    .await?,
                ),
                (
                    "namespace",
                    allowed(
                        &Api::<Namespace>::all((*client).clone()),
                        *verb,
                        &name,
                        &Namespace {
                            metadata: ObjectMeta {
                                name: Some(unique("new")),
                                ..Default::default()
                            },
                            ..Default::default()
                        },
                    )
                    .await?,
                ),
                ("project", {
                    let new: Project = serde_json::from_value(
                        json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": unique("new")}, "spec": {"owners": [id("owner")]}}),
                    )?;
                    allowed(&Api::<Project>::all((*client).clone()), *verb, &name, &new).await?
                }),
            ];
            for (column, (resource, got)) in cells.iter().enumerate() {
                if *got != expected[column][i] {
                    failures.push(format!(
                        "{who} {verb:?} {resource}: got {got}, expected {}",
                        expected[column][i]
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix mismatches:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn tenants_cannot_loosen_their_isolation() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let name = unique("tenant");
    let owner = format!("owner-{name}@example.com");
    create(&admin, &name, json!({"owners": [owner]})).await?;
    wait_ready(&admin, &name).await?;
    let as_owner = cluster.impersonate(&owner, &[]).await?;
    let policies: Api<NetworkPolicy> = Api::namespaced(as_owner.clone(), &name);
    eventually("the owner's access", Duration::from_secs(30), || async {
        Ok(policies
            .list(&ListParams::default())
            .await
            .is_ok()
            .then_some(()))
    })
    .await?;

    let denied =
        |r: Result<(), kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(
        denied(
            policies
                .delete("berth-default-deny", &DeleteParams::default())
                .await
                .map(|_| ())
        ),
        "owner deleted the default-deny policy"
    );
    let namespaces: Api<Namespace> = Api::all(as_owner.clone());
    let relabel =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}});
    assert!(denied(
        namespaces
            .patch(&name, &PatchParams::default(), &Patch::Merge(&relabel))
            .await
            .map(|_| ())
    ));
    let finalize = json!({"spec": {"finalizers": []}});
    assert!(denied(
        namespaces
            .patch_subresource(
                "finalize",
                &name,
                &PatchParams::default(),
                &Patch::Merge(&finalize)
            )
            .await
            .map(|_| ())
    ));
    assert!(denied(
        namespaces
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"phase": "Active"}}))
            )
            .await
            .map(|_| ())
    ));
    let bindings: Api<RoleBinding> = Api::namespaced(as_owner, &name);
    let managed = bindings
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=berth"))
        .await?;
    let first = managed
        .items
        .first()
        .and_then(|b| b.metadata.name.clone())
        .unwrap_or_default();
    let result = bindings
        .delete(&first, &DeleteParams::default())
        .await
        .map(|_| ());
    let Err(kube::Error::Api(status)) = result else {
        panic!("owner deleted Berth's role binding {first}")
    };
    assert!(
        status.message.contains("managed by Berth"),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn creators_must_own_what_they_create_and_stay_within_limits() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let user = format!("{}@example.com", unique("creator"));
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
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
    let as_creator = cluster.impersonate(&user, &[]).await?;
    let try_create = |spec: serde_json::Value, annotations: BTreeMap<String, String>| {
        let client = as_creator.clone();
        async move {
            let project: Project = serde_json::from_value(json!({
                "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
                "metadata": {"name": unique("created"), "annotations": annotations}, "spec": spec,
            }))?;
            anyhow::Ok(
                Api::<Project>::all(client)
                    .create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &project,
                    )
                    .await,
            )
        }
    };
    eventually(
        "the creator role to apply",
        Duration::from_secs(30),
        || async {
            Ok(try_create(json!({"owners": [user]}), BTreeMap::new())
                .await?
                .is_ok()
                .then_some(()))
        },
    )
    .await?;
    let cases = [
        (
            json!({"owners": ["someone-else@example.com"]}),
            BTreeMap::new(),
            "must list yourself as an owner",
        ),
        (
            json!({"owners": [user], "podSecurity": {"level": "privileged"}}),
            BTreeMap::new(),
            "privileged pod security needs a platform admin",
        ),
        (
            json!({"owners": [user], "resourceQuota": {"hard": {"requests.cpu": "100"}}}),
            BTreeMap::new(),
            "quota above the platform maximum",
        ),
        (
            json!({"owners": [user]}),
            BTreeMap::from([("berth.dev/adopt-namespace".to_owned(), "true".to_owned())]),
            "only a platform admin",
        ),
    ];
    for (spec, annotations, expected) in cases {
        match try_create(spec.clone(), annotations).await? {
            Err(kube::Error::Api(s)) => {
                assert!(s.message.contains(expected), "{spec}: {}", s.message)
            }
            other => panic!("{spec} was admitted: {other:?}"),
        }
    }
    // Within the maximum is fine, and a platform admin may exceed it.
    assert!(
        try_create(
            json!({"owners": [user], "resourceQuota": {"hard": {"requests.cpu": "32"}}}),
            BTreeMap::new()
        )
        .await?
        .is_ok()
    );
    let over: Project = serde_json::from_value(
        json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": unique("admin-over")}, "spec": {"owners": ["x@example.com"], "resourceQuota": {"hard": {"requests.cpu": "100"}}}}),
    )?;
    Api::<Project>::all(admin)
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &over,
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_settings_change_reconciles_every_project() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let a = unique("settings-a");
    let b = unique("settings-b");
    create(&admin, &a, json!({"owners": ["ada@example.com"]})).await?;
    create(&admin, &b, json!({"owners": ["ada@example.com"]})).await?;
    wait_ready(&admin, &a).await?;
    wait_ready(&admin, &b).await?;
    let settings: Api<PlatformSettings> = Api::all(admin.clone());
    let monitoring = unique("prometheus");
    let current = settings.get("default").await?.spec.monitoring_namespaces;
    let mut changed = current.clone();
    changed.push(monitoring.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"monitoringNamespaces": changed}})),
        )
        .await?;
    for ns in [&a, &b] {
        let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), ns);
        eventually(
            "the platform policy to allow the new monitoring namespace",
            Duration::from_secs(60),
            || async {
                let text = serde_json::to_string(&policies.get_opt("berth-allow-platform").await?)?;
                Ok(text.contains(&monitoring).then_some(()))
            },
        )
        .await?;
    }
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"monitoringNamespaces": current}})),
        )
        .await?;
    Ok(())
}
