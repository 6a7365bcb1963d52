//! The Deployments that serve a model: the stable one (named after the model) and, with a canary,
//! the canary's beside it; and the autoscaler.
//!
//! Replicas of a version share its volume. With `ReadWriteOnce` volumes (the default access
//! mode), a volume can be attached to one node only, so replicas of one version are co-scheduled
//! on one node (a required pod affinity to the version's own pods); otherwise replicas placed on
//! other nodes would wait for the volume until the rollout deadline.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Affinity, PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm, PodSpec,
    PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;

use berth_reconcile::{Desired, Error};

use super::proxy::token_volume;
use super::runtime::{containers, pod_security};
use super::{CANARY, Ctx, Plan, SERVER, STABLE, TRACK, VERSION, Version, volume_name};
use crate::kinds;
use crate::mlmodel::auth::{AUTH_LABEL, Auth};
use crate::names::kube::{MODEL_AUTH_ACCOUNT, model_canary};

/// The Deployments (stable and canary) and the autoscaler of the plan.
pub fn children(ctx: &Ctx, plan: &Plan) -> Result<Vec<Desired>, Error> {
    let mut children = Vec::new();
    let Some(version) = &plan.serve else {
        return Ok(children);
    };
    // Without a way to check callers that the spec accepts (an oidc model whose Project has no
    // OIDC client), nothing serves: never a weaker check than asked for.
    let Some(auth) = ctx.auth else {
        return Ok(children);
    };
    let stable_replicas = if ctx.model.spec.autoscaling.is_some() {
        plan.autoscaled_replicas
    } else {
        Some(ctx.model.spec.replicas.unwrap_or(1))
    };
    children.push(Desired::new(
        &kinds::deployment(),
        &deployment(ctx, ctx.name, STABLE, version, stable_replicas, auth),
    )?);
    if let Some(canary) = &plan.canary {
        children.push(Desired::new(
            &kinds::deployment(),
            &deployment(
                ctx,
                &model_canary(ctx.name),
                CANARY,
                &canary.version,
                Some(canary.replicas),
                auth,
            ),
        )?);
    }
    if let Some(auto) = &ctx.model.spec.autoscaling {
        children.push(Desired::new(
            &kinds::horizontal_pod_autoscaler(),
            &HorizontalPodAutoscaler {
                metadata: ctx.meta(ctx.name, BTreeMap::new()),
                spec: HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: Some("apps/v1".into()),
                        kind: "Deployment".into(),
                        name: ctx.name.to_owned(),
                    },
                    min_replicas: Some(auto.min_replicas),
                    max_replicas: auto.max_replicas,
                    metrics: Some(vec![MetricSpec {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricSource {
                            name: "cpu".into(),
                            target: MetricTarget {
                                type_: "Utilization".into(),
                                average_utilization: Some(auto.target_cpu_utilization),
                                ..Default::default()
                            },
                        }),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )?);
    }
    Ok(children)
}

/// The most replicas a version may run (its autoscaler's maximum, else the replicas asked for).
fn most_replicas(ctx: &Ctx, replicas: Option<i32>) -> i32 {
    ctx.model
        .spec
        .autoscaling
        .as_ref()
        .map(|a| a.max_replicas)
        .unwrap_or(0)
        .max(replicas.unwrap_or(1))
}

/// Whether replicas of one version must share a node: several of them on a volume that attaches
/// to one node only (a volume of Berth's, `ReadWriteOnce`).
pub fn co_scheduled(ctx: &Ctx, version: &Version, replicas: Option<i32>) -> bool {
    version.downloads()
        && ctx.settings.volume_access_mode == "ReadWriteOnce"
        && most_replicas(ctx, replicas) > 1
}

fn deployment(
    ctx: &Ctx,
    name: &str,
    track: &str,
    version: &Version,
    replicas: Option<i32>,
    auth: &Auth,
) -> Deployment {
    let mut pod_labels = ctx.labels(Ctx::version_labels(SERVER, &version.key));
    pod_labels.insert(AUTH_LABEL.into(), auth.mode().as_str().into());
    pod_labels.insert("app.kubernetes.io/name".into(), ctx.name.to_owned());
    pod_labels.insert(TRACK.into(), track.into());
    let (claim, sub_path) = match version.existing_volume() {
        Some((claim, path)) => (claim, Some(path).filter(|p| !p.is_empty())),
        None => (volume_name(ctx.name, &version.key), None),
    };
    // The stable Deployment's selector is the one it was made with (a selector cannot change):
    // the model's serving pods. The canary's adds its track; its ReplicaSets are its own.
    let selector = if track == STABLE {
        ctx.server_selector()
    } else {
        ctx.track_selector(track)
    };
    let affinity = co_scheduled(ctx, version, replicas).then(|| {
        let mut same_version = ctx.server_selector();
        same_version.insert(VERSION.into(), version.key.clone());
        Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(same_version),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    });
    Deployment {
        metadata: ctx.meta(name, BTreeMap::new()),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            progress_deadline_seconds: Some(ctx.settings.rollout_deadline_seconds),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // No container gets an API token unless it checks ServiceAccount tokens
                    // (kubernetes mode): then only that one, through its own mount.
                    automount_service_account_token: Some(false),
                    service_account_name: matches!(auth, Auth::Kubernetes { .. })
                        .then(|| MODEL_AUTH_ACCOUNT.to_owned()),
                    security_context: Some(pod_security()),
                    affinity,
                    containers: containers(ctx, version, sub_path, auth),
                    volumes: Some(
                        std::iter::once(Volume {
                            name: "model".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: claim,
                                read_only: Some(true),
                            }),
                            ..Default::default()
                        })
                        .chain(token_volume(auth))
                        .collect(),
                    ),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
