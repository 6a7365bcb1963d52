//! The spawner: what a user may pick for a new notebook in one project, from the
//! NotebookTemplates and the labels of the project's namespace.
//!
//! Which templates apply is `berth_api::notebook_template::ProjectSelector::matches`, the very
//! function the notebook controller calls (`notebook::template::resolve`), over the namespace's
//! labels: a template without `projects` applies everywhere.

use std::collections::BTreeMap;

use berth_api::notebook::DEFAULT_IDLE_TIMEOUT;
use berth_api::notebook_template::{
    DEFAULT_TEMPLATE_ANNOTATION, NotebookTemplate, ResourceBundle, TemplateImage,
};
use berth_api::quantity;
use kube::ResourceExt;
use serde::Serialize;

use super::form::{bytes_text, cpu_text, human_bytes, human_cpu, human_duration, parse_duration};

/// The spawner form of one project.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spawner {
    /// The templates offered to this project, by name; empty when none applies (then the form
    /// offers a custom image and explicit resources only if `without_template` is true).
    pub templates: Vec<TemplateChoice>,
    /// The template preselected: the one annotated `berth.dev/default-template: "true"` among
    /// those offered, if exactly one is.
    pub default_template: Option<String>,
    /// True when no template is annotated as the default on the cluster: a notebook that names
    /// no template then runs without one (Berth's Jupyter image or its own `customImage`, its own
    /// `cpu`/`memory`/`gpu` or the project's defaults), so the form may offer "no template".
    pub without_template: bool,
}

/// One template as the spawner offers it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateChoice {
    /// The template's name (the form's `template` value).
    pub name: String,
    /// Its display name (the name when it has none).
    pub display_name: String,
    pub description: String,
    /// Whether it is the default template (preselected).
    pub default: bool,
    /// The images offered: hidden ones left out, in the template's order.
    pub images: Vec<ImageChoice>,
    /// The bundles, in the template's order.
    pub bundles: Vec<BundleChoice>,
    /// Whether the form may offer a custom image reference (`customImage`).
    pub allow_custom_images: bool,
    /// Explicit resources instead of a bundle (`cpu`, `memory`, `gpu`), with their maxima;
    /// `None`: bundles only.
    pub custom: Option<CustomChoice>,
    /// The idle timeout: default and bounds.
    pub idle_timeout: IdleChoice,
}

/// One image of a template.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageChoice {
    /// The form's `imageId` value.
    pub id: String,
    /// Its display name (the id when it has none).
    pub display_name: String,
    /// The image reference.
    pub image: String,
    /// The template's labels, such as ("python", "3.11"), ("cuda", "12.4"), by key.
    pub labels: Vec<(String, String)>,
    /// Preselected (the template's defaultImage).
    pub selected: bool,
    pub deprecated: bool,
    /// Where a redirect leads: the id that runs instead.
    pub redirect_to: Option<String>,
    /// What to print beside the name: `deprecated`, `→ <id>: <message>`, or empty.
    pub note: String,
}

/// One resource bundle, in human units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BundleChoice {
    /// The form's `bundle` value.
    pub id: String,
    /// Its display name, else `summary`.
    pub display_name: String,
    /// `2 CPUs` (the request; `up to 4 CPUs` added for a higher limit); empty when unset.
    pub cpu: String,
    /// `8 GiB` (the limit, else the request); empty when unset.
    pub memory: String,
    /// `1 × nvidia.com/gpu`; empty without GPUs.
    pub gpu: String,
    /// `/dev/shm 1 GiB`; empty when the bundle sets none.
    pub shared_memory: String,
    /// Everything above in one line: `2 CPUs, 8 GiB, 1 × nvidia.com/gpu, /dev/shm 1 GiB`.
    pub summary: String,
    /// Preselected (the template's defaultBundle).
    pub selected: bool,
}

/// Explicit resources a template allows, with its maxima.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CustomChoice {
    /// `8 CPUs`; `None`: CPU may not be asked for.
    pub max_cpu: Option<String>,
    /// `32 GiB`; `None`: memory may not be asked for.
    pub max_memory: Option<String>,
    /// Every other resource of the maximum (GPUs): (resource, maximum count as written).
    pub gpus: Vec<(String, String)>,
}

/// The idle timeout a form offers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdleChoice {
    /// The timeout a notebook gets when the field is left empty, such as `1h`.
    pub default: String,
    /// The shortest allowed, such as `10m` (`10s` when the template sets none).
    pub minimum: String,
    /// The longest allowed, such as `24h` (`168h` when the template sets none).
    pub maximum: String,
}

/// Whether `template` is offered to a project whose namespace has `labels`.
pub fn applies(template: &NotebookTemplate, labels: &BTreeMap<String, String>) -> bool {
    template
        .spec
        .projects
        .as_ref()
        .is_none_or(|selector| selector.matches(labels))
}

/// Whether `template` is annotated as the default.
pub fn is_default(template: &NotebookTemplate) -> bool {
    template
        .annotations()
        .get(DEFAULT_TEMPLATE_ANNOTATION)
        .map(String::as_str)
        == Some("true")
}

/// The spawner of the project whose namespace has `namespace_labels`, from every
/// NotebookTemplate of the cluster.
pub fn spawner(
    templates: &[NotebookTemplate],
    namespace_labels: &BTreeMap<String, String>,
) -> Spawner {
    let mut offered: Vec<&NotebookTemplate> = templates
        .iter()
        .filter(|t| applies(t, namespace_labels))
        .collect();
    offered.sort_by_key(|t| t.name_any());
    let defaults: Vec<String> = offered
        .iter()
        .filter(|t| is_default(t))
        .map(|t| t.name_any())
        .collect();
    let default_template = (defaults.len() == 1).then(|| defaults[0].clone());
    Spawner {
        templates: offered
            .iter()
            .map(|t| template_choice(t, default_template.as_deref()))
            .collect(),
        default_template,
        without_template: !templates.iter().any(is_default),
    }
}

fn template_choice(t: &NotebookTemplate, default: Option<&str>) -> TemplateChoice {
    let name = t.name_any();
    let spec = &t.spec;
    TemplateChoice {
        display_name: if spec.display_name.is_empty() {
            name.clone()
        } else {
            spec.display_name.clone()
        },
        description: spec.description.clone(),
        default: default == Some(name.as_str()),
        images: spec
            .images
            .iter()
            .filter(|i| !i.hidden)
            .map(|i| image_choice(i, &spec.default_image))
            .collect(),
        bundles: spec
            .bundles
            .iter()
            .map(|b| bundle_choice(b, spec.default_bundle.as_deref()))
            .collect(),
        allow_custom_images: spec.allow_custom_images,
        custom: spec.custom.as_ref().map(|c| CustomChoice {
            max_cpu: c.maximum.get("cpu").map(|q| cpu_text(&q.0)),
            max_memory: c.maximum.get("memory").map(|q| bytes_text(&q.0)),
            gpus: c
                .maximum
                .iter()
                .filter(|(k, _)| k.as_str() != "cpu" && k.as_str() != "memory")
                .map(|(k, q)| (k.clone(), q.0.clone()))
                .collect(),
        }),
        idle_timeout: idle_choice(t),
        name,
    }
}

fn image_choice(i: &TemplateImage, default: &str) -> ImageChoice {
    let note = match (&i.redirect, i.deprecated) {
        (Some(r), _) if r.message.is_empty() => format!("→ {}", r.to),
        (Some(r), _) => format!("→ {}: {}", r.to, r.message),
        (None, true) => "deprecated".to_owned(),
        (None, false) => String::new(),
    };
    ImageChoice {
        id: i.id.clone(),
        display_name: if i.display_name.is_empty() {
            i.id.clone()
        } else {
            i.display_name.clone()
        },
        image: i.image.clone(),
        labels: i
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        selected: i.id == default,
        deprecated: i.deprecated,
        redirect_to: i.redirect.as_ref().map(|r| r.to.clone()),
        note,
    }
}

fn bundle_choice(b: &ResourceBundle, default: Option<&str>) -> BundleChoice {
    let get = |list: &berth_api::project::ResourceList, key: &str| {
        list.get(key).and_then(|q| quantity::parse(&q.0).ok())
    };
    let r = &b.resources;
    let cpu = match (get(&r.requests, "cpu"), get(&r.limits, "cpu")) {
        (Some(req), Some(lim)) if lim > req => {
            format!("{} (up to {})", human_cpu(req), human_cpu(lim))
        }
        (Some(req), _) => human_cpu(req),
        (None, Some(lim)) => human_cpu(lim),
        (None, None) => String::new(),
    };
    let memory = get(&r.limits, "memory")
        .or_else(|| get(&r.requests, "memory"))
        .map(human_bytes)
        .unwrap_or_default();
    let gpu = b
        .gpu
        .as_ref()
        .map(|g| format!("{} × {}", g.count, g.resource))
        .unwrap_or_default();
    let shared_memory = b
        .shared_memory
        .as_deref()
        .map(|s| format!("/dev/shm {}", bytes_text(s)))
        .unwrap_or_default();
    let summary = [&cpu, &memory, &gpu, &shared_memory]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    BundleChoice {
        id: b.id.clone(),
        display_name: if b.display_name.is_empty() {
            summary.clone()
        } else {
            b.display_name.clone()
        },
        cpu,
        memory,
        gpu,
        shared_memory,
        summary,
        selected: default == Some(b.id.as_str()),
    }
}

/// The idle timeout bounds of a template: (default, minimum, maximum), as durations. The CRD
/// bounds every one to 10s..168h; a value that does not parse counts as unset, as the
/// controller reads it.
pub fn idle_bounds(
    t: &NotebookTemplate,
) -> (
    std::time::Duration,
    std::time::Duration,
    std::time::Duration,
) {
    let policy = t.spec.idle_timeout.as_ref();
    let read = |f: fn(&berth_api::notebook_template::IdleTimeoutPolicy) -> Option<&String>| {
        policy.and_then(f).and_then(|s| parse_duration(s))
    };
    let fallback = parse_duration(DEFAULT_IDLE_TIMEOUT).unwrap_or_default();
    (
        read(|p| p.default_timeout.as_ref()).unwrap_or(fallback),
        read(|p| p.minimum.as_ref()).unwrap_or(std::time::Duration::from_secs(10)),
        read(|p| p.maximum.as_ref()).unwrap_or(std::time::Duration::from_secs(168 * 3600)),
    )
}

fn idle_choice(t: &NotebookTemplate) -> IdleChoice {
    let (default, minimum, maximum) = idle_bounds(t);
    IdleChoice {
        default: human_duration(default),
        minimum: human_duration(minimum),
        maximum: human_duration(maximum),
    }
}
