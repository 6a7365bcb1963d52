//! Berth's images for the real node: the manifest `cargo xtask images` writes
//! (`BERTH_IMAGES=<dir>/images.json`), and their import into the node's containerd. Nothing is
//! ever pulled: pods name these references with `imagePullPolicy: IfNotPresent` or `Never`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::Error;
use crate::util::repo_root;

use super::paths;

/// One image of the manifest.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageRef {
    /// Its short name: `pause`, `operator`, `model-fetch`, `model-server`, ...
    pub name: String,
    /// `berth.dev/<name>:<tag>`, the name pods use.
    pub reference: String,
    /// `sha256:<hex>` of its manifest.
    pub digest: String,
    /// The OCI-layout tar archive.
    pub archive: PathBuf,
}

/// The images built for this run.
#[derive(Clone, Debug, Default)]
pub struct Images {
    images: Vec<ImageRef>,
}

/// The environment variable that names the manifest.
pub const IMAGES_ENV: &str = "BERTH_IMAGES";

impl Images {
    /// The manifest `BERTH_IMAGES` names; without it, `cargo xtask images` is run now (it builds
    /// what is missing) and its manifest read.
    pub fn locate() -> Result<Self, Error> {
        let manifest = match std::env::var_os(IMAGES_ENV) {
            Some(path) => PathBuf::from(path),
            None => build()?,
        };
        Self::read(&manifest)
    }

    /// The images of one manifest file.
    pub fn read(manifest: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(manifest)
            .map_err(|e| Error::io(format!("reading {}", manifest.display()), e))?;
        let images: Vec<ImageRef> = serde_json::from_str(&text).map_err(|e| Error::Manifest {
            origin: manifest.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { images })
    }

    /// The image called `name`, if built.
    pub fn get(&self, name: &str) -> Option<&ImageRef> {
        self.images.iter().find(|i| i.name == name)
    }

    /// The reference of the image called `name`, or an error naming what is missing.
    pub fn reference(&self, name: &str) -> Result<String, Error> {
        self.get(name).map(|i| i.reference.clone()).ok_or_else(|| {
            Error::RealNode(format!(
                "no image {name} in the manifest ({}); `cargo xtask images` builds it",
                IMAGES_ENV
            ))
        })
    }

    /// Adds (or replaces, by name) one image.
    pub fn add(&mut self, image: ImageRef) {
        self.images.retain(|i| i.name != image.name);
        self.images.push(image);
    }

    /// Every image.
    pub fn all(&self) -> &[ImageRef] {
        &self.images
    }

    /// Imports every archive into the node's containerd (namespace `k8s.io`, where the kubelet
    /// looks), with `ctr`. Returns how many.
    pub fn import(&self, ctr: &Path) -> Result<usize, Error> {
        for image in &self.images {
            let output = Command::new(ctr)
                .args([
                    "--address",
                    paths::CONTAINERD_SOCKET,
                    "--namespace",
                    "k8s.io",
                    "images",
                    "import",
                ])
                .arg(&image.archive)
                .output()
                .map_err(|e| Error::io(format!("running {}", ctr.display()), e))?;
            if !output.status.success() {
                return Err(Error::RealNode(format!(
                    "ctr images import {} failed: {}",
                    image.archive.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
        }
        Ok(self.images.len())
    }
}

/// Runs `cargo xtask images`; returns its manifest.
fn build() -> Result<PathBuf, Error> {
    let root = repo_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["xtask", "images"])
        .status()
        .map_err(|e| Error::io("running cargo xtask images", e))?;
    if !status.success() {
        return Err(Error::RealNode(format!(
            "cargo xtask images exited with {status}"
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("images/images.json"))
}
