//! The spawner's view: which templates a project is offered, and how they read.

use std::collections::BTreeMap;

use berth_api::notebook_template::ProjectSelector;
use serde_json::json;

use super::spawner::spawner;
use super::tests_spawn::{gpu_lab, labels, templates};

#[test]
fn the_spawner_offers_the_templates_the_namespace_labels_select() {
    let s = spawner(&templates(), &labels("team-a", Some("a100")));
    let names: Vec<&str> = s.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fixed", "gpu-lab", "jupyter"]);
    assert_eq!(s.default_template.as_deref(), Some("jupyter"));
    assert!(!s.without_template, "a default template exists");
    assert!(s.templates.iter().any(|t| t.name == "jupyter" && t.default));

    // Without the tier label gpu-lab is not offered; team-b sees its own template.
    let s = spawner(&templates(), &labels("team-a", None));
    assert!(!s.templates.iter().any(|t| t.name == "gpu-lab"));
    let s = spawner(&templates(), &labels("team-b", None));
    assert!(s.templates.iter().any(|t| t.name == "team-b-only"));
    // A namespace with no labels (one Berth does not manage) gets only unrestricted templates.
    let s = spawner(&templates(), &BTreeMap::new());
    let names: Vec<&str> = s.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fixed", "jupyter"]);
    // No default template anywhere: a notebook may run without one.
    assert!(spawner(&[gpu_lab()], &labels("team-a", Some("a100"))).without_template);
}

#[test]
fn the_selector_cases_of_the_controller_hold() {
    // ProjectSelector::matches is the controller's own matcher; these are its cases.
    let sel = |v: serde_json::Value| -> ProjectSelector { serde_json::from_value(v).unwrap() };
    let a = labels("team-a", Some("a100"));
    let b = labels("team-b", None);
    let in_b = sel(
        json!({"matchExpressions": [{"key": "berth.dev/project", "operator": "In", "values": ["team-b"]}]}),
    );
    assert!(!in_b.matches(&a) && in_b.matches(&b));
    let not_in = sel(
        json!({"matchExpressions": [{"key": "platform.example.com/gpu-tier", "operator": "NotIn", "values": ["a100"]}]}),
    );
    assert!(
        !not_in.matches(&a) && not_in.matches(&b),
        "NotIn holds for an absent label"
    );
    let exists = sel(
        json!({"matchExpressions": [{"key": "platform.example.com/gpu-tier", "operator": "Exists"}]}),
    );
    assert!(exists.matches(&a) && !exists.matches(&b));
    let absent = sel(
        json!({"matchExpressions": [{"key": "platform.example.com/gpu-tier", "operator": "DoesNotExist"}]}),
    );
    assert!(!absent.matches(&a) && absent.matches(&b));
    let both = sel(
        json!({"matchLabels": {"berth.dev/project": "team-a"}, "matchExpressions": [{"key": "platform.example.com/gpu-tier", "operator": "Exists"}]}),
    );
    assert!(both.matches(&a) && !both.matches(&labels("team-a", None)));
    assert!(!both.matches(&BTreeMap::new()));
}

#[test]
fn the_spawner_shows_images_bundles_maxima_and_idle_bounds() {
    let s = spawner(&templates(), &labels("team-a", Some("a100")));
    let gpu = s.templates.iter().find(|t| t.name == "gpu-lab").unwrap();
    assert_eq!(gpu.display_name, "A100 lab");
    let ids: Vec<&str> = gpu.images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        ["py311-cu124", "py310-cu121", "py311-cu118"],
        "hidden left out"
    );
    let current = &gpu.images[0];
    assert!(current.selected && current.note.is_empty());
    assert_eq!(current.display_name, "Python 3.11, CUDA 12.4");
    assert_eq!(
        current.labels,
        [
            ("cuda".to_owned(), "12.4".to_owned()),
            ("python".to_owned(), "3.11".to_owned())
        ]
    );
    assert_eq!(
        gpu.images[1].note,
        "→ py311-cu124: CUDA 12.1 is retired; your notebook now runs CUDA 12.4"
    );
    assert_eq!(gpu.images[1].redirect_to.as_deref(), Some("py311-cu124"));
    assert!(gpu.images[2].deprecated && gpu.images[2].note == "deprecated");
    assert!(!gpu.images[1].selected && !gpu.images[2].selected);

    let small = &gpu.bundles[0];
    assert!(small.selected);
    assert_eq!(
        (small.cpu.as_str(), small.memory.as_str()),
        ("2 CPUs", "8 GiB")
    );
    assert_eq!(small.display_name, "2 CPUs, 8 GiB");
    let a100 = &gpu.bundles[1];
    assert_eq!(
        a100.summary,
        "8 CPUs, 64 GiB, 1 × nvidia.com/gpu, /dev/shm 16 GiB"
    );
    assert_eq!(
        a100.display_name, a100.summary,
        "no display name: the summary"
    );

    let custom = gpu.custom.as_ref().unwrap();
    assert_eq!(custom.max_cpu.as_deref(), Some("16 CPUs"));
    assert_eq!(custom.max_memory.as_deref(), Some("128 GiB"));
    assert_eq!(custom.gpus, [("nvidia.com/gpu".to_owned(), "2".to_owned())]);
    assert!(!gpu.allow_custom_images);
    assert_eq!(
        (
            gpu.idle_timeout.default.as_str(),
            gpu.idle_timeout.minimum.as_str(),
            gpu.idle_timeout.maximum.as_str()
        ),
        ("2h", "10m", "24h")
    );
    let jupyter = s.templates.iter().find(|t| t.name == "jupyter").unwrap();
    assert!(jupyter.allow_custom_images);
    assert_eq!(jupyter.bundles[0].cpu, "0.5 CPU");
    assert_eq!(jupyter.bundles[0].memory, "2 GiB");
    assert_eq!(
        (
            jupyter.idle_timeout.default.as_str(),
            jupyter.idle_timeout.minimum.as_str(),
            jupyter.idle_timeout.maximum.as_str()
        ),
        ("1h", "10s", "168h")
    );
}

#[test]
fn no_field_of_the_spawner_is_escaped_or_marked_safe() {
    const H: &str = "<i x=\"1\">&'</i>";
    let t = super::tests_spawn::template(
        "t",
        true,
        json!({
            "displayName": H, "description": H,
            "images": [{"id": "a", "image": H, "displayName": H, "labels": {H: H}},
                       {"id": "b", "image": H, "redirect": {"to": "a", "message": H}}],
            "defaultImage": "a",
            "bundles": [{"id": "x", "displayName": H, "resources": {}}],
            "defaultBundle": "x",
            "custom": {"maximum": {H: "1"}},
        }),
    );
    let v = serde_json::to_value(spawner(&[t], &BTreeMap::new())).unwrap();
    let mut all = Vec::new();
    super::tests_models::strings(&v, &mut all);
    assert!(all.iter().filter(|s| s.contains(H)).count() >= 9, "{all:?}");
    for s in &all {
        for e in super::tests_models::ESCAPED {
            assert!(!s.contains(e), "{s:?} holds {e}");
        }
    }
}
