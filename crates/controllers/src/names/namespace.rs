//! A Project's namespace, and the namespaces no Project may have.

use berth_api::{PlatformSettingsSpec, Project};

use super::{Refused, is_dns_label};

/// The namespace a Project lives in: `spec.namespace`, else the project's name. Refused if it is
/// not a DNS label (the CRD's schema says so too; this holds if the schema was bypassed).
pub fn namespace(project: &Project) -> Result<String, Refused> {
    let name = project.namespace_name().unwrap_or_default();
    if is_dns_label(name) {
        Ok(name.to_owned())
    } else {
        Err(Refused::new(
            name,
            "a namespace is a DNS label: 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ))
    }
}

/// Why `namespace` belongs to the platform and no Project may have it, or None. The platform's
/// namespaces are: `kube-*` and `default`, the operator's own namespace, every namespace the
/// settings name (the gateway and monitoring namespaces every project admits traffic from, the
/// object store's and identity provider's egress targets every project may reach, the models'
/// gateways), and the settings' own reserved list.
pub fn reserved(
    namespace: &str,
    operator_namespace: &str,
    settings: &PlatformSettingsSpec,
) -> Option<String> {
    if namespace.starts_with("kube-") {
        return Some("namespaces named kube-* belong to Kubernetes".to_owned());
    }
    if namespace == "default" {
        return Some("namespace default belongs to the cluster".to_owned());
    }
    if namespace == operator_namespace {
        return Some("Berth's operator runs in it".to_owned());
    }
    platform_namespaces(settings)
        .into_iter()
        .find(|(n, _)| n == namespace)
        .map(|(_, why)| why)
}

/// Every namespace the settings name, with why: the ones projects trust, and the admin's list.
pub fn platform_namespaces(settings: &PlatformSettingsSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |names: &[String], why: &str| {
        out.extend(names.iter().map(|n| (n.clone(), why.to_owned())));
    };
    add(
        &settings.gateway_namespaces,
        "PlatformSettings.spec.gatewayNamespaces names it, and every project admits traffic from it",
    );
    add(
        &settings.monitoring_namespaces,
        "PlatformSettings.spec.monitoringNamespaces names it, and every project admits traffic from it",
    );
    if let Some(storage) = &settings.storage {
        add(
            &storage.egress_to.namespaces,
            "PlatformSettings.spec.storage.egressTo names it, and every project may reach it",
        );
    }
    if let Some(identity) = &settings.identity {
        add(
            &identity.egress_to.namespaces,
            "PlatformSettings.spec.identity.egressTo names it, and every project may reach it",
        );
    }
    if let Some(gateway) = &settings.models.gateway {
        add(
            std::slice::from_ref(&gateway.namespace),
            "the models' Gateway (PlatformSettings.spec.models.gateway) runs in it",
        );
    }
    if let Some((ns, _)) = settings
        .models
        .istio_gateway
        .as_deref()
        .and_then(|g| g.split_once('/'))
    {
        add(
            &[ns.to_owned()],
            "the models' Istio gateway (PlatformSettings.spec.models.istioGateway) runs in it",
        );
    }
    add(
        &settings.namespaces.reserved,
        "PlatformSettings.spec.namespaces.reserved lists it",
    );
    out
}
