//! The Delete and Retain policies outside the cluster.

use berth_api::{PlatformSettingsSpec, Project};
use tracing::warn;

use super::super::part::Part;
use super::super::validate::OutsideNames;
use super::part::Held;
use super::{External, timed};
use crate::names::outside::owner;

/// What the Delete policy did outside the cluster.
#[derive(Debug, Default)]
pub struct Removal {
    pub revoked: Vec<String>,
    pub removed: Vec<String>,
    /// Things under the project's names that are someone else's: left as they are.
    pub left_alone: Vec<String>,
    /// What could not be removed, and why; the finalizer stays until it can be.
    pub failed: Vec<String>,
    /// What could not be removed and a platform admin let go.
    pub abandoned: Vec<String>,
}

impl External {
    /// The parts the Delete policy covers: each one the platform configures whose name the
    /// project's status records, or that the project uses.
    fn held_parts(project: &Project, settings: &PlatformSettingsSpec) -> Vec<Part> {
        let recorded = project.status.as_ref().and_then(|s| s.external.clone());
        let recorded = recorded.unwrap_or_default();
        Part::ALL
            .into_iter()
            .filter(|part| {
                part.enabled(project, settings)
                    || match part {
                        Part::Storage => recorded.bucket.is_some(),
                        Part::Identity => recorded.oidc_client_id.is_some(),
                        Part::Registry => recorded.registry_project.is_some(),
                    }
            })
            .collect()
    }

    /// The Delete policy outside the cluster, with the names the status records: first every
    /// credential is revoked (keys, client, robots), then the data goes (the bucket with its
    /// objects, the group, the registry project with its images), each only if it records the
    /// project as its owner. What fails is reported, or abandoned if `abandon`.
    pub async fn remove(
        &self,
        project: &Project,
        uid: &str,
        names: &OutsideNames,
        settings: &PlatformSettingsSpec,
        abandon: bool,
    ) -> Removal {
        let connected = self.connections.get(settings);
        let mut removal = Removal::default();
        let held = Held {
            names,
            owner: owner(uid, false),
        };
        let parts = Self::held_parts(project, settings);
        let failure = |part: Part, what: String, removal: &mut Removal| {
            let text = format!("{} ({}): {what}", kept(part, names), part.setting());
            if abandon {
                removal.abandoned.push(text);
            } else {
                removal.failed.push(text);
            }
        };
        let mut revoked_parts = Vec::new();
        for part in &parts {
            match connected.part(*part) {
                None => failure(
                    *part,
                    format!(
                        "the platform settings no longer configure {}",
                        part.setting()
                    ),
                    &mut removal,
                ),
                Some(Err(problem)) => {
                    warn!(
                        part = part.label(),
                        "deletion outside the cluster: {}",
                        problem.log_text()
                    );
                    failure(*part, problem.message.clone(), &mut removal)
                }
                Some(Ok(connection)) => match timed(*part, connection.revoke(&held)).await {
                    Ok(revoked) => {
                        removal.revoked.extend(revoked);
                        revoked_parts.push((*part, connection.clone()));
                    }
                    Err(problem) => {
                        warn!(
                            part = part.label(),
                            "revoking credentials for a deletion: {}",
                            problem.log_text()
                        );
                        failure(*part, problem.message, &mut removal)
                    }
                },
            }
        }
        for (part, connection) in revoked_parts {
            match timed(part, connection.delete(&held)).await {
                Ok(done) => {
                    removal.removed.extend(done.removed);
                    removal.left_alone.extend(done.left_alone);
                }
                Err(problem) => {
                    warn!(
                        part = part.label(),
                        "deleting outside the cluster: {}",
                        problem.log_text()
                    );
                    failure(part, problem.message, &mut removal)
                }
            }
        }
        if removal.failed.is_empty() {
            self.forget_project(uid);
        }
        removal
    }

    /// What the Retain policy keeps outside the cluster, for the Event.
    pub fn kept(
        &self,
        project: &Project,
        uid: &str,
        names: &OutsideNames,
        settings: &PlatformSettingsSpec,
    ) -> Vec<String> {
        self.forget_project(uid);
        Self::held_parts(project, settings)
            .into_iter()
            .map(|part| kept(part, names))
            .collect()
    }
}

/// What a part holds, in words.
fn kept(part: Part, names: &OutsideNames) -> String {
    let or_unnamed =
        |r: &Result<String, crate::names::Refused>| r.clone().unwrap_or_else(|e| e.name);
    match part {
        Part::Storage => format!(
            "bucket {} with its objects and its access key (Secret {})",
            or_unnamed(&names.bucket),
            part.secret_name()
        ),
        Part::Identity => format!(
            "OIDC client {} and realm group {}",
            names.oidc_client, names.oidc_group
        ),
        Part::Registry => format!(
            "registry project {} with its images and robot",
            or_unnamed(&names.registry_project)
        ),
    }
}
