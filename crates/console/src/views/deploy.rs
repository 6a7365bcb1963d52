//! The model deploy form → the `MLModel` to create, or every field's problem in plain words.
//! It refuses what the CRD's schema and CEL rules (crates/api/src/mlmodel.rs, model_auth.rs)
//! refuse, in the same words where it can; the API server checks the object again.
//!
//! Fields: `name`, `sourceUri`, `sha256`, `runtime` (onnx, tensorflow, triton, mlserver, custom),
//! `image` (custom: required; onnx: only with authMode none), `port` (custom only, required),
//! `replicas` (1-100), `cpu`, `memory` (requests; memory also the limit), `gpus` (0-16),
//! `storageSize`, `authMode` (empty: Berth's default; oidc, kubernetes or none), `exposeMode`
//! (cluster, the default; gateway or istio), or instead of `replicas` autoscaling: `minReplicas`
//! (default 1), `maxReplicas`, `targetCPUUtilization` (percent of the CPU request, default 80).
//!
//! [`parse_canary`] reads the canary form of a model's page (`canarySourceUri`,
//! `canaryRuntime`, `weight`) into the merge patch that starts (or changes) a canary.

use berth_api::mlmodel::{
    AuthMode, AuthSpec, Autoscaling, CanarySpec, ExposeMode, ExposeSpec, MLModel, MLModelSpec,
    ModelResources, ModelSource, RuntimeName, RuntimeSpec, StorageSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};

use super::form::{FieldError, Form, is_object_name, merge_patch, positive_quantity};
use super::models::guarded;
use super::spawn::image_reference_problem;

/// The longest model name (the CRD's rule).
pub const NAME_MAX: usize = 40;

const SINGLE: &[&str] = &[
    "name",
    "sourceUri",
    "sha256",
    "runtime",
    "image",
    "port",
    "replicas",
    "cpu",
    "memory",
    "gpus",
    "storageSize",
    "authMode",
    "exposeMode",
    "minReplicas",
    "maxReplicas",
    "targetCPUUtilization",
];

/// Why `uri` cannot be a model's `source.uri`: the CRD's rules on it (scheme, bucket, URL with a
/// host, claim name), plus no whitespace or control characters.
pub fn source_uri_problem(uri: &str) -> Option<&'static str> {
    if uri.len() < 6 || uri.len() > 2048 {
        return Some("a source URI has 6 to 2048 characters");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("a source URI has no spaces or control characters");
    }
    if let Some(rest) = uri.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        let ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        return (!ok).then_some(
            "an s3:// source is s3://bucket/key: the bucket name is 3 to 63 lowercase letters, digits, '.' and '-'",
        );
    }
    if let Some(rest) = uri.strip_prefix("https://") {
        // The authority as written (WHATWG parsing would read `https:///path` as host `path`,
        // where the API server's Go parser sees no host), then the URL as a whole.
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let ok = !authority.is_empty()
            && !rest.contains('\\')
            && reqwest::Url::parse(uri).ok().is_some_and(|u| {
                u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty())
            });
        return (!ok).then_some(
            "an https:// source must be a valid URL with a host, for example https://example.com/models/model.onnx",
        );
    }
    if let Some(rest) = uri.strip_prefix("pvc://") {
        let claim = rest.split('/').next().unwrap_or_default();
        return (!super::form::is_subdomain_name(claim, 253)).then_some(
            "a pvc:// source is pvc://claim-name/path/in/volume, naming a PersistentVolumeClaim in this namespace",
        );
    }
    Some(
        "source URI must start with s3://, https:// or pvc://, for example s3://models/fraud/model.onnx",
    )
}

fn parse_runtime(text: &str) -> Option<RuntimeName> {
    [
        RuntimeName::Onnx,
        RuntimeName::Tensorflow,
        RuntimeName::Triton,
        RuntimeName::Mlserver,
        RuntimeName::Custom,
    ]
    .into_iter()
    .find(|r| r.as_str() == text)
}

fn parse_auth(text: &str) -> Option<AuthMode> {
    [AuthMode::Oidc, AuthMode::Kubernetes, AuthMode::None]
        .into_iter()
        .find(|m| m.as_str() == text)
}

fn number(text: &str, range: std::ops::RangeInclusive<i32>) -> Option<i32> {
    text.parse::<i32>().ok().filter(|n| range.contains(n))
}

/// Parses the deploy form into the MLModel to create in `namespace`; `models` are the names of
/// the namespace's MLModels.
pub fn parse_deploy(
    fields: &[(String, String)],
    namespace: &str,
    models: &[String],
) -> Result<MLModel, Vec<FieldError>> {
    let form = Form::new(fields);
    let mut errors = form.check(SINGLE);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut err = |field: &str, message: &str| errors.push(FieldError::new(field, message));

    let name = form.get("name").unwrap_or_default();
    if !is_object_name(name, NAME_MAX) {
        err(
            "name",
            "a name starts with a letter and has at most 40 lowercase letters, digits and '-' (not at the end)",
        );
    } else if models.iter().any(|m| m == name) {
        err(
            "name",
            "a model of this name already exists in this project",
        );
    }

    let uri = form.get("sourceUri").unwrap_or_default();
    if let Some(problem) = source_uri_problem(uri) {
        err("sourceUri", problem);
    }
    let sha256 = form.get("sha256");
    if let Some(sum) = sha256 {
        if sum.len() != 64
            || !sum
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            err("sha256", "64 lowercase hex digits, as printed by sha256sum");
        } else if uri.ends_with('/') {
            err(
                "sha256",
                "a checksum checks a single file, and the source ends with '/' (a whole prefix): remove it or name one file",
            );
        } else if uri.starts_with("pvc://") {
            err(
                "sha256",
                "a pvc:// source is not downloaded, so there is nothing to check: remove it",
            );
        }
    }

    let runtime = match form.get("runtime").map(parse_runtime) {
        None => RuntimeName::Onnx,
        Some(Some(r)) => r,
        Some(None) => {
            err("runtime", "onnx, tensorflow, triton, mlserver or custom");
            RuntimeName::Onnx
        }
    };
    let auth = match form.get("authMode").map(parse_auth) {
        None => None,
        Some(Some(m)) => Some(m),
        Some(None) => {
            err(
                "authMode",
                "oidc, kubernetes or none (or leave it empty for Berth's default)",
            );
            None
        }
    };
    let expose = match form.get("exposeMode") {
        None | Some("cluster") => None,
        Some("gateway") => Some(ExposeMode::Gateway),
        Some("istio") => Some(ExposeMode::Istio),
        Some(_) => {
            err("exposeMode", "cluster, gateway or istio");
            None
        }
    };
    let image = form.get("image");
    if let Some(image) = image {
        if let Some(problem) = image_reference_problem(image) {
            errors.push(FieldError::new("image", problem));
        } else if runtime == RuntimeName::Onnx && auth != Some(AuthMode::None) {
            errors.push(FieldError::new(
                "image",
                "the onnx runtime checks callers itself, so it runs the platform's image: to serve with your own image, pick the custom runtime (Berth puts its auth proxy in front of it), or set auth to none",
            ));
        }
    }
    let mut err = |field: &str, message: &str| errors.push(FieldError::new(field, message));
    let port = match (form.get("port"), runtime) {
        (None, RuntimeName::Custom) => {
            err("port", "a custom runtime needs the port it listens on");
            None
        }
        (Some(p), RuntimeName::Custom) => {
            let n = number(p, 1..=65535);
            if n.is_none() {
                err("port", "a port number, 1 to 65535");
            }
            n
        }
        (Some(_), _) => {
            err(
                "port",
                "the port applies to custom runtimes only: the built-in runtimes listen on 8080",
            );
            None
        }
        (None, _) => None,
    };
    if runtime == RuntimeName::Custom && image.is_none() {
        err(
            "image",
            "a custom runtime needs the container image that serves the model",
        );
    }
    let replicas = form.get("replicas").and_then(|r| {
        let n = number(r, 1..=100);
        if n.is_none() {
            err("replicas", "a whole number, 1 to 100");
        }
        n
    });
    let autoscaling = match (
        form.get("minReplicas"),
        form.get("maxReplicas"),
        form.get("targetCPUUtilization"),
    ) {
        (None, None, None) => None,
        (min, max, target) => {
            let min_n = min.map_or(Some(1), |m| number(m, 1..=100));
            let max_n = max.and_then(|m| number(m, 1..=100));
            let target_n = target.map_or(Some(80), |t| number(t, 1..=100));
            if min_n.is_none() {
                err("minReplicas", "a whole number, 1 to 100");
            }
            if max_n.is_none() {
                err(
                    "maxReplicas",
                    "autoscaling needs the most replicas, a whole number, 1 to 100",
                );
            }
            if target_n.is_none() {
                err(
                    "targetCPUUtilization",
                    "a percent of the CPU request, 1 to 100",
                );
            }
            if replicas.is_some() || form.get("replicas").is_some() {
                err(
                    "replicas",
                    "set either replicas or autoscaling, not both: with autoscaling the number of replicas follows the load",
                );
            }
            match (min_n, max_n, target_n) {
                (Some(min), Some(max), Some(target)) if min <= max => Some(Autoscaling {
                    min_replicas: min,
                    max_replicas: max,
                    target_cpu_utilization: target,
                }),
                (Some(_), Some(_), Some(_)) => {
                    err("minReplicas", "at most maxReplicas");
                    None
                }
                _ => None,
            }
        }
    };
    let gpus = form.get("gpus").and_then(|g| {
        let n = number(g, 0..=16);
        if n.is_none() {
            err("gpus", "a whole number, 0 to 16");
        }
        n.filter(|n| *n > 0)
    });
    let mut resources = ModelResources {
        gpus,
        ..ModelResources::default()
    };
    for field in ["cpu", "memory"] {
        if let Some(text) = form.get(field) {
            match positive_quantity(text) {
                Ok(_) => {
                    resources
                        .requests
                        .insert(field.into(), Quantity(text.to_owned()));
                    if field == "memory" {
                        resources
                            .limits
                            .insert(field.into(), Quantity(text.to_owned()));
                    }
                }
                Err(message) => err(field, &message),
            }
        }
    }
    let storage = form
        .get("storageSize")
        .and_then(|size| match positive_quantity(size) {
            Ok(_) => Some(StorageSpec {
                size: Some(size.to_owned()),
                storage_class_name: None,
            }),
            Err(message) => {
                err("storageSize", &format!("the volume's size {message}"));
                None
            }
        });

    if !errors.is_empty() {
        return Err(errors);
    }
    let spec = MLModelSpec {
        source: ModelSource {
            uri: uri.to_owned(),
            sha256: sha256.map(str::to_owned),
            timeout: None,
            secret_name: None,
        },
        runtime: RuntimeSpec {
            name: runtime,
            image: image.map(str::to_owned),
            args: Vec::new(),
            port,
            readiness_path: None,
        },
        replicas,
        autoscaling,
        resources: (resources != ModelResources::default()).then_some(resources),
        storage,
        expose: expose.map(|mode| ExposeSpec {
            mode,
            hostname: None,
        }),
        canary: None,
        auth: auth.map(|mode| AuthSpec {
            mode: Some(mode),
            ..AuthSpec::default()
        }),
    };
    let mut model = MLModel::new(name, spec);
    model.metadata.namespace = Some(namespace.to_owned());
    Ok(model)
}

const CANARY_FIELDS: &[&str] = &["canarySourceUri", "canaryRuntime", "weight"];

/// The canary form of `model`'s page → the merge patch that sets `spec.canary` to what the form
/// asks (a new source, a built-in runtime, or both, and the weight, 1 to 99), replacing a canary
/// already there (no field of it left behind), guarded by the model's resourceVersion. A custom
/// runtime's canary needs an image and a port: that one is for kubectl.
pub fn parse_canary(
    fields: &[(String, String)],
    model: &MLModel,
) -> Result<Value, Vec<FieldError>> {
    let form = Form::new(fields);
    let mut errors = form.check(CANARY_FIELDS);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut err = |field: &str, message: &str| errors.push(FieldError::new(field, message));
    let weight = form.get("weight").and_then(|w| number(w, 1..=99));
    if weight.is_none() {
        err(
            "weight",
            "the canary's share of requests, a whole percent from 1 to 99",
        );
    }
    let source = form.get("canarySourceUri");
    if let Some(problem) = source.and_then(source_uri_problem) {
        err("canarySourceUri", problem);
    }
    let runtime = match form.get("canaryRuntime").map(parse_runtime) {
        None => None,
        Some(Some(RuntimeName::Custom)) => {
            err(
                "canaryRuntime",
                "a custom runtime's canary needs its image and port: set spec.canary with kubectl",
            );
            None
        }
        Some(Some(r)) => Some(r),
        Some(None) => {
            err("canaryRuntime", "onnx, tensorflow, triton or mlserver");
            None
        }
    };
    if source.is_none() && form.get("canaryRuntime").is_none() {
        err(
            "canarySourceUri",
            "a canary needs a source or a runtime (or both): what it serves differently",
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let canary = CanarySpec {
        source: source.map(|uri| ModelSource {
            uri: uri.to_owned(),
            ..ModelSource::default()
        }),
        runtime: runtime.map(|name| RuntimeSpec {
            name,
            ..RuntimeSpec::default()
        }),
        weight: weight.unwrap_or(1),
    };
    let new =
        serde_json::to_value(&canary).map_err(|e| vec![FieldError::new("form", e.to_string())])?;
    let patch = match &model.spec.canary {
        Some(old) => {
            let old = serde_json::to_value(old)
                .map_err(|e| vec![FieldError::new("form", e.to_string())])?;
            merge_patch(&old, &new)
        }
        None => new,
    };
    Ok(guarded(model, json!({"spec": {"canary": patch}})))
}
