//! Does the live object already hold what we want? If so, applying it again would be a wasted write.
//!
//! The API server fills in defaults, adds metadata and writes quantities in canonical form, so the
//! test is "desired is contained in live": every field we set has the same value there, quantities
//! compared by value, and an empty list or map we set matching an absent one.

use serde_json::Value;

/// Whether `live` already contains everything in `desired`.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, want_value)| match have.get(key) {
                Some(have_value) => contains(have_value, want_value),
                None => is_empty(want_value),
            })
        }
        (Value::Object(_) | Value::Array(_), Value::Null) => is_empty(desired),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| contains(h, w))
        }
        (Value::String(want), Value::String(have)) => want == have || same_quantity(want, have),
        (Value::Number(want), Value::String(have)) | (Value::String(have), Value::Number(want)) => {
            same_quantity(&want.to_string(), have)
        }
        (want, have) => want == have,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// Two strings that both start with a digit (or sign) and parse as the same quantity: the API server
/// rewrites `1024Mi` as `1Gi` and `0.5` as `500m`.
fn same_quantity(a: &str, b: &str) -> bool {
    let numeric =
        |s: &str| s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if !numeric(a) || !numeric(b) {
        return false;
    }
    match (berth_api::quantity::parse(a), berth_api::quantity::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_with_defaults_and_metadata_contains_desired() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"port": 53}]}});
        let live = json!({
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "7", "labels": {"x": "1", "y": "2"}},
            "spec": {"ports": [{"port": 53, "protocol": "TCP"}]},
            "status": {}
        });
        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_value_or_a_missing_list_item_is_not_contained() {
        let desired = json!({"spec": {"ports": [{"port": 53}, {"port": 54}]}});
        assert!(!contains(
            &json!({"spec": {"ports": [{"port": 53}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"ports": [{"port": 53}, {"port": 55}]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"metadata": {"labels": {"x": "2"}}}),
            &json!({"metadata": {"labels": {"x": "1"}}})
        ));
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(contains(
            &json!({"hard": {"memory": "1Gi"}}),
            &json!({"hard": {"memory": "1024Mi"}})
        ));
        assert!(contains(
            &json!({"hard": {"cpu": "500m"}}),
            &json!({"hard": {"cpu": "0.5"}})
        ));
        assert!(contains(
            &json!({"hard": {"pods": "10"}}),
            &json!({"hard": {"pods": 10}})
        ));
        assert!(!contains(
            &json!({"hard": {"cpu": "1"}}),
            &json!({"hard": {"cpu": "2"}})
        ));
        // Names are not quantities, even when they look alike.
        assert!(!contains(&json!({"name": "1k"}), &json!({"name": "1000x"})));
    }

    #[test]
    fn empty_desired_collections_match_absent_ones() {
        assert!(contains(
            &json!({"spec": {}}),
            &json!({"spec": {"ingress": []}})
        ));
        assert!(contains(
            &json!({"spec": {"podSelector": null}}),
            &json!({"spec": {"podSelector": {}}})
        ));
        assert!(!contains(
            &json!({"spec": {}}),
            &json!({"spec": {"ingress": [{}]}})
        ));
    }
}
