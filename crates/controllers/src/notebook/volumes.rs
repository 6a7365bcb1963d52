//! A notebook's extra data volumes (`spec.volumes`): what they are once validated, the claims
//! Berth makes for the `new` ones, their mounts in the pod, and the checks of existing claims
//! against their access modes and their other users.
//!
//! The rules, and why:
//! - a claim is looked up in the notebook's own namespace only: `existingClaim` is a bare name
//!   (the CRD refuses '/'), the lookup is `Api::namespaced(<notebook's namespace>)`, and a pod's
//!   `persistentVolumeClaim.claimName` names a claim of the pod's namespace. No name reaches
//!   another namespace;
//! - a new volume is `<notebook>-<volume>` (`names::kube::notebook_volume`), labelled with the
//!   notebook and the volume's name, with no ownerReference (it outlives the Notebook, like the
//!   home). A claim of that name that Berth did not make for this notebook and volume is never
//!   taken over (`VolumeTaken`);
//! - an existing claim must exist (`VolumeNotFound`), not be going away or Lost (`VolumeLost`),
//!   allow the mount (`VolumeAccessMode`: ReadOnlyMany needs readOnly), and not be held by another
//!   pod when its mode allows a single user (`VolumeInUse`: ReadWriteOncePod in use by any other
//!   pod, ReadWriteOnce in use by another pod; Kubernetes would let two pods of one node share a
//!   ReadWriteOnce claim, but where the notebook's pod lands is not known before it exists, and
//!   two writers of one volume rarely end well: share with ReadWriteMany);
//! - Berth's own claims are mounted only if they are notebook data volumes: another notebook's
//!   home (its running JupyterLab keeps its state there) and a model's volumes are refused
//!   (`VolumeNotAllowed`).
//!
//! While any check fails the notebook is held: its StatefulSet has 0 replicas and no new claim
//! is made, so no pod waits broken on a volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSpec, Volume as PodVolume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_api::notebook::{AccessMode, DataVolume, FORBIDDEN_MOUNT_PATHS, VOLUME_LABEL};

use super::validate::Invalid;
use crate::names;

/// The home directory (mirrors `build::HOME`; a data volume may not be mounted there).
const HOME: &str = "/home/jovyan";

/// One data volume, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// Its name in spec.volumes.
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    /// The claim's name in the notebook's namespace.
    pub claim: String,
    /// What Berth makes, for a `new` volume; `None` for an existing claim.
    pub new: Option<New>,
}

/// A claim Berth makes.
#[derive(Clone, Debug, PartialEq)]
pub struct New {
    pub size: String,
    pub storage_class: Option<String>,
    pub access_modes: Vec<String>,
}

impl Volume {
    /// The volume's name in the pod: `data-<name>` (never `home`).
    pub fn pod_volume(&self) -> String {
        format!("data-{}", self.name)
    }
}

/// Checks what the CRD's rules check (for objects stored before them), and derives each claim's
/// name.
pub fn validate(notebook: &str, volumes: &[DataVolume]) -> Result<Vec<Volume>, Invalid> {
    let invalid = |message: String| Invalid {
        reason: "InvalidVolume",
        message,
    };
    let mut out: Vec<Volume> = Vec::with_capacity(volumes.len());
    for v in volumes {
        if !mount_path_allowed(&v.mount_path) {
            return Err(invalid(format!(
                "volume {}: mountPath {:?} is not allowed: use an absolute path outside the system's directories and other than {HOME}, such as /data",
                v.name, v.mount_path
            )));
        }
        if out
            .iter()
            .any(|o| o.name == v.name || o.mount_path == v.mount_path)
        {
            return Err(invalid(format!(
                "volume {}: each volume needs a name and a mountPath of its own",
                v.name
            )));
        }
        let (claim, new) = match (&v.existing_claim, &v.new_claim) {
            (Some(claim), None) if names::is_dns_subdomain(claim) => (claim.clone(), None),
            (Some(claim), None) => {
                return Err(invalid(format!(
                    "volume {}: existingClaim {claim:?} is not a PersistentVolumeClaim name",
                    v.name
                )));
            }
            (None, Some(new)) => {
                let claim = names::kube::notebook_volume(notebook, &v.name)
                    .map_err(|refused| invalid(format!("volume {}: {refused}", v.name)))?;
                let access_modes = if new.access_modes.is_empty() {
                    vec![AccessMode::ReadWriteOnce.as_str().to_owned()]
                } else {
                    new.access_modes
                        .iter()
                        .map(|m| m.as_str().to_owned())
                        .collect()
                };
                (
                    claim,
                    Some(New {
                        size: new.size.clone(),
                        storage_class: new.storage_class_name.clone(),
                        access_modes,
                    }),
                )
            }
            _ => {
                return Err(invalid(format!(
                    "volume {}: give exactly one of existingClaim and new",
                    v.name
                )));
            }
        };
        out.push(Volume {
            name: v.name.clone(),
            mount_path: v.mount_path.clone(),
            read_only: v.read_only,
            claim,
            new,
        });
    }
    Ok(out)
}

/// Whether a data volume may be mounted at `path`: absolute, clean, not HOME or /home, not a
/// system directory or under one.
pub fn mount_path_allowed(path: &str) -> bool {
    let clean = path.len() > 1
        && path.len() <= 256
        && path.starts_with('/')
        && path[1..].split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        });
    clean
        && path != HOME
        && path != "/home"
        && !FORBIDDEN_MOUNT_PATHS
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The labels of a claim Berth makes for volume `volume` of notebook `notebook`.
pub fn labels(notebook: &str, volume: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (NOTEBOOK.to_owned(), notebook.to_owned()),
        (VOLUME_LABEL.to_owned(), volume.to_owned()),
    ])
}

/// The claim Berth makes for a `new` volume, or `None` for an existing claim. `live_class` is the
/// class of the claim if it exists already (a claim's class cannot change).
pub fn claim(
    notebook: &str,
    namespace: &str,
    volume: &Volume,
    live_class: Option<&str>,
) -> Option<PersistentVolumeClaim> {
    let new = volume.new.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: kube::api::ObjectMeta {
            name: Some(volume.claim.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(notebook, &volume.name)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(new.access_modes.clone()),
            storage_class_name: live_class
                .map(str::to_owned)
                .or_else(|| new.storage_class.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(new.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Adds the volumes and their mounts (in the container named `container`) to `spec`.
pub fn mount(spec: &mut PodSpec, container: &str, volumes: &[Volume]) {
    if volumes.is_empty() {
        return;
    }
    spec.volumes
        .get_or_insert_with(Vec::new)
        .extend(volumes.iter().map(|v| PodVolume {
            name: v.pod_volume(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: v.claim.clone(),
                read_only: v.read_only.then_some(true),
            }),
            ..Default::default()
        }));
    for c in spec.containers.iter_mut().filter(|c| c.name == container) {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(volumes.iter().map(|v| VolumeMount {
                name: v.pod_volume(),
                mount_path: v.mount_path.clone(),
                read_only: v.read_only.then_some(true),
                ..Default::default()
            }));
    }
}

/// Whether a live claim of a `new` volume's name is the one Berth made for this notebook and
/// volume.
pub fn is_ours(claim: &PersistentVolumeClaim, notebook: &str, volume: &str) -> bool {
    let l = claim.labels();
    l.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && l.get(NOTEBOOK).map(String::as_str) == Some(notebook)
        && l.get(VOLUME_LABEL).map(String::as_str) == Some(volume)
}

/// Why a `new` volume's claim name cannot be used: it is held by a claim Berth did not make for
/// this notebook and volume.
pub fn taken(notebook: &str, volume: &Volume) -> Invalid {
    Invalid {
        reason: "VolumeTaken",
        message: format!(
            "volume {}: a PersistentVolumeClaim {} exists that Berth did not make for notebook {notebook}'s volume {}; rename the volume, or mount that claim with existingClaim",
            volume.name, volume.claim, volume.name
        ),
    }
}

/// The problem of mounting the existing claim `claim` (None: it does not exist) as `volume` in
/// notebook `notebook`'s pod, given the other live pods of the namespace (`others`, the
/// notebook's own pod excluded). `None` when it can be mounted.
pub fn check_existing(
    volume: &Volume,
    claim: Option<&PersistentVolumeClaim>,
    others: &[&Pod],
) -> Option<Invalid> {
    let problem = |reason: &'static str, message: String| {
        Some(Invalid {
            reason,
            message: format!("volume {}: {message}", volume.name),
        })
    };
    let Some(claim) = claim else {
        return problem(
            "VolumeNotFound",
            format!(
                "no PersistentVolumeClaim {} in this namespace; create it, or fix existingClaim",
                volume.claim
            ),
        );
    };
    let l = claim.labels();
    if l.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && !l.contains_key(VOLUME_LABEL)
    {
        let whose = match l.get(NOTEBOOK) {
            Some(nb) => {
                format!("the home volume of notebook {nb}, which only that notebook mounts")
            }
            None => "a volume Berth keeps for a model".to_owned(),
        };
        return problem(
            "VolumeNotAllowed",
            format!(
                "PersistentVolumeClaim {} is {whose}; mount a data volume instead (spec.volumes[].new, shared with ReadWriteMany)",
                volume.claim
            ),
        );
    }
    if claim.metadata.deletion_timestamp.is_some() {
        return problem(
            "VolumeNotFound",
            format!(
                "PersistentVolumeClaim {} is being deleted; use another claim",
                volume.claim
            ),
        );
    }
    let phase = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    if phase == "Lost" {
        return problem(
            "VolumeLost",
            format!(
                "PersistentVolumeClaim {} is Lost (its PersistentVolume is gone); ask an admin, or use another claim",
                volume.claim
            ),
        );
    }
    // A bound claim's modes are its volume's; a pending one asks for its spec's.
    let modes: Vec<String> = claim
        .status
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| claim.spec.as_ref().and_then(|s| s.access_modes.clone()))
        .unwrap_or_default();
    let has = |m: AccessMode| modes.iter().any(|x| x == m.as_str());
    let writable = has(AccessMode::ReadWriteOnce)
        || has(AccessMode::ReadWriteMany)
        || has(AccessMode::ReadWriteOncePod);
    if !volume.read_only && !writable {
        return problem(
            "VolumeAccessMode",
            format!(
                "PersistentVolumeClaim {} is {} only; set readOnly: true on the volume",
                volume.claim,
                if modes.is_empty() {
                    "of no access mode".to_owned()
                } else {
                    modes.join(", ")
                }
            ),
        );
    }
    let shared =
        has(AccessMode::ReadWriteMany) || (volume.read_only && has(AccessMode::ReadOnlyMany));
    if !shared {
        let users: Vec<&str> = others
            .iter()
            .filter(|p| uses(p, &volume.claim))
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        if let Some(user) = users.first() {
            let mode = if has(AccessMode::ReadWriteOncePod) {
                "ReadWriteOncePod (one pod at a time)"
            } else {
                "ReadWriteOnce (one node at a time; Berth does not share it between pods)"
            };
            return problem(
                "VolumeInUse",
                format!(
                    "PersistentVolumeClaim {} is {mode} and pod {user} uses it; stop that pod (or notebook), or share the data on a ReadWriteMany volume",
                    volume.claim
                ),
            );
        }
    }
    None
}

/// Whether a live (not finished, not being deleted) pod mounts claim `claim`.
pub fn uses(pod: &Pod, claim: &str) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    !finished
        && pod.metadata.deletion_timestamp.is_none()
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .is_some_and(|vs| {
                vs.iter().any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == claim)
                })
            })
}
