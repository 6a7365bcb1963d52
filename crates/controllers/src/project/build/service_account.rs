//! Service accounts, each bound to its role; with a registry, each pulls with the project's robot.

use k8s_openapi::api::core::v1::{LocalObjectReference, ServiceAccount};
use k8s_openapi::api::rbac::v1::Subject as RbacSubject;

use berth_api::PlatformSettingsSpec;
use berth_reconcile::{Desired, Error};

use super::super::part::Part;
use super::super::validate::Validated;
use super::meta::namespaced;
use super::role_binding::binding;
use crate::kinds;
use crate::names::kube::{
    AUTOMATION_ACCOUNT, EDITOR_ROLE, KUBEFLOW_EDITOR_ACCOUNT, KUBEFLOW_VIEWER_ACCOUNT, VIEWER_ROLE,
    account_binding,
};

pub fn build(project: &Validated, settings: &PlatformSettingsSpec) -> Result<Vec<Desired>, Error> {
    let mut accounts = vec![(AUTOMATION_ACCOUNT, EDITOR_ROLE)];
    if settings.kubeflow.enabled {
        accounts.push((KUBEFLOW_EDITOR_ACCOUNT, EDITOR_ROLE));
        accounts.push((KUBEFLOW_VIEWER_ACCOUNT, VIEWER_ROLE));
    }
    let pull_secrets = Part::Registry.enabled(project.project, settings).then(|| {
        vec![LocalObjectReference {
            name: Part::Registry.secret_name().to_owned(),
        }]
    });
    let mut out = Vec::new();
    for (account, role) in accounts {
        out.push(Desired::new(
            &kinds::service_account(),
            &ServiceAccount {
                metadata: namespaced(project, account),
                image_pull_secrets: pull_secrets.clone(),
                ..Default::default()
            },
        )?);
        out.push(binding(
            project,
            &account_binding(account),
            role,
            RbacSubject {
                kind: "ServiceAccount".into(),
                name: account.to_owned(),
                namespace: Some(project.namespace.clone()),
                api_group: None,
            },
        )?);
    }
    Ok(out)
}
