//! Where the control-plane binaries are: built (or found in the cache) by `tools/build.sh`.

use std::path::PathBuf;
use std::process::Command;

use crate::util::repo_root;

use crate::Error;

/// The directory of pinned control-plane binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    dir: PathBuf,
}

/// Names every component binary the control plane needs.
const REQUIRED: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "stages",
    "istio-crds",
];

impl Binaries {
    /// `BERTH_BIN_DIR` if set; otherwise whatever `tools/build.sh` builds or finds in its cache.
    /// A cold build prints its progress on stderr.
    pub fn locate() -> Result<Self, Error> {
        Self::at(crate::util::locate_build(
            "tools/build.sh",
            "BERTH_BIN_DIR",
        )?)
    }

    /// The binaries in `dir`, checked to be all there.
    pub fn at(dir: PathBuf) -> Result<Self, Error> {
        for name in REQUIRED {
            if !dir.join(name).exists() {
                return Err(Error::Build(format!(
                    "{} has no {name}; run tools/build.sh",
                    dir.display()
                )));
            }
        }
        Ok(Self { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Istio's CRDs, from the pinned istio.io/api module.
    pub fn istio_crds_dir(&self) -> PathBuf {
        self.dir.join("istio-crds")
    }

    /// kwok's stage configs, taken from the pinned kwok module.
    pub fn stages_dir(&self) -> PathBuf {
        self.dir.join("stages")
    }
}

/// The operator binary tests run: `BERTH_OPERATOR_BIN` (set by `cargo xtask test`), or the debug
/// build, built now with cargo.
pub fn operator_binary() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os("BERTH_OPERATOR_BIN") {
        return Ok(bin.into());
    }
    let root = repo_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--package", "berth-operator"])
        .status()
        .map_err(|e| Error::io("running cargo build --package berth-operator", e))?;
    if !status.success() {
        return Err(Error::Build(format!(
            "cargo build --package berth-operator exited with {status}"
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug/berth-operator"))
}
