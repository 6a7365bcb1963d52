//! Resizing a notebook: the resize form of a notebook's page (`bundle`, or `cpu`, `memory`,
//! `gpu`, `gpuResource`, read as the spawner reads them) → the merge patch of its spec. A resize
//! is a spec change: the notebook restarts with the new resources and the same home volume
//! (docs/notebooks.md, "Stop, resume, resize").

use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::form::{FieldError, Form, merge_patch};
use super::spawn::{bundle_ids, explicit_resources};
use super::spawner::is_default;

const FIELDS: &[&str] = &["bundle", "cpu", "memory", "gpu", "gpuResource"];

/// The template `notebook` runs with: its own, else the one status names, else the default;
/// `Ok(None)` without one. Err: the named template is gone.
fn template_of<'a>(
    notebook: &Notebook,
    templates: &'a [NotebookTemplate],
) -> Result<Option<&'a NotebookTemplate>, String> {
    let named = notebook
        .spec
        .template
        .clone()
        .or_else(|| notebook.status.as_ref().and_then(|s| s.template.clone()));
    match named {
        Some(name) => templates
            .iter()
            .find(|t| t.name_any() == name)
            .map(Some)
            .ok_or_else(|| format!("the notebook's template {name} is gone; ask a platform admin")),
        None => Ok(templates.iter().find(|t| is_default(t))),
    }
}

/// Parses the resize form of `notebook` into the merge patch of its spec (the bundle, or the
/// explicit resources, and nothing of the other left behind), guarded by its resourceVersion.
pub fn parse_resize(
    fields: &[(String, String)],
    notebook: &Notebook,
    templates: &[NotebookTemplate],
) -> Result<Value, Vec<FieldError>> {
    let form = Form::new(fields);
    let errors = form.check(FIELDS);
    if !errors.is_empty() {
        return Err(errors);
    }
    let template =
        template_of(notebook, templates).map_err(|m| vec![FieldError::new("form", m)])?;
    let explicit = form.get("cpu").is_some()
        || form.get("memory").is_some()
        || form.get("gpu").is_some_and(|g| g != "0");
    let mut after = notebook.spec.clone();
    match (form.get("bundle"), explicit, template) {
        (Some(_), true, _) => {
            return Err(vec![FieldError::new(
                "bundle",
                "pick a bundle or set CPU, memory and GPUs, not both",
            )]);
        }
        (Some(_), false, None) => {
            return Err(vec![FieldError::new(
                "bundle",
                "a bundle picks from a template, and this notebook has none; set CPU and memory instead",
            )]);
        }
        (Some(id), false, Some(t)) => {
            if !t.spec.bundles.iter().any(|b| b.id == id) {
                return Err(vec![FieldError::new(
                    "bundle",
                    format!(
                        "this template has no bundle {id:?}; pick one of: {}",
                        bundle_ids(t)
                    ),
                )]);
            }
            after.bundle = Some(id.to_owned());
            after.resources = None;
        }
        (None, true, t) => {
            after.resources = Some(explicit_resources(&form, t)?);
            after.bundle = None;
        }
        (None, false, _) => {
            return Err(vec![FieldError::new(
                "bundle",
                "pick a bundle, or set CPU, memory or GPUs",
            )]);
        }
    }
    let (Ok(before), Ok(after)) = (
        serde_json::to_value(&notebook.spec),
        serde_json::to_value(&after),
    ) else {
        return Err(vec![FieldError::new(
            "form",
            "the notebook could not be read",
        )]);
    };
    let mut patch = json!({"spec": merge_patch(&before, &after)});
    if let (Some(version), Value::Object(map)) = (notebook.resource_version(), &mut patch) {
        map.insert("metadata".into(), json!({"resourceVersion": version}));
    }
    Ok(patch)
}
