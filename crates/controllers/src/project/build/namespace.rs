//! The project's Namespace: Berth's labels, Pod Security, the spec's extra labels and
//! annotations, and Istio's and Kubeflow's labels where the settings turn them on.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;

use berth_api::settings::IstioMode;
use berth_api::{MemberKind, PlatformSettingsSpec, Role};
use berth_reconcile::{Desired, Error};

use super::super::validate::Validated;
use super::meta::labels;
use crate::kinds;

/// Set on a namespace a Project adopted: it held data before Berth, so the Delete policy keeps
/// it unless a platform admin asks otherwise.
pub const ADOPTED_ANNOTATION: &str = "berth.dev/adopted-namespace";

pub fn build(
    project: &Validated,
    settings: &PlatformSettingsSpec,
    adopted: bool,
) -> Result<Desired, Error> {
    let spec = &project.project.spec;
    let level = spec
        .pod_security
        .as_ref()
        .map(|p| p.level)
        .unwrap_or_default();
    let mut ns_labels = spec.namespace_labels.clone();
    ns_labels.extend(labels(project));
    for mode in ["enforce", "audit", "warn"] {
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            level.as_str().to_owned(),
        );
        ns_labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_owned(),
        );
    }
    if settings.istio.enabled {
        match settings.istio.mode {
            IstioMode::Sidecar => ns_labels.insert("istio-injection".into(), "enabled".into()),
            IstioMode::Ambient => {
                ns_labels.insert("istio.io/dataplane-mode".into(), "ambient".into())
            }
        };
    }
    let mut annotations = spec.namespace_annotations.clone();
    if settings.kubeflow.enabled {
        for (k, v) in [
            ("app.kubernetes.io/part-of", "kubeflow-profile"),
            ("katib.kubeflow.org/metrics-collector-injection", "enabled"),
            ("pipelines.kubeflow.org/enabled", "true"),
            ("serving.kubeflow.org/inferenceservice", "enabled"),
        ] {
            ns_labels.insert(k.into(), v.into());
        }
        if let Some(first) = project
            .subjects
            .iter()
            .find(|s| s.role == Role::Owner && s.kind == MemberKind::User)
        {
            annotations.insert("owner".into(), first.name.clone());
        }
    }
    if adopted {
        annotations.insert(ADOPTED_ANNOTATION.into(), "true".into());
    }
    Desired::new(
        &kinds::namespace(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(project.namespace.clone()),
                labels: Some(ns_labels),
                annotations: Some(annotations).filter(|a| !a.is_empty()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}
