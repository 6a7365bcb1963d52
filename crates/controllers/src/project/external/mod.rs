//! What a Project gets outside the cluster: a bucket with its own access key, an OIDC client with
//! a realm group, and a registry project with a robot. Each part ([`part::OutsidePart`], one
//! implementation per part, run alike):
//!
//! - runs only when the platform enables its provider and the Project does not opt out;
//! - uses only what records the Project as its owner: anything else under its name is a
//!   `<Part>Conflict` that says how a platform admin adopts it;
//! - never blocks or undoes the in-cluster parts: its failure is its own condition, retried with
//!   capped exponential backoff;
//! - writes its credentials to a Secret in the project's namespace only when they change, and
//!   revokes a replaced credential only after that write succeeded;
//! - is skipped while nothing it depends on has changed since its last success (a resync every
//!   [`RESYNC`] still catches drift made by hand in the provider).
//!
//! What the controller reads of a credentials Secret: its labels and the annotations
//! `berth.dev/credential-id`, `berth.dev/credential-fingerprint` and `berth.dev/rotation`. Never
//! its data.

pub mod connect;
pub mod credentials;
mod identity;
pub mod part;
pub mod problem;
mod registry;
mod removal;
mod secrets;
mod storage;

pub use self::removal::Removal;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Client, ResourceExt};
use tracing::warn;

use berth_api::PlatformSettingsSpec;
use berth_api::conditions::Status;
use berth_api::providers::ExternalStatus;
use berth_providers::ErrorKind;
use berth_reconcile::{Backoffs, ChildCache};

use self::connect::{Connected, Connections, Problem};
use self::part::{Claimed, Held, Input};
use super::build::secret::{CREDENTIAL_ID_ANNOTATION, FINGERPRINT_ANNOTATION, ROTATION_ANNOTATION};
use super::part::{Part, PartState};
use super::validate::Validated;
use crate::kinds;
use crate::names::outside::owner;

/// How long a provider call may take before it counts as an outage.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest wait between retries of a failing provider.
const RETRY_CAP: Duration = Duration::from_secs(30);
/// The longest wait between looks at a conflict, which needs a person (a change to the Project,
/// such as an adopt annotation, wakes it at once).
const CONFLICT_RETRY_CAP: Duration = Duration::from_secs(300);
/// A part in sync is checked against its provider again after this long.
pub const RESYNC: Duration = Duration::from_secs(10 * 60);
/// How long a Secret written moments ago counts as the truth while the cache catches up.
const WRITE_SETTLES: Duration = Duration::from_secs(10);

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
    /// The credential id and rotation last written to the part's Secret, and when.
    written: Option<(String, Option<String>, Instant)>,
}

/// A part's outcome in one reconcile.
pub struct PartOutcome {
    pub part: Part,
    pub state: PartState,
    /// The names it holds, once its sync succeeded.
    pub claimed: Option<Claimed>,
    /// When to try again.
    pub retry_in: Option<Duration>,
}

/// The outcome of every part for one Project.
pub struct Prepared {
    pub parts: Vec<PartOutcome>,
}

impl Prepared {
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

    /// The names the status records: those claimed now, those recorded before for parts that
    /// did not sync now, none for a part switched off.
    pub fn external_status(&self, previous: Option<&ExternalStatus>) -> Option<ExternalStatus> {
        let mut s = previous.cloned().unwrap_or_default();
        for p in &self.parts {
            match (&p.state, &p.claimed) {
                (PartState::Disabled, _) => match p.part {
                    Part::Storage => s.bucket = None,
                    Part::Identity => {
                        s.oidc_client_id = None;
                        s.oidc_group = None;
                    }
                    Part::Registry => s.registry_project = None,
                },
                (_, Some(claimed)) => {
                    let keep = |slot: &mut Option<String>, new: &Option<String>| {
                        if new.is_some() {
                            slot.clone_from(new);
                        }
                    };
                    keep(&mut s.bucket, &claimed.bucket);
                    keep(&mut s.oidc_client_id, &claimed.oidc_client);
                    keep(&mut s.oidc_group, &claimed.oidc_group);
                    keep(&mut s.registry_project, &claimed.registry_project);
                }
                _ => {}
            }
        }
        Some(s).filter(|s| *s != ExternalStatus::default())
    }
}

/// A live credentials Secret's annotations: what the controller reads of it.
#[derive(Default)]
struct Recorded {
    exists: bool,
    credential_id: Option<String>,
    fingerprint: Option<String>,
    rotation: Option<String>,
    resource_version: Option<String>,
    /// Set when an earlier Berth gave it an ownerReference to the Project: the others to keep.
    legacy_owner: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
}

impl External {
    pub fn new(connections: Connections) -> Self {
        Self {
            connections,
            backoffs: Backoffs::default(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Syncs every part of `project` with its provider. Never fails: each part's failure is in
    /// its outcome.
    pub async fn sync(
        &self,
        client: &Client,
        project: &Validated<'_>,
        settings: &PlatformSettingsSpec,
        children: &ChildCache,
    ) -> Prepared {
        let connected = self.connections.get(settings);
        let run = |part: Part| {
            let connected = connected.clone();
            async move {
                self.part(part, client, project, settings, children, &connected)
                    .await
            }
        };
        let (s, i, r) =
            futures::join!(run(Part::Storage), run(Part::Identity), run(Part::Registry));
        Prepared {
            parts: vec![s, i, r],
        }
    }

    fn key(uid: &str, part: Part) -> String {
        format!("{uid}/{}", part.label())
    }

    fn recorded(children: &ChildCache, project: &Validated, part: Part) -> Recorded {
        let Some(live) = children
            .get(
                &kinds::secret().resource,
                Some(&project.namespace),
                part.secret_name(),
            )
            .filter(|s| s.controlled_by(&project.uid))
        else {
            return Recorded::default();
        };
        let annotations = live.value()["metadata"]["annotations"].clone();
        let get = |k: &str| {
            annotations
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let owner_references = live.owner_references();
        let legacy = owner_references.iter().any(|r| r.uid == project.uid);
        Recorded {
            exists: true,
            credential_id: get(CREDENTIAL_ID_ANNOTATION),
            fingerprint: get(FINGERPRINT_ANNOTATION),
            rotation: get(ROTATION_ANNOTATION),
            resource_version: live.resource_version.as_deref().map(str::to_owned),
            legacy_owner: legacy.then(|| {
                owner_references
                    .into_iter()
                    .filter(|r| r.uid != project.uid)
                    .collect()
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn part(
        &self,
        part: Part,
        client: &Client,
        project: &Validated<'_>,
        settings: &PlatformSettingsSpec,
        children: &ChildCache,
        connected: &Connected,
    ) -> PartOutcome {
        let key = Self::key(&project.uid, part);
        let mut outcome = PartOutcome {
            part,
            state: PartState::Disabled,
            claimed: None,
            retry_in: None,
        };
        let recorded = Self::recorded(children, project, part);
        if let Some(others) = &recorded.legacy_owner
            && let Err(e) = secrets::detach(client, &project.namespace, part, others).await
        {
            warn!(project = %project.name, part = part.label(), "detaching a credentials Secret from the Project failed, retried: {e}");
        }
        if !part.enabled(project.project, settings) {
            // Opted out (or switched off by the platform) after it was provisioned: its
            // credentials are revoked, then its Secret goes; the data (the bucket, the images)
            // stays.
            if recorded.exists
                && let Some(Ok(connection)) = connected.part(part)
            {
                let held = Held {
                    names: &project.outside,
                    owner: owner(&project.uid, false),
                };
                let revoked = timed(part, connection.revoke(&held)).await;
                let removed = match revoked {
                    Ok(_) => secrets::delete(client, &project.namespace, part)
                        .await
                        .map_err(|e| {
                            Problem::new(
                                format!("{}SecretNotRemoved", part.label()),
                                format!("removing Secret {}: {e}", part.secret_name()),
                            )
                        }),
                    Err(p) => Err(p),
                };
                if let Err(problem) = removed {
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
            self.forget(&key);
            return outcome;
        }

        // A name the backend would refuse is refused here, before any call.
        let refused = match part {
            Part::Storage => project.outside.bucket.as_ref().err(),
            Part::Registry => project.outside.registry_project.as_ref().err(),
            Part::Identity => None,
        };
        if let Some(refused) = refused {
            outcome.state = PartState::Set(
                Status::False,
                format!("{}NameInvalid", part.label()),
                format!(
                    "the project's {} cannot be made: {refused}. A platform admin changes PlatformSettings.spec.{}, or the project takes another name",
                    part.noun(),
                    if part == Part::Storage {
                        "storage.bucketTemplate"
                    } else {
                        "registry"
                    },
                ),
            );
            self.forget(&key);
            return outcome;
        }
        let connection = match connected.part(part) {
            None => return outcome,
            Some(Err(problem)) => {
                let wait = self.backoffs.failed(&key, RETRY_CAP);
                outcome.retry_in = Some(wait);
                outcome.state = unsynced(problem.clone(), wait);
                return outcome;
            }
            Some(Ok(connection)) => connection.clone(),
        };

        let wanted = project
            .project
            .annotations()
            .get(part.rotate_annotation())
            .cloned();
        let adopt = project.project.admin_says(part.adopt_annotation());
        let now = Instant::now();
        let (mut current, mut answered) =
            (recorded.credential_id.clone(), recorded.rotation.clone());
        if let Ok(memory) = self.state.lock()
            && let Some((id, rotation, at)) = memory.get(&key).and_then(|m| m.written.clone())
            && now.duration_since(at) < WRITE_SETTLES
        {
            // Written moments ago; the cache may not have it yet.
            current = Some(id);
            answered = rotation;
        }
        let rotate = wanted.clone().filter(|w| Some(w) != answered.as_ref());
        let input = Input {
            project,
            settings,
            current: current.clone(),
            fingerprint: recorded.fingerprint.clone(),
            rotate: rotate.is_some(),
            owner: owner(&project.uid, adopt),
        };

        let fingerprint = {
            let mut h = DefaultHasher::new();
            connected.fingerprint.hash(&mut h);
            match part {
                Part::Storage => storage::inputs(&input).hash(&mut h),
                Part::Identity => identity::inputs(&input).hash(&mut h),
                Part::Registry => registry::inputs(&input).hash(&mut h),
            }
            format!("{:?}", project.outside).hash(&mut h);
            (&wanted, &answered, &current, &recorded.fingerprint, adopt).hash(&mut h);
            recorded.resource_version.hash(&mut h);
            h.finish()
        };
        if let Ok(memory) = self.state.lock()
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

        let synced = match timed(part, connection.sync(&input)).await {
            Ok(synced) => synced,
            Err(problem) => {
                let cap = if problem.reason.ends_with("Conflict") {
                    CONFLICT_RETRY_CAP
                } else {
                    RETRY_CAP
                };
                let wait = self.backoffs.failed(&key, cap);
                warn!(project = %project.name, part = part.label(), reason = %problem.reason, retry_in = ?wait, "provider sync failed: {}", problem.log_text());
                if let Ok(mut memory) = self.state.lock() {
                    let m = memory.entry(key).or_default();
                    m.next_try = Some(now + wait);
                    m.synced = None;
                }
                outcome.retry_in = Some(wait);
                outcome.state = unsynced(problem, wait);
                return outcome;
            }
        };
        if let Some(contents) = &synced.secret {
            if let Err(e) = secrets::write(client, project, part, contents, wanted.as_deref()).await
            {
                // The credentials exist but are not stored: the next sync recovers them.
                let wait = self.backoffs.failed(&key, RETRY_CAP);
                outcome.retry_in = Some(wait);
                outcome.state = unsynced(
                    Problem::new(
                        format!("{}SecretNotWritten", part.label()),
                        format!("writing Secret {}: {e}", part.secret_name()),
                    ),
                    wait,
                );
                return outcome;
            }
            if let Ok(mut memory) = self.state.lock() {
                memory.entry(key.clone()).or_default().written = Some((
                    contents.credential_id.clone(),
                    wanted.clone(),
                    Instant::now(),
                ));
            }
        }
        // The Secret holds the new credentials: the old ones may go.
        let mut in_sync = true;
        if let Some(replaced) = &synced.replaced
            && let Err(problem) = timed(part, connection.revoke_replaced(replaced)).await
        {
            in_sync = false;
            warn!(project = %project.name, part = part.label(), "revoking a replaced credential failed, retried on the next sync: {}", problem.log_text());
        }
        self.backoffs.succeeded(&key);
        if let Ok(mut memory) = self.state.lock() {
            let m = memory.entry(key).or_default();
            m.next_try = None;
            m.synced = in_sync.then(|| (fingerprint, Instant::now()));
        }
        outcome.claimed = Some(synced.claimed);
        outcome.state = PartState::Set(
            Status::True,
            format!("{}Provisioned", part.label()),
            synced.message,
        );
        outcome
    }

    /// Forgets a part (disabled, or its project gone).
    fn forget(&self, key: &str) {
        self.backoffs.succeeded(key);
        if let Ok(mut memory) = self.state.lock() {
            memory.remove(key);
        }
    }

    /// Forgets every part of a project.
    pub fn forget_project(&self, uid: &str) {
        for part in Part::ALL {
            self.forget(&Self::key(uid, part));
        }
    }
}

/// The condition of a part that did not sync, saying when it is tried again.
fn unsynced(problem: Problem, wait: Duration) -> PartState {
    PartState::Set(
        Status::False,
        problem.reason,
        format!(
            "{} (the project's other parts are unaffected; retrying in {} s)",
            problem.message,
            wait.as_secs().max(1)
        ),
    )
}

/// Runs a provider call with [`CALL_TIMEOUT`], turning its error into a condition's problem.
pub(super) async fn timed<T>(
    part: Part,
    work: impl Future<Output = Result<T, berth_providers::Error>>,
) -> Result<T, Problem> {
    let field = part.setting();
    match tokio::time::timeout(CALL_TIMEOUT, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.kind == ErrorKind::Conflict => Err(Problem {
            reason: format!("{}Conflict", part.label()),
            message: format!(
                "{}: nothing of it was used or changed. If it should be this project's, a platform admin adopts it with the annotation {}=\"true\" on the Project; otherwise the project needs another name",
                problem::in_berths_words(&e.message),
                part.adopt_annotation()
            ),
            detail: Some(e.message),
        }),
        Ok(Err(e)) => Err(Problem::from_error(part.label(), field, &e)),
        Err(_) => Err(Problem::new(
            format!("{}Unreachable", part.label()),
            format!(
                "the {field} provider did not answer within {} s: check its URL in PlatformSettings and that it is up; Berth retries",
                CALL_TIMEOUT.as_secs()
            ),
        )),
    }
}
