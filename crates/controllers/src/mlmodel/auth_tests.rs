//! Unit tests of authentication: `spec.auth` resolved against the Project and settings, and the
//! pods it builds (the onnx server's flags and probes, the proxy in front of other runtimes, the
//! API token of kubernetes mode). Pure; the real answers are tested on the real node
//! (crates/cluster-tests/tests/realnode/auth.rs).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::jiff::Timestamp;

use berth_api::mlmodel::{
    AuthMode, AuthSpec, MLModel, MLModelSpec, ModelSettings, ModelSource, RuntimeName, RuntimeSpec,
};
use berth_api::project::IdpSpec;
use berth_api::providers::{
    AdminSecretRef, ExternalStatus, IdentityProviderKind, IdentitySettings,
};
use berth_api::{PlatformSettingsSpec, Project, ProjectSpec, ProjectStatus};
use berth_reconcile::Error;

use super::auth::{AUTH_LABEL, AUTH_UNAVAILABLE, Auth, Unavailable, resolve};
use super::build::proxy::{PROXY_CONTAINER, TOKEN_DIR, TOKEN_VOLUME};
use super::build::{Environment, Plan, SERVER_CONTAINER, Version, build};
use super::host::Host;
use super::plan::{Observed, decide};
use crate::names::kube::{MODEL_AUTH_ACCOUNT, model_audience};

const ISSUER: &str = "https://id.example.com/realms/berth";
const CLIENT: &str = "berth-team";

fn model(name: &str, runtime: RuntimeSpec, auth: Option<AuthSpec>) -> MLModel {
    let mut m = MLModel::new(
        name,
        MLModelSpec {
            source: ModelSource {
                uri: "s3://models/fraud.onnx".into(),
                ..Default::default()
            },
            runtime,
            replicas: Some(1),
            autoscaling: None,
            resources: None,
            storage: None,
            expose: None,
            canary: None,
            auth,
        },
    );
    m.metadata.namespace = Some("team".into());
    m.metadata.uid = Some("0b7e7a52-0000-4000-8000-000000000002".into());
    m.metadata.generation = Some(1);
    m
}

fn mode(mode: AuthMode) -> Option<AuthSpec> {
    Some(AuthSpec {
        mode: Some(mode),
        ..Default::default()
    })
}

/// Settings with (or without) an identity provider.
fn settings(identity: bool) -> PlatformSettingsSpec {
    PlatformSettingsSpec {
        identity: identity.then(|| IdentitySettings {
            provider: IdentityProviderKind::Keycloak,
            url: "https://id.example.com/".into(),
            realm: "berth".into(),
            admin_realm: "master".into(),
            admin_secret_ref: AdminSecretRef {
                name: "keycloak-admin".into(),
            },
            egress_to: Default::default(),
        }),
        ..Default::default()
    }
}

/// Project `team`, with its OIDC client made when `client`.
fn project(client: bool) -> Project {
    let mut p = Project::new("team", ProjectSpec::default());
    p.status = Some(ProjectStatus {
        external: Some(ExternalStatus {
            oidc_client_id: client.then(|| CLIENT.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    });
    p
}

/// The stable Deployment's pod when `m` is served with `auth`.
fn pod(m: &MLModel, auth: &Auth) -> Result<PodSpec, Error> {
    let settings = ModelSettings::default();
    let v = Version::target(m, &settings);
    let plan = Plan {
        serve: Some(v.clone()),
        volumes: vec![v],
        kept_jobs: BTreeMap::new(),
        autoscaled_replicas: None,
        canary: None,
    };
    let built = build(
        m,
        &settings,
        &Environment::default(),
        &plan,
        &Host::None,
        Some(auth),
    )?;
    let deployment: Deployment = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == "Deployment")
        .map(|d| serde_json::to_value(&d.object))
        .transpose()
        .map_err(|e| Error::internal(e.to_string()))?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::internal(e.to_string()))?
        .ok_or_else(|| Error::internal("no Deployment"))?;
    let template = deployment.spec.map(|s| s.template).unwrap_or_default();
    let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(
        labels.get(AUTH_LABEL).map(String::as_str),
        Some(auth.mode().as_str())
    );
    template.spec.ok_or_else(|| Error::internal("no pod spec"))
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in {:?}", pod.containers))
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

fn port(c: &Container, name: &str) -> Option<i32> {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

fn probe_target(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> (String, String) {
    let http = probe.and_then(|p| p.http_get.clone());
    match http {
        Some(h) => (
            h.path.unwrap_or_default(),
            match h.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            },
        ),
        None => (
            "tcp".into(),
            match probe.and_then(|p| p.tcp_socket.clone()).map(|t| t.port) {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s,
                other => format!("{other:?}"),
            },
        ),
    }
}

fn custom(port: i32) -> RuntimeSpec {
    RuntimeSpec {
        name: RuntimeName::Custom,
        image: Some("registry.example.com/scorer:1".into()),
        port: Some(port),
        readiness_path: Some("/healthz".into()),
        ..Default::default()
    }
}

#[test]
fn the_default_is_oidc_with_a_client_and_kubernetes_without_never_none() {
    let m = model("fraud", RuntimeSpec::default(), None);
    // The platform gives the project a client, and it is made: oidc, the client's audience.
    assert_eq!(
        resolve(&m, Some(&project(true)), &settings(true)),
        Ok(Auth::Oidc {
            issuer: ISSUER.into(),
            audiences: vec![CLIENT.into()],
            clients: vec![],
            roles: vec![],
            groups: vec![],
            clock_skew_seconds: 30,
        })
    );
    // No identity provider, or the project opts out: kubernetes, the model's own audience.
    let kubernetes = Ok(Auth::Kubernetes {
        audiences: vec!["mlmodels.berth.dev/team/fraud".into()],
        namespace: "team".into(),
        service_accounts: vec![],
    });
    assert_eq!(
        resolve(&m, Some(&project(false)), &settings(false)),
        kubernetes
    );
    let mut opted_out = project(false);
    opted_out.spec.idp = Some(IdpSpec {
        enabled: Some(false),
        ..Default::default()
    });
    assert_eq!(resolve(&m, Some(&opted_out), &settings(true)), kubernetes);
    assert_eq!(resolve(&m, None, &settings(true)), kubernetes);
    // An identity provider whose client is not made yet: the model waits, it is not downgraded.
    let waiting = resolve(&m, Some(&project(false)), &settings(true));
    assert!(
        matches!(&waiting, Err(Unavailable { reason, message }) if reason == AUTH_UNAVAILABLE && message.contains("not made yet")),
        "{waiting:?}"
    );
    // none only when asked.
    let none = model("open", RuntimeSpec::default(), mode(AuthMode::None));
    assert_eq!(
        resolve(&none, Some(&project(true)), &settings(true)),
        Ok(Auth::None)
    );
}

#[test]
fn oidc_without_a_client_is_a_reason_and_nothing_serves() -> Result<(), Error> {
    let m = model("fraud", RuntimeSpec::default(), mode(AuthMode::Oidc));
    let auth = resolve(&m, Some(&project(false)), &settings(false));
    let Err(unavailable) = &auth else {
        panic!("oidc without an identity provider resolved: {auth:?}");
    };
    assert_eq!(unavailable.reason, AUTH_UNAVAILABLE);
    assert!(
        unavailable.message.contains("use auth.mode kubernetes"),
        "{}",
        unavailable.message
    );
    // No Deployment is built (never served unchecked); the Service stays.
    let settings = ModelSettings::default();
    let v = Version::target(&m, &settings);
    let observed = Observed {
        target_download: super::observe::Download::Succeeded,
        ..Default::default()
    };
    let decision = decide(&m, &v, None, &observed, Timestamp::UNIX_EPOCH);
    assert!(decision.plan.serve.is_some());
    let built = build(
        &m,
        &settings,
        &Environment::default(),
        &decision.plan,
        &Host::None,
        None,
    )?;
    let kinds: Vec<&str> = built
        .children
        .iter()
        .map(|d| d.kind.resource.kind.as_str())
        .collect();
    assert!(!kinds.contains(&"Deployment"), "{kinds:?}");
    assert!(kinds.contains(&"Service"), "{kinds:?}");
    let status = super::status::status(
        &m,
        &observed,
        &decision,
        &built,
        &auth,
        Timestamp::UNIX_EPOCH,
    );
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    assert_eq!(
        condition("AuthReady"),
        Some(("False".into(), AUTH_UNAVAILABLE.into()))
    );
    assert_eq!(
        condition("Ready"),
        Some(("False".into(), AUTH_UNAVAILABLE.into()))
    );
    assert_eq!(status.auth, None);
    Ok(())
}

#[test]
fn onnx_checks_tokens_itself_and_is_probed_on_its_metrics_port() -> Result<(), Error> {
    let m = model(
        "fraud",
        RuntimeSpec::default(),
        Some(AuthSpec {
            mode: Some(AuthMode::Oidc),
            roles: vec!["scorer".into()],
            groups: vec!["risk".into()],
            clients: vec!["berth-team".into(), "batch".into()],
            ..Default::default()
        }),
    );
    let mut platform = settings(true);
    platform.models.auth.clock_skew_seconds = 2;
    let auth =
        resolve(&m, Some(&project(true)), &platform).map_err(|u| Error::internal(u.message))?;
    let pod = pod(&m, &auth)?;
    assert_eq!(pod.containers.len(), 1, "no proxy in front of onnx");
    let server = container(&pod, SERVER_CONTAINER);
    let a = args(server);
    for wanted in [
        "--auth=oidc",
        &format!("--oidc-issuer={ISSUER}"),
        &format!("--oidc-audience={CLIENT}"),
        "--oidc-client=berth-team",
        "--oidc-client=batch",
        "--oidc-role=scorer",
        "--oidc-group=risk",
        "--clock-skew-secs=2",
        "--metrics-addr=0.0.0.0:9090",
    ] {
        assert!(a.iter().any(|x| x == wanted), "{wanted} missing in {a:?}");
    }
    assert_eq!(
        probe_target(server.readiness_probe.as_ref()),
        ("/v2/health/ready".into(), "metrics".into())
    );
    assert_eq!(
        probe_target(server.liveness_probe.as_ref()),
        ("/v2/health/live".into(), "metrics".into())
    );
    assert_eq!(port(server, "http"), Some(8080));
    // oidc needs no API token.
    assert_eq!(pod.service_account_name, None);
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert!(!pod.volumes.iter().flatten().any(|v| v.name == TOKEN_VOLUME));
    assert_eq!(
        auth.status().issuer.as_deref(),
        Some(ISSUER),
        "status.auth names the issuer"
    );
    Ok(())
}

#[test]
fn a_custom_runtime_runs_behind_the_proxy_which_alone_gets_the_api_token() -> Result<(), Error> {
    let m = model("scorer", custom(5000), None);
    let auth = resolve(&m, Some(&project(false)), &settings(false))
        .map_err(|u| Error::internal(u.message))?;
    assert!(matches!(auth, Auth::Kubernetes { .. }));
    let pod = pod(&m, &auth)?;
    assert_eq!(pod.containers.len(), 2);
    let runtime = container(&pod, SERVER_CONTAINER);
    let proxy = container(&pod, PROXY_CONTAINER);
    // The proxy has the Service's port (http); the runtime's own port is not in the Service.
    assert_eq!(port(proxy, "http"), Some(8080));
    assert_eq!(port(proxy, "metrics"), Some(9090));
    assert_eq!(port(runtime, "runtime"), Some(5000));
    assert_eq!(port(runtime, "http"), None);
    assert_eq!(
        proxy.image.as_deref(),
        Some(ModelSettings::default().runtime_images.onnx.as_str()),
        "the proxy is the onnx runtime's image"
    );
    let a = args(proxy);
    assert_eq!(
        a[..4],
        [
            "proxy".to_owned(),
            "--listen=0.0.0.0:8080".to_owned(),
            "--upstream=127.0.0.1:5000".to_owned(),
            "--metrics-addr=0.0.0.0:9090".to_owned(),
        ]
    );
    for wanted in [
        "--auth=kubernetes",
        "--kubernetes-audience=mlmodels.berth.dev/team/scorer",
        "--kubernetes-namespace=team",
    ] {
        assert!(a.iter().any(|x| x == wanted), "{wanted} missing in {a:?}");
    }
    // The kubelet probes the runtime on its own port; the proxy's liveness is its metrics port.
    assert_eq!(
        probe_target(runtime.readiness_probe.as_ref()),
        ("/healthz".into(), "runtime".into())
    );
    assert_eq!(
        probe_target(proxy.liveness_probe.as_ref()),
        ("/v2/health/live".into(), "metrics".into())
    );
    // The pod runs as the token reviewer account, and only the proxy mounts its token.
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some(MODEL_AUTH_ACCOUNT)
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    let mounts = |c: &Container| -> Vec<String> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect()
    };
    assert!(mounts(proxy).contains(&TOKEN_DIR.to_owned()));
    assert!(!mounts(runtime).contains(&TOKEN_DIR.to_owned()));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == TOKEN_VOLUME)
        .and_then(|v| v.projected.clone())
        .ok_or_else(|| Error::internal("no token volume"))?;
    assert!(
        volume
            .sources
            .iter()
            .flatten()
            .any(|s| s.service_account_token.is_some())
    );
    Ok(())
}

#[test]
fn a_custom_runtime_on_the_proxys_ports_moves_the_proxy() -> Result<(), Error> {
    for (runtime_port, http, metrics) in [(8080, 8000, 9090), (9090, 8080, 9091)] {
        let m = model("scorer", custom(runtime_port), mode(AuthMode::Kubernetes));
        let auth = resolve(&m, None, &settings(false)).map_err(|u| Error::internal(u.message))?;
        let pod = pod(&m, &auth)?;
        let proxy = container(&pod, PROXY_CONTAINER);
        assert_eq!(port(proxy, "http"), Some(http));
        assert_eq!(port(proxy, "metrics"), Some(metrics));
        assert_eq!(
            port(container(&pod, SERVER_CONTAINER), "runtime"),
            Some(runtime_port)
        );
        let a = args(proxy);
        assert!(a.contains(&format!("--listen=0.0.0.0:{http}")), "{a:?}");
        assert!(
            a.contains(&format!("--upstream=127.0.0.1:{runtime_port}")),
            "{a:?}"
        );
    }
    Ok(())
}

#[test]
fn built_in_runtimes_move_to_their_own_port_behind_the_proxy() -> Result<(), Error> {
    let tf = RuntimeSpec {
        name: RuntimeName::Tensorflow,
        ..Default::default()
    };
    let m = model("tf", tf, mode(AuthMode::Kubernetes));
    let auth = resolve(&m, None, &settings(false)).map_err(|u| Error::internal(u.message))?;
    let pod = pod(&m, &auth)?;
    let runtime = container(&pod, SERVER_CONTAINER);
    assert!(args(runtime).contains(&"--rest_api_port=8081".to_owned()));
    assert_eq!(port(runtime, "runtime"), Some(8081));
    assert_eq!(
        probe_target(runtime.readiness_probe.as_ref()),
        ("/v1/models/tf".into(), "runtime".into())
    );
    assert!(
        args(container(&pod, PROXY_CONTAINER)).contains(&"--upstream=127.0.0.1:8081".to_owned())
    );
    Ok(())
}

#[test]
fn none_keeps_the_runtime_alone_on_the_public_port() -> Result<(), Error> {
    for runtime in [RuntimeSpec::default(), custom(5000)] {
        let m = model("open", runtime.clone(), mode(AuthMode::None));
        let pod = pod(&m, &Auth::None)?;
        assert_eq!(pod.containers.len(), 1);
        let server = container(&pod, SERVER_CONTAINER);
        let expected_port = runtime.port.unwrap_or(8080);
        assert_eq!(port(server, "http"), Some(expected_port));
        assert_eq!(pod.service_account_name, None);
        if runtime.name == RuntimeName::Onnx {
            assert!(args(server).contains(&"--auth=none".to_owned()));
            assert_eq!(
                probe_target(server.readiness_probe.as_ref()),
                ("/v2/health/ready".into(), "http".into())
            );
        }
    }
    assert_eq!(Auth::None.status().mode, "none");
    Ok(())
}

#[test]
fn the_service_targets_the_checked_port_only() -> Result<(), Error> {
    let m = model("scorer", custom(5000), mode(AuthMode::Kubernetes));
    let settings = ModelSettings::default();
    let v = Version::target(&m, &settings);
    let plan = Plan {
        serve: Some(v.clone()),
        volumes: vec![v],
        kept_jobs: BTreeMap::new(),
        autoscaled_replicas: None,
        canary: None,
    };
    let auth = resolve(&m, None, &self::settings(false)).map_err(|u| Error::internal(u.message))?;
    let built = build(
        &m,
        &settings,
        &Environment::default(),
        &plan,
        &Host::None,
        Some(&auth),
    )?;
    let service: Service = built
        .children
        .iter()
        .find(|d| d.kind.resource.kind == "Service")
        .map(|d| serde_json::to_value(&d.object).and_then(serde_json::from_value))
        .transpose()
        .map_err(|e| Error::internal(e.to_string()))?
        .ok_or_else(|| Error::internal("no Service"))?;
    let targets: Vec<String> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.target_port)
        .map(|t| format!("{t:?}"))
        .collect();
    assert_eq!(targets, vec![r#"String("http")"#.to_owned()]);
    Ok(())
}

#[test]
fn each_model_has_its_own_kubernetes_audience() {
    assert_ne!(model_audience("team", "a"), model_audience("team", "b"));
    assert_ne!(model_audience("team", "a"), model_audience("other", "a"));
    assert_eq!(model_audience("team", "a"), "mlmodels.berth.dev/team/a");
}

/// Regression (found in review): Projects that name another team's namespace end in
/// NamespaceConflict but stay in the cache; the model's Project is the one that holds the
/// namespace, never a squatter without an OIDC client, whatever the cache's order.
#[test]
fn a_squatting_project_never_stands_in_for_the_namespace_owner() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use std::sync::Arc;
    let at = |name: &str, created: &str, reason: Option<(&str, &str)>, client: bool| {
        let mut p = project(client);
        p.metadata.name = Some(name.into());
        p.spec.namespace = Some("team-a".into());
        p.metadata.creation_timestamp = created.parse::<Timestamp>().ok().map(Time);
        if let (Some(status), Some((status_value, reason))) = (p.status.as_mut(), reason) {
            status.conditions = vec![Condition {
                type_: "NamespaceReady".into(),
                status: status_value.into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
                observed_generation: None,
            }];
        }
        Arc::new(p)
    };
    let owner = at(
        "team-a",
        "2026-01-01T00:00:00Z",
        Some(("True", "Ready")),
        true,
    );
    let refused = at(
        "squat1",
        "2025-01-01T00:00:00Z",
        Some(("False", "NamespaceConflict")),
        false,
    );
    let fresh = at("squat2", "2026-06-01T00:00:00Z", None, false);
    let other = at(
        "team-b",
        "2024-01-01T00:00:00Z",
        Some(("True", "Ready")),
        true,
    );
    let mut other_ns = (*other).clone();
    other_ns.spec.namespace = Some("team-b".into());
    for order in [
        vec![
            refused.clone(),
            fresh.clone(),
            owner.clone(),
            Arc::new(other_ns.clone()),
        ],
        vec![owner.clone(), fresh.clone(), refused.clone()],
        vec![fresh.clone(), refused.clone(), owner.clone()],
    ] {
        let found = super::owning_project(order, "team-a");
        assert_eq!(
            found.and_then(|p| p.metadata.name.clone()).as_deref(),
            Some("team-a")
        );
    }
    // Before the owner's first reconcile, the older of the two that are not refused.
    let unreconciled = at("team-a", "2026-01-01T00:00:00Z", None, true);
    let found = super::owning_project(vec![fresh, unreconciled, refused.clone()], "team-a");
    assert_eq!(
        found.and_then(|p| p.metadata.name.clone()).as_deref(),
        Some("team-a")
    );
    // A refused Project alone is nobody's.
    assert!(super::owning_project(vec![refused], "team-a").is_none());
}
