use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

use berth_api::notebook::{
    CULLED_AT_ANNOTATION, HomeVolume, Notebook, NotebookPhase, NotebookSpec,
};

use super::activity::{self, Activity};
use super::build;
use super::status::{self, Observed};
use super::validate::{self, Validated, parse_duration};

fn notebook(stopped: bool) -> Notebook {
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
            stopped,
            idle_timeout: Some("20s".into()),
            volumes: Vec::new(),
            activity_probe: None,
        },
    );
    nb.metadata = ObjectMeta {
        name: Some("lab".into()),
        namespace: Some("team-a".into()),
        uid: Some("0000-1111".into()),
        generation: Some(3),
        ..Default::default()
    };
    nb
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[test]
fn durations_parse_as_the_crd_writes_them() {
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(
        parse_duration("168h"),
        Some(Duration::from_secs(168 * 3600))
    );
    for bad in ["", "5", "h", "1d", "169h", "-1s", "1.5h"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn a_notebook_gets_its_names_image_and_path() {
    let v = validate::validate(&notebook(false)).unwrap();
    assert_eq!(v.home, "lab-home");
    assert_eq!(v.path, "/notebook/team-a/lab/");
    assert_eq!(v.image, berth_api::mlmodel::berth_image("jupyter"));
    assert_eq!(v.idle_timeout, Duration::from_secs(20));
    assert!(!v.culled);
}

#[test]
fn stopped_means_no_replica_and_the_home_volume_is_never_owned() {
    for stopped in [false, true] {
        let v = validate::validate(&notebook(stopped)).unwrap();
        let sts = build::stateful_set(&v);
        let spec = sts.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(if stopped { 0 } else { 1 }));
        let pod = spec.template.spec.unwrap();
        // restricted pod security, HOME on the volume, NB_PREFIX for Jupyter.
        let sc = pod.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let env: Vec<_> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
            .collect();
        assert!(env.contains(&("NB_PREFIX", "/notebook/team-a/lab".into())));
        assert!(env.contains(&("HOME", build::HOME.into())));
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, build::HOME);
        assert_eq!(
            pod.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "lab-home"
        );
        assert!(sts.metadata.owner_references.is_some());
        let home = build::home(&v, None);
        assert!(home.metadata.owner_references.is_none());
        assert!(!super::super::kinds::notebook_home().prune);
    }
}

#[test]
fn the_live_storage_class_is_kept() {
    let mut nb = notebook(false);
    nb.spec.home.storage_class_name = Some("fast".into());
    let v = validate::validate(&nb).unwrap();
    let built = build::build(&v, Some("standard"), &Default::default()).unwrap();
    let pvc = &built.children[0].object;
    assert_eq!(pvc.data["spec"]["storageClassName"], "standard");
}

const STATUS: &str = r#"{"started": "2026-11-30T05:00:00.000000Z", "last_activity": "2026-11-30T05:00:10.500000Z", "connections": 0, "kernels": 1}"#;

#[test]
fn activity_is_the_latest_of_the_api_kernels_and_terminals() {
    let kernels = r#"[{"id": "k1", "name": "python3", "last_activity": "2026-11-30T05:00:05.000000Z", "execution_state": "idle", "connections": 1}]"#;
    let terminals = r#"[{"name": "1", "last_activity": "2026-11-30T05:01:00.000000Z"}]"#;
    let a = activity::parse(STATUS, kernels, terminals).unwrap();
    assert_eq!(
        a.last_activity,
        "2026-11-30T05:01:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!((a.kernels, a.terminals, a.busy_kernels), (1, 1, 0));
    let t = |s: &str| s.parse::<Timestamp>().unwrap();
    let timeout = Duration::from_secs(20);
    assert!(!activity::is_idle(&a, t("2026-11-30T05:01:19Z"), timeout));
    assert!(activity::is_idle(&a, t("2026-11-30T05:01:20Z"), timeout));
    assert!(activity::parse("{}", "[]", "[]").is_err());
}

#[test]
fn a_busy_kernel_is_never_idle() {
    let kernels =
        r#"[{"id": "k1", "last_activity": "2026-11-30T05:00:00Z", "execution_state": "busy"}]"#;
    let a = activity::parse(STATUS, kernels, "[]").unwrap();
    assert_eq!(a.busy_kernels, 1);
    assert!(!activity::is_idle(
        &a,
        at(i64::from(i32::MAX)),
        Duration::from_secs(10)
    ));
}

#[test]
fn polls_are_a_quarter_of_the_timeout_within_bounds() {
    assert_eq!(
        activity::poll_interval(Duration::from_secs(20)),
        Duration::from_secs(5)
    );
    assert_eq!(
        activity::poll_interval(Duration::from_secs(400)),
        Duration::from_secs(100)
    );
    assert_eq!(
        activity::poll_interval(Duration::from_secs(3600 * 4)),
        Duration::from_secs(300)
    );
}

fn pod(ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("lab-0".into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn phase_of(nb: &Notebook, pod: Option<&Pod>, home_taken: bool) -> (NotebookPhase, String) {
    let v = validate::validate(nb);
    let observed = Observed {
        notebook: v.as_ref(),
        pod,
        activity: None,
        culled_at: None,
        home_taken,
        blocked: None,
    };
    let s = status::status(None, &observed, Some(3), at(100));
    let ready = berth_api::conditions::get(&s.conditions, status::READY).unwrap();
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(s.observed_generation, Some(3));
    (s.phase.unwrap(), ready.reason.clone())
}

#[test]
fn phases_follow_the_switch_the_pod_and_the_cull() {
    let running = notebook(false);
    assert_eq!(phase_of(&running, None, false).0, NotebookPhase::Starting);
    assert_eq!(
        phase_of(&running, Some(&pod(false)), false).0,
        NotebookPhase::Starting
    );
    assert_eq!(
        phase_of(&running, Some(&pod(true)), false).0,
        NotebookPhase::Running
    );
    let stopped = notebook(true);
    assert_eq!(
        phase_of(&stopped, Some(&pod(true)), false).0,
        NotebookPhase::Stopping
    );
    assert_eq!(phase_of(&stopped, None, false).0, NotebookPhase::Stopped);
    let mut culled = notebook(true);
    culled
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(CULLED_AT_ANNOTATION.into(), "2026-11-30T05:00:00Z".into());
    assert_eq!(
        phase_of(&culled, None, false),
        (NotebookPhase::Culled, "Culled".into())
    );
    assert_eq!(
        phase_of(&running, None, true),
        (NotebookPhase::Failed, "HomeVolumeTaken".into())
    );
}

#[test]
fn an_unchanged_notebook_gives_an_unchanged_status() {
    let nb = notebook(false);
    let v = validate::validate(&nb);
    let read = Activity {
        last_activity: at(50),
        busy_kernels: 0,
        kernels: 0,
        terminals: 0,
    };
    let p = pod(true);
    let observed = Observed {
        notebook: v.as_ref(),
        pod: Some(&p),
        activity: Some(&read),
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let first = status::status(None, &observed, Some(3), at(100));
    let second = status::status(Some(&first), &observed, Some(3), at(200));
    assert_eq!(first, second, "nothing changed, so nothing is written");
}

#[test]
fn a_crashing_notebook_says_jupyterlab_exits_with_its_code_and_where_the_logs_are() {
    let mut crashing = pod(false);
    if let Some(status) = crashing.status.as_mut() {
        status.container_statuses = Some(vec![ContainerStatus {
            name: "notebook".into(),
            restart_count: 4,
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }
    let nb = notebook(false);
    let v = validate::validate(&nb);
    let observed = Observed {
        notebook: v.as_ref(),
        pod: Some(&crashing),
        activity: None,
        culled_at: None,
        home_taken: false,
        blocked: None,
    };
    let s = status::status(None, &observed, Some(1), at(100));
    let ready = berth_api::conditions::get(&s.conditions, status::READY).unwrap();
    assert_eq!(s.phase, Some(NotebookPhase::Failed));
    assert_eq!(ready.reason, "CrashLoop");
    assert!(
        ready
            .message
            .contains("JupyterLab keeps exiting (4 restarts, last exit code 1)")
            && ready.message.contains("kubectl logs -n")
            && ready.message.contains("lab-0 --previous")
            && !ready.message.contains("model"),
        "{}",
        ready.message
    );
}

#[test]
fn with_a_console_the_url_is_the_consoles_and_the_message_says_so() {
    let nb = notebook(false);
    let bare_v = validate::validate(&nb).unwrap();
    let mut v = bare_v.clone();
    v.console_url = Some(format!("https://console.example.com{}lab", v.path));
    let p = pod(true);
    let status_of = |v: &Validated| {
        status::status(
            None,
            &Observed {
                notebook: Ok(v),
                pod: Some(&p),
                activity: None,
                culled_at: None,
                home_taken: false,
                blocked: None,
            },
            Some(1),
            at(100),
        )
    };
    let bare = status_of(&bare_v);
    assert_eq!(bare.url.as_deref(), Some(bare_v.path.as_str()));
    let with = status_of(&v);
    assert_eq!(
        with.url.as_deref(),
        Some("https://console.example.com/notebook/team-a/lab/lab")
    );
    let ready = with.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(
        ready
            .message
            .contains("open https://console.example.com/notebook/team-a/lab/lab and log in"),
        "{}",
        ready.message
    );
}
