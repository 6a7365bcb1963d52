//! The rollout decision: which version serves, which volumes exist, whether the spec's version
//! has failed. Pure: from the model (spec and status) and what the live objects say.

use berth_api::mlmodel::{Failure, MLModel, Phase};

use super::build::{Plan, Version};
use super::observe::{Download, Problem, Serving};

/// [`Failure::stage`] of a failed download.
pub const DOWNLOAD_STAGE: &str = "Download";
/// [`Failure::stage`] of replicas that did not come up.
pub const ROLLOUT_STAGE: &str = "Rollout";

/// What the live objects say about a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The download of the version the spec asks for.
    pub target_download: Download,
    /// A problem among the serving pods of the version the spec asks for.
    pub target_problem: Option<Problem>,
    /// A problem among the serving pods of the active version.
    pub active_problem: Option<Problem>,
    /// The Deployment, if it exists.
    pub serving: Option<Serving>,
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

/// Decides the rollout of `model` given what the live objects say.
pub fn decide(model: &MLModel, observed: &Observed, now: k8s_openapi::jiff::Timestamp) -> Decision {
    let target = Version::of(&model.spec.source, &model.spec.runtime);
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

    let failure = |problem: &Problem, stage: &str| {
        // The same failure keeps its time, so a steady state writes nothing.
        let time = previous
            .as_ref()
            .filter(|p| p.version == target.key && p.reason == problem.reason)
            .map(|p| p.time.clone())
            .unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        Failure {
            reason: problem.reason.clone(),
            message: problem.message.clone(),
            exit_code: problem.exit_code,
            time,
            stage: stage.to_owned(),
            version: target.key.clone(),
            generation,
        }
    };

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
            (_, Some(serving)) => observed.target_problem.clone().or_else(|| {
                if serving.progress_deadline_exceeded {
                    Some(Problem {
                        reason: "RolloutTimeout".into(),
                        message: format!(
                            "the replicas of version {} did not become ready within the platform's rollout deadline; check the model server's logs and readiness",
                            target.key
                        ),
                        exit_code: None,
                    })
                } else {
                    serving.replica_failure.as_ref().map(|m| Problem {
                        reason: "PodsRejected".into(),
                        message: format!("the replicas cannot be created: {m}"),
                        exit_code: None,
                    })
                }
            }).map(|p| (p, ROLLOUT_STAGE)),
            _ => None,
        };
        target_failed = problem.as_ref().map(|(p, stage)| failure(p, stage));
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
    if !target_active && !giving_up {
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
        observed
            .active_problem
            .as_ref()
            .map(|p| failure(p, ROLLOUT_STAGE))
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

    Decision {
        target,
        active,
        plan: Plan {
            serve,
            volumes,
            autoscaled_replicas: None,
        },
        target_failed,
        last_failure,
        phase,
        ready,
    }
}
