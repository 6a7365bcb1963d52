//! The template step of validation: a Notebook and the NotebookTemplates give the image, the
//! resources and the scheduling the notebook runs with, or a reason the user can act on. Pure.
//!
//! - The template: `spec.template`, else the one annotated `berth.dev/default-template: "true"`;
//!   with none so annotated (and none named) the notebook runs without a template, as before
//!   templates existed (its own image or Berth's Jupyter image, its own resources).
//! - Who may use it: `spec.projects` selects on the labels of the notebook's namespace, which
//!   Berth writes from the Project (tenants set only the prefixes PlatformSettings allows them,
//!   and admission keeps those prefixes out of template selectors).
//! - The image: `spec.imageId` (else the default), redirects followed at most once per image of
//!   the template (a loop is refused), or `spec.image` if the template allows custom images.
//!   Hidden images are only hidden from spawners: naming one still works.
//! - The resources: `spec.bundle` (else the default bundle, unless `spec.resources` is set), with
//!   its GPUs as request and limit; or `spec.resources` within `custom.maximum`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use berth_api::conditions::{self, Status};
use berth_api::notebook::{Notebook, NotebookResources};
use berth_api::notebook_template::{DEFAULT_TEMPLATE_ANNOTATION, NotebookTemplate};
use berth_api::quantity;

use super::probe;
use super::status::human;
use super::validate::{Invalid, Validated, parse_duration};

/// What the template decided for one notebook.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The template's name.
    pub template: String,
    /// The image id that runs, after redirects (None: a custom image).
    pub image_id: Option<String>,
    /// The bundle in use (None: explicit resources, or the template has no bundles).
    pub bundle: Option<String>,
    /// Why the image is not the one asked for, or is on its way out: (reason, message).
    pub notice: Option<(&'static str, String)>,
    /// The size of /dev/shm, if the bundle sets one.
    pub shared_memory: Option<String>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: BTreeMap<String, String>,
    pub affinity: Option<Affinity>,
}

fn invalid(reason: &'static str, message: String) -> Invalid {
    Invalid { reason, message }
}

/// The template a notebook uses: its own, the default, or none (`Ok(None)`).
pub fn pick<'a>(
    notebook: &Notebook,
    templates: &'a [Arc<NotebookTemplate>],
) -> Result<Option<&'a NotebookTemplate>, Invalid> {
    if let Some(name) = &notebook.spec.template {
        return templates
            .iter()
            .find(|t| &t.name_any() == name)
            .map(|t| Some(t.as_ref()))
            .ok_or_else(|| {
                invalid(
                    "TemplateNotFound",
                    format!(
                        "there is no NotebookTemplate {name:?}; pick one of `kubectl get notebooktemplates` ({})",
                        names(templates)
                    ),
                )
            });
    }
    let mut defaults: Vec<&NotebookTemplate> = templates
        .iter()
        .filter(|t| {
            t.annotations()
                .get(DEFAULT_TEMPLATE_ANNOTATION)
                .map(String::as_str)
                == Some("true")
        })
        .map(Arc::as_ref)
        .collect();
    defaults.sort_by_key(|t| t.name_any());
    match defaults.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(invalid(
            "AmbiguousDefaultTemplate",
            format!(
                "several NotebookTemplates are annotated {DEFAULT_TEMPLATE_ANNOTATION}: \"true\" ({}); set spec.template, or ask a platform admin to keep one default",
                many.iter()
                    .map(|t| t.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn names(templates: &[Arc<NotebookTemplate>]) -> String {
    if templates.is_empty() {
        return "there are none".to_owned();
    }
    let mut names: Vec<String> = templates.iter().map(|t| t.name_any()).collect();
    names.sort();
    names.join(", ")
}

/// Applies the template to a validated notebook: its image, resources, idle timeout and
/// scheduling. `namespace_labels` are the labels of the notebook's namespace (None: not a
/// namespace Berth manages).
pub fn resolve(
    mut nb: Validated,
    notebook: &Notebook,
    templates: &[Arc<NotebookTemplate>],
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Result<Validated, Invalid> {
    let Some(template) = pick(notebook, templates)? else {
        if notebook.spec.image_id.is_some() || notebook.spec.bundle.is_some() {
            return Err(invalid(
                "TemplateNotFound",
                format!(
                    "spec.imageId and spec.bundle pick from a NotebookTemplate, and this notebook has none (no spec.template, no default template); set spec.template to one of: {}",
                    names(templates)
                ),
            ));
        }
        return Ok(nb);
    };
    let name = template.name_any();
    let spec = &template.spec;
    let t = &notebook.spec;

    // Who may use it.
    if let Some(selector) = &spec.projects {
        let allowed = namespace_labels.is_some_and(|labels| selector.matches(labels));
        if !allowed {
            return Err(invalid(
                "TemplateNotAllowed",
                format!(
                    "NotebookTemplate {name} is not offered to this project (namespace {}); pick another template, or ask a platform admin to open it to your project",
                    nb.namespace
                ),
            ));
        }
    }

    // The image.
    let mut notice = None;
    let image_id = match (&t.image, &t.image_id) {
        (Some(image), _) => {
            if !spec.allow_custom_images {
                return Err(invalid(
                    "CustomImageNotAllowed",
                    format!(
                        "NotebookTemplate {name} offers only its own images, not {image:?}; remove spec.image and set spec.imageId to one of: {}",
                        spec.images
                            .iter()
                            .filter(|i| !i.hidden)
                            .map(|i| i.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            nb.image = image.clone();
            None
        }
        (None, asked) => {
            let asked = asked.as_deref().unwrap_or(&spec.default_image);
            let (image, id, redirect) = follow(template, asked)?;
            if let Some(message) = redirect {
                notice = Some(("Redirected", message));
            } else if image.deprecated {
                notice = Some((
                    "Deprecated",
                    format!(
                        "image {id} of NotebookTemplate {name} is deprecated and may go; move to another imageId ({})",
                        spec.images
                            .iter()
                            .filter(|i| !i.deprecated && !i.hidden && i.redirect.is_none())
                            .map(|i| i.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            nb.image = image.image.clone();
            Some(id)
        }
    };

    // The resources.
    let mut bundle_id = None;
    let mut scheduling = (None, Vec::new(), BTreeMap::new(), None);
    match (&t.resources, &t.bundle) {
        (Some(resources), _) => {
            let Some(custom) = &spec.custom else {
                let instead = if spec.bundles.is_empty() {
                    "remove spec.resources (the project's defaults apply)".to_owned()
                } else {
                    format!(
                        "remove spec.resources and set spec.bundle to one of: {}",
                        bundle_ids(template)
                    )
                };
                return Err(invalid(
                    "CustomResourcesNotAllowed",
                    format!("NotebookTemplate {name} does not allow explicit resources; {instead}"),
                ));
            };
            within(resources, &custom.maximum, &name)?;
            nb.resources = resources.clone();
        }
        (None, asked) => {
            let asked = asked.as_deref().or(spec.default_bundle.as_deref());
            if let Some(asked) = asked {
                let bundle = spec.bundles.iter().find(|b| b.id == asked).ok_or_else(|| {
                    invalid(
                        "UnknownBundle",
                        format!(
                            "NotebookTemplate {name} has no bundle {asked:?}; set spec.bundle to one of: {}",
                            bundle_ids(template)
                        ),
                    )
                })?;
                let mut resources = bundle.resources.clone();
                if let Some(gpu) = &bundle.gpu {
                    let count = Quantity(gpu.count.to_string());
                    resources
                        .requests
                        .insert(gpu.resource.clone(), count.clone());
                    resources.limits.insert(gpu.resource.clone(), count);
                }
                nb.resources = resources;
                bundle_id = Some(bundle.id.clone());
                scheduling = (
                    bundle.shared_memory.clone(),
                    bundle.tolerations.clone(),
                    bundle.node_selector.clone(),
                    bundle.affinity.clone(),
                );
            } else {
                nb.resources = NotebookResources::default();
            }
        }
    }

    // The idle timeout.
    if let Some(policy) = &spec.idle_timeout {
        if t.idle_timeout.is_none()
            && let Some(default) = policy.default_timeout.as_deref().and_then(parse_duration)
        {
            nb.idle_timeout = default;
        }
        let min = policy.minimum.as_deref().and_then(parse_duration);
        let max = policy.maximum.as_deref().and_then(parse_duration);
        if min.is_some_and(|m| nb.idle_timeout < m) || max.is_some_and(|m| nb.idle_timeout > m) {
            return Err(invalid(
                "InvalidIdleTimeout",
                format!(
                    "idleTimeout {} is outside what NotebookTemplate {name} allows ({} to {}); set one within",
                    human(nb.idle_timeout),
                    min.map(human).unwrap_or_else(|| "10s".into()),
                    max.map(human).unwrap_or_else(|| "168h".into()),
                ),
            ));
        }
    }

    // The activity probe: the notebook's own, else the template's.
    if t.activity_probe.is_none() && spec.activity_probe.is_some() {
        nb.probe = probe::from_spec(spec.activity_probe.as_ref()).map_err(|message| {
            invalid(
                "InvalidActivityProbe",
                format!("NotebookTemplate {name}: {message}; ask a platform admin to fix it"),
            )
        })?;
    }

    let (shared_memory, tolerations, node_selector, affinity) = scheduling;
    nb.template = Some(Resolved {
        template: name,
        image_id,
        bundle: bundle_id,
        notice,
        shared_memory,
        tolerations,
        node_selector,
        affinity,
    });
    Ok(nb)
}

fn bundle_ids(template: &NotebookTemplate) -> String {
    if template.spec.bundles.is_empty() {
        return "(it has none)".to_owned();
    }
    template
        .spec
        .bundles
        .iter()
        .map(|b| b.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Follows the redirects from image id `asked`: the image that runs, its id, and the redirect
/// messages on the way (None when `asked` is not redirected). At most one step per image of the
/// template; more is a loop.
fn follow<'a>(
    template: &'a NotebookTemplate,
    asked: &str,
) -> Result<
    (
        &'a berth_api::notebook_template::TemplateImage,
        String,
        Option<String>,
    ),
    Invalid,
> {
    let name = template.name_any();
    let images = &template.spec.images;
    let find = |id: &str| images.iter().find(|i| i.id == id);
    let mut image = find(asked).ok_or_else(|| {
        invalid(
            "UnknownImage",
            format!(
                "NotebookTemplate {name} has no image {asked:?}; set spec.imageId to one of: {}",
                images
                    .iter()
                    .filter(|i| !i.hidden)
                    .map(|i| i.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let mut path = vec![asked.to_owned()];
    let mut messages = Vec::new();
    while let Some(redirect) = &image.redirect {
        if path.len() > images.len() || path.contains(&redirect.to) {
            path.push(redirect.to.clone());
            return Err(invalid(
                "ImageRedirectLoop",
                format!(
                    "the image redirects of NotebookTemplate {name} go round in a loop ({}); pick another spec.imageId and tell a platform admin",
                    path.join(" -> ")
                ),
            ));
        }
        let next = find(&redirect.to).ok_or_else(|| {
            invalid(
                "UnknownImage",
                format!(
                    "image {} of NotebookTemplate {name} redirects to {:?}, which the template does not have; pick another spec.imageId and tell a platform admin",
                    image.id, redirect.to
                ),
            )
        })?;
        if !redirect.message.is_empty() {
            messages.push(redirect.message.clone());
        }
        path.push(redirect.to.clone());
        image = next;
    }
    let redirect = (path.len() > 1).then(|| {
        let mut message = format!("image {asked} is redirected to {}", image.id);
        if !messages.is_empty() {
            message.push_str(": ");
            message.push_str(&messages.join("; "));
        }
        message
    });
    Ok((image, image.id.clone(), redirect))
}

/// Checks explicit resources against the template's maximum: every resource asked for is listed,
/// and at most the maximum, as a request and as a limit.
fn within(
    resources: &NotebookResources,
    maximum: &BTreeMap<String, Quantity>,
    template: &str,
) -> Result<(), Invalid> {
    let mut over = Vec::new();
    for (kind, list) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (resource, value) in list {
            let Some(max) = maximum.get(resource) else {
                over.push(format!(
                    "{kind}.{resource} is not offered (the template's custom maximum lists {})",
                    maximum.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            let asked = quantity::parse(&value.0)
                .map_err(|e| invalid("InvalidResources", e.to_string()))?;
            let limit = quantity::parse(&max.0).map_err(|e| {
                invalid(
                    "InvalidTemplate",
                    format!("NotebookTemplate {template}: {e}"),
                )
            })?;
            if asked > limit {
                over.push(format!(
                    "{kind}.{resource} {} is above the maximum {}",
                    value.0, max.0
                ));
            }
        }
    }
    if over.is_empty() {
        return Ok(());
    }
    Err(invalid(
        "ResourcesAboveMaximum",
        format!(
            "NotebookTemplate {template} does not allow these resources: {}; ask for less, or pick a bundle",
            over.join("; ")
        ),
    ))
}

/// The condition that says whether the notebook runs the image it asked for, current.
pub const IMAGE_CURRENT: &str = "ImageCurrent";

/// The template's part of a notebook's status: the template, image id and bundle in use, and
/// ImageCurrent (False with Redirected or Deprecated and the message). Absent without a template,
/// and for a notebook refused (`None`): the Ready condition says why.
pub fn status(
    nb: Option<&Validated>,
    next: &mut berth_api::notebook::NotebookStatus,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) {
    let Some((nb, resolved)) = nb.and_then(|nb| nb.template.as_ref().map(|r| (nb, r))) else {
        next.conditions.retain(|c| c.type_ != IMAGE_CURRENT);
        return;
    };
    next.template = Some(resolved.template.clone());
    next.image_id = resolved.image_id.clone();
    next.bundle = resolved.bundle.clone();
    let (status, reason, message) = match &resolved.notice {
        Some((reason, message)) => (Status::False, *reason, message.clone()),
        None => (
            Status::True,
            "Current",
            format!("runs {} as asked", nb.image),
        ),
    };
    conditions::set(
        &mut next.conditions,
        IMAGE_CURRENT,
        status,
        reason,
        &message,
        generation,
        now,
    );
}
