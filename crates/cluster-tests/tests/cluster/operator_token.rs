//! The operator's own power, tried with its own token (a TokenRequest for the berth-operator
//! service account, exactly the RBAC and admission Berth ships): it writes in namespaces Berth
//! manages and nowhere else, binds only Berth's project roles, deletes only namespaces carrying its
//! labels, and reads no Secret but the credentials it writes. Writes are dry runs: authorization
//! and admission run in full, nothing is stored.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef,
};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::support::{admin, namespace, project_namespace, unique};

fn dry() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn binding(name: &str, role: &str) -> RoleBinding {
    RoleBinding {
        metadata: named(name),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(vec![k8s_openapi::api::rbac::v1::Subject {
            kind: "User".into(),
            name: "mallory@example.com".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    }
}

/// An Event about a namespace, in `namespace`.
fn event(namespace: &str) -> Result<k8s_openapi::api::events::v1::Event> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": unique("event"), "namespace": namespace},
        "eventTime": "2026-11-30T00:00:00.000000Z",
        "reportingController": "berth.dev/project-controller",
        "reportingInstance": "test",
        "action": "Reconcile",
        "reason": "Test",
        "type": "Normal",
        "note": "a project's bucket and its provider's answer",
        "regarding": {"apiVersion": "v1", "kind": "Namespace", "name": namespace},
    }))?)
}

/// The outcome of one attempt: refused (and why), or not.
fn refusal<T>(result: Result<T, kube::Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(format!("{} {}", status.code, status.message)),
        Err(e) => Some(format!("error {e}")),
    }
}

#[tokio::test]
async fn the_operators_token_is_refused_outside_the_namespaces_berth_manages() -> Result<()> {
    let (cluster, admin) = admin().await?;
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("operator-token")));
    cluster.operator_kubeconfig(&path).await?;
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let operator = Client::try_from(config)?;

    let managed = project_namespace(&admin, "scoped").await?;
    let elsewhere = namespace(&admin, "not-berths").await?;
    // A role whose rights the operator holds, so RBAC would let it bind the role: only the
    // admission policy stands in the way.
    let creator_role = unique("secret-creator");
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: named(&creator_role),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["secrets".into()]),
                    verbs: vec!["create".into()],
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .await?;

    let storage = || Secret {
        metadata: named("berth-storage"),
        ..Default::default()
    };
    // What its job needs goes through.
    Api::<Secret>::namespaced(operator.clone(), &managed)
        .create(&dry(), &storage())
        .await?;
    Api::<RoleBinding>::namespaced(operator.clone(), &managed)
        .create(&dry(), &binding("berth-viewer-x", "berth-project-viewer"))
        .await?;
    let project_ns: Namespace = serde_json::from_value(
        json!({"metadata": {"name": unique("made"), "labels": {"app.kubernetes.io/managed-by": "berth", "berth.dev/project": "made"}}}),
    )?;
    Api::<Namespace>::all(operator.clone())
        .create(&dry(), &project_ns)
        .await?;

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "takeover"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "127.0.0.1:1/x"}]}}},
    }))?;
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "takeover"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "127.0.0.1:1/x"}]}}},
    }))?;
    let attempts: Vec<(&str, &str, Option<String>)> = vec![
        (
            "a RoleBinding in kube-system",
            "writes only in namespaces it manages",
            refusal(
                Api::<RoleBinding>::namespaced(operator.clone(), "kube-system")
                    .create(&dry(), &binding(&unique("rb"), "berth-project-viewer"))
                    .await,
            ),
        ),
        (
            "a Secret in a namespace Berth does not manage",
            "writes only in namespaces it manages",
            refusal(
                Api::<Secret>::namespaced(operator.clone(), &elsewhere)
                    .create(&dry(), &storage())
                    .await,
            ),
        ),
        (
            "a Deployment in kube-system",
            "writes only in namespaces it manages",
            refusal(
                Api::<Deployment>::namespaced(operator.clone(), "kube-system")
                    .create(&dry(), &deployment)
                    .await,
            ),
        ),
        (
            "a Job in kube-system",
            "writes only in namespaces it manages",
            refusal(
                Api::<Job>::namespaced(operator.clone(), "kube-system")
                    .create(&dry(), &job)
                    .await,
            ),
        ),
        (
            "deleting a namespace it did not create",
            "writes only in namespaces it manages",
            refusal(
                Api::<Namespace>::all(operator.clone())
                    .delete(
                        &elsewhere,
                        &DeleteParams {
                            dry_run: true,
                            ..Default::default()
                        },
                    )
                    .await,
            ),
        ),
        (
            "deleting its own namespace, berth-system",
            "writes only in namespaces it manages",
            refusal(
                Api::<Namespace>::all(operator.clone())
                    .delete(
                        "berth-system",
                        &DeleteParams {
                            dry_run: true,
                            ..Default::default()
                        },
                    )
                    .await,
            ),
        ),
        (
            "labelling kube-system as its own",
            "writes only in namespaces it manages",
            refusal(
                Api::<Namespace>::all(operator.clone())
                    .patch(
                        "kube-system",
                        &PatchParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        &Patch::Merge(&json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "berth", "berth.dev/project": "kube-system"}}})),
                    )
                    .await,
            ),
        ),
        (
            "binding a role whose rights it holds, in a namespace it manages",
            "binds only berth-project-owner",
            refusal(
                Api::<RoleBinding>::namespaced(operator.clone(), &managed)
                    .create(&dry(), &binding("sneaky", &creator_role))
                    .await,
            ),
        ),
        (
            "binding admin",
            "not currently held",
            refusal(
                Api::<RoleBinding>::namespaced(operator.clone(), &managed)
                    .create(&dry(), &binding("sneaky-admin", "admin"))
                    .await,
            ),
        ),
        (
            "binding cluster-admin cluster-wide",
            "not currently held",
            refusal(
                Api::<ClusterRoleBinding>::all(operator.clone())
                    .create(
                        &dry(),
                        &ClusterRoleBinding {
                            metadata: named(&unique("sneaky")),
                            role_ref: binding("x", "cluster-admin").role_ref,
                            subjects: binding("x", "cluster-admin").subjects,
                        },
                    )
                    .await,
            ),
        ),
        (
            "a project-named ClusterRoleBinding to another role",
            "writes only in namespaces it manages",
            refusal(
                Api::<ClusterRoleBinding>::all(operator.clone())
                    .create(
                        &dry(),
                        &ClusterRoleBinding {
                            metadata: named("berth-project-sneaky-owner"),
                            role_ref: binding("x", &creator_role).role_ref,
                            subjects: binding("x", &creator_role).subjects,
                        },
                    )
                    .await,
            ),
        ),
        (
            "a token-reviewer binding to another role",
            "writes only in namespaces it manages",
            refusal(
                Api::<ClusterRoleBinding>::all(operator.clone())
                    .create(
                        &dry(),
                        &ClusterRoleBinding {
                            metadata: named("berth-project-sneaky-token-reviewer"),
                            role_ref: binding("x", &creator_role).role_ref,
                            subjects: Some(vec![k8s_openapi::api::rbac::v1::Subject {
                                kind: "ServiceAccount".into(),
                                name: "berth-model-auth".into(),
                                namespace: Some(managed.clone()),
                                api_group: None,
                            }]),
                        },
                    )
                    .await,
            ),
        ),
        (
            "a token-reviewer binding for someone else than the model servers' account",
            "writes only in namespaces it manages",
            refusal(
                Api::<ClusterRoleBinding>::all(operator.clone())
                    .create(
                        &dry(),
                        &ClusterRoleBinding {
                            metadata: named("berth-project-sneaky-token-reviewer"),
                            role_ref: binding("x", "berth-token-reviewer").role_ref,
                            subjects: binding("x", "berth-token-reviewer").subjects,
                        },
                    )
                    .await,
            ),
        ),
        (
            "a ClusterRole granting Secrets",
            "writes only in namespaces it manages",
            refusal(
                Api::<ClusterRole>::all(operator.clone())
                    .create(
                        &dry(),
                        &ClusterRole {
                            metadata: named("berth-project-sneaky-owner"),
                            rules: Some(vec![PolicyRule {
                                api_groups: Some(vec![String::new()]),
                                resources: Some(vec!["secrets".into()]),
                                verbs: vec!["create".into()],
                                ..Default::default()
                            }]),
                            ..Default::default()
                        },
                    )
                    .await,
            ),
        ),
        (
            "reading a Secret that is not one of Berth's credentials",
            "cannot get resource \"secrets\"",
            refusal(
                Api::<Secret>::namespaced(operator.clone(), &managed)
                    .get("someone-elses")
                    .await,
            ),
        ),
        (
            "reading back a credentials Secret it writes (it never needs to)",
            "cannot get resource \"secrets\"",
            refusal(
                Api::<Secret>::namespaced(operator.clone(), &managed)
                    .get("berth-storage")
                    .await,
            ),
        ),
        (
            "an Event in default, which anyone may read",
            "writes only in namespaces it manages",
            refusal(
                Api::<k8s_openapi::api::events::v1::Event>::namespaced(operator.clone(), "default")
                    .create(&dry(), &event("default")?)
                    .await,
            ),
        ),
        (
            "listing every Secret",
            "cannot list resource \"secrets\"",
            refusal(
                Api::<Secret>::all(operator.clone())
                    .list(&ListParams::default())
                    .await,
            ),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, expect, refused) in &attempts {
        match refused {
            Some(why) if why.contains(expect) => {
                eprintln!("refused, as it should be: {what}: {why}")
            }
            Some(why) => wrong.push(format!("{what}: refused, but not for {expect:?}: {why}")),
            None => wrong.push(format!("{what}: ALLOWED")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    eprintln!(
        "the operator's token: {} attempts, all refused",
        attempts.len()
    );
    Api::<ClusterRole>::all(admin)
        .delete(&creator_role, &DeleteParams::default())
        .await?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
