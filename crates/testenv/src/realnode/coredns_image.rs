//! The cluster DNS image: the CoreDNS that `tools/node/build.sh` built (static, CGO off) and a
//! `nonroot` user, as an OCI archive made with `berth-images` the way `cargo xtask images` makes
//! Berth's own. Cached beside the binary's build, keyed by it: built once per CoreDNS build.

use std::path::{Path, PathBuf};

use berth_images::archive::archive;
use berth_images::image::{Image, RunConfig};
use berth_images::layer::{Content, Layer, Owner, Tree};

use crate::Error;

use super::images::ImageRef;

/// The user every image runs as (`nonroot`).
const NONROOT: u64 = 65532;
/// A fixed time for the layers and the configuration, so the same binary gives the same digest.
const EPOCH: u64 = 0;

fn image_error(e: berth_images::Error) -> Error {
    Error::RealNode(format!("building the CoreDNS image: {e}"))
}

/// The image's reference: `berth.dev/coredns:<version>`, the version from the binary.
fn reference(binary: &Path) -> Result<String, Error> {
    let output = std::process::Command::new(binary)
        .arg("-version")
        .output()
        .map_err(|e| Error::io(format!("running {} -version", binary.display()), e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("CoreDNS-"))
        .ok_or_else(|| {
            Error::RealNode(format!("{} -version printed {text:?}", binary.display()))
        })?;
    Ok(format!("berth.dev/coredns:{}", version.trim()))
}

/// The CoreDNS image for `binary`, built into the cache unless it is there.
pub fn coredns_image(binary: &Path) -> Result<ImageRef, Error> {
    // The binary's real path names its build (`coredns-<key>/coredns`): the image follows it.
    let real = std::fs::canonicalize(binary)
        .map_err(|e| Error::io(format!("resolving {}", binary.display()), e))?;
    let dir: PathBuf = real
        .parent()
        .map(|p| p.join("image"))
        .ok_or_else(|| Error::RealNode(format!("{} has no directory", real.display())))?;
    let archive_path = dir.join("coredns.tar");
    let digest_path = dir.join("digest");
    let reference = reference(&real)?;
    if let (Ok(digest), true) = (std::fs::read_to_string(&digest_path), archive_path.exists()) {
        return Ok(ImageRef {
            name: super::addons::COREDNS_IMAGE.to_owned(),
            reference,
            digest: digest.trim().to_owned(),
            archive: archive_path,
        });
    }
    let mut users = Tree::new();
    users
        .file(
            "/etc/passwd",
            Content::Bytes(
                format!(
                    "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
                )
                .into_bytes(),
            ),
            0o644,
        )
        .and_then(|t| {
            t.file(
                "/etc/group",
                Content::Bytes(format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes()),
                0o644,
            )
        })
        .and_then(|t| {
            t.dir(
                "/home/nonroot",
                0o755,
                Owner::new(NONROOT, NONROOT, "nonroot", "nonroot"),
            )
        })
        .map_err(image_error)?;
    let mut program = Tree::new();
    program
        .file("/coredns", Content::Path(real.clone()), 0o755)
        .map_err(image_error)?;
    let layers = vec![
        Layer::from_tree(&users, EPOCH, "users").map_err(image_error)?,
        Layer::from_tree(&program, EPOCH, "coredns").map_err(image_error)?,
    ];
    let run = RunConfig {
        user: format!("{NONROOT}:{NONROOT}"),
        entrypoint: vec!["/coredns".into()],
        cmd: Vec::new(),
        env: Vec::new(),
        working_dir: "/".into(),
        labels: Default::default(),
    };
    let image = Image::build(&reference, &run, layers, EPOCH).map_err(image_error)?;
    let bytes = archive(&image, EPOCH).map_err(image_error)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join("coredns.tar.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &archive_path)
        .map_err(|e| Error::io(format!("writing {}", archive_path.display()), e))?;
    std::fs::write(&digest_path, image.digest())
        .map_err(|e| Error::io(format!("writing {}", digest_path.display()), e))?;
    Ok(ImageRef {
        name: super::addons::COREDNS_IMAGE.to_owned(),
        reference,
        digest: image.digest().to_owned(),
        archive: archive_path,
    })
}
