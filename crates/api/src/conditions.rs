//! Conditions as the Kubernetes API conventions define them, and the one rule for updating them:
//! `lastTransitionTime` moves only when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// Sets `type_` in `conditions` to the given status, reason and message.
///
/// The transition time is `now` only when the status changes (or the condition is new); otherwise it
/// is kept. Returns whether anything changed, so a caller can skip a write when nothing did.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let flipped = c.status != status.as_str();
            let changed = flipped
                || c.reason != reason
                || c.message != message
                || c.observed_generation != observed_generation;
            if flipped {
                c.last_transition_time = Time(now);
                c.status = status.as_str().to_owned();
            }
            c.reason = reason.to_owned();
            c.message = message.to_owned();
            c.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_owned(),
                status: status.as_str().to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn new_condition_is_added_with_now() {
        let mut cs = Vec::new();
        assert!(set(
            &mut cs,
            "Ready",
            Status::False,
            "Pending",
            "waiting",
            Some(1),
            at(10)
        ));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].status, "False");
        assert_eq!(cs[0].last_transition_time, Time(at(10)));
    }

    #[test]
    fn same_condition_changes_nothing() {
        let mut cs = Vec::new();
        set(
            &mut cs,
            "Ready",
            Status::True,
            "Ok",
            "all good",
            Some(1),
            at(10),
        );
        let before = cs.clone();
        assert!(!set(
            &mut cs,
            "Ready",
            Status::True,
            "Ok",
            "all good",
            Some(1),
            at(20)
        ));
        assert_eq!(cs, before);
    }

    #[test]
    fn message_change_keeps_transition_time() {
        let mut cs = Vec::new();
        set(
            &mut cs,
            "Ready",
            Status::False,
            "Pending",
            "one",
            Some(1),
            at(10),
        );
        assert!(set(
            &mut cs,
            "Ready",
            Status::False,
            "Pending",
            "two",
            Some(2),
            at(20)
        ));
        assert_eq!(cs[0].last_transition_time, Time(at(10)));
        assert_eq!(cs[0].message, "two");
        assert_eq!(cs[0].observed_generation, Some(2));
    }

    #[test]
    fn flip_moves_transition_time() {
        let mut cs = Vec::new();
        set(
            &mut cs,
            "Ready",
            Status::False,
            "Pending",
            "one",
            Some(1),
            at(10),
        );
        assert!(set(
            &mut cs,
            "Ready",
            Status::True,
            "Ok",
            "done",
            Some(1),
            at(30)
        ));
        assert_eq!(cs[0].last_transition_time, Time(at(30)));
        assert!(is_true(&cs, "Ready"));
    }
}
