//! Requests counted by the API server itself: its audit log (JSON lines, metadata level), read once
//! per run. Timestamps are parsed and compared as instants, never as strings (RFC 3339 allows
//! offsets and any number of fractional digits, so string order is not time order).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;

/// One request in the log, reduced to what the benchmark counts.
pub struct Request {
    user: String,
    at: Timestamp,
    verb: String,
    resource: String,
    subresource: Option<String>,
}

impl Request {
    fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    fn is_lease(&self) -> bool {
        self.resource == "leases"
    }
}

/// Counts of one user's requests within a time range.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Every request but those on Leases.
    pub all: usize,
    /// Writes (create, update, patch, delete) but those on Leases.
    pub writes: usize,
    /// Writes on Leases (leader election), counted apart.
    pub lease_writes: usize,
}

/// The parsed audit log.
pub struct AuditLog {
    requests: Vec<Request>,
}

impl AuditLog {
    /// Reads and parses `path`. Lines that are not audit events are skipped.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the audit log {}", path.display()))?;
        let mut requests = Vec::new();
        // A long-running request (a watch) is logged twice, when its response starts and when it
        // completes, under one audit ID: count it once.
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if !seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned()) {
                continue;
            }
            let Some(at) = event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
            else {
                continue;
            };
            requests.push(Request {
                user: event["user"]["username"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                at,
                verb: event["verb"].as_str().unwrap_or_default().to_owned(),
                resource: event["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                subresource: event["objectRef"]["subresource"]
                    .as_str()
                    .map(str::to_owned),
            });
        }
        Ok(Self { requests })
    }

    /// `user`'s requests received in [from, to), with a breakdown by verb and resource printed on
    /// stderr under `label`.
    pub fn counts(&self, user: &str, from: Timestamp, to: Timestamp, label: &str) -> Counts {
        let mut counts = Counts::default();
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.requests {
            if r.user != user || r.at < from || r.at >= to {
                continue;
            }
            if r.is_lease() {
                if r.is_write() {
                    counts.lease_writes += 1;
                }
                continue;
            }
            counts.all += 1;
            if r.is_write() {
                counts.writes += 1;
            }
            let sub = r
                .subresource
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            *by_kind
                .entry(format!("{} {}{sub}", r.verb, r.resource))
                .or_default() += 1;
        }
        if !by_kind.is_empty() {
            let breakdown: Vec<String> = by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!("[onboard]     {label}: {}", breakdown.join(", "));
        }
        counts
    }
}

/// Waits until no one has written anything but Leases and Events for `quiet`: a fresh control
/// plane has settled (the controller-manager's start-up writes, Berth's install), so every
/// variant's clock starts on an equally idle API server.
pub async fn wait_settled(
    path: &Path,
    quiet: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<()> {
    let start = std::time::Instant::now();
    let mut last = (usize::MAX, std::time::Instant::now());
    loop {
        let log = AuditLog::read(path)?;
        let count = log
            .requests
            .iter()
            .filter(|r| r.is_write() && !r.is_lease() && r.resource != "events")
            .count();
        if count != last.0 {
            last = (count, std::time::Instant::now());
        } else if last.1.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("the control plane kept writing for {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Waits until `user` watches `resource` and has then sent no request for `quiet`: the
/// controller's start-up (its lists and watches) is over, so what follows is per-object work.
pub async fn wait_started(
    path: &Path,
    user: &str,
    resource: &str,
    quiet: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<()> {
    let start = std::time::Instant::now();
    let mut last = (usize::MAX, std::time::Instant::now());
    loop {
        let log = AuditLog::read(path)?;
        let mine: Vec<&Request> = log.requests.iter().filter(|r| r.user == user).collect();
        let watching = mine
            .iter()
            .any(|r| r.verb == "watch" && r.resource == resource);
        let count = mine.iter().filter(|r| !r.is_lease()).count();
        if count != last.0 {
            last = (count, std::time::Instant::now());
        } else if watching && last.1.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("{user} did not start watching {resource} within {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_compare_as_instants_not_strings() -> Result<()> {
        // As strings, "…:00.5Z" > "…:00.123456Z" but also "…:00Z" > "…:00.9Z" ('Z' > '.'):
        // string order and time order differ.
        let whole: Timestamp = "2026-11-30T10:00:00Z".parse()?;
        let later: Timestamp = "2026-11-30T10:00:00.9Z".parse()?;
        assert!(whole < later);
        assert!("2026-11-30T10:00:00Z" > "2026-11-30T10:00:00.9Z");
        let offset: Timestamp = "2026-11-30T11:00:00.5+01:00".parse()?;
        assert!(offset > whole && offset < later);
        Ok(())
    }
}
