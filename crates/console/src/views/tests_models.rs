//! The model page (versions, failure, how to call it, promote and rollback) and the deploy form.

use berth_api::mlmodel::{AuthMode, MLModel, RuntimeName};
use serde_json::{Value, json};

use super::deploy::{parse_canary, parse_deploy, source_uri_problem};
use super::form::{FieldError, apply_merge_patch};
use super::models::{auth_view, model_view, promote_patch, rollback_patch, shell_word};
use super::tests_schema::schema_problems;

fn model(spec: Value, status: Value) -> MLModel {
    serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "fraud-scorer", "namespace": "fraud-detection", "resourceVersion": "4711"},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn with_canary() -> MLModel {
    model(
        json!({
            "source": {"uri": "s3://models/fraud/v1.onnx", "sha256": "0".repeat(64), "timeout": "10m"},
            "replicas": 4,
            "canary": {"source": {"uri": "s3://models/fraud/v2.onnx"}, "weight": 20},
        }),
        json!({
            "phase": "Ready", "url": "http://fraud-scorer.fraud-detection.svc.cluster.local",
            "activeVersion": "3f09c2a17e", "targetVersion": "3f09c2a17e", "readyReplicas": 4,
            "activeSource": {"uri": "s3://models/fraud/v1.onnx"},
            "auth": {"mode": "kubernetes", "audiences": ["mlmodels.berth.dev/fraud-detection/fraud-scorer"]},
            "canary": {"version": "9a8b7c6d5e", "replicas": 1, "readyReplicas": 1, "percent": 20,
                       "method": "replicas", "split": "3f09c2a17e 80% / 9a8b7c6d5e 20%"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "version 3f09c2a17e serves",
                            "lastTransitionTime": "2026-11-30T11:00:00Z"}],
        }),
    )
}

#[test]
fn the_page_shows_versions_and_the_canary() {
    let v = model_view(&with_canary(), &[]);
    assert_eq!(
        (v.phase.as_str(), v.phase_text.as_str()),
        ("Ready", "Serving")
    );
    assert_eq!(
        v.url.as_deref(),
        Some("http://fraud-scorer.fraud-detection.svc.cluster.local")
    );
    assert_eq!(
        (v.active_version.as_str(), v.updating, v.ready_replicas),
        ("3f09c2a17e", false, 4)
    );
    assert_eq!(v.active_source, "s3://models/fraud/v1.onnx");
    assert_eq!(v.scale, "4 replicas, 4 ready");
    let c = v.canary.as_ref().unwrap();
    assert_eq!((c.weight, c.percent, c.ready_replicas), (20, 20, 1));
    assert_eq!(c.split, "3f09c2a17e 80% / 9a8b7c6d5e 20%");
    assert_eq!(
        (c.source.as_str(), c.runtime.as_str()),
        ("s3://models/fraud/v2.onnx", "onnx")
    );
    assert!(v.last_failure.is_none());
    let kinds: Vec<&str> = v.actions.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["promote", "rollback", "delete"]);
}

#[test]
fn promote_makes_the_canary_the_model_and_leaves_nothing_stale() {
    let m = with_canary();
    let patch = promote_patch(&m).unwrap();
    assert_eq!(
        patch,
        json!({
            "metadata": {"resourceVersion": "4711"},
            "spec": {
                "source": {"uri": "s3://models/fraud/v2.onnx", "sha256": null, "timeout": null},
                "canary": null,
            },
        })
    );
    let mut after = serde_json::to_value(&m).unwrap();
    apply_merge_patch(&mut after, &patch);
    let after: MLModel = serde_json::from_value(after).unwrap();
    assert_eq!(after.spec.source.uri, "s3://models/fraud/v2.onnx");
    assert!(
        after.spec.source.sha256.is_none(),
        "v1's checksum would fail v2's download"
    );
    assert!(after.spec.canary.is_none());
    assert_eq!(after.spec.replicas, Some(4));

    // A canary of the runtime only keeps the model's source.
    let runtime_only = model(
        json!({"source": {"uri": "s3://models/a.onnx"},
               "canary": {"runtime": {"name": "triton"}, "weight": 10}}),
        json!({}),
    );
    let patch = promote_patch(&runtime_only).unwrap();
    assert_eq!(
        patch["spec"],
        json!({"runtime": {"name": "triton"}, "canary": null})
    );
    assert_eq!(
        rollback_patch(&runtime_only),
        Some(json!({"metadata": {"resourceVersion": "4711"}, "spec": {"canary": null}}))
    );
    // Without a canary: neither.
    let plain = model(json!({"source": {"uri": "s3://models/a.onnx"}}), json!({}));
    assert!(promote_patch(&plain).is_none() && rollback_patch(&plain).is_none());
    let kinds: Vec<&str> = model_view(&plain, &[])
        .actions
        .iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["delete"]);
}

#[test]
fn the_last_failure_comes_from_status_else_conditions() {
    let failed = model(
        json!({"source": {"uri": "s3://models/a.onnx"}}),
        json!({"phase": "Failed", "targetVersion": "abc",
               "lastFailure": {"reason": "ChecksumMismatch", "message": "the bytes differ; fix source.sha256",
                               "time": "2026-11-30T11:00:00Z", "stage": "Download", "version": "abc", "generation": 2, "exitCode": 5}}),
    );
    let v = model_view(&failed, &[]);
    let f = v.last_failure.unwrap();
    assert_eq!(
        (f.reason.as_str(), f.headline.as_str()),
        ("ChecksumMismatch", "The download's checksum differs")
    );
    assert_eq!((f.stage.as_str(), f.version.as_str()), ("Download", "abc"));
    assert_eq!(v.phase_text, "Not serving: see the last failure");

    let unavailable = model(
        json!({"source": {"uri": "s3://models/a.onnx"}, "auth": {"mode": "oidc"}}),
        json!({"phase": "Pending", "targetVersion": "abc", "conditions": [
            {"type": "Ready", "status": "False", "reason": "AuthUnavailable", "message": "the project has no OIDC client; set auth.mode: kubernetes",
             "lastTransitionTime": "2026-11-30T11:00:00Z"}]}),
    );
    let f = model_view(&unavailable, &[]).last_failure.unwrap();
    assert_eq!(
        (f.reason.as_str(), f.stage.as_str()),
        ("AuthUnavailable", "Ready")
    );
    assert!(f.message.contains("kubernetes"));

    let updating = model(
        json!({"source": {"uri": "s3://models/b.onnx"}}),
        json!({"phase": "Updating", "activeVersion": "aaa", "targetVersion": "bbb"}),
    );
    let v = model_view(&updating, &[]);
    assert!(v.updating);
    assert_eq!(
        (v.active_version.as_str(), v.target_version.as_str()),
        ("aaa", "bbb")
    );
}

#[test]
fn how_to_call_it_follows_the_auth_mode() {
    // kubernetes: a token of project-automation for the model's audience, as docs/models.md.
    let a = auth_view(&with_canary());
    assert_eq!(a.mode, "kubernetes");
    assert_eq!(
        a.token_command.as_deref(),
        Some(
            "ns=fraud-detection\ntoken=$(kubectl -n $ns create token project-automation --audience mlmodels.berth.dev/fraud-detection/fraud-scorer)"
        )
    );
    let call = a.call.unwrap();
    assert!(call.contains("curl -s -H \"Authorization: Bearer $token\" http://fraud-scorer.fraud-detection.svc.cluster.local/v2/models/fraud-scorer/infer"), "{call}");
    assert!(call.contains("-H 'Content-Type: application/json'"));
    // Without audiences in status: the model's own.
    let m = model(
        json!({"source": {"uri": "s3://models/a.onnx"}, "auth": {"mode": "kubernetes"}}),
        json!({"url": "http://x"}),
    );
    assert!(
        auth_view(&m)
            .token_command
            .unwrap()
            .ends_with("--audience mlmodels.berth.dev/fraud-detection/fraud-scorer)")
    );

    // oidc: a client_credentials token of the project's client, from Secret berth-oidc.
    let m = model(
        json!({"source": {"uri": "s3://models/a.onnx"}}),
        json!({"url": "https://fraud.models.example.com", "auth": {"mode": "oidc", "issuer": "https://kc.example/realms/berth", "audiences": ["berth-fraud-detection"]}}),
    );
    let a = auth_view(&m);
    let token = a.token_command.unwrap();
    for line in [
        "id=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{.data.OIDC_CLIENT_ID}' | base64 -d)",
        "secret=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{.data.OIDC_CLIENT_SECRET}' | base64 -d)",
        "issuer=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{.data.OIDC_ISSUER_URL}' | base64 -d)",
        "token=$(curl -s \"$issuer/protocol/openid-connect/token\" \\",
        "  -d grant_type=client_credentials -d client_id=$id -d client_secret=$secret | jq -r .access_token)",
    ] {
        assert!(
            token.lines().any(|l| l == line),
            "missing {line:?} in\n{token}"
        );
    }
    assert_eq!(a.issuer.as_deref(), Some("https://kc.example/realms/berth"));
    assert!(
        a.call
            .unwrap()
            .contains("https://fraud.models.example.com/v2/models/fraud-scorer/infer")
    );

    // none: no token, and the sentence says anyone may call.
    let m = model(
        json!({"source": {"uri": "s3://models/a.onnx"}, "auth": {"mode": "none"}}),
        json!({"url": "http://x.svc", "auth": {"mode": "none"}}),
    );
    let a = auth_view(&m);
    assert!(a.token_command.is_none());
    assert!(a.text.contains("Anyone"));
    assert!(!a.call.unwrap().contains("Authorization"));

    // Not known yet (no status): no call to copy.
    let m = model(json!({"source": {"uri": "s3://models/a.onnx"}}), json!({}));
    let a = auth_view(&m);
    assert!(a.mode.is_empty() && a.call.is_none() && a.token_command.is_none());

    // A runtime that does not speak the Open Inference Protocol: the token and the URL only.
    let m = model(
        json!({"source": {"uri": "s3://models/a/"}, "runtime": {"name": "tensorflow"}}),
        json!({"url": "http://x.svc", "auth": {"mode": "kubernetes"}}),
    );
    let call = auth_view(&m).call.unwrap();
    assert!(
        !call.contains("/v2/")
            && call.ends_with("curl -s -H \"Authorization: Bearer $token\" http://x.svc/"),
        "{call}"
    );
}

#[test]
fn odd_urls_are_quoted_for_the_shell() {
    assert_eq!(
        shell_word("http://a.b/v2/models/m/infer"),
        "http://a.b/v2/models/m/infer"
    );
    assert_eq!(shell_word("http://a/$(rm -rf ~)"), "'http://a/$(rm -rf ~)'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
    assert_eq!(shell_word(""), "''");
    let m = model(
        json!({"source": {"uri": "s3://models/a.onnx"}}),
        json!({"url": "http://x/`id`", "auth": {"mode": "kubernetes", "audiences": ["a b"]}}),
    );
    let a = auth_view(&m);
    assert!(a.token_command.unwrap().ends_with("--audience 'a b')"));
    assert!(
        a.call
            .unwrap()
            .contains("'http://x/`id`/v2/models/fraud-scorer/infer'")
    );
}

#[test]
fn html_in_model_fields_stays_raw_text() {
    let m = model(
        json!({"source": {"uri": "https://example.com/<m>.onnx"}}),
        json!({"phase": "Failed", "lastFailure": {"reason": "<x>", "message": "a & <b>", "time": "2026-11-30T11:00:00Z",
               "stage": "Download", "version": "v", "generation": 1}}),
    );
    let v = model_view(&m, &[]);
    assert_eq!(v.source, "https://example.com/<m>.onnx");
    let f = v.last_failure.unwrap();
    assert_eq!(
        (f.headline.as_str(), f.message.as_str()),
        ("<x>", "a & <b>")
    );
}

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
fn without_a_resource_version_the_patches_carry_no_guard() {
    let mut m = with_canary();
    m.metadata.resource_version = None;
    assert_eq!(rollback_patch(&m), Some(json!({"spec": {"canary": null}})));
    assert!(promote_patch(&m).unwrap().get("metadata").is_none());
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

/// Every string of a serialized view, for checks of the whole view at once.
pub(super) fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The markup a pre-escaping step would leave.
pub(super) const ESCAPED: [&str; 5] = ["&lt;", "&gt;", "&amp;", "&quot;", "&#39;"];

#[test]
fn no_field_of_the_model_page_is_escaped_or_marked_safe() {
    const H: &str = "<i x=\"1\">&'</i>";
    let m = model(
        json!({"source": {"uri": format!("https://example.com/{H}")}, "runtime": {"name": "triton"},
               "canary": {"source": {"uri": format!("s3://models/{H}")}, "weight": 20}}),
        json!({"phase": "Failed", "url": format!("http://x/{H}"), "activeVersion": H, "targetVersion": H,
               "activeSource": {"uri": H},
               "auth": {"mode": "kubernetes", "audiences": [H], "issuer": H},
               "canary": {"version": H, "split": H, "method": H,
                          "failure": {"reason": H, "message": H, "time": "2026-11-30T11:00:00Z", "stage": H, "version": H, "generation": 1}},
               "lastFailure": {"reason": H, "message": H, "time": "2026-11-30T11:00:00Z", "stage": H, "version": H, "generation": 1},
               "conditions": [{"type": H, "status": "False", "reason": H, "message": H, "lastTransitionTime": "2026-11-30T11:00:00Z"}]}),
    );
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(
        json!({"metadata": {"name": "e"}, "involvedObject": {}, "reason": H, "message": H, "type": H}),
    )
    .unwrap();
    let v = serde_json::to_value(model_view(&m, &[event])).unwrap();
    let mut all = Vec::new();
    strings(&v, &mut all);
    assert!(
        all.iter().filter(|s| s.contains(H)).count() >= 20,
        "{all:?}"
    );
    for s in &all {
        for e in ESCAPED {
            assert!(!s.contains(e), "{s:?} holds {e}");
        }
    }
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
