//! The pure heart of the MLModel controller: from a model, the platform settings and the rollout
//! plan to every object that should exist for it. No IO. One file per concern:
//!
//! - [`download`]: each version's volume and download Job;
//! - [`serving`]: the Deployments (stable, and the canary's) and the autoscaler;
//! - [`runtime`]: the containers of a serving pod;
//! - [`proxy`]: the auth proxy in front of runtimes other than onnx, and the API token of
//!   `kubernetes` auth mode;
//! - [`exposure`]: the Services and the route, with the canary's share.

pub mod download;
pub mod exposure;
pub mod proxy;
pub mod runtime;
pub mod serving;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::ObjectMeta;
use serde_json::json;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, MODEL};
use berth_api::mlmodel::{MLModel, ModelSettings, ModelSource, RuntimeSpec};
use berth_reconcile::{ChildKind, Desired, Error};

use super::auth::Auth;
use super::host::Host;

/// The label that tells a model's serving pods from its download pods.
pub const COMPONENT: &str = "berth.dev/component";
/// The label naming the version a download or serving pod belongs to.
pub const VERSION: &str = "berth.dev/version";
/// The label telling the stable serving pods from the canary's.
pub const TRACK: &str = "berth.dev/track";
/// Values of [`COMPONENT`].
pub const SERVER: &str = "server";
pub const DOWNLOAD: &str = "download";
/// Values of [`TRACK`].
pub const STABLE: &str = "stable";
pub const CANARY: &str = "canary";
/// Where the model is mounted in every container.
pub const MODEL_DIR: &str = "/mnt/models";

pub use self::download::{
    DEFAULT_STORAGE_SECRET, FETCH_CONTAINER, FINAL_EXIT_CODES, job_for, parse_duration_seconds,
};
pub use self::runtime::{METRICS_PORT, PRE_STOP_SECONDS, RUNTIME_PORT, SERVER_CONTAINER};

/// What the builder needs to know about the cluster besides the spec: the routing kinds it serves,
/// at the version discovery found (`crate::discovery`).
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// Gateway API's HTTPRoute, if served.
    pub http_route: Option<ChildKind>,
    /// Istio's VirtualService, if served.
    pub virtual_service: Option<ChildKind>,
}

/// What a version's volume is made of: every input a PersistentVolumeClaim cannot change once it
/// exists (its class and access mode are immutable, its size cannot shrink).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    pub size: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    pub access_mode: String,
}

impl VolumeSpec {
    /// The volume `model` asks for under `settings`.
    pub fn of(model: &MLModel, settings: &ModelSettings) -> Self {
        let storage = model.spec.storage.clone().unwrap_or_default();
        Self {
            size: storage
                .size
                .unwrap_or_else(|| settings.default_storage_size.clone()),
            storage_class_name: storage.storage_class_name,
            access_mode: settings.volume_access_mode.clone(),
        }
    }
}

/// One version of a model: what makes it, and its content key.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub key: String,
    pub source: ModelSource,
    pub runtime: RuntimeSpec,
}

impl Version {
    /// The version a source, a runtime and a volume make: the first 10 hex digits of the SHA-256
    /// of their canonical JSON. The volume is part of it because a claim cannot change: a new
    /// size, class or access mode is a new volume, downloaded and rolled out like a new source
    /// while the old one serves. A pvc:// source has no volume of Berth's, so none is hashed.
    /// Replicas, resources and exposure are not part of it.
    pub fn of(source: &ModelSource, runtime: &RuntimeSpec, volume: &VolumeSpec) -> Self {
        let mut inputs = json!({"source": source, "runtime": runtime});
        if !source.uri.starts_with("pvc://") {
            inputs["volume"] = json!(volume);
        }
        let text = serde_json::to_string(&inputs).unwrap_or_default();
        Self {
            key: crate::names::short_hash(&text, 10),
            source: source.clone(),
            runtime: runtime.clone(),
        }
    }

    /// The version the spec asks for.
    pub fn target(model: &MLModel, settings: &ModelSettings) -> Self {
        Self::of(
            &model.spec.source,
            &model.spec.runtime,
            &VolumeSpec::of(model, settings),
        )
    }

    /// The version the spec's canary asks for, if any.
    pub fn canary(model: &MLModel, settings: &ModelSettings) -> Option<Self> {
        let canary = model.spec.canary.as_ref()?;
        Some(Self::of(
            canary.source.as_ref().unwrap_or(&model.spec.source),
            canary.runtime.as_ref().unwrap_or(&model.spec.runtime),
            &VolumeSpec::of(model, settings),
        ))
    }

    /// The PVC and subPath a pvc:// source names, if it is one.
    pub fn existing_volume(&self) -> Option<(String, String)> {
        let rest = self.source.uri.strip_prefix("pvc://")?;
        let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
        Some((claim.to_owned(), path.trim_matches('/').to_owned()))
    }

    /// Whether this version is downloaded by a Job (every source but pvc://).
    pub fn downloads(&self) -> bool {
        self.existing_volume().is_none()
    }
}

/// The names of a model's children (made by the naming authority).
pub use crate::names::kube::model_volume as volume_name;

/// The canary's part of the plan: which version, how many replicas, what share of requests.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryPlan {
    pub version: Version,
    /// Replicas of the canary's Deployment.
    pub replicas: i32,
    /// The share the spec asks for, in percent.
    pub weight: i32,
}

/// What the Deployments serve and which volumes exist, as decided by the rollout plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The version the stable Deployment's pods run, if any.
    pub serve: Option<Version>,
    /// The versions whose volume and download Job are kept or made.
    pub volumes: Vec<Version>,
    /// For versions already downloaded: the Job that did it, kept as it is (a Job cannot change,
    /// and a new one would download again). By version key.
    pub kept_jobs: BTreeMap<String, String>,
    /// Replicas of the stable Deployment when autoscaling owns the count: what runs now, within
    /// the autoscaler's bounds, so that neither a switch to autoscaling nor a rollout resets it.
    pub autoscaled_replicas: Option<i32>,
    /// The canary to deploy beside the stable version.
    pub canary: Option<CanaryPlan>,
}

/// How the model is reached, as built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The Service only.
    Cluster,
    /// A route of `kind` at `api_version` was built.
    Routed {
        kind: &'static str,
        api_version: String,
    },
    /// The route cannot be made: why, and what to do.
    NotPossible { reason: String, message: String },
}

/// Everything a model should have.
#[derive(Clone, Debug)]
pub struct Built {
    pub children: Vec<Desired>,
    pub url: String,
    pub exposure: Exposure,
    /// The host the model holds on the gateway, for its status.
    pub host: Option<String>,
    /// How the canary's share is made (`replicas`, `HTTPRoute`, `VirtualService`) and the share
    /// it gets as built, in percent.
    pub canary_split: Option<(String, i32)>,
}

/// Builds every desired child of `model` under `plan`, exposed under `host` (decided among every
/// model by `super::host::decide`), its pods checking callers as `auth` says (`None`: the auth
/// the spec asks for cannot be set up, and no pod serves).
pub fn build(
    model: &MLModel,
    settings: &ModelSettings,
    env: &Environment,
    plan: &Plan,
    host: &Host,
    auth: Option<&Auth>,
) -> Result<Built, Error> {
    let name = model
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::internal("the model has no name"))?;
    let namespace = model
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| Error::internal("the model has no namespace"))?;
    let owner = model
        .controller_owner_ref(&())
        .ok_or_else(|| Error::internal("the model has no uid yet"))?;
    let uid = model
        .metadata
        .uid
        .clone()
        .ok_or_else(|| Error::internal("the model has no uid yet"))?;
    let ctx = Ctx {
        model,
        name: &name,
        namespace: &namespace,
        uid: &uid,
        owner: &owner,
        settings,
        env,
        auth,
    };
    let mut children = Vec::new();
    for version in &plan.volumes {
        children.extend(download::children(
            &ctx,
            version,
            plan.kept_jobs.get(&version.key),
        )?);
    }
    children.extend(serving::children(&ctx, plan)?);
    let mut built = exposure::build(&ctx, plan, host)?;
    children.append(&mut built.children);
    built.children = children;
    Ok(built)
}

/// What every builder of one model shares.
pub struct Ctx<'a> {
    pub model: &'a MLModel,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub owner: &'a OwnerReference,
    pub settings: &'a ModelSettings,
    pub env: &'a Environment,
    /// How the pods check callers (`None`: they cannot, and none serves).
    pub auth: Option<&'a Auth>,
}

impl Ctx<'_> {
    /// The model's labels (managed-by Berth, the model's name) and `extra`.
    pub fn labels(&self, extra: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (MODEL.to_owned(), self.name.to_owned()),
        ]);
        labels.extend(extra);
        labels
    }

    /// Metadata of a namespaced child: the model's labels and a controller reference to it.
    pub fn meta(&self, object_name: &str, extra: BTreeMap<String, String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(object_name.to_owned()),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(self.labels(extra)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    /// The serving pods of every track (the model's Service selects them all).
    pub fn server_selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MODEL.to_owned(), self.name.to_owned()),
            (COMPONENT.to_owned(), SERVER.to_owned()),
        ])
    }

    /// The serving pods of one track.
    pub fn track_selector(&self, track: &str) -> BTreeMap<String, String> {
        let mut selector = self.server_selector();
        selector.insert(TRACK.to_owned(), track.to_owned());
        selector
    }

    /// The labels saying which component and version a pod or volume belongs to.
    pub fn version_labels(component: &str, version: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (COMPONENT.to_owned(), component.to_owned()),
            (VERSION.to_owned(), version.to_owned()),
        ])
    }
}
