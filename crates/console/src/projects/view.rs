//! What the Project pages show, computed from objects read as the user (pure functions).

use std::collections::BTreeMap;

use berth_api::Project;
use berth_api::project::{MemberKind, Role};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::kube_auth::Identity;

/// One quota resource: used against hard.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub resource: String,
    pub used: String,
    pub hard: String,
    /// 0..=100, rounded down (over 100 shown as 100).
    pub percent: u32,
}

/// `used` against `hard`, one bar per hard resource, sorted by resource.
pub fn bars(hard: &BTreeMap<String, Quantity>, used: &BTreeMap<String, Quantity>) -> Vec<Bar> {
    hard.iter()
        .map(|(resource, limit)| {
            let used = used.get(resource).map_or("0", |q| q.0.as_str());
            let percent = match (
                berth_api::quantity::parse(used),
                berth_api::quantity::parse(&limit.0),
            ) {
                (Ok(u), Ok(h)) if h.0 > 0 => ((u.0.max(0) * 100) / h.0).clamp(0, 100) as u32,
                (Ok(u), Ok(_)) if u.0 > 0 => 100,
                _ => 0,
            };
            Bar {
                resource: resource.clone(),
                used: used.to_owned(),
                hard: limit.0.clone(),
                percent,
            }
        })
        .collect()
}

/// `who`'s strongest role in `project`, from its spec (owners, User members by name without
/// regard to case, Group members by the user's groups, ServiceAccount members); `None` when the
/// spec does not name them (a platform admin, say).
pub fn role_of(project: &Project, who: &Identity) -> Option<Role> {
    let user = who.username.to_lowercase();
    let namespace = project.namespace_name().unwrap_or_default();
    let mut best: Option<Role> = None;
    let mut consider = |role: Role| {
        // Role orders Owner < Editor < Viewer: the smallest is the strongest.
        best = Some(best.map_or(role, |b| b.min(role)));
    };
    if project.spec.owners.iter().any(|o| o.to_lowercase() == user) {
        consider(Role::Owner);
    }
    for member in &project.spec.members {
        let named = match member.kind {
            MemberKind::User => member.name.to_lowercase() == user,
            MemberKind::Group => who.groups.contains(&member.name),
            MemberKind::ServiceAccount => {
                let (ns, name) = member
                    .name
                    .split_once('/')
                    .unwrap_or((namespace, member.name.as_str()));
                user == format!("system:serviceaccount:{ns}:{name}")
            }
        };
        if named {
            consider(member.role);
        }
    }
    best
}

/// A role as the pages say it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Editor => "editor",
        Role::Viewer => "viewer",
    }
}

/// A member kind as the CRD spells it.
pub fn kind_name(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::User => "User",
        MemberKind::Group => "Group",
        MemberKind::ServiceAccount => "ServiceAccount",
    }
}

/// The Ready condition's status and message ("Unknown" before the operator's first pass).
pub fn readiness(project: &Project) -> (String, String) {
    project
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map_or_else(
            || ("Unknown".to_owned(), "not reconciled yet".to_owned()),
            |c| {
                let message = if c.status == "True" {
                    String::new()
                } else {
                    c.message.clone()
                };
                (c.status.clone(), message)
            },
        )
}

/// The namespace the project lives in: its status's, else what its spec names.
pub fn namespace(project: &Project) -> String {
    project
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .or_else(|| project.namespace_name().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_used_over_hard_in_percent() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect::<BTreeMap<_, _>>()
        };
        let got = bars(
            &q(&[
                ("requests.cpu", "4"),
                ("requests.memory", "8Gi"),
                ("pods", "0"),
            ]),
            &q(&[("requests.cpu", "500m"), ("requests.memory", "10Gi")]),
        );
        let percents: Vec<(String, u32)> = got
            .iter()
            .map(|b| (b.resource.clone(), b.percent))
            .collect();
        assert_eq!(
            percents,
            vec![
                ("pods".into(), 0),
                ("requests.cpu".into(), 12),
                ("requests.memory".into(), 100),
            ]
        );
        assert_eq!(got[1].used, "500m");
    }

    #[test]
    fn the_strongest_role_counts() {
        let project: Project = serde_json::from_value(serde_json::json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": "p"},
            "spec": {"owners": ["Ada@example.com"], "members": [
                {"kind": "Group", "name": "ml", "role": "viewer"},
                {"kind": "User", "name": "bob@example.com", "role": "viewer"},
                {"kind": "ServiceAccount", "name": "ci", "role": "editor"},
            ]},
        }))
        .unwrap();
        let who = |user: &str, groups: &[&str]| Identity {
            username: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        };
        assert_eq!(
            role_of(&project, &who("ada@example.com", &["ml"])),
            Some(Role::Owner)
        );
        assert_eq!(
            role_of(&project, &who("bob@example.com", &[])),
            Some(Role::Viewer)
        );
        assert_eq!(
            role_of(&project, &who("x@example.com", &["ml"])),
            Some(Role::Viewer)
        );
        assert_eq!(
            role_of(&project, &who("system:serviceaccount:p:ci", &[])),
            Some(Role::Editor)
        );
        assert_eq!(role_of(&project, &who("eve@example.com", &[])), None);
    }
}
