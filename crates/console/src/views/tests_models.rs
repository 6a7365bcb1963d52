//! The model page (versions, failure, how to call it, promote and rollback) and the deploy form.

use berth_api::mlmodel::MLModel;
use serde_json::{Value, json};

use super::form::apply_merge_patch;
use super::models::{auth_view, model_view, promote_patch, rollback_patch, shell_word};

pub(super) fn model(spec: Value, status: Value) -> MLModel {
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

#[test]
fn without_a_resource_version_the_patches_carry_no_guard() {
    let mut m = with_canary();
    m.metadata.resource_version = None;
    assert_eq!(rollback_patch(&m), Some(json!({"spec": {"canary": null}})));
    assert!(promote_patch(&m).unwrap().get("metadata").is_none());
}

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
