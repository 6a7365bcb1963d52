//! Namespaces the platform keeps for itself (`PlatformSettings.spec.namespaces`).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Namespaces no Project may take.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSettings {
    /// Namespaces reserved for the platform, besides those Berth always reserves: `kube-*`,
    /// `default`, the operator's own namespace, and every namespace named elsewhere in these
    /// settings (gateway, monitoring, the providers' egressTo, the models' gateways). A
    /// non-admin's Project asking for one is refused at admission; the operator refuses every
    /// Project that asks for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(max = 128), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("namespaces.reserved must list namespace names (DNS labels)"))]
    pub reserved: Vec<String>,
}
