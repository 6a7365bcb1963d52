//! JSON with a stable byte form, so that a document's digest depends on its content only.
//!
//! `oci-spec` keeps labels and annotations in `HashMap`s, whose iteration order changes from run
//! to run; serialising them directly would give a different digest each time.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// `value` as compact JSON with every object's keys sorted (byte order), recursively.
pub fn canonical<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(|source| Error::Json {
        context: format!("serialising {what}"),
        source,
    })?;
    serde_json::to_vec(&sorted(value)).map_err(|source| Error::Json {
        context: format!("serialising {what}"),
        source,
    })
}

/// Rebuilds objects inserting keys in sorted order: sorted whether `serde_json::Map` is a
/// `BTreeMap` or (with serde_json's `preserve_order` feature) an insertion-ordered map.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (key, value) in entries {
                out.insert(key, sorted(value));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_whatever_the_map_order() {
        let mut inner = HashMap::new();
        for key in ["zeta", "alpha", "mid", "Beta"] {
            inner.insert(key.to_owned(), key.len());
        }
        let mut outer = HashMap::new();
        outer.insert("b".to_owned(), vec![inner.clone()]);
        outer.insert("a".to_owned(), vec![inner]);
        let text =
            String::from_utf8(canonical(&outer, "test").unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"a":[{"Beta":4,"alpha":5,"mid":3,"zeta":4}],"b":[{"Beta":4,"alpha":5,"mid":3,"zeta":4}]}"#
        );
    }
}
