//! The spawner's form: what a submitted form becomes, or why not. The fixtures are shared with
//! the spawner's and the volumes' tests.

use std::collections::BTreeMap;

use berth_api::notebook::{AccessMode, Notebook};
use berth_api::notebook_template::{DEFAULT_TEMPLATE_ANNOTATION, NotebookTemplate};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::json;

use super::form::{FieldError, MAX_FIELDS, MAX_VALUE};
use super::spawn::{SpawnContext, parse_spawn};
use super::spawner::spawner;
use super::tests_schema::schema_problems;

pub(super) fn template(name: &str, default: bool, spec: serde_json::Value) -> NotebookTemplate {
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
pub(super) fn gpu_lab() -> NotebookTemplate {
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
pub(super) fn jupyter() -> NotebookTemplate {
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
pub(super) fn fixed() -> NotebookTemplate {
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

pub(super) fn team_b_only() -> NotebookTemplate {
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

pub(super) fn labels(project: &str, tier: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("berth.dev/project".to_owned(), project.to_owned()),
        ("kubernetes.io/metadata.name".to_owned(), project.to_owned()),
    ]);
    if let Some(tier) = tier {
        l.insert("platform.example.com/gpu-tier".into(), tier.into());
    }
    l
}

pub(super) fn templates() -> Vec<NotebookTemplate> {
    vec![gpu_lab(), jupyter(), fixed(), team_b_only()]
}

pub(super) fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) struct Fixture {
    pub(super) templates: Vec<NotebookTemplate>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) notebooks: Vec<String>,
    pub(super) claims: Option<Vec<PersistentVolumeClaim>>,
}

impl Fixture {
    pub(super) fn new() -> Self {
        Self {
            templates: templates(),
            labels: labels("team-a", Some("a100")),
            notebooks: vec!["old".into()],
            claims: None,
        }
    }
    pub(super) fn parse(&self, pairs: &[(&str, &str)]) -> Result<Notebook, Vec<FieldError>> {
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

pub(super) fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

/// The form is refused, with an error on `field`.
#[track_caller]
pub(super) fn refused_on(result: Result<Notebook, Vec<FieldError>>, field: &str) -> String {
    let errors = result.expect_err("the form was accepted");
    let e = errors
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error on {field}: {errors:?}"));
    e.message.clone()
}

pub(super) fn claim(name: &str, labels: &[(&str, &str)], modes: &[&str]) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "team-a",
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "spec": {"accessModes": modes},
        "status": {"phase": "Bound", "accessModes": modes},
    }))
    .unwrap()
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

#[test]
fn a_forms_defaults_for_gpus_do_not_count_as_explicit_resources() {
    // A number input left at 0 and a select's first GPU resource come with every submission.
    let nb = Fixture::new()
        .parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("bundle", "a100-1"),
            ("gpu", "0"),
            ("gpuResource", "nvidia.com/gpu"),
        ])
        .unwrap();
    assert_eq!(nb.spec.bundle.as_deref(), Some("a100-1"));
    assert!(nb.spec.resources.is_none());
    // A template with neither bundles nor custom resources: the project's defaults.
    let mut f = Fixture::new();
    f.templates.push(super::tests_spawn::template(
        "bare",
        false,
        json!({"displayName": "Bare", "images": [{"id": "x", "image": "x:1"}], "defaultImage": "x"}),
    ));
    let m = refused_on(
        f.parse(&[("name", "lab"), ("template", "bare"), ("memory", "1Gi")]),
        "bundle",
    );
    assert!(m.contains("project's defaults"), "{m}");
    let nb = f.parse(&[("name", "lab"), ("template", "bare")]).unwrap();
    assert!(nb.spec.bundle.is_none() && nb.spec.resources.is_none());
}

#[test]
fn a_hidden_default_image_is_used_when_none_is_picked() {
    let mut t = jupyter();
    t.spec.images[0].hidden = true;
    let mut f = Fixture::new();
    f.templates = vec![t];
    let nb = f.parse(&[("name", "lab")]).unwrap();
    assert_eq!(nb.spec.image_id.as_deref(), Some("jupyter"));
    refused_on(
        f.parse(&[("name", "lab"), ("imageId", "jupyter")]),
        "imageId",
    );
}

#[test]
fn an_image_whose_redirects_loop_is_refused() {
    let mut t = gpu_lab();
    // py311-cu124 → py310-cu121 → py311-cu124.
    t.spec.images[0].redirect = Some(serde_json::from_value(json!({"to": "py310-cu121"})).unwrap());
    let mut f = Fixture::new();
    f.templates = vec![t];
    let m = refused_on(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "py310-cu121"),
        ]),
        "imageId",
    );
    assert!(m.contains("loop"), "{m}");
    assert!(
        f.parse(&[
            ("name", "lab"),
            ("template", "gpu-lab"),
            ("imageId", "py311-cu118")
        ])
        .is_ok()
    );
}
