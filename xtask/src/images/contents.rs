//! What each image holds and how it runs: the layers (users, CA bundle, binary and libraries) and
//! the run configuration of every image `cargo xtask images` builds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_images::image::{Image, RunConfig};
use berth_images::layer::{Content, Layer, Owner, Tree};

use super::sources;

/// Where the project's source lives, for the `org.opencontainers.image.source` label.
pub const SOURCE: &str = "https://github.com/berth-dev/berth";
/// The nonroot user and group every image runs as (distroless' `nonroot`).
pub const NONROOT: u64 = 65532;
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The images, in the order they are built and listed in `images.json`.
#[cfg(test)]
pub const NAMES: [&str; 7] = [
    "pause",
    "model-server",
    "model-fetch",
    "operator",
    "local-path-provisioner",
    "helper",
    "jupyter",
];

/// Where Berth's binary `berth-<name>` lives in its image (on PATH, so a pod's `command` may name
/// it alone, as the model download Job does).
fn berth_binary_path(name: &str) -> String {
    format!("/usr/local/bin/berth-{name}")
}

/// The model server's glibc malloc tuning (see [`run_of`]).
pub const MODEL_SERVER_MALLOC: &str = "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072";

/// How image `name` runs: user, entrypoint, command, environment (no secrets) and working
/// directory. The Dockerfiles under deploy/images/ say the same (a test compares them).
pub fn run_of(name: &str) -> Result<RunConfig> {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let path = "PATH=/usr/local/bin:/usr/bin:/bin";
    let ca = format!("SSL_CERT_FILE={CA_BUNDLE}");
    let (entrypoint, cmd, env, working_dir) = match name {
        "pause" => (strings(&["/pause"]), vec![], strings(&[path]), "/"),
        // glibc's malloc keeps freed blocks up to 32 MiB in its heap once a larger block was
        // freed (its dynamic mmap threshold), so a server that decodes large tensors stays at
        // its peak: a fixed threshold of 128 KiB gives every large tensor back when it is
        // freed, and the memory budget then bounds the resident set (bench/model-server/flood.sh:
        // 429 MiB against a 640 MiB budget, 900 MiB without it). See mallopt(3), M_MMAP_THRESHOLD.
        "model-server" => (
            vec![berth_binary_path(name)],
            vec![],
            vec![path.to_owned(), ca, MODEL_SERVER_MALLOC.to_owned()],
            "/home/nonroot",
        ),
        "model-fetch" | "operator" => (
            vec![berth_binary_path(name)],
            vec![],
            vec![path.to_owned(), ca],
            "/home/nonroot",
        ),
        "local-path-provisioner" => (
            strings(&["/usr/local/bin/local-path-provisioner"]),
            vec![],
            vec![path.to_owned(), ca],
            "/home/nonroot",
        ),
        // Like the upstream busybox image: no entrypoint, `sh` as the command.
        "helper" => (
            vec![],
            strings(&["/bin/sh"]),
            strings(&["PATH=/bin"]),
            "/home/nonroot",
        ),
        // tini reaps the kernels' and terminals' orphans; start-notebook runs JupyterLab.
        "jupyter" => (
            strings(&["/usr/bin/tini", "-g", "--", "/usr/local/bin/start-notebook"]),
            vec![],
            strings(&["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/jovyan"]),
            "/home/jovyan",
        ),
        other => bail!("no image is called {other}"),
    };
    Ok(RunConfig {
        user: format!("{NONROOT}:{NONROOT}"),
        entrypoint,
        cmd,
        env,
        working_dir: working_dir.to_owned(),
        labels: BTreeMap::new(),
    })
}

/// What is the same for every image of one run.
pub struct Stamp {
    /// Every entry's time, and the config's `created`: `SOURCE_DATE_EPOCH`, or 0.
    pub epoch: u64,
    /// The commit the images are built from (`-dirty` with uncommitted changes).
    pub revision: String,
    /// Compressed layers `<tar's sha256>.gz`, shared by every checkout and output directory:
    /// [`layer_cache`].
    pub layer_cache: PathBuf,
}

/// How long a compressed layer no run used stays in the shared cache.
const UNUSED_LAYER_KEPT: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// `<Berth cache>/layers/<gzip fingerprint>`: the compressed layers, by the digest of their tar,
/// of this compressor ([`berth_images::layer::gzip_fingerprint`]), so that a layer compressed on
/// another run, checkout or fresh clone is the stream this run would make, and is never made
/// again (the Jupyter layer takes seconds to minutes).
pub fn layer_cache() -> Result<PathBuf> {
    let dir = sources::cache_dir()
        .join("layers")
        .join(berth_images::layer::gzip_fingerprint()?);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

impl Stamp {
    /// The layer of `tree`, compressing it only when no earlier run did.
    fn layer(&self, tree: &Tree, comment: &str) -> Result<Layer> {
        let tar = tree.tar(self.epoch)?;
        let diff_id = berth_images::sha256_digest(&tar);
        let cached = self
            .layer_cache
            .join(format!("{}.gz", diff_id.trim_start_matches("sha256:")));
        if let Ok(gz) = std::fs::read(&cached) {
            // Used now: the pruning below goes by modification time.
            if let Ok(file) = std::fs::File::options().append(true).open(&cached) {
                let _ = file.set_modified(std::time::SystemTime::now());
            }
            return Ok(Layer::from_compressed(&tar, gz, comment));
        }
        let started = std::time::Instant::now();
        let layer = Layer::from_tar(&tar, comment)?;
        if tar.len() > berth_images::layer::LARGE_LAYER {
            eprintln!(
                "    compressed the {:.0} MiB {comment} layer at gzip level {} in {:.1} s",
                tar.len() as f64 / f64::from(1 << 20),
                berth_images::layer::gzip_level(tar.len()),
                started.elapsed().as_secs_f64()
            );
        }
        // Another run may write the same layer at the same time: a temporary name of its own.
        let tmp = cached.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, &layer.blob.bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &cached).with_context(|| format!("writing {}", cached.display()))?;
        Ok(layer)
    }

    /// Removes the shared cache's layers that no run used for [`UNUSED_LAYER_KEPT`], and the
    /// directories of other compressors once they are empty.
    pub fn drop_unused_layers(&self) {
        let Some(all) = self.layer_cache.parent() else {
            return;
        };
        let Ok(compressors) = std::fs::read_dir(all) else {
            return;
        };
        for dir in compressors.flatten() {
            let Ok(layers) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for layer in layers.flatten() {
                let unused = layer
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > UNUSED_LAYER_KEPT);
                if unused {
                    let _ = std::fs::remove_file(layer.path());
                }
            }
            if dir.path() != self.layer_cache {
                let _ = std::fs::remove_dir(dir.path());
            }
        }
    }
}

/// One image: its name, reference, labels, how it runs, and its layers' contents.
pub struct Definition {
    pub name: String,
    pub reference: String,
    version: String,
    licenses: String,
    description: String,
    /// Layers bottom first: a comment and the files.
    layers: Vec<(String, Tree)>,
}

impl Definition {
    /// The same image with Berth's binary `binary` (e.g. `berth-console`) beside the first, in
    /// a layer of its own on PATH (`/usr/local/bin/<binary>`): a pod runs it by `command`.
    pub fn with_binary(mut self, binary: &str, path: &Path) -> Result<Self> {
        let layer = binary_layer(path, &format!("/usr/local/bin/{binary}"))?;
        self.layers.push((binary.to_owned(), layer));
        Ok(self)
    }

    pub fn build(&self, stamp: &Stamp) -> Result<Image> {
        let mut run = run_of(&self.name)?;
        let labels = [
            ("org.opencontainers.image.title", self.name.as_str()),
            ("org.opencontainers.image.description", &self.description),
            ("org.opencontainers.image.source", SOURCE),
            ("org.opencontainers.image.version", &self.version),
            ("org.opencontainers.image.revision", &stamp.revision),
            ("org.opencontainers.image.licenses", &self.licenses),
        ];
        run.labels = labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let layers = self
            .layers
            .iter()
            .map(|(comment, tree)| stamp.layer(tree, comment))
            .collect::<Result<Vec<_>>>()?;
        Ok(Image::build(&self.reference, &run, layers, stamp.epoch)?)
    }
}

/// `/etc/passwd`, `/etc/group`, the nonroot user's home and a world-writable `/tmp`: the layer
/// every image starts from (the same bytes in each, so a node stores it once).
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

/// The first line of `dir/file`, as the tools/ scripts write their pins.
fn pin(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// The sandbox image: the static pause binary and the users, nothing else.
pub fn pause(binary: &Path) -> Result<Definition> {
    Ok(Definition {
        name: "pause".into(),
        reference: berth_api::mlmodel::berth_image("pause"),
        version: berth_api::mlmodel::IMAGE_TAG.into(),
        licenses: "Apache-2.0".into(),
        description: "The pod sandbox: holds the pod's namespaces, reaps orphans, exits on SIGTERM"
            .into(),
        layers: vec![
            ("users".into(), users_layer()?),
            ("pause".into(), binary_layer(binary, "/pause")?),
        ],
    })
}

/// The image of Berth's binary `berth-<name>`: the binary and its libraries, the users and the
/// CA bundle.
pub fn berth(name: &str, binary: &Path, description: &str) -> Result<Definition> {
    Ok(Definition {
        name: name.into(),
        reference: berth_api::mlmodel::berth_image(name),
        version: berth_api::mlmodel::IMAGE_TAG.into(),
        licenses: "Apache-2.0".into(),
        description: description.into(),
        layers: vec![
            ("users".into(), users_layer()?),
            ("ca-certificates".into(), ca_layer()?),
            (
                format!("berth-{name}"),
                binary_layer(binary, &berth_binary_path(name))?,
            ),
        ],
    })
}

/// rancher/local-path-provisioner (static), tagged with its module version. Its Deployment gives
/// the command line (`local-path-provisioner start --config …`).
pub fn provisioner(dir: &Path) -> Result<Definition> {
    let version = pin(dir, "VERSION")?;
    Ok(Definition {
        name: "local-path-provisioner".into(),
        reference: format!(
            "{}/local-path-provisioner:{version}",
            berth_api::mlmodel::IMAGE_REGISTRY
        ),
        version,
        licenses: "Apache-2.0".into(),
        description: "rancher/local-path-provisioner, built from its Go module: node-local \
                      PersistentVolumes"
            .into(),
        layers: vec![
            ("users".into(), users_layer()?),
            ("ca-certificates".into(), ca_layer()?),
            (
                "local-path-provisioner".into(),
                binary_layer(
                    &dir.join("local-path-provisioner"),
                    "/usr/local/bin/local-path-provisioner",
                )?,
            ),
        ],
    })
}

/// A static busybox with every applet linked in /bin: the provisioner's helper pods (`sh`,
/// `mkdir`, `rm`) and connection checks (`wget`, `nc`, `nslookup`, `timeout`).
pub fn helper(dir: &Path) -> Result<Definition> {
    let mut tree = Tree::new();
    tree.file("/bin/busybox", Content::Path(dir.join("busybox")), 0o755)?;
    let applets = std::fs::read_to_string(dir.join("APPLETS"))
        .with_context(|| format!("reading {}", dir.join("APPLETS").display()))?;
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            tree.symlink(&format!("/bin/{applet}"), "busybox")?;
        }
    }
    Ok(Definition {
        name: "helper".into(),
        reference: berth_api::mlmodel::berth_image("helper"),
        version: berth_api::mlmodel::IMAGE_TAG.into(),
        licenses: "GPL-2.0-only".into(),
        description: format!(
            "A shell and tools for helper pods and connection checks: busybox {} (Debian's \
             busybox-static)",
            pin(dir, "VERSION")?
        ),
        layers: vec![("users".into(), users_layer()?), ("busybox".into(), tree)],
    })
}

/// Berth's Jupyter image: the root filesystem tools/jupyter/build.sh made (Debian 12's
/// python3.11, JupyterLab and its dependencies from pinned PyPI wheels, tini, the user jovyan
/// 65532 with HOME /home/jovyan), as one layer. Every file is root's, and setuid/setgid bits are
/// dropped (the notebook runs as 65532 with no privilege escalation).
pub fn jupyter(dir: &Path) -> Result<Definition> {
    let rootfs = dir.join("rootfs");
    let mut tree = Tree::new();
    add_tree(&mut tree, &rootfs, &rootfs)?;
    tree.dir("/tmp", 0o1777, Owner::root())?;
    Ok(Definition {
        name: "jupyter".into(),
        reference: berth_api::mlmodel::berth_image("jupyter"),
        version: berth_api::mlmodel::IMAGE_TAG.into(),
        licenses: "BSD-3-Clause AND PSF-2.0 AND GPL-2.0-or-later".into(),
        description: format!(
            "JupyterLab {} on Debian 12's python3.11, for Berth's Notebooks",
            pin(dir, "VERSION")?
        ),
        layers: vec![("jupyter".into(), tree)],
    })
}

/// Every directory, file and symbolic link under `dir`, at its path relative to `root`.
fn add_tree(tree: &mut Tree, root: &Path, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let inside = format!(
            "/{}",
            path.strip_prefix(root)
                .with_context(|| format!("{} is outside {}", path.display(), root.display()))?
                .to_string_lossy()
        );
        let meta = std::fs::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o1777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            tree.symlink(&inside, &target.to_string_lossy())?;
        } else if meta.is_dir() {
            tree.dir(&inside, mode, Owner::root())?;
            add_tree(tree, root, &path)?;
        } else if meta.is_file() {
            tree.file(&inside, Content::Path(path), mode)?;
        }
    }
    Ok(())
}
