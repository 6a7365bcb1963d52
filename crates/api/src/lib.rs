//! Berth's API: the custom resource types users apply, their schemas, and the helpers that
//! every controller uses to read and write them. Nothing in this crate does IO.

pub mod conditions;
pub mod egress;
pub mod labels;
pub mod members;
pub mod mlmodel;
pub mod model_auth;
pub mod namespaces;
pub mod notebook;
pub mod notebook_host;
pub mod notebook_template;
pub mod project;
pub mod providers;
pub mod quantity;
pub mod quota;
pub mod settings;

pub use mlmodel::{MLModel, MLModelSpec, MLModelStatus, ModelSettings};
pub use notebook::{Notebook, NotebookSpec, NotebookStatus};
pub use notebook_template::{NotebookTemplate, NotebookTemplateSpec};
pub use project::{
    DeletionPolicy, Member, MemberKind, PodSecurityLevel, Project, ProjectSpec, ProjectStatus, Role,
};
pub use settings::{PlatformSettings, PlatformSettingsSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::CustomResourceExt;

/// The API group of every Berth kind.
pub const GROUP: &str = "berth.dev";

/// Every CustomResourceDefinition Berth ships, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Project::crd(),
        PlatformSettings::crd(),
        MLModel::crd(),
        Notebook::crd(),
        NotebookTemplate::crd(),
    ]
}

/// The YAML of one CRD as written to `deploy/crds/<plural>.<group>.yaml`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// The file name a CRD is written to under `deploy/crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy/crds/` is what users apply: it must be exactly what the types generate.
    #[test]
    fn deploy_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        for crd in crds() {
            let path = dir.join(crd_file_name(&crd));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                on_disk,
                crd_yaml(&crd).unwrap(),
                "{} is stale: run `cargo xtask crdgen`",
                path.display()
            );
        }
    }
}
