//! Each version's volume and download Job. Both are created and never changed: what they are made
//! of names them (the volume through the version key, the Job through a hash of its pod
//! template), so a changed input makes a new object instead of a write the API server refuses.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretEnvSource, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use berth_api::mlmodel::ModelSettings;
use berth_reconcile::{Desired, Error};

use super::runtime::{container_security, pod_security, quantities};
use super::{Ctx, DOWNLOAD, MODEL_DIR, VERSION, Version, VolumeSpec, volume_name};
use crate::kinds;
use crate::names::kube::{MODEL_JOB_INPUTS_HEX, model_job};

/// The download container's name (the Job's pod failure policy names it).
pub const FETCH_CONTAINER: &str = "fetch";
/// The Secret an s3:// source takes its credentials from unless it names another: the one the
/// Project's storage gives every project namespace.
pub const DEFAULT_STORAGE_SECRET: &str = "berth-storage";
/// Exit codes of berth-model-fetch that retrying cannot fix: bad arguments, not found, access
/// denied, checksum mismatch, its own deadline, an archive that cannot be unpacked, an archive over
/// the unpacking limits, a redirect from https to http. The Job fails at once on these instead of
/// using its retries.
pub const FINAL_EXIT_CODES: [i32; 8] = [2, 3, 4, 5, 6, 8, 10, 11];

/// The volume and download Job of `version` (nothing for a pvc:// source). `kept` names the Job
/// that already downloaded it, which stays as it is.
pub fn children(
    ctx: &Ctx,
    version: &Version,
    kept: Option<&String>,
) -> Result<Vec<Desired>, Error> {
    if !version.downloads() {
        return Ok(Vec::new());
    }
    let volume = VolumeSpec::of(ctx.model, ctx.settings);
    let claim = claim(ctx, version, &volume);
    let mut job = job_for(ctx.name, ctx.settings, version, unpack_limit(&volume));
    job.metadata = ObjectMeta {
        namespace: Some(ctx.namespace.to_owned()),
        owner_references: Some(vec![ctx.owner.clone()]),
        labels: Some(ctx.labels(Ctx::version_labels(DOWNLOAD, &version.key))),
        ..job.metadata
    };
    if let Some(kept) = kept {
        job.metadata.name = Some(kept.clone());
    }
    Ok(vec![
        Desired::new(&kinds::persistent_volume_claim(), &claim)?.create_only(),
        Desired::new(&kinds::job(), &job)?.create_only(),
    ])
}

fn claim(ctx: &Ctx, version: &Version, volume: &VolumeSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ctx.meta(
            &volume_name(ctx.name, &version.key),
            BTreeMap::from([(VERSION.to_owned(), version.key.clone())]),
        ),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![volume.access_mode.clone()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(volume.size.clone()),
                )])),
                ..Default::default()
            }),
            storage_class_name: volume.storage_class_name.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The most bytes an archive may unpack to in `volume`: its size (`None` when the size is not a
/// quantity, which admission refuses; berth-model-fetch then keeps its own default). A tar or zip
/// bomb is refused when it reaches the size (berth-model-fetch's exit code 10, `ArchiveTooLarge`)
/// instead of filling the volume and failing as a disk error.
pub fn unpack_limit(volume: &VolumeSpec) -> Option<u64> {
    let nanos = berth_api::quantity::parse(&volume.size).ok()?.0;
    u64::try_from(nanos / 1_000_000_000).ok().filter(|b| *b > 0)
}

/// The download Job of `version` of model `model`, named by its inputs
/// (`<model>-fetch-<version>-<hash of the spec>`): the spec is what the API server will not let
/// change. `max_unpacked_bytes` bounds what an archive may unpack to (see [`unpack_limit`]).
/// Its metadata holds the name only; the caller adds labels and owner.
pub fn job_for(
    model: &str,
    settings: &ModelSettings,
    version: &Version,
    max_unpacked_bytes: Option<u64>,
) -> Job {
    let timeout = version
        .source
        .timeout
        .as_deref()
        .and_then(parse_duration_seconds)
        .unwrap_or(settings.download_timeout_seconds)
        .max(1);
    let mut args = vec![
        version.source.uri.clone(),
        MODEL_DIR.to_owned(),
        format!("--timeout={timeout}s"),
        "--progress-interval=30s".to_owned(),
    ];
    if let Some(sha) = &version.source.sha256 {
        args.push(format!("--sha256={sha}"));
    }
    if let Some(bytes) = max_unpacked_bytes {
        args.push(format!("--max-unpacked-bytes={bytes}"));
    }
    let env_from = version.source.uri.starts_with("s3://").then(|| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: version
                    .source
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STORAGE_SECRET.to_owned()),
                optional: Some(false),
            }),
            ..Default::default()
        }]
    });
    let mut pod_labels = BTreeMap::from([
        (
            berth_api::labels::MANAGED_BY.to_owned(),
            berth_api::labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (berth_api::labels::MODEL.to_owned(), model.to_owned()),
    ]);
    pod_labels.extend(Ctx::version_labels(DOWNLOAD, &version.key));
    let spec = JobSpec {
        // The whole download, retries included, is bounded; a finished Job is kept (no TTL) so
        // that its outcome stays readable until the version is replaced.
        active_deadline_seconds: Some(timeout),
        backoff_limit: Some(settings.download_backoff_limit),
        pod_failure_policy: Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(FETCH_CONTAINER.into()),
                    operator: "In".into(),
                    values: FINAL_EXIT_CODES.to_vec(),
                }),
                on_pod_conditions: None,
            }],
        }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                automount_service_account_token: Some(false),
                security_context: Some(pod_security()),
                containers: vec![Container {
                    name: FETCH_CONTAINER.into(),
                    image: Some(settings.fetch_image.clone()),
                    command: Some(vec!["berth-model-fetch".into()]),
                    args: Some(args),
                    env: Some(vec![EnvVar {
                        name: "AWS_EC2_METADATA_DISABLED".into(),
                        value: Some("true".into()),
                        ..Default::default()
                    }]),
                    env_from,
                    volume_mounts: Some(vec![VolumeMount {
                        name: "model".into(),
                        mount_path: MODEL_DIR.into(),
                        ..Default::default()
                    }]),
                    resources: Some(ResourceRequirements {
                        requests: Some(quantities(&[("cpu", "100m"), ("memory", "64Mi")])),
                        limits: Some(quantities(&[("cpu", "1"), ("memory", "256Mi")])),
                        ..Default::default()
                    }),
                    security_context: Some(container_security()),
                    // berth-model-fetch prints one line saying what went wrong.
                    termination_message_policy: Some("FallbackToLogsOnError".into()),
                    ..Default::default()
                }],
                volumes: Some(vec![Volume {
                    name: "model".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: volume_name(model, &version.key),
                        // false is the default, and the API server leaves it out.
                        read_only: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        },
        ..Default::default()
    };
    let inputs = serde_json::to_string(&spec).unwrap_or_default();
    let name = model_job(
        model,
        &version.key,
        &crate::names::short_hash(&inputs, MODEL_JOB_INPUTS_HEX),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

/// The name of the download Job `version` of `model` gets under `settings`, in a volume that
/// lets archives unpack to `max_unpacked_bytes`.
pub fn job_name(
    model: &str,
    settings: &ModelSettings,
    version: &Version,
    max_unpacked_bytes: Option<u64>,
) -> String {
    job_for(model, settings, version, max_unpacked_bytes)
        .metadata
        .name
        .unwrap_or_default()
}

/// Seconds in a duration such as `90s`, `30m` or `1h30m` (the form the CRD admits).
pub fn parse_duration_seconds(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(total)
}
