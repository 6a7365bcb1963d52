//! A notebook's row and detail page: its phase in plain words, what it runs, where to open it,
//! its conditions with what to do, its idle state, and the actions that apply with the exact
//! merge patch each sends (start and stop are `spec.stopped`, as `kubectl patch` does it).

use berth_api::notebook::{DEFAULT_IDLE_TIMEOUT, Notebook, NotebookPhase};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::json;

use super::form::{Action, bytes_text, cpu_text, human_duration, parse_duration};
use crate::path::{PREFIX, is_dns_label};

/// The content type of every patch an [`Action`] carries.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// One notebook, ready to print. Every string is raw text; the template escapes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NotebookView {
    pub name: String,
    pub namespace: String,
    /// `Running`, `Stopped`, … as in status; `Pending` before the controller has written one.
    pub phase: String,
    /// The phase in plain words, such as "Stopped for being idle; start it to resume with its
    /// files".
    pub phase_text: String,
    /// The template in use (status), else asked for (spec); empty without.
    pub template: String,
    /// The image reference that runs (status), else what the spec names.
    pub image: String,
    /// The template's image id in use, after redirects; empty for a custom image.
    pub image_id: String,
    /// Why the image is not the one asked for or is on its way out (the ImageCurrent condition's
    /// message: redirected or deprecated); `None` when current.
    pub image_notice: Option<String>,
    /// The bundle in use, such as `medium`; empty with explicit resources or none.
    pub bundle: String,
    /// Explicit resources in words, such as `2 CPUs, 8 GiB, nvidia.com/gpu 1`; empty with a
    /// bundle.
    pub resources: String,
    /// The console path JupyterLab answers under, `/notebook/<namespace>/<name>/`; `None` if
    /// the names could not make a path the console serves.
    pub url: Option<String>,
    /// Whether JupyterLab answers now (phase Running).
    pub open: bool,
    /// `spec.stopped`.
    pub stopped: bool,
    /// Stopped by Berth for being idle (phase Culled, or the culled-at annotation).
    pub culled: bool,
    /// When Berth culled it (RFC 3339), if it did.
    pub culled_at: Option<String>,
    /// The last activity Jupyter reported (RFC 3339).
    pub last_activity: Option<String>,
    /// The same, relative to `now`: `5m ago`.
    pub last_activity_ago: Option<String>,
    /// The idle timeout asked for (`idleTimeout`), or `the template's default` / `1h`.
    pub idle_timeout: String,
    /// While it runs: how idle it is and when Berth stops it, such as "last active 5m ago;
    /// stopped after 30m idle (in about 25m)"; `None` when stopped or not known.
    pub idle: Option<String>,
    /// Its pod, when the caller passed it.
    pub pod: Option<PodView>,
    /// Whether the status describes the current spec (observedGeneration = generation); false
    /// right after a change.
    pub up_to_date: bool,
    /// The conditions, Ready first.
    pub conditions: Vec<ConditionView>,
    /// Recent Events of the notebook, newest first (only what the caller passed).
    pub events: Vec<EventView>,
    /// What the user may ask for now; the API server still decides.
    pub actions: Vec<Action>,
}

/// A condition in plain words.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionView {
    /// `Ready`, `ImageCurrent`, …
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Whether this is good news (True for every condition Berth sets on notebooks).
    pub ok: bool,
    /// The one-word reason, such as `QuotaExceeded`.
    pub reason: String,
    /// The reason in a few words, such as "Does not fit the project's quota".
    pub headline: String,
    /// Berth's message: what happened and what to do.
    pub message: String,
    /// When it last changed (RFC 3339).
    pub since: String,
}

/// The notebook's pod in plain words.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodView {
    pub name: String,
    /// The node it runs on; empty while unscheduled.
    pub node: String,
    /// Whether JupyterLab's container is ready.
    pub ready: bool,
    /// How often JupyterLab's container restarted.
    pub restarts: i32,
    /// `Running since <time>`, `Waiting: <reason>: <message>`, `Exited: <reason> (exit code
    /// <n>)`, or the scheduler's word while no node is found.
    pub state: String,
}

/// The name of JupyterLab's container in a notebook's pod (the controller's
/// `notebook::build::CONTAINER`).
pub const CONTAINER: &str = "notebook";

/// A notebook's pod in plain words.
pub fn pod_view(pod: &Pod) -> PodView {
    let status = pod.status.clone().unwrap_or_default();
    let container = status
        .container_statuses
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.name == CONTAINER)
        .cloned();
    let unscheduled = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        .map(|c| {
            format!(
                "Waiting for a node: {}",
                c.message.clone().unwrap_or_default()
            )
        });
    let state = container
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .map(|s| {
            if let Some(r) = &s.running {
                format!(
                    "Running since {}",
                    r.started_at.as_ref().map(time).unwrap_or_default()
                )
            } else if let Some(w) = &s.waiting {
                let reason = w.reason.clone().unwrap_or_default();
                match w.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("Waiting: {reason}: {m}"),
                    _ => format!("Waiting: {reason}"),
                }
            } else if let Some(t) = &s.terminated {
                format!(
                    "Exited: {} (exit code {})",
                    t.reason.clone().unwrap_or_default(),
                    t.exit_code
                )
            } else {
                String::new()
            }
        })
        .or(unscheduled)
        .unwrap_or_else(|| status.phase.clone().unwrap_or_default());
    PodView {
        name: pod.name_any(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        ready: container.as_ref().is_some_and(|c| c.ready),
        restarts: container.as_ref().map_or(0, |c| c.restart_count),
        state,
    }
}

/// An Event in plain words.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// How often it happened.
    pub count: i32,
    /// When it last happened (RFC 3339), if known.
    pub when: Option<String>,
}

/// The phase in plain words.
pub fn phase_text(phase: Option<NotebookPhase>) -> &'static str {
    match phase {
        None => "Waiting for Berth to look at it",
        Some(NotebookPhase::Starting) => "Starting: JupyterLab is not answering yet",
        Some(NotebookPhase::Running) => "Running",
        Some(NotebookPhase::Stopping) => "Stopping: its pod is going; its files stay",
        Some(NotebookPhase::Stopped) => "Stopped; its files stay. Start it to resume",
        Some(NotebookPhase::Culled) => "Stopped for being idle; its files stay. Start it to resume",
        Some(NotebookPhase::Failed) => "Cannot start: see why below",
    }
}

/// A condition reason of a notebook in a few words (the message says what to do). Unknown
/// reasons are given as they are.
pub fn reason_headline(reason: &str) -> String {
    let text = match reason {
        "Running" => "JupyterLab answers",
        "Starting" => "Starting",
        "Stopping" => "Stopping",
        "Stopped" => "Stopped by its user",
        "Culled" => "Stopped for being idle",
        "Unschedulable" => "No node has room for it",
        "ImagePullFailed" => "Its image cannot be pulled",
        "ConfigError" => "Its container cannot be configured",
        "CrashLoop" => "JupyterLab keeps exiting",
        "QuotaExceeded" => "Does not fit the project's quota",
        "HomeVolumeTaken" => "Its home volume's name is taken",
        "InvalidIdleTimeout" => "Its idle timeout is not allowed",
        "TemplateNotFound" => "Its template does not exist",
        "AmbiguousDefaultTemplate" => "Two templates are marked as the default",
        "TemplateNotAllowed" => "Its template is not offered to this project",
        "UnknownImage" => "Its image id is not in the template",
        "UnknownBundle" => "Its bundle is not in the template",
        "ImageRedirectLoop" => "The template's image redirects loop",
        "CustomImageNotAllowed" => "The template allows only its own images",
        "CustomResourcesNotAllowed" => "The template allows only its bundles",
        "ResourcesAboveMaximum" => "Asks for more than the template allows",
        "InvalidVolume" => "A volume is not valid",
        "InvalidActivityProbe" => "Its activity probe is not valid",
        "VolumeNotFound" => "A volume's claim does not exist",
        "VolumeLost" => "A volume's storage is gone",
        "VolumeAccessMode" => "A volume's access mode does not allow this mount",
        "VolumeInUse" => "A volume is in use by another pod",
        "VolumeNotAllowed" => "A volume may not be mounted here",
        "VolumeTaken" => "A new volume's name is taken",
        "Redirected" => "Runs a newer image than asked for",
        "Deprecated" => "Its image is deprecated",
        "Current" => "Its image is current",
        other => return other.to_owned(),
    };
    text.to_owned()
}

fn time(t: &Time) -> String {
    t.0.to_string()
}

/// `now - t` as `12s ago`, `5m ago`, `3h ago`, `2d ago`; `just now` for a time ahead of `now`.
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = now.as_second() - t.as_second();
    match s {
        i64::MIN..=0 => "just now".to_owned(),
        1..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// A condition of any Berth kind, in plain words, with `headline` from `headline_of`.
pub fn condition_view(c: &Condition, headline_of: fn(&str) -> String) -> ConditionView {
    ConditionView {
        type_: c.type_.clone(),
        status: c.status.clone(),
        ok: c.status == "True",
        headline: headline_of(&c.reason),
        reason: c.reason.clone(),
        message: c.message.clone(),
        since: time(&c.last_transition_time),
    }
}

/// Events in plain words, newest first, at most `limit`.
pub fn event_views(events: &[Event], limit: usize) -> Vec<EventView> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .or(e.first_timestamp.as_ref())
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
    };
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(when(e)));
    sorted
        .into_iter()
        .take(limit)
        .map(|e| EventView {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1),
            when: when(e).map(|t| t.to_string()),
        })
        .collect()
}

/// The console path of a notebook, `/notebook/<namespace>/<name>/` (what `path::parse`
/// accepts), or `None` when either is not a DNS label.
pub fn notebook_url(namespace: &str, name: &str) -> Option<String> {
    (is_dns_label(namespace) && is_dns_label(name)).then(|| format!("{PREFIX}{namespace}/{name}/"))
}

/// Start: `{"spec":{"stopped":false}}` (the controller then drops the culled-at mark).
pub fn start_patch() -> serde_json::Value {
    json!({"spec": {"stopped": false}})
}

/// Stop: `{"spec":{"stopped":true}}`.
pub fn stop_patch() -> serde_json::Value {
    json!({"spec": {"stopped": true}})
}

/// The notebook's view. `pod` is its pod (`<name>-0`) and `events` its Events, when the caller
/// read them (`None` and `&[]` for a list row); `now` the time ages are counted from.
pub fn notebook_view(
    notebook: &Notebook,
    pod: Option<&Pod>,
    events: &[Event],
    now: Timestamp,
) -> NotebookView {
    let name = notebook.name_any();
    let namespace = notebook.namespace().unwrap_or_default();
    let spec = &notebook.spec;
    let status = notebook.status.clone().unwrap_or_default();
    let phase = status.phase;
    let culled = phase == Some(NotebookPhase::Culled)
        || notebook
            .annotations()
            .contains_key(berth_api::notebook::CULLED_AT_ANNOTATION);
    let mut conditions: Vec<ConditionView> = status
        .conditions
        .iter()
        .map(|c| condition_view(c, reason_headline))
        .collect();
    conditions.sort_by_key(|c| c.type_ != "Ready");
    let image_notice = status
        .conditions
        .iter()
        .find(|c| c.type_ == "ImageCurrent" && c.status == "False")
        .map(|c| c.message.clone());
    let url = notebook_url(&namespace, &name);
    let open = phase == Some(NotebookPhase::Running);

    let mut actions = Vec::new();
    if open && let Some(href) = &url {
        actions.push(Action {
            kind: "open",
            label: "Open".into(),
            method: "GET",
            patch: None,
            href: Some(format!("{href}lab")),
            note: String::new(),
        });
    }
    if spec.stopped {
        actions.push(Action {
            kind: "start",
            label: if culled { "Resume" } else { "Start" }.into(),
            method: "PATCH",
            patch: Some(start_patch()),
            href: None,
            note: "starts it again with its files".into(),
        });
    } else {
        actions.push(Action {
            kind: "stop",
            label: "Stop".into(),
            method: "PATCH",
            patch: Some(stop_patch()),
            href: None,
            note: "its pod goes; its files stay on its home volume".into(),
        });
    }
    actions.push(Action {
        kind: "delete",
        label: "Delete".into(),
        method: "DELETE",
        patch: None,
        href: None,
        note: format!(
            "the home volume {name}-home and new data volumes stay (a notebook of the same name finds them again); delete them with kubectl when their data may go"
        ),
    });

    // The timeout in force, when the notebook says it (or has no template: 1h).
    let timeout = match (&spec.idle_timeout, &spec.template) {
        (Some(t), _) => parse_duration(t),
        (None, None) => parse_duration(DEFAULT_IDLE_TIMEOUT),
        (None, Some(_)) => None,
    };
    let idle = match (open, status.last_activity.as_ref()) {
        (true, Some(last)) => {
            let since = ago(last.0, now);
            Some(match timeout {
                Some(t) => {
                    let idle_secs =
                        u64::try_from(now.as_second() - last.0.as_second()).unwrap_or(0);
                    let left = t.as_secs().saturating_sub(idle_secs);
                    let when = if left == 0 {
                        "soon".to_owned()
                    } else {
                        format!(
                            "in about {}",
                            human_duration(std::time::Duration::from_secs(left))
                        )
                    };
                    format!(
                        "last active {since}; stopped after {} idle ({when})",
                        human_duration(t)
                    )
                }
                None => format!("last active {since}; stopped after the template's idle timeout"),
            })
        }
        _ => None,
    };

    NotebookView {
        idle,
        pod: pod.map(pod_view),
        phase: phase.map_or("Pending", |p| p.as_str()).to_owned(),
        phase_text: phase_text(phase).to_owned(),
        template: status
            .template
            .clone()
            .or_else(|| spec.template.clone())
            .unwrap_or_default(),
        image: status
            .image
            .clone()
            .or_else(|| spec.image.clone())
            .or_else(|| spec.image_id.clone())
            .unwrap_or_default(),
        image_id: status
            .image_id
            .clone()
            .or_else(|| spec.image_id.clone())
            .unwrap_or_default(),
        image_notice,
        bundle: status
            .bundle
            .clone()
            .or_else(|| spec.bundle.clone())
            .unwrap_or_default(),
        resources: spec
            .resources
            .as_ref()
            .map(resources_text)
            .unwrap_or_default(),
        url,
        open,
        stopped: spec.stopped,
        culled,
        culled_at: status.culled_at.as_ref().map(time),
        last_activity: status.last_activity.as_ref().map(time),
        last_activity_ago: status.last_activity.as_ref().map(|t| ago(t.0, now)),
        idle_timeout: spec
            .idle_timeout
            .clone()
            .unwrap_or_else(|| match spec.template {
                Some(_) => "the template's default".to_owned(),
                None => DEFAULT_IDLE_TIMEOUT.to_owned(),
            }),
        up_to_date: status.observed_generation.is_some()
            && status.observed_generation == notebook.metadata.generation,
        conditions,
        events: event_views(events, 20),
        actions,
        name,
        namespace,
    }
}

/// Explicit resources in words: CPU and memory requests (a higher limit added), other
/// resources (GPUs) as `<resource> <count>`.
pub fn resources_text(r: &berth_api::notebook::NotebookResources) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = r.requests.get("cpu").or_else(|| r.limits.get("cpu")) {
        parts.push(cpu_text(&cpu.0));
    }
    if let Some(memory) = r.limits.get("memory").or_else(|| r.requests.get("memory")) {
        parts.push(bytes_text(&memory.0));
    }
    let mut others: Vec<(&String, &str)> = r
        .limits
        .iter()
        .chain(r.requests.iter())
        .filter(|(k, _)| k.as_str() != "cpu" && k.as_str() != "memory")
        .map(|(k, v)| (k, v.0.as_str()))
        .collect();
    others.sort();
    others.dedup_by_key(|(k, _)| *k);
    for (k, v) in others {
        parts.push(format!("{k} {v}"));
    }
    parts.join(", ")
}
