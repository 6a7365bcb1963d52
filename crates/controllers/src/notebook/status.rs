//! The last step's content: a notebook's status from what was observed. Pure.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use berth_api::conditions::{self, Status};
use berth_api::notebook::{NotebookPhase, NotebookStatus};

use super::activity::Activity;
use super::validate::{Invalid, Validated};
use crate::mlmodel::observe::pod_problem;

/// The condition that says whether JupyterLab answers.
pub const READY: &str = "Ready";

/// Restarts of the notebook's container that count as a crash loop.
pub const CRASH_RESTARTS: i32 = 3;

/// What was observed of one notebook.
pub struct Observed<'a> {
    /// The validated notebook, or why it is not valid.
    pub notebook: Result<&'a Validated, &'a Invalid>,
    /// The notebook's pod, if it exists.
    pub pod: Option<&'a Pod>,
    /// Jupyter's activity, when it was read in this pass.
    pub activity: Option<&'a Activity>,
    /// When Berth culled it, from the annotation.
    pub culled_at: Option<Timestamp>,
    /// The home volume's name is held by a volume that is not this notebook's home.
    pub home_taken: bool,
    /// Why the notebook is held or cannot start now (a data volume, the quota): a reason and
    /// what to do (`volumes`, `quota`).
    pub blocked: Option<&'a Invalid>,
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The status `previous` becomes. `generation` is the notebook's metadata.generation.
pub fn status(
    previous: Option<&NotebookStatus>,
    observed: &Observed<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> NotebookStatus {
    let previous = previous.cloned().unwrap_or_default();
    let mut next = NotebookStatus {
        observed_generation: generation,
        conditions: previous.conditions.clone(),
        last_activity: observed
            .activity
            .map(|a| {
                Time(
                    a.last_activity
                        .round(k8s_openapi::jiff::Unit::Second)
                        .unwrap_or(a.last_activity),
                )
            })
            .or(previous.last_activity.clone()),
        culled_at: observed.culled_at.map(Time).or(previous.culled_at.clone()),
        ..Default::default()
    };
    let (phase, reason, message): (NotebookPhase, &str, String) = match observed.notebook {
        Err(invalid) => (
            NotebookPhase::Failed,
            invalid.reason,
            invalid.message.clone(),
        ),
        Ok(nb) => {
            next.url = Some(nb.console_url.clone().unwrap_or_else(|| nb.path.clone()));
            next.image = Some(nb.image.clone());
            if observed.home_taken {
                (
                    NotebookPhase::Failed,
                    "HomeVolumeTaken",
                    format!(
                        "a PersistentVolumeClaim {} exists that Berth did not make for a notebook; rename the notebook or move that volume",
                        nb.home
                    ),
                )
            } else if let Some(blocked) = observed.blocked.filter(|b| {
                // A stopped notebook only says why it cannot exist (a volume name taken).
                !nb.stopped || b.reason == "VolumeTaken"
            }) {
                (
                    NotebookPhase::Failed,
                    blocked.reason,
                    blocked.message.clone(),
                )
            } else if nb.stopped {
                match observed.pod {
                    Some(_) => (
                        NotebookPhase::Stopping,
                        "Stopping",
                        "the notebook's pod is stopping; its home volume stays".to_owned(),
                    ),
                    None if nb.culled => (
                        NotebookPhase::Culled,
                        "Culled",
                        format!(
                            "stopped after {} idle; set spec.stopped to false to start it again with its home volume",
                            human(nb.idle_timeout)
                        ),
                    ),
                    None => (
                        NotebookPhase::Stopped,
                        "Stopped",
                        "stopped (spec.stopped is true); set it to false to start it again"
                            .to_owned(),
                    ),
                }
            } else {
                match observed.pod {
                    Some(pod) if ready(pod) => (
                        NotebookPhase::Running,
                        "Running",
                        match &nb.console_url {
                            Some(url) => format!(
                                "JupyterLab answers at {}: open {url} and log in (or kubectl port-forward -n {} svc/{} 8888:http, then open http://127.0.0.1:8888{}lab)",
                                nb.path, nb.namespace, nb.name, nb.path
                            ),
                            None => format!(
                                "JupyterLab answers at {}: kubectl port-forward -n {} svc/{} 8888:http, then open http://127.0.0.1:8888{}lab",
                                nb.path, nb.namespace, nb.name, nb.path
                            ),
                        },
                    ),
                    Some(pod) => match pod_problem(pod, CRASH_RESTARTS) {
                        Some(problem) if problem.reason == "CrashLoop" => (
                            NotebookPhase::Failed,
                            "CrashLoop",
                            crash_message(nb, pod, problem.exit_code),
                        ),
                        Some(problem) => (
                            NotebookPhase::Failed,
                            // The reasons pod_problem gives are fixed words.
                            match problem.reason.as_str() {
                                "Unschedulable" => "Unschedulable",
                                "ImagePullFailed" => "ImagePullFailed",
                                _ => "ConfigError",
                            },
                            super::scheduling::unschedulable(nb, pod).unwrap_or(problem.message),
                        ),
                        None => (
                            NotebookPhase::Starting,
                            "Starting",
                            "the notebook's pod is starting".to_owned(),
                        ),
                    },
                    None => (
                        NotebookPhase::Starting,
                        "Starting",
                        "waiting for the notebook's pod to be created".to_owned(),
                    ),
                }
            }
        }
    };
    next.phase = Some(phase);
    super::template::status(observed.notebook.ok(), &mut next, generation, now);
    let ready_status = if phase == NotebookPhase::Running {
        Status::True
    } else {
        Status::False
    };
    conditions::set(
        &mut next.conditions,
        READY,
        ready_status,
        reason,
        &message,
        generation,
        now,
    );
    next
}

/// What a notebook that keeps crashing says: restarts, the last exit code, where the logs are.
/// (pod_problem's own message speaks of a model server.)
fn crash_message(nb: &Validated, pod: &Pod, exit_code: Option<i32>) -> String {
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    let exit = exit_code
        .map(|code| format!(", last exit code {code}"))
        .unwrap_or_default();
    format!(
        "JupyterLab keeps exiting ({restarts} restarts{exit}); see `kubectl logs -n {} {} --previous`",
        nb.namespace,
        pod.metadata.name.clone().unwrap_or_default()
    )
}

/// `90s`, `5m`, `1h30m`: a duration as the spec writes it.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}
