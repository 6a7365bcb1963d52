//! Whether a notebook fits the project's quota, said before its pod is asked for, with the
//! numbers: `needs requests.memory 8Gi but the project has 2Gi of 16Gi left (quota berth-quota)`.
//!
//! What the notebook's pod counts against a ResourceQuota is computed as the API server does
//! (Kubernetes' quota evaluator for pods, `pkg/quota/v1/evaluator/core/pods.go`, and the
//! LimitRanger admission plugin, `plugin/pkg/admission/limitranger`):
//! - limits: the container's, else the LimitRange's `default` for Containers;
//! - requests: the container's, else its limit (API defaulting), else the LimitRange's
//!   `defaultRequest`;
//! - counted as `requests.<r>` for every request and `limits.<r>` for cpu, memory and
//!   ephemeral-storage (an extended resource such as nvidia.com/gpu counts as
//!   `requests.nvidia.com/gpu` only), plus `pods: 1`;
//! - each claim Berth would make (the home, a new data volume) counts `requests.storage` and
//!   `persistentvolumeclaims: 1`, and the same per StorageClass
//!   (`<class>.storageclass.storage.k8s.io/requests.storage`) when the class is named.
//!
//! The room is `status.hard - status.used` of each ResourceQuota, plus what the notebook's own pod
//! already holds (a resize replaces that pod: its share comes back). All arithmetic is exact
//! (`berth_api::quantity`, nano-units); keys are compared in their canonical form
//! (`berth_api::quota::canonical`), so `memory` and `requests.memory` are one resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use berth_api::project::ResourceList;
use berth_api::quantity::{self, Nanos};
use berth_api::quota::canonical;

/// What one pod or claim counts, by canonical quota name, in nano-units.
pub type Usage = BTreeMap<String, i128>;

/// Resources counted under `limits.` as well as `requests.`.
const LIMITED: &[&str] = &["cpu", "memory", "ephemeral-storage"];

fn value(q: &Quantity) -> Option<i128> {
    quantity::parse(&q.0).ok().map(|Nanos(n)| n)
}

/// What a pod of one container with these `requests` and `limits` counts, with the LimitRange
/// `limit_range`'s Container defaults applied where the container sets nothing.
pub fn pod_usage(
    requests: &ResourceList,
    limits: &ResourceList,
    limit_range: Option<&LimitRange>,
) -> Usage {
    let container = limit_range
        .and_then(|lr| lr.spec.as_ref())
        .and_then(|s| s.limits.iter().find(|l| l.type_ == "Container"));
    // API defaulting (before admission): a limit given without a request is also the request.
    let mut requests = requests.clone();
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    // LimitRanger: the defaults fill what is still missing.
    let mut limits = limits.clone();
    if let Some(defaults) = container.and_then(|c| c.default.as_ref()) {
        for (k, v) in defaults {
            limits.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(defaults) = container.and_then(|c| c.default_request.as_ref()) {
        for (k, v) in defaults {
            requests.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut usage = Usage::new();
    for (k, v) in &requests {
        if let Some(n) = value(v) {
            *usage
                .entry(canonical(&format!("requests.{k}")))
                .or_default() += n;
        }
    }
    for (k, v) in &limits {
        if LIMITED.contains(&k.as_str())
            && let Some(n) = value(v)
        {
            *usage.entry(format!("limits.{k}")).or_default() += n;
        }
    }
    usage.insert("pods".to_owned(), 1_000_000_000);
    usage
}

/// What the claims Berth is about to make count: `(size, storage class)` each.
pub fn claims_usage<'a>(claims: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Usage {
    let mut usage = Usage::new();
    for (size, class) in claims {
        let Ok(Nanos(bytes)) = quantity::parse(size) else {
            continue;
        };
        *usage.entry("requests.storage".into()).or_default() += bytes;
        *usage.entry("persistentvolumeclaims".into()).or_default() += 1_000_000_000;
        if let Some(class) = class {
            let prefix = format!("{class}.storageclass.storage.k8s.io");
            *usage
                .entry(format!("{prefix}/requests.storage"))
                .or_default() += bytes;
            *usage
                .entry(format!("{prefix}/persistentvolumeclaims"))
                .or_default() += 1_000_000_000;
        }
    }
    usage
}

/// Adds `b` to `a`.
pub fn add(a: &mut Usage, b: &Usage) {
    for (k, v) in b {
        *a.entry(k.clone()).or_default() += v;
    }
}

/// One resource the notebook does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The ResourceQuota's name.
    pub quota: String,
    /// The resource, as the quota names it.
    pub resource: String,
    /// What the notebook needs of it, in nano-units.
    pub needs: i128,
    /// What is left for it (the quota's room plus what its own pod holds).
    pub left: i128,
    /// The quota's hard limit.
    pub hard: i128,
}

impl Shortfall {
    /// `needs requests.memory 8Gi but the project has 2Gi of 16Gi left (quota berth-quota)`.
    pub fn describe(&self) -> String {
        let binary = self.resource.contains("memory") || self.resource.contains("storage");
        format!(
            "needs {} {} but the project has {} of {} left (quota {})",
            self.resource,
            human(self.needs, binary),
            human(self.left.max(0), binary),
            human(self.hard, binary),
            self.quota
        )
    }
}

/// The first resource of `quotas` that `need` does not fit, once `own` (what the notebook's own
/// pod already holds) is given back. A quota whose status has no `hard` yet (the quota controller
/// has not counted it) is not judged.
pub fn shortfall(need: &Usage, own: &Usage, quotas: &[&ResourceQuota]) -> Option<Shortfall> {
    for quota in quotas {
        let Some(status) = quota.status.as_ref() else {
            continue;
        };
        let used: BTreeMap<String, i128> = status
            .used
            .iter()
            .flatten()
            .filter_map(|(k, v)| Some((key(k), value(v)?)))
            .collect();
        for (name, hard) in status.hard.iter().flatten() {
            let k = key(name);
            let (Some(hard), Some(needs)) = (value(hard), need.get(&k)) else {
                continue;
            };
            let mine = own.get(&k).copied().unwrap_or(0);
            if *needs <= mine {
                // It asks for no more than it holds: a running notebook is never stopped here.
                continue;
            }
            let left = hard - used.get(&k).copied().unwrap_or(0) + mine;
            if *needs > left {
                return Some(Shortfall {
                    quota: quota.metadata.name.clone().unwrap_or_default(),
                    resource: name.clone(),
                    needs: *needs,
                    left,
                    hard,
                });
            }
        }
    }
    None
}

/// A quota key in the form usage is counted in (`memory` is `requests.memory`, `count/pods` is
/// `pods`).
fn key(name: &str) -> String {
    match name {
        "count/pods" => "pods".to_owned(),
        other => canonical(other),
    }
}

/// A quantity in nano-units as a person reads it: `16Gi`, `512Mi`, `1500m`, `2`.
pub fn human(nanos: i128, binary: bool) -> String {
    const N: i128 = 1_000_000_000;
    if nanos % N != 0 {
        let milli = nanos / 1_000_000;
        return if nanos % 1_000_000 == 0 {
            format!("{milli}m")
        } else {
            format!("{nanos}n")
        };
    }
    let whole = nanos / N;
    if binary && whole != 0 {
        for (suffix, size) in [
            ("Ti", 1i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if whole % size == 0 {
                return format!("{}{suffix}", whole / size);
            }
        }
    }
    whole.to_string()
}

/// Whether an Event's or error's message is a ResourceQuota's refusal (the API server's
/// `... exceeded quota: NAME, requested: R, used: U, limited: L`).
pub fn is_quota_refusal(message: &str) -> bool {
    message.contains("exceeded quota: ")
}
