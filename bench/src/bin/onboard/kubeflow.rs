//! Kubeflow's profile controller (kubeflow/dashboard at d842464, built by
//! tools/kubeflow-profile-controller/build.sh) on the same control plane, with its Profile CRD and
//! Istio's CRDs, under a service account of its own bound to cluster-admin (what its manifests
//! grant), with its shipped defaults (one worker). Each Profile has the owner and the quota of the
//! equivalent Project (the effective quota Berth builds), and the namespace labels file holds the
//! labels Berth puts on the namespace. A Profile has no members list (Kubeflow adds contributors
//! through another service), so the Project's viewer group has no counterpart.
//!
//! It has no Ready condition. Done: the Profile carries `profile-finalizer`, which the controller
//! adds at the end of a reconcile that created the namespace, its AuthorizationPolicy, both service
//! accounts with their RoleBindings, the owner's RoleBinding and the ResourceQuota; the run then
//! checks that every namespace has them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use berth_api::PlatformSettingsSpec;
use berth_testenv::{Binaries, Process};

use crate::report::Run;
use crate::{
    Args, Bench, create_all, machine, names, now, project, project_build, settle_then_window,
    wait_done, wait_reconciled,
};

const USER: &str = "system:serviceaccount:kubeflow:profile-controller";
const FINALIZER: &str = "profile-finalizer";
/// controller-runtime's default SyncPeriod (10 h), which the profile controller does not change.
const RESYNC_SECONDS: f64 = 10.0 * 3600.0;

/// Builds (or finds in the cache) the controller: the directory tools/kubeflow-profile-controller/build.sh prints.
pub fn locate() -> Result<PathBuf> {
    let script =
        berth_testenv::util::repo_root().join("tools/kubeflow-profile-controller/build.sh");
    eprintln!("[onboard] {} …", script.display());
    let out = Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let dir = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .map(PathBuf::from)
        .context("the build script printed no directory")?;
    Ok(dir)
}

fn profile_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "Profile"),
        "profiles",
    )
}

/// Applies every CustomResourceDefinition in `file` and waits until each is established.
async fn install_crds(client: &kube::Client, file: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("berth-bench").force();
    for object in berth_testenv::manifests::parse_objects(&text, &file.display().to_string())? {
        if object.types.as_ref().map(|t| t.kind.as_str()) != Some("CustomResourceDefinition") {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::to_value(&object)?)?;
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not established"))??;
    }
    Ok(())
}

/// The controller's identity: a service account bound to cluster-admin, and a kubeconfig for it.
async fn identity(bench: &Bench) -> Result<PathBuf> {
    let client = &bench.admin;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "kubeflow"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "profile-controller"}}))?;
    Api::<ServiceAccount>::namespaced(client.clone(), "kubeflow")
        .create(&PostParams::default(), &sa)
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "kubeflow-profile-controller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "profile-controller", "namespace": "kubeflow"}],
    }))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    let path = bench.plane.dir().join("kubeflow.kubeconfig");
    bench
        .plane
        .cluster()
        .service_account_kubeconfig("kubeflow", "profile-controller", &path)
        .await?;
    Ok(path)
}

/// The Profile equivalent to `name`'s Project, and the namespace labels Berth sets, both taken
/// from what Berth builds for the Project.
fn equivalent(
    name: &str,
    settings: &PlatformSettingsSpec,
    client: &kube::Client,
) -> Result<(Value, BTreeMap<String, String>)> {
    // Berth builds for a stored Project (its owner references need the uid).
    let mut stored = project(name)?;
    stored.metadata.uid = Some("00000000-0000-4000-8000-000000000000".to_owned());
    // Only the quota and the namespace's labels are read, which the environment does not change.
    let env = berth_controllers::project::build::Environment::default();
    let children = project_build::children(&stored, settings, &env, client)?;
    let kind = |k: &str| {
        children
            .iter()
            .find(|c| c.object.types.as_ref().is_some_and(|t| t.kind == k))
    };
    let hard = kind("ResourceQuota")
        .map(|c| c.object.data["spec"]["hard"].clone())
        .context("Berth builds no ResourceQuota")?;
    let labels: BTreeMap<String, String> = kind("Namespace")
        .map(|c| c.object.labels().clone())
        .unwrap_or_default()
        .into_iter()
        // Berth's own bookkeeping labels have no meaning to Kubeflow.
        .filter(|(k, _)| !k.starts_with("berth.dev/") && k != "app.kubernetes.io/managed-by")
        .collect();
    let profile = json!({
        "apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": name},
        "spec": {
            "owner": {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("{name}@example.com")},
            "resourceQuotaSpec": {"hard": hard},
        },
    });
    Ok((profile, labels))
}

struct Controller {
    process: Process,
    metrics_port: u16,
}

fn start(
    bench: &Bench,
    dir: &Path,
    kubeconfig: &Path,
    labels: &Path,
    log: &str,
) -> Result<Controller> {
    let [metrics_port, probe_port] = berth_testenv::util::free_ports()?;
    let args = vec![
        format!("-kubeconfig={}", kubeconfig.display()),
        format!("-namespace-labels-path={}", labels.display()),
        "-userid-header=kubeflow-userid".to_owned(),
        "-userid-prefix=".to_owned(),
        format!("-metrics-bind-address=127.0.0.1:{metrics_port}"),
        format!("-health-probe-bind-address=127.0.0.1:{probe_port}"),
    ];
    let process = Process::spawn(
        "kubeflow-profile-controller",
        &dir.join("profile-controller"),
        &args,
        &bench.plane.dir().join(log),
    )?;
    Ok(Controller {
        process,
        metrics_port,
    })
}

/// Waits until the controller's workers run (its log says so), failing if it exits.
async fn wait_started(controller: &mut Controller) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = controller.process.exited() {
            bail!(
                "the profile controller exited with {status}:\n{}",
                controller.process.log_tail(3000)
            );
        }
        let log = std::fs::read_to_string(controller.process.log_path()).unwrap_or_default();
        if log.contains("Starting workers") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the profile controller did not start its workers in 60 s:\n{}",
                controller.process.log_tail(3000)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every Profile's namespace has what the controller makes for it, exactly once.
async fn check_children(client: &kube::Client, n: usize) -> Result<()> {
    let lp = ListParams::default();
    let quotas = Api::<ResourceQuota>::all(client.clone()).list(&lp).await?;
    let bindings = Api::<RoleBinding>::all(client.clone()).list(&lp).await?;
    let policies = Api::<DynamicObject>::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy"),
            "authorizationpolicies",
        ),
    )
    .list(&lp)
    .await?;
    let count = |names: Vec<String>, name: &str| names.iter().filter(|n| *n == name).count();
    let found = (
        count(
            quotas.iter().map(|q| q.name_any()).collect(),
            "kf-resource-quota",
        ),
        count(
            bindings.iter().map(|b| b.name_any()).collect(),
            "namespaceAdmin",
        ),
        count(
            policies.iter().map(|p| p.name_any()).collect(),
            "ns-owner-access-istio",
        ),
    );
    if found != (n, n, n) {
        bail!("expected {n} of each of quota, owner binding, AuthorizationPolicy; found {found:?}");
    }
    Ok(())
}

pub async fn run(n: usize, repeat: usize, args: &Args) -> Result<Run> {
    let dir = args.kubeflow.clone().context("no Kubeflow build")?;
    let load_start = machine::load_1m();
    let bench = Bench::start().await?;
    install_crds(&bench.admin, &dir.join("kubeflow.org_profiles.yaml")).await?;
    let istio = Binaries::locate()?.istio_crds_dir().join("istio.yaml");
    install_crds(&bench.admin, &istio).await?;
    let kubeconfig = identity(&bench).await?;
    let settings = Api::<berth_api::PlatformSettings>::all(bench.admin.clone())
        .get_opt(berth_api::settings::SETTINGS_NAME)
        .await?
        .map(|s| s.spec)
        .unwrap_or_default();
    let mut profiles = Vec::with_capacity(n);
    let mut labels = BTreeMap::new();
    for name in names(n) {
        let (profile, l) = equivalent(&name, &settings, &bench.admin)?;
        profiles.push(serde_json::from_value::<DynamicObject>(profile)?);
        labels = l;
    }
    let labels_file = bench.plane.dir().join("namespace-labels.yaml");
    std::fs::write(&labels_file, serde_json::to_string(&labels)?)?;
    let mut controller = start(&bench, &dir, &kubeconfig, &labels_file, "kubeflow.log")?;
    wait_started(&mut controller).await?;
    // Its start-up lists and watches are not per-Profile work: the clock starts after them.
    crate::audit::wait_started(
        &bench.plane.audit_log(),
        USER,
        "profiles",
        Duration::from_millis(1500),
        Duration::from_secs(60),
    )
    .await?;

    let api: Api<DynamicObject> = Api::all_with(bench.admin.clone(), &profile_resource());
    let from = now();
    let start_time = Instant::now();
    let done = |p: &DynamicObject| p.finalizers().iter().any(|f| f == FINALIZER);
    let process = &mut controller.process;
    let alive = || match process.exited() {
        Some(status) => bail!(
            "the profile controller exited with {status}:\n{}",
            process.log_tail(3000)
        ),
        None => Ok(()),
    };
    let (created, waited) = tokio::join!(
        create_all(&api, profiles, args.concurrency),
        wait_done(api.clone(), n, Duration::from_secs(3600), done, alive)
    );
    created?;
    waited?;
    let seconds = start_time.elapsed().as_secs_f64();
    let ready_at = now();
    check_children(&bench.admin, n).await?;

    let (steady_from, steady_to) = settle_then_window(args).await;
    let peak_rss_mib = machine::peak_rss_mib(controller.process.pid());
    let cpu_seconds = machine::cpu_seconds(controller.process.pid());

    // What its resync does (every 10 h): every Profile reconciled once more with nothing changed. A
    // restart does exactly that: the new informers list every Profile.
    controller.process.stop(Duration::from_secs(10));
    let resync_from = now();
    let mut controller = start(
        &bench,
        &dir,
        &kubeconfig,
        &labels_file,
        "kubeflow-resync.log",
    )?;
    wait_started(&mut controller).await?;
    wait_reconciled(
        &format!("http://127.0.0.1:{}/metrics", controller.metrics_port),
        "controller_runtime_reconcile_total",
        "controller=\"profile\"",
        n,
        Duration::from_secs(5),
        Duration::from_secs(1800),
    )
    .await?;
    let resync_to = now();
    drop(controller);

    let audit = bench.audit()?;
    let onboarding = audit.counts(USER, from, ready_at, "kubeflow onboarding");
    let steady = audit.counts(USER, steady_from, steady_to, "kubeflow steady");
    let resync = audit.counts(USER, resync_from, resync_to, "kubeflow resync");
    let load_end = machine::load_1m();
    bench.plane.kill();
    Ok(Run {
        n,
        variant: "kubeflow",
        repeat,
        seconds,
        requests_per_object: onboarding.all as f64 / n as f64,
        steady_writes: Some(steady.writes),
        steady_seconds: args.steady_seconds as f64,
        lease_writes: Some(steady.lease_writes),
        restart_writes: Some(resync.writes),
        restart_is_resync: true,
        resync_period_seconds: Some(RESYNC_SECONDS),
        peak_rss_mib,
        cpu_seconds,
        load: (load_start, load_end),
    })
}
