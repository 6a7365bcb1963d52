//! Who the notebook's pod runs as, and how it pulls its image: the project's ServiceAccount
//! (`project-automation`, which the Project controller makes with the registry robot's pull
//! secret when the project's registry part is on) and, named in the pod itself, that pull secret
//! (`berth-registry`), so that an image of the project's registry project pulls with no
//! hand-patched ServiceAccount, even if someone edits the account.
//!
//! The pod still mounts no token (`automountServiceAccountToken: false`): whoever opens the
//! notebook runs code in it, and so does any pod of the namespace that reaches JupyterLab (it asks
//! for no token, see docs/notebooks.md), so a token of the project's editor account in the
//! notebook would hand the editor role to all of them. A user who wants the API from a notebook
//! uses their own credentials.
//!
//! Both come from the child caches (Berth-made objects of those names only): no API request.

use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec};

use berth_api::providers::REGISTRY_SECRET;
use berth_reconcile::ChildCache;

use crate::kinds;
use crate::names::kube::AUTOMATION_ACCOUNT;

/// The project's account and pull secret, as far as they exist in the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The ServiceAccount the pod runs as; `None` (the namespace's `default`) where Berth made
    /// no project account (a namespace that is not a project's).
    pub service_account: Option<String>,
    /// The pull secrets named in the pod.
    pub pull_secrets: Vec<String>,
}

/// What the caches hold for `namespace`.
pub fn observe(children: &ChildCache, namespace: &str) -> Identity {
    let account = children
        .get(
            &kinds::notebook_account().resource,
            Some(namespace),
            AUTOMATION_ACCOUNT,
        )
        .map(|_| AUTOMATION_ACCOUNT.to_owned());
    let secret = children
        .get(
            &kinds::notebook_pull_secret().resource,
            Some(namespace),
            REGISTRY_SECRET,
        )
        .map(|_| REGISTRY_SECRET.to_owned());
    Identity {
        service_account: account,
        pull_secrets: secret.into_iter().collect(),
    }
}

/// Sets the pod's account and pull secrets. The token stays unmounted.
pub fn wire(spec: &mut PodSpec, identity: &Identity) {
    spec.service_account_name = identity.service_account.clone();
    spec.image_pull_secrets = (!identity.pull_secrets.is_empty()).then(|| {
        identity
            .pull_secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    });
    spec.automount_service_account_token = Some(false);
}
