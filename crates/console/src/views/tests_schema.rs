//! A check of an object against a CRD's OpenAPI schema, as far as it goes without an API
//! server: types, required fields, unknown fields (which the API server would prune), string
//! lengths, list and map sizes, integer ranges, enums. Not the CEL rules (`x-kubernetes-
//! validations`): the console has no CEL evaluator; the parsers' own checks mirror those, and
//! tests compare the rules' text where they can.

use kube::CustomResourceExt;
use serde_json::Value;

/// The problems of `object` (a serialized custom resource) against `K`'s CRD schema.
pub(super) fn schema_problems<K: CustomResourceExt>(object: &Value) -> Vec<String> {
    let crd = serde_json::to_value(K::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert!(schema.is_object(), "no schema in the CRD");
    let mut out = Vec::new();
    check(schema, object, "", &mut out);
    out
}

/// Every `x-kubernetes-validations` rule text in `K`'s CRD, with its message.
pub(super) fn cel_rules<K: CustomResourceExt>() -> Vec<(String, String)> {
    let crd = serde_json::to_value(K::crd()).unwrap();
    let mut out = Vec::new();
    collect(&crd, &mut out);
    out
}

fn collect(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(rules)) = m.get("x-kubernetes-validations") {
                for r in rules {
                    out.push((
                        r["rule"].as_str().unwrap_or_default().to_owned(),
                        r["message"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
            m.values().for_each(|v| collect(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if value.is_null() {
        if schema["nullable"] != true {
            out.push(format!("{path}: null"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            out.push(format!("{path}: not an int or string"));
        }
        return;
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        out.push(format!("{path}: {value} not in {options:?}"));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object() else {
                out.push(format!("{path}: not an object"));
                return;
            };
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push(format!("{path}.{r}: required"));
                    }
                }
            }
            if let Some(max) = schema["maxProperties"].as_u64()
                && map.len() as u64 > max
            {
                out.push(format!("{path}: more than {max} properties"));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                // The API server checks these itself; a CRD's schema need not list them.
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let sub = format!("{path}.{k}");
                match (
                    properties.and_then(|p| p.get(k)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => check(s, v, &sub, out),
                    (None, Some(s)) if s.is_object() => check(s, v, &sub, out),
                    (None, _)
                        if properties.is_some()
                            && schema["x-kubernetes-preserve-unknown-fields"] != true =>
                    {
                        out.push(format!("{sub}: unknown field (pruned)"))
                    }
                    _ => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                out.push(format!("{path}: not an array"));
                return;
            };
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                out.push(format!("{path}: more than {max} items"));
            }
            if let Some(min) = schema["minItems"].as_u64()
                && (items.len() as u64) < min
            {
                out.push(format!("{path}: fewer than {min} items"));
            }
            for (i, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                out.push(format!("{path}: not a string"));
                return;
            };
            let n = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64()
                && n > max
            {
                out.push(format!("{path}: longer than {max}"));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && n < min
            {
                out.push(format!("{path}: shorter than {min}"));
            }
        }
        Some("integer") => {
            let Some(n) = value.as_i64() else {
                out.push(format!("{path}: not an integer"));
                return;
            };
            if let Some(max) = schema["maximum"].as_i64()
                && n > max
            {
                out.push(format!("{path}: above {max}"));
            }
            if let Some(min) = schema["minimum"].as_i64()
                && n < min
            {
                out.push(format!("{path}: below {min}"));
            }
        }
        Some("boolean") if !value.is_boolean() => {
            out.push(format!("{path}: not a boolean"));
        }
        _ => {}
    }
}
