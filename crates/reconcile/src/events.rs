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

    /// An Event for every condition whose status differs between `before` and `after` (a new
    /// condition counts as a change unless it is Unknown).
    pub async fn transitions(
        &self,
        reference: &ObjectReference,
        before: &[Condition],
        after: &[Condition],
    ) {
        for condition in after {
            let previous = before.iter().find(|c| c.type_ == condition.type_);
            let changed = match previous {
                Some(p) => p.status != condition.status,
                None => condition.status != "Unknown",
            };
            if !changed {
                continue;
            }
            let type_ = if condition.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            let note = format!(
                "{} is {}: {}",
                condition.type_, condition.status, condition.message
            );
            self.publish(reference, type_, &condition.reason, &note)
                .await;
        }
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
