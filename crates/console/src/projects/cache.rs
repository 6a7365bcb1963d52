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
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

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

/// How long a user's answer for a project (their own GET: allowed or not) is reused, as the
/// notebook proxy reuses SubjectAccessReviews ([`crate::kube_auth::REVIEW_TTL`]): a member
/// removed from a project still finds it on *My projects* for at most this long.
pub const ACCESS_TTL: Duration = crate::kube_auth::REVIEW_TTL;
/// Answers kept at most (all dropped when full, after the expired ones).
pub const MAX_ACCESS: usize = 100_000;

/// (user, groups, project).
type AccessKey = (String, Vec<String>, String);

/// The cache.
#[derive(Default)]
pub struct ProjectCache {
    store: OnceLock<reflector::Store<Project>>,
    dirty: AtomicBool,
    index: RwLock<Arc<Index>>,
    /// (user, groups, project) → (may get it, until).
    access: Mutex<HashMap<AccessKey, (bool, Instant)>>,
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
        // A change of any Project (its members, say) forgets every remembered access answer of
        // that project's users soonest: simply all of them.
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    self.dirty.store(true, Ordering::Release);
                    if let Ok(mut access) = self.access.lock() {
                        access.clear();
                    }
                }
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

    /// Whether `who` could get project `name` a moment ago (their own GET), if known.
    pub fn known_access(&self, who: &Identity, name: &str) -> Option<bool> {
        let access = self.access.lock().ok()?;
        let key = (who.username.clone(), who.groups.clone(), name.to_owned());
        access
            .get(&key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(allowed, _)| *allowed)
    }

    /// Remembers for [`ACCESS_TTL`] whether `who` could get project `name`.
    pub fn remember_access(&self, who: &Identity, name: &str, allowed: bool) {
        let Ok(mut access) = self.access.lock() else {
            return;
        };
        let now = Instant::now();
        if access.len() >= MAX_ACCESS {
            access.retain(|_, (_, until)| *until > now);
            if access.len() >= MAX_ACCESS {
                access.clear();
            }
        }
        access.insert(
            (who.username.clone(), who.groups.clone(), name.to_owned()),
            (allowed, now + ACCESS_TTL),
        );
    }

    /// Every cached Project (for a caller who may list them all).
    pub fn all(&self) -> Vec<Arc<Project>> {
        self.store.get().map(|s| s.state()).unwrap_or_default()
    }

    /// The cached Project `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Project>> {
        self.store.get()?.get(&reflector::ObjectRef::new(name))
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

    #[test]
    fn access_answers_are_per_identity_and_groups() {
        let cache = ProjectCache::default();
        let ada = Identity {
            username: "ada@example.com".into(),
            groups: vec!["ml".into()],
            ..Default::default()
        };
        let same_name_other_groups = Identity {
            groups: vec!["ml".into(), "admins".into()],
            ..ada.clone()
        };
        assert_eq!(cache.known_access(&ada, "p"), None);
        cache.remember_access(&ada, "p", true);
        assert_eq!(cache.known_access(&ada, "p"), Some(true));
        assert_eq!(cache.known_access(&ada, "q"), None);
        assert_eq!(cache.known_access(&same_name_other_groups, "p"), None);
    }
}
