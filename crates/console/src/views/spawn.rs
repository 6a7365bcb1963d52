//! The spawner's submitted form → the `Notebook` to create, or every field's problem in plain
//! words. It refuses what the CRD's schema and CEL rules (crates/api/src/notebook.rs) and the
//! notebook controller's template and volume checks (`notebook::template::resolve`,
//! `notebook::volumes`) would refuse, so a user hears it at once, beside the field. The API
//! server and the controller remain the authority: they check the object again.
//!
//! Fields (names as the form sends them):
//! - `name`: the notebook's name (a DNS label of at most 40, starting with a letter);
//! - `template`: a template's name; empty: the default template (or none, when there is none);
//! - `imageId` (one of the template's visible images) or `customImage` (an image reference, if
//!   the template allows custom images or there is no template);
//! - `bundle`, or `cpu`, `memory`, `gpu` (a count) and `gpuResource` (needed when the template's
//!   maximum lists more than one GPU resource, or without a template);
//! - `homeSize` (such as 20Gi), `idleTimeout` (such as 2h);
//! - `volumes.<i>.name`, `volumes.<i>.mountPath`, `volumes.<i>.existingClaim` or
//!   `volumes.<i>.size` with `volumes.<i>.accessMode`, `volumes.<i>.readOnly` (a checkbox), for
//!   `i` in 0..16; a row whose fields are all empty is skipped.

use std::collections::BTreeMap;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_api::notebook::{
    AccessMode, DataVolume, FORBIDDEN_MOUNT_PATHS, HomeVolume, NewVolume, Notebook,
    NotebookResources, NotebookSpec, VOLUME_LABEL,
};
use berth_api::notebook_template::NotebookTemplate;
use berth_api::quantity;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::form::{
    FieldError, Form, human_duration, is_object_name, is_subdomain_name, parse_duration,
    positive_quantity,
};
use super::spawner::{applies, idle_bounds, is_default};

/// The longest notebook name (the CRD's rule).
pub const NAME_MAX: usize = 40;
/// The longest volume name (the CRD's rule).
pub const VOLUME_NAME_MAX: usize = 22;
/// The most data volumes (the CRD's maxItems).
pub const MAX_VOLUMES: usize = 16;
/// The home directory, the home volume's mount path.
pub const HOME: &str = "/home/jovyan";

/// What the parser knows of the project besides the form.
#[derive(Clone, Copy, Debug)]
pub struct SpawnContext<'a> {
    /// The project's namespace.
    pub namespace: &'a str,
    /// Its labels (for the templates' `projects` selectors).
    pub namespace_labels: &'a BTreeMap<String, String>,
    /// Every NotebookTemplate of the cluster.
    pub templates: &'a [NotebookTemplate],
    /// The names of the namespace's Notebooks.
    pub notebooks: &'a [String],
    /// The namespace's PersistentVolumeClaims, when the user may list them; `None`: unknown
    /// (existence, access modes and owners are then left to the controller).
    pub claims: Option<&'a [PersistentVolumeClaim]>,
}

const SINGLE: &[&str] = &[
    "name",
    "template",
    "imageId",
    "customImage",
    "bundle",
    "cpu",
    "memory",
    "gpu",
    "gpuResource",
    "homeSize",
    "idleTimeout",
];

/// Parses the spawner's form into the Notebook to create in `ctx.namespace`.
pub fn parse_spawn(
    fields: &[(String, String)],
    ctx: &SpawnContext<'_>,
) -> Result<Notebook, Vec<FieldError>> {
    let form = Form::new(fields);
    let mut errors = form.check(SINGLE);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut err = |field: &str, message: String| errors.push(FieldError::new(field, message));

    // The name.
    let name = form.get("name").unwrap_or_default();
    if !is_object_name(name, NAME_MAX) {
        err(
            "name",
            "a name starts with a letter and has at most 40 lowercase letters, digits and '-' (not at the end)".into(),
        );
    } else if ctx.notebooks.iter().any(|n| n == name) {
        err(
            "name",
            format!("a notebook named {name} already exists in this project"),
        );
    } else if let Some(message) = home_taken(name, ctx.claims) {
        err("name", message);
    }

    // The template.
    let template = match pick_template(&form, ctx) {
        Ok(t) => t,
        Err(message) => {
            err("template", message);
            return Err(errors);
        }
    };

    let mut spec = NotebookSpec {
        template: template.map(|t| t.name_any()),
        image_id: None,
        image: None,
        bundle: None,
        resources: None,
        home: HomeVolume::default(),
        env: Vec::new(),
        stopped: false,
        idle_timeout: None,
        volumes: Vec::new(),
        activity_probe: None,
    };

    // The image.
    match (form.get("imageId"), form.get("customImage"), template) {
        (Some(_), Some(_), _) => err(
            "customImage",
            "pick one of the template's images or give an image of your own, not both".into(),
        ),
        (None, Some(image), t) => {
            if t.is_some_and(|t| !t.spec.allow_custom_images) {
                err(
                    "customImage",
                    "this template offers only its own images; pick one of them".into(),
                );
            } else if let Some(message) = image_reference_problem(image) {
                err("customImage", message);
            } else {
                spec.image = Some(image.to_owned());
            }
        }
        (Some(_), None, None) => err(
            "imageId",
            "an image id picks from a template, and this notebook has none; give an image of your own".into(),
        ),
        (asked, None, Some(t)) => {
            let id = asked.unwrap_or(&t.spec.default_image);
            match t.spec.images.iter().find(|i| i.id == id) {
                Some(i) if !i.hidden => spec.image_id = Some(id.to_owned()),
                _ => err(
                    "imageId",
                    format!(
                        "this template offers no image {id:?}; pick one of: {}",
                        visible_images(t)
                    ),
                ),
            }
        }
        (None, None, None) => {}
    }

    // The resources.
    let explicit = ["cpu", "memory", "gpu", "gpuResource"]
        .iter()
        .any(|f| form.get(f).is_some());
    match (form.get("bundle"), explicit, template) {
        (Some(_), true, _) => err(
            "bundle",
            "pick a bundle or set CPU, memory and GPUs, not both".into(),
        ),
        (Some(_), false, None) => err(
            "bundle",
            "a bundle picks from a template, and this notebook has none; set CPU and memory instead".into(),
        ),
        (Some(id), false, Some(t)) => {
            if t.spec.bundles.iter().any(|b| b.id == id) {
                spec.bundle = Some(id.to_owned());
            } else {
                err(
                    "bundle",
                    format!("this template has no bundle {id:?}; pick one of: {}", bundle_ids(t)),
                );
            }
        }
        (None, true, t) => match explicit_resources(&form, t) {
            Ok(r) => spec.resources = Some(r),
            Err(mut e) => errors.append(&mut e),
        },
        (None, false, Some(t)) => spec.bundle = t.spec.default_bundle.clone(),
        (None, false, None) => {}
    }
    let mut err = |field: &str, message: String| errors.push(FieldError::new(field, message));

    // The home volume.
    if let Some(size) = form.get("homeSize") {
        match positive_quantity(size) {
            Ok(_) => spec.home.size = Some(size.to_owned()),
            Err(message) => err("homeSize", format!("the home volume's size {message}")),
        }
    }

    // The idle timeout.
    let (default, minimum, maximum) = template.map(idle_bounds).unwrap_or((
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(168 * 3600),
    ));
    let range = format!("{} to {}", human_duration(minimum), human_duration(maximum));
    match form.get("idleTimeout") {
        Some(text) => match parse_duration(text) {
            Some(d) if d >= minimum && d <= maximum => spec.idle_timeout = Some(text.to_owned()),
            Some(_) => err(
                "idleTimeout",
                format!("the idle timeout must be {range} with this template"),
            ),
            None => err(
                "idleTimeout",
                format!("a duration such as 30m, 2h or 1h30m, {range}"),
            ),
        },
        None if default < minimum || default > maximum => err(
            "idleTimeout",
            format!(
                "this template has no default idle timeout within its bounds; set one, {range}"
            ),
        ),
        None => {}
    }

    // The data volumes.
    match volumes(&form, name, ctx) {
        Ok(v) => spec.volumes = v,
        Err(mut e) => errors.append(&mut e),
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let mut notebook = Notebook::new(name, spec);
    notebook.metadata.namespace = Some(ctx.namespace.to_owned());
    Ok(notebook)
}

/// The template the form names, else the default one (among every template, as the controller
/// picks it), else none. Errors: an unknown template, one not offered to this project, two
/// defaults.
fn pick_template<'a>(
    form: &Form<'_>,
    ctx: &SpawnContext<'a>,
) -> Result<Option<&'a NotebookTemplate>, String> {
    let offered = || {
        let mut names: Vec<String> = ctx
            .templates
            .iter()
            .filter(|t| applies(t, ctx.namespace_labels))
            .map(|t| t.name_any())
            .collect();
        names.sort();
        if names.is_empty() {
            "none is offered to this project".to_owned()
        } else {
            format!("pick one of: {}", names.join(", "))
        }
    };
    let chosen = match form.get("template") {
        Some(name) => ctx
            .templates
            .iter()
            .find(|t| t.name_any() == name)
            .ok_or_else(|| format!("there is no template {name:?}; {}", offered()))?,
        None => {
            let defaults: Vec<&NotebookTemplate> =
                ctx.templates.iter().filter(|t| is_default(t)).collect();
            match defaults.as_slice() {
                [] => return Ok(None),
                [one] => *one,
                _ => return Err(format!("pick a template; {}", offered())),
            }
        }
    };
    if !applies(chosen, ctx.namespace_labels) {
        return Err(format!(
            "template {} is not offered to this project; {}",
            chosen.name_any(),
            offered()
        ));
    }
    Ok(Some(chosen))
}

fn visible_images(t: &NotebookTemplate) -> String {
    t.spec
        .images
        .iter()
        .filter(|i| !i.hidden)
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn bundle_ids(t: &NotebookTemplate) -> String {
    if t.spec.bundles.is_empty() {
        return "(it has none)".to_owned();
    }
    t.spec
        .bundles
        .iter()
        .map(|b| b.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `image` cannot be an image reference: too long (512, the CRD's maxLength), whitespace or
/// control characters, or a leading '-' (it would read as a flag to tools that print it).
pub fn image_reference_problem(image: &str) -> Option<String> {
    if image.len() > 512 {
        return Some("an image reference has at most 512 characters".into());
    }
    if image.starts_with('-')
        || image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>'))
    {
        return Some(
            "an image reference has no spaces, quotes or angle brackets, such as registry.example.com/team/lab:1.0".into(),
        );
    }
    None
}

/// Whether `resource` is a device plugin's extended resource, `<vendor domain>/<name>`, not under
/// kubernetes.io or k8s.io (the CRD's rule for `gpu.resource`).
pub fn is_extended_resource(resource: &str) -> bool {
    let Some((domain, name)) = resource.split_once('/') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    resource.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_lowercase()))
        && !domain.ends_with("kubernetes.io")
        && !domain.ends_with("k8s.io")
        && !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

/// `cpu`, `memory`, `gpu`, `gpuResource` → requests {cpu, memory, gpu} and limits {memory, gpu},
/// as the chart's bundles are written; with a template, each within its custom maximum
/// (compared as quantities: "2000m" is 2, "1Gi" is "1024Mi").
fn explicit_resources(
    form: &Form<'_>,
    template: Option<&NotebookTemplate>,
) -> Result<NotebookResources, Vec<FieldError>> {
    let mut errors = Vec::new();
    let maximum = match template {
        Some(t) => match &t.spec.custom {
            Some(custom) => Some(&custom.maximum),
            None => {
                errors.push(FieldError::new(
                    "bundle",
                    format!(
                        "this template does not allow choosing CPU and memory; pick a bundle: {}",
                        bundle_ids(t)
                    ),
                ));
                return Err(errors);
            }
        },
        None => None,
    };
    let mut resources = NotebookResources::default();
    let check = |field: &str, resource: &str, text: &str, errors: &mut Vec<FieldError>| {
        let asked = match positive_quantity(text) {
            Ok(n) => n,
            Err(message) => {
                errors.push(FieldError::new(field, message));
                return false;
            }
        };
        if let Some(maximum) = maximum {
            match maximum.get(resource).map(|q| quantity::parse(&q.0)) {
                None => {
                    errors.push(FieldError::new(
                        field,
                        format!("this template does not offer {resource}"),
                    ));
                    return false;
                }
                Some(Ok(max)) if asked > max => {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "at most {} with this template",
                            maximum
                                .get(resource)
                                .map(|q| q.0.as_str())
                                .unwrap_or_default()
                        ),
                    ));
                    return false;
                }
                Some(Err(_)) => {
                    errors.push(FieldError::new(
                        field,
                        format!("this template's maximum for {resource} is broken; tell a platform admin"),
                    ));
                    return false;
                }
                Some(Ok(_)) => {}
            }
        }
        true
    };
    if let Some(cpu) = form.get("cpu")
        && check("cpu", "cpu", cpu, &mut errors)
    {
        resources
            .requests
            .insert("cpu".into(), Quantity(cpu.to_owned()));
    }
    if let Some(memory) = form.get("memory")
        && check("memory", "memory", memory, &mut errors)
    {
        resources
            .requests
            .insert("memory".into(), Quantity(memory.to_owned()));
        resources
            .limits
            .insert("memory".into(), Quantity(memory.to_owned()));
    }
    let gpu_count = form.get("gpu").filter(|g| *g != "0");
    if let Some(count) = gpu_count {
        let gpu_resources: Vec<&String> = maximum
            .map(|m| {
                m.keys()
                    .filter(|k| k.as_str() != "cpu" && k.as_str() != "memory")
                    .collect()
            })
            .unwrap_or_default();
        let resource = match (form.get("gpuResource"), gpu_resources.as_slice()) {
            (Some(r), _) => Some(r.to_owned()),
            (None, [one]) => Some((*one).clone()),
            (None, []) if maximum.is_some() => {
                errors.push(FieldError::new("gpu", "this template does not offer GPUs"));
                None
            }
            (None, _) => {
                errors.push(FieldError::new(
                    "gpuResource",
                    "say which GPU resource, such as nvidia.com/gpu",
                ));
                None
            }
        };
        let whole = count.parse::<u32>().ok().filter(|n| (1..=64).contains(n));
        if whole.is_none() {
            errors.push(FieldError::new("gpu", "a whole number of GPUs, 0 to 64"));
        }
        if let (Some(resource), Some(n)) = (resource, whole) {
            if !is_extended_resource(&resource) {
                errors.push(FieldError::new(
                    "gpuResource",
                    "a device plugin's resource, <vendor domain>/<name>, such as nvidia.com/gpu",
                ));
            } else if check("gpu", &resource, &n.to_string(), &mut errors) {
                let q = Quantity(n.to_string());
                resources.requests.insert(resource.clone(), q.clone());
                resources.limits.insert(resource, q);
            }
        }
    }
    if errors.is_empty() {
        Ok(resources)
    } else {
        Err(errors)
    }
}

/// Why notebook `name` cannot be made, given the namespace's claims: a claim `<name>-home` that
/// is not the home Berth made for a notebook of this name (the controller's HomeVolumeTaken).
fn home_taken(name: &str, claims: Option<&[PersistentVolumeClaim]>) -> Option<String> {
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

fn volumes(
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
