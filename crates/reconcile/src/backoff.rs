//! Per-object failure counts, for capped exponential backoff between retries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::backoff;

/// Consecutive failures per object key.
#[derive(Default)]
pub struct Backoffs {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoffs {
    /// Records a failure of `key`; returns how long to wait before the next try.
    pub fn failed(&self, key: &str, cap: Duration) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return cap;
        };
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff(*n, cap)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}
