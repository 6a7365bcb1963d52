//! The metadata every child of a Project carries.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, OWNER_UID, PROJECT};

use super::super::validate::Validated;

/// Set on a namespace that outlived its Project under the Retain policy.
pub const RETAINED_LABEL: &str = "berth.dev/retained";

/// Berth's labels: managed by Berth, for this Project (by name and UID).
pub fn labels(project: &Validated) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (PROJECT.to_owned(), project.name.clone()),
        (OWNER_UID.to_owned(), project.uid.clone()),
    ])
}

/// A namespaced child in the project's namespace: labelled, no ownerReference.
pub fn namespaced(project: &Validated, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(project.namespace.clone()),
        labels: Some(labels(project)),
        ..Default::default()
    }
}

/// A cluster-scoped child that exists for the Project object: labelled and owned, so it goes with
/// the Project.
pub fn owned(project: &Validated, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(labels(project)),
        owner_references: Some(vec![project.owner_reference.clone()]),
        ..Default::default()
    }
}
