//! The notebook row and detail page: phase, image notice, URL, conditions, actions and their
//! patches.

use berth_api::notebook::Notebook;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::form::{Action, apply_merge_patch, merge_patch};
use super::notebooks::{ago, event_views, notebook_url, notebook_view, pod_view, resources_text};

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn notebook(spec: Value, status: Value, annotations: Value) -> Notebook {
    serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": "team-a", "generation": 3, "annotations": annotations},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn ready(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-30T11:00:00Z", "observedGeneration": 3})
}

fn kinds(actions: &[Action]) -> Vec<&str> {
    actions.iter().map(|a| a.kind).collect()
}

fn action<'a>(actions: &'a [Action], kind: &str) -> &'a Action {
    actions.iter().find(|a| a.kind == kind).unwrap()
}

#[test]
fn a_running_notebook_opens_stops_and_deletes() {
    let nb = notebook(
        json!({"template": "jupyter", "imageId": "py310", "bundle": "small"}),
        json!({"phase": "Running", "observedGeneration": 3, "url": "/notebook/team-a/lab/",
        "image": "berth.dev/jupyter:1", "template": "jupyter", "imageId": "py311", "bundle": "small",
        "lastActivity": "2026-11-30T11:55:00Z",
        "conditions": [
            {"type": "ImageCurrent", "status": "False", "reason": "Redirected",
             "message": "image py310 is redirected to py311: Python 3.10 is retired",
             "lastTransitionTime": "2026-11-30T11:00:00Z"},
            ready("True", "Running", "JupyterLab answers at /notebook/team-a/lab/lab"),
        ]}),
        json!({}),
    );
    let v = notebook_view(&nb, None, &[], now());
    assert_eq!(v.phase, "Running");
    assert_eq!(v.phase_text, "Running");
    assert_eq!(v.image, "berth.dev/jupyter:1");
    assert_eq!(v.image_id, "py311", "after the redirect");
    assert_eq!(
        v.image_notice.as_deref(),
        Some("image py310 is redirected to py311: Python 3.10 is retired")
    );
    assert_eq!(v.bundle, "small");
    assert_eq!(v.url.as_deref(), Some("/notebook/team-a/lab/"));
    assert!(v.open && !v.stopped && !v.culled && v.up_to_date);
    assert_eq!(v.last_activity_ago.as_deref(), Some("5m ago"));
    assert_eq!(
        v.idle.as_deref(),
        Some("last active 5m ago; stopped after the template's idle timeout")
    );
    assert_eq!(v.conditions[0].type_, "Ready", "Ready first");
    assert_eq!(
        v.conditions[1].headline,
        "Runs a newer image than asked for"
    );
    assert!(!v.conditions[1].ok);
    assert_eq!(kinds(&v.actions), ["open", "stop", "delete"]);
    assert_eq!(
        action(&v.actions, "open").href.as_deref(),
        Some("/notebook/team-a/lab/lab")
    );
    let stop = action(&v.actions, "stop");
    assert_eq!(
        (stop.method, stop.patch.clone()),
        ("PATCH", Some(json!({"spec": {"stopped": true}})))
    );
    let delete = action(&v.actions, "delete");
    assert_eq!((delete.method, delete.patch.is_none()), ("DELETE", true));
    assert!(delete.note.contains("lab-home"));

    // The stop patch, applied as the API server applies a merge patch, changes only spec.stopped.
    let before = serde_json::to_value(&nb).unwrap();
    let mut after = before.clone();
    apply_merge_patch(&mut after, stop.patch.as_ref().unwrap());
    assert_eq!(
        merge_patch(&before, &after),
        json!({"spec": {"stopped": true}})
    );
}

#[test]
fn a_culled_notebook_resumes_with_stopped_false() {
    let nb = notebook(
        json!({"stopped": true, "idleTimeout": "30m"}),
        json!({"phase": "Culled", "observedGeneration": 3, "culledAt": "2026-11-30T10:00:00Z",
               "conditions": [ready("False", "Culled", "stopped after 30m idle; set spec.stopped to false to start it again")]}),
        json!({"berth.dev/culled-at": "2026-11-30T10:00:00Z"}),
    );
    let v = notebook_view(&nb, None, &[], now());
    assert!(v.culled && v.stopped && !v.open);
    assert_eq!(
        v.phase_text,
        "Stopped for being idle; its files stay. Start it to resume"
    );
    assert_eq!(v.culled_at.as_deref(), Some("2026-11-30T10:00:00Z"));
    assert_eq!(v.idle_timeout, "30m");
    assert_eq!(kinds(&v.actions), ["start", "delete"]);
    let start = action(&v.actions, "start");
    assert_eq!(start.label, "Resume");
    assert_eq!(start.patch, Some(json!({"spec": {"stopped": false}})));
    let mut after = serde_json::to_value(&nb).unwrap();
    apply_merge_patch(&mut after, start.patch.as_ref().unwrap());
    let after: Notebook = serde_json::from_value(after).unwrap();
    assert!(!after.spec.stopped);
    assert_eq!(
        after.spec.idle_timeout.as_deref(),
        Some("30m"),
        "nothing else changes"
    );
}

#[test]
fn a_stopped_or_new_notebook_offers_what_applies() {
    let stopped = notebook(
        json!({"stopped": true}),
        json!({"phase": "Stopped"}),
        json!({}),
    );
    let v = notebook_view(&stopped, None, &[], now());
    assert_eq!(kinds(&v.actions), ["start", "delete"]);
    assert_eq!(action(&v.actions, "start").label, "Start");
    assert!(!v.up_to_date, "no observedGeneration");
    assert_eq!(v.idle_timeout, "1h");

    let new = notebook(json!({"template": "jupyter"}), Value::Null, json!({}));
    let v = notebook_view(&new, None, &[], now());
    assert_eq!(v.phase, "Pending");
    assert_eq!(v.template, "jupyter");
    assert_eq!(v.idle_timeout, "the template's default");
    assert_eq!(
        kinds(&v.actions),
        ["stop", "delete"],
        "not running yet: no open"
    );

    let failed = notebook(
        json!({"resources": {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}, "limits": {"memory": "8Gi", "nvidia.com/gpu": "1"}}}),
        json!({"phase": "Failed", "conditions": [ready("False", "QuotaExceeded", "needs requests.memory 8Gi but the project has 2Gi of 16Gi left")]}),
        json!({}),
    );
    let v = notebook_view(&failed, None, &[], now());
    assert_eq!(v.phase_text, "Cannot start: see why below");
    assert_eq!(v.conditions[0].headline, "Does not fit the project's quota");
    assert!(v.conditions[0].message.contains("2Gi of 16Gi"));
    assert_eq!(v.resources, "2 CPUs, 8 GiB, nvidia.com/gpu 1");
    assert_eq!(kinds(&v.actions), ["stop", "delete"]);
}

#[test]
fn urls_only_for_names_the_console_serves() {
    assert_eq!(
        notebook_url("team-a", "lab").as_deref(),
        Some("/notebook/team-a/lab/")
    );
    for (ns, name) in [
        ("Team", "lab"),
        ("team", "../x"),
        ("", "lab"),
        ("team", "a/b"),
        ("team", "<x>"),
    ] {
        assert_eq!(notebook_url(ns, name), None, "{ns}/{name}");
    }
    // What the view links to, the console's path parser accepts as that notebook.
    let p = crate::path::parse(&notebook_url("team-a", "lab").unwrap()).unwrap();
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str(), p.bare),
        ("team-a", "lab", false)
    );
}

#[test]
fn html_in_messages_stays_raw_text() {
    let nb = notebook(
        json!({"image": "x<script>"}),
        json!({"phase": "Failed", "conditions": [ready("False", "<b>Odd</b>", "a & b <i>\"c\"</i>")]}),
        json!({}),
    );
    let v = notebook_view(&nb, None, &[], now());
    assert_eq!(v.image, "x<script>");
    assert_eq!(v.conditions[0].reason, "<b>Odd</b>");
    assert_eq!(
        v.conditions[0].headline, "<b>Odd</b>",
        "an unknown reason is shown as it is"
    );
    assert_eq!(v.conditions[0].message, "a & b <i>\"c\"</i>");
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        !json.contains("&amp;") && !json.contains("&lt;"),
        "nothing pre-escaped: {json}"
    );
}

#[test]
fn events_newest_first_and_bounded() {
    let event = |reason: &str, at: &str| -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": reason}, "involvedObject": {},
            "type": "Warning", "reason": reason, "message": format!("{reason} happened"),
            "lastTimestamp": at, "count": 2,
        }))
        .unwrap()
    };
    let events = [
        event("Old", "2026-11-30T09:00:00Z"),
        event("New", "2026-11-30T11:00:00Z"),
        event("Mid", "2026-11-30T10:00:00Z"),
    ];
    let v = event_views(&events, 2);
    let reasons: Vec<&str> = v.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["New", "Mid"]);
    assert_eq!((v[0].count, v[0].type_.as_str()), (2, "Warning"));
    assert_eq!(v[0].when.as_deref(), Some("2026-11-30T11:00:00Z"));
}

#[test]
fn ages_and_resources_read_as_words() {
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    assert_eq!(ago(t("2026-11-30T11:59:48Z"), now()), "12s ago");
    assert_eq!(ago(t("2026-11-30T09:00:00Z"), now()), "3h ago");
    assert_eq!(ago(t("2026-11-28T12:00:00Z"), now()), "2d ago");
    assert_eq!(ago(t("2026-11-30T12:00:05Z"), now()), "just now");
    let r =
        serde_json::from_value(json!({"requests": {"cpu": "500m", "memory": "1536Mi"}})).unwrap();
    assert_eq!(resources_text(&r), "0.5 CPU, 1.5 GiB");
}

#[test]
fn the_idle_line_counts_down_to_the_cull() {
    let nb = notebook(
        json!({"idleTimeout": "30m"}),
        json!({"phase": "Running", "lastActivity": "2026-11-30T11:55:00Z"}),
        json!({}),
    );
    let v = notebook_view(&nb, None, &[], now());
    assert_eq!(
        v.idle.as_deref(),
        Some("last active 5m ago; stopped after 30m idle (in about 25m)")
    );
    let nb = notebook(
        json!({"idleTimeout": "1m"}),
        json!({"phase": "Running", "lastActivity": "2026-11-30T11:55:00Z"}),
        json!({}),
    );
    assert!(
        notebook_view(&nb, None, &[], now())
            .idle
            .unwrap()
            .ends_with("(soon)")
    );
    let stopped = notebook(
        json!({"stopped": true}),
        json!({"phase": "Stopped", "lastActivity": "2026-11-30T11:55:00Z"}),
        json!({}),
    );
    assert!(notebook_view(&stopped, None, &[], now()).idle.is_none());
}

#[test]
fn the_pod_reads_as_words() {
    let pod = |status: Value| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(json!({"metadata": {"name": "lab-0"}, "spec": {"containers": [], "nodeName": "node-1"}, "status": status})).unwrap()
    };
    let crashing = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "sidecar", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {}}},
        {"name": "notebook", "ready": false, "restartCount": 4, "image": "x", "imageID": "",
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s <restarting>"}}}]}));
    let v = pod_view(&crashing);
    assert_eq!(
        (v.name.as_str(), v.node.as_str(), v.ready, v.restarts),
        ("lab-0", "node-1", false, 4)
    );
    assert_eq!(
        v.state,
        "Waiting: CrashLoopBackOff: back-off 1m20s <restarting>"
    );
    let running = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "notebook", "ready": true, "restartCount": 0, "image": "x", "imageID": "",
         "state": {"running": {"startedAt": "2026-11-30T11:00:00Z"}}}]}));
    assert_eq!(
        pod_view(&running).state,
        "Running since 2026-11-30T11:00:00Z"
    );
    let exited = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "notebook", "ready": false, "restartCount": 1, "image": "x", "imageID": "",
         "state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}));
    assert_eq!(pod_view(&exited).state, "Exited: Error (exit code 1)");
    let pending = pod(json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}));
    assert_eq!(
        pod_view(&pending).state,
        "Waiting for a node: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    );
    let nb = notebook(json!({}), json!({"phase": "Starting"}), json!({}));
    let v = notebook_view(&nb, Some(&pending), &[], now());
    assert_eq!(v.pod.unwrap().name, "lab-0");
}
