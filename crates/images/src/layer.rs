//! One image layer: a tree of files written as a reproducible tar archive, then gzip.
//!
//! Reproducible means the bytes depend only on the paths, contents, modes and owners given:
//! - entries are written in byte order of their paths, each directory before what it holds, and
//!   every parent directory is written (root-owned, 0755, unless given);
//! - every entry has the same modification time (the caller's, normally `SOURCE_DATE_EPOCH` or 0);
//! - owners are numeric IDs with fixed names (`root`, or the name given), never the builder's;
//! - gzip has no timestamp and no file name, at a level fixed by the tar's size ([`gzip_level`]),
//!   by one compressor (zlib-rs, whatever other crates of the build ask flate2 for).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use flate2::{Compression, GzBuilder};
use oci_spec::image::MediaType;

use crate::{Blob, Error, Result, sha256_digest};

/// A file's owner in the image: numeric IDs and the names written into the tar header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
    pub user: String,
    pub group: String,
}

impl Owner {
    /// `root:root` (0:0), the owner of everything not said otherwise.
    pub fn root() -> Self {
        Self::new(0, 0, "root", "root")
    }

    pub fn new(uid: u64, gid: u64, user: &str, group: &str) -> Self {
        Self {
            uid,
            gid,
            user: user.to_owned(),
            group: group.to_owned(),
        }
    }
}

/// Where a file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The bytes of this file on the build machine, read when the layer is written (symbolic
    /// links followed).
    Path(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir { mode: u32, owner: Owner },
    File { content: Content, mode: u32 },
    Symlink { target: String },
}

/// The files of one layer, by absolute path in the image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// `/a/b/` or `a/b` as `a/b`; rejects empty paths and `.`/`..` components, which would escape or
/// alias in an image.
fn normalize(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(Error::Invalid(format!(
            "{path:?} is not a valid path inside an image (absolute, without . or ..)"
        )));
    }
    Ok(parts.join("/"))
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<&mut Self> {
        let path = normalize(path)?;
        // Every ancestor is (or becomes) a directory.
        let mut ancestor = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !ancestor.is_empty() {
                ancestor.push('/');
            }
            ancestor.push_str(part);
            match self.nodes.get(&ancestor) {
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(Error::Invalid(format!(
                        "/{ancestor} is a file or link, so /{path} cannot be under it"
                    )));
                }
                None => {
                    self.nodes.insert(
                        ancestor.clone(),
                        Node::Dir {
                            mode: 0o755,
                            owner: Owner::root(),
                        },
                    );
                }
            }
        }
        match (self.nodes.get(&path), &node) {
            (None, _) => {}
            // Saying a directory again (to set its mode or owner) replaces the implied one.
            (Some(Node::Dir { .. }), Node::Dir { .. }) => {}
            (Some(_), _) => return Err(Error::Invalid(format!("/{path} is given twice"))),
        }
        self.nodes.insert(path, node);
        Ok(self)
    }

    /// A directory with this mode (permission bits, such as 0o755 or 0o1777) and owner.
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<&mut Self> {
        self.insert(path, Node::Dir { mode, owner })
    }

    /// A root-owned regular file with this mode.
    pub fn file(&mut self, path: &str, content: Content, mode: u32) -> Result<&mut Self> {
        self.insert(path, Node::File { content, mode })
    }

    /// A symbolic link to `target` (absolute or relative, kept as given).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// Every path in the tree (without the leading `/`), in the order they are written.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// The uncompressed tar archive; every entry's modification time is `mtime` (seconds since
    /// the Unix epoch).
    pub fn tar(&self, mtime: u64) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        let root = Owner::root();
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            let (owner, mode) = match node {
                Node::Dir { mode, owner } => (owner, *mode),
                Node::File { mode, .. } => (&root, *mode),
                Node::Symlink { .. } => (&root, 0o777),
            };
            header.set_uid(owner.uid);
            header.set_gid(owner.gid);
            header
                .set_username(&owner.user)
                .map_err(|e| Error::io(format!("owner of /{path}"), e))?;
            header
                .set_groupname(&owner.group)
                .map_err(|e| Error::io(format!("group of /{path}"), e))?;
            header.set_mode(mode);
            let written = match node {
                Node::Dir { .. } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Node::File { content, .. } => {
                    let bytes = match content {
                        Content::Bytes(bytes) => bytes.clone(),
                        Content::Path(source) => std::fs::read(source).map_err(|e| {
                            Error::io(format!("reading {} for /{path}", source.display()), e)
                        })?,
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)
                }
            };
            written.map_err(|e| Error::io(format!("writing /{path} into the layer"), e))?;
        }
        builder
            .into_inner()
            .map_err(|e| Error::io("finishing the layer's tar", e))
    }
}

/// A finished layer: the gzip blob and the digest of the uncompressed tar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The gzip-compressed tar, `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub blob: Blob,
    /// `sha256:<hex>` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// What the layer holds, for the image's history (`docker history`).
    pub comment: String,
}

impl Layer {
    /// Compresses `tar` ([`gzip`]: no timestamp, no name, the level [`gzip_level`] gives) into a
    /// layer.
    pub fn from_tar(tar: &[u8], comment: &str) -> Result<Self> {
        Ok(Self {
            blob: Blob::new(MediaType::ImageLayerGzip, gzip(tar)?),
            diff_id: sha256_digest(tar),
            comment: comment.to_owned(),
        })
    }

    /// A layer from `tar` and its gzip stream compressed earlier by [`gzip`] (for example kept in
    /// a cache by the digest of `tar`), so that an unchanged layer is not compressed again.
    pub fn from_compressed(tar: &[u8], gz: Vec<u8>, comment: &str) -> Self {
        Self {
            blob: Blob::new(MediaType::ImageLayerGzip, gz),
            diff_id: sha256_digest(tar),
            comment: comment.to_owned(),
        }
    }

    /// Writes `tree` with every modification time at `mtime` and compresses it.
    pub fn from_tree(tree: &Tree, mtime: u64, comment: &str) -> Result<Self> {
        Self::from_tar(&tree.tar(mtime)?, comment)
    }
}

/// Tars up to this size (64 MiB) are compressed at level 9; larger ones at [`LARGE_LEVEL`].
pub const LARGE_LAYER: usize = 64 << 20;
/// The gzip level of a tar larger than [`LARGE_LAYER`] (such as the Jupyter image's 280 MiB).
/// Measured on that tar (zlib-rs, 2 cores): level 3 takes 3.8 s for 88.5 MiB, level 9 47 s for
/// 83.2 MiB; level 1 2.0 s for 111.9 MiB (docs/development.md, "Images").
pub const LARGE_LEVEL: u32 = 3;

/// The gzip level of a tar of `len` bytes: 9 (smallest) up to [`LARGE_LAYER`], [`LARGE_LEVEL`]
/// above it, where level 9 costs more than ten times the time for 5 % of the size.
pub fn gzip_level(len: usize) -> u32 {
    if len > LARGE_LAYER { LARGE_LEVEL } else { 9 }
}

/// gzip (RFC 1952) at [`gzip_level`] with a zero timestamp, no file name and the "unknown" OS
/// byte, so the output depends on the input only (and on the compressor: see
/// [`gzip_fingerprint`]).
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    gzip_at(bytes, gzip_level(bytes.len()))
}

fn gzip_at(bytes: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::new(level));
    encoder
        .write_all(bytes)
        .map_err(|e| Error::io("compressing a layer", e))?;
    encoder
        .finish()
        .map_err(|e| Error::io("compressing a layer", e))
}

/// 16 hex digits that change when [`gzip`]'s output for the same input may change (another
/// compressor version or level): the SHA-256 of a fixed 1 MiB sample compressed at both levels.
/// A cache of compressed layers keyed by the tar's digest and this fingerprint never hands out
/// a stream that compressing again here would not give. It takes about 50 ms.
pub fn gzip_fingerprint() -> Result<String> {
    // Text-like and repetitive with some noise (an xorshift generator), so that the match finder,
    // the lazy matching and the Huffman coding all have a say in the output.
    let mut state: u32 = 0x9e37_79b9;
    let mut sample = Vec::with_capacity(1 << 20);
    while sample.len() < 1 << 20 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let word = ["layer", "tar", "gzip", "berth", "image", "\n", "0123"][(state % 7) as usize];
        sample.extend_from_slice(word.as_bytes());
        sample.push((state >> 24) as u8);
    }
    let mut both = gzip_at(&sample, 9)?;
    both.extend(gzip_at(&sample, LARGE_LEVEL)?);
    Ok(sha256_digest(&both)["sha256:".len()..][..16].to_owned())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> Tree {
        let mut tree = Tree::new();
        tree.file(
            "/usr/local/bin/tool",
            Content::Bytes(b"#!binary".to_vec()),
            0o755,
        )
        .unwrap()
        .file(
            "/etc/passwd",
            Content::Bytes(b"root:x:0:0\n".to_vec()),
            0o644,
        )
        .unwrap()
        .dir(
            "/home/nonroot",
            0o755,
            Owner::new(65532, 65532, "nonroot", "nonroot"),
        )
        .unwrap()
        .dir("/tmp", 0o1777, Owner::root())
        .unwrap()
        .symlink("/bin/sh", "busybox")
        .unwrap();
        tree
    }

    struct Entry {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        user: String,
        mtime: u64,
        link: Option<String>,
        data: Vec<u8>,
    }

    fn read_back(tar_bytes: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.push(Entry {
                path: entry.path().unwrap().to_string_lossy().into_owned(),
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                user: header.username().unwrap().unwrap_or_default().to_owned(),
                mtime: header.mtime().unwrap(),
                link: entry
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                data,
            });
        }
        entries
    }

    #[test]
    fn tar_reads_back_sorted_with_parents_owners_modes_and_times() {
        let entries = read_back(&sample().tar(1_700_000_000).unwrap());
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "bin/",
                "bin/sh",
                "etc/",
                "etc/passwd",
                "home/",
                "home/nonroot/",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/tool"
            ]
        );
        for entry in &entries {
            assert_eq!(entry.mtime, 1_700_000_000, "{}", entry.path);
        }
        let find = |p: &str| entries.iter().find(|e| e.path == p).unwrap();
        let home = find("home/nonroot/");
        assert_eq!(home.kind, tar::EntryType::Directory);
        assert_eq!(
            (home.uid, home.gid, home.user.as_str()),
            (65532, 65532, "nonroot")
        );
        assert_eq!(find("tmp/").mode, 0o1777);
        let implied = find("usr/local/");
        assert_eq!(
            (implied.mode, implied.uid, implied.user.as_str()),
            (0o755, 0, "root")
        );
        let tool = find("usr/local/bin/tool");
        assert_eq!(tool.kind, tar::EntryType::Regular);
        assert_eq!((tool.mode, tool.uid, tool.gid), (0o755, 0, 0));
        assert_eq!(tool.data, b"#!binary");
        let sh = find("bin/sh");
        assert_eq!(sh.kind, tar::EntryType::Symlink);
        assert_eq!(sh.link.as_deref(), Some("busybox"));
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_whatever_the_insertion_order() {
        let mut reversed = Tree::new();
        reversed
            .symlink("/bin/sh", "busybox")
            .unwrap()
            .dir("/tmp", 0o1777, Owner::root())
            .unwrap()
            .dir(
                "/home/nonroot",
                0o755,
                Owner::new(65532, 65532, "nonroot", "nonroot"),
            )
            .unwrap()
            .file(
                "/etc/passwd",
                Content::Bytes(b"root:x:0:0\n".to_vec()),
                0o644,
            )
            .unwrap()
            .file(
                "usr/local/bin/tool",
                Content::Bytes(b"#!binary".to_vec()),
                0o755,
            )
            .unwrap();
        let a = Layer::from_tree(&sample(), 0, "sample").unwrap();
        let b = Layer::from_tree(&reversed, 0, "sample").unwrap();
        assert_eq!(a, b);
        // A different time is a different layer.
        let c = Layer::from_tree(&sample(), 1, "sample").unwrap();
        assert_ne!(a.diff_id, c.diff_id);
        assert_ne!(a.blob.digest, c.blob.digest);
    }

    #[test]
    fn files_are_read_from_the_build_machine_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("payload");
        std::fs::write(&source, b"from disk").unwrap();
        let mut tree = Tree::new();
        tree.file("/data", Content::Path(source.clone()), 0o644)
            .unwrap();
        let entries = read_back(&tree.tar(0).unwrap());
        assert_eq!(entries[0].data, b"from disk");
        std::fs::remove_file(&source).unwrap();
        let err = tree.tar(0).unwrap_err().to_string();
        assert!(err.contains("payload"), "{err}");
    }

    #[test]
    fn gzip_is_deterministic_and_decompresses_to_the_tar() {
        let tar = sample().tar(0).unwrap();
        let layer = Layer::from_tar(&tar, "sample").unwrap();
        assert_eq!(layer.blob.media_type, MediaType::ImageLayerGzip);
        assert_eq!(layer.diff_id, sha256_digest(&tar));
        assert_eq!(layer.blob.digest, sha256_digest(&layer.blob.bytes));
        // RFC 1952 header: magic, deflate, no flags (no name), MTIME 0, XFL 2 (best), OS 255.
        assert_eq!(
            &layer.blob.bytes[..10],
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]
        );
        assert_eq!(Layer::from_tar(&tar, "sample").unwrap(), layer);
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(layer.blob.bytes.as_slice())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, tar);
    }

    #[test]
    fn a_large_tar_is_compressed_fast_and_as_deterministically() {
        // Above the threshold: the fast level, the same bytes twice, and back to the input.
        let big: Vec<u8> = (0..LARGE_LAYER + 4096)
            .map(|i| (i % 251) as u8 ^ (i / 4093) as u8)
            .collect();
        assert_eq!(gzip_level(big.len()), LARGE_LEVEL);
        assert_eq!(gzip_level(LARGE_LAYER), 9);
        let once = gzip(&big).unwrap();
        assert_eq!(once, gzip(&big).unwrap());
        // XFL 0: neither the best nor the fastest level (RFC 1952).
        assert_eq!(&once[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(once.as_slice())
            .read_to_end(&mut unpacked)
            .unwrap();
        assert!(unpacked == big);
    }

    #[test]
    fn the_fingerprint_is_stable_and_names_the_compressor() {
        let first = gzip_fingerprint().unwrap();
        assert_eq!(first.len(), 16);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(first, gzip_fingerprint().unwrap());
    }

    #[test]
    fn bad_paths_and_conflicts_are_refused() {
        let mut tree = Tree::new();
        assert!(tree.file("/", Content::Bytes(vec![]), 0o644).is_err());
        assert!(
            tree.file("/etc/../x", Content::Bytes(vec![]), 0o644)
                .is_err()
        );
        assert!(tree.file("./x", Content::Bytes(vec![]), 0o644).is_err());
        tree.file("/etc/passwd", Content::Bytes(vec![]), 0o644)
            .unwrap();
        assert!(
            tree.file("/etc/passwd", Content::Bytes(vec![]), 0o644)
                .is_err()
        );
        assert!(
            tree.file("/etc/passwd/x", Content::Bytes(vec![]), 0o644)
                .is_err()
        );
        // Restating a directory sets its mode.
        tree.dir("/etc", 0o700, Owner::root()).unwrap();
        assert!(tree.symlink("/etc", "/x").is_err());
    }
}
