//! What the live download Jobs, Deployments and pods say about a model's versions. Pure: the
//! wiring reads the objects from the child caches and hands them here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::names::kube::QUOTA;

use super::build::{FETCH_CONTAINER, VERSION};

/// Why a version does not come up: a reason in one word, a message a data scientist can act on,
/// and the download's exit code when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
    pub exit_code: Option<i32>,
}

impl Problem {
    fn new(reason: &str, message: String) -> Self {
        Self {
            reason: reason.to_owned(),
            message,
            exit_code: None,
        }
    }
}

/// Where the download of a version is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Download {
    /// A pvc:// source: nothing to download.
    NotNeeded,
    /// No Job (yet).
    #[default]
    Absent,
    /// The Job exists; its pod waits to run (scheduling, volume, image).
    Waiting(String),
    /// The download runs.
    Running,
    /// The model is in its volume.
    Succeeded,
    /// The download failed for good.
    Failed(Problem),
}

/// What a Deployment's status says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Serving {
    /// The version the pod template runs.
    pub template_version: Option<String>,
    /// The replicas asked for.
    pub replicas: i32,
    pub ready_replicas: i32,
    /// The Deployment controller has seen the latest spec, every replica runs it and is
    /// available, and no replica of an older template is left.
    pub rolled_out: bool,
    /// The Deployment's Available condition is True: its minimum of replicas is ready.
    pub available: bool,
    /// The Deployment's progress deadline passed without the rollout finishing.
    pub progress_deadline_exceeded: bool,
    /// Pods could not be created (quota, admission): the ReplicaFailure message.
    pub replica_failure: Option<String>,
}

/// The Jobs that finished downloading their version: version key to Job name. Such a Job is kept
/// as it is while its version lives, whatever Berth would build today.
pub fn succeeded_jobs(jobs: &[Job]) -> BTreeMap<String, String> {
    jobs.iter()
        .filter(|job| job_succeeded(job))
        .filter_map(|job| {
            let version = job.metadata.labels.as_ref()?.get(VERSION)?.clone();
            Some((version, job.metadata.name.clone()?))
        })
        .collect()
}

fn job_succeeded(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c.type_ == "Complete" || c.type_ == "SuccessCriteriaMet") && c.status == "True"
            })
        })
}

/// A ResourceQuota's refusal, from the API server's words (`... exceeded quota: NAME, requested:
/// R, used: U, limited: L`): a `QuotaExceeded` problem naming the quota and what to change, or
/// `None` when `message` is no quota refusal. `what` says what was refused ("the download pod of
/// version 3f09…").
pub fn quota_problem(message: &str, what: &str) -> Option<Problem> {
    let rest = message.split("exceeded quota: ").nth(1)?;
    let (name, rest) = rest.split_once(',').unwrap_or((rest, ""));
    let name = name.trim();
    let field = |label: &str| {
        rest.split(&format!("{label}: "))
            .nth(1)
            .map(|v| v.split(", ").next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default()
    };
    let (requested, used, limited) = (field("requested"), field("used"), field("limited"));
    let change = if name == QUOTA {
        "raise the Project's spec.quota for it (ask a platform admin beyond the platform's maximum)"
    } else {
        "ask whoever manages that ResourceQuota to raise it"
    };
    Some(Problem::new(
        "QuotaExceeded",
        format!(
            "ResourceQuota {name} refuses {what}: it asks for {requested}, with {used} in use of {limited}. Free room (fewer replicas, smaller requests or storage.size, delete what is unused) or {change}"
        ),
    ))
}

/// The state of a download Job and its pods. `refused` is why the Job controller could not create
/// its pod, when it said so (a `FailedCreate` Event).
pub fn download(
    job: Option<&Job>,
    pods: &[&Pod],
    refused: Option<&str>,
    uri: &str,
    timeout: &str,
) -> Download {
    let Some(job) = job else {
        return Download::Absent;
    };
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if is("Complete").is_some() || is("SuccessCriteriaMet").is_some() {
        return Download::Succeeded;
    }
    // A failed pod's exit code says why; the latest one counts.
    let exit = pods
        .iter()
        .filter_map(|p| terminated(p, FETCH_CONTAINER))
        .filter(|(code, _, _)| *code != 0)
        .max_by(|a, b| a.2.cmp(&b.2));
    if let Some(failed) = is("Failed").or(is("FailureTarget")) {
        let reason = failed.reason.clone().unwrap_or_default();
        if reason == "DeadlineExceeded" {
            return Download::Failed(Problem {
                reason: "DeadlineExceeded".into(),
                message: format!(
                    "the download of {uri} did not finish within {timeout}; raise source.timeout if the model is large, or check that the source answers"
                ),
                exit_code: exit.as_ref().map(|e| e.0),
            });
        }
        return Download::Failed(match exit {
            Some((code, message, _)) => fetch_problem(code, &message, uri),
            None => Problem::new(
                "DownloadFailed",
                format!(
                    "the download of {uri} failed: {}",
                    failed.message.clone().unwrap_or_else(|| reason.clone())
                ),
            ),
        });
    }
    // Signals from a pod that cannot run at all fail the download at once.
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if let Some(problem) = pod_problem(pod, i32::MAX) {
            return Download::Failed(problem);
        }
    }
    let running = pods.iter().any(|p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && p.metadata.deletion_timestamp.is_none()
    });
    if running {
        return Download::Running;
    }
    // No pod: the Job controller may be refused creating one.
    if pods.is_empty()
        && let Some(message) = refused
    {
        let what = format!("the download pod of {uri}");
        return Download::Failed(quota_problem(message, &what).unwrap_or_else(|| {
            Problem::new(
                "PodsRejected",
                format!("the download pod cannot be created: {message}"),
            )
        }));
    }
    Download::Waiting(match pods.first() {
        None => "waiting for the download pod to be created".into(),
        Some(pod) => waiting_detail(pod),
    })
}

fn waiting_detail(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let unscheduled = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    match unscheduled {
        Some(c) => format!(
            "the download pod waits to be scheduled: {}",
            c.message.unwrap_or_default()
        ),
        None => "the download pod is starting".into(),
    }
}

/// The exit code, message and finish time of a terminated container (current or last state).
fn terminated(pod: &Pod, container: &str) -> Option<(i32, String, String)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let status = statuses.iter().find(|s| s.name == container)?;
    let state = status
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .or_else(|| {
            status
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.clone())
        })?;
    let finished = state
        .finished_at
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    Some((state.exit_code, state.message.unwrap_or_default(), finished))
}

/// The problem berth-model-fetch's exit code names, with its own message.
pub fn fetch_problem(code: i32, message: &str, uri: &str) -> Problem {
    let detail = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("berth-model-fetch: error: ")
        .to_owned();
    let said = if detail.is_empty() {
        String::new()
    } else {
        format!(" (berth-model-fetch: {detail})")
    };
    let (reason, text) = match code {
        3 => (
            "SourceNotFound",
            format!("the model was not found at {uri}: check the bucket, key or URL{said}"),
        ),
        4 => (
            "AccessDenied",
            format!(
                "access to {uri} was denied: check the credentials in the Secret the model uses (source.secretName, or berth-storage) and that they may read it{said}"
            ),
        ),
        5 => (
            "ChecksumMismatch",
            format!(
                "the file downloaded from {uri} does not match source.sha256: the file changed or the checksum is wrong{said}"
            ),
        ),
        6 => (
            "DeadlineExceeded",
            format!(
                "the download of {uri} did not finish within source.timeout; raise it if the model is large{said}"
            ),
        ),
        7 => (
            "NetworkError",
            format!(
                "the download of {uri} kept failing on network or server errors after its retries{said}"
            ),
        ),
        8 => (
            "UnpackFailed",
            format!("the archive from {uri} could not be unpacked{said}"),
        ),
        9 => (
            "DiskError",
            format!(
                "the model could not be written into its volume; is storage.size large enough?{said}"
            ),
        ),
        10 => (
            "ArchiveTooLarge",
            format!(
                "the archive from {uri} unpacks beyond what Berth allows: more than the volume holds (raise storage.size if the model really is that large), over 100,000 entries, or over 1,000 times its own size (an archive bomb){said}"
            ),
        ),
        11 => (
            "InsecureRedirect",
            format!(
                "the https download of {uri} was redirected to plain http, which Berth refuses; fix the URL or the server{said}"
            ),
        ),
        2 => (
            "InvalidSource",
            format!("the download of {uri} was refused as given{said}"),
        ),
        _ => (
            "DownloadFailed",
            format!("the download of {uri} failed with exit code {code}{said}"),
        ),
    };
    Problem {
        reason: reason.into(),
        message: text,
        exit_code: Some(code),
    }
}

/// A reason a pod of a version will not come up on its own: it cannot be scheduled, its image
/// cannot be pulled, its configuration is broken, or it keeps crashing (`crash_restarts`
/// restarts or CrashLoopBackOff).
pub fn pod_problem(pod: &Pod, crash_restarts: i32) -> Option<Problem> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
        {
            let message = condition.message.clone().unwrap_or_default();
            // A volume still being provisioned and bound is a wait, not a failure.
            if message.contains("PersistentVolumeClaim") || message.contains("unbound") {
                continue;
            }
            return Some(Problem::new(
                "Unschedulable",
                format!(
                    "no node can run pod {}: {message}. Ask for fewer GPUs, less CPU or memory, or ask a platform admin for capacity",
                    pod.metadata.name.clone().unwrap_or_default()
                ),
            ));
        }
    }
    let containers: Vec<&ContainerStatus> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .collect();
    for container in containers {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        let reason = waiting.and_then(|w| w.reason.clone()).unwrap_or_default();
        let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                return Some(Problem::new(
                    "ImagePullFailed",
                    format!(
                        "image {} cannot be pulled ({reason}: {message}); check the image name and that the registry lets the cluster pull it",
                        container.image
                    ),
                ));
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                return Some(Problem::new(
                    "ConfigError",
                    format!("container {} cannot start: {message}", container.name),
                ));
            }
            _ => {}
        }
        if reason == "CrashLoopBackOff" || container.restart_count >= crash_restarts {
            let last = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            let exit = last
                .map(|t| {
                    format!(
                        "; last exit code {}{}",
                        t.exit_code,
                        t.message
                            .as_deref()
                            .filter(|m| !m.is_empty())
                            .map(|m| format!(": {}", m.trim()))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            return Some(Problem {
                reason: "CrashLoop".into(),
                message: format!(
                    "the model server keeps crashing ({} restarts{exit}); check that the model suits the runtime and the logs of pod {}",
                    container.restart_count,
                    pod.metadata.name.clone().unwrap_or_default()
                ),
                exit_code: last.map(|t| t.exit_code),
            });
        }
    }
    None
}

/// The first problem among the pods of `version`.
pub fn version_problem(pods: &[&Pod], version: &str, crash_restarts: i32) -> Option<Problem> {
    pods.iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(VERSION))
                .is_some_and(|v| v == version)
        })
        .find_map(|p| pod_problem(p, crash_restarts))
}

/// What a Deployment's status says.
pub fn serving(deployment: &Deployment) -> Serving {
    let spec = deployment.spec.clone().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let template_version = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(VERSION))
        .cloned();
    let replicas = spec.replicas.unwrap_or(1);
    let current = status.observed_generation >= deployment.metadata.generation;
    let conditions = status.conditions.unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    // Availability is about the replicas that run, whatever spec the controller has seen: it
    // stays true while a new template rolls out (maxUnavailable 0).
    let available = condition("Available").is_some_and(|c| c.status == "True");
    let rolled_out = current
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.ready_replicas.unwrap_or(0) == replicas;
    let progress_deadline_exceeded = condition("Progressing").is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    let replica_failure = condition("ReplicaFailure")
        .filter(|c| c.status == "True")
        .map(|c| c.message.clone().unwrap_or_default());
    Serving {
        template_version,
        replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        rolled_out,
        available,
        progress_deadline_exceeded,
        replica_failure,
    }
}
