//! The template step: resolution, redirects, maxima, who may use a template, what reaches the pod,
//! and what an unschedulable pod says.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::json;

use berth_api::notebook::{Notebook, NotebookPhase};
use berth_api::notebook_template::{DEFAULT_TEMPLATE_ANNOTATION, NotebookTemplate};

use super::probe::Probe;
use super::status::{self, Observed};
use super::template::{self, IMAGE_CURRENT};
use super::validate::{self, Invalid, Validated};
use super::{build, scheduling};

fn template(name: &str, spec: serde_json::Value) -> Arc<NotebookTemplate> {
    let mut t: NotebookTemplate = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "NotebookTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    t.metadata.name = Some(name.into());
    Arc::new(t)
}

/// A template with three images (one redirected with a message, one deprecated, one hidden),
/// a CPU bundle and a GPU bundle, and custom maxima.
fn jupyter() -> Arc<NotebookTemplate> {
    template(
        "jupyter",
        json!({
            "displayName": "JupyterLab",
            "images": [
                {"id": "py311", "image": "berth.dev/jupyter:1"},
                {"id": "py310", "image": "berth.dev/jupyter:0", "redirect": {"to": "py311", "message": "Python 3.10 is retired"}},
                {"id": "old", "image": "berth.dev/jupyter:old", "deprecated": true},
                {"id": "secret", "image": "berth.dev/jupyter:s", "hidden": true},
            ],
            "defaultImage": "py311",
            "bundles": [
                {"id": "small", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}},
                {"id": "gpu", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}},
                 "gpu": {"resource": "nvidia.com/gpu", "count": 2}, "sharedMemory": "1Gi",
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                 "nodeSelector": {"gpu": "a100"},
                 "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}},
            ],
            "defaultBundle": "small",
            "custom": {"maximum": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}},
            "idleTimeout": {"defaultTimeout": "2h", "minimum": "10m", "maximum": "8h"},
        }),
    )
}

fn notebook(spec: serde_json::Value) -> Notebook {
    let mut nb: Notebook = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": "team-a"},
        "spec": spec,
    }))
    .unwrap();
    nb.metadata = ObjectMeta {
        name: Some("lab".into()),
        namespace: Some("team-a".into()),
        uid: Some("0000-1111".into()),
        generation: Some(2),
        ..Default::default()
    };
    nb
}

fn labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("berth.dev/project".to_owned(), project.to_owned())])
}

fn resolve(nb: &Notebook, templates: &[Arc<NotebookTemplate>]) -> Result<Validated, Invalid> {
    let team = labels("team-a");
    validate::validate(nb).and_then(|v| template::resolve(v, nb, templates, Some(&team)))
}

fn refused(result: Result<Validated, Invalid>) -> (&'static str, String) {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => (e.reason, e.message),
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

#[test]
fn the_named_template_gives_its_default_image_bundle_and_idle_timeout() {
    let v = resolve(&notebook(json!({"template": "jupyter"})), &[jupyter()]).unwrap();
    assert_eq!(v.image, "berth.dev/jupyter:1");
    assert_eq!(v.resources.requests.get("cpu"), Some(&q("500m")));
    assert_eq!(v.resources.limits.get("memory"), Some(&q("2Gi")));
    assert_eq!(v.idle_timeout, Duration::from_secs(2 * 3600));
    let r = v.template.unwrap();
    assert_eq!(r.template, "jupyter");
    assert_eq!(r.image_id.as_deref(), Some("py311"));
    assert_eq!(r.bundle.as_deref(), Some("small"));
    assert_eq!(r.notice, None);
}

#[test]
fn without_a_template_or_a_default_the_notebook_runs_as_before() {
    let nb =
        notebook(json!({"image": "example.com/lab:1", "resources": {"limits": {"memory": "1Gi"}}}));
    let v = resolve(&nb, &[jupyter()]).unwrap();
    assert_eq!(v.image, "example.com/lab:1");
    assert_eq!(v.template, None);
    // A bundle or image id without a template is not silently ignored.
    let (reason, message) = refused(resolve(&notebook(json!({"bundle": "gpu"})), &[jupyter()]));
    assert_eq!(reason, "TemplateNotFound");
    assert!(
        message.contains("set spec.template to one of: jupyter"),
        "{message}"
    );
    // With a default template, the same notebook is held to it: no custom images there.
    let mut default = (*jupyter()).clone();
    default
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(DEFAULT_TEMPLATE_ANNOTATION.into(), "true".into());
    let (reason, message) = refused(resolve(&nb, &[Arc::new(default.clone())]));
    assert_eq!(reason, "CustomImageNotAllowed");
    assert!(
        message.contains("py311") && !message.contains("secret"),
        "{message}"
    );
    // Two defaults: refused, naming both.
    let mut other = default.clone();
    other.metadata.name = Some("vscode".into());
    let (reason, message) = refused(resolve(
        &notebook(json!({})),
        &[Arc::new(default), Arc::new(other)],
    ));
    assert_eq!(reason, "AmbiguousDefaultTemplate");
    assert!(message.contains("jupyter, vscode"), "{message}");
}

#[test]
fn unknown_template_image_and_bundle_say_what_exists() {
    let (r, m) = refused(resolve(
        &notebook(json!({"template": "nope"})),
        &[jupyter()],
    ));
    assert_eq!(r, "TemplateNotFound");
    assert!(m.contains("jupyter"), "{m}");
    let (r, m) = refused(resolve(
        &notebook(json!({"template": "jupyter", "imageId": "py39"})),
        &[jupyter()],
    ));
    assert_eq!(r, "UnknownImage");
    assert!(
        m.contains("py311, py310, old") && !m.contains("secret"),
        "{m}"
    );
    let (r, m) = refused(resolve(
        &notebook(json!({"template": "jupyter", "bundle": "huge"})),
        &[jupyter()],
    ));
    assert_eq!(r, "UnknownBundle");
    assert!(m.contains("small, gpu"), "{m}");
}

#[test]
fn a_redirect_is_followed_and_said_and_a_deprecated_or_hidden_image_still_runs() {
    let v = resolve(
        &notebook(json!({"template": "jupyter", "imageId": "py310"})),
        &[jupyter()],
    )
    .unwrap();
    assert_eq!(v.image, "berth.dev/jupyter:1");
    let r = v.template.clone().unwrap();
    assert_eq!(r.image_id.as_deref(), Some("py311"));
    let (reason, message) = r.notice.unwrap();
    assert_eq!(reason, "Redirected");
    assert_eq!(
        message,
        "image py310 is redirected to py311: Python 3.10 is retired"
    );

    let v = resolve(
        &notebook(json!({"template": "jupyter", "imageId": "old"})),
        &[jupyter()],
    )
    .unwrap();
    assert_eq!(v.image, "berth.dev/jupyter:old");
    let (reason, message) = v.template.unwrap().notice.unwrap();
    assert_eq!(reason, "Deprecated");
    assert!(
        message.contains("py311") && !message.contains("py310"),
        "{message}"
    );

    let v = resolve(
        &notebook(json!({"template": "jupyter", "imageId": "secret"})),
        &[jupyter()],
    )
    .unwrap();
    assert_eq!(v.image, "berth.dev/jupyter:s");
}

#[test]
fn a_redirect_loop_is_refused_not_followed_forever() {
    let looping = template(
        "loop",
        json!({
            "displayName": "Loop",
            "images": [
                {"id": "a", "image": "x/a", "redirect": {"to": "b"}},
                {"id": "b", "image": "x/b", "redirect": {"to": "c"}},
                {"id": "c", "image": "x/c", "redirect": {"to": "a"}},
            ],
            "defaultImage": "a",
        }),
    );
    let (r, m) = refused(resolve(&notebook(json!({"template": "loop"})), &[looping]));
    assert_eq!(r, "ImageRedirectLoop");
    assert!(m.contains("a -> b -> c -> a"), "{m}");
}

#[test]
fn custom_resources_must_stay_within_the_maxima() {
    let ok = resolve(
        &notebook(json!({"template": "jupyter", "resources": {"requests": {"cpu": "4000m"}, "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"}}})),
        &[jupyter()],
    )
    .unwrap();
    assert_eq!(ok.resources.limits.get("nvidia.com/gpu"), Some(&q("1")));
    assert_eq!(ok.template.unwrap().bundle, None);

    let (r, m) = refused(resolve(
        &notebook(
            json!({"template": "jupyter", "resources": {"requests": {"cpu": "5"}, "limits": {"memory": "17Gi", "amd.com/gpu": "1"}}}),
        ),
        &[jupyter()],
    ));
    assert_eq!(r, "ResourcesAboveMaximum");
    assert!(
        m.contains("requests.cpu 5 is above the maximum 4")
            && m.contains("limits.memory 17Gi is above the maximum 16Gi")
            && m.contains("limits.amd.com/gpu is not offered"),
        "{m}"
    );

    let no_custom = template(
        "fixed",
        json!({"displayName": "Fixed", "images": [{"id": "a", "image": "x/a"}], "defaultImage": "a",
               "bundles": [{"id": "s"}], "defaultBundle": "s"}),
    );
    let (r, m) = refused(resolve(
        &notebook(json!({"template": "fixed", "resources": {"requests": {"cpu": "1"}}})),
        &[no_custom],
    ));
    assert_eq!(r, "CustomResourcesNotAllowed");
    assert!(m.ends_with("set spec.bundle to one of: s"), "{m}");
}

#[test]
fn the_idle_timeout_stays_within_the_templates_bounds() {
    let (r, m) = refused(resolve(
        &notebook(json!({"template": "jupyter", "idleTimeout": "5m"})),
        &[jupyter()],
    ));
    assert_eq!(r, "InvalidIdleTimeout");
    assert!(m.contains("10m to 8h"), "{m}");
    let v = resolve(
        &notebook(json!({"template": "jupyter", "idleTimeout": "30m"})),
        &[jupyter()],
    )
    .unwrap();
    assert_eq!(v.idle_timeout, Duration::from_secs(1800));
}

#[test]
fn only_the_selected_projects_may_use_a_template() {
    let mut gpu = (*jupyter()).clone();
    gpu.spec.projects = Some(
        serde_json::from_value(json!({"matchExpressions": [{"key": "berth.dev/project", "operator": "In", "values": ["team-b"]}]}))
            .unwrap(),
    );
    let templates = [Arc::new(gpu)];
    let nb = notebook(json!({"template": "jupyter"}));
    let (r, m) = refused(resolve(&nb, &templates));
    assert_eq!(r, "TemplateNotAllowed");
    assert!(m.contains("not offered to this project"), "{m}");
    let team_b = labels("team-b");
    let v =
        validate::validate(&nb).and_then(|v| template::resolve(v, &nb, &templates, Some(&team_b)));
    assert!(v.is_ok());
    // A namespace Berth does not manage (no labels known) is never selected.
    let v = validate::validate(&nb).and_then(|v| template::resolve(v, &nb, &templates, None));
    assert_eq!(v.unwrap_err().reason, "TemplateNotAllowed");
}

#[test]
fn the_gpu_bundle_reaches_the_pod() {
    let v = resolve(
        &notebook(json!({"template": "jupyter", "bundle": "gpu"})),
        &[jupyter()],
    )
    .unwrap();
    let sts = build::stateful_set(&v);
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let res = c.resources.clone().unwrap();
    assert_eq!(res.limits.unwrap().get("nvidia.com/gpu"), Some(&q("2")));
    assert_eq!(res.requests.unwrap().get("nvidia.com/gpu"), Some(&q("2")));
    assert_eq!(
        pod.tolerations.unwrap()[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
    assert_eq!(
        pod.node_selector.unwrap().get("gpu").map(String::as_str),
        Some("a100")
    );
    assert!(pod.affinity.unwrap().node_affinity.is_some());
    let shm = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "shm")
        .unwrap();
    let dir = shm.empty_dir.clone().unwrap();
    assert_eq!(dir.medium.as_deref(), Some("Memory"));
    assert_eq!(dir.size_limit, Some(q("1Gi")));
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "shm" && m.mount_path == scheduling::SHM_PATH)
    );
    // A CPU bundle leaves the pod's scheduling alone.
    let v = resolve(&notebook(json!({"template": "jupyter"})), &[jupyter()]).unwrap();
    let pod = build::stateful_set(&v).spec.unwrap().template.spec.unwrap();
    assert!(pod.tolerations.is_none() && pod.node_selector.is_none() && pod.affinity.is_none());
    assert_eq!(pod.volumes.unwrap().len(), 1);
}

#[test]
fn the_scheduler_message_is_read_for_the_resources_it_lacks() {
    assert_eq!(
        scheduling::insufficient(
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        ),
        vec!["nvidia.com/gpu"]
    );
    assert_eq!(
        scheduling::insufficient(
            "0/4 nodes are available: 1 Insufficient cpu, 2 Insufficient memory, 3 Insufficient cpu, 1 node(s) had untolerated taint {gpu: true}."
        ),
        vec!["cpu", "memory"]
    );
    assert!(
        scheduling::insufficient(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        )
        .is_empty()
    );
}

fn unschedulable_pod(message: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("lab-0".into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some(message.into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn an_unschedulable_gpu_notebook_names_the_gpu_resource_and_its_bundle() {
    let nb = notebook(json!({"template": "jupyter", "bundle": "gpu"}));
    let v = resolve(&nb, &[jupyter()]);
    let pod = unschedulable_pod(
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: not eligible.",
    );
    let observed = Observed {
        notebook: v.as_ref(),
        pod: Some(&pod),
        activity: None,
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let s = status::status(None, &observed, Some(2), Timestamp::UNIX_EPOCH);
    assert_eq!(s.phase, Some(NotebookPhase::Failed));
    let ready = berth_api::conditions::get(&s.conditions, status::READY).unwrap();
    assert_eq!(ready.reason, "Unschedulable");
    assert!(
        ready
            .message
            .starts_with("no node has enough nvidia.com/gpu (asks 2) for the notebook's pod lab-0")
            && ready.message.contains("pick a smaller bundle than gpu"),
        "{}",
        ready.message
    );
    assert_eq!(s.bundle.as_deref(), Some("gpu"));
    assert_eq!(s.template.as_deref(), Some("jupyter"));
}

#[test]
fn the_status_shows_the_template_image_id_bundle_and_the_redirect() {
    let nb = notebook(json!({"template": "jupyter", "imageId": "py310"}));
    let v = resolve(&nb, &[jupyter()]);
    let observed = Observed {
        notebook: v.as_ref(),
        pod: None,
        activity: None,
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let s = status::status(None, &observed, Some(2), Timestamp::UNIX_EPOCH);
    assert_eq!(s.image_id.as_deref(), Some("py311"));
    assert_eq!(s.image.as_deref(), Some("berth.dev/jupyter:1"));
    let current = berth_api::conditions::get(&s.conditions, IMAGE_CURRENT).unwrap();
    assert_eq!(
        (current.status.as_str(), current.reason.as_str()),
        ("False", "Redirected")
    );
    assert!(current.message.contains("Python 3.10 is retired"));
    // The same again writes nothing new.
    let again = status::status(
        Some(&s),
        &observed,
        Some(2),
        Timestamp::from_second(100).unwrap(),
    );
    assert_eq!(s, again);
    // Refused (here: the template is gone), the condition goes with the template's fields.
    let v = resolve(&nb, &[]);
    let observed = Observed {
        notebook: v.as_ref(),
        pod: None,
        activity: None,
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let refused = status::status(Some(&s), &observed, Some(2), Timestamp::UNIX_EPOCH);
    assert!(berth_api::conditions::get(&refused.conditions, IMAGE_CURRENT).is_none());
    assert_eq!(
        (refused.template.clone(), refused.image_id.clone()),
        (None, None)
    );
    // Without a template the condition goes.
    let plain = notebook(json!({}));
    let v = validate::validate(&plain);
    let observed = Observed {
        notebook: v.as_ref(),
        pod: None,
        activity: None,
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let s = status::status(Some(&s), &observed, Some(3), Timestamp::UNIX_EPOCH);
    assert!(berth_api::conditions::get(&s.conditions, IMAGE_CURRENT).is_none());
    assert_eq!(s.template, None);
}

#[test]
fn the_templates_activity_probe_applies_unless_the_notebook_sets_its_own() {
    let mut with_probe = (*jupyter()).clone();
    with_probe.spec.activity_probe = serde_json::from_value(
        json!({"exec": {"command": ["cat", "/tmp/last-activity"], "timeoutSeconds": 3}}),
    )
    .unwrap();
    let templates = [Arc::new(with_probe)];
    let v = resolve(&notebook(json!({"template": "jupyter"})), &templates).unwrap();
    assert_eq!(
        v.probe,
        Probe::Exec {
            command: vec!["cat".into(), "/tmp/last-activity".into()],
            timeout: Duration::from_secs(3),
        }
    );
    let own = notebook(json!({"template": "jupyter", "activityProbe": {"jupyter": {}}}));
    assert_eq!(resolve(&own, &templates).unwrap().probe, Probe::Jupyter);
    // Without a probe in the template, Jupyter's API.
    let plain = resolve(&notebook(json!({"template": "jupyter"})), &[jupyter()]).unwrap();
    assert_eq!(plain.probe, Probe::Jupyter);
}
