//! What kwok does not do for Berth's MLModels: a storage provisioner and a container runtime for
//! the model download pods. The MLModel tests and `cargo xtask dev` run it beside kwok.
//!
//! - **Volumes.** The control plane has no storage provisioner. For each pending claim Berth made,
//!   this creates a PersistentVolume bound to it (a directory on this machine, `hostPath`), and
//!   deletes it once released, as a dynamic provisioner with reclaim policy Delete would.
//! - **Downloads.** kwok holds Berth's download pods Running (stage `berth-download-hold`). This
//!   runs the real `berth-model-fetch` binary with the pod's own arguments and environment (its
//!   Secret included), the volume mount pointing at the claim's directory, then sets the pod's
//!   exit-code and message annotations; kwok's `berth-container-exit` stage terminates the pod
//!   with that code. So a missing object, a refused key or a wrong checksum come from the real
//!   binary against a real MinIO.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec, Pod, Secret,
};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::kwok::{EXIT_CODE_ANNOTATION, EXIT_MESSAGE_ANNOTATION};

type Result<T> = std::result::Result<T, Error>;

fn wait(what: &str, message: impl std::fmt::Display) -> Error {
    Error::Wait {
        what: what.to_owned(),
        message: message.to_string(),
    }
}

const PROVISIONED: &str = "berth.dev/test-provisioner";

/// The host directory of the volume bound to claim `namespace/name`, under `volumes`.
pub fn volume_dir(volumes: &Path, namespace: &str, name: &str) -> PathBuf {
    volumes.join(namespace).join(name)
}

/// The berth-model-fetch binary: `BERTH_MODEL_FETCH_BIN`, or the debug build, built now.
pub fn fetch_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BERTH_MODEL_FETCH_BIN") {
        return Ok(bin.into());
    }
    let root = crate::util::repo_root();
    let status = StdCommand::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--package", "berth-model-fetch"])
        .status()
        .map_err(|e| Error::io("running cargo build --package berth-model-fetch", e))?;
    if !status.success() {
        return Err(Error::Build(format!(
            "cargo build --package berth-model-fetch exited with {status}"
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug/berth-model-fetch"))
}

/// Provisions volumes for Berth's claims and runs Berth's download pods, every 150 ms, until the
/// task is dropped. Volumes are directories under `volumes`; downloads run `fetch_binary`.
pub async fn run(client: Client, fetch_binary: PathBuf, volumes: PathBuf) {
    let mut handled = HashSet::new();
    loop {
        if let Err(e) = tick(&client, &fetch_binary, &volumes, &mut handled).await {
            eprintln!("[berth-testenv] model runtime: {e}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn tick(
    client: &Client,
    bin: &Path,
    volumes_dir: &Path,
    handled: &mut HashSet<String>,
) -> Result<()> {
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=berth");
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    for claim in claims.list(&managed).await? {
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_name.is_some() || claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let dir = volume_dir(volumes_dir, &namespace, &name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let size = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned())
            .unwrap_or(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                "1Gi".into(),
            ));
        let volume = PersistentVolume {
            metadata: ObjectMeta {
                name: Some(format!("berth-test-{}", claim.uid().unwrap_or_default())),
                labels: Some(BTreeMap::from([(
                    PROVISIONED.to_owned(),
                    "true".to_owned(),
                )])),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([("storage".to_owned(), size)])),
                access_modes: spec.access_modes.clone(),
                host_path: Some(HostPathVolumeSource {
                    path: dir.display().to_string(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                claim_ref: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("PersistentVolumeClaim".into()),
                    namespace: Some(namespace),
                    name: Some(name),
                    uid: claim.uid(),
                    ..Default::default()
                }),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                storage_class_name: Some(spec.storage_class_name.unwrap_or_default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let ours = ListParams::default().labels(&format!("{PROVISIONED}=true"));
    for volume in volumes.list(&ours).await? {
        let phase = volume.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() == Some("Released") {
            if let Some(path) = volume
                .spec
                .as_ref()
                .and_then(|s| s.host_path.as_ref())
                .map(|h| h.path.clone())
            {
                let _ = std::fs::remove_dir_all(path);
            }
            match volumes
                .delete(&volume.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    let pods: Api<Pod> = Api::all(client.clone());
    let downloads = ListParams::default().labels("berth.dev/component=download");
    for pod in pods.list(&downloads).await? {
        let uid = pod.uid().unwrap_or_default();
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let annotated = pod.annotations().contains_key(EXIT_CODE_ANNOTATION);
        if !running
            || annotated
            || pod.metadata.deletion_timestamp.is_some()
            || handled.contains(&uid)
        {
            continue;
        }
        handled.insert(uid);
        let client = client.clone();
        let bin = bin.to_path_buf();
        tokio::spawn(async move {
            if let Err(e) = run_download(&client, &bin, &pod).await {
                eprintln!(
                    "[berth-testenv] model runtime: download pod {}/{}: {e}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any()
                );
            }
        });
    }
    Ok(())
}

/// Runs the download pod's container as a container runtime would, then reports its exit.
async fn run_download(client: &Client, bin: &Path, pod: &Pod) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec
        .containers
        .first()
        .ok_or_else(|| wait("a download pod's container", "the pod has no container"))?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let mut mounts: Vec<(String, String)> = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let claim_name = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone());
        // Only claims hold the model; other volumes (a token, if mounted) are not played.
        let Some(claim_name) = claim_name else {
            continue;
        };
        let claim = claims.get(&claim_name).await?;
        let volume_name = claim.spec.and_then(|s| s.volume_name).ok_or_else(|| {
            wait(
                "a download pod's volume",
                format!("claim {claim_name} is not bound"),
            )
        })?;
        let path = volumes
            .get(&volume_name)
            .await?
            .spec
            .and_then(|s| s.host_path)
            .map(|h| h.path)
            .ok_or_else(|| {
                wait(
                    "a download pod's volume",
                    format!("volume {volume_name} has no host path"),
                )
            })?;
        mounts.push((mount.mount_path.clone(), path));
    }
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|arg| {
            for (inside, outside) in &mounts {
                if arg == inside {
                    return outside.clone();
                }
                if let Some(rest) = arg.strip_prefix(&format!("{inside}/")) {
                    return format!("{outside}/{rest}");
                }
            }
            arg.clone()
        })
        .collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for from in container.env_from.iter().flatten() {
        if let Some(reference) = &from.secret_ref {
            let secret = secrets.get(&reference.name).await?;
            for (key, value) in secret.data.unwrap_or_default() {
                env.insert(key, String::from_utf8_lossy(&value.0).into_owned());
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.insert(var.name.clone(), value.clone());
        }
    }
    let mut command = tokio::process::Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command
        .args(&args)
        .envs(&env)
        .env("AWS_CONFIG_FILE", "/nonexistent/berth-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/berth-credentials",
        )
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .map_err(|_| Error::Timeout {
            what: "berth-model-fetch to finish".into(),
            seconds: 120,
        })?
        .map_err(|e| Error::io("running berth-model-fetch", e))?;
    let code = output.status.code().unwrap_or(1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned();
    eprintln!(
        "[berth-testenv] model runtime: {namespace}/{}: berth-model-fetch {args:?} exited {code}: {message}",
        pod.name_any()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let patch = json!({"metadata": {"annotations": {
        EXIT_CODE_ANNOTATION: code.to_string(),
        EXIT_MESSAGE_ANNOTATION: message,
    }}});
    match pods
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
