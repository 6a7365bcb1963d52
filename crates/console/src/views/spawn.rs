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
//! - `env.<i>.name`, `env.<i>.value` for `i` in 0..64 (a value is kept as typed, spaces and all);
//! - `volumes.<i>.name`, `volumes.<i>.mountPath`, `volumes.<i>.existingClaim` or
//!   `volumes.<i>.size` with `volumes.<i>.accessMode`, `volumes.<i>.readOnly` (a checkbox), for
//!   `i` in 0..16; a row whose fields are all empty is skipped.

use std::collections::BTreeMap;

use berth_api::notebook::{HomeVolume, Notebook, NotebookEnv, NotebookResources, NotebookSpec};
use berth_api::notebook_template::NotebookTemplate;
use berth_api::quantity;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::form::{
    FieldError, Form, human_duration, is_object_name, parse_duration, positive_quantity,
};
use super::spawner::{applies, idle_bounds, is_default};
use super::volumes::{home_taken, volumes};

/// The longest notebook name (the CRD's rule).
pub const NAME_MAX: usize = 40;

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
    "volumes.*",
    "env.*",
];

/// The most environment variables (the CRD's maxItems).
pub const MAX_ENV: usize = 64;

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
                // A hidden image is not offered; the template's own default is, even hidden.
                Some(i) if !i.hidden || asked.is_none() => {
                    if redirect_loop(t, id) {
                        err(
                            "imageId",
                            format!("the template's redirects from image {id} go round in a loop; pick another image and tell a platform admin"),
                        );
                    } else {
                        spec.image_id = Some(id.to_owned());
                    }
                }
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
    // A GPU count of 0 and a GPU resource alone (a form's defaults) ask for nothing.
    let explicit = form.get("cpu").is_some()
        || form.get("memory").is_some()
        || form.get("gpu").is_some_and(|g| g != "0");
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
            Some(_) => err("idleTimeout", format!("the idle timeout must be {range}")),
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

    // The environment.
    match env(&form) {
        Ok(e) => spec.env = e,
        Err(mut e) => errors.append(&mut e),
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

/// Whether following the redirects from image `id` comes back to an image already passed (the
/// controller's ImageRedirectLoop). A redirect to an id the template lacks ends the walk (the
/// CRD refuses such templates; the controller says UnknownImage).
fn redirect_loop(t: &NotebookTemplate, id: &str) -> bool {
    let mut seen = vec![id];
    let mut current = id;
    while let Some(to) = t
        .spec
        .images
        .iter()
        .find(|i| i.id == current)
        .and_then(|i| i.redirect.as_ref())
        .map(|r| r.to.as_str())
    {
        if seen.contains(&to) {
            return true;
        }
        seen.push(to);
        current = to;
    }
    false
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

pub(super) fn bundle_ids(t: &NotebookTemplate) -> String {
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
pub(super) fn explicit_resources(
    form: &Form<'_>,
    template: Option<&NotebookTemplate>,
) -> Result<NotebookResources, Vec<FieldError>> {
    let mut errors = Vec::new();
    let maximum = match template {
        Some(t) => match &t.spec.custom {
            Some(custom) => Some(&custom.maximum),
            None => {
                let instead = if t.spec.bundles.is_empty() {
                    "leave CPU, memory and GPUs empty (the project's defaults apply)".to_owned()
                } else {
                    format!("pick a bundle: {}", bundle_ids(t))
                };
                errors.push(FieldError::new(
                    "bundle",
                    format!("this template does not allow choosing CPU and memory; {instead}"),
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

/// The rows `env.<i>.name` and `env.<i>.value` (i in 0..64; a row with an empty name and value is
/// skipped) → `spec.env`, with the CRD's rules: a name of letters, digits and '_' not starting
/// with a digit (at most 128), not one Berth sets (NB_PREFIX, HOME, NB_PORT, JUPYTER_*), each
/// once; a value of at most 4096 characters (the form's own bound).
fn env(form: &Form<'_>) -> Result<Vec<NotebookEnv>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out: Vec<NotebookEnv> = Vec::new();
    for i in 0..MAX_ENV {
        let field = format!("env.{i}.name");
        let name = form.get(&field);
        let value = form.get(&format!("env.{i}.value"));
        let Some(name) = name else {
            if value.is_some() {
                errors.push(FieldError::new(field, "a variable needs a name"));
            }
            continue;
        };
        let b = name.as_bytes();
        let valid = b.len() <= 128
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if !valid {
            errors.push(FieldError::new(
                field,
                "a name has letters, digits and '_' (at most 128) and does not start with a digit",
            ));
        } else if matches!(name, "NB_PREFIX" | "HOME" | "NB_PORT") || name.starts_with("JUPYTER_") {
            errors.push(FieldError::new(
                field,
                "NB_PREFIX, HOME, NB_PORT and JUPYTER_* are set by Berth",
            ));
        } else if out.iter().any(|e| e.name == name) {
            errors.push(FieldError::new(field, "each variable once"));
        } else {
            out.push(NotebookEnv {
                name: name.to_owned(),
                // Untrimmed: a value's spaces may matter.
                value: form
                    .raw(&format!("env.{i}.value"))
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    let stray = form.names().any(|n| {
        n.strip_prefix("env.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(i, _)| i.parse::<usize>().map_or(true, |i| i >= MAX_ENV))
    });
    if stray {
        errors.push(FieldError::new(
            "env",
            format!("at most {MAX_ENV} variables, numbered 0 to {}", MAX_ENV - 1),
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
