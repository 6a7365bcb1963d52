//! The project's registry project, its members and its robot.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use berth_api::providers::RegistrySettings;
use berth_api::{MemberKind, Role};
use berth_providers::Error;
use berth_providers::registry::{Registry, RegistryProjectSpec, RegistryRole};

use super::credentials::{Decision, decide};
use super::{Input, Revoke, Synced};

/// The robot names' prefix; robots are per registry project, so it needs no more.
pub const ROBOT_PREFIX: &str = "berth-";

/// The registry project's name: the project's.
pub fn project_name(project: &str) -> String {
    project.to_owned()
}

fn spec(input: &Input) -> RegistryProjectSpec {
    let settings: Option<&RegistrySettings> = input.settings.registry.as_ref();
    RegistryProjectSpec {
        name: project_name(input.name),
        scan_on_push: settings.is_none_or(|s| s.scan_on_push),
        prevent_vulnerable: settings.is_none_or(|s| s.prevent_vulnerable_images),
        severity: settings
            .map(|s| s.severity.as_str())
            .unwrap_or("high")
            .to_owned(),
    }
}

/// User members by role: owner is projectAdmin, editor developer, viewer guest.
fn members(input: &Input) -> Vec<(String, RegistryRole)> {
    input
        .subjects
        .iter()
        .filter(|s| s.kind == MemberKind::User)
        .map(|s| {
            let role = match s.role {
                Role::Owner => RegistryRole::Admin,
                Role::Editor => RegistryRole::Developer,
                Role::Viewer => RegistryRole::Guest,
            };
            (s.name.clone(), role)
        })
        .collect()
}

/// What the sync depends on, for skipping it when nothing changed.
pub fn inputs(input: &Input) -> (RegistryProjectSpec, Vec<(String, RegistryRole)>) {
    (spec(input), members(input))
}

/// Makes the registry project, its members and its robot exist and match; returns the Secret's
/// contents.
pub async fn sync(reg: Arc<dyn Registry>, input: &Input<'_>) -> Result<Synced, Error> {
    let spec = spec(input);
    reg.ensure_project(&spec).await?;
    let wanted = members(input);
    let sync = reg.sync_members(&spec.name, &wanted).await?;
    let robots = reg.list_robots(&spec.name, ROBOT_PREFIX).await?;
    let live_auths = input.live_value(".dockerconfigjson");
    let current = input.live_credential_id().filter(|_| live_auths.is_some());
    let (decision, stale) = decide(&robots, current, input.rotate.is_some(), ROBOT_PREFIX);
    let host = reg.host();
    let (id, config, verb) = match decision {
        Decision::Keep(robot) => (robot.id, live_auths.unwrap_or_default(), "in use"),
        Decision::Recover(robot) => {
            let issued = reg.recover_robot(&spec.name, &robot).await?;
            let config = docker_config(&host, &issued.login, issued.secret.expose());
            (issued.credential.id, config, "recovered")
        }
        Decision::Create(name) => {
            let issued = reg.create_robot(&spec.name, &name).await?;
            let config = docker_config(&host, &issued.login, issued.secret.expose());
            let verb = if input.rotate.is_some() {
                "rotated"
            } else {
                "created"
            };
            (issued.credential.id, config, verb)
        }
    };
    let missing = if sync.missing_users.is_empty() {
        String::new()
    } else {
        format!(
            "; no registry account, so not members: {}",
            sync.missing_users.join(", ")
        )
    };
    Ok(Synced {
        secret_type: Some("kubernetes.io/dockerconfigjson".to_owned()),
        data: BTreeMap::from([(".dockerconfigjson".to_owned(), config)]),
        credential_id: Some(id),
        message: format!(
            "project {} on {host} with {} member(s); push/pull robot ({verb}) in Secret {}, used by the project's service accounts{missing}",
            spec.name,
            wanted.len() - sync.missing_users.len(),
            super::Part::Registry.secret_name(),
        ),
        revoke: (!stale.is_empty()).then(|| Revoke::Robots(reg, stale)),
    })
}

/// A `.dockerconfigjson` for one registry login.
fn docker_config(host: &str, username: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({
        "auths": { host: { "username": username, "password": password, "auth": auth } }
    })
    .to_string()
}

/// The Delete policy: the robots, then the project with its repositories.
pub async fn delete(reg: Arc<dyn Registry>, input: &Input<'_>) -> Result<String, Error> {
    let name = project_name(input.name);
    for robot in reg.list_robots(&name, ROBOT_PREFIX).await? {
        reg.delete_robot(&robot).await?;
    }
    reg.delete_project(&name).await?;
    Ok(format!("registry project {name} with its images and robot"))
}
