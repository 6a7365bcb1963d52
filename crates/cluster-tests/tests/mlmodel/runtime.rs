//! What kwok does not do for MLModels, played by the test with `berth_testenv::model_runtime`: a
//! storage provisioner (a hostPath PersistentVolume bound to each claim Berth makes) and a
//! container runtime for the download pods (the real berth-model-fetch, run with the pod's own
//! arguments and environment; kwok then terminates the pod with its exit code).

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};

/// The directory the volumes live in.
pub fn volumes_dir() -> PathBuf {
    std::env::temp_dir().join(format!("berth-mlmodel-volumes-{}", std::process::id()))
}

/// The host directory of the volume bound to claim `namespace/name`.
pub fn volume_dir(namespace: &str, name: &str) -> PathBuf {
    berth_testenv::model_runtime::volume_dir(&volumes_dir(), namespace, name)
}

/// Removes the volumes of earlier runs whose process is gone (a test binary cannot clean up
/// after itself at exit).
fn remove_stale_volumes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("berth-mlmodel-volumes-")
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts the runtime once per test binary, on a thread of its own that lives as long as the
/// binary.
pub fn start() -> Result<()> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        remove_stale_volumes();
        let bin = berth_testenv::model_runtime::fetch_binary().map_err(|e| e.to_string())?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                match crate::support::admin().await {
                    Ok((_, client)) => {
                        let _ = tx.send(Ok(()));
                        berth_testenv::model_runtime::run(client, bin, volumes_dir()).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
        rx.recv()
            .unwrap_or_else(|_| Err("the runtime thread ended".into()))
    });
    started.clone().map_err(|e| anyhow!(e))
}
