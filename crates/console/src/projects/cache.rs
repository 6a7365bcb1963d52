//! The console's watched cache of Projects (a kube-runtime reflector with the console's own
//! ServiceAccount, `list, watch projects` in deploy/rbac/30-console.yaml), indexed by member:
//! only to find which projects name a user (as a User, through one of their groups, or as a
//! ServiceAccount). Nothing from it is shown: each candidate is then read as the user, and a
//! project the user cannot `get` is not shown.
//!
//! It also remembers, for [`ACCESS_TTL`], the API server's answers about a user and a project
//! (their own GET of it, and SelfSubjectAccessReviews made as them), and forgets those about a
//! project as soon as the watch sees that project change.
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

/// A question the API server answered about a user and a project.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Question {
    /// May (user, groups) GET the project (their own metadata GET)?
    Get { user: String, groups: Vec<String> },
    /// A SelfSubjectAccessReview as `who` for `verb`.
    Review { who: Identity, verb: String },
}

/// Remembered answers, by project (`None`: about all projects, such as `list`), so that a
/// change of one project forgets its answers in one step.
#[derive(Default)]
struct Answers {
    by_project: HashMap<Option<String>, HashMap<Question, (bool, Instant)>>,
    count: usize,
}

impl Answers {
    fn get(&self, project: Option<&str>, question: &Question) -> Option<bool> {
        self.by_project
            .get(&project.map(str::to_owned))?
            .get(question)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(allowed, _)| *allowed)
    }

    /// Keeps `allowed` for [`ACCESS_TTL`]; at most [`MAX_ACCESS`] answers (the expired ones
    /// dropped first when full, then all).
    fn put(&mut self, project: Option<&str>, question: Question, allowed: bool) {
        let now = Instant::now();
        if self.count >= MAX_ACCESS {
            for answers in self.by_project.values_mut() {
                answers.retain(|_, (_, until)| *until > now);
            }
            self.by_project.retain(|_, answers| !answers.is_empty());
            self.count = self.by_project.values().map(HashMap::len).sum();
            if self.count >= MAX_ACCESS {
                self.by_project.clear();
                self.count = 0;
            }
        }
        let answers = self
            .by_project
            .entry(project.map(str::to_owned))
            .or_default();
        if answers
            .insert(question, (allowed, now + ACCESS_TTL))
            .is_none()
        {
            self.count += 1;
        }
    }

    fn forget(&mut self, project: &str) {
        if let Some(gone) = self.by_project.remove(&Some(project.to_owned())) {
            self.count -= gone.len();
        }
    }
}

/// The cache.
#[derive(Default)]
pub struct ProjectCache {
    store: OnceLock<reflector::Store<Project>>,
    dirty: AtomicBool,
    index: RwLock<Arc<Index>>,
    answers: Mutex<Answers>,
}

/// A GET as `who` is made with their name and groups only (impersonation sends no more; a token
/// names the same identity each time).
fn get_question(who: &Identity) -> Question {
    Question::Get {
        user: who.username.clone(),
        groups: who.groups.clone(),
    }
}

fn review_question(who: &Identity, verb: &str) -> Question {
    Question::Review {
        who: who.clone(),
        verb: verb.to_owned(),
    }
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
        // A change of a Project (its members, say, or the status the operator writes once their
        // RoleBindings are made) forgets every remembered answer about that project. Only about
        // that one: a change of one project says nothing of access to another, and forgetting
        // all of them on every event made every page ask again while the operator was busy.
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(project) => {
                    self.dirty.store(true, Ordering::Release);
                    self.forget(project.metadata.name.as_deref().unwrap_or_default());
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

    /// Forgets every remembered answer about project `name`.
    fn forget(&self, name: &str) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.forget(name);
        }
    }

    fn known(&self, project: Option<&str>, question: &Question) -> Option<bool> {
        self.answers.lock().ok()?.get(project, question)
    }

    fn remember(&self, project: Option<&str>, question: Question, allowed: bool) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.put(project, question, allowed);
        }
    }

    /// Whether `who` could get project `name` a moment ago (their own GET), if known.
    pub fn known_access(&self, who: &Identity, name: &str) -> Option<bool> {
        self.known(Some(name), &get_question(who))
    }

    /// Remembers for [`ACCESS_TTL`] whether `who` could get project `name`.
    pub fn remember_access(&self, who: &Identity, name: &str, allowed: bool) {
        self.remember(Some(name), get_question(who), allowed);
    }

    /// The answer of a SelfSubjectAccessReview as `who` for `verb` on project `name` (all
    /// projects: `None`) a moment ago, if known.
    pub fn known_review(&self, who: &Identity, verb: &str, name: Option<&str>) -> Option<bool> {
        self.known(name, &review_question(who, verb))
    }

    /// Remembers for [`ACCESS_TTL`] a SelfSubjectAccessReview's answer.
    pub fn remember_review(&self, who: &Identity, verb: &str, name: Option<&str>, allowed: bool) {
        self.remember(name, review_question(who, verb), allowed);
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

    #[test]
    fn answers_are_bounded() {
        let mut answers = Answers::default();
        for i in 0..MAX_ACCESS + 10 {
            answers.put(
                Some(&format!("p{i}")),
                get_question(&Identity::default()),
                true,
            );
        }
        assert!(answers.count <= MAX_ACCESS);
        assert_eq!(
            answers.count,
            answers.by_project.values().map(HashMap::len).sum::<usize>()
        );
    }

    #[test]
    fn a_project_change_forgets_the_answers_about_that_project_only() {
        let cache = ProjectCache::default();
        let ada = Identity {
            username: "ada@example.com".into(),
            ..Default::default()
        };
        cache.remember_access(&ada, "p", true);
        cache.remember_access(&ada, "q", true);
        cache.remember_review(&ada, "patch", Some("p"), true);
        cache.remember_review(&ada, "patch", Some("q"), false);
        cache.remember_review(&ada, "list", None, false);
        cache.forget("p");
        assert_eq!(cache.known_access(&ada, "p"), None);
        assert_eq!(cache.known_review(&ada, "patch", Some("p")), None);
        assert_eq!(cache.known_access(&ada, "q"), Some(true));
        assert_eq!(cache.known_review(&ada, "patch", Some("q")), Some(false));
        assert_eq!(cache.known_review(&ada, "list", None), Some(false));
    }

    #[test]
    fn reviews_are_per_identity_verb_and_project() {
        let cache = ProjectCache::default();
        let ada = Identity {
            username: "ada@example.com".into(),
            groups: vec!["ml".into()],
            ..Default::default()
        };
        let other_uid = Identity {
            uid: Some("2".into()),
            ..ada.clone()
        };
        cache.remember_review(&ada, "patch", Some("p"), true);
        assert_eq!(cache.known_review(&ada, "patch", Some("p")), Some(true));
        assert_eq!(cache.known_review(&ada, "get", Some("p")), None);
        assert_eq!(cache.known_review(&ada, "patch", None), None);
        assert_eq!(cache.known_review(&other_uid, "patch", Some("p")), None);
    }
}
