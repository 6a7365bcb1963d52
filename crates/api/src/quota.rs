//! Quota resource names as a ResourceQuota understands them: which spellings name the same
//! resource, which names it accepts, and how a project's quota compares with the platform's
//! default and maximum. Every comparison goes through [`canonical`], so no spelling of a resource
//! escapes its maximum.
//!
//! Sources: the Kubernetes documentation "Resource Quotas" (compute, storage, extended-resource and
//! object-count quotas) and the quota evaluators in `k8s.io/kubernetes`
//! (`pkg/quota/v1/evaluator/core/pods.go`: a container's CPU request counts as both `cpu` and
//! `requests.cpu`, memory and ephemeral storage likewise, a huge-page request as both
//! `hugepages-<size>` and `requests.hugepages-<size>`, and an extended resource only under
//! `requests.<name>`; `services.go` and `persistent_volume_claims.go`: `count/services` and
//! `services`, `count/persistentvolumeclaims` and `persistentvolumeclaims` count the same
//! objects; `registry.go`: the same for secrets, configmaps, replicationcontrollers and
//! resourcequotas). The validation of quota names is `ValidateResourceQuotaResourceName` in
//! `pkg/apis/core/validation`.
//!
//! The same rules are written in CEL in `deploy/rbac/20-admission.yaml` (the maximum) and in the
//! CRD rules of `Project` and `PlatformSettings`; the attack suite in the cluster tests checks the
//! admission policy against every spelling [`spellings`] lists.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::project::ResourceList;
use crate::quantity;

/// Compute resources whose bare name Kubernetes counts as their request.
const REQUESTED_AS_BARE: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// Object counts Kubernetes counts under both `count/<resource>` and `<resource>`.
/// (`count/pods` is not among them: it counts finished pods too, `pods` does not.)
const COUNTED_TWICE: [&str; 6] = [
    "services",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// The quota names without a `/` that a ResourceQuota accepts (`IsStandardQuotaResourceName`),
/// besides the huge-page ones.
const STANDARD: [&str; 19] = [
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// Whether `name` (without a `requests.` or `limits.` prefix) is an extended resource such as
/// `nvidia.com/gpu`: a domain-prefixed name outside Kubernetes' own domains and not an object
/// count or a storage-class quota.
fn is_extended(name: &str) -> bool {
    match name.split_once('/') {
        Some((domain, _)) => {
            domain != "count" && !domain.ends_with("kubernetes.io") && !domain.ends_with("k8s.io")
        }
        None => false,
    }
}

/// The one name of the resource `name` spells, so that every spelling of a resource maps to the
/// same key:
///
/// - `cpu`, `memory`, `ephemeral-storage` → `requests.cpu`, `requests.memory`,
///   `requests.ephemeral-storage`;
/// - `hugepages-<size>` and `limits.hugepages-<size>` → `requests.hugepages-<size>` (huge pages
///   cannot be overcommitted: their requests equal their limits);
/// - an extended resource `<domain>/<name>` and `limits.<domain>/<name>` →
///   `requests.<domain>/<name>` (likewise never overcommitted, and Kubernetes counts only the
///   `requests.` form);
/// - `count/services`, `count/secrets`, `count/configmaps`, `count/persistentvolumeclaims`,
///   `count/replicationcontrollers`, `count/resourcequotas` → the name without `count/`;
/// - anything else is its own name.
pub fn canonical(name: &str) -> String {
    if REQUESTED_AS_BARE.contains(&name) || name.starts_with("hugepages-") {
        return format!("requests.{name}");
    }
    if let Some(rest) = name.strip_prefix("limits.")
        && (rest.starts_with("hugepages-") || is_extended(rest))
    {
        return format!("requests.{rest}");
    }
    if let Some(rest) = name.strip_prefix("count/")
        && COUNTED_TWICE.contains(&rest)
    {
        return rest.to_owned();
    }
    if is_extended(name) && !name.starts_with("requests.") {
        return format!("requests.{name}");
    }
    name.to_owned()
}

/// [`canonical`] as a CEL expression of the string variable `k`, for CRD rules and admission
/// policies. `deploy/rbac/20-admission.yaml` carries it verbatim (a test checks that).
pub fn canonical_cel(k: &str) -> String {
    let extended = |x: &str| {
        format!(
            "({x}.contains('/') && !{x}.startsWith('count/') && !{x}.split('/')[0].endsWith('kubernetes.io') && !{x}.split('/')[0].endsWith('k8s.io'))"
        )
    };
    let counted = COUNTED_TWICE
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let bare = REQUESTED_AS_BARE
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let limited = format!("{k}.substring(7)");
    format!(
        "(({k} in [{bare}] || {k}.startsWith('hugepages-')) ? 'requests.' + {k} : ({k}.startsWith('limits.') && ({limited}.startsWith('hugepages-') || {ext_limited})) ? 'requests.' + {limited} : ({k}.startsWith('count/') && {k}.substring(6) in [{counted}]) ? {k}.substring(6) : ({ext} && !{k}.startsWith('requests.')) ? 'requests.' + {k} : {k})",
        ext_limited = extended(&limited),
        ext = extended(k),
    )
}

/// A CRD rule on a ResourceList: every key is a quota resource name ([`is_quota_resource`]).
pub fn names_rule() -> String {
    format!("self.all(k, {})", is_quota_resource_cel("k"))
}

/// A CRD rule on a ResourceList: no two keys spell one resource ([`normalise`] would refuse it).
pub fn once_rule() -> String {
    format!(
        "self.all(a, self.all(b, a == b || {} != {}))",
        canonical_cel("a"),
        canonical_cel("b")
    )
}

/// [`is_quota_resource`] as a CEL expression of the string variable `k`.
pub fn is_quota_resource_cel(k: &str) -> String {
    let standard = STANDARD
        .iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "({k} in [{standard}] || {k}.startsWith('hugepages-') || {k}.startsWith('requests.hugepages-') || {k}.startsWith('limits.hugepages-') || {k}.contains('/'))"
    )
}

/// Every spelling of the resource whose canonical name is `canonical_name` that a ResourceQuota
/// accepts, the canonical one first.
pub fn spellings(canonical_name: &str) -> Vec<String> {
    let mut all = vec![canonical_name.to_owned()];
    if let Some(rest) = canonical_name.strip_prefix("requests.") {
        if REQUESTED_AS_BARE.contains(&rest) || rest.starts_with("hugepages-") {
            all.push(rest.to_owned());
        }
        if is_extended(rest) {
            all.push(rest.to_owned());
            all.push(format!("limits.{rest}"));
        }
    }
    if COUNTED_TWICE.contains(&canonical_name) {
        all.push(format!("count/{canonical_name}"));
    }
    all
}

/// Whether a ResourceQuota accepts `name` as a key of `spec.hard`: a standard quota name, a
/// huge-page name, or any domain-prefixed name (extended resources, `count/<resource>`,
/// storage-class quotas). Names with `/` are accepted by Kubernetes whether or not a quota
/// evaluator counts them; [`canonical`] maps the extended ones to the form that is counted.
pub fn is_quota_resource(name: &str) -> bool {
    STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
        || name.starts_with("limits.hugepages-")
        || name.contains('/')
}

/// Two keys of one quota that name the same resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quota names {first} and {second} are the same resource ({canonical}); give it once, as {canonical}"
)]
pub struct Duplicate {
    pub first: String,
    pub second: String,
    pub canonical: String,
}

/// `list` with every key in its canonical form. Fails when two keys name the same resource, since
/// which value was meant cannot be told.
pub fn normalise(list: &ResourceList) -> Result<ResourceList, Duplicate> {
    let mut out = ResourceList::new();
    let mut spelled: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in list {
        let key = canonical(name);
        if let Some(first) = spelled.get(&key) {
            return Err(Duplicate {
                first: (*first).to_owned(),
                second: name.clone(),
                canonical: key,
            });
        }
        spelled.insert(key.clone(), name);
        out.insert(key, value.clone());
    }
    Ok(out)
}

/// The quota a project gets: the platform default with each resource the project names in place of
/// the default for that resource, whatever spelling either uses. Keys come out canonical. Where
/// one list names a resource twice (which admission refuses), the smaller value wins.
pub fn merge(default: &ResourceList, asked: &ResourceList) -> ResourceList {
    let mut out = canonical_min(default);
    for (name, value) in canonical_min(asked) {
        out.insert(name, value);
    }
    out
}

/// `list` with canonical keys, keeping the smaller value of a resource named twice.
fn canonical_min(list: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (name, value) in list {
        let key = canonical(name);
        let keep = match out.get(&key) {
            Some(existing) => smaller(existing, value).clone(),
            None => value.clone(),
        };
        out.insert(key, keep);
    }
    out
}

fn smaller<'a>(a: &'a Quantity, b: &'a Quantity) -> &'a Quantity {
    match (quantity::parse(&a.0), quantity::parse(&b.0)) {
        (Ok(x), Ok(y)) if y < x => b,
        (Err(_), Ok(_)) => b,
        _ => a,
    }
}

/// One resource asked for above its maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excess {
    /// The resource as the project spells it.
    pub resource: String,
    /// What the project asks for.
    pub asked: String,
    /// The maximum's own spelling of the same resource.
    pub maximum_resource: String,
    /// The maximum.
    pub maximum: String,
}

impl std::fmt::Display for Excess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} asked, the maximum is {}",
            self.resource, self.asked, self.maximum
        )?;
        if self.maximum_resource != self.resource {
            write!(f, " ({}, the same resource)", self.maximum_resource)?;
        }
        Ok(())
    }
}

/// Every resource in `asked` above the maximum for the same resource, in any spelling. A value
/// that does not parse counts as above (admission refuses it anyway). Resources the maximum does
/// not name are not limited by it.
pub fn over_maximum(asked: &ResourceList, maximum: &ResourceList) -> Vec<Excess> {
    let maxima: BTreeMap<String, (&String, &Quantity)> = maximum
        .iter()
        .map(|(k, v)| (canonical(k), (k, v)))
        .collect();
    asked
        .iter()
        .filter_map(|(name, value)| {
            let (maximum_resource, limit) = maxima.get(&canonical(name))?;
            let above = match (quantity::parse(&value.0), quantity::parse(&limit.0)) {
                (Ok(v), Ok(l)) => v > l,
                _ => true,
            };
            above.then(|| Excess {
                resource: name.clone(),
                asked: value.0.clone(),
                maximum_resource: (*maximum_resource).clone(),
                maximum: limit.0.clone(),
            })
        })
        .collect()
}

/// The resources `maximum` names that `default` does not (in any spelling): a project that asks
/// for nothing would have no limit on them.
pub fn uncovered(default: &ResourceList, maximum: &ResourceList) -> Vec<String> {
    let covered: Vec<String> = default.keys().map(|k| canonical(k)).collect();
    maximum
        .keys()
        .filter(|k| !covered.contains(&canonical(k)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    }

    #[test]
    fn spellings_kubernetes_counts_as_one_resource_map_to_one_name() {
        for (a, b) in [
            ("cpu", "requests.cpu"),
            ("memory", "requests.memory"),
            ("ephemeral-storage", "requests.ephemeral-storage"),
            ("hugepages-2Mi", "requests.hugepages-2Mi"),
            ("limits.hugepages-1Gi", "requests.hugepages-1Gi"),
            ("nvidia.com/gpu", "requests.nvidia.com/gpu"),
            ("limits.nvidia.com/gpu", "requests.nvidia.com/gpu"),
            ("amd.com/gpu", "requests.amd.com/gpu"),
            ("count/secrets", "secrets"),
            ("count/persistentvolumeclaims", "persistentvolumeclaims"),
        ] {
            assert_eq!(canonical(a), canonical(b), "{a} and {b}");
            assert_eq!(canonical(a), b);
        }
    }

    #[test]
    fn different_resources_stay_apart() {
        for (a, b) in [
            ("limits.cpu", "requests.cpu"),
            ("limits.memory", "memory"),
            ("count/pods", "pods"),
            (
                "requests.storage",
                "gold.storageclass.storage.k8s.io/requests.storage",
            ),
            ("count/deployments.apps", "deployments.apps"),
            (
                "requests.deviceclass.resource.kubernetes.io/gpu",
                "deviceclass.resource.kubernetes.io/gpu",
            ),
        ] {
            assert_ne!(canonical(a), canonical(b), "{a} and {b}");
        }
        assert_eq!(
            canonical("gold.storageclass.storage.k8s.io/persistentvolumeclaims"),
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims"
        );
    }

    #[test]
    fn quota_names_kubernetes_refuses_are_told_apart() {
        for ok in [
            "cpu",
            "limits.memory",
            "pods",
            "hugepages-2Mi",
            "requests.nvidia.com/gpu",
            "count/deployments.apps",
        ] {
            assert!(is_quota_resource(ok), "{ok}");
        }
        for bad in ["storage", "gpu", "limits.storage", "nodes"] {
            assert!(!is_quota_resource(bad), "{bad}");
        }
    }

    #[test]
    fn a_resource_named_twice_is_refused_by_normalise() {
        let both = list(&[("cpu", "1"), ("requests.cpu", "2")]);
        let err = normalise(&both).unwrap_err();
        assert_eq!(err.canonical, "requests.cpu");
        assert!(err.to_string().contains("same resource"));
        assert_eq!(
            normalise(&list(&[("cpu", "1"), ("limits.cpu", "2")])).unwrap(),
            list(&[("requests.cpu", "1"), ("limits.cpu", "2")])
        );
    }

    #[test]
    fn merge_replaces_the_default_of_the_same_resource() {
        let default = list(&[
            ("requests.cpu", "8"),
            ("requests.nvidia.com/gpu", "0"),
            ("pods", "100"),
        ]);
        let asked = list(&[("cpu", "4"), ("nvidia.com/gpu", "2")]);
        assert_eq!(
            merge(&default, &asked),
            list(&[
                ("requests.cpu", "4"),
                ("requests.nvidia.com/gpu", "2"),
                ("pods", "100")
            ])
        );
    }

    #[test]
    fn the_message_names_the_resource_the_value_and_the_maximum() {
        let excess = over_maximum(&list(&[("cpu", "1000")]), &list(&[("requests.cpu", "64")]));
        assert_eq!(
            excess.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["cpu: 1000 asked, the maximum is 64 (requests.cpu, the same resource)"]
        );
    }

    /// The admission policy compares quota with the same mapping, written in CEL.
    #[test]
    fn the_admission_policy_carries_this_mapping() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/rbac/20-admission.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            text.matches(&canonical_cel("k")).count(),
            2,
            "deploy/rbac/20-admission.yaml must carry quota::canonical_cel(\"k\") in maxima and overQuota"
        );
    }

    #[test]
    fn uncovered_lists_maxima_without_a_default() {
        let default = list(&[("cpu", "8")]);
        let maximum = list(&[("requests.cpu", "64"), ("nvidia.com/gpu", "8")]);
        assert_eq!(uncovered(&default, &maximum), ["nvidia.com/gpu"]);
    }

    /// Resources as a platform might name them in its maximum, canonical.
    fn resource() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("requests.cpu".to_owned()),
            Just("requests.memory".to_owned()),
            Just("requests.ephemeral-storage".to_owned()),
            Just("limits.cpu".to_owned()),
            Just("limits.memory".to_owned()),
            Just("requests.storage".to_owned()),
            Just("pods".to_owned()),
            Just("secrets".to_owned()),
            Just("configmaps".to_owned()),
            Just("services".to_owned()),
            Just("persistentvolumeclaims".to_owned()),
            "(2Mi|1Gi)".prop_map(|s| format!("requests.hugepages-{s}")),
            "[a-z]{1,8}\\.(com|io|dev)/[a-z]{1,8}".prop_map(|s| format!("requests.{s}")),
        ]
    }

    fn amount() -> impl Strategy<Value = (u64, &'static str)> {
        (
            0u64..100_000,
            prop_oneof![Just(""), Just("m"), Just("Ki"), Just("Gi"), Just("k")],
        )
    }

    proptest! {
        /// Every spelling of a resource maps to one key, and that key is a fixed point.
        #[test]
        fn every_spelling_maps_to_one_key(name in resource()) {
            let key = canonical(&name);
            prop_assert_eq!(&key, &name);
            prop_assert_eq!(canonical(&key), key.clone());
            for spelling in spellings(&key) {
                prop_assert_eq!(canonical(&spelling), key.clone(), "{}", spelling);
                prop_assert!(is_quota_resource(&spelling), "{} is not a quota name", spelling);
            }
        }

        /// Whatever spelling a project uses, a value above the maximum is found, and a value at
        /// or below it is not.
        #[test]
        fn the_maximum_holds_for_every_spelling(
            name in resource(),
            (limit, unit) in amount(),
            (asked, asked_unit) in amount(),
            pick in any::<prop::sample::Index>(),
        ) {
            let limit_text = format!("{limit}{unit}");
            let maximum = list(&[(name.as_str(), limit_text.as_str())]);
            let all = spellings(&name);
            let spelling = pick.get(&all);
            let wanted = format!("{asked}{asked_unit}");
            let project = list(&[(spelling.as_str(), wanted.as_str())]);
            let above = quantity::parse(&wanted).unwrap() > quantity::parse(&limit_text).unwrap();
            let excess = over_maximum(&project, &maximum);
            prop_assert_eq!(!excess.is_empty(), above, "{} {} against {}", spelling, wanted, name);
            // And the quota built from the default and the project never holds the resource
            // above the maximum unless the project asked above it (which admission refuses).
            let default = list(&[(name.as_str(), "0")]);
            let built = merge(&default, &project);
            prop_assert_eq!(built.len(), 1);
            prop_assert_eq!(&built[&name].0, &wanted);
        }
    }
}
