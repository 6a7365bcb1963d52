//! Data volumes, the project's account and pull secret, and the quota arithmetic.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, Pod, PodSpec, PodStatus,
    ResourceQuota, ResourceQuotaStatus, Volume as PodVolume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, NOTEBOOK};
use berth_api::notebook::{
    AccessMode, DataVolume, HomeVolume, NewVolume, Notebook, NotebookResources, NotebookSpec,
    VOLUME_LABEL,
};

use super::account::Identity;
use super::build;
use super::quota::{self, Usage};
use super::validate::{self, Validated};
use super::volumes::{self, Volume};
use super::wiring::Wiring;
use crate::names;

fn notebook(volumes: Vec<DataVolume>) -> Notebook {
    let mut nb = Notebook::new(
        "lab",
        NotebookSpec {
            template: None,
            image_id: None,
            bundle: None,
            image: None,
            resources: None,
            home: HomeVolume::default(),
            env: Vec::new(),
            stopped: false,
            idle_timeout: None,
            volumes,
            activity_probe: None,
        },
    );
    nb.metadata = ObjectMeta {
        name: Some("lab".into()),
        namespace: Some("team-a".into()),
        uid: Some("0000-1111".into()),
        ..Default::default()
    };
    nb
}

fn existing(name: &str, path: &str, claim: &str, read_only: bool) -> DataVolume {
    DataVolume {
        name: name.into(),
        mount_path: path.into(),
        existing_claim: Some(claim.into()),
        new_claim: None,
        read_only,
    }
}

fn new(name: &str, path: &str, size: &str, modes: Vec<AccessMode>) -> DataVolume {
    DataVolume {
        name: name.into(),
        mount_path: path.into(),
        existing_claim: None,
        new_claim: Some(NewVolume {
            size: size.into(),
            storage_class_name: None,
            access_modes: modes,
        }),
        read_only: false,
    }
}

fn validated(volumes: Vec<DataVolume>) -> Validated {
    validate::validate(&notebook(volumes)).unwrap()
}

fn stateful_set(children: &[berth_reconcile::Desired]) -> StatefulSet {
    let sts = children
        .iter()
        .find(|d| {
            d.object
                .types
                .as_ref()
                .is_some_and(|t| t.kind == "StatefulSet")
        })
        .unwrap();
    serde_json::from_value(serde_json::to_value(&sts.object).unwrap()).unwrap()
}

fn claims(children: &[berth_reconcile::Desired]) -> Vec<PersistentVolumeClaim> {
    children
        .iter()
        .filter(|d| {
            d.object
                .types
                .as_ref()
                .is_some_and(|t| t.kind == "PersistentVolumeClaim")
        })
        .map(|d| serde_json::from_value(serde_json::to_value(&d.object).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_new_volume_is_named_by_the_names_module_and_defaults_to_read_write_once() {
    let v = validated(vec![new("data", "/data", "50Gi", vec![])]);
    assert_eq!(v.volumes[0].claim, "lab-data");
    assert_eq!(
        v.volumes[0].new.as_ref().unwrap().access_modes,
        vec!["ReadWriteOnce"]
    );
    // The length rule: a 40-character notebook and a 22-character volume make 63.
    let notebook = "n".repeat(40);
    assert_eq!(
        names::kube::notebook_volume(&notebook, &"v".repeat(22))
            .unwrap()
            .len(),
        63
    );
    assert!(names::kube::notebook_volume(&notebook, &"v".repeat(23)).is_err());
    // Never a home volume's name.
    assert!(names::kube::notebook_volume("lab", "home").is_err());
    assert!(names::kube::notebook_volume("a", "x-home").is_err());
}

#[test]
fn mount_paths_outside_the_system_and_the_home_root_only() {
    for good in [
        "/data",
        "/home/jovyan/datasets",
        "/mnt/shared",
        "/opt/models",
        "/srv/a.b_c-d",
    ] {
        assert!(volumes::mount_path_allowed(good), "{good} refused");
    }
    for bad in [
        "/",
        "data",
        "/home/jovyan",
        "/home",
        "/etc",
        "/etc/ssl",
        "/usr/local",
        "/dev/shm",
        "/proc",
        "/sys/fs",
        "/var/run/secrets",
        "/data/",
        "/data//x",
        "/data/../etc",
        "/./data",
        "/da ta",
    ] {
        assert!(!volumes::mount_path_allowed(bad), "{bad} allowed");
    }
    let err = validate::validate(&notebook(vec![existing("x", "/etc", "c", false)])).unwrap_err();
    assert_eq!(err.reason, "InvalidVolume");
    let twice = validate::validate(&notebook(vec![
        existing("x", "/data", "c", false),
        existing("y", "/data", "d", false),
    ]))
    .unwrap_err();
    assert!(twice.message.contains("of its own"), "{}", twice.message);
    // A claim name never reaches another namespace.
    let slash =
        validate::validate(&notebook(vec![existing("x", "/data", "other/c", false)])).unwrap_err();
    assert_eq!(slash.reason, "InvalidVolume");
}

#[test]
fn the_pod_mounts_the_volumes_runs_as_the_project_account_and_names_the_pull_secret() {
    let v = validated(vec![
        new("data", "/data", "50Gi", vec![]),
        existing("shared", "/home/jovyan/shared", "team-datasets", true),
    ]);
    let wiring = Wiring {
        identity: Identity {
            service_account: Some("project-automation".into()),
            pull_secrets: vec!["berth-registry".into()],
        },
        ..Default::default()
    };
    let built = build::build(&v, None, &wiring).unwrap();
    let sts = stateful_set(&built.children);
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("project-automation")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(
        pod.image_pull_secrets.unwrap()[0].name,
        "berth-registry".to_owned()
    );
    let volumes = pod.volumes.unwrap();
    let claim_of = |name: &str| {
        volumes
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.persistent_volume_claim.clone())
            .unwrap()
    };
    assert_eq!(claim_of("home").claim_name, "lab-home");
    assert_eq!(claim_of("data-data").claim_name, "lab-data");
    assert_eq!(claim_of("data-data").read_only, None);
    assert_eq!(claim_of("data-shared").claim_name, "team-datasets");
    assert_eq!(claim_of("data-shared").read_only, Some(true));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    let mount_of = |name: &str| mounts.iter().find(|m| m.name == name).unwrap().clone();
    assert_eq!(mount_of("data-data").mount_path, "/data");
    assert_eq!(mount_of("data-shared").mount_path, "/home/jovyan/shared");
    assert_eq!(mount_of("data-shared").read_only, Some(true));
    // The new volume's claim: labelled as this notebook's volume, no owner, never pruned.
    let made = claims(&built.children);
    let data = made
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("lab-data"))
        .unwrap();
    assert!(data.metadata.owner_references.is_none());
    assert!(volumes::is_ours(data, "lab", "data"));
    assert!(!volumes::is_ours(data, "lab", "other"));
    assert_eq!(
        data.spec.as_ref().unwrap().access_modes,
        Some(vec!["ReadWriteOnce".to_owned()])
    );
    // An existing claim is never made.
    assert!(
        !made
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("team-datasets"))
    );
    // Outside a project (no account, no pull secret): the namespace's default, nothing named.
    let plain = stateful_set(&build::build(&v, None, &Wiring::default()).unwrap().children);
    let pod = plain.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name, None);
    assert_eq!(pod.image_pull_secrets, None);
    assert_eq!(pod.automount_service_account_token, Some(false));
}

#[test]
fn a_held_notebook_has_no_replica_and_makes_no_new_claim() {
    let v = validated(vec![new("data", "/data", "50Gi", vec![])]);
    let wiring = Wiring {
        absent: ["lab-home".to_owned(), "lab-data".to_owned()].into(),
        held: true,
        ..Default::default()
    };
    let built = build::build(&v, None, &wiring).unwrap();
    assert_eq!(
        stateful_set(&built.children).spec.unwrap().replicas,
        Some(0)
    );
    assert!(claims(&built.children).is_empty());
    // Claims that exist are still applied (their size may grow) while held.
    let wiring = Wiring {
        absent: ["lab-data".to_owned()].into(),
        held: true,
        ..Default::default()
    };
    let made = claims(&build::build(&v, None, &wiring).unwrap().children);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].metadata.name.as_deref(), Some("lab-home"));
}

fn pvc(name: &str, phase: &str, modes: &[&str], labels: &[(&str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(modes.iter().map(|m| (*m).to_owned()).collect()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn pod_using(name: &str, claim: &str, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(vec![PodVolume {
                name: "v".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn volume(claim: &str, read_only: bool) -> Volume {
    Volume {
        name: "shared".into(),
        mount_path: "/data".into(),
        read_only,
        claim: claim.into(),
        new: None,
    }
}

fn reason(
    v: &Volume,
    claim: Option<&PersistentVolumeClaim>,
    others: &[&Pod],
) -> Option<&'static str> {
    volumes::check_existing(v, claim, others).map(|p| p.reason)
}

#[test]
fn existing_claims_are_checked_against_their_access_modes_and_users() {
    let rwo = pvc("c", "Bound", &["ReadWriteOnce"], &[]);
    let rox = pvc("c", "Bound", &["ReadOnlyMany"], &[]);
    let rwx = pvc("c", "Bound", &["ReadWriteMany"], &[]);
    let rwop = pvc("c", "Bound", &["ReadWriteOncePod"], &[]);
    let running = pod_using("trainer-0", "c", "Running");
    let done = pod_using("job-x", "c", "Succeeded");
    let elsewhere = pod_using("other", "d", "Running");

    assert_eq!(
        reason(&volume("c", false), None, &[]),
        Some("VolumeNotFound")
    );
    assert_eq!(reason(&volume("c", false), Some(&rwo), &[]), None);
    assert_eq!(
        reason(&volume("c", false), Some(&rwo), &[&elsewhere, &done]),
        None
    );
    assert_eq!(
        reason(&volume("c", false), Some(&rwo), &[&running]),
        Some("VolumeInUse")
    );
    assert_eq!(
        reason(&volume("c", true), Some(&rwop), &[&running]),
        Some("VolumeInUse")
    );
    assert_eq!(reason(&volume("c", false), Some(&rwx), &[&running]), None);
    assert_eq!(
        reason(&volume("c", false), Some(&rox), &[]),
        Some("VolumeAccessMode")
    );
    assert_eq!(reason(&volume("c", true), Some(&rox), &[&running]), None);
    let pending = pvc("c", "Pending", &["ReadWriteOnce"], &[]);
    assert_eq!(reason(&volume("c", false), Some(&pending), &[]), None);
    let lost = pvc("c", "Lost", &["ReadWriteOnce"], &[]);
    assert_eq!(
        reason(&volume("c", false), Some(&lost), &[]),
        Some("VolumeLost")
    );
    let message = volumes::check_existing(&volume("c", false), Some(&rwo), &[&running])
        .unwrap()
        .message;
    assert!(message.contains("trainer-0"), "{message}");
}

#[test]
fn another_notebooks_home_and_a_models_volume_are_not_mounted_its_data_volumes_are() {
    let berth = (MANAGED_BY, MANAGED_BY_VALUE);
    let home = pvc(
        "other-home",
        "Bound",
        &["ReadWriteOnce"],
        &[berth, (NOTEBOOK, "other")],
    );
    let p = volumes::check_existing(&volume("other-home", false), Some(&home), &[]).unwrap();
    assert_eq!(p.reason, "VolumeNotAllowed");
    assert!(p.message.contains("notebook other"), "{}", p.message);
    let model = pvc("fraud-3", "Bound", &["ReadWriteOnce"], &[berth]);
    assert_eq!(
        reason(&volume("fraud-3", true), Some(&model), &[]),
        Some("VolumeNotAllowed")
    );
    let data = pvc(
        "other-data",
        "Bound",
        &["ReadWriteMany"],
        &[berth, (NOTEBOOK, "other"), (VOLUME_LABEL, "data")],
    );
    assert_eq!(reason(&volume("other-data", false), Some(&data), &[]), None);
}

fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

fn gi(n: i128) -> i128 {
    n << 30
}

const NANO: i128 = 1_000_000_000;

fn resource_quota(hard: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some("berth-quota".into()),
            ..Default::default()
        },
        status: Some(ResourceQuotaStatus {
            hard: Some(list(hard)),
            used: Some(list(used)),
        }),
        ..Default::default()
    }
}

#[test]
fn a_pod_counts_its_requests_and_limits_with_the_limit_range_defaults() {
    let lr = LimitRange {
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(list(&[("cpu", "1"), ("memory", "2Gi")])),
                default_request: Some(list(&[("cpu", "250m"), ("memory", "512Mi")])),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    // Nothing set: the LimitRange's defaults.
    let u = quota::pod_usage(&list(&[]), &list(&[]), Some(&lr));
    assert_eq!(u["requests.cpu"], 250_000_000);
    assert_eq!(u["requests.memory"], (512 << 20) * NANO);
    assert_eq!(u["limits.cpu"], NANO);
    assert_eq!(u["limits.memory"], gi(2) * NANO);
    assert_eq!(u["pods"], NANO);
    // A limit without a request is also the request (API defaulting comes first).
    let u = quota::pod_usage(&list(&[]), &list(&[("memory", "8Gi")]), Some(&lr));
    assert_eq!(u["requests.memory"], gi(8) * NANO);
    assert_eq!(u["limits.memory"], gi(8) * NANO);
    assert_eq!(u["requests.cpu"], 250_000_000);
    // GPUs count as requests.nvidia.com/gpu only.
    let u = quota::pod_usage(&list(&[]), &list(&[("nvidia.com/gpu", "2")]), None);
    assert_eq!(u["requests.nvidia.com/gpu"], 2 * NANO);
    assert!(!u.contains_key("limits.nvidia.com/gpu"));
}

#[test]
fn a_notebook_that_does_not_fit_says_so_with_the_numbers() {
    let q = resource_quota(
        &[("requests.memory", "16Gi"), ("requests.cpu", "8")],
        &[("requests.memory", "14Gi"), ("requests.cpu", "1")],
    );
    let need = quota::pod_usage(&list(&[("memory", "8Gi"), ("cpu", "1")]), &list(&[]), None);
    let s = quota::shortfall(&need, &Usage::new(), &[&q]).unwrap();
    assert_eq!(
        s.describe(),
        "needs requests.memory 8Gi but the project has 2Gi of 16Gi left (quota berth-quota)"
    );
    // 2Gi fits.
    let small = quota::pod_usage(&list(&[("memory", "2Gi"), ("cpu", "1")]), &list(&[]), None);
    assert_eq!(quota::shortfall(&small, &Usage::new(), &[&q]), None);
    // The quota's bare `memory` is requests.memory.
    let bare = resource_quota(&[("memory", "16Gi")], &[("memory", "14Gi")]);
    assert_eq!(
        quota::shortfall(&need, &Usage::new(), &[&bare])
            .unwrap()
            .resource,
        "memory"
    );
    // CPU in millicores, GPUs in units.
    let cpu = resource_quota(&[("limits.cpu", "4")], &[("limits.cpu", "3500m")]);
    let asks = quota::pod_usage(&list(&[]), &list(&[("cpu", "2")]), None);
    assert_eq!(
        quota::shortfall(&asks, &Usage::new(), &[&cpu])
            .unwrap()
            .describe(),
        "needs limits.cpu 2 but the project has 500m of 4 left (quota berth-quota)"
    );
    let gpu = resource_quota(
        &[("requests.nvidia.com/gpu", "1")],
        &[("requests.nvidia.com/gpu", "1")],
    );
    let asks = quota::pod_usage(&list(&[]), &list(&[("nvidia.com/gpu", "1")]), None);
    assert_eq!(
        quota::shortfall(&asks, &Usage::new(), &[&gpu])
            .unwrap()
            .describe(),
        "needs requests.nvidia.com/gpu 1 but the project has 0 of 1 left (quota berth-quota)"
    );
}

#[test]
fn a_resize_gets_back_what_its_own_pod_holds_and_a_running_notebook_is_never_refused() {
    let q = resource_quota(
        &[("requests.memory", "16Gi")],
        &[("requests.memory", "12Gi")],
    );
    let own = quota::pod_usage(&list(&[("memory", "4Gi")]), &list(&[]), None);
    // From 4Gi to 8Gi with 4Gi left: 8Gi of 8Gi fits.
    let bigger = quota::pod_usage(&list(&[("memory", "8Gi")]), &list(&[]), None);
    assert_eq!(quota::shortfall(&bigger, &own, &[&q]), None);
    let much_bigger = quota::pod_usage(&list(&[("memory", "9Gi")]), &list(&[]), None);
    assert_eq!(
        quota::shortfall(&much_bigger, &own, &[&q])
            .unwrap()
            .describe(),
        "needs requests.memory 9Gi but the project has 8Gi of 16Gi left (quota berth-quota)"
    );
    // The quota was lowered below what is used: the running notebook asks for nothing more.
    let lowered = resource_quota(
        &[("requests.memory", "2Gi")],
        &[("requests.memory", "12Gi")],
    );
    assert_eq!(quota::shortfall(&own, &own, &[&lowered]), None);
    // A quota not yet counted is not judged.
    let uncounted = ResourceQuota::default();
    assert_eq!(
        quota::shortfall(&much_bigger, &Usage::new(), &[&uncounted]),
        None
    );
}

#[test]
fn new_claims_count_storage_and_claims() {
    let q = resource_quota(
        &[
            ("requests.storage", "100Gi"),
            ("persistentvolumeclaims", "5"),
        ],
        &[
            ("requests.storage", "60Gi"),
            ("persistentvolumeclaims", "2"),
        ],
    );
    let mut need = quota::pod_usage(&list(&[]), &list(&[]), None);
    quota::add(
        &mut need,
        &quota::claims_usage([("10Gi", None), ("20Gi", Some("fast"))]),
    );
    assert_eq!(need["requests.storage"], gi(30) * NANO);
    assert_eq!(need["persistentvolumeclaims"], 2 * NANO);
    assert_eq!(
        need["fast.storageclass.storage.k8s.io/requests.storage"],
        gi(20) * NANO
    );
    assert_eq!(quota::shortfall(&need, &Usage::new(), &[&q]), None);
    quota::add(&mut need, &quota::claims_usage([("20Gi", None)]));
    assert_eq!(
        quota::shortfall(&need, &Usage::new(), &[&q])
            .unwrap()
            .describe(),
        "needs requests.storage 50Gi but the project has 40Gi of 100Gi left (quota berth-quota)"
    );
}

#[test]
fn quantities_read_as_people_write_them() {
    assert_eq!(quota::human(gi(16) * NANO, true), "16Gi");
    assert_eq!(quota::human((512 << 20) * NANO, true), "512Mi");
    assert_eq!(quota::human(1_500_000_000, false), "1500m");
    assert_eq!(quota::human(2 * NANO, false), "2");
    assert_eq!(quota::human(0, true), "0");
    assert_eq!(quota::human(1000 * NANO, true), "1000");
    assert!(quota::is_quota_refusal(
        r#"pods "lab-0" is forbidden: exceeded quota: berth-quota, requested: requests.memory=8Gi, used: requests.memory=14Gi, limited: requests.memory=16Gi"#
    ));
}

#[test]
fn resources_from_the_spec_reach_the_container() {
    let mut nb = notebook(vec![]);
    nb.spec.resources = Some(NotebookResources {
        requests: list(&[("memory", "1Gi")]),
        limits: list(&[("nvidia.com/gpu", "1")]),
    });
    let v = validate::validate(&nb).unwrap();
    let sts = stateful_set(&build::build(&v, None, &Wiring::default()).unwrap().children);
    let r = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(r.limits.unwrap()["nvidia.com/gpu"].0, "1");
}
