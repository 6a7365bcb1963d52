//! `cargo xtask chart [--check]`: the parts of the Helm charts that come from `deploy/`.
//!
//! `deploy/` is the one source of Berth's CRDs, RBAC, admission policies and default settings
//! (other tasks and the tests apply it as it is). This writes, from it:
//! - `charts/berth-crds/templates/<crd>.yaml`: each CRD, annotated `helm.sh/resource-policy: keep`;
//! - `charts/berth/templates/rbac/<file>.yaml`: each `deploy/rbac` file with the operator's
//!   namespace made `{{ .Release.Namespace }}`, without the Namespace object, and every object
//!   but the operator's own identity kept on uninstall;
//! - the `settings:` at the end of `charts/berth/values.yaml`, from `deploy/settings/default.yaml`;
//! - `charts/berth/values.schema.json` (see [`schema`]).
//!
//! With `--check` it writes nothing and fails when any of them differs (CI runs it), or when a
//! chart's appVersion is not the crates' version (the tag of Berth's images).

pub mod schema;
pub mod templates;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::repo_root;

/// The two charts, relative to the repository.
pub const CHART: &str = "charts/berth";
pub const CRDS_CHART: &str = "charts/berth-crds";
/// Generated directories: every file in them is generated, and one that is not is stale.
const GENERATED_DIRS: [&str; 2] = ["charts/berth-crds/templates", "charts/berth/templates/rbac"];

fn read(root: &Path, relative: &str) -> Result<String> {
    std::fs::read_to_string(root.join(relative)).with_context(|| format!("reading {relative}"))
}

/// The YAML files of a `deploy/` directory, sorted by name.
fn yaml_files(root: &Path, relative: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(relative))
        .with_context(|| format!("reading {relative}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    Ok(names)
}

/// Every generated file: its path relative to the repository, and its text.
pub fn generate(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for name in yaml_files(root, "deploy/crds")? {
        let source = format!("deploy/crds/{name}");
        let text = templates::crd_template(&source, &read(root, &source)?)?;
        files.insert(format!("{CRDS_CHART}/templates/{name}"), text);
    }
    // One object per kind, namespace and name: kubectl and Helm would apply a second one over the
    // first without a word (a policy named twice loses its first rules).
    let mut seen = BTreeMap::new();
    for name in yaml_files(root, "deploy/rbac")? {
        let source = format!("deploy/rbac/{name}");
        for key in templates::object_keys(&source, &read(root, &source)?)? {
            if let Some(first) = seen.insert(key.clone(), source.clone()) {
                bail!(
                    "{key} is defined twice, in {first} and {source}: the second would replace the first; rename one"
                );
            }
        }
    }
    for name in yaml_files(root, "deploy/rbac")? {
        let source = format!("deploy/rbac/{name}");
        let text = templates::rbac_template(&source, &name, &read(root, &source)?)?;
        files.insert(format!("{CHART}/templates/rbac/{name}"), text);
    }
    let values_path = format!("{CHART}/values.yaml");
    let values = templates::values_with_settings(
        &read(root, &values_path)?,
        &read(root, "deploy/settings/default.yaml")?,
    )?;
    files.insert(values_path, values);
    let schema =
        schema::values_schema(&read(root, "deploy/crds/platformsettings.berth.dev.yaml")?)?;
    files.insert(format!("{CHART}/values.schema.json"), schema);
    Ok(files)
}

/// Files in the generated directories that nothing generates any more.
fn stale(root: &Path, files: &BTreeMap<String, String>) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for dir in GENERATED_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if !files.contains_key(&path) {
                stale.push(path);
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// The `appVersion` of each chart must be the crates' version: the images' default tag.
fn check_app_versions(root: &Path) -> Result<()> {
    for chart in [CHART, CRDS_CHART] {
        let path = format!("{chart}/Chart.yaml");
        let meta: serde_yaml::Value = serde_yaml::from_str(&read(root, &path)?)?;
        let app_version = meta.get("appVersion").and_then(serde_yaml::Value::as_str);
        if app_version != Some(berth_api::mlmodel::IMAGE_TAG) {
            bail!(
                "{path}: appVersion is {app_version:?}, but Berth's crates (and its images' tags) are {}; set it",
                berth_api::mlmodel::IMAGE_TAG
            );
        }
    }
    Ok(())
}

pub fn run(check: bool) -> Result<()> {
    let root = repo_root();
    check_app_versions(&root)?;
    let files = generate(&root)?;
    let stale = stale(&root, &files)?;
    let mut differ = Vec::new();
    for (relative, text) in &files {
        let path: PathBuf = root.join(relative);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if &current == text {
            continue;
        }
        if check {
            differ.push(relative.clone());
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text).with_context(|| format!("writing {relative}"))?;
            eprintln!("wrote {relative}");
        }
    }
    if check {
        differ.extend(
            stale
                .iter()
                .map(|s| format!("{s} (generated from nothing)")),
        );
        if !differ.is_empty() {
            bail!(
                "the charts differ from deploy/; run `cargo xtask chart`:\n  {}",
                differ.join("\n  ")
            );
        }
    } else {
        for relative in stale {
            std::fs::remove_file(root.join(&relative))
                .with_context(|| format!("removing {relative}"))?;
            eprintln!("removed {relative} (generated from nothing)");
        }
    }
    Ok(())
}
