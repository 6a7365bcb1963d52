//! Access to the Project object itself: owners may get, update, patch and delete it; every other
//! member may read it. One ClusterRole and ClusterRoleBinding each, owned by the Project.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};

use berth_api::Role;
use berth_reconcile::{Desired, Error};

use super::super::members::Subject;
use super::super::validate::Validated;
use super::meta::owned;
use super::role_binding::{cluster_role_ref, rbac_subject};
use crate::kinds;
use crate::names::kube::{ProjectRole, project_role};

pub fn build(project: &Validated) -> Result<Vec<Desired>, Error> {
    type Selects = fn(&Subject) -> bool;
    let roles: [(ProjectRole, &[&str], Selects); 2] = [
        (
            ProjectRole::Owner,
            &["get", "update", "patch", "delete"],
            |s| s.role == Role::Owner,
        ),
        (ProjectRole::Member, &["get"], |s| s.role != Role::Owner),
    ];
    let mut out = Vec::new();
    for (role, verbs, selects) in roles {
        let name = project_role(&project.name, role);
        out.push(Desired::new(
            &kinds::cluster_role(),
            &ClusterRole {
                metadata: owned(project, &name),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![berth_api::GROUP.to_owned()]),
                    resources: Some(vec!["projects".to_owned()]),
                    resource_names: Some(vec![project.name.clone()]),
                    verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )?);
        let subjects: Vec<_> = project
            .subjects
            .iter()
            .filter(|s| selects(s))
            .map(|s| rbac_subject(s, &project.namespace))
            .collect();
        if !subjects.is_empty() {
            out.push(Desired::new(
                &kinds::cluster_role_binding(),
                &ClusterRoleBinding {
                    metadata: owned(project, &name),
                    role_ref: cluster_role_ref(&name),
                    subjects: Some(subjects),
                },
            )?);
        }
    }
    Ok(out)
}
