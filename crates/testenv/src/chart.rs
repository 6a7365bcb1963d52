//! Installing Berth with its Helm charts, the way a platform team does: `charts/berth-crds` (the
//! CRDs), then `charts/berth` (the operator, its RBAC and admission policies, the settings), with
//! the pinned Helm that `tools/helm/build.sh` builds and Berth's images pinned by the digests
//! `cargo xtask images` wrote.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::realnode::Images;
use crate::util::{locate_build, repo_root};
use crate::{Cluster, Error};

/// The chart with the operator, relative to the repository.
pub const CHART: &str = "charts/berth";
/// The chart with the CRDs.
pub const CRDS_CHART: &str = "charts/berth-crds";
/// The releases' names.
pub const RELEASE: &str = "berth";
pub const CRDS_RELEASE: &str = "berth-crds";
/// The operator's namespace: the `berth` release's.
pub const NAMESPACE: &str = crate::manifests::OPERATOR_NAMESPACE;
/// The environment variable that names Helm's directory instead of building it.
pub const HELM_DIR_ENV: &str = "BERTH_HELM_DIR";

/// The pinned Helm client, pointed at one cluster.
#[derive(Clone, Debug)]
pub struct Helm {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Helm {
    /// `BERTH_HELM_DIR/helm` if set; otherwise what `tools/helm/build.sh` builds or finds in its
    /// cache. Every command goes to the cluster of `kubeconfig`.
    pub fn locate(kubeconfig: &Path) -> Result<Self, Error> {
        let dir = locate_build("tools/helm/build.sh", HELM_DIR_ENV)?;
        Self::at(&dir.join("helm"), kubeconfig)
    }

    /// The Helm binary at `binary`.
    pub fn at(binary: &Path, kubeconfig: &Path) -> Result<Self, Error> {
        if !binary.exists() {
            return Err(Error::Build(format!(
                "{} does not exist; run tools/helm/build.sh",
                binary.display()
            )));
        }
        Ok(Self {
            binary: binary.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
        })
    }

    /// The binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs `helm ARGS` against the cluster; returns its stdout, or an error with its stderr.
    /// Helm's caches and configuration go to a directory of the run, not the user's home.
    pub async fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, Error> {
        let home = std::env::temp_dir().join(format!("berth-helm-{}", std::process::id()));
        let output = tokio::process::Command::new(&self.binary)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .current_dir(repo_root())
            .output()
            .await
            .map_err(|e| Error::io(format!("running {}", self.binary.display()), e))?;
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        if !output.status.success() {
            return Err(Error::Helm {
                command: shown.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The path of a chart of this repository.
pub fn chart_path(chart: &str) -> PathBuf {
    repo_root().join(chart)
}

/// Values that run Berth's images as built here: each by repository, tag and digest, as
/// `images.json` names it (the node has them; nothing is pulled).
pub fn image_values(images: &Images) -> Result<Value, Error> {
    let mut values = json!({});
    for (key, name) in [
        ("operator", "operator"),
        ("modelServer", "model-server"),
        ("modelFetch", "model-fetch"),
    ] {
        let image = images.get(name).ok_or_else(|| {
            Error::RealNode(format!(
                "no image {name} in images.json; `cargo xtask images` builds it"
            ))
        })?;
        let (repository, tag) = image.reference.rsplit_once(':').ok_or_else(|| {
            Error::RealNode(format!("image reference {} has no tag", image.reference))
        })?;
        values[key] = json!({"repository": repository, "tag": tag, "digest": image.digest});
    }
    Ok(json!({"images": values}))
}

/// Values for a cluster with the real node ([`crate::realnode`]): Berth's images as built here,
/// by digest (imported into the node, never pulled), the operator's pods on the real node, and
/// its NetworkPolicy naming the API server as the node's pods reach it (the `kubernetes`
/// Service, translated to the node's address, on whichever port the API server has).
pub fn real_node_values(images: &Images) -> Result<Value, Error> {
    use crate::realnode::{API_SERVICE_IP, NODE_IP, node_selector, toleration};
    let mut values = image_values(images)?;
    merge(
        &mut values,
        json!({
            "images": {"pullPolicy": "Never"},
            "operator": {
                "nodeSelector": node_selector(),
                "tolerations": [toleration()],
            },
            "networkPolicy": {
                "apiServer": {
                    "cidrs": [format!("{NODE_IP}/32"), format!("{API_SERVICE_IP}/32")],
                    "ports": [],
                },
            },
        }),
    );
    Ok(values)
}

/// `over` merged into `base`: objects key by key, anything else replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over,
    }
}

/// Installs (or upgrades) both charts from `charts_dir` (this repository's `charts/` when
/// `None`), the `berth` release with `values` written to `dir/values.json`, and waits until the
/// operator's Deployment is available. The release namespace must exist.
pub async fn install(
    helm: &Helm,
    charts_dir: Option<&Path>,
    values: &Value,
    dir: &Path,
) -> Result<(), Error> {
    let charts = charts_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("charts"));
    let values_file = dir.join("values.json");
    let text = serde_json::to_vec_pretty(values).map_err(|e| Error::Manifest {
        origin: values_file.display().to_string(),
        message: e.to_string(),
    })?;
    std::fs::write(&values_file, text)
        .map_err(|e| Error::io(format!("writing {}", values_file.display()), e))?;
    let crds = charts.join("berth-crds");
    let berth = charts.join("berth");
    helm.run(&[
        "upgrade".as_ref(),
        "--install".as_ref(),
        CRDS_RELEASE.as_ref(),
        crds.as_os_str(),
        // Both releases' records live in the operator's namespace.
        "--namespace".as_ref(),
        NAMESPACE.as_ref(),
        "--wait".as_ref(),
        "--timeout".as_ref(),
        "2m".as_ref(),
    ])
    .await?;
    helm.run(&[
        "upgrade".as_ref(),
        "--install".as_ref(),
        RELEASE.as_ref(),
        berth.as_os_str(),
        "--namespace".as_ref(),
        NAMESPACE.as_ref(),
        "--values".as_ref(),
        values_file.as_os_str(),
        "--wait".as_ref(),
        "--timeout".as_ref(),
        "3m".as_ref(),
    ])
    .await?;
    Ok(())
}

impl Cluster {
    /// A Helm client for this cluster (see [`Helm::locate`]).
    pub fn helm(&self) -> Result<Helm, Error> {
        Helm::locate(self.kubeconfig_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_goes_key_by_key() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut base, json!({"a": {"c": 3}, "d": [2], "e": true}));
        assert_eq!(base, json!({"a": {"b": 1, "c": 3}, "d": [2], "e": true}));
    }
}
