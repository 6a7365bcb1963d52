//! The Project's status, from what the reconcile found and did. Pure.

use k8s_openapi::api::core::v1::ResourceQuotaStatus;
use k8s_openapi::jiff::Timestamp;

use berth_api::conditions::{self, Status};
use berth_api::project::{DeletionPolicy, QuotaUsage};
use berth_api::providers::ExternalStatus;
use berth_api::{Project, ProjectStatus, Role};
use berth_reconcile::Error;

use super::members::{Subject, owners_summary};
use super::part::{Part, PartState};

pub const READY: &str = "Ready";
pub const NAMESPACE_READY: &str = "NamespaceReady";
pub const ACCESS_READY: &str = "AccessReady";
pub const QUOTA_READY: &str = "QuotaReady";
pub const NETWORK_READY: &str = "NetworkReady";

/// What the status names whatever the outcome.
#[derive(Clone, Debug)]
pub struct Summary {
    pub namespace: String,
    pub subjects: Vec<Subject>,
    /// The policy in force; None when the project is invalid (then the recorded one stays).
    pub deletion_policy: Option<DeletionPolicy>,
}

/// What one reconcile came to.
#[derive(Debug)]
pub enum Outcome {
    /// The spec cannot be built (reason `InvalidSpec` or `NamespaceReserved`); nothing applied.
    Invalid { reason: String, message: String },
    /// The namespace exists and is not this project's; nothing was applied.
    NamespaceConflict(String),
    /// The namespace is being deleted; nothing was applied.
    NamespaceTerminating,
    /// Applying failed part-way; the next reconcile retries.
    ApplyFailed(Error),
    /// Everything was applied (boxed: it is by far the largest outcome).
    Applied(Box<Applied>),
    /// The Project is being deleted and something holds it: why, and what to do.
    DeletionBlocked(String),
}

/// What a reconcile that applied everything found.
#[derive(Debug, Default)]
pub struct Applied {
    pub quota: Option<ResourceQuotaStatus>,
    /// Istio, where the settings enable it: the AuthorizationPolicy's kind and version written
    /// (`Ok`, as discovery describes it), or why none can be (`Err`: not served).
    pub istio: Option<Result<String, String>>,
    /// The admin-tier network policy written, as discovery describes its kind; `None` where the
    /// cluster serves no admin-tier API (nothing is written, nothing waits for it).
    pub admin_tier: Option<String>,
    pub network_policies: usize,
    /// Egress ranges that open less than they ask, or nothing.
    pub network_notes: Vec<String>,
    /// The outside parts: bucket, OIDC client, registry project.
    pub parts: Vec<(Part, PartState)>,
    pub external: Option<ExternalStatus>,
    /// The namespace became the platform's after the project had it (see `Validated`).
    pub now_reserved: Option<String>,
    pub adopted: bool,
}

/// The status for `project` after `outcome`, keeping transition times of unchanged conditions.
pub fn status(
    project: &Project,
    summary: &Summary,
    outcome: &Outcome,
    now: Timestamp,
) -> ProjectStatus {
    let previous = project.status.clone().unwrap_or_default();
    let generation = project.metadata.generation;
    let namespace = summary.namespace.as_str();
    let subjects = &summary.subjects;
    let mut cs = previous.conditions.clone();
    let put = |cs: &mut Vec<_>, type_: &str, status: Status, reason: &str, message: &str| {
        conditions::set(cs, type_, status, reason, message, generation, now);
    };
    let count = |role: Role| subjects.iter().filter(|s| s.role == role).count();
    let access_message = format!(
        "{} owner(s), {} editor(s) and {} viewer(s) have access to namespace {namespace}",
        count(Role::Owner),
        count(Role::Editor),
        count(Role::Viewer)
    );
    let mut quota_usage = previous.quota.clone();
    let mut external = previous.external.clone();
    let mut adopted = previous.namespace_adopted;
    match outcome {
        Outcome::Invalid { reason, message } => {
            for t in [NAMESPACE_READY, ACCESS_READY, QUOTA_READY, NETWORK_READY] {
                put(
                    &mut cs,
                    t,
                    Status::False,
                    reason,
                    "nothing was changed: see Ready",
                );
            }
            put(&mut cs, READY, Status::False, reason, message);
        }
        Outcome::NamespaceConflict(message) => {
            put(
                &mut cs,
                NAMESPACE_READY,
                Status::False,
                "NamespaceConflict",
                message,
            );
            for t in [ACCESS_READY, QUOTA_READY, NETWORK_READY] {
                put(
                    &mut cs,
                    t,
                    Status::False,
                    "NamespaceConflict",
                    "waiting for the namespace conflict to be resolved",
                );
            }
            put(&mut cs, READY, Status::False, "NamespaceConflict", message);
        }
        Outcome::NamespaceTerminating => {
            let message = format!(
                "namespace {namespace} is being deleted; Berth recreates it once it is gone"
            );
            for t in [NAMESPACE_READY, READY] {
                put(&mut cs, t, Status::False, "NamespaceTerminating", &message);
            }
        }
        Outcome::ApplyFailed(e) => {
            put(
                &mut cs,
                READY,
                Status::False,
                e.category.reason(),
                &format!(
                    "applying the project's objects failed and will be retried: {}",
                    e.message
                ),
            );
        }
        Outcome::DeletionBlocked(message) => {
            put(&mut cs, READY, Status::False, "DeletionBlocked", message);
        }
        Outcome::Applied(applied) => {
            external = applied.external.clone();
            adopted = Some(applied.adopted).filter(|a| *a);
            match &applied.now_reserved {
                Some(why) => put(
                    &mut cs,
                    NAMESPACE_READY,
                    Status::False,
                    "NamespaceReserved",
                    why,
                ),
                None => put(
                    &mut cs,
                    NAMESPACE_READY,
                    Status::True,
                    "NamespaceActive",
                    &if applied.adopted {
                        format!(
                            "namespace {namespace} is active (adopted: it existed before the project, and the Delete policy keeps it)"
                        )
                    } else {
                        format!("namespace {namespace} is active")
                    },
                ),
            }
            put(
                &mut cs,
                ACCESS_READY,
                Status::True,
                "RoleBindingsApplied",
                &access_message,
            );
            match applied.quota.as_ref().and_then(|q| q.hard.as_ref()) {
                Some(hard) if !hard.is_empty() => {
                    put(
                        &mut cs,
                        QUOTA_READY,
                        Status::True,
                        "QuotaEnforced",
                        "the ResourceQuota and LimitRange are in force",
                    );
                    quota_usage = applied.quota.as_ref().map(|q| QuotaUsage {
                        hard: q.hard.clone().unwrap_or_default(),
                        used: q.used.clone().unwrap_or_default(),
                    });
                }
                _ => put(
                    &mut cs,
                    QUOTA_READY,
                    Status::False,
                    "QuotaPending",
                    "the ResourceQuota is applied; waiting for the quota controller to report usage",
                ),
            }
            match &applied.istio {
                Some(Err(why)) => put(
                    &mut cs,
                    NETWORK_READY,
                    Status::False,
                    "IstioNotInstalled",
                    &format!(
                        "the platform settings enable Istio, but {why}: install Istio (Berth writes AuthorizationPolicy security.istio.io/v1 or v1beta1), or set istio.enabled to false; Berth looks again when the operator restarts"
                    ),
                ),
                istio => {
                    let mut message = format!(
                        "default deny with {} allow rule(s)",
                        applied.network_policies.saturating_sub(1)
                    );
                    if let Some(admin) = &applied.admin_tier {
                        message.push_str(&format!(
                            "; ingress from other namespaces denied at the admin tier ({admin}), which the project's NetworkPolicies cannot override"
                        ));
                    }
                    if let Some(Ok(found)) = istio {
                        message.push_str(&format!("; members let in through {found}"));
                    }
                    for note in &applied.network_notes {
                        message.push_str(&format!("; {note}"));
                    }
                    put(
                        &mut cs,
                        NETWORK_READY,
                        Status::True,
                        "NetworkPoliciesApplied",
                        &message,
                    );
                }
            }
            let mut required = vec![NAMESPACE_READY, ACCESS_READY, QUOTA_READY, NETWORK_READY];
            for (part, state) in &applied.parts {
                match state {
                    PartState::Disabled => cs.retain(|c| c.type_ != part.condition()),
                    PartState::Unchanged => {}
                    PartState::Set(status, reason, message) => {
                        put(&mut cs, part.condition(), *status, reason, message)
                    }
                }
                if *state != PartState::Disabled {
                    if conditions::get(&cs, part.condition()).is_none() {
                        put(
                            &mut cs,
                            part.condition(),
                            Status::Unknown,
                            "Pending",
                            "not provisioned yet",
                        );
                    }
                    required.push(part.condition());
                }
            }
            let not_ready: Vec<&str> = required
                .into_iter()
                .filter(|t| !conditions::is_true(&cs, t))
                .collect();
            if not_ready.is_empty() {
                put(
                    &mut cs,
                    READY,
                    Status::True,
                    "ProjectReady",
                    &format!("namespace {namespace} is ready for its members"),
                );
            } else {
                let first = not_ready
                    .first()
                    .and_then(|t| conditions::get(&cs, t))
                    .map(|c| (c.reason.clone(), c.message.clone()));
                let (reason, message) = first.unwrap_or_else(|| ("NotReady".into(), String::new()));
                put(
                    &mut cs,
                    READY,
                    Status::False,
                    &reason,
                    &format!("{} not ready: {message}", not_ready.join(", ")),
                );
            }
        }
    }
    ProjectStatus {
        observed_generation: generation,
        namespace: Some(namespace.to_owned()).filter(|n| !n.is_empty()),
        namespace_adopted: adopted,
        deletion_policy: summary.deletion_policy.or(previous.deletion_policy),
        owners: Some(owners_summary(subjects)).filter(|s| !s.is_empty()),
        quota: quota_usage,
        external,
        conditions: cs,
    }
}
