//! The project's registry project, its members and its robot.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;

use berth_api::providers::RegistrySettings;
use berth_api::{MemberKind, Role};
use berth_providers::registry::{Registry as RegistryApi, RegistryProjectSpec, RegistryRole};
use berth_providers::{Error, ErrorKind};

use super::super::build::secret::Contents;
use super::super::part::Part;
use super::super::validate::OutsideNames;
use super::credentials::{Decision, decide};
use super::part::{Claimed, Held, Input, OutsidePart, Removed, Replaced, Synced};

/// Registry projects on an image registry.
pub struct Registry(pub Arc<dyn RegistryApi>);

fn project_name(names: &OutsideNames) -> Result<&str, Error> {
    names
        .registry_project
        .as_deref()
        .map_err(|refused| Error::new(ErrorKind::Rejected, refused.to_string()))
}

fn spec(input: &Input, name: &str) -> RegistryProjectSpec {
    let settings: Option<&RegistrySettings> = input.settings.registry.as_ref();
    RegistryProjectSpec {
        name: name.to_owned(),
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
        .project
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
pub fn inputs(input: &Input) -> (Option<RegistryProjectSpec>, Vec<(String, RegistryRole)>) {
    (
        project_name(&input.project.outside)
            .ok()
            .map(|n| spec(input, n)),
        members(input),
    )
}

/// A `.dockerconfigjson` for one registry login.
fn docker_config(host: &str, username: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    serde_json::json!({
        "auths": { host: { "username": username, "password": password, "auth": auth } }
    })
    .to_string()
}

#[async_trait]
impl OutsidePart for Registry {
    async fn sync(&self, input: &Input<'_>) -> Result<Synced, Error> {
        let reg = &self.0;
        let names = &input.project.outside;
        let spec = spec(input, project_name(names)?);
        reg.ensure_project(&spec, &input.owner).await?;
        let wanted = members(input);
        let sync = reg.sync_members(&spec.name, &wanted).await?;
        let prefix = &names.credential_prefix;
        let robots = reg.list_robots(&spec.name, prefix).await?;
        let (decision, stale) = decide(&robots, input.current.as_deref(), input.rotate, prefix);
        let host = reg.host();
        let (issued, verb) = match decision {
            Decision::Keep(_) => (None, "in use"),
            Decision::Recover(robot) => (
                Some(reg.recover_robot(&spec.name, &robot).await?),
                "recovered",
            ),
            Decision::Create(name) => (
                Some(reg.create_robot(&spec.name, &name, &input.owner).await?),
                if input.rotate { "rotated" } else { "created" },
            ),
        };
        let secret = issued.map(|issued| Contents {
            type_: "kubernetes.io/dockerconfigjson".to_owned(),
            data: BTreeMap::from([(
                ".dockerconfigjson".to_owned(),
                docker_config(&host, &issued.login, issued.secret.expose()),
            )]),
            credential_id: issued.credential.id,
            fingerprint: None,
        });
        let missing = if sync.missing_users.is_empty() {
            String::new()
        } else {
            format!(
                "; no registry account, so not members: {}",
                sync.missing_users.join(", ")
            )
        };
        Ok(Synced {
            claimed: Claimed {
                registry_project: Some(spec.name.clone()),
                ..Default::default()
            },
            secret,
            message: format!(
                "project {} on {host} with {} member(s); push/pull robot ({verb}) in Secret {}, used by the project's service accounts{missing}",
                spec.name,
                wanted.len() - sync.missing_users.len(),
                Part::Registry.secret_name(),
            ),
            replaced: (!stale.is_empty()).then_some(Replaced::Credentials(stale)),
        })
    }

    async fn revoke_replaced(&self, replaced: &Replaced) -> Result<(), Error> {
        if let Replaced::Credentials(robots) = replaced {
            for robot in robots {
                self.0.delete_robot(robot).await?;
            }
        }
        Ok(())
    }

    async fn revoke(&self, held: &Held<'_>) -> Result<Vec<String>, Error> {
        let Ok(project) = project_name(held.names) else {
            return Ok(Vec::new());
        };
        let mut revoked = Vec::new();
        for robot in self
            .0
            .list_robots(project, &held.names.credential_prefix)
            .await?
        {
            self.0.delete_robot(&robot).await?;
            revoked.push(format!(
                "robot {} of registry project {project}",
                robot.name
            ));
        }
        Ok(revoked)
    }

    async fn delete(&self, held: &Held<'_>) -> Result<Removed, Error> {
        let mut removed = Removed::default();
        let Ok(project) = project_name(held.names) else {
            return Ok(removed);
        };
        let result = self.0.delete_project(project, &held.owner).await;
        removed.record(
            format!("registry project {project} with its images"),
            result,
        )?;
        Ok(removed)
    }
}
