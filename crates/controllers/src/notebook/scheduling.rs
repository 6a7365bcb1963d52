//! Where a notebook's pod runs and what it holds from its template's bundle, and what the
//! scheduler says when it cannot place it. Pure.
//!
//! - `decorate`: the bundle's tolerations, node selector and affinity on the pod, and /dev/shm as
//!   an emptyDir of medium Memory of the bundle's size (its pages count in the container's memory).
//!   GPUs are already in the container's resources (the template step puts them there).
//! - `unschedulable`: the kube-scheduler's PodScheduled=False message, such as
//!   `0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: ...`, read for the
//!   resources it lacks (the scheduler's `Insufficient <resource>` wording, from the NodeResourcesFit
//!   plugin), so the notebook's status names them.

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod, PodSpec, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::validate::Validated;

/// Where /dev/shm is mounted, and the volume's name.
pub const SHM_PATH: &str = "/dev/shm";
const SHM_VOLUME: &str = "shm";

/// Puts the template bundle's scheduling and shared memory on the notebook's pod.
pub fn decorate(nb: &Validated, pod: &mut PodSpec) {
    let Some(resolved) = &nb.template else {
        return;
    };
    if !resolved.tolerations.is_empty() {
        pod.tolerations = Some(resolved.tolerations.clone());
    }
    if !resolved.node_selector.is_empty() {
        pod.node_selector = Some(resolved.node_selector.clone());
    }
    pod.affinity = resolved.affinity.clone();
    if let Some(size) = &resolved.shared_memory {
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: SHM_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity(size.clone())),
            }),
            ..Default::default()
        });
        for container in &mut pod.containers {
            container
                .volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: SHM_VOLUME.into(),
                    mount_path: SHM_PATH.into(),
                    ..Default::default()
                });
        }
    }
}

/// The resources the scheduler found too few of, in its message's order, without repeats:
/// `Insufficient cpu`, `Insufficient nvidia.com/gpu`, ...
pub fn insufficient(message: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for part in message.split("Insufficient ").skip(1) {
        let resource: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_'))
            .collect();
        let resource = resource.trim_end_matches('.').to_owned();
        if !resource.is_empty() && !found.contains(&resource) {
            found.push(resource);
        }
    }
    found
}

/// The Unschedulable message of a notebook whose pod no node can take, naming the resources no
/// node has enough of and how much the notebook asks; None if the pod is not unschedulable.
pub fn unschedulable(nb: &Validated, pod: &Pod) -> Option<String> {
    let condition = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })?;
    let raw = condition.message.clone().unwrap_or_default();
    let lacking = insufficient(&raw);
    let which = if lacking.is_empty() {
        "no node can take it".to_owned()
    } else {
        let asked: Vec<String> = lacking
            .iter()
            .map(|r| {
                let value = nb
                    .resources
                    .requests
                    .get(r)
                    .or_else(|| nb.resources.limits.get(r))
                    .map(|q| q.0.clone())
                    .unwrap_or_else(|| "?".into());
                format!("{r} (asks {value})")
            })
            .collect();
        format!("no node has enough {}", asked.join(", "))
    };
    let pick = match nb.template.as_ref().and_then(|t| t.bundle.as_ref()) {
        Some(bundle) => format!("pick a smaller bundle than {bundle}"),
        None => "ask for less".to_owned(),
    };
    Some(format!(
        "{which} for the notebook's pod {}: {raw}. {pick}, or ask a platform admin for capacity",
        pod.metadata.name.clone().unwrap_or_default()
    ))
}
