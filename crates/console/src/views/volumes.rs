//! The spawner's data volumes and claims: the rows `volumes.<i>.*` of the form → the Notebook's
//! `spec.volumes`, refusing what the CRD's CEL rules on `volumes[]` refuse (names, mount paths)
//! and, given the namespace's claims, what the notebook controller would refuse (another
//! notebook's home or a model's volume: VolumeNotAllowed; a missing claim: VolumeNotFound;
//! ReadOnlyMany without read-only: VolumeAccessMode; a new volume's or the home's claim name
//! taken: VolumeTaken, HomeVolumeTaken). Claims in use by another pod (VolumeInUse) are left to
//! the controller: the form does not see pods.

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_api::notebook::{AccessMode, DataVolume, FORBIDDEN_MOUNT_PATHS, NewVolume, VOLUME_LABEL};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;

use super::form::{FieldError, Form, is_object_name, is_subdomain_name, positive_quantity};
use super::spawn::SpawnContext;

/// The longest volume name (the CRD's rule).
pub const VOLUME_NAME_MAX: usize = 22;
/// The most data volumes (the CRD's maxItems).
pub const MAX_VOLUMES: usize = 16;
/// The home directory, the home volume's mount path.
pub const HOME: &str = "/home/jovyan";

/// Why notebook `name` cannot be made, given the namespace's claims: a claim `<name>-home` that
/// is not the home Berth made for a notebook of this name (the controller's HomeVolumeTaken).
pub(super) fn home_taken(name: &str, claims: Option<&[PersistentVolumeClaim]>) -> Option<String> {
    let home = format!("{name}-home");
    let claim = claims?.iter().find(|c| c.name_any() == home)?;
    let labels = claim.labels();
    let ours = labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(NOTEBOOK).map(String::as_str) == Some(name)
        && !labels.contains_key(VOLUME_LABEL);
    (!ours).then(|| {
        format!("a PersistentVolumeClaim {home} exists here that is not a notebook's home; pick another name")
    })
}

/// Whether `path` may be a data volume's mountPath: the CRD's three CEL rules on
/// `volumes[].mountPath`, in Rust.
pub fn mount_path_problem(path: &str) -> Option<&'static str> {
    let clean = path.len() >= 2
        && path.len() <= 256
        && path.starts_with('/')
        && path[1..].split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        });
    if !clean {
        return Some(
            "an absolute path of letters, digits, '.', '_' and '-', such as /data, with no '.' or '..' part and no trailing '/'",
        );
    }
    if path == HOME || path == "/home" {
        return Some(
            "/home/jovyan is the home volume's (and /home holds it); mount data elsewhere, such as /data or /home/jovyan/data",
        );
    }
    if FORBIDDEN_MOUNT_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return Some(
            "not a system directory (/bin, /boot, /dev, /etc, /lib*, /proc, /root, /run, /sbin, /sys, /tmp, /usr, /var/run, /var/lib) or under one; use a path such as /data",
        );
    }
    None
}

pub(super) fn volumes(
    form: &Form<'_>,
    notebook: &str,
    ctx: &SpawnContext<'_>,
) -> Result<Vec<DataVolume>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out: Vec<DataVolume> = Vec::new();
    for i in 0..MAX_VOLUMES {
        let f = |part: &str| format!("volumes.{i}.{part}");
        let get = |part: &str| form.get(&f(part));
        let (name, mount_path, claim, size, mode) = (
            get("name"),
            get("mountPath"),
            get("existingClaim"),
            get("size"),
            get("accessMode"),
        );
        if [name, mount_path, claim, size, mode]
            .iter()
            .all(Option::is_none)
        {
            continue;
        }
        let mut err = |part: &str, message: String| errors.push(FieldError::new(f(part), message));
        let name = name.unwrap_or_default();
        if !is_object_name(name, VOLUME_NAME_MAX) {
            err(
                "name",
                "a volume name starts with a letter and has at most 22 lowercase letters, digits and '-'".into(),
            );
        } else if name == "home" || name.ends_with("-home") {
            err(
                "name",
                "'home' and names ending in '-home' are kept for home volumes".into(),
            );
        } else if out.iter().any(|v| v.name == name) {
            err("name", "each volume needs a name of its own".into());
        }
        let mount_path = mount_path.unwrap_or_default();
        if let Some(problem) = mount_path_problem(mount_path) {
            err("mountPath", problem.into());
        } else if out.iter().any(|v| v.mount_path == mount_path) {
            err(
                "mountPath",
                "each volume needs a mountPath of its own".into(),
            );
        }
        let read_only = form.checked(&f("readOnly"));
        let (existing_claim, new_claim) = match (claim, size) {
            (Some(_), Some(_)) | (None, None) => {
                err(
                    "existingClaim",
                    "a volume is an existing claim or a new one with a size, exactly one of them"
                        .into(),
                );
                (None, None)
            }
            (Some(claim), None) => {
                if mode.is_some() {
                    err(
                        "accessMode",
                        "an existing claim keeps its own access modes".into(),
                    );
                }
                match claim_problem(claim, notebook, read_only, ctx) {
                    Some(message) => {
                        err("existingClaim", message);
                        (None, None)
                    }
                    None => (Some(claim.to_owned()), None),
                }
            }
            (None, Some(size)) => {
                let access_modes = match mode.map(parse_access_mode) {
                    None => Vec::new(),
                    Some(Some(m)) => vec![m],
                    Some(None) => {
                        err(
                            "accessMode",
                            "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod".into(),
                        );
                        Vec::new()
                    }
                };
                if let Err(message) = positive_quantity(size) {
                    err("size", format!("the volume's size {message}"));
                }
                if let Some(message) = new_claim_taken(notebook, name, ctx.claims) {
                    err("name", message);
                }
                (
                    None,
                    Some(NewVolume {
                        size: size.to_owned(),
                        storage_class_name: None,
                        access_modes,
                    }),
                )
            }
        };
        out.push(DataVolume {
            name: name.to_owned(),
            mount_path: mount_path.to_owned(),
            existing_claim,
            new_claim,
            read_only,
        });
    }
    let stray = form_indices_beyond(form);
    if stray {
        errors.push(FieldError::new(
            "volumes",
            format!(
                "at most {MAX_VOLUMES} volumes, numbered 0 to {}",
                MAX_VOLUMES - 1
            ),
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether the form names a volume row the parser does not read (an index past 15, or not a
/// number): refused rather than dropped without a word.
fn form_indices_beyond(form: &Form<'_>) -> bool {
    form.names().any(|n| {
        n.strip_prefix("volumes.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(i, _)| i.parse::<usize>().map_or(true, |i| i >= MAX_VOLUMES))
    })
}

fn parse_access_mode(text: &str) -> Option<AccessMode> {
    [
        AccessMode::ReadWriteOnce,
        AccessMode::ReadOnlyMany,
        AccessMode::ReadWriteMany,
        AccessMode::ReadWriteOncePod,
    ]
    .into_iter()
    .find(|m| m.as_str() == text)
}

/// Why an existing claim cannot be mounted by notebook `notebook`, as far as the form can tell:
/// not a claim name, the home of a notebook (this one's own, or another's: the controller's
/// VolumeNotAllowed), a model's volume, not in the namespace, or ReadOnlyMany without read-only.
fn claim_problem(
    claim: &str,
    notebook: &str,
    read_only: bool,
    ctx: &SpawnContext<'_>,
) -> Option<String> {
    if !is_subdomain_name(claim, 253) {
        return Some(
            "the name of a PersistentVolumeClaim of this project (lowercase letters, digits, '-' and '.')".into(),
        );
    }
    let homes = ctx
        .notebooks
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(notebook));
    for nb in homes {
        if claim == format!("{nb}-home") {
            return Some(format!(
                "{claim} is the home volume of notebook {nb}, which only that notebook mounts; share data on a new volume with ReadWriteMany instead"
            ));
        }
    }
    let claims = ctx.claims?;
    let Some(found) = claims.iter().find(|c| c.name_any() == claim) else {
        return Some(format!(
            "there is no PersistentVolumeClaim {claim} in this project"
        ));
    };
    let labels = found.labels();
    if labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && !labels.contains_key(VOLUME_LABEL)
    {
        return Some(match labels.get(NOTEBOOK) {
            Some(nb) => format!(
                "{claim} is the home volume of notebook {nb}, which only that notebook mounts; share data on a new volume with ReadWriteMany instead"
            ),
            None => {
                format!("{claim} is a volume Berth keeps for a model; mount a data volume instead")
            }
        });
    }
    let modes: Vec<&str> = found
        .status
        .as_ref()
        .and_then(|s| s.access_modes.as_ref())
        .or(found.spec.as_ref().and_then(|s| s.access_modes.as_ref()))
        .map(|m| m.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if !read_only && !modes.is_empty() && modes.iter().all(|m| *m == "ReadOnlyMany") {
        return Some(format!(
            "{claim} is ReadOnlyMany: tick read-only to mount it"
        ));
    }
    None
}

/// Why a new volume `volume` of notebook `notebook` cannot be made: its claim
/// `<notebook>-<volume>` exists and is not Berth's for this notebook's volume (the controller's
/// VolumeTaken).
fn new_claim_taken(
    notebook: &str,
    volume: &str,
    claims: Option<&[PersistentVolumeClaim]>,
) -> Option<String> {
    let name = format!("{notebook}-{volume}");
    let claim = claims?.iter().find(|c| c.name_any() == name)?;
    let labels = claim.labels();
    let ours = labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(NOTEBOOK).map(String::as_str) == Some(notebook)
        && labels.get(VOLUME_LABEL).map(String::as_str) == Some(volume);
    (!ours).then(|| {
        format!("a PersistentVolumeClaim {name} exists already; rename the volume, or mount that claim as an existing one")
    })
}
