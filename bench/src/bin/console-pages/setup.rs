//! The cluster side of the console benchmark: the two users (ServiceAccounts with real tokens),
//! the Projects (50 members each), and waiting for them Ready.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use berth_api::Project;

/// The namespace of the two users under test.
pub const USERS_NS: &str = "bench-users";
/// `member-<k>`: a ServiceAccount member of every project `i` with `i % users == k`.
pub const MEMBER: &str = "member";
/// `admin-<k>`: bound to `berth-platform-admin`, sees every project.
pub const ADMIN: &str = "admin";
/// The label that tells the batches apart.
pub const BATCH_LABEL: &str = "bench.berth.dev/batch";

/// The users: `users` members and `users` platform admins.
pub struct Users {
    pub members: Vec<String>,
    pub admins: Vec<String>,
}

/// Makes the users' namespace, `users` ServiceAccounts of each kind, the admins' ClusterRoleBinding,
/// and their tokens: tokens the API server issues (TokenRequest, 24 h), the same kind a user gets
/// from `kubectl create token`.
pub async fn users(admin: &Client, users: usize) -> Result<Users> {
    let pp = PostParams::default();
    Api::<Namespace>::all(admin.clone())
        .create(
            &pp,
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(USERS_NS.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), USERS_NS);
    let names = |kind: &str| {
        (0..users)
            .map(|k| format!("{kind}-{k}"))
            .collect::<Vec<_>>()
    };
    for name in names(MEMBER).into_iter().chain(names(ADMIN)) {
        accounts
            .create(
                &pp,
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(name),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
    }
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &pp,
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some("bench-platform-admins".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "berth-platform-admin".into(),
                },
                subjects: Some(
                    names(ADMIN)
                        .into_iter()
                        .map(|name| Subject {
                            kind: "ServiceAccount".into(),
                            name,
                            namespace: Some(USERS_NS.into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            },
        )
        .await?;
    let tokens = |names: Vec<String>| {
        let accounts = accounts.clone();
        futures::stream::iter(names)
            .map(move |name| {
                let accounts = accounts.clone();
                async move {
                    let request = TokenRequest {
                        spec: Some(TokenRequestSpec {
                            audiences: None,
                            expiration_seconds: Some(24 * 3600),
                            bound_object_ref: None,
                        }),
                        ..Default::default()
                    };
                    let answer = accounts
                        .create_token_request(&name, &PostParams::default(), &request)
                        .await?;
                    answer
                        .status
                        .and_then(|s| s.token)
                        .filter(|t| !t.is_empty())
                        .with_context(|| format!("no token for {USERS_NS}/{name}"))
                }
            })
            .buffered(8)
            .try_collect::<Vec<_>>()
    };
    Ok(Users {
        members: tokens(names(MEMBER)).await?,
        admins: tokens(names(ADMIN)).await?,
    })
}

/// Project `index` of `batch`: one owner, `members` members (`members - 3` users, 2 groups, and
/// either `member-<index % users>` or one more user), a quota. The members under test are in
/// batch 0 only (the later batches are the onboarding load).
pub fn project(batch: usize, index: usize, users: usize, members: usize) -> Result<Project> {
    let people = members.saturating_sub(3);
    let name = if batch == 0 {
        format!("p-{index:04}")
    } else {
        format!("b{batch}-{index:04}")
    };
    let mut members: Vec<serde_json::Value> = (0..people)
        .map(|j| {
            json!({"kind": "User", "name": format!("u{}@example.com", (index * people + j) % 5000),
                   "role": if j % 3 == 0 { "editor" } else { "viewer" }})
        })
        .collect();
    members
        .push(json!({"kind": "Group", "name": format!("team-{}", index % 20), "role": "viewer"}));
    members.push(json!({"kind": "Group", "name": "ml-platform", "role": "viewer"}));
    if batch == 0 {
        members.push(json!({"kind": "ServiceAccount", "name": format!("{USERS_NS}/{MEMBER}-{}", index % users),
                            "role": if index.is_multiple_of(2) { "editor" } else { "viewer" }}));
    } else {
        members.push(
            json!({"kind": "User", "name": format!("extra-{index}@example.com"), "role": "viewer"}),
        );
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name, "labels": {BATCH_LABEL: batch.to_string()}},
        "spec": {
            "owners": [format!("owner-{index}@example.com")],
            "members": members,
            "resourceQuota": {"hard": {"cpu": "16", "memory": "32Gi"}},
        },
    }))?)
}

pub fn ready(p: &Project) -> bool {
    p.status
        .as_ref()
        .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"))
}

/// Creates `projects`, `concurrency` at a time.
pub async fn create(admin: &Client, projects: Vec<Project>, concurrency: usize) -> Result<()> {
    let api: Api<Project> = Api::all(admin.clone());
    futures::stream::iter(projects)
        .map(|p| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &p)
                    .await
                    .with_context(|| format!("creating project {}", p.name_any()))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Waits, with one watch of `batch`, until `n` of its Projects are Ready; prints progress every
/// 10 s.
pub async fn wait_ready(admin: &Client, batch: usize, n: usize, timeout: Duration) -> Result<()> {
    let api: Api<Project> = Api::all(admin.clone());
    let config = watcher::Config::default().labels(&format!("{BATCH_LABEL}={batch}"));
    let mut events = std::pin::pin!(watcher(api, config).applied_objects());
    let start = Instant::now();
    let mut last_print = Instant::now();
    let mut done = HashSet::new();
    while done.len() < n {
        if start.elapsed() > timeout {
            bail!(
                "only {} of {n} projects Ready after {timeout:?}",
                done.len()
            );
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[console-pages]   batch {batch}: {} of {n} Ready ({:.0} s)",
                done.len(),
                start.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        match tokio::time::timeout(Duration::from_secs(1), events.try_next()).await {
            Err(_) => continue,
            Ok(Err(e)) => bail!("the watch failed: {e}"),
            Ok(Ok(None)) => bail!("the watch ended"),
            Ok(Ok(Some(p))) => {
                if ready(&p) {
                    done.insert(p.name_any());
                }
            }
        }
    }
    Ok(())
}
