//! What every form parser and view shares: reading a submitted urlencoded form (as pairs, the way
//! `axum::Form<Vec<(String, String)>>` gives it), field errors in plain words, names, quantities
//! and durations in the units people read, actions with the exact request each sends, and a JSON
//! merge patch (RFC 7386) between two objects.

use std::time::Duration;

use berth_api::quantity::{self, Nanos};
use serde::Serialize;
use serde_json::{Map, Value};

/// The most fields a form may carry: a spawner with 16 volumes sends about 130.
pub const MAX_FIELDS: usize = 512;

/// The longest value of one field, in bytes (a model's source URI may be 2,048).
pub const MAX_VALUE: usize = 4096;

/// One problem with one submitted field: `field` is the form field's name (the template shows
/// the message next to it; `"form"` for the form as a whole), `message` is plain words saying
/// what to do. Both are raw text: the template escapes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A submitted form: its fields in order, as the browser sent them.
#[derive(Clone, Copy, Debug)]
pub struct Form<'a> {
    fields: &'a [(String, String)],
}

impl<'a> Form<'a> {
    /// Wraps the pairs; [`Form::check`] says whether they are within bounds.
    pub fn new(fields: &'a [(String, String)]) -> Self {
        Self { fields }
    }

    /// Errors for a form that is too large (more than [`MAX_FIELDS`] fields, a value past
    /// [`MAX_VALUE`] bytes) or that sends one of `single` (fields with one value; `prefix*` for
    /// every field starting with `prefix`) twice: a browser never does either, so it is refused
    /// rather than guessed at. Fields not named (such as the CSRF token) are the route's.
    pub fn check(&self, single: &[&str]) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.fields.len() > MAX_FIELDS {
            errors.push(FieldError::new(
                "form",
                format!("the form has more than {MAX_FIELDS} fields"),
            ));
        }
        for (name, value) in self.fields {
            if value.len() > MAX_VALUE && !errors.iter().any(|e| &e.field == name) {
                errors.push(FieldError::new(
                    name.clone(),
                    format!("at most {MAX_VALUE} characters"),
                ));
            }
        }
        let mut repeated: Vec<&str> = Vec::new();
        for (i, (name, _)) in self.fields.iter().enumerate() {
            let listed = single.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == s,
            });
            if listed
                && !repeated.contains(&name.as_str())
                && self.fields[..i].iter().any(|(n, _)| n == name)
            {
                repeated.push(name);
                errors.push(FieldError::new(
                    name.clone(),
                    "this field was sent more than once",
                ));
            }
        }
        errors
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as sent (not trimmed); `None` when absent.
    pub fn raw(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every field's name, in order (repeated names repeated).
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// Whether a checkbox `name` is ticked (`on`, `true`, `1` or `yes`).
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), Some("on" | "true" | "1" | "yes"))
    }
}

/// Whether `s` matches `^[a-z]([-a-z0-9]*[a-z0-9])?$` and has at most `max` characters: the
/// CRDs' rule for Notebook (40) and MLModel (40) names and notebook volume names (22).
pub fn is_object_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `s` matches `^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$` with at most `max` characters: the
/// CRDs' rule for claim, Secret and ServiceAccount names (a DNS subdomain's characters).
pub fn is_subdomain_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A positive quantity of at most 32 characters (the CRDs' size fields), parsed by the API
/// server's rules (`berth_api::quantity`).
pub fn positive_quantity(text: &str) -> Result<Nanos, String> {
    if text.len() > 32 {
        return Err("at most 32 characters".to_owned());
    }
    let n = quantity::parse(text).map_err(|_| {
        format!(
            "{text:?} is not a quantity; use a number with an optional unit, such as 2, 500m or 8Gi"
        )
    })?;
    if n <= Nanos(0) {
        return Err("must be more than 0".to_owned());
    }
    Ok(n)
}

const NANO: i128 = 1_000_000_000;

/// CPU in words: `0.5 CPU`, `2 CPUs`, `0.25 CPU` (at most 3 decimals, as Kubernetes keeps).
pub fn human_cpu(n: Nanos) -> String {
    let millis = (n.0 + 999_999) / 1_000_000;
    let whole = millis / 1000;
    let frac = millis % 1000;
    let number = if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{:03}", frac)
            .trim_end_matches('0')
            .to_owned()
    };
    let unit = if millis <= 1000 { "CPU" } else { "CPUs" };
    format!("{number} {unit}")
}

/// Bytes in binary units: `8 GiB`, `512 MiB`, `1.5 GiB`, `300 bytes`.
pub fn human_bytes(n: Nanos) -> String {
    let bytes = (n.0 + NANO - 1) / NANO;
    const UNITS: [(&str, i128); 5] = [
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let tenths = (bytes * 10 + size / 2) / size;
            return if tenths % 10 == 0 {
                format!("{} {unit}", tenths / 10)
            } else {
                format!("{}.{} {unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} bytes")
}

/// A CPU quantity as the spec writes it, in words; the text itself when it is no quantity.
pub fn cpu_text(text: &str) -> String {
    quantity::parse(text)
        .map(human_cpu)
        .unwrap_or_else(|_| text.to_owned())
}

/// A memory or storage quantity as the spec writes it, in words; the text itself when it is no
/// quantity.
pub fn bytes_text(text: &str) -> String {
    quantity::parse(text)
        .map(human_bytes)
        .unwrap_or_else(|_| text.to_owned())
}

/// A duration as the CRDs accept it (`^([0-9]+(s|m|h))+$`, such as `1h30m`), within 0 to 168h.
/// The same reading as the notebook controller's `validate::parse_duration`, which the console
/// cannot call (berth-controllers is not its dependency).
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() || text.len() > 32 {
        return None;
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            's' | 'm' | 'h' if !digits.is_empty() => {
                let n: u64 = digits.parse().ok()?;
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    _ => 3600,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
                digits.clear();
            }
            _ => return None,
        }
    }
    if !digits.is_empty() || total > 168 * 3600 {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// `90s` → `1m30s`, `3600s` → `1h`: a duration as the spec writes it.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// What a button does, for the route that performs it (as the user) and the template that draws
/// it. The route sends exactly this request to the API server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Action {
    /// `start`, `stop`, `delete`, `open`, `promote`, `rollback`: the route's name for it.
    pub kind: &'static str,
    /// The button's text.
    pub label: String,
    /// What the API server gets: `PATCH` (a JSON merge patch, `application/merge-patch+json`),
    /// `DELETE`, or `GET` for `open` (a link, not a form).
    pub method: &'static str,
    /// The body of a `PATCH`; `None` otherwise.
    pub patch: Option<Value>,
    /// For `open`: the console path to link to.
    pub href: Option<String>,
    /// A sentence the template may show beside the button (what the action keeps or loses).
    pub note: String,
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members, `null` for
/// members `new` lacks. Arrays and scalars are replaced whole. Use it to express a change of a
/// part of a spec without leaving stale fields behind (a merge patch of `{source: {uri}}` alone
/// would keep the old `sha256`).
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (key, value) in n {
                match o.get(key) {
                    Some(before) if before == value => {}
                    Some(before) => {
                        patch.insert(key.clone(), merge_patch(before, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in o.keys() {
                if !n.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`, as the API server does with
/// `application/merge-patch+json`. For tests and previews.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (key, value) in p {
            if value.is_null() {
                t.remove(key);
            } else {
                apply_merge_patch(t.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
