//! Events: one for each condition that changes status, so `kubectl describe` tells the story.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::warn;

/// Publishes Events for one controller.
#[derive(Clone)]
pub struct Announcer {
    recorder: Recorder,
}

impl Announcer {
    pub fn new(client: Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
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
        if let Err(e) = self.recorder.publish(&event, reference).await {
            warn!(error = %e, reason, "could not publish an event");
        }
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
