//! The pure middle of the Notebook controller: from a validated notebook to its children. No IO.
//!
//! - a PersistentVolumeClaim `<name>-home`, mounted at HOME (/home/jovyan). It has no
//!   ownerReference, so deleting the Notebook keeps it (as a Project keeps its namespace), and a
//!   Notebook of the same name in the same namespace takes it up again;
//! - a StatefulSet `<name>` with 1 replica, or 0 while stopped: its pod `<name>-0` runs JupyterLab
//!   under `restricted` pod security, with `NB_PREFIX=/notebook/<namespace>/<name>`;
//! - a ClusterIP Service `<name>` (port `http`, 8888) for `kubectl port-forward`. The project's
//!   NetworkPolicies let only pods of the same namespace reach it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_reconcile::{Desired, Error};

use super::validate::Validated;
use super::volumes;
use super::wiring::Wiring;
use crate::kinds;

/// The port JupyterLab listens on, named `http` in the pod and the Service.
pub const PORT: i32 = 8888;
/// HOME in the container, where the home volume is mounted (the Jupyter images' user `jovyan`).
pub const HOME: &str = "/home/jovyan";
/// The user and group the notebook runs as (Berth's Jupyter image's `jovyan`).
pub const USER: i64 = 65532;
/// The container's name.
pub const CONTAINER: &str = "notebook";

/// What the children of one notebook are.
pub struct Built {
    pub children: Vec<Desired>,
}

fn labels(nb: &Validated) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (NOTEBOOK.to_owned(), nb.name.clone()),
    ])
}

fn owner(nb: &Validated) -> OwnerReference {
    OwnerReference {
        api_version: "berth.dev/v1alpha1".into(),
        kind: "Notebook".into(),
        name: nb.name.clone(),
        uid: nb.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(nb: &Validated, name: &str, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(nb.namespace.clone()),
        labels: Some(labels(nb)),
        owner_references: owned.then(|| vec![owner(nb)]),
        ..Default::default()
    }
}

/// Every child of `nb`. `live_storage_class` is the class of the home volume if it exists
/// already: a volume's class cannot change, so the build keeps it. `wiring` adds the account,
/// pull secrets and data volumes, and holds the notebook (see `wiring`).
pub fn build(
    nb: &Validated,
    live_storage_class: Option<&str>,
    wiring: &Wiring,
) -> Result<Built, Error> {
    let mut children = Vec::new();
    if wiring.makes(&nb.home) {
        children.push(Desired::new(
            &kinds::notebook_home(),
            &home(nb, live_storage_class.or(nb.storage_class.as_deref())),
        )?);
    }
    children.push(Desired::new(&kinds::service(), &service(nb))?);
    let mut sts = stateful_set(nb);
    wiring.apply(nb, &mut sts);
    children.push(Desired::new(&kinds::stateful_set(), &sts)?);
    for volume in nb.volumes.iter().filter(|v| wiring.makes(&v.claim)) {
        let live = wiring.volume_classes.get(&volume.claim).map(String::as_str);
        if let Some(claim) = volumes::claim(&nb.name, &nb.namespace, volume, live) {
            children.push(Desired::new(&kinds::notebook_home(), &claim)?);
        }
    }
    Ok(Built { children })
}

/// The home volume.
pub fn home(nb: &Validated, storage_class: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(nb, &nb.home, false),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class.map(str::to_owned),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(nb.home_size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service port-forward and the namespace's own pods use.
pub fn service(nb: &Validated) -> Service {
    Service {
        metadata: meta(nb, &nb.name, true),
        spec: Some(ServiceSpec {
            // Said, not defaulted: a Service of this name made beforehand as ExternalName (or
            // headless) becomes a ClusterIP to the notebook's pod once Berth applies it.
            type_: Some("ClusterIP".into()),
            selector: Some(labels(nb)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet: one pod while running, none while stopped.
pub fn stateful_set(nb: &Validated) -> StatefulSet {
    let prefix = nb.path.trim_end_matches('/').to_owned();
    let mut env = vec![
        EnvVar {
            name: "NB_PREFIX".into(),
            value: Some(prefix),
            ..Default::default()
        },
        EnvVar {
            name: "HOME".into(),
            value: Some(HOME.into()),
            ..Default::default()
        },
    ];
    env.extend(nb.env.iter().map(|e| EnvVar {
        name: e.name.clone(),
        value: Some(e.value.clone()),
        ..Default::default()
    }));
    let resources =
        (!nb.resources.requests.is_empty() || !nb.resources.limits.is_empty()).then(|| {
            ResourceRequirements {
                requests: (!nb.resources.requests.is_empty())
                    .then(|| nb.resources.requests.clone()),
                limits: (!nb.resources.limits.is_empty()).then(|| nb.resources.limits.clone()),
                ..Default::default()
            }
        });
    let container = Container {
        name: CONTAINER.into(),
        image: Some(nb.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(format!("{}api", nb.path)),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(2),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        resources,
        volume_mounts: Some(vec![VolumeMount {
            name: "home".into(),
            mount_path: HOME.into(),
            ..Default::default()
        }]),
        working_dir: Some(HOME.into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut sts = StatefulSet {
        metadata: meta(nb, &nb.name, true),
        spec: Some(StatefulSetSpec {
            replicas: Some(if nb.stopped { 0 } else { 1 }),
            service_name: Some(nb.name.clone()),
            selector: LabelSelector {
                match_labels: Some(labels(nb)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(nb)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The notebook holds no token of the project's: a user who wants the API
                    // uses their own credentials.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(USER),
                        run_as_group: Some(USER),
                        fs_group: Some(USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(10),
                    volumes: Some(vec![Volume {
                        name: "home".into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: nb.home.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    // The template bundle's tolerations, node selector, affinity and /dev/shm.
    if let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        super::scheduling::decorate(nb, pod);
    }
    sts
}
