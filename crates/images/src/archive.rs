//! One image as an OCI image-layout tar archive, and a reader that checks one.
//!
//! The archive holds (image-spec `image-layout.md`): `oci-layout`, `index.json`, and every blob
//! under `blobs/sha256/<hex>`; plus Docker's `manifest.json`, so that a `docker load` that does not
//! read OCI layouts loads it too.
//!
//! `index.json` lists the manifest twice, for linux/amd64 (the build machine's platform):
//! - annotated with the reference, as `org.opencontainers.image.ref.name` (the OCI name, read by
//!   podman and skopeo) and `io.containerd.image.name` (which `ctr images import` prefers, and uses
//!   unchanged: containerd 2.2 `client/import.go`, `imageName`);
//! - annotated `io.containerd.image.name: <repository>@<digest>`, so the import also creates the
//!   digest name that the CRI plugin resolves a `repository:tag@digest` pod image by (it drops the
//!   tag: `docker.ParseDockerRef`, then looks the name up among the images it knows; a registry
//!   pull creates that name, an import creates only the names the index gives).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use oci_spec::image::{
    ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, OciLayoutBuilder,
    PlatformBuilder,
};
use serde::{Deserialize, Serialize};

use crate::image::Image;
use crate::layer::{Content, Owner, Tree};
use crate::{Error, Result, json, sha256_digest};

/// The annotation containerd's import names an image by.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation of a manifest's reference in an image layout.
pub const REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;

/// One entry of Docker's `manifest.json` (the `docker save` format).
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct DockerManifest {
    pub config: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<String>,
}

/// `berth.dev/pause` of `berth.dev/pause:0.1.0` (a `:` after the last `/` starts the tag).
pub fn repository(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    match reference.rfind(':') {
        Some(colon) if colon > reference.rfind('/').unwrap_or(0) => &reference[..colon],
        _ => reference,
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// The index of an image archive: the manifest by its reference, and by its digest.
pub fn index(image: &Image) -> Result<ImageIndex> {
    let platform = {
        let config: ImageConfiguration =
            serde_json::from_slice(&image.config.bytes).map_err(|source| Error::Json {
                context: "reading back the image configuration".into(),
                source,
            })?;
        PlatformBuilder::default()
            .architecture(config.architecture().clone())
            .os(config.os().clone())
            .build()?
    };
    let annotated = |pairs: &[(&str, &str)]| -> Result<_> {
        let mut descriptor = image.manifest.descriptor()?;
        descriptor.set_platform(Some(platform.clone()));
        descriptor.set_annotations(Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        ));
        Ok(descriptor)
    };
    let by_digest = format!("{}@{}", repository(&image.reference), image.digest());
    Ok(ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![
            annotated(&[
                (REF_NAME, &image.reference),
                (CONTAINERD_IMAGE_NAME, &image.reference),
            ])?,
            annotated(&[(CONTAINERD_IMAGE_NAME, &by_digest)])?,
        ])
        .build()?)
}

/// The archive's files: path to bytes.
fn files(image: &Image) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for blob in [&image.manifest, &image.config]
        .into_iter()
        .chain(image.layers.iter().map(|l| &l.blob))
    {
        files.insert(blob_path(&blob.digest), blob.bytes.clone());
    }
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    files.insert("oci-layout".into(), json::canonical(&layout, "oci-layout")?);
    files.insert(
        "index.json".into(),
        json::canonical(&index(image)?, "index.json")?,
    );
    let docker = [DockerManifest {
        config: blob_path(&image.config.digest),
        repo_tags: vec![image.reference.clone()],
        layers: image
            .layers
            .iter()
            .map(|l| blob_path(&l.blob.digest))
            .collect(),
    }];
    files.insert(
        "manifest.json".into(),
        json::canonical(&docker, "manifest.json")?,
    );
    Ok(files)
}

/// The archive's bytes: a tar with sorted entries, all at `mtime`, owned by root, mode 0644.
pub fn archive(image: &Image, mtime: u64) -> Result<Vec<u8>> {
    let mut tree = Tree::new();
    tree.dir("blobs/sha256", 0o755, Owner::root())?;
    for (path, bytes) in files(image)? {
        tree.file(&path, Content::Bytes(bytes), 0o644)?;
    }
    tree.tar(mtime)
}

/// An archive read back, every digest and size checked.
#[derive(Debug)]
pub struct ReadArchive {
    pub index: ImageIndex,
    /// The names containerd's import gives the image (`io.containerd.image.name`), in index order.
    pub names: Vec<String>,
    /// The `org.opencontainers.image.ref.name` annotations, in index order.
    pub ref_names: Vec<String>,
    /// The manifest's digest, `sha256:<hex>`.
    pub digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// Each layer's uncompressed tar, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// Docker's `manifest.json`.
    pub docker: Vec<DockerManifest>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        context: format!("parsing {what}"),
        source,
    })
}

/// Reads an archive written by [`archive`] (or any single-image OCI layout archive) and checks
/// it: every blob's bytes match its name, every descriptor's digest and size match its blob, each
/// layer decompresses to the tar whose digest the config lists, and `manifest.json` agrees.
pub fn read(bytes: &[u8]) -> Result<ReadArchive> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(bytes);
    for entry in tar
        .entries()
        .map_err(|e| Error::io("reading the archive", e))?
    {
        let mut entry = entry.map_err(|e| Error::io("reading the archive", e))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| Error::io("reading an archive path", e))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| Error::io(format!("reading {path}"), e))?;
        files.insert(path, data);
    }
    let file = |path: &str| {
        files
            .get(path)
            .ok_or_else(|| invalid(format!("the archive has no {path}")))
    };
    for (path, data) in &files {
        if let Some(hex) = path.strip_prefix("blobs/sha256/")
            && sha256_digest(data) != format!("sha256:{hex}")
        {
            return Err(invalid(format!("{path} does not hash to its name")));
        }
    }
    let blob = |digest: &str, size: u64, what: &str| -> Result<&Vec<u8>> {
        let data = file(&blob_path(digest))?;
        if data.len() as u64 != size {
            return Err(invalid(format!(
                "{what} {digest} is {} bytes, its descriptor says {size}",
                data.len()
            )));
        }
        Ok(data)
    };
    let layout: serde_json::Value = parse(file("oci-layout")?, "oci-layout")?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(invalid(format!("unexpected oci-layout {layout}")));
    }
    let index: ImageIndex = parse(file("index.json")?, "index.json")?;
    let first = index
        .manifests()
        .first()
        .ok_or_else(|| invalid("index.json lists no manifest"))?;
    let digest = first.digest().to_string();
    let mut names = Vec::new();
    let mut ref_names = Vec::new();
    for descriptor in index.manifests() {
        if descriptor.digest().to_string() != digest {
            return Err(invalid("index.json lists more than one image"));
        }
        let annotations = descriptor.annotations().clone().unwrap_or_default();
        names.extend(annotations.get(CONTAINERD_IMAGE_NAME).cloned());
        ref_names.extend(annotations.get(REF_NAME).cloned());
    }
    let manifest: ImageManifest = parse(blob(&digest, first.size(), "manifest")?, "the manifest")?;
    let config_descriptor = manifest.config();
    let config: ImageConfiguration = parse(
        blob(
            config_descriptor.digest().as_ref(),
            config_descriptor.size(),
            "config",
        )?,
        "the image configuration",
    )?;
    if manifest.layers().len() != config.rootfs().diff_ids().len() {
        return Err(invalid(
            "the manifest and the config list different numbers of layers",
        ));
    }
    let mut layers = Vec::new();
    for (descriptor, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
        let compressed = blob(descriptor.digest().as_ref(), descriptor.size(), "layer")?;
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut tar)
            .map_err(|e| Error::io(format!("decompressing layer {}", descriptor.digest()), e))?;
        if &sha256_digest(&tar) != diff_id {
            return Err(invalid(format!(
                "layer {} does not decompress to diff_id {diff_id}",
                descriptor.digest()
            )));
        }
        layers.push(tar);
    }
    let docker: Vec<DockerManifest> = parse(file("manifest.json")?, "manifest.json")?;
    let expected_layers: Vec<String> = manifest
        .layers()
        .iter()
        .map(|d| blob_path(d.digest().as_ref()))
        .collect();
    if docker.len() != 1
        || docker[0].config != blob_path(config_descriptor.digest().as_ref())
        || docker[0].layers != expected_layers
    {
        return Err(invalid(
            "manifest.json does not describe the image in index.json",
        ));
    }
    Ok(ReadArchive {
        index,
        names,
        ref_names,
        digest,
        manifest,
        config,
        layers,
        docker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RunConfig;
    use crate::layer::Layer;

    fn sample() -> Image {
        let mut app = Tree::new();
        app.file("/pause", Content::Bytes(b"\x7fELF".to_vec()), 0o755)
            .unwrap();
        let run = RunConfig {
            user: "65532:65532".into(),
            entrypoint: vec!["/pause".into()],
            working_dir: "/".into(),
            ..RunConfig::default()
        };
        Image::build(
            "berth.dev/pause:0.1.0",
            &run,
            vec![Layer::from_tree(&app, 0, "pause").unwrap()],
            0,
        )
        .unwrap()
    }

    #[test]
    fn repository_drops_tag_and_digest_but_not_a_registry_port() {
        assert_eq!(repository("berth.dev/pause:0.1.0"), "berth.dev/pause");
        assert_eq!(repository("berth.dev/pause"), "berth.dev/pause");
        assert_eq!(repository("127.0.0.1:5000/pause"), "127.0.0.1:5000/pause");
        assert_eq!(repository("127.0.0.1:5000/pause:3"), "127.0.0.1:5000/pause");
        assert_eq!(repository("berth.dev/pause:1@sha256:ab"), "berth.dev/pause");
    }

    #[test]
    fn archive_reads_back_with_both_names_and_every_blob() {
        let image = sample();
        let bytes = archive(&image, 0).unwrap();
        let read = read(&bytes).unwrap();
        assert_eq!(read.digest, image.digest());
        assert_eq!(
            read.names,
            [
                "berth.dev/pause:0.1.0".to_owned(),
                format!("berth.dev/pause@{}", image.digest())
            ]
        );
        assert_eq!(read.ref_names, ["berth.dev/pause:0.1.0"]);
        for descriptor in read.index.manifests() {
            let platform = descriptor.platform().as_ref().unwrap();
            assert_eq!(platform.os(), &oci_spec::image::Os::default());
            assert_eq!(platform.architecture(), &oci_spec::image::Arch::default());
            assert_eq!(descriptor.media_type(), &MediaType::ImageManifest);
        }
        assert_eq!(read.docker[0].repo_tags, ["berth.dev/pause:0.1.0"]);
        assert_eq!(read.layers.len(), 1);
        let mut layer = tar::Archive::new(read.layers[0].as_slice());
        let paths: Vec<String> = layer
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["pause"]);
        // The archive itself is reproducible, entry by entry.
        assert_eq!(bytes, archive(&sample(), 0).unwrap());
        let mut outer = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = outer
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"oci-layout".to_owned()));
    }

    #[test]
    fn a_tampered_blob_is_refused() {
        let image = sample();
        let mut bytes = archive(&image, 0).unwrap();
        // Flip one byte inside the layer's blob: its file no longer hashes to its name.
        let blob = &image.layers[0].blob.bytes;
        let at = bytes
            .windows(blob.len())
            .position(|w| w == blob.as_slice())
            .unwrap()
            + 12;
        bytes[at] = bytes[at].wrapping_add(1);
        let err = read(&bytes).unwrap_err().to_string();
        assert!(err.contains("does not hash to its name"), "{err}");
    }
}
