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

mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use berth_images::image::{Image, RunConfig};
use berth_images::layer::{Content, Layer, Owner, Tree};
use serde::{Deserialize, Serialize};

use crate::repo_root;

/// Where the project's source lives, for the `org.opencontainers.image.source` label.
const SOURCE: &str = "https://github.com/berth-dev/berth";
/// The nonroot user and group every image runs as (distroless' `nonroot`).
pub const NONROOT: u64 = 65532;
const PATH: &str = "PATH=/usr/local/bin:/usr/bin:/bin";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the archives, images.json and settings.yaml (default: target/images).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One line of `images.json`.
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

/// `target/images` under the repository (or under CARGO_TARGET_DIR).
pub fn default_out() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("images")
}

/// What goes into the images and how they are labelled, fixed for one run.
struct Context_ {
    /// Every entry's time: `SOURCE_DATE_EPOCH`, or 0.
    epoch: u64,
    /// The commit the images are built from (`-dirty` with uncommitted changes).
    revision: String,
    /// Compressed layers by the digest of their tar, so an unchanged layer is not compressed again.
    layer_cache: PathBuf,
    used_layers: std::cell::RefCell<Vec<PathBuf>>,
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
    let cx = Context_ {
        epoch: source_date_epoch()?,
        revision: revision(),
        layer_cache: out.join(".layers"),
        used_layers: Default::default(),
    };
    std::fs::create_dir_all(&cx.layer_cache)?;
    let n = 2;

    step(1, n, "pause: gcc -static deploy/images/pause/pause.c");
    let pause = sources::pause(&work, berth_api::mlmodel::IMAGE_TAG)?;

    step(2, n, "assembling the images");
    let definitions = vec![pause_image(&pause)?];
    let mut entries = Vec::new();
    for (i, definition) in definitions.iter().enumerate() {
        let started = Instant::now();
        let image = definition.build(&cx)?;
        let archive = out.join(format!("{}.tar", definition.name));
        write_atomically(&archive, &berth_images::archive::archive(&image, cx.epoch)?)?;
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
    cx.drop_unused_layers();

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

/// Reads `images.json`.
pub fn read_entries(json: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", json.display()))
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

impl Context_ {
    /// The layer of `tree`, compressing it only when no earlier run did.
    fn layer(&self, tree: &Tree, comment: &str) -> Result<Layer> {
        let tar = tree.tar(self.epoch)?;
        let diff_id = berth_images::sha256_digest(&tar);
        let cached = self
            .layer_cache
            .join(diff_id.trim_start_matches("sha256:"))
            .with_extension("gz");
        self.used_layers.borrow_mut().push(cached.clone());
        if let Ok(gz) = std::fs::read(&cached) {
            return Ok(Layer::from_compressed(&tar, gz, comment));
        }
        let layer = Layer::from_tar(&tar, comment)?;
        write_atomically(&cached, &layer.blob.bytes)?;
        Ok(layer)
    }

    fn drop_unused_layers(&self) {
        let used = self.used_layers.borrow();
        if let Ok(entries) = std::fs::read_dir(&self.layer_cache) {
            for entry in entries.flatten() {
                if !used.contains(&entry.path()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// One image: its name, reference, labels, how it runs, and its layers' contents.
struct Definition {
    name: String,
    reference: String,
    version: String,
    licenses: String,
    description: String,
    run: RunConfig,
    /// Layers bottom first: a comment and the files.
    layers: Vec<(String, Tree)>,
}

impl Definition {
    fn build(&self, cx: &Context_) -> Result<Image> {
        let mut run = self.run.clone();
        let labels = [
            ("org.opencontainers.image.title", self.name.as_str()),
            ("org.opencontainers.image.description", &self.description),
            ("org.opencontainers.image.source", SOURCE),
            ("org.opencontainers.image.version", &self.version),
            ("org.opencontainers.image.revision", &cx.revision),
            ("org.opencontainers.image.licenses", &self.licenses),
        ];
        run.labels = labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>();
        let layers = self
            .layers
            .iter()
            .map(|(comment, tree)| cx.layer(tree, comment))
            .collect::<Result<Vec<_>>>()?;
        Ok(Image::build(&self.reference, &run, layers, cx.epoch)?)
    }
}

/// `/etc/passwd`, `/etc/group`, the nonroot user's home and a world-writable `/tmp`: the layer
/// every image starts from.
fn users_layer() -> Result<Tree> {
    let mut tree = Tree::new();
    tree.file(
        "/etc/passwd",
        Content::Bytes(
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
            )
            .into_bytes(),
        ),
        0o644,
    )?
    .file(
        "/etc/group",
        Content::Bytes(format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes()),
        0o644,
    )?
    .dir(
        "/home/nonroot",
        0o755,
        Owner::new(NONROOT, NONROOT, "nonroot", "nonroot"),
    )?
    .dir("/tmp", 0o1777, Owner::root())?;
    Ok(tree)
}

/// The machine's CA bundle (that one file), for TLS to object stores and the API server.
fn ca_layer() -> Result<Tree> {
    let mut tree = Tree::new();
    tree.file(CA_BUNDLE, Content::Path(CA_BUNDLE.into()), 0o644)?;
    Ok(tree)
}

/// `binary` at `path` and the shared libraries it loads, at the paths ldd resolves them to here.
fn binary_layer(binary: &Path, path: &str) -> Result<Tree> {
    let mut tree = Tree::new();
    tree.file(path, Content::Path(binary.to_owned()), 0o755)?;
    for library in sources::shared_libraries(binary)? {
        let name = library.to_string_lossy().into_owned();
        tree.file(&name, Content::Path(library), 0o755)?;
    }
    Ok(tree)
}

fn run_config(entrypoint: &[&str], cmd: &[&str], working_dir: &str, env: &[&str]) -> RunConfig {
    RunConfig {
        user: format!("{NONROOT}:{NONROOT}"),
        entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        env: env.iter().map(|s| (*s).to_owned()).collect(),
        working_dir: working_dir.to_owned(),
        labels: BTreeMap::new(),
    }
}

/// The sandbox image: the static pause binary and the users, nothing else.
fn pause_image(binary: &Path) -> Result<Definition> {
    Ok(Definition {
        name: "pause".into(),
        reference: berth_api::mlmodel::berth_image("pause"),
        version: berth_api::mlmodel::IMAGE_TAG.into(),
        licenses: "Apache-2.0".into(),
        description: "The pod sandbox: holds the pod's namespaces, reaps orphans, exits on SIGTERM"
            .into(),
        run: run_config(&["/pause"], &[], "/", &[PATH]),
        layers: vec![
            ("users".into(), users_layer()?),
            ("pause".into(), binary_layer(binary, "/pause")?),
        ],
    })
}

/// `settings.yaml`: the model images of `entries` by tag and digest, as a PlatformSettings that
/// server-side apply merges over `deploy/settings/default.yaml`.
fn settings_yaml(entries: &[Entry]) -> Result<String> {
    let pinned = |name: &str| -> Option<String> {
        entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| format!("{}@{}", e.reference, e.digest))
    };
    let mut models = serde_json::Map::new();
    if let Some(fetch) = pinned("model-fetch") {
        models.insert("fetchImage".into(), fetch.into());
    }
    if let Some(onnx) = pinned("model-server") {
        models.insert("runtimeImages".into(), serde_json::json!({ "onnx": onnx }));
    }
    let settings = serde_json::json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "PlatformSettings",
        "metadata": {"name": "default"},
        "spec": {"models": models},
    });
    Ok(format!(
        "# Written by `cargo xtask images`: Berth's model images by tag and digest, as built here.\n\
         # Apply it over deploy/settings/ with a field manager of its own (server-side apply):\n\
         #   kubectl apply --server-side --field-manager=berth-images -f {}\n{}",
        "target/images/settings.yaml",
        serde_yaml::to_string(&settings)?
    ))
}
