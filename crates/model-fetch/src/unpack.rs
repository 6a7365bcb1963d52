//! Safe unpacking of `.tar`, `.tar.gz`/`.tgz` and `.zip` archives.
//!
//! Entries are extracted into a staging directory inside the target directory and
//! moved into place only when the whole archive was read without error. Entries
//! that would land outside the directory (`..`, absolute paths), symlinks, hard
//! links and special files are refused.

use crate::error::FetchError;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

/// How far an archive may unpack: in bytes written, in entries, and as a multiple of the
/// archive's own size. Beyond any of them the unpacking stops with
/// [`FetchError::UnpackLimit`] and nothing is moved into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub bytes: u64,
    pub entries: u64,
    pub ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            bytes: 1 << 40,
            entries: 100_000,
            ratio: 1_000,
        }
    }
}

/// What an unpacking wrote so far, checked against its [`Limits`].
struct Budget {
    limits: Limits,
    /// The most bytes: the smaller of the byte limit and ratio × the archive's size.
    max_bytes: u64,
    bytes: u64,
    entries: u64,
    archive: String,
    archive_size: u64,
}

impl Budget {
    fn new(limits: Limits, archive: &str, archive_size: u64) -> Self {
        let by_ratio = archive_size.max(1).saturating_mul(limits.ratio);
        Self {
            limits,
            max_bytes: limits.bytes.min(by_ratio),
            bytes: 0,
            entries: 0,
            archive: archive.to_owned(),
            archive_size,
        }
    }

    fn entry(&mut self) -> Result<(), FetchError> {
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(FetchError::UnpackLimit(format!(
                "{} holds more than {} entries (--max-entries); refused",
                self.archive, self.limits.entries
            )));
        }
        Ok(())
    }

    fn wrote(&mut self, n: u64) -> Result<(), FetchError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes <= self.max_bytes {
            return Ok(());
        }
        Err(FetchError::UnpackLimit(
            if self.max_bytes < self.limits.bytes {
                format!(
                    "{} ({} bytes) unpacks to more than {} times its size (--max-ratio); refused as a likely archive bomb",
                    self.archive, self.archive_size, self.limits.ratio
                )
            } else {
                format!(
                    "{} unpacks to more than {} bytes (--max-unpacked-bytes); refused",
                    self.archive, self.limits.bytes
                )
            },
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
}

impl ArchiveKind {
    /// The archive kind implied by a file name, if any.
    pub fn from_name(name: &str) -> Option<ArchiveKind> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(ArchiveKind::TarGz)
        } else if n.ends_with(".tar") {
            Some(ArchiveKind::Tar)
        } else if n.ends_with(".zip") {
            Some(ArchiveKind::Zip)
        } else {
            None
        }
    }

    /// The archive kind from the first bytes of a file.
    pub fn sniff(path: &Path) -> Result<Option<ArchiveKind>, FetchError> {
        let mut f = File::open(path)
            .map_err(|e| FetchError::disk(format!("cannot open {}", path.display()), e))?;
        let mut head = [0u8; 512];
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    return Err(FetchError::disk(
                        format!("cannot read {}", path.display()),
                        e,
                    ));
                }
            }
        }
        Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
            Some(ArchiveKind::TarGz)
        } else if n >= 4 && head[..4] == *b"PK\x03\x04" {
            Some(ArchiveKind::Zip)
        } else if n >= 262 && &head[257..262] == b"ustar" {
            Some(ArchiveKind::Tar)
        } else {
            None
        })
    }
}

/// Unpacks `archive` into `dest_dir` (deleting the archive once read when
/// `remove_archive`) within `limits`; returns the number of files written.
pub fn unpack(
    archive: &Path,
    kind: ArchiveKind,
    dest_dir: &Path,
    remove_archive: bool,
    limits: Limits,
) -> Result<u64, FetchError> {
    let size = fs::metadata(archive)
        .map_err(|e| FetchError::disk(format!("cannot read {}", archive.display()), e))?
        .len();
    let mut budget = Budget::new(limits, &display_name(archive), size);
    // Staging directories left by an earlier run that was stopped mid-unpack.
    if let Ok(entries) = fs::read_dir(dest_dir) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(".berth-unpack-")
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let staging = dest_dir.join(format!(".berth-unpack-{}", std::process::id()));
    fs::create_dir_all(&staging)
        .map_err(|e| FetchError::disk(format!("cannot create {}", staging.display()), e))?;
    let result = match kind {
        ArchiveKind::Tar | ArchiveKind::TarGz => {
            unpack_tar(archive, kind == ArchiveKind::TarGz, &staging, &mut budget)
        }
        ArchiveKind::Zip => unpack_zip(archive, &staging, &mut budget),
    }
    .and_then(|files| {
        if remove_archive {
            fs::remove_file(archive)
                .map_err(|e| FetchError::disk(format!("cannot delete {}", archive.display()), e))?;
        }
        move_into_place(&staging, dest_dir)?;
        Ok(files)
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

fn unpack_tar(
    archive: &Path,
    gz: bool,
    staging: &Path,
    budget: &mut Budget,
) -> Result<u64, FetchError> {
    let f = File::open(archive)
        .map_err(|e| FetchError::disk(format!("cannot open {}", archive.display()), e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            f,
        )))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, f))
    };
    let name = display_name(archive);
    let bad = |e: io::Error| FetchError::Unpack(format!("{name} is not a valid tar archive: {e}"));
    let mut ar = tar::Archive::new(reader);
    let mut files = 0;
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        budget.entry()?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = safe_relative(&raw, &name)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(FetchError::Unpack(format!(
                "{name} contains a link {:?}; links are refused for safety",
                raw.display().to_string()
            )));
        }
        if kind.is_dir() {
            if !rel.as_os_str().is_empty() {
                create_dir(&staging.join(&rel))?;
            }
            continue;
        }
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(FetchError::Unpack(format!(
                "{name} contains {:?}, which is not a regular file or directory; refused",
                raw.display().to_string()
            )));
        }
        if rel.as_os_str().is_empty() {
            return Err(FetchError::Unpack(format!(
                "{name} contains a file entry with an empty name"
            )));
        }
        let exec = entry
            .header()
            .mode()
            .map(|m| m & 0o111 != 0)
            .unwrap_or(false);
        write_file(&staging.join(&rel), &mut entry, exec, &name, budget)?;
        files += 1;
    }
    Ok(files)
}

fn unpack_zip(archive: &Path, staging: &Path, budget: &mut Budget) -> Result<u64, FetchError> {
    let f = File::open(archive)
        .map_err(|e| FetchError::disk(format!("cannot open {}", archive.display()), e))?;
    let name = display_name(archive);
    let mut za = zip::ZipArchive::new(BufReader::with_capacity(256 * 1024, f))
        .map_err(|e| FetchError::Unpack(format!("{name} is not a valid zip archive: {e}")))?;
    let mut files = 0;
    for i in 0..za.len() {
        let mut entry = za
            .by_index(i)
            .map_err(|e| FetchError::Unpack(format!("{name}: cannot read entry {i}: {e}")))?;
        budget.entry()?;
        let entry_name = entry
            .name()
            .map_err(|e| {
                FetchError::Unpack(format!("{name}: entry {i} has an unreadable name: {e}"))
            })?
            .into_owned();
        let raw = PathBuf::from(&entry_name);
        let rel = safe_relative(&raw, &name)?;
        if entry.is_symlink() {
            return Err(FetchError::Unpack(format!(
                "{name} contains a link {entry_name:?}; links are refused for safety"
            )));
        }
        if entry.is_dir() {
            if !rel.as_os_str().is_empty() {
                create_dir(&staging.join(&rel))?;
            }
            continue;
        }
        if rel.as_os_str().is_empty() {
            return Err(FetchError::Unpack(format!(
                "{name} contains a file entry with an empty name"
            )));
        }
        let exec = entry.unix_mode().map(|m| m & 0o111 != 0).unwrap_or(false);
        write_file(&staging.join(&rel), &mut entry, exec, &name, budget)?;
        files += 1;
    }
    Ok(files)
}

/// Turns an entry path into a relative path that stays inside the directory.
pub(crate) fn safe_relative(raw: &Path, archive: &str) -> Result<PathBuf, FetchError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(FetchError::Unpack(format!(
                    "{archive} contains the entry {:?}, which points outside the target directory; refused",
                    raw.display().to_string()
                )));
            }
        }
    }
    Ok(out)
}

fn create_dir(path: &Path) -> Result<(), FetchError> {
    fs::create_dir_all(path)
        .map_err(|e| FetchError::disk(format!("cannot create directory {}", path.display()), e))
}

fn write_file(
    path: &Path,
    src: &mut dyn Read,
    exec: bool,
    archive: &str,
    budget: &mut Budget,
) -> Result<(), FetchError> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let f = File::create(path)
        .map_err(|e| FetchError::disk(format!("cannot create {}", path.display()), e))?;
    let mut w = BufWriter::with_capacity(256 * 1024, f);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FetchError::Unpack(format!("{archive}: corrupt data: {e}"))),
        };
        // Counted before it is written: a bomb stops at the limit, not after it.
        budget.wrote(n as u64)?;
        w.write_all(&buf[..n])
            .map_err(|e| FetchError::disk(format!("cannot write {}", path.display()), e))?;
    }
    let f = w.into_inner().map_err(|e| {
        FetchError::disk(format!("cannot write {}", path.display()), e.into_error())
    })?;
    if exec {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(|e| {
                FetchError::disk(format!("cannot set permissions of {}", path.display()), e)
            })?;
    }
    Ok(())
}

/// Moves every top-level entry of `staging` into `dest_dir`, replacing what is there.
fn move_into_place(staging: &Path, dest_dir: &Path) -> Result<(), FetchError> {
    let entries = fs::read_dir(staging)
        .map_err(|e| FetchError::disk(format!("cannot read {}", staging.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| FetchError::disk(format!("cannot read {}", staging.display()), e))?;
        let target = dest_dir.join(entry.file_name());
        if let Ok(meta) = fs::symlink_metadata(&target) {
            let res = if meta.is_dir() {
                fs::remove_dir_all(&target)
            } else {
                fs::remove_file(&target)
            };
            res.map_err(|e| FetchError::disk(format!("cannot replace {}", target.display()), e))?;
        }
        fs::rename(entry.path(), &target).map_err(|e| {
            FetchError::disk(format!("cannot move {} into place", target.display()), e)
        })?;
    }
    Ok(())
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
