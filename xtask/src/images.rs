//! `cargo xtask images [--out DIR]`: Berth's OCI images, built on this machine without a container
//! engine and without a registry, one OCI image-layout archive each (`ctr -n k8s.io images import`,
//! `docker load`, `podman load`), plus:
//! - `DIR/images.json`: `[{"name", "reference", "digest", "archive"}]`, in build order;
//! - `DIR/settings.yaml`: a PlatformSettings holding only the model images, by tag and digest, to
//!   apply over `deploy/settings/` with a field manager of its own (server-side apply).
//!
//! Every image holds only what its binary needs: the binary, its shared libraries (as `ldd`
//! resolves them here, or none for a static binary), `/etc/passwd` and `/etc/group` with
//! `nonroot` (65532), and the machine's CA bundle; it runs as `65532:65532`. The same inputs give
//! the same digests (`berth_images`); see docs/development.md, "Images".

mod contents;
mod sources;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::repo_root;

/// The field manager `settings.yaml` is applied with, so it merges over `deploy/settings/`.
pub const SETTINGS_FIELD_MANAGER: &str = "berth-images";

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the archives, images.json and settings.yaml (default: target/images).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One entry of `images.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The image's short name, such as `pause`.
    pub name: String,
    /// `berth.dev/<name>:<tag>`.
    pub reference: String,
    /// The manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// The absolute path of its OCI archive.
    pub archive: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let out = args.out.unwrap_or_else(default_out);
    let json = build(&out)?;
    println!("{}", json.display());
    Ok(())
}

/// `BERTH_IMAGES_OUT`, else `target/images` under the repository (or under CARGO_TARGET_DIR).
/// Worktrees that share one CARGO_TARGET_DIR set BERTH_IMAGES_OUT, or each one's `xtask test`
/// may run another's images.
pub fn default_out() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_IMAGES_OUT") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("images")
}

fn step(k: usize, n: usize, what: &str) {
    eprintln!("==> [images {k}/{n}] {what}");
}

/// Builds every image into `out`; returns the path of `images.json`.
pub fn build(out: &Path) -> Result<PathBuf> {
    let begin = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    let work = out.join(".work");
    std::fs::create_dir_all(&work)?;
    let stamp = contents::Stamp {
        epoch: source_date_epoch()?,
        revision: revision(),
        layer_cache: contents::layer_cache()?,
    };
    // Output directories of earlier versions kept their own cache here.
    let _ = std::fs::remove_dir_all(out.join(".layers"));
    let n = 6;

    step(1, n, "pause: gcc -static deploy/images/pause/pause.c");
    let pause = sources::pause(&work, berth_api::mlmodel::IMAGE_TAG)?;

    step(
        2,
        n,
        "berth-model-server, berth-model-fetch, berth-operator, berth-console: cargo build --profile image \
         (cold: the release build of their dependencies, about 10-20 minutes on 2 cores)",
    );
    let rust = sources::rust_binaries(&work)?;

    step(
        3,
        n,
        "local-path-provisioner: tools/local-path-provisioner/build.sh (Go, cached by its pin)",
    );
    let provisioner = sources::tool("tools/local-path-provisioner/build.sh")?;

    step(
        4,
        n,
        "busybox: tools/busybox/build.sh (Debian's busybox-static, cached by its version)",
    );
    let busybox = sources::tool("tools/busybox/build.sh")?;

    step(
        5,
        n,
        "jupyter: tools/jupyter/build.sh (Debian packages and pinned PyPI wheels, cached by its pins)",
    );
    let jupyter = sources::tool("tools/jupyter/build.sh")?;

    step(6, n, "assembling the images");
    let definitions = [
        contents::pause(&pause)?,
        contents::berth(
            "model-server",
            &rust.model_server,
            "Berth's ONNX model server (KServe Open Inference Protocol v2 over HTTP)",
        )?,
        contents::berth(
            "model-fetch",
            &rust.model_fetch,
            "Berth's model download: s3:// and https:// into a volume, resumed and verified",
        )?,
        contents::berth(
            "operator",
            &rust.operator,
            "Berth's operator: Projects and MLModels; and berth-console",
        )?
        .with_binary("berth-console", &rust.console)?,
        contents::provisioner(&provisioner)?,
        contents::helper(&busybox)?,
        contents::jupyter(&jupyter)?,
    ];
    let mut entries = Vec::new();
    for (i, definition) in definitions.iter().enumerate() {
        let started = Instant::now();
        let image = definition.build(&stamp)?;
        let archive = out.join(format!("{}.tar", definition.name));
        write_atomically(
            &archive,
            &berth_images::archive::archive(&image, stamp.epoch)?,
        )?;
        eprintln!(
            "    ({}/{}) {:<24} {:>8} compressed  {}  {:.1} s",
            i + 1,
            definitions.len(),
            image.reference,
            human(image.compressed_size()),
            image.digest(),
            started.elapsed().as_secs_f64()
        );
        entries.push(Entry {
            name: definition.name.clone(),
            reference: image.reference.clone(),
            digest: image.digest().to_owned(),
            archive,
        });
    }
    stamp.drop_unused_layers();

    let json = out.join("images.json");
    write_atomically(&json, &serde_json::to_vec_pretty(&entries)?)?;
    write_atomically(
        &out.join("settings.yaml"),
        settings_yaml(&entries)?.as_bytes(),
    )?;
    eprintln!(
        "    {} images in {} ({:.1} s)",
        entries.len(),
        out.display(),
        begin.elapsed().as_secs_f64()
    );
    Ok(json)
}

fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds")),
        _ => Ok(0),
    }
}

/// `git rev-parse HEAD`, with `-dirty` when tracked files have uncommitted changes; `unknown`
/// outside a git checkout.
fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

/// The PlatformSettings of `settings.yaml`: the model images of `entries` by tag and digest.
fn settings(entries: &[Entry]) -> Result<serde_json::Value> {
    let pinned = |name: &str| -> Result<String> {
        entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| format!("{}@{}", e.reference, e.digest))
            .with_context(|| format!("images.json has no {name} image"))
    };
    Ok(serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "PlatformSettings",
        "metadata": {"name": "default"},
        "spec": {"models": {
            "fetchImage": pinned("model-fetch")?,
            "runtimeImages": {"onnx": pinned("model-server")?},
        }},
    }))
}

/// `settings.yaml`: [`settings`] with a comment saying how to apply it.
fn settings_yaml(entries: &[Entry]) -> Result<String> {
    Ok(format!(
        "# Written by `cargo xtask images`: Berth's model images by tag and digest, as built here.\n\
         # Apply it over deploy/settings/ with a field manager of its own (server-side apply):\n\
         #   kubectl apply --server-side --field-manager={SETTINGS_FIELD_MANAGER} -f settings.yaml\n{}",
        serde_yaml::to_string(&settings(entries)?)?
    ))
}

#[cfg(test)]
mod tests {
    use berth_api::mlmodel::berth_image;

    use super::*;

    fn entry(name: &str, digest: char) -> Entry {
        Entry {
            name: name.into(),
            reference: berth_image(name),
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            archive: PathBuf::from(format!("/x/{name}.tar")),
        }
    }

    /// The generated settings are a valid PlatformSettings whose model images are the built-in
    /// defaults (the tags) with the digests of this build: defaults and images cannot drift.
    #[test]
    fn settings_pin_the_default_model_images_by_digest() {
        let entries = [
            entry("pause", 'a'),
            entry("model-server", 'b'),
            entry("model-fetch", 'c'),
        ];
        let yaml = settings_yaml(&entries).unwrap();
        let parsed: berth_api::PlatformSettings = serde_yaml::from_str(&yaml).unwrap();
        let defaults = berth_api::ModelSettings::default();
        let models = parsed.spec.models;
        assert_eq!(
            models.fetch_image,
            format!("{}@sha256:{}", defaults.fetch_image, "c".repeat(64))
        );
        assert_eq!(
            models.runtime_images.onnx,
            format!("{}@sha256:{}", defaults.runtime_images.onnx, "b".repeat(64))
        );
        // The other settings are left to deploy/settings/: the fragment sets only these two.
        let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["spec"].as_object().unwrap().len(), 1);
        assert_eq!(value["spec"]["models"].as_object().unwrap().len(), 2);
        assert!(settings(&entries[..1]).is_err());
    }

    /// Each Dockerfile under deploy/images/ runs its image as `cargo xtask images` does: same
    /// user, entrypoint, command, working directory and environment. A change to one without the
    /// other fails here.
    #[test]
    fn dockerfiles_say_what_the_built_images_say() {
        for name in contents::NAMES {
            let path = repo_root().join(format!("deploy/images/{name}/Dockerfile"));
            let text = std::fs::read_to_string(&path).unwrap();
            // Continuation lines joined, then the final stage only.
            let text = text.replace("\\\n", " ");
            let last_stage = text.rsplit("\nFROM ").next().unwrap();
            let mut user = None;
            let mut workdir = None;
            let mut entrypoint: Vec<String> = vec![];
            let mut cmd: Vec<String> = vec![];
            let mut env = vec![];
            let mut source = None;
            for line in last_stage.lines().map(str::trim) {
                let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
                match instruction {
                    "USER" => user = Some(rest.to_owned()),
                    "WORKDIR" => workdir = Some(rest.to_owned()),
                    "ENTRYPOINT" => entrypoint = serde_json::from_str(rest).unwrap(),
                    "CMD" => cmd = serde_json::from_str(rest).unwrap(),
                    "ENV" => env.extend(rest.split_whitespace().map(str::to_owned)),
                    "LABEL" => {
                        for pair in rest.split_whitespace() {
                            if let Some(v) = pair.strip_prefix("org.opencontainers.image.source=") {
                                source = Some(v.trim_matches('"').to_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
            let run = contents::run_of(name).unwrap();
            let file = path.display();
            assert_eq!(user.as_deref(), Some(run.user.as_str()), "USER in {file}");
            assert_eq!(
                workdir.as_deref(),
                Some(run.working_dir.as_str()),
                "WORKDIR in {file}"
            );
            assert_eq!(entrypoint, run.entrypoint, "ENTRYPOINT in {file}");
            assert_eq!(cmd, run.cmd, "CMD in {file}");
            assert_eq!(env, run.env, "ENV in {file}");
            assert_eq!(
                source.as_deref(),
                Some(contents::SOURCE),
                "LABEL source in {file}"
            );
        }
    }
}
