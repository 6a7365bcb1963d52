//! The MLModel's status, from the decision and the build. Pure.

use k8s_openapi::jiff::Timestamp;

use berth_api::conditions::{self, Status};
use berth_api::mlmodel::{CanaryStatus, MLModel, MLModelStatus, Phase};

use super::auth::{Auth, Unavailable};
use super::build::{Built, Exposure};
use super::observe::Download;
use super::plan::{CanaryState, DOWNLOAD_STAGE, Decision, Observed};

pub const DOWNLOADED: &str = "Downloaded";
pub const AVAILABLE: &str = "Available";
pub const READY: &str = "Ready";
pub const DEGRADED: &str = "Degraded";
pub const EXPOSED: &str = "Exposed";
pub const CANARY_READY: &str = "CanaryReady";
pub const AUTH_READY: &str = "AuthReady";

/// The status for `model` after `decision`, keeping transition times of unchanged conditions.
pub fn status(
    model: &MLModel,
    observed: &Observed,
    decision: &Decision,
    built: &Built,
    auth: &Result<Auth, Unavailable>,
    now: Timestamp,
) -> MLModelStatus {
    let previous = model.status.clone().unwrap_or_default();
    let generation = model.metadata.generation;
    let mut cs = previous.conditions.clone();
    let mut put = |type_: &str, status: Status, reason: &str, message: &str| {
        conditions::set(&mut cs, type_, status, reason, message, generation, now);
    };
    let target = &decision.target.key;
    let uri = &decision.target.source.uri;
    let target_active = decision.active.as_ref().is_some_and(|a| &a.key == target);
    let active_key = decision.active.as_ref().map(|a| a.key.clone());

    // Downloaded: the spec's version.
    let failed_download = decision
        .target_failed
        .as_ref()
        .filter(|f| f.stage == DOWNLOAD_STAGE);
    match (&observed.target_download, failed_download) {
        (Download::NotNeeded, _) => put(
            DOWNLOADED,
            Status::True,
            "ExistingVolume",
            &format!("version {target} is served from the existing volume {uri}"),
        ),
        (_, Some(f)) => put(DOWNLOADED, Status::False, &f.reason, &f.message),
        (Download::Failed(p), None) => put(DOWNLOADED, Status::False, &p.reason, &p.message),
        (Download::Succeeded, None) => put(
            DOWNLOADED,
            Status::True,
            "Downloaded",
            &format!("version {target} was downloaded from {uri}"),
        ),
        _ if target_active || decision.target_failed.is_some() => put(
            DOWNLOADED,
            Status::True,
            "Downloaded",
            &format!("version {target} was downloaded from {uri}"),
        ),
        (Download::Running, None) => put(
            DOWNLOADED,
            Status::False,
            "Downloading",
            &format!("version {target} is downloading from {uri}"),
        ),
        (Download::Waiting(detail), None) => {
            put(DOWNLOADED, Status::False, "DownloadPending", detail)
        }
        (Download::Absent, None) => put(
            DOWNLOADED,
            Status::False,
            "DownloadPending",
            &format!("the download of version {target} is about to start"),
        ),
    }

    // Available: the Deployment.
    match &observed.serving {
        Some(s) if s.available => put(
            AVAILABLE,
            Status::True,
            "ReplicasAvailable",
            &format!("{} of {} replicas are ready", s.ready_replicas, s.replicas),
        ),
        Some(s) => {
            let problem = observed
                .active_problem
                .as_ref()
                .or(observed.target_problem.as_ref());
            match problem {
                Some(p) => put(AVAILABLE, Status::False, &p.reason, &p.message),
                None => put(
                    AVAILABLE,
                    Status::False,
                    "ReplicasNotReady",
                    &format!(
                        "{} of {} replicas are ready; waiting for the rest to pass their readiness probe",
                        s.ready_replicas, s.replicas
                    ),
                ),
            }
        }
        None => put(
            AVAILABLE,
            Status::False,
            "NotDeployed",
            "no replicas run yet: they start once the model is downloaded",
        ),
    }

    // Degraded: the spec's version failed while an older one serves.
    match (&decision.target_failed, &active_key) {
        (Some(f), Some(active)) if !target_active => put(
            DEGRADED,
            Status::True,
            &f.reason,
            &format!(
                "version {} failed and was removed; version {active} keeps serving. {}",
                f.version, f.message
            ),
        ),
        _ => put(DEGRADED, Status::False, "AsExpected", "no failed update"),
    }

    // Exposed.
    match &built.exposure {
        Exposure::Cluster => put(
            EXPOSED,
            Status::True,
            "ServiceReady",
            &format!("reachable inside the cluster at {}", built.url),
        ),
        Exposure::Routed { kind, api_version } => put(
            EXPOSED,
            Status::True,
            &format!("{kind}Applied"),
            &format!(
                "reachable at {} through a {kind} ({api_version})",
                built.url
            ),
        ),
        Exposure::NotPossible { reason, message } => put(EXPOSED, Status::False, reason, message),
    }

    // AuthReady: how callers are checked, or why they cannot be (then nothing serves).
    match auth {
        Ok(auth) => {
            let (reason, message) = auth.describe();
            put(AUTH_READY, Status::True, reason, &message);
        }
        Err(u) => put(AUTH_READY, Status::False, &u.reason, &u.message),
    }

    // Ready.
    if let Err(u) = auth {
        put(READY, Status::False, &u.reason, &u.message);
    } else if decision.ready {
        let active = active_key.clone().unwrap_or_default();
        let message = match decision.phase {
            Phase::Updating => format!(
                "version {active} serves at {} while version {target} rolls out",
                built.url
            ),
            _ if !target_active => format!(
                "version {active} serves at {}; version {target} failed (see Degraded)",
                built.url
            ),
            _ => format!("version {active} serves at {}", built.url),
        };
        put(READY, Status::True, "ModelReady", &message);
    } else {
        let (reason, message) = match (&decision.last_failure, decision.phase) {
            (Some(f), Phase::Failed) => (f.reason.clone(), f.message.clone()),
            (_, Phase::Pending) => (
                "Pending".to_owned(),
                format!("the download of version {target} is about to start"),
            ),
            (_, Phase::Downloading) => (
                "Downloading".to_owned(),
                format!("version {target} is downloading from {uri}"),
            ),
            _ => (
                "ReplicasNotReady".to_owned(),
                format!("waiting for the replicas of version {target} to become ready"),
            ),
        };
        put(READY, Status::False, &reason, &message);
    }

    // CanaryReady, while the spec asks for a canary.
    let canary = decision.canary.as_ref().map(|c| {
        let key = &c.version.key;
        let serving = observed.canary.serving.as_ref();
        let (status, reason, message) = match &c.state {
            CanaryState::SameAsStable => (
                Status::False,
                "SameAsStable".to_owned(),
                format!("the canary asks for version {key}, which the stable track serves: nothing to compare; remove spec.canary"),
            ),
            CanaryState::WaitingForStable => (
                Status::False,
                "WaitingForStable".to_owned(),
                format!("the canary (version {key}) starts once the spec's own version serves"),
            ),
            CanaryState::Downloading => (
                Status::False,
                "Downloading".to_owned(),
                format!("canary version {key} is downloading"),
            ),
            CanaryState::Deploying => (
                Status::False,
                "Deploying".to_owned(),
                format!("the replicas of canary version {key} are starting"),
            ),
            CanaryState::Ready => (
                Status::True,
                "CanaryServing".to_owned(),
                format!(
                    "canary version {key} serves {}% of requests ({}); promote it by making its source and runtime the model's and removing spec.canary, roll it back by removing spec.canary",
                    built.canary_split.as_ref().map(|s| s.1).unwrap_or(0),
                    built.canary_split.as_ref().map(|s| s.0.as_str()).unwrap_or("replicas")
                ),
            ),
            CanaryState::RolledBack(f) => (
                Status::False,
                f.reason.clone(),
                format!(
                    "canary version {key} failed and was rolled back: the stable version serves every request. {} Change spec.canary to try again",
                    f.message
                ),
            ),
        };
        put(CANARY_READY, status, &reason, &message);
        let serving_now = matches!(c.state, CanaryState::Ready | CanaryState::Deploying);
        let percent = if serving_now && serving.is_some_and(|s| s.ready_replicas > 0) {
            built.canary_split.as_ref().map(|s| s.1).unwrap_or(0)
        } else {
            0
        };
        let stable = active_key.clone().unwrap_or_else(|| "-".into());
        CanaryStatus {
            version: key.clone(),
            replicas: if serving_now {
                serving.map(|s| s.replicas).unwrap_or(0)
            } else {
                0
            },
            ready_replicas: if serving_now {
                serving.map(|s| s.ready_replicas).unwrap_or(0)
            } else {
                0
            },
            percent,
            method: built
                .canary_split
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            split: format!("{stable} {}% / {key} {percent}%", 100 - percent),
            failure: match &c.state {
                CanaryState::RolledBack(f) => Some(f.clone()),
                _ => None,
            },
        }
    });
    if canary.is_none() {
        cs.retain(|c| c.type_ != CANARY_READY);
    }

    MLModelStatus {
        canary,
        observed_generation: generation,
        phase: Some(decision.phase),
        url: Some(built.url.clone()),
        auth: auth.as_ref().ok().map(Auth::status),
        hostname: built.host.clone(),
        active_version: active_key,
        target_version: Some(target.clone()),
        active_source: decision.active.as_ref().map(|a| a.source.clone()),
        active_runtime: decision.active.as_ref().map(|a| a.runtime.clone()),
        ready_replicas: observed.serving.as_ref().map(|s| s.ready_replicas),
        last_failure: decision.last_failure.clone(),
        conditions: cs,
    }
}
