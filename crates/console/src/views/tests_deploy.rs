//! The deploy form and the canary form of the Models page.

use berth_api::mlmodel::{AuthMode, MLModel, RuntimeName};
use serde_json::json;

use super::deploy::{parse_canary, parse_deploy, source_uri_problem};
use super::form::{FieldError, apply_merge_patch};
use super::tests_models::model;
use super::tests_schema::schema_problems;

fn deploy(pairs: &[(&str, &str)]) -> Result<MLModel, Vec<FieldError>> {
    let fields: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    parse_deploy(&fields, "fraud-detection", &["taken".to_owned()])
}

#[track_caller]
fn refused_on(result: Result<MLModel, Vec<FieldError>>, field: &str) -> String {
    let errors = result.expect_err("the form was accepted");
    errors
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error on {field}: {errors:?}"))
        .message
        .clone()
}

#[test]
fn the_deploy_form_becomes_the_model_asked_for() {
    let m = deploy(&[
        ("name", "fraud-scorer"),
        (
            "sourceUri",
            "s3://fraud-detection/models/fraud-scorer/v1/model.onnx",
        ),
        ("sha256", &"0f".repeat(32)),
        ("replicas", "2"),
        ("cpu", "250m"),
        ("memory", "256Mi"),
        ("gpus", "1"),
        ("storageSize", "1Gi"),
        ("authMode", "kubernetes"),
    ])
    .unwrap();
    assert_eq!(m.metadata.namespace.as_deref(), Some("fraud-detection"));
    assert_eq!(m.spec.runtime.name, RuntimeName::Onnx);
    assert_eq!(m.spec.replicas, Some(2));
    let r = m.spec.resources.as_ref().unwrap();
    assert_eq!(
        (
            r.requests["cpu"].0.as_str(),
            r.limits["memory"].0.as_str(),
            r.gpus
        ),
        ("250m", "256Mi", Some(1))
    );
    assert_eq!(
        m.spec.storage.as_ref().unwrap().size.as_deref(),
        Some("1Gi")
    );
    assert_eq!(
        m.spec.auth.as_ref().unwrap().mode,
        Some(AuthMode::Kubernetes)
    );
    assert_eq!(
        schema_problems::<MLModel>(&serde_json::to_value(&m).unwrap()),
        Vec::<String>::new()
    );

    let m = deploy(&[
        ("name", "custom"),
        ("sourceUri", "pvc://models-claim/fraud"),
        ("runtime", "custom"),
        ("image", "registry.example.com/team/server:1"),
        ("port", "9000"),
    ])
    .unwrap();
    assert_eq!(
        (m.spec.runtime.port, m.spec.auth.is_none()),
        (Some(9000), true)
    );
    assert_eq!(
        schema_problems::<MLModel>(&serde_json::to_value(&m).unwrap()),
        Vec::<String>::new()
    );
    let m = deploy(&[
        ("name", "m"),
        ("sourceUri", "https://example.com/m.tar.gz"),
        ("image", "x/y:1"),
        ("authMode", "none"),
    ])
    .unwrap();
    assert_eq!(
        m.spec.runtime.image.as_deref(),
        Some("x/y:1"),
        "onnx with its own image only without auth"
    );
    assert_eq!(
        schema_problems::<MLModel>(&serde_json::to_value(&m).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn sources_of_other_schemes_and_malformed_ones_are_refused() {
    for bad in [
        "http://example.com/m.onnx",
        "file:///etc/passwd",
        "ftp://example.com/m",
        "javascript:alert(1)",
        "S3://models/m.onnx",
        "s3://ab/m.onnx",
        "s3://-bucket/m",
        "s3://Bucket/m",
        "https://",
        "https:///path",
        "https://exa mple.com/m",
        "pvc://Claim/x",
        "pvc:///x",
        "gs://bucket/m",
        "",
    ] {
        assert!(source_uri_problem(bad).is_some(), "{bad:?} accepted");
        refused_on(deploy(&[("name", "m"), ("sourceUri", bad)]), "sourceUri");
    }
    let long = format!("s3://models/{}", "k".repeat(2048));
    assert!(source_uri_problem(&long).is_some());
    for good in [
        "s3://models/a.onnx",
        "s3://models/prefix/",
        "https://example.com/m.zip",
        "pvc://claim.x/path",
    ] {
        assert_eq!(source_uri_problem(good), None, "{good:?}");
    }
}

#[test]
fn deploy_fields_are_checked_as_the_crd_checks_them() {
    let ok = [("sourceUri", "s3://models/a.onnx")];
    let with = |extra: &[(&str, &str)]| {
        let mut v = vec![("name", "m")];
        v.extend_from_slice(&ok);
        v.extend_from_slice(extra);
        deploy(&v)
    };
    for bad in ["", "M", "1m", "m-", "m_m", "<script>", &"m".repeat(41)] {
        refused_on(
            deploy(&[("name", bad), ("sourceUri", "s3://models/a.onnx")]),
            "name",
        );
    }
    refused_on(
        deploy(&[("name", "taken"), ("sourceUri", "s3://models/a.onnx")]),
        "name",
    );
    refused_on(with(&[("runtime", "pytorch")]), "runtime");
    refused_on(with(&[("runtime", "custom")]), "image");
    refused_on(with(&[("runtime", "custom")]), "port");
    refused_on(
        with(&[("runtime", "custom"), ("image", "x:1"), ("port", "0")]),
        "port",
    );
    refused_on(
        with(&[("runtime", "custom"), ("image", "x:1"), ("port", "65536")]),
        "port",
    );
    refused_on(with(&[("port", "8080")]), "port");
    let m = refused_on(with(&[("image", "evil/x:1")]), "image");
    assert!(m.contains("custom runtime"), "{m}");
    refused_on(
        with(&[("image", "evil/x:1"), ("authMode", "kubernetes")]),
        "image",
    );
    refused_on(with(&[("authMode", "basic")]), "authMode");
    for r in ["0", "101", "2.5", "-1", "two"] {
        refused_on(with(&[("replicas", r)]), "replicas");
    }
    refused_on(with(&[("gpus", "17")]), "gpus");
    refused_on(with(&[("cpu", "lots")]), "cpu");
    refused_on(with(&[("storageSize", "0")]), "storageSize");
    refused_on(with(&[("sha256", &"A".repeat(64))]), "sha256");
    refused_on(with(&[("sha256", "abc")]), "sha256");
    refused_on(
        deploy(&[
            ("name", "m"),
            ("sourceUri", "s3://models/prefix/"),
            ("sha256", &"a".repeat(64)),
        ]),
        "sha256",
    );
    refused_on(
        deploy(&[
            ("name", "m"),
            ("sourceUri", "pvc://claim/x"),
            ("sha256", &"a".repeat(64)),
        ]),
        "sha256",
    );
    refused_on(
        deploy(&[
            ("name", "m"),
            ("name", "n"),
            ("sourceUri", "s3://models/a.onnx"),
        ]),
        "name",
    );
    assert!(
        with(&[("gpus", "0")]).unwrap().spec.resources.is_none(),
        "0 GPUs asks for nothing"
    );
}

#[test]
fn the_canary_form_sets_a_whole_canary() {
    let plain = model(json!({"source": {"uri": "s3://models/a.onnx"}}), json!({}));
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    };
    let patch = parse_canary(
        &f(&[("canarySourceUri", "s3://models/b.onnx"), ("weight", "20")]),
        &plain,
    )
    .unwrap();
    assert_eq!(
        patch,
        json!({"metadata": {"resourceVersion": "4711"},
               "spec": {"canary": {"source": {"uri": "s3://models/b.onnx"}, "weight": 20}}})
    );
    let mut after = serde_json::to_value(&plain).unwrap();
    apply_merge_patch(&mut after, &patch);
    assert_eq!(schema_problems::<MLModel>(&after), Vec::<String>::new());
    // Replacing a canary of another runtime leaves no runtime behind.
    let runtime_canary = model(
        json!({"source": {"uri": "s3://models/a.onnx"}, "canary": {"runtime": {"name": "triton"}, "weight": 10}}),
        json!({}),
    );
    let patch = parse_canary(
        &f(&[("canarySourceUri", "s3://models/b.onnx"), ("weight", "30")]),
        &runtime_canary,
    )
    .unwrap();
    let mut after = serde_json::to_value(&runtime_canary).unwrap();
    apply_merge_patch(&mut after, &patch);
    let after: MLModel = serde_json::from_value(after).unwrap();
    let c = after.spec.canary.unwrap();
    assert!(c.runtime.is_none());
    assert_eq!(
        (c.source.unwrap().uri.as_str(), c.weight),
        ("s3://models/b.onnx", 30)
    );

    let refused = |pairs: &[(&str, &str)], field: &str| {
        let e = parse_canary(&f(pairs), &plain).unwrap_err();
        assert!(e.iter().any(|e| e.field == field), "{pairs:?}: {e:?}");
    };
    refused(&[("weight", "20")], "canarySourceUri");
    refused(
        &[("canarySourceUri", "http://x/m"), ("weight", "20")],
        "canarySourceUri",
    );
    refused(
        &[("canarySourceUri", "s3://models/b.onnx"), ("weight", "100")],
        "weight",
    );
    refused(
        &[("canarySourceUri", "s3://models/b.onnx"), ("weight", "0")],
        "weight",
    );
    refused(&[("canarySourceUri", "s3://models/b.onnx")], "weight");
    refused(
        &[("canaryRuntime", "custom"), ("weight", "5")],
        "canaryRuntime",
    );
    refused(
        &[("canaryRuntime", "<x>"), ("weight", "5")],
        "canaryRuntime",
    );
    assert!(
        parse_canary(
            &f(&[("canaryRuntime", "mlserver"), ("weight", "5")]),
            &plain
        )
        .is_ok()
    );
}

#[test]
fn the_deploy_form_sets_the_exposure() {
    let m = deploy(&[
        ("name", "m"),
        ("sourceUri", "s3://models/a.onnx"),
        ("exposeMode", "gateway"),
    ])
    .unwrap();
    assert_eq!(
        m.spec.expose.unwrap().mode,
        berth_api::mlmodel::ExposeMode::Gateway
    );
    let m = deploy(&[
        ("name", "m"),
        ("sourceUri", "s3://models/a.onnx"),
        ("exposeMode", "cluster"),
    ])
    .unwrap();
    assert!(m.spec.expose.is_none(), "cluster is the default");
    refused_on(
        deploy(&[
            ("name", "m"),
            ("sourceUri", "s3://models/a.onnx"),
            ("exposeMode", "public"),
        ]),
        "exposeMode",
    );
}

#[test]
fn the_deploy_form_sets_autoscaling_or_replicas_not_both() {
    let base = [("name", "m"), ("sourceUri", "s3://models/a.onnx")];
    let with = |extra: &[(&str, &str)]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        deploy(&v)
    };
    let m = with(&[("maxReplicas", "5"), ("cpu", "500m")]).unwrap();
    let a = m.spec.autoscaling.as_ref().unwrap();
    assert_eq!(
        (a.min_replicas, a.max_replicas, a.target_cpu_utilization),
        (1, 5, 80)
    );
    assert!(m.spec.replicas.is_none());
    assert_eq!(
        schema_problems::<MLModel>(&serde_json::to_value(&m).unwrap()),
        Vec::<String>::new()
    );
    refused_on(with(&[("maxReplicas", "5"), ("replicas", "2")]), "replicas");
    refused_on(with(&[("minReplicas", "2")]), "maxReplicas");
    refused_on(
        with(&[("minReplicas", "6"), ("maxReplicas", "5")]),
        "minReplicas",
    );
    refused_on(with(&[("maxReplicas", "101")]), "maxReplicas");
    refused_on(
        with(&[("maxReplicas", "5"), ("targetCPUUtilization", "0")]),
        "targetCPUUtilization",
    );
}
