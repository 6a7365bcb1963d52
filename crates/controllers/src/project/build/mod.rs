//! The pure heart of the Project controller: from a validated Project and the platform settings to
//! every object that should exist for it in the cluster, one builder file per kind. No IO;
//! unit- and property-tested.
//!
//! Namespaced children carry no ownerReference: the garbage collector must never delete a
//! namespace or what is in it because a Project went (a finalizer removed by hand, the CRD deleted
//! during an uninstall). They carry Berth's labels and the Project's UID
//! ([`berth_api::labels::OWNER_UID`]) instead, which is how Berth tells its own from a
//! namesake's. Only the per-project ClusterRoles and their bindings, which exist for the Project
//! object itself, have a controller ownerReference and go with it.

mod admin_network_policy;
mod authorization_policy;
mod cluster_role;
mod limit_range;
mod meta;
mod model_auth;
mod namespace;
mod network_policy;
mod resource_quota;
mod role_binding;
pub mod secret;
mod service_account;

use std::collections::BTreeSet;

use berth_api::PlatformSettingsSpec;
use berth_api::egress::{Cidr, link_local};
use berth_reconcile::{ChildKind, Desired, Error};

use super::validate::Validated;

pub use self::admin_network_policy::PRIORITY as ADMIN_TIER_PRIORITY;
pub use self::meta::RETAINED_LABEL;
pub use self::namespace::ADOPTED_ANNOTATION;
pub use self::resource_quota::quota_hard;

/// What the builder needs to know besides the Project and the settings: what discovery found in
/// the cluster.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// Istio's AuthorizationPolicy at the version the cluster serves; `None`: not served.
    pub authorization_policy: Option<ChildKind>,
    /// The admin-tier network policy kind the cluster serves (ClusterNetworkPolicy, else
    /// AdminNetworkPolicy); `None`: neither.
    pub admin_network_policy: Option<ChildKind>,
    /// The API server's addresses: no project's egress reaches them.
    pub api_server: Vec<Cidr>,
    /// Namespaces the settings name as the platform's (gateway, monitoring, egress targets) but
    /// that belong to projects: no project trusts them.
    pub untrusted: BTreeSet<String>,
    /// The namespace was adopted (it existed before the project): it is marked so.
    pub adopted: bool,
    /// Where the console runs (the operator's namespace): its pods may reach notebooks.
    pub console_namespace: Option<String>,
}

/// Everything a Project should have in the cluster, in the order to apply it (namespace first).
#[derive(Clone, Debug)]
pub struct Built {
    pub children: Vec<Desired>,
    /// What the NetworkReady condition should add: egress ranges that open less than they ask.
    pub network_notes: Vec<String>,
}

impl Built {
    /// How many NetworkPolicies the project has.
    pub fn network_policies(&self) -> usize {
        self.children
            .iter()
            .filter(|d| d.kind.resource.kind == "NetworkPolicy")
            .count()
    }

    /// The namespace as built.
    pub fn namespace(&self) -> Option<&Desired> {
        self.children
            .iter()
            .find(|d| d.kind.resource.kind == "Namespace")
    }
}

/// Builds every desired child of `project`.
pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    env: &Environment,
) -> Result<Built, Error> {
    let mut children = vec![namespace::build(project, settings, env.adopted)?];
    children.extend(role_binding::members(project)?);
    children.extend(cluster_role::build(project)?);
    children.extend(service_account::build(project, settings)?);
    children.extend(model_auth::build(project, &env.api_server)?);
    children.push(resource_quota::build(project, settings)?);
    children.push(limit_range::build(project, settings)?);
    let console = env.console_namespace.as_deref();
    let (policies, network_notes) = network_policy::build(
        project,
        settings,
        &env.untrusted,
        &blocked(settings, env),
        console,
    )?;
    children.extend(policies);
    if let Some(kind) = &env.admin_network_policy {
        children.push(admin_network_policy::build(
            project,
            settings,
            &env.untrusted,
            kind,
            console,
        )?);
    }
    if settings.istio.enabled
        && let Some(kind) = &env.authorization_policy
    {
        children.push(authorization_policy::build(project, settings, kind)?);
    }
    Ok(Built {
        children,
        network_notes,
    })
}

/// What no project's egress may reach: link-local, the API server's addresses and the platform's
/// `tenantEgress.blockedCIDRs` (a range that does not parse is skipped: the settings' schema
/// refuses those).
pub fn blocked(settings: &PlatformSettingsSpec, env: &Environment) -> Vec<Cidr> {
    let mut blocked = link_local();
    blocked.extend(env.api_server.iter().copied());
    blocked.extend(
        settings
            .tenant_egress
            .blocked_cidrs
            .iter()
            .filter_map(|c| Cidr::parse(c).ok()),
    );
    blocked
}
