//! The console's watched cache of Projects (a kube-runtime reflector with the console's own
//! ServiceAccount, `list, watch projects` in deploy/rbac/30-console.yaml), indexed by member:
//! only to find which projects name a user (as a User, through one of their groups, or as a
//! ServiceAccount). Nothing from it is shown: each candidate is then read as the user, and a
//! project the user cannot `get` is not shown.
//!
//! The index maps each member key to its projects. It is rebuilt from the store, at most once per
//! lookup, after the watch saw a change (a flag set by the watch loop); a rebuild of 1,000
//! projects × 50 members is a few milliseconds, a lookup a few hash probes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use berth_api::Project;
use berth_api::project::MemberKind;
use futures::StreamExt as _;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};

use crate::kube_auth::Identity;

/// A member key: users by lower-cased name (Berth names e-mail users in lower case), groups by
/// name, ServiceAccounts as `system:serviceaccount:<namespace>:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Group(String),
}

type Index = HashMap<Key, Vec<String>>;

/// The cache.
#[derive(Default)]
pub struct ProjectCache {
    store: OnceLock<reflector::Store<Project>>,
    dirty: AtomicBool,
    index: RwLock<Arc<Index>>,
}

/// The keys under which `project` is found.
fn keys(project: &Project) -> Vec<Key> {
    let namespace = project.namespace_name().unwrap_or_default();
    let mut keys: Vec<Key> = project
        .spec
        .owners
        .iter()
        .map(|o| Key::User(o.to_lowercase()))
        .collect();
    for member in &project.spec.members {
        keys.push(match member.kind {
            MemberKind::User => Key::User(member.name.to_lowercase()),
            MemberKind::Group => Key::Group(member.name.clone()),
            MemberKind::ServiceAccount => {
                let (ns, name) = member
                    .name
                    .split_once('/')
                    .unwrap_or((namespace, member.name.as_str()));
                Key::User(format!("system:serviceaccount:{ns}:{name}"))
            }
        });
    }
    keys
}

/// The index of `projects`.
fn build(projects: &[Arc<Project>]) -> Index {
    let mut index: Index = HashMap::new();
    for project in projects {
        let Some(name) = project.metadata.name.as_deref() else {
            continue;
        };
        for key in keys(project) {
            let names = index.entry(key).or_default();
            if names.last().map(String::as_str) != Some(name) {
                names.push(name.to_owned());
            }
        }
    }
    index
}

impl ProjectCache {
    /// Watches Projects with `client` (the console's own) until the process ends.
    pub async fn run(&self, client: kube::Client) {
        let (reader, writer) = reflector::store();
        if self.store.set(reader).is_err() {
            return;
        }
        let api = kube::Api::<Project>::all(client);
        let stream = reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => self.dirty.store(true, Ordering::Release),
                Err(e) => tracing::warn!(error = %e, "watching Projects"),
            }
        }
    }

    /// Waits (at most `timeout`) for the first list.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let ready = async {
            // `run` may not have started yet.
            let store = loop {
                match self.store.get() {
                    Some(store) => break store,
                    None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            };
            store.wait_until_ready().await.is_ok()
        };
        tokio::time::timeout(timeout, ready).await.unwrap_or(false)
    }

    fn index(&self) -> Arc<Index> {
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Some(store) = self.store.get()
        {
            let fresh = Arc::new(build(&store.state()));
            if let Ok(mut index) = self.index.write() {
                *index = fresh.clone();
            }
            return fresh;
        }
        self.index.read().map(|i| i.clone()).unwrap_or_default()
    }

    /// The names of the projects that name `who` as a member (sorted).
    pub fn candidates(&self, who: &Identity) -> Vec<String> {
        let index = self.index();
        let mut found = BTreeSet::new();
        let user = Key::User(who.username.to_lowercase());
        found.extend(index.get(&user).into_iter().flatten().cloned());
        for group in &who.groups {
            let key = Key::Group(group.clone());
            found.extend(index.get(&key).into_iter().flatten().cloned());
        }
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, owners: &[&str], members: serde_json::Value) -> Arc<Project> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
                "metadata": {"name": name},
                "spec": {"owners": owners, "members": members},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn members_are_found_by_user_group_and_service_account() {
        let index = build(&[
            project("a", &["Ada@Example.com"], serde_json::json!([])),
            project(
                "b",
                &["bob@example.com"],
                serde_json::json!([
                    {"kind": "Group", "name": "ml-team", "role": "editor"},
                    {"kind": "ServiceAccount", "name": "ci", "role": "viewer"},
                    {"kind": "ServiceAccount", "name": "ops/bot", "role": "viewer"},
                ]),
            ),
        ]);
        let cache = ProjectCache::default();
        *cache.index.write().unwrap() = Arc::new(index);
        let who = |user: &str, groups: &[&str]| Identity {
            username: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        };
        assert_eq!(cache.candidates(&who("ada@example.com", &[])), vec!["a"]);
        assert_eq!(
            cache.candidates(&who("eve@example.com", &["ml-team"])),
            vec!["b"]
        );
        assert_eq!(
            cache.candidates(&who("system:serviceaccount:b:ci", &[])),
            vec!["b"]
        );
        assert_eq!(
            cache.candidates(&who("system:serviceaccount:ops:bot", &[])),
            vec!["b"]
        );
        assert!(
            cache
                .candidates(&who("eve@example.com", &["ML-TEAM"]))
                .is_empty()
        );
    }
}
