//! The rollout decision: which version serves, which volumes exist, whether the spec's version
//! (or its canary) has failed. Pure: from the model (spec and status) and what the live objects
//! say.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use berth_api::mlmodel::{Failure, MLModel, Phase};

use super::build::exposure::canary_replicas;
use super::build::{CanaryPlan, Plan, Version};
use super::observe::{Download, Problem, Serving, quota_problem};

/// [`Failure::stage`] of a failed download.
pub const DOWNLOAD_STAGE: &str = "Download";
/// [`Failure::stage`] of replicas that did not come up.
pub const ROLLOUT_STAGE: &str = "Rollout";
/// [`Failure::stage`] of a canary that failed and was rolled back.
pub const CANARY_STAGE: &str = "Canary";

/// What the live objects say about a model.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Observed {
    /// The download of the version the spec asks for.
    pub target_download: Download,
    /// A problem among the serving pods of the version the spec asks for.
    pub target_problem: Option<Problem>,
    /// A problem among the serving pods of the active version.
    pub active_problem: Option<Problem>,
    /// The stable Deployment, if it exists.
    pub serving: Option<Serving>,
    /// Jobs that finished downloading their version, by version key.
    pub succeeded_jobs: BTreeMap<String, String>,
    /// The canary's objects, when the spec asks for a canary.
    pub canary: ObservedCanary,
    /// Versions (by key) asked for while their volume from an earlier time is still being
    /// deleted: they get no volume, Job or replicas until it is gone.
    pub volumes_deleting: BTreeSet<String>,
}

/// What the live objects say about the canary.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObservedCanary {
    pub download: Download,
    /// A problem among the canary's pods.
    pub problem: Option<Problem>,
    /// The canary's Deployment, if it exists.
    pub serving: Option<Serving>,
}

/// Where the canary is.
#[derive(Clone, Debug, PartialEq)]
pub enum CanaryState {
    /// The canary asks for the version the stable track serves: there is nothing to compare.
    SameAsStable,
    /// The spec's own version does not serve yet; the canary starts once it does.
    WaitingForStable,
    /// Its version downloads.
    Downloading,
    /// Its replicas start.
    Deploying,
    /// Its replicas serve their share.
    Ready,
    /// It failed and was rolled back: the stable version serves every request.
    RolledBack(Failure),
}

/// What this reconcile decided about the canary.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryDecision {
    pub version: Version,
    pub weight: i32,
    pub state: CanaryState,
}

/// What this reconcile decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub target: Version,
    /// The version that serves (after this reconcile's activation, if any).
    pub active: Option<Version>,
    pub plan: Plan,
    /// The spec's version failed (now or earlier, for this generation) and is not retried.
    pub target_failed: Option<Failure>,
    /// The failure to report.
    pub last_failure: Option<Failure>,
    pub phase: Phase,
    /// The Deployment is available and runs the active version (or rolls from it to the
    /// target with the active version's replicas still serving).
    pub ready: bool,
    /// The canary, when the spec asks for one.
    pub canary: Option<CanaryDecision>,
}

/// The active version recorded in the status.
pub fn recorded_active(model: &MLModel) -> Option<Version> {
    let status = model.status.as_ref()?;
    let key = status.active_version.clone()?;
    let source = status.active_source.clone()?;
    let runtime = status.active_runtime.clone()?;
    Some(Version {
        key,
        source,
        runtime,
    })
}

/// A failure of `version` at `stage` for the model's generation; the same failure seen before
/// (`previous`) keeps its time, so a steady state writes nothing.
fn failure_of(
    problem: &Problem,
    stage: &str,
    version: &str,
    generation: i64,
    previous: Option<&Failure>,
    now: Timestamp,
) -> Failure {
    let time = previous
        .filter(|p| p.version == version && p.reason == problem.reason)
        .map(|p| p.time.clone())
        .unwrap_or(Time(now));
    Failure {
        reason: problem.reason.clone(),
        message: problem.message.clone(),
        exit_code: problem.exit_code,
        time,
        stage: stage.to_owned(),
        version: version.to_owned(),
        generation,
    }
}

/// Why a Deployment's rollout failed, from its status: the progress deadline, or pods it could
/// not create (a quota, admission).
fn rollout_problem(serving: &Serving, version: &str, problem: Option<&Problem>) -> Option<Problem> {
    problem.cloned().or_else(|| {
        if serving.progress_deadline_exceeded {
            Some(Problem {
                reason: "RolloutTimeout".into(),
                message: format!(
                    "the replicas of version {version} did not become ready within the platform's rollout deadline; check the model server's logs and readiness"
                ),
                exit_code: None,
            })
        } else {
            serving.replica_failure.as_ref().map(|m| {
                quota_problem(m, &format!("the replicas of version {version}")).unwrap_or_else(
                    || Problem {
                        reason: "PodsRejected".into(),
                        message: format!("the replicas cannot be created: {m}"),
                        exit_code: None,
                    },
                )
            })
        }
    })
}

/// Decides the rollout of `model` given what the live objects say. `target` is the version the
/// spec asks for, `canary` the one its canary asks for.
pub fn decide(
    model: &MLModel,
    target: &Version,
    canary: Option<&Version>,
    observed: &Observed,
    now: Timestamp,
) -> Decision {
    let target = target.clone();
    let generation = model.metadata.generation.unwrap_or(0);
    let previous = model.status.as_ref().and_then(|s| s.last_failure.clone());
    let mut active = recorded_active(model);

    // A version becomes active once the Deployment runs it everywhere and is available.
    if let Some(serving) = &observed.serving
        && serving.template_version.as_deref() == Some(target.key.as_str())
        && serving.rolled_out
        && serving.available
    {
        active = Some(target.clone());
    }
    let target_active = active.as_ref().is_some_and(|a| a.key == target.key);

    let earlier = previous
        .clone()
        .filter(|p| !target_active && p.version == target.key && p.generation == generation);
    let mut target_failed = earlier.clone();
    if target_failed.is_none() && !target_active {
        let serving_target = observed
            .serving
            .as_ref()
            .filter(|s| s.template_version.as_deref() == Some(target.key.as_str()));
        let problem = match (&observed.target_download, serving_target) {
            (Download::Failed(p), _) => Some((p.clone(), DOWNLOAD_STAGE)),
            (_, Some(serving)) => {
                rollout_problem(serving, &target.key, observed.target_problem.as_ref())
                    .map(|p| (p, ROLLOUT_STAGE))
            }
            _ => None,
        };
        target_failed = problem.as_ref().map(|(p, stage)| {
            failure_of(p, stage, &target.key, generation, previous.as_ref(), now)
        });
    }
    let giving_up = target_failed.is_some();

    let downloaded = matches!(
        observed.target_download,
        Download::Succeeded | Download::NotNeeded
    );
    let serve = if target_active || (!giving_up && downloaded) {
        Some(target.clone())
    } else {
        active.clone()
    };
    let mut volumes: Vec<Version> = Vec::new();
    if let Some(a) = &active {
        volumes.push(a.clone());
    }
    if !target_active && !giving_up && !observed.volumes_deleting.contains(&target.key) {
        volumes.push(target.clone());
    }

    let ready = match (&active, &observed.serving) {
        (Some(a), Some(s)) => {
            let runs = s.template_version.as_deref();
            s.available
                && s.ready_replicas >= 1
                && (runs == Some(a.key.as_str()) || runs == Some(target.key.as_str()))
        }
        _ => false,
    };

    let active_problem = if target_active {
        observed.active_problem.as_ref().map(|p| {
            failure_of(
                p,
                ROLLOUT_STAGE,
                &target.key,
                generation,
                previous.as_ref(),
                now,
            )
        })
    } else {
        None
    };
    let last_failure = if target_active {
        // Once the spec's version serves, old failures are history; a problem of the serving
        // version itself is reported.
        active_problem.clone()
    } else {
        target_failed.clone().or(previous)
    };

    let phase = match &active {
        None if giving_up => Phase::Failed,
        None if serve.is_some() => Phase::Deploying,
        None => match observed.target_download {
            Download::Absent => Phase::Pending,
            _ => Phase::Downloading,
        },
        Some(_) if target_active => {
            if ready {
                Phase::Ready
            } else if active_problem.is_some() {
                Phase::Failed
            } else {
                Phase::Deploying
            }
        }
        Some(_) if giving_up => {
            if ready {
                Phase::Ready
            } else {
                Phase::Failed
            }
        }
        Some(_) => Phase::Updating,
    };

    // Replicas the autoscaler owns: what runs now (within its bounds), never a reset to one.
    let autoscaled_replicas = model.spec.autoscaling.as_ref().map(|auto| {
        observed
            .serving
            .as_ref()
            .map(|s| s.replicas)
            .unwrap_or(auto.min_replicas)
            .clamp(auto.min_replicas, auto.max_replicas.max(auto.min_replicas))
    });
    let stable_replicas = autoscaled_replicas.unwrap_or(model.spec.replicas.unwrap_or(1));

    let canary = canary.and_then(|version| {
        let spec = model.spec.canary.as_ref()?;
        Some(decide_canary(
            model,
            version,
            spec.weight,
            target_active && ready,
            &target,
            observed,
            now,
        ))
    });
    let canary_plan = canary.as_ref().and_then(|c| match c.state {
        CanaryState::Deploying | CanaryState::Ready => Some(CanaryPlan {
            version: c.version.clone(),
            replicas: canary_replicas(stable_replicas, c.weight),
            weight: c.weight,
        }),
        _ => None,
    });
    if let Some(c) = &canary
        && matches!(
            c.state,
            CanaryState::Downloading | CanaryState::Deploying | CanaryState::Ready
        )
        && !volumes.iter().any(|v| v.key == c.version.key)
        && !observed.volumes_deleting.contains(&c.version.key)
    {
        volumes.push(c.version.clone());
    }
    let kept_jobs = observed
        .succeeded_jobs
        .iter()
        .filter(|(version, _)| volumes.iter().any(|v| &v.key == *version))
        .map(|(v, j)| (v.clone(), j.clone()))
        .collect();

    Decision {
        target,
        active,
        plan: Plan {
            serve,
            volumes,
            kept_jobs,
            autoscaled_replicas,
            canary: canary_plan,
        },
        target_failed,
        last_failure,
        phase,
        ready,
        canary,
    }
}

/// Where the canary `version` is: it starts once the spec's own version serves (`stable_serves`),
/// downloads, deploys, and is rolled back (and not tried again until the spec changes) when its
/// download or its replicas fail.
fn decide_canary(
    model: &MLModel,
    version: &Version,
    weight: i32,
    stable_serves: bool,
    target: &Version,
    observed: &Observed,
    now: Timestamp,
) -> CanaryDecision {
    let generation = model.metadata.generation.unwrap_or(0);
    let previous = model
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.failure.clone());
    let decision = |state| CanaryDecision {
        version: version.clone(),
        weight,
        state,
    };
    if version.key == target.key {
        return decision(CanaryState::SameAsStable);
    }
    if let Some(failed) = previous
        .clone()
        .filter(|f| f.version == version.key && f.generation == generation)
    {
        return decision(CanaryState::RolledBack(failed));
    }
    if !stable_serves {
        return decision(CanaryState::WaitingForStable);
    }
    let seen = &observed.canary;
    let problem = match (&seen.download, &seen.serving) {
        (Download::Failed(p), _) => Some(p.clone()),
        (_, Some(serving)) if serving.template_version.as_deref() == Some(&version.key) => {
            rollout_problem(serving, &version.key, seen.problem.as_ref())
        }
        _ => seen.problem.clone(),
    };
    if let Some(problem) = problem {
        return decision(CanaryState::RolledBack(failure_of(
            &problem,
            CANARY_STAGE,
            &version.key,
            generation,
            previous.as_ref(),
            now,
        )));
    }
    if !matches!(seen.download, Download::Succeeded | Download::NotNeeded) {
        return decision(CanaryState::Downloading);
    }
    let ready = seen.serving.as_ref().is_some_and(|s| {
        s.template_version.as_deref() == Some(&version.key) && s.rolled_out && s.available
    });
    decision(if ready {
        CanaryState::Ready
    } else {
        CanaryState::Deploying
    })
}
