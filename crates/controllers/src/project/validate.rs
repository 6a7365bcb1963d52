//! Checks the CRD schema cannot make, or that must hold even if the schema was bypassed (an old
//! CRD, a direct etcd write). Pure: a Project in, every problem out, in words a user understands.

use berth_api::{MemberKind, Project, Role};
use berth_reconcile::Error;

use super::members::effective;

/// Namespaces a project may never take.
pub const RESERVED_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "berth-system",
];

/// Every problem with the spec, joined into one message; Ok when there is none.
pub fn validate(project: &Project) -> Result<(), Error> {
    let mut problems = Vec::new();
    let subjects = effective(project);
    if !subjects.iter().any(|s| s.role == Role::Owner) {
        problems.push(
            "the project has no owner: list one under spec.owners, or give a member role: owner"
                .to_owned(),
        );
    }
    if let Some(ns) = project.namespace_name()
        && (RESERVED_NAMESPACES.contains(&ns) || ns.starts_with("kube-"))
    {
        problems.push(format!(
            "namespace {ns:?} is reserved for the platform; choose another spec.namespace"
        ));
    }
    for subject in subjects
        .iter()
        .filter(|s| s.kind == MemberKind::ServiceAccount)
    {
        let (ns, name) = subject
            .name
            .split_once('/')
            .unwrap_or(("", subject.name.as_str()));
        if name.is_empty() || name.contains('/') || (subject.name.contains('/') && ns.is_empty()) {
            problems.push(format!(
                "service account member {:?} must be written 'name' or 'namespace/name'",
                subject.name
            ));
        }
    }
    let lists = [
        (
            "spec.resourceQuota.hard",
            project.spec.resource_quota.as_ref().map(|q| &q.hard),
        ),
        (
            "spec.limitRange.default",
            project.spec.limit_range.as_ref().map(|l| &l.default),
        ),
        (
            "spec.limitRange.defaultRequest",
            project
                .spec
                .limit_range
                .as_ref()
                .map(|l| &l.default_request),
        ),
    ];
    for (field, list) in lists {
        for (resource, quantity) in list.into_iter().flatten() {
            if let Err(e) = berth_api::quantity::parse(&quantity.0) {
                problems.push(format!("{field}.{resource}: {e}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ProjectSpec;
    use berth_api::project::ResourceQuotaSpec;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn project(spec: ProjectSpec) -> Project {
        Project::new("team-a", spec)
    }

    #[test]
    fn a_seed_like_project_is_valid() {
        let p = project(ProjectSpec {
            owners: vec!["data.scientist@example.com".into()],
            resource_quota: Some(ResourceQuotaSpec {
                hard: [
                    ("cpu".to_owned(), Quantity("16".into())),
                    ("memory".to_owned(), Quantity("32Gi".into())),
                ]
                .into(),
            }),
            ..Default::default()
        });
        assert!(validate(&p).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = project(ProjectSpec {
            namespace: Some("kube-system".into()),
            resource_quota: Some(ResourceQuotaSpec {
                hard: [("cpu".to_owned(), Quantity("lots".into()))].into(),
            }),
            ..Default::default()
        });
        let message = validate(&p).unwrap_err().message;
        assert!(message.contains("no owner"), "{message}");
        assert!(message.contains("reserved"), "{message}");
        assert!(message.contains("spec.resourceQuota.hard.cpu"), "{message}");
    }
}
