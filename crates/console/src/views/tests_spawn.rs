//! The spawner's view and form: what a project is offered, and what a submitted form becomes.

use std::collections::BTreeMap;

use berth_api::notebook::{AccessMode, FORBIDDEN_MOUNT_PATHS, Notebook};
use berth_api::notebook_template::{
    DEFAULT_TEMPLATE_ANNOTATION, NotebookTemplate, ProjectSelector,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::json;

use super::form::{FieldError, MAX_FIELDS, MAX_VALUE};
use super::spawn::{SpawnContext, mount_path_problem, parse_spawn};
use super::spawner::spawner;
use super::tests_schema::{cel_rules, schema_problems};

fn template(name: &str, default: bool, spec: serde_json::Value) -> NotebookTemplate {
    let mut t: NotebookTemplate = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "NotebookTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    if default {
        t.metadata.annotations = Some(BTreeMap::from([(
            DEFAULT_TEMPLATE_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
    }
    t
}

/// docs/notebooks.md's gpu-lab, offered to namespaces labelled gpu-tier a100.
fn gpu_lab() -> NotebookTemplate {
    template(
        "gpu-lab",
        false,
        json!({
            "displayName": "A100 lab",
            "description": "JupyterLab with CUDA, on the A100 nodes.",
            "images": [
                {"id": "py311-cu124", "image": "registry.example.com/lab/cuda:12.4-py311", "displayName": "Python 3.11, CUDA 12.4", "labels": {"python": "3.11", "cuda": "12.4"}},
                {"id": "py310-cu121", "image": "registry.example.com/lab/cuda:12.1-py310", "redirect": {"to": "py311-cu124", "message": "CUDA 12.1 is retired; your notebook now runs CUDA 12.4"}},
                {"id": "py311-cu118", "image": "registry.example.com/lab/cuda:11.8-py311", "deprecated": true},
                {"id": "debug", "image": "registry.example.com/lab/debug:1", "hidden": true},
            ],
            "defaultImage": "py311-cu124",
            "bundles": [
                {"id": "cpu-small", "displayName": "2 CPUs, 8 GiB", "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}},
                {"id": "a100-1", "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "64Gi"}},
                 "gpu": {"resource": "nvidia.com/gpu", "count": 1}, "sharedMemory": "16Gi"},
            ],
            "defaultBundle": "cpu-small",
            "custom": {"maximum": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "2"}},
            "idleTimeout": {"defaultTimeout": "2h", "minimum": "10m", "maximum": "24h"},
            "projects": {"matchExpressions": [{"key": "platform.example.com/gpu-tier", "operator": "In", "values": ["a100"]}]},
        }),
    )
}

/// The chart's default template: custom images, bundles, custom resources up to 8 CPUs and
/// 32 GiB without GPUs.
fn jupyter() -> NotebookTemplate {
    template(
        "jupyter",
        true,
        json!({
            "displayName": "JupyterLab",
            "images": [{"id": "jupyter", "image": "berth.dev/jupyter:0.1.0"}],
            "defaultImage": "jupyter",
            "allowCustomImages": true,
            "bundles": [{"id": "small", "resources": {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}}],
            "defaultBundle": "small",
            "custom": {"maximum": {"cpu": "8", "memory": "32Gi"}},
        }),
    )
}

/// Bundles only, and a minimum idle timeout above the default 1h with no default of its own.
fn fixed() -> NotebookTemplate {
    template(
        "fixed",
        false,
        json!({
            "displayName": "Fixed <b>\"menu\"</b> & 'more'",
            "images": [{"id": "one", "image": "example.com/one:1"}],
            "defaultImage": "one",
            "bundles": [{"id": "only", "resources": {"requests": {"cpu": "1"}}}],
            "defaultBundle": "only",
            "idleTimeout": {"minimum": "2h"},
        }),
    )
}

fn team_b_only() -> NotebookTemplate {
    template(
        "team-b-only",
        false,
        json!({
            "displayName": "Team B",
            "images": [{"id": "b", "image": "example.com/b:1"}],
            "defaultImage": "b",
            "projects": {"matchLabels": {"berth.dev/project": "team-b"}},
        }),
    )
}

fn labels(project: &str, tier: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("berth.dev/project".to_owned(), project.to_owned()),
        ("kubernetes.io/metadata.name".to_owned(), project.to_owned()),
    ]);
    if let Some(tier) = tier {
        l.insert("platform.example.com/gpu-tier".into(), tier.into());
    }
    l
}

fn templates() -> Vec<NotebookTemplate> {
    vec![gpu_lab(), jupyter(), fixed(), team_b_only()]
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct Fixture {
    templates: Vec<NotebookTemplate>,
    labels: BTreeMap<String, String>,
    notebooks: Vec<String>,
    claims: Option<Vec<PersistentVolumeClaim>>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            templates: templates(),
            labels: labels("team-a", Some("a100")),
            notebooks: vec!["old".into()],
            claims: None,
        }
    }
    fn parse(&self, pairs: &[(&str, &str)]) -> Result<Notebook, Vec<FieldError>> {
        let ctx = SpawnContext {
            namespace: "team-a",
            namespace_labels: &self.labels,
            templates: &self.templates,
            notebooks: &self.notebooks,
            claims: self.claims.as_deref(),
        };
        parse_spawn(&form(pairs), &ctx)
    }
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

/// The form is refused, with an error on `field`.
#[track_caller]
fn refused_on(result: Result<Notebook, Vec<FieldError>>, field: &str) -> String {
    let errors = result.expect_err("the form was accepted");
    let e = errors
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error on {field}: {errors:?}"));
    e.message.clone()
}

fn claim(name: &str, labels: &[(&str, &str)], modes: &[&str]) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "team-a",
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "spec": {"accessModes": modes},
        "status": {"phase": "Bound", "accessModes": modes},
    }))
    .unwrap()
}

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
fn a_minimal_form_gets_the_templates_defaults() {
    let nb = Fixture::new()
        .parse(&[("name", "lab"), ("template", "gpu-lab")])
        .unwrap();
    assert_eq!(nb.metadata.name.as_deref(), Some("lab"));
    assert_eq!(nb.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(nb.spec.template.as_deref(), Some("gpu-lab"));
    assert_eq!(nb.spec.image_id.as_deref(), Some("py311-cu124"));
    assert_eq!(nb.spec.bundle.as_deref(), Some("cpu-small"));
    assert!(nb.spec.resources.is_none() && nb.spec.image.is_none() && !nb.spec.stopped);
    // No template named: the default one, written out.
    let nb = Fixture::new().parse(&[("name", "lab")]).unwrap();
    assert_eq!(nb.spec.template.as_deref(), Some("jupyter"));
    assert_eq!(nb.spec.bundle.as_deref(), Some("small"));
}

#[test]
fn a_full_form_becomes_the_notebook_asked_for() {
    let mut f = Fixture::new();
    f.claims = Some(vec![claim("team-datasets", &[], &["ReadOnlyMany"])]);
    let nb = f
        .parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "py310-cu121"),
            ("cpu", "2000m"),
            ("memory", "8Gi"),
            ("gpu", "1"),
            ("homeSize", "20Gi"),
            ("idleTimeout", "1h30m"),
            ("volumes.0.name", "scratch"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "50Gi"),
            ("volumes.0.accessMode", "ReadWriteMany"),
            ("volumes.1.name", "datasets"),
            ("volumes.1.mountPath", "/home/jovyan/datasets"),
            ("volumes.1.existingClaim", "team-datasets"),
            ("volumes.1.readOnly", "on"),
            ("volumes.2.name", ""),
            ("volumes.2.mountPath", ""),
        ])
        .unwrap();
    let s = &nb.spec;
    assert_eq!(
        s.image_id.as_deref(),
        Some("py310-cu121"),
        "a redirected id is kept: it runs the newer image"
    );
    assert!(s.bundle.is_none());
    let r = s.resources.as_ref().unwrap();
    assert_eq!(r.requests["cpu"].0, "2000m");
    assert_eq!(r.requests["memory"].0, "8Gi");
    assert_eq!(r.limits["memory"].0, "8Gi");
    assert_eq!(r.requests["nvidia.com/gpu"].0, "1");
    assert_eq!(r.limits["nvidia.com/gpu"].0, "1");
    assert_eq!(s.home.size.as_deref(), Some("20Gi"));
    assert_eq!(s.idle_timeout.as_deref(), Some("1h30m"));
    assert_eq!(s.volumes.len(), 2, "the empty row is skipped");
    let new = s.volumes[0].new_claim.as_ref().unwrap();
    assert_eq!(
        (new.size.as_str(), new.access_modes.as_slice()),
        ("50Gi", [AccessMode::ReadWriteMany].as_slice())
    );
    assert_eq!(
        s.volumes[1].existing_claim.as_deref(),
        Some("team-datasets")
    );
    assert!(s.volumes[1].read_only);
    assert_eq!(
        schema_problems::<Notebook>(&serde_json::to_value(&nb).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn names_that_are_not_what_the_crd_allows_are_refused() {
    let f = Fixture::new();
    let long = "a".repeat(41);
    for bad in [
        "",
        "Lab",
        "1lab",
        "lab-",
        "-lab",
        "lab_1",
        "lab.x",
        "<script>",
        "läb",
        long.as_str(),
    ] {
        refused_on(f.parse(&[("name", bad)]), "name");
    }
    assert!(f.parse(&[("name", &"a".repeat(40))]).is_ok());
    let m = refused_on(f.parse(&[("name", "old")]), "name");
    assert!(m.contains("already exists"), "{m}");
}

#[test]
fn a_custom_image_only_where_the_template_allows_it() {
    let f = Fixture::new();
    let m = refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("customImage", "evil.example/x:1"),
        ]),
        "customImage",
    );
    assert!(m.contains("only its own images"), "{m}");
    let nb = f
        .parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("customImage", "registry.example.com/me/lab:2"),
        ])
        .unwrap();
    assert_eq!(
        nb.spec.image.as_deref(),
        Some("registry.example.com/me/lab:2")
    );
    assert!(nb.spec.image_id.is_none());
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("customImage", "a b"),
        ]),
        "customImage",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("customImage", &"x".repeat(513)),
        ]),
        "customImage",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("customImage", "x:1"),
            ("imageId", "jupyter"),
        ]),
        "customImage",
    );
}

#[test]
fn hidden_and_unknown_image_ids_are_refused() {
    let f = Fixture::new();
    let m = refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "debug"),
        ]),
        "imageId",
    );
    assert!(
        !m.contains("debug,") && m.contains("py311-cu124"),
        "the hidden id is not listed: {m}"
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "nope"),
        ]),
        "imageId",
    );
    assert!(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "py311-cu118")
        ])
        .is_ok(),
        "deprecated still runs"
    );
}

#[test]
fn templates_not_offered_or_unknown_are_refused() {
    let f = Fixture::new();
    let m = refused_on(
        f.parse(&[("name", "lab"), ("template", "team-b-only")]),
        "template",
    );
    assert!(m.contains("not offered"), "{m}");
    refused_on(
        f.parse(&[("name", "lab"), ("template", "ghost")]),
        "template",
    );
    let mut f = Fixture::new();
    f.labels = labels("team-a", None);
    refused_on(
        f.parse(&[("name", "lab"), ("template", "gpu-lab")]),
        "template",
    );
}

#[test]
fn resources_above_the_maximum_are_refused_however_they_are_spelled() {
    let f = Fixture::new();
    let with = |cpu: &str, memory: &str, gpu: &str| {
        let mut pairs = vec![
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("cpu", cpu),
            ("memory", memory),
        ];
        if !gpu.is_empty() {
            pairs.push(("gpu", gpu));
        }
        f.parse(&pairs)
    };
    // At the maximum (16 CPUs, 128Gi, 2 GPUs), however written.
    assert!(with("16", "128Gi", "2").is_ok());
    assert!(with("16000m", "131072Mi", "").is_ok());
    assert!(with("1.6e1", "0.125Ti", "").is_ok());
    // Just above it.
    refused_on(with("16001m", "1Gi", ""), "cpu");
    refused_on(with("17", "1Gi", ""), "cpu");
    refused_on(with("1", "131073Mi", ""), "memory");
    refused_on(with("1", "0.2Ti", ""), "memory");
    refused_on(with("1", "1Gi", "3"), "gpu");
    refused_on(with("1", "1Gi", "1.5"), "gpu");
    refused_on(with("-1", "1Gi", ""), "cpu");
    refused_on(with("0", "1Gi", ""), "cpu");
    refused_on(with("1", "1GB", ""), "memory");
    // A template without GPUs in its maximum, or without custom at all.
    let m = refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("cpu", "8000m"),
            ("gpu", "1"),
        ]),
        "gpu",
    );
    assert!(m.contains("does not offer GPUs"), "{m}");
    assert!(
        f.parse(&[("name", "lab"), ("template", "jupyter"), ("cpu", "8000m")])
            .is_ok()
    );
    refused_on(
        f.parse(&[("name", "lab"), ("template", "jupyter"), ("cpu", "8.001")]),
        "cpu",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "jupyter"),
            ("cpu", "1"),
            ("gpu", "1"),
            ("gpuResource", "amd.com/gpu"),
        ]),
        "gpu",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("template", "fixed"), ("cpu", "1")]),
        "bundle",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("bundle", "cpu-small"),
            ("cpu", "1"),
        ]),
        "bundle",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("template", "gpu-lab"), ("bundle", "huge")]),
        "bundle",
    );
}

#[test]
fn volume_mount_paths_follow_the_crd_rules() {
    for bad in [
        "/home/jovyan",
        "/home",
        "/etc",
        "/etc/x",
        "/usr/local",
        "/tmp",
        "/var/lib/x",
        "/var/run",
        "/proc",
        "/data/../etc",
        "/data/./x",
        "/data/",
        "data",
        "/",
        "/da ta",
        "/data\n",
        "//data",
        "/d<a>",
        "/lib64/x",
    ] {
        assert!(mount_path_problem(bad).is_some(), "{bad:?} accepted");
    }
    for good in [
        "/data",
        "/home/jovyan/data",
        "/var/data",
        "/opt/x.y_z-1",
        "/etcetera",
        "/homework",
    ] {
        assert_eq!(mount_path_problem(good), None, "{good:?} refused");
    }
    let f = Fixture::new();
    for path in ["/home/jovyan", "/etc"] {
        refused_on(
            f.parse(&[
                ("name", "lab"),
                ("volumes.0.name", "data"),
                ("volumes.0.mountPath", path),
                ("volumes.0.size", "1Gi"),
            ]),
            "volumes.0.mountPath",
        );
    }
    // Two volumes on one path, or with one name.
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "a"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "1Gi"),
            ("volumes.1.name", "b"),
            ("volumes.1.mountPath", "/data"),
            ("volumes.1.size", "1Gi"),
        ]),
        "volumes.1.mountPath",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "a"),
            ("volumes.0.mountPath", "/a"),
            ("volumes.0.size", "1Gi"),
            ("volumes.1.name", "a"),
            ("volumes.1.mountPath", "/b"),
            ("volumes.1.size", "1Gi"),
        ]),
        "volumes.1.name",
    );
}

#[test]
fn the_crd_forbids_the_same_mount_paths_as_the_parser() {
    let rules = cel_rules::<Notebook>();
    let (system, _) = rules
        .iter()
        .find(|(r, _)| r.contains("'/etc'") && r.contains("startsWith(p + '/')"))
        .expect("the CRD's system-directory rule");
    let listed = system.matches("', '").count() + 1;
    assert_eq!(listed, FORBIDDEN_MOUNT_PATHS.len(), "{system}");
    for p in FORBIDDEN_MOUNT_PATHS {
        assert!(system.contains(&format!("'{p}'")), "{p} not in {system}");
    }
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("self != '/home/jovyan' && self != '/home'"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("^(/[A-Za-z0-9._-]+)+$"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("self != 'home' && !self.endsWith('-home')"))
    );
    assert!(
        rules
            .iter()
            .any(|(r, _)| r.contains("size(self.metadata.name) <= 40"))
    );
}

#[test]
fn homes_of_notebooks_and_berths_own_claims_are_not_mounted() {
    let mut f = Fixture::new();
    let row = |claim: &'static str| {
        vec![
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.existingClaim", claim),
        ]
    };
    // Another notebook's home, and its own, by name (no claim list needed).
    let m = refused_on(f.parse(&row("old-home")), "volumes.0.existingClaim");
    assert!(m.contains("home volume of notebook old"), "{m}");
    refused_on(f.parse(&row("lab-home")), "volumes.0.existingClaim");
    // With the claims: Berth's home of a notebook that is gone, a model's volume, a missing claim.
    f.claims = Some(vec![
        claim(
            "gone-home",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/notebook", "gone"),
            ],
            &["ReadWriteOnce"],
        ),
        claim(
            "fraud-3f09c2a17e",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/model", "fraud"),
            ],
            &["ReadWriteOnce"],
        ),
        claim(
            "other-scratch",
            &[
                ("app.kubernetes.io/managed-by", "berth"),
                ("berth.dev/notebook", "other"),
                ("berth.dev/notebook-volume", "scratch"),
            ],
            &["ReadWriteMany"],
        ),
        claim("ro", &[], &["ReadOnlyMany"]),
        claim("lab-data", &[], &["ReadWriteOnce"]),
        claim("lab-home", &[], &["ReadWriteOnce"]),
    ]);
    let m = refused_on(f.parse(&row("gone-home")), "volumes.0.existingClaim");
    assert!(m.contains("home volume of notebook gone"), "{m}");
    let m = refused_on(f.parse(&row("fraud-3f09c2a17e")), "volumes.0.existingClaim");
    assert!(m.contains("model"), "{m}");
    refused_on(f.parse(&row("missing")), "volumes.0.existingClaim");
    refused_on(f.parse(&row("Bad/Name")), "volumes.0.existingClaim");
    let m = refused_on(f.parse(&row("ro")), "volumes.0.existingClaim");
    assert!(m.contains("read-only"), "{m}");
    // Another notebook's data volume is shared on purpose (ReadWriteMany).
    let mut shared = row("other-scratch");
    shared[0] = ("name", "lab2");
    assert!(f.parse(&shared).is_ok(), "{:?}", f.parse(&shared));
    let mut ro = row("ro");
    ro.push(("volumes.0.readOnly", "on"));
    ro[0] = ("name", "lab2");
    assert!(f.parse(&ro).is_ok());
    // A new volume whose claim <notebook>-<volume> exists and is not Berth's for it.
    let errors = f
        .parse(&[
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "1Gi"),
        ])
        .unwrap_err();
    assert!(
        fields(&errors).contains(&"volumes.0.name"),
        "lab-data is taken: {errors:?}"
    );
    assert!(
        fields(&errors).contains(&"name"),
        "lab-home is not Berth's: {errors:?}"
    );
}

#[test]
fn a_home_berth_kept_for_a_notebook_of_that_name_is_found_again() {
    let mut f = Fixture::new();
    f.claims = Some(vec![claim(
        "lab-home",
        &[
            ("app.kubernetes.io/managed-by", "berth"),
            ("berth.dev/notebook", "lab"),
        ],
        &["ReadWriteOnce"],
    )]);
    assert!(f.parse(&[("name", "lab")]).is_ok());
}

#[test]
fn volume_rows_are_checked() {
    let f = Fixture::new();
    let base = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![
            ("name", "lab"),
            ("volumes.0.name", "data"),
            ("volumes.0.mountPath", "/data"),
        ];
        v.extend_from_slice(extra);
        v
    };
    refused_on(f.parse(&base(&[])), "volumes.0.existingClaim");
    refused_on(
        f.parse(&base(&[
            ("volumes.0.size", "1Gi"),
            ("volumes.0.existingClaim", "x"),
        ])),
        "volumes.0.existingClaim",
    );
    refused_on(f.parse(&base(&[("volumes.0.size", "0")])), "volumes.0.size");
    refused_on(
        f.parse(&base(&[
            ("volumes.0.size", "1Gi"),
            ("volumes.0.accessMode", "ReadWriteAll"),
        ])),
        "volumes.0.accessMode",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "home"),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", "my-home"),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[
            ("name", "lab"),
            ("volumes.0.name", &"v".repeat(23)),
            ("volumes.0.mountPath", "/d"),
            ("volumes.0.size", "1Gi"),
        ]),
        "volumes.0.name",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("volumes.16.name", "x")]),
        "volumes",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("volumes.x.name", "x")]),
        "volumes",
    );
}

#[test]
fn the_idle_timeout_stays_within_the_templates_bounds() {
    let f = Fixture::new();
    let with = |t: &str| f.parse(&[("name", "lab"), ("template", "gpu-lab"), ("idleTimeout", t)]);
    assert!(with("10m").is_ok() && with("24h").is_ok() && with("1h30m").is_ok());
    for bad in ["5m", "25h", "1d", "90", "h", "-1h", "1h 30m", "169h"] {
        refused_on(with(bad), "idleTimeout");
    }
    // Without a template's bounds: the CRD's 10s to 168h.
    assert!(f.parse(&[("name", "lab"), ("idleTimeout", "168h")]).is_ok());
    refused_on(
        f.parse(&[("name", "lab"), ("idleTimeout", "9s")]),
        "idleTimeout",
    );
    // A template whose minimum is above the default 1h and which sets no default: say so.
    let m = refused_on(
        f.parse(&[("name", "lab"), ("template", "fixed")]),
        "idleTimeout",
    );
    assert!(m.contains("2h"), "{m}");
    assert!(
        f.parse(&[
            ("name", "lab"),
            ("template", "fixed"),
            ("idleTimeout", "3h")
        ])
        .is_ok()
    );
}

#[test]
fn without_any_template_the_form_takes_an_image_and_resources() {
    let mut f = Fixture::new();
    f.templates = Vec::new();
    let nb = f
        .parse(&[
            ("name", "lab"),
            ("customImage", "example.com/lab:1"),
            ("cpu", "2"),
            ("memory", "4Gi"),
            ("gpu", "1"),
            ("gpuResource", "nvidia.com/gpu"),
        ])
        .unwrap();
    assert!(nb.spec.template.is_none());
    assert_eq!(nb.spec.resources.unwrap().limits["nvidia.com/gpu"].0, "1");
    refused_on(
        f.parse(&[("name", "lab"), ("imageId", "jupyter")]),
        "imageId",
    );
    refused_on(f.parse(&[("name", "lab"), ("bundle", "small")]), "bundle");
    refused_on(f.parse(&[("name", "lab"), ("gpu", "1")]), "gpuResource");
    for bad in [
        "kubernetes.io/gpu",
        "example.k8s.io/gpu",
        "gpu",
        "nvidia.com/",
        "NVIDIA.com/gpu",
        "a/b",
    ] {
        refused_on(
            f.parse(&[("name", "lab"), ("gpu", "1"), ("gpuResource", bad)]),
            "gpuResource",
        );
    }
    assert!(
        f.parse(&[("name", "lab")]).is_ok(),
        "Berth's Jupyter image, the project's defaults"
    );
}

#[test]
fn oversize_and_repeated_fields_are_refused() {
    let f = Fixture::new();
    refused_on(f.parse(&[("name", "lab"), ("name", "other")]), "name");
    let long = "x".repeat(MAX_VALUE + 1);
    refused_on(
        f.parse(&[("name", "lab"), ("customImage", &long)]),
        "customImage",
    );
    let many: Vec<(String, String)> = (0..=MAX_FIELDS)
        .map(|i| (format!("f{i}"), String::new()))
        .collect();
    let ctx = SpawnContext {
        namespace: "team-a",
        namespace_labels: &f.labels,
        templates: &f.templates,
        notebooks: &f.notebooks,
        claims: None,
    };
    let errors = parse_spawn(&many, &ctx).unwrap_err();
    assert_eq!(fields(&errors), ["form"]);
}

#[test]
fn html_in_templates_and_input_stays_raw_text() {
    // The structs hold raw text; the template escapes once. Nothing here escapes.
    let s = spawner(&templates(), &labels("team-a", Some("a100")));
    let fixed = s.templates.iter().find(|t| t.name == "fixed").unwrap();
    assert_eq!(fixed.display_name, "Fixed <b>\"menu\"</b> & 'more'");
    assert_eq!(
        crate::pages::escape(&fixed.display_name),
        "Fixed &lt;b&gt;&quot;menu&quot;&lt;/b&gt; &amp; &#39;more&#39;"
    );
    let f = Fixture::new();
    let m = refused_on(
        f.parse(&[("name", "lab"), ("template", "<script>&amp;")]),
        "template",
    );
    assert!(m.contains("\"<script>&amp;\""), "raw, as typed: {m}");
    let m = refused_on(
        f.parse(&[("name", "lab"), ("template", "gpu-lab"), ("imageId", "<i>")]),
        "imageId",
    );
    assert!(m.contains("\"<i>\"") && !m.contains("&lt;"), "{m}");
}

#[test]
fn every_accepted_form_passes_the_crd_schema() {
    let mut f = Fixture::new();
    f.claims = Some(vec![claim("shared", &[], &["ReadWriteMany"])]);
    let forty = "n".repeat(40);
    let forms: Vec<Vec<(&str, &str)>> = vec![
        vec![("name", "a")],
        vec![
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("bundle", "a100-1"),
            ("idleTimeout", "10m"),
        ],
        vec![
            ("name", "lab"),
            ("template", "jupyter"),
            ("customImage", "r.example/x@sha256:00"),
            ("cpu", "0.5"),
            ("memory", "512Mi"),
        ],
        vec![
            ("name", "lab"),
            ("template", "fixed"),
            ("idleTimeout", "168h"),
        ],
        vec![
            ("name", &forty),
            ("homeSize", "1Ti"),
            ("volumes.0.name", "abcdefghijklmnopqrstuv"),
            ("volumes.0.mountPath", "/data"),
            ("volumes.0.size", "1"),
            ("volumes.15.name", "s"),
            ("volumes.15.mountPath", "/s"),
            ("volumes.15.existingClaim", "shared"),
            ("volumes.15.readOnly", "on"),
        ],
    ];
    for pairs in forms {
        let nb = f
            .parse(&pairs)
            .unwrap_or_else(|e| panic!("{pairs:?}: {e:?}"));
        let value = serde_json::to_value(&nb).unwrap();
        assert_eq!(
            schema_problems::<Notebook>(&value),
            Vec::<String>::new(),
            "{pairs:?}"
        );
        // And it reads back as the same Notebook (no field lost on the way).
        let back: Notebook = serde_json::from_value(value).unwrap();
        assert_eq!(back.spec, nb.spec);
    }
    // The schema check itself catches what it claims to.
    let mut bad = serde_json::to_value(f.parse(&[("name", "lab")]).unwrap()).unwrap();
    bad["spec"]["idleTimeout"] = json!("x".repeat(33));
    bad["spec"]["unknown"] = json!(1);
    assert_eq!(schema_problems::<Notebook>(&bad).len(), 2);
}
