//! Optional kinds, found through the API server's discovery: which version of Istio's and Gateway
//! API's kinds (and AdminNetworkPolicy) the cluster serves, if any. A kind the cluster does not
//! serve, or serves only at versions Berth cannot write, is [`Found::NotServed`]: the controllers
//! build and watch nothing of it, so it never blocks a reconcile or a deletion. A discovery call
//! that fails is an error, never "not served": [`find_until_answered`] retries it.
//!
//! Also here: the API server's own addresses, which no project's egress may open.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, ListParams};
use kube::discovery::Scope;
use kube::{Client, discovery};
use tracing::{info, warn};

use berth_api::egress::Cidr;
use berth_reconcile::{Category, ChildKind, Error};

/// A kind Berth writes when the cluster serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionalKind {
    /// The product it comes with, for messages: "Istio", "Gateway API".
    pub product: &'static str,
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// The versions Berth can write, preferred first. They share the fields Berth sets.
    pub versions: &'static [&'static str],
    pub namespaced: bool,
}

/// Istio's VirtualService: `v1` since Istio 1.22; `v1beta1` and `v1alpha3` before, with the same
/// fields for what Berth writes.
pub const VIRTUAL_SERVICE: OptionalKind = OptionalKind {
    product: "Istio",
    group: "networking.istio.io",
    kind: "VirtualService",
    plural: "virtualservices",
    versions: &["v1", "v1beta1", "v1alpha3"],
    namespaced: true,
};

/// Istio's AuthorizationPolicy: `v1` since Istio 1.22, `v1beta1` before.
pub const AUTHORIZATION_POLICY: OptionalKind = OptionalKind {
    product: "Istio",
    group: "security.istio.io",
    kind: "AuthorizationPolicy",
    plural: "authorizationpolicies",
    versions: &["v1", "v1beta1"],
    namespaced: true,
};

/// Gateway API's HTTPRoute: `v1` since Gateway API 1.0, `v1beta1` before.
pub const HTTP_ROUTE: OptionalKind = OptionalKind {
    product: "Gateway API",
    group: "gateway.networking.k8s.io",
    kind: "HTTPRoute",
    plural: "httproutes",
    versions: &["v1", "v1beta1"],
    namespaced: true,
};

/// The network-policy-api's AdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`), an
/// admin-tier policy tenants' NetworkPolicies cannot override. Cluster-scoped.
pub const ADMIN_NETWORK_POLICY: OptionalKind = OptionalKind {
    product: "the network policy API",
    group: "policy.networking.k8s.io",
    kind: "AdminNetworkPolicy",
    plural: "adminnetworkpolicies",
    versions: &["v1alpha1"],
    namespaced: false,
};

/// The network-policy-api's ClusterNetworkPolicy (`policy.networking.k8s.io`, from
/// network-policy-api v0.3, which serves it at `v1beta1` and `v1alpha2` with the same fields),
/// which replaced AdminNetworkPolicy: with `tier: Admin` it is the same admin-tier policy.
/// Cluster-scoped.
pub const CLUSTER_NETWORK_POLICY: OptionalKind = OptionalKind {
    product: "the network policy API",
    group: "policy.networking.k8s.io",
    kind: "ClusterNetworkPolicy",
    plural: "clusternetworkpolicies",
    versions: &["v1beta1", "v1alpha2"],
    namespaced: false,
};

impl OptionalKind {
    /// This kind as a child kind at `version`, pruned like every child.
    pub fn at(&self, version: &str) -> ChildKind {
        ChildKind::dynamic(
            ApiResource {
                group: self.group.into(),
                version: version.into(),
                api_version: format!("{}/{version}", self.group),
                kind: self.kind.into(),
                plural: self.plural.into(),
            },
            self.namespaced,
            true,
        )
    }
}

/// What discovery found about one optional kind.
#[derive(Clone, Debug)]
pub enum Found {
    /// Served at a version Berth writes: the kind at that version.
    Served(ChildKind),
    /// Not served, or not at a version Berth writes: why, in words for a condition.
    NotServed(String),
}

impl Found {
    /// The kind to build and watch, if served.
    pub fn kind(&self) -> Option<&ChildKind> {
        match self {
            Found::Served(kind) => Some(kind),
            Found::NotServed(_) => None,
        }
    }

    /// "VirtualService networking.istio.io/v1beta1", or why it is not there.
    pub fn describe(&self) -> String {
        match self {
            Found::Served(kind) => format!("{} {}", kind.resource.kind, kind.resource.api_version),
            Found::NotServed(why) => why.clone(),
        }
    }
}

/// One served version of a group: its name and the kinds it serves with their plural names.
pub type ServedVersion = (String, Vec<(String, String)>);

/// The pure choice: the first of `kind.versions` that the group serves with the kind in it.
/// `served` is `None` when the cluster does not serve the group at all.
pub fn choose(kind: &OptionalKind, served: Option<&[ServedVersion]>) -> Found {
    let Some(served) = served else {
        return Found::NotServed(format!(
            "{} ({}) is not installed in this cluster: no {} API",
            kind.product, kind.kind, kind.group
        ));
    };
    for wanted in kind.versions {
        let serves_kind = served.iter().any(|(version, kinds)| {
            version == wanted
                && kinds
                    .iter()
                    .any(|(k, plural)| k == kind.kind && plural == kind.plural)
        });
        if serves_kind {
            return Found::Served(kind.at(wanted));
        }
    }
    let versions: Vec<&str> = served
        .iter()
        .filter(|(_, kinds)| kinds.iter().any(|(k, _)| k == kind.kind))
        .map(|(v, _)| v.as_str())
        .collect();
    Found::NotServed(if versions.is_empty() {
        format!(
            "{} is installed but serves no {} ({} has no such kind)",
            kind.product, kind.kind, kind.group
        )
    } else {
        format!(
            "{} serves {} only at {}, and Berth writes {}",
            kind.product,
            kind.kind,
            versions.join(", "),
            kind.versions.join(", ")
        )
    })
}

/// Asks the API server which version of `kind` it serves. A failed call is an error (the
/// category says retry), never "not served".
pub async fn find(client: &Client, kind: &OptionalKind) -> Result<Found, Error> {
    match discovery::group(client, kind.group).await {
        Ok(group) => {
            let served: Vec<ServedVersion> = group
                .versions()
                .map(|version| {
                    let kinds = group
                        .versioned_resources(version)
                        .into_iter()
                        .filter(|(_, caps)| (caps.scope == Scope::Namespaced) == kind.namespaced)
                        .map(|(resource, _)| (resource.kind, resource.plural))
                        .collect();
                    (version.to_owned(), kinds)
                })
                .collect();
            Ok(choose(kind, Some(&served)))
        }
        Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => {
            Ok(choose(kind, None))
        }
        Err(e) => Err(Error::with_detail(
            Category::DependencyUnavailable,
            format!(
                "the API server's discovery did not answer for {}; Berth asks again",
                kind.group
            ),
            e.to_string(),
        )),
    }
}

/// [`find`] for each of `kinds`, in order, asking again (1 s, 2 s … up to 30 s apart) until the
/// API server answers for all of them.
pub async fn find_until_answered(client: &Client, kinds: &[OptionalKind]) -> Vec<Found> {
    let mut failures = 0u32;
    loop {
        let mut found = Vec::with_capacity(kinds.len());
        let mut failed = None;
        for kind in kinds {
            match find(client, kind).await {
                Ok(f) => found.push(f),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                for f in &found {
                    info!(found = %f.describe(), "optional kind");
                }
                return found;
            }
            Some(e) => {
                failures += 1;
                let wait = berth_reconcile::error::backoff(failures, Duration::from_secs(30));
                warn!(error = %e.log_text(), retry_in = ?wait, "discovery failed; not treating the kinds as absent");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// [`api_server_addresses`], asking again (1 s, 2 s … up to 30 s apart) until the API server
/// answers: without them, a project's egress could open the API server.
pub async fn api_server_addresses_until_answered(client: &Client) -> Vec<Cidr> {
    let mut failures = 0u32;
    loop {
        match api_server_addresses(client).await {
            Ok(addresses) => {
                info!(addresses = ?addresses.iter().map(ToString::to_string).collect::<Vec<_>>(), "the API server's addresses, closed to every project's egress");
                return addresses;
            }
            Err(e) => {
                failures += 1;
                let wait = berth_reconcile::error::backoff(failures, Duration::from_secs(30));
                warn!(error = %e.log_text(), retry_in = ?wait, "could not read the API server's addresses; asking again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The API server's own addresses as pods may reach it: the `kubernetes` Service's cluster IPs and
/// the addresses behind it (its EndpointSlices in `default`), each as a single-address range.
pub async fn api_server_addresses(client: &Client) -> Result<Vec<Cidr>, Error> {
    let service = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await?;
    let mut addresses: Vec<String> = service
        .spec
        .map(|s| s.cluster_ips.unwrap_or_default())
        .unwrap_or_default();
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await?;
    for slice in slices.items {
        for endpoint in slice.endpoints.into_iter().flatten() {
            addresses.extend(endpoint.addresses);
        }
    }
    let mut out: Vec<Cidr> = addresses
        .iter()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(Cidr::host)
        .collect();
    out.sort_by_key(ToString::to_string);
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(versions: &[(&str, &[&str])]) -> Vec<ServedVersion> {
        versions
            .iter()
            .map(|(v, kinds)| {
                (
                    (*v).to_owned(),
                    kinds
                        .iter()
                        .map(|k| ((*k).to_owned(), format!("{}s", k.to_lowercase())))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_preferred_served_version_is_chosen() {
        let both = served(&[
            ("v1", &["VirtualService"]),
            ("v1beta1", &["VirtualService"]),
        ]);
        let found = choose(&VIRTUAL_SERVICE, Some(&both));
        assert_eq!(found.describe(), "VirtualService networking.istio.io/v1");
        let old = served(&[
            ("v1alpha3", &["VirtualService"]),
            ("v1beta1", &["VirtualService"]),
        ]);
        let found = choose(&VIRTUAL_SERVICE, Some(&old));
        assert_eq!(
            found.describe(),
            "VirtualService networking.istio.io/v1beta1"
        );
        assert_eq!(
            found.kind().map(|k| k.resource.api_version.clone()),
            Some("networking.istio.io/v1beta1".into())
        );
    }

    #[test]
    fn absent_and_unwritable_are_not_served_and_say_why() {
        let absent = choose(&HTTP_ROUTE, None);
        assert!(absent.kind().is_none());
        assert!(
            absent.describe().contains("not installed"),
            "{}",
            absent.describe()
        );
        let alpha_only = served(&[("v1alpha2", &["HTTPRoute"])]);
        let found = choose(&HTTP_ROUTE, Some(&alpha_only));
        assert!(found.kind().is_none());
        assert!(
            found.describe().contains("only at v1alpha2"),
            "{}",
            found.describe()
        );
        let other_kinds = served(&[("v1", &["Gateway"])]);
        assert!(choose(&HTTP_ROUTE, Some(&other_kinds)).kind().is_none());
    }
}
