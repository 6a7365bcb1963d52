//! A model's page: its phase, versions (serving, asked for, canary with its share), URL, the
//! last failure, how to call it with a token (mirroring docs/models.md, "Calling a model"), and
//! canary promote and rollback with the exact merge patch each sends (docs/models.md, "Canary
//! releases": promote makes the canary's source and runtime the model's and removes
//! `spec.canary`; rollback removes `spec.canary`).

use berth_api::mlmodel::{Failure, MLModel, Phase, RuntimeName};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::form::{Action, merge_patch};
use super::notebooks::{ConditionView, EventView, condition_view, event_views};

/// The ServiceAccount docs/models.md makes tokens for: every project has it.
pub const TOKEN_ACCOUNT: &str = "project-automation";

/// One model, ready to print. Every string is raw text; the template escapes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelView {
    pub name: String,
    pub namespace: String,
    /// `Ready`, `Updating`, … as in status; `Pending` before the controller wrote one.
    pub phase: String,
    /// The phase in plain words.
    pub phase_text: String,
    /// Where clients send requests (status.url); `None` until known.
    pub url: Option<String>,
    /// Replicas ready to serve.
    pub ready_replicas: i32,
    /// The scale asked for, with what is ready: `2 replicas, 2 ready` or `autoscaling 1 to 5
    /// at 80% CPU, 3 ready`.
    pub scale: String,
    /// The runtime (`onnx`, `triton`, …) and the spec's source URI.
    pub runtime: String,
    pub source: String,
    /// The version serving requests and its source (what the page calls "current").
    pub active_version: String,
    pub active_source: String,
    /// The version the spec asks for; differs from `active_version` while an update rolls out
    /// or after it failed (the active one, the previous version, keeps serving).
    pub target_version: String,
    pub updating: bool,
    pub canary: Option<CanaryView>,
    /// The most recent failure: status.lastFailure, else a False Ready (or True Degraded)
    /// condition's reason and message.
    pub last_failure: Option<FailureView>,
    pub auth: AuthView,
    pub conditions: Vec<ConditionView>,
    pub events: Vec<EventView>,
    /// Promote and rollback (with a canary), delete.
    pub actions: Vec<Action>,
}

/// The canary, as asked and as deployed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CanaryView {
    /// The share asked for (spec.canary.weight), in percent.
    pub weight: i32,
    /// The share as deployed (status.canary.percent); 0 while it does not serve.
    pub percent: i32,
    pub version: String,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// `<stable> 80% / <canary> 20%`.
    pub split: String,
    /// `replicas`, `HTTPRoute` or `VirtualService`.
    pub method: String,
    /// The canary's source URI (the model's when it changes the runtime only).
    pub source: String,
    /// The canary's runtime.
    pub runtime: String,
    /// Why Berth rolled it back, if it did.
    pub failure: Option<FailureView>,
}

/// A failure in plain words.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureView {
    pub reason: String,
    /// The reason in a few words.
    pub headline: String,
    /// What happened and what to do (Berth's words).
    pub message: String,
    /// `Download`, `Rollout`, `Canary`, or the condition's type.
    pub stage: String,
    pub version: String,
    /// When (RFC 3339).
    pub time: String,
}

/// Who may call the model and how.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthView {
    /// `oidc`, `kubernetes`, `none` as deployed (status.auth.mode), else as asked, else empty
    /// (not known yet).
    pub mode: String,
    /// The mode in a sentence.
    pub text: String,
    /// oidc: the issuer a token must come from.
    pub issuer: Option<String>,
    /// The audiences a token must be made for (any one).
    pub audiences: Vec<String>,
    /// A shell snippet that gets a token (`token=$(...)`); `None` for mode none or unknown.
    pub token_command: Option<String>,
    /// A ready-to-copy shell snippet: the token, the model's metadata (its input names) and an
    /// inference request of the Open Inference Protocol; `None` while the URL or mode is unknown.
    pub call: Option<String>,
}

/// The phase in plain words.
pub fn phase_text(phase: Option<Phase>) -> &'static str {
    match phase {
        None | Some(Phase::Pending) => "Waiting to start the download",
        Some(Phase::Downloading) => "Downloading the model",
        Some(Phase::Deploying) => "Downloaded; its replicas are starting",
        Some(Phase::Ready) => "Serving",
        Some(Phase::Updating) => "Serving, while a new version downloads or rolls out",
        Some(Phase::Failed) => "Not serving: see the last failure",
    }
}

/// A model failure reason (docs/models.md, "Failures") in a few words.
pub fn reason_headline(reason: &str) -> String {
    let text = match reason {
        "SourceNotFound" => "The model's file was not found",
        "AccessDenied" => "The source refused the credentials",
        "ChecksumMismatch" => "The download's checksum differs",
        "DeadlineExceeded" => "The download took too long",
        "NetworkError" => "The source could not be reached",
        "UnpackFailed" => "The archive could not be unpacked",
        "InvalidSource" => "The source is not valid",
        "DiskError" => "The volume could not be written",
        "DownloadFailed" => "The download failed",
        "ArchiveTooLarge" => "The archive unpacks to more than the volume holds",
        "InsecureRedirect" => "The source redirected to plain http",
        "QuotaExceeded" => "Does not fit the project's quota",
        "Unschedulable" => "No node has room for a replica",
        "ImagePullFailed" => "The runtime's image cannot be pulled",
        "ConfigError" => "A replica cannot be configured",
        "CrashLoop" => "The runtime keeps exiting",
        "PodsRejected" => "Admission refused the replicas",
        "RolloutTimeout" => "The replicas were not ready in time",
        "AuthUnavailable" => "The project has no OIDC client for oidc mode",
        other => return other.to_owned(),
    };
    text.to_owned()
}

fn failure_view(f: &Failure) -> FailureView {
    FailureView {
        headline: reason_headline(&f.reason),
        reason: f.reason.clone(),
        message: f.message.clone(),
        stage: f.stage.clone(),
        version: f.version.clone(),
        time: f.time.0.to_string(),
    }
}

/// `s` as one shell word: as it is when it holds only characters no shell treats specially,
/// else single-quoted (a `'` inside written `'\''`).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'.' | b'_' | b'/' | b':' | b'-' | b'@' | b'%' | b'+' | b'=' | b','
                )
        })
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The model's audience in kubernetes mode, `mlmodels.berth.dev/<namespace>/<model>` (the
/// controller's `names::kube::model_audience`).
pub fn model_audience(namespace: &str, model: &str) -> String {
    format!("mlmodels.{}/{namespace}/{model}", berth_api::GROUP)
}

/// How to call `model`: the mode's sentence, token command and call (docs/models.md,
/// "Authentication" and "Calling a model").
pub fn auth_view(model: &MLModel) -> AuthView {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let status = model.status.as_ref();
    let deployed = status.and_then(|s| s.auth.as_ref());
    let mode = deployed
        .map(|a| a.mode.clone())
        .or_else(|| {
            model
                .spec
                .auth
                .as_ref()
                .and_then(|a| a.mode)
                .map(|m| m.as_str().to_owned())
        })
        .unwrap_or_default();
    let audiences = deployed.map(|a| a.audiences.clone()).unwrap_or_default();
    let ns = shell_word(&namespace);
    let token_command = match mode.as_str() {
        "oidc" => Some(format!(
            "ns={ns}\n\
             id=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{{.data.OIDC_CLIENT_ID}}' | base64 -d)\n\
             secret=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{{.data.OIDC_CLIENT_SECRET}}' | base64 -d)\n\
             issuer=$(kubectl -n $ns get secret berth-oidc -o jsonpath='{{.data.OIDC_ISSUER_URL}}' | base64 -d)\n\
             token=$(curl -s \"$issuer/protocol/openid-connect/token\" \\\n  \
             -d grant_type=client_credentials -d client_id=$id -d client_secret=$secret | jq -r .access_token)"
        )),
        "kubernetes" => {
            let audience = audiences
                .first()
                .cloned()
                .unwrap_or_else(|| model_audience(&namespace, &name));
            Some(format!(
                "ns={ns}\ntoken=$(kubectl -n $ns create token {TOKEN_ACCOUNT} --audience {})",
                shell_word(&audience)
            ))
        }
        _ => None,
    };
    let text = match mode.as_str() {
        "oidc" => "Callers present a bearer token of the platform's identity provider, such as a client_credentials token of the project's OIDC client (Secret berth-oidc)",
        "kubernetes" => "Callers present a ServiceAccount token of this project made for this model's audience",
        "none" => "Anyone who reaches the model may call it: no token is checked",
        _ => "Not known yet: Berth picks oidc when the project has an OIDC client, kubernetes otherwise",
    }
    .to_owned();
    let runtime = model.spec.runtime.name;
    let oip = matches!(
        runtime,
        RuntimeName::Onnx | RuntimeName::Triton | RuntimeName::Mlserver
    );
    let url = status.and_then(|s| s.url.as_deref());
    let call = match (url, mode.as_str()) {
        (Some(url), "oidc" | "kubernetes" | "none") => {
            let header = if mode == "none" {
                String::new()
            } else {
                "-H \"Authorization: Bearer $token\" ".to_owned()
            };
            let base = url.trim_end_matches('/');
            let mut lines = Vec::new();
            if let Some(t) = &token_command {
                lines.push(t.clone());
            }
            if oip {
                let model_path = shell_word(&format!("{base}/v2/models/{name}"));
                lines.push(format!(
                    "curl -s {header}{model_path}    # its inputs and outputs"
                ));
                lines.push(format!(
                    "curl -s {header}{} \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"inputs\":[{{\"name\":\"x\",\"shape\":[1,3],\"datatype\":\"FP32\",\"data\":[1,2,3]}}]}}'",
                    shell_word(&format!("{base}/v2/models/{name}/infer"))
                ));
            } else {
                lines.push(format!(
                    "curl -s {header}{}",
                    shell_word(&format!("{base}/"))
                ));
            }
            Some(lines.join("\n"))
        }
        _ => None,
    };
    AuthView {
        issuer: deployed.and_then(|a| a.issuer.clone()),
        audiences,
        token_command,
        call,
        text,
        mode,
    }
}

/// Promote: the canary's source (and runtime) become the model's, `spec.canary` goes; one merge
/// patch from the spec as read, with `metadata.resourceVersion` so the API server refuses it (409)
/// if the model changed since the page was drawn. `None` without a canary.
pub fn promote_patch(model: &MLModel) -> Option<Value> {
    let canary = model.spec.canary.clone()?;
    let before = serde_json::to_value(&model.spec).ok()?;
    let mut after = model.spec.clone();
    after.canary = None;
    if let Some(source) = canary.source {
        after.source = source;
    }
    if let Some(runtime) = canary.runtime {
        after.runtime = runtime;
    }
    let after = serde_json::to_value(&after).ok()?;
    Some(guarded(
        model,
        json!({"spec": merge_patch(&before, &after)}),
    ))
}

/// `patch` with `metadata.resourceVersion` of the model as read, when known: the API server then
/// applies it only to that version (409 Conflict otherwise).
pub(super) fn guarded(model: &MLModel, mut patch: Value) -> Value {
    if let (Some(version), Value::Object(map)) = (model.resource_version(), &mut patch) {
        map.insert("metadata".into(), json!({"resourceVersion": version}));
    }
    patch
}

/// Rollback: `spec.canary` goes (with the resourceVersion guard). `None` without a canary.
pub fn rollback_patch(model: &MLModel) -> Option<Value> {
    model.spec.canary.as_ref()?;
    Some(guarded(model, json!({"spec": {"canary": null}})))
}

/// The model's page. `events` are its Events (`&[]` for a list row).
pub fn model_view(model: &MLModel, events: &[Event]) -> ModelView {
    let name = model.name_any();
    let namespace = model.namespace().unwrap_or_default();
    let status = model.status.clone().unwrap_or_default();
    let spec = &model.spec;
    let mut conditions: Vec<ConditionView> = status
        .conditions
        .iter()
        .map(|c| condition_view(c, reason_headline))
        .collect();
    conditions.sort_by_key(|c| c.type_ != "Ready");
    let last_failure = status.last_failure.as_ref().map(failure_view).or_else(|| {
        status
            .conditions
            .iter()
            .find(|c| {
                (c.type_ == "Ready" && c.status == "False" && !c.message.is_empty())
                    || (c.type_ == "Degraded" && c.status == "True")
            })
            .map(|c| FailureView {
                headline: reason_headline(&c.reason),
                reason: c.reason.clone(),
                message: c.message.clone(),
                stage: c.type_.clone(),
                version: status.target_version.clone().unwrap_or_default(),
                time: c.last_transition_time.0.to_string(),
            })
    });
    let canary = spec.canary.as_ref().map(|c| {
        let s = status.canary.clone().unwrap_or_default();
        CanaryView {
            weight: c.weight,
            percent: s.percent,
            version: s.version,
            replicas: s.replicas,
            ready_replicas: s.ready_replicas,
            split: s.split,
            method: s.method,
            source: c.source.as_ref().unwrap_or(&spec.source).uri.clone(),
            runtime: c
                .runtime
                .as_ref()
                .unwrap_or(&spec.runtime)
                .name
                .as_str()
                .to_owned(),
            failure: s.failure.as_ref().map(failure_view),
        }
    });
    let mut actions = Vec::new();
    if let Some(patch) = promote_patch(model) {
        actions.push(Action {
            kind: "promote",
            label: "Promote the canary".into(),
            method: "PATCH",
            patch: Some(patch),
            href: None,
            note: "its source and runtime become the model's; the stable replicas roll to it"
                .into(),
        });
    }
    if let Some(patch) = rollback_patch(model) {
        actions.push(Action {
            kind: "rollback",
            label: "Roll back the canary".into(),
            method: "PATCH",
            patch: Some(patch),
            href: None,
            note: "the canary's replicas and volume go; the stable version takes every request"
                .into(),
        });
    }
    actions.push(Action {
        kind: "delete",
        label: "Delete".into(),
        method: "DELETE",
        patch: None,
        href: None,
        note: "the model stops serving; its volumes, Jobs and replicas go with it".into(),
    });
    let active_version = status.active_version.clone().unwrap_or_default();
    let target_version = status.target_version.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let scale = match &spec.autoscaling {
        Some(a) => format!(
            "autoscaling {} to {} at {}% CPU, {ready} ready",
            a.min_replicas, a.max_replicas, a.target_cpu_utilization
        ),
        None => {
            let n = spec.replicas.unwrap_or(1);
            format!(
                "{n} replica{}, {ready} ready",
                if n == 1 { "" } else { "s" }
            )
        }
    };
    ModelView {
        scale,
        phase: status.phase.map_or("Pending", |p| p.as_str()).to_owned(),
        phase_text: phase_text(status.phase).to_owned(),
        url: status.url.clone(),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        runtime: spec.runtime.name.as_str().to_owned(),
        source: spec.source.uri.clone(),
        active_source: status
            .active_source
            .as_ref()
            .map(|s| s.uri.clone())
            .unwrap_or_default(),
        updating: !target_version.is_empty() && target_version != active_version,
        active_version,
        target_version,
        canary,
        last_failure,
        auth: auth_view(model),
        conditions,
        events: event_views(events, 20),
        actions,
        name,
        namespace,
    }
}
