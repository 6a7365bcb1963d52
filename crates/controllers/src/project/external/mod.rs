//! What a Project gets outside the cluster: a bucket with its own access key, an OIDC client with
//! a realm group, and a registry project with a robot. Each part:
//!
//! - runs only when the platform enables its provider and the Project does not opt out;
//! - never blocks or undoes the in-cluster parts: its failure is its own condition, retried with
//!   capped exponential backoff;
//! - writes its credentials to a Secret in the project's namespace through the shared apply step,
//!   and revokes a replaced credential only after that write succeeded;
//! - is skipped while nothing it depends on has changed since its last success (a resync every
//!   [`RESYNC`] still catches drift made by hand in the provider).

pub mod connect;
pub mod credentials;
mod identity;
mod registry;
mod storage;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use tracing::warn;

use berth_api::conditions::Status;
use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, PROJECT};
use berth_api::providers::ExternalStatus;
use berth_api::{PlatformSettingsSpec, Project};
use berth_providers::Credential;
use berth_providers::identity::IdentityProvider;
use berth_providers::registry::Registry;
use berth_providers::storage::ObjectStore;
use berth_reconcile::{Backoffs, ChildCache, Desired, Error};

use self::connect::{Connected, Connections, Problem};
use super::members::Subject;
use crate::kinds;

/// How long a provider call may take before it counts as an outage.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest wait between retries of a failing provider.
const RETRY_CAP: Duration = Duration::from_secs(30);
/// A part in sync is checked against its provider again after this long.
pub const RESYNC: Duration = Duration::from_secs(10 * 60);

/// The Secret annotation recording the id of the credential in use.
pub const CREDENTIAL_ID_ANNOTATION: &str = "berth.dev/credential-id";
/// The Secret annotation recording the rotation request it answers.
pub const ROTATION_ANNOTATION: &str = "berth.dev/rotation";

/// One of the outside parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Storage,
    Identity,
    Registry,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Storage, Part::Identity, Part::Registry];

    /// The condition type.
    pub fn condition(self) -> &'static str {
        match self {
            Part::Storage => "StorageReady",
            Part::Identity => "IdentityReady",
            Part::Registry => "RegistryReady",
        }
    }

    /// The prefix of its condition reasons.
    pub fn label(self) -> &'static str {
        match self {
            Part::Storage => "Storage",
            Part::Identity => "Identity",
            Part::Registry => "Registry",
        }
    }

    /// The Secret it writes in the project's namespace.
    pub fn secret_name(self) -> &'static str {
        use berth_api::providers::*;
        match self {
            Part::Storage => STORAGE_SECRET,
            Part::Identity => IDENTITY_SECRET,
            Part::Registry => REGISTRY_SECRET,
        }
    }

    /// The Project annotation that asks for a new credential.
    pub fn rotate_annotation(self) -> &'static str {
        use berth_api::providers::*;
        match self {
            Part::Storage => ROTATE_STORAGE_ANNOTATION,
            Part::Identity => ROTATE_IDENTITY_ANNOTATION,
            Part::Registry => ROTATE_REGISTRY_ANNOTATION,
        }
    }

    /// Whether the platform enables it and the project has not opted out.
    pub fn enabled(self, project: &Project, settings: &PlatformSettingsSpec) -> bool {
        let spec = &project.spec;
        match self {
            Part::Storage => {
                settings.storage.is_some()
                    && spec.storage.as_ref().and_then(|s| s.enabled) != Some(false)
            }
            Part::Identity => {
                settings.identity.is_some()
                    && spec.idp.as_ref().and_then(|s| s.enabled) != Some(false)
            }
            Part::Registry => {
                settings.registry.is_some()
                    && spec.registry.as_ref().and_then(|s| s.enabled) != Some(false)
            }
        }
    }
}

/// What one part came to in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartState {
    /// Not enabled: its condition is removed.
    Disabled,
    /// Waiting out a backoff after a failure: its condition stays as it is.
    Unchanged,
    /// Its condition.
    Set(Status, String, String),
}

/// A part's outcome.
pub struct PartOutcome {
    pub part: Part,
    pub state: PartState,
    /// The Secret to apply: new credentials, or the live ones kept.
    pub secret: Option<Desired>,
    /// The bucket, client or registry project name, for the status.
    pub name: Option<String>,
    revoke: Option<Revoke>,
    /// When to try again.
    pub retry_in: Option<Duration>,
    synced: Option<u64>,
}

/// A credential to revoke once the Secret holds its replacement.
pub enum Revoke {
    Keys(Arc<dyn ObjectStore>, Vec<Credential>),
    Robots(Arc<dyn Registry>, Vec<Credential>),
    ClientSecret(Arc<dyn IdentityProvider>, String),
}

/// What a part's sync produced.
pub struct Synced {
    pub secret_type: Option<String>,
    pub data: BTreeMap<String, String>,
    pub credential_id: Option<String>,
    pub message: String,
    pub revoke: Option<Revoke>,
}

/// What a part's sync needs to know about the Project.
pub struct Input<'a> {
    pub project: &'a Project,
    pub name: &'a str,
    pub namespace: &'a str,
    pub subjects: &'a [Subject],
    pub settings: &'a PlatformSettingsSpec,
    /// The part's Secret as it is.
    pub live: Option<KubeSecret>,
    /// The rotation the Project asks for, if it differs from the one its Secret answers.
    pub rotate: Option<String>,
}

/// A project's name and namespace.
fn names(project: &Project) -> (String, String) {
    let namespace = project.namespace_name().unwrap_or_default().to_owned();
    (project.name_any(), namespace)
}

impl<'a> Input<'a> {
    /// The names alone, for deletion: no members, no Secret, no rotation.
    fn bare(
        project: &'a Project,
        name: &'a str,
        namespace: &'a str,
        settings: &'a PlatformSettingsSpec,
    ) -> Self {
        Input {
            project,
            name,
            namespace,
            subjects: &[],
            settings,
            live: None,
            rotate: None,
        }
    }

    /// A value of the live Secret.
    pub fn live_value(&self, key: &str) -> Option<String> {
        self.live
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    }

    /// The id of the credential the live Secret holds.
    pub fn live_credential_id(&self) -> Option<&str> {
        self.live
            .as_ref()
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(CREDENTIAL_ID_ANNOTATION))
            .map(String::as_str)
    }
}

/// Every Project's outside parts.
pub struct External {
    pub connections: Connections,
    backoffs: Backoffs,
    state: Mutex<HashMap<String, PartMemory>>,
}

#[derive(Default)]
struct PartMemory {
    next_try: Option<Instant>,
    synced: Option<(u64, Instant)>,
}

/// The outcome of every part for one Project.
pub struct Prepared {
    pub parts: Vec<PartOutcome>,
}

impl Prepared {
    /// The Secrets to apply with the rest of the project's children.
    pub fn take_secrets(&mut self) -> Vec<Desired> {
        self.parts
            .iter_mut()
            .filter_map(|p| p.secret.take())
            .collect()
    }

    /// The soonest retry any part needs.
    pub fn retry_in(&self) -> Option<Duration> {
        self.parts.iter().filter_map(|p| p.retry_in).min()
    }

    /// Each part's condition change, for the status.
    pub fn states(&self) -> Vec<(Part, PartState)> {
        self.parts
            .iter()
            .map(|p| (p.part, p.state.clone()))
            .collect()
    }

    /// What the status reports about the outside parts.
    pub fn external_status(&self, previous: Option<&ExternalStatus>) -> Option<ExternalStatus> {
        let mut s = previous.cloned().unwrap_or_default();
        for p in &self.parts {
            let slot = match p.part {
                Part::Storage => &mut s.bucket,
                Part::Identity => &mut s.oidc_client_id,
                Part::Registry => &mut s.registry_project,
            };
            match (&p.state, &p.name) {
                (PartState::Disabled, _) => *slot = None,
                (_, Some(name)) => *slot = Some(name.clone()),
                _ => {}
            }
        }
        Some(s).filter(|s| *s != ExternalStatus::default())
    }
}

impl External {
    pub fn new(connections: Connections) -> Self {
        Self {
            connections,
            backoffs: Backoffs::default(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Syncs every part of `project` with its provider. Never fails: each part's failure is in its
    /// outcome.
    pub async fn prepare(
        &self,
        project: &Project,
        namespace: &str,
        subjects: &[Subject],
        settings: &PlatformSettingsSpec,
        children: &ChildCache,
    ) -> Prepared {
        let connected = self.connections.get(settings);
        let name = project.name_any();
        let run = |part: Part| {
            let connected = connected.clone();
            let name = name.clone();
            async move {
                self.part(
                    part, project, &name, namespace, subjects, settings, children, &connected,
                )
                .await
            }
        };
        let (s, i, r) =
            futures::join!(run(Part::Storage), run(Part::Identity), run(Part::Registry));
        Prepared {
            parts: vec![s, i, r],
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn part(
        &self,
        part: Part,
        project: &Project,
        name: &str,
        namespace: &str,
        subjects: &[Subject],
        settings: &PlatformSettingsSpec,
        children: &ChildCache,
        connected: &Connected,
    ) -> PartOutcome {
        let mut outcome = PartOutcome {
            part,
            state: PartState::Disabled,
            secret: None,
            name: None,
            revoke: None,
            retry_in: None,
            synced: None,
        };
        let key = format!("{name}/{}", part.label());
        let live: Option<KubeSecret> = children
            .get(
                &kinds::secret().resource,
                Some(namespace),
                part.secret_name(),
            )
            .and_then(|o| o.parse());
        if !part.enabled(project, settings) {
            // Opted out (or switched off by the platform) after it was provisioned: its
            // credentials are revoked with its Secret; the data (the bucket, the images) stays.
            if live.is_some()
                && let Some(revoke) = self.revoke_all(part, name, connected).await
            {
                match revoke {
                    Ok(()) => {}
                    Err(problem) => {
                        // Keep the Secret until the credentials are gone, and say why.
                        outcome.secret = live.as_ref().and_then(|s| keep_secret(project, s));
                        outcome.state = PartState::Set(
                            Status::False,
                            problem.reason,
                            format!(
                                "the project opted out; revoking its credentials failed and is retried: {}",
                                problem.message
                            ),
                        );
                        outcome.retry_in = Some(self.backoffs.failed(&key, RETRY_CAP));
                        return outcome;
                    }
                }
            }
            self.forget(&key);
            return outcome;
        }
        let wanted = project.annotations().get(part.rotate_annotation()).cloned();
        let answered = live
            .as_ref()
            .and_then(|s| s.metadata.annotations.as_ref())
            .and_then(|a| a.get(ROTATION_ANNOTATION))
            .cloned();
        let rotate = wanted.clone().filter(|w| Some(w) != answered.as_ref());
        let input = Input {
            project,
            name,
            namespace,
            subjects,
            settings,
            live: live.clone(),
            rotate,
        };
        outcome.name = Some(match part {
            Part::Storage => storage::bucket_name(&input),
            Part::Identity => identity::client_id(name),
            Part::Registry => registry::project_name(name),
        });
        // Until a sync succeeds, the credentials in place stay.
        outcome.secret = live.as_ref().and_then(|s| keep_secret(project, s));

        let fingerprint = {
            let mut h = DefaultHasher::new();
            connected.fingerprint.hash(&mut h);
            match part {
                Part::Storage => storage::inputs(&input).hash(&mut h),
                Part::Identity => identity::inputs(&input).hash(&mut h),
                Part::Registry => registry::inputs(&input).hash(&mut h),
            }
            wanted.hash(&mut h);
            answered.hash(&mut h);
            live.as_ref().map(|s| format!("{:?}", s.data)).hash(&mut h);
            h.finish()
        };
        let now = Instant::now();
        {
            let memory = self.state.lock();
            if let Ok(memory) = memory
                && let Some(m) = memory.get(&key)
            {
                if let Some((f, at)) = m.synced
                    && f == fingerprint
                    && now.duration_since(at) < RESYNC
                {
                    outcome.state = PartState::Unchanged;
                    return outcome;
                }
                if let Some(next) = m.next_try
                    && next > now
                {
                    outcome.state = PartState::Unchanged;
                    outcome.retry_in = Some(next - now);
                    return outcome;
                }
            }
        }

        let result: Result<Synced, Problem> = match part {
            Part::Storage => match &connected.storage {
                Some(Ok(store)) => timed(part, storage::sync(store.clone(), &input)).await,
                Some(Err(p)) => Err(p.clone()),
                None => return outcome,
            },
            Part::Identity => match &connected.identity {
                Some(Ok(idp)) => timed(part, identity::sync(idp.clone(), &input)).await,
                Some(Err(p)) => Err(p.clone()),
                None => return outcome,
            },
            Part::Registry => match &connected.registry {
                Some(Ok(reg)) => timed(part, registry::sync(reg.clone(), &input)).await,
                Some(Err(p)) => Err(p.clone()),
                None => return outcome,
            },
        };
        match result {
            Ok(synced) => {
                self.backoffs.succeeded(&key);
                let mut annotations = BTreeMap::new();
                if let Some(id) = &synced.credential_id {
                    annotations.insert(CREDENTIAL_ID_ANNOTATION.to_owned(), id.clone());
                }
                // The rotation asked for is answered once this Secret is written.
                if let Some(w) = wanted {
                    annotations.insert(ROTATION_ANNOTATION.to_owned(), w);
                }
                outcome.secret = secret(
                    project,
                    namespace,
                    part.secret_name(),
                    synced.secret_type,
                    synced.data,
                    annotations,
                );
                outcome.state = PartState::Set(
                    Status::True,
                    format!("{}Provisioned", part.label()),
                    synced.message,
                );
                outcome.revoke = synced.revoke;
                outcome.synced = Some(fingerprint);
            }
            Err(problem) => {
                let wait = self.backoffs.failed(&key, RETRY_CAP);
                warn!(project = %name, part = part.label(), reason = %problem.reason, retry_in = ?wait, "provider sync failed: {}", problem.message);
                if let Ok(mut memory) = self.state.lock() {
                    let m = memory.entry(key).or_default();
                    m.next_try = Some(now + wait);
                    m.synced = None;
                }
                outcome.retry_in = Some(wait);
                outcome.state = PartState::Set(
                    Status::False,
                    problem.reason,
                    format!(
                        "{} (the project's other parts are unaffected; retrying in {} s)",
                        problem.message,
                        wait.as_secs().max(1)
                    ),
                );
            }
        }
        outcome
    }

    /// After the Secrets were written: revokes what they replaced, and remembers what is in sync.
    pub async fn finish(&self, project: &str, prepared: Prepared) {
        for p in prepared.parts {
            let key = format!("{project}/{}", p.part.label());
            let mut ok = true;
            if let Some(revoke) = p.revoke {
                let result = match revoke {
                    Revoke::Keys(store, keys) => {
                        let mut r = Ok(());
                        for k in &keys {
                            if let Err(e) = store.delete_key(k).await {
                                r = Err(e);
                            }
                        }
                        r
                    }
                    Revoke::Robots(reg, robots) => {
                        let mut r = Ok(());
                        for robot in &robots {
                            if let Err(e) = reg.delete_robot(robot).await {
                                r = Err(e);
                            }
                        }
                        r
                    }
                    Revoke::ClientSecret(idp, client) => idp.revoke_old_secret(&client).await,
                };
                if let Err(e) = result {
                    ok = false;
                    warn!(
                        project,
                        part = p.part.label(),
                        "revoking a replaced credential failed, retried on the next sync: {e}"
                    );
                }
            }
            if let Some(fingerprint) = p.synced.filter(|_| ok)
                && let Ok(mut memory) = self.state.lock()
            {
                let m = memory.entry(key).or_default();
                m.synced = Some((fingerprint, Instant::now()));
                m.next_try = None;
            }
        }
    }

    /// Revokes every credential of a part that is no longer enabled: the storage keys, the OIDC
    /// client and its group, the registry robots. None when the provider is not configured.
    async fn revoke_all(
        &self,
        part: Part,
        project: &str,
        connected: &Connected,
    ) -> Option<Result<(), Problem>> {
        Some(match part {
            Part::Storage => {
                let store = connected.storage.as_ref()?.as_ref().ok()?.clone();
                timed(part, async move {
                    for k in store.list_keys(&storage::key_prefix(project)).await? {
                        store.delete_key(&k).await?;
                    }
                    Ok(())
                })
                .await
            }
            Part::Identity => {
                let idp = connected.identity.as_ref()?.as_ref().ok()?.clone();
                let id = identity::client_id(project);
                let group = identity::group_name(project);
                timed(part, async move {
                    idp.delete_client(&id).await?;
                    idp.delete_group(&group).await
                })
                .await
            }
            Part::Registry => {
                let reg = connected.registry.as_ref()?.as_ref().ok()?.clone();
                let name = registry::project_name(project);
                timed(part, async move {
                    for robot in reg.list_robots(&name, registry::ROBOT_PREFIX).await? {
                        reg.delete_robot(&robot).await?;
                    }
                    Ok(())
                })
                .await
            }
        })
    }

    /// Forgets a part (disabled, or its project gone).
    fn forget(&self, key: &str) {
        self.backoffs.succeeded(key);
        if let Ok(mut memory) = self.state.lock() {
            memory.remove(key);
        }
    }

    /// The Delete policy outside the cluster: the bucket with its objects and keys, the client and
    /// its group, the registry project with its robots. Stops at the first failure, so the
    /// finalizer keeps the Project until everything is gone.
    pub async fn delete(
        &self,
        project: &Project,
        settings: &PlatformSettingsSpec,
    ) -> Result<Vec<String>, Error> {
        let connected = self.connections.get(settings);
        let (name, namespace) = names(project);
        let input = Input::bare(project, &name, &namespace, settings);
        let mut done = Vec::new();
        let fail = |part: Part, p: Problem| {
            Error::new(
                berth_reconcile::Category::DependencyUnavailable,
                format!(
                    "deleting the project's {} failed, retrying: {}",
                    part.label().to_lowercase(),
                    p.message
                ),
            )
        };
        for part in Part::ALL {
            if !part.enabled(project, settings) {
                continue;
            }
            let result = match part {
                Part::Storage => match &connected.storage {
                    Some(Ok(s)) => timed(part, storage::delete(s.clone(), &input)).await,
                    Some(Err(p)) => Err(p.clone()),
                    None => continue,
                },
                Part::Identity => match &connected.identity {
                    Some(Ok(i)) => timed(part, identity::delete(i.clone(), &input)).await,
                    Some(Err(p)) => Err(p.clone()),
                    None => continue,
                },
                Part::Registry => match &connected.registry {
                    Some(Ok(r)) => timed(part, registry::delete(r.clone(), &input)).await,
                    Some(Err(p)) => Err(p.clone()),
                    None => continue,
                },
            };
            done.push(result.map_err(|p| fail(part, p))?);
            self.forget(&format!("{name}/{}", part.label()));
        }
        Ok(done)
    }

    /// What the Retain policy keeps outside the cluster, for the Event.
    pub fn retained(&self, project: &Project, settings: &PlatformSettingsSpec) -> Vec<String> {
        let (name, namespace) = names(project);
        let input = Input::bare(project, &name, &namespace, settings);
        let mut kept = Vec::new();
        for part in Part::ALL {
            if !part.enabled(project, settings) {
                continue;
            }
            self.forget(&format!("{name}/{}", part.label()));
            kept.push(match part {
                Part::Storage => format!(
                    "bucket {} with its objects and its access key (Secret {})",
                    storage::bucket_name(&input),
                    part.secret_name()
                ),
                Part::Identity => {
                    format!("OIDC client {} and its group", identity::client_id(&name))
                }
                Part::Registry => format!(
                    "registry project {} with its images and robot",
                    registry::project_name(&name)
                ),
            });
        }
        kept
    }
}

/// Runs a provider sync with [`CALL_TIMEOUT`], turning its error into a condition's problem.
async fn timed<T>(
    part: Part,
    work: impl Future<Output = Result<T, berth_providers::Error>>,
) -> Result<T, Problem> {
    let field = part.label().to_lowercase();
    match tokio::time::timeout(CALL_TIMEOUT, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Problem::from_error(part.label(), &field, &e)),
        Err(_) => Err(Problem::new(
            format!("{}Unreachable", part.label()),
            format!(
                "the {field} provider did not answer within {} s: check its URL in PlatformSettings and that it is up; Berth retries",
                CALL_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// The labels and owner of every Secret Berth writes for a project.
fn secret(
    project: &Project,
    namespace: &str,
    name: &str,
    type_: Option<String>,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
) -> Option<Desired> {
    let owner = project.controller_owner_ref(&())?;
    let object = KubeSecret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                (PROJECT.to_owned(), project.name_any()),
            ])),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        type_,
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    };
    Desired::new(&kinds::secret(), &object).ok()
}

/// The live Secret as a desired one, so that a part that cannot sync now keeps its credentials.
fn keep_secret(project: &Project, live: &KubeSecret) -> Option<Desired> {
    let annotations: BTreeMap<String, String> = live
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == CREDENTIAL_ID_ANNOTATION || k == ROTATION_ANNOTATION)
        .collect();
    let data = live
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    secret(
        project,
        live.metadata.namespace.as_deref()?,
        live.metadata.name.as_deref()?,
        live.type_.clone(),
        data,
        annotations,
    )
}
