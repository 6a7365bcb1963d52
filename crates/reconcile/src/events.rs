//! Events: one for each condition that changes status, so `kubectl describe` tells the story.
//!
//! A namespaced object's Events land in its namespace. A cluster-scoped object's (a Project's)
//! land in `default`, which its members cannot read and everyone else can: publish them where the
//! people who work with the object look too, with [`in_namespace`]. Notes are for users: say what
//! failed and what to do in Berth's words, and leave raw backend answers to the operator log
//! ([`crate::Error::log_text`]).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// Publishes Events for one controller.
///
/// Each Event is published by a fresh [`Recorder`]: kube's recorder keeps every Event it
/// published for 6 minutes to count repeats into a series, which at 1,000 Projects onboarding was
/// 3.3 MiB of the operator's heap (heaptrack, docs/benchmarks.md). Berth publishes an Event only
/// when a condition changes status, so a series would seldom count more than one.
#[derive(Clone)]
pub struct Announcer {
    client: Client,
    reporter: Reporter,
}

impl Announcer {
    pub fn new(client: Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self { client, reporter }
    }

    /// One Event for the conditions whose status differs between `before` and `after` (a new
    /// condition counts as a change unless it is Unknown), naming each. Its reason is the Ready
    /// condition's when that changed, else the first changed condition's.
    pub async fn transitions(
        &self,
        reference: &ObjectReference,
        before: &[Condition],
        after: &[Condition],
    ) {
        let changed: Vec<&Condition> = after
            .iter()
            .filter(
                |condition| match before.iter().find(|c| c.type_ == condition.type_) {
                    Some(p) => p.status != condition.status,
                    None => condition.status != "Unknown",
                },
            )
            .collect();
        let Some(lead) = changed
            .iter()
            .find(|c| c.type_ == "Ready")
            .or(changed.first())
        else {
            return;
        };
        let type_ = if changed.iter().all(|c| c.status == "True") {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let mut note = format!("{} is {}: {}", lead.type_, lead.status, lead.message);
        let others: Vec<String> = changed
            .iter()
            .filter(|c| c.type_ != lead.type_)
            .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
            .collect();
        if !others.is_empty() {
            note.push_str(&format!("; {}", others.join(", ")));
        }
        self.publish(reference, type_, &lead.reason, &note).await;
    }

    /// One Event. Failing to publish is logged, never fatal.
    pub async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1024)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        if let Err(e) = recorder.publish(&event, reference).await {
            warn!(error = %e, reason, "could not publish an event");
        }
    }
}

/// The reference under which Events about the cluster-scoped object `reference` are published
/// into `namespace` (a Project's Events into its namespace, where its members can read them with
/// `kubectl events` or `kubectl get events`). The API server keeps Events about an object without a
/// namespace in `default`; one that names a namespace may be published there, so the reference
/// carries `namespace`, and everything else (kind, name, UID) names the object as it is.
pub fn in_namespace(reference: &ObjectReference, namespace: &str) -> ObjectReference {
    ObjectReference {
        namespace: Some(namespace.to_owned()),
        ..reference.clone()
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_scoped_reference_moves_into_the_namespace_and_keeps_its_identity() {
        let project = ObjectReference {
            api_version: Some("berth.dev/v1alpha1".into()),
            kind: Some("Project".into()),
            name: Some("fraud".into()),
            uid: Some("u-1".into()),
            ..Default::default()
        };
        let moved = in_namespace(&project, "fraud-ns");
        assert_eq!(moved.namespace.as_deref(), Some("fraud-ns"));
        assert_eq!(moved.uid, project.uid);
        assert_eq!(moved.kind, project.kind);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
