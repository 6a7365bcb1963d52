//! `berth-model-fetch`: downloads an MLModel artifact into a directory.
//!
//! Sources are `s3://bucket/key`, `s3://bucket/prefix/` and `https://…` URLs.
//! Downloads stream to `<name>.partial` with bounded memory, are verified
//! against `--sha256` while streaming, resume with ranged requests, are renamed
//! into place atomically and, for archives, unpacked safely.

pub mod error;
mod http;
mod progress;
mod remote;
mod s3;
pub mod source;
pub mod unpack;

use crate::error::FetchError;
use crate::progress::Progress;
use crate::remote::{Opened, Remote};
use crate::source::Source;
use crate::unpack::ArchiveKind;
use clap::Parser;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use error::exit;

/// The exit-code table shown by `--help` (and in the README).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok: the artifact is in DEST (verified and unpacked when asked)
  1  internal error (a bug: please report it)
  2  bad arguments, or a source that cannot be downloaded as it is (an S3 key that is
     both a file and a folder)
  3  not found: the object, prefix, bucket or URL does not exist
  4  access denied: missing or wrong credentials, or no permission
  5  checksum mismatch: the download does not match --sha256 (partial file deleted)
  6  deadline exceeded: --timeout ran out (run again to resume)
  7  network or server error (after --retries attempts; run again to resume)
  8  unpack error: corrupt archive, or unsafe entries (paths outside DEST, links)
  9  disk error: cannot create, write or rename files in DEST
 10  unpack limit: the archive unpacks to more than --max-unpacked-bytes, more than
     --max-entries entries, or more than --max-ratio times its own size (a bomb)
 11  insecure redirect: an https:// download was redirected to http://

A resume continues a partial download only when the server named its version (a strong
ETag or Last-Modified); otherwise the download starts over, so two versions are never
spliced.

S3 settings come from the standard environment variables: AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION /
AWS_DEFAULT_REGION (path-style addressing, so MinIO and Garage work).";

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "berth-model-fetch",
    version,
    about = "Download a model artifact (S3 object or prefix, or HTTPS file) into a directory.",
    after_help = EXIT_CODES_HELP
)]
pub struct Args {
    /// What to download: s3://BUCKET/KEY, s3://BUCKET/PREFIX/ (every object under it) or https://HOST/PATH.
    pub source: String,

    /// Directory to download into (created when missing).
    pub dest: PathBuf,

    /// Expected SHA-256 of the file (64 hex digits), checked while downloading. Single files only.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,

    /// Unpack the downloaded archive (.tar, .tar.gz, .tgz, .zip) into DEST. By default
    /// archives are unpacked when their name ends with one of those extensions.
    #[arg(long, conflicts_with = "no_unpack")]
    pub unpack: bool,

    /// Never unpack, even when the name looks like an archive.
    #[arg(long)]
    pub no_unpack: bool,

    /// Keep the archive file in DEST after unpacking it.
    #[arg(long)]
    pub keep_archive: bool,

    /// File name to save a single object as (default: the last part of the key or URL path).
    #[arg(long, value_name = "NAME")]
    pub output_name: Option<String>,

    /// Overall deadline for the whole download, e.g. 90s, 30m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// How often to retry (resuming) after a network error.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,

    /// Give up on a connection that sends nothing for this long (it is then retried).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Extra PEM CA certificate(s) to trust for https:// sources (e.g. an in-cluster CA).
    #[arg(long, value_name = "PEM", env = "BERTH_FETCH_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// How often to print progress to stderr.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// Print no progress lines.
    #[arg(long, short)]
    pub quiet: bool,

    /// The most bytes an archive may unpack to (default 1 TiB; Berth passes the volume's size).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 40)]
    pub max_unpacked_bytes: u64,

    /// The most entries (files and directories) an archive may hold.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_entries: u64,

    /// The most an archive may unpack to, as a multiple of its own size.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_ratio: u64,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 30m, 2h)"))
}

/// What a successful run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files downloaded.
    pub files: u64,
    /// Bytes in the downloaded files.
    pub bytes: u64,
    /// Files written by unpacking, if an archive was unpacked.
    pub unpacked: Option<u64>,
}

/// Runs a fetch as described by `args`.
pub async fn run(args: Args) -> Result<Summary, FetchError> {
    let source = Source::parse(&args.source)?;
    let sha = args.sha256.as_deref().map(parse_sha256).transpose()?;
    if let Source::S3Prefix { .. } = source {
        if sha.is_some() {
            return Err(FetchError::BadArgs(
                "--sha256 needs a single object, but the source is a prefix (ends with '/')".into(),
            ));
        }
        if args.unpack {
            return Err(FetchError::BadArgs(
                "--unpack needs a single object, but the source is a prefix".into(),
            ));
        }
        if args.output_name.is_some() {
            return Err(FetchError::BadArgs(
                "--output-name needs a single object, but the source is a prefix".into(),
            ));
        }
    }
    if let Some(n) = &args.output_name
        && (n.is_empty() || n == "." || n == ".." || n.contains('/'))
    {
        return Err(FetchError::BadArgs(format!(
            "--output-name {n:?} must be a plain file name"
        )));
    }
    let work = fetch(source, &args, sha);
    match args.timeout {
        Some(d) => tokio::time::timeout(d, work)
            .await
            .map_err(|_| FetchError::Deadline(d))?,
        None => work.await,
    }
}

fn parse_sha256(s: &str) -> Result<[u8; 32], FetchError> {
    let bytes = hex::decode(s.trim()).map_err(|_| {
        FetchError::BadArgs(format!(
            "--sha256 {s:?} is not hexadecimal; expected 64 hex digits"
        ))
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        FetchError::BadArgs(format!(
            "--sha256 has {} hex digits; a SHA-256 has 64",
            s.trim().len()
        ))
    })
}

struct Opts {
    retries: u32,
    progress: Option<Duration>,
}

async fn fetch(source: Source, args: &Args, sha: Option<[u8; 32]>) -> Result<Summary, FetchError> {
    let dest = &args.dest;
    tokio::fs::create_dir_all(dest)
        .await
        .map_err(|e| FetchError::disk(format!("cannot create {}", dest.display()), e))?;
    let opts = Opts {
        retries: args.retries,
        progress: if args.quiet {
            None
        } else {
            Some(args.progress_interval)
        },
    };
    let default_name = source.file_name();
    let (remote, name) = match source {
        Source::Http(url) => {
            let client = http::client(args.ca_file.as_deref(), args.read_timeout)?;
            (Remote::Http(http::HttpObject { client, url }), default_name)
        }
        Source::S3Object { bucket, key } => {
            let client = s3::client(args.read_timeout).await;
            (
                Remote::S3(s3::S3Object {
                    client,
                    bucket,
                    key,
                }),
                default_name,
            )
        }
        Source::S3Prefix { bucket, prefix } => {
            let client = s3::client(args.read_timeout).await;
            return fetch_prefix(client, bucket, prefix, dest, &opts).await;
        }
    };
    let name = args.output_name.clone().or(name).ok_or_else(|| {
        FetchError::BadArgs(format!(
            "cannot tell a file name from {}; pass --output-name",
            remote.display()
        ))
    })?;
    let path = dest.join(&name);
    let bytes = fetch_one(&remote, &path, sha, &opts).await?;
    let kind = if args.no_unpack {
        None
    } else if args.unpack {
        match ArchiveKind::from_name(&name) {
            Some(k) => Some(k),
            None => Some(ArchiveKind::sniff(&path)?.ok_or_else(|| {
                FetchError::Unpack(format!("{name} is not a .tar, .tar.gz or .zip archive"))
            })?),
        }
    } else {
        ArchiveKind::from_name(&name)
    };
    let unpacked = match kind {
        None => None,
        Some(kind) => {
            let (archive, dir, remove) = (path.clone(), dest.clone(), !args.keep_archive);
            let limits = unpack::Limits {
                bytes: args.max_unpacked_bytes,
                entries: args.max_entries,
                ratio: args.max_ratio,
            };
            if opts.progress.is_some() {
                eprintln!(
                    "berth-model-fetch: unpacking {name} into {}",
                    dest.display()
                );
            }
            let files = tokio::task::spawn_blocking(move || {
                unpack::unpack(&archive, kind, &dir, remove, limits)
            })
            .await
            .map_err(|e| FetchError::Internal(format!("unpacking stopped: {e}")))??;
            Some(files)
        }
    };
    Ok(Summary {
        files: 1,
        bytes,
        unpacked,
    })
}

/// Refuses a listing in which one key is both a file and a folder (`a/model` and
/// `a/model/part`): both cannot be written into one directory, and retrying cannot change it.
fn refuse_file_and_folder(keys: &[String], bucket: &str) -> Result<(), FetchError> {
    let set: std::collections::BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    for key in keys {
        let folder = format!("{key}/");
        if let Some(inside) = set.range(folder.as_str()..).next()
            && inside.starts_with(&folder)
        {
            return Err(FetchError::InvalidSource(format!(
                "s3://{bucket}/{key} is both an object and a folder (it holds s3://{bucket}/{inside}); rename one of them"
            )));
        }
    }
    Ok(())
}

async fn fetch_prefix(
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    dest: &Path,
    opts: &Opts,
) -> Result<Summary, FetchError> {
    let keys = s3::list(&client, &bucket, &prefix).await?;
    if keys.is_empty() {
        return Err(FetchError::NotFound(format!(
            "there are no objects under s3://{bucket}/{prefix}"
        )));
    }
    refuse_file_and_folder(&keys, &bucket)?;
    let mut summary = Summary::default();
    for key in keys {
        let rel_str = key
            .strip_prefix(&prefix)
            .unwrap_or(&key)
            .trim_start_matches('/');
        let rel = unpack::safe_relative(Path::new(rel_str), &format!("s3://{bucket}/{prefix}"))
            .map_err(|_| {
                FetchError::Unpack(format!(
                    "the key {key:?} would be written outside {}; refused",
                    dest.display()
                ))
            })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| FetchError::disk(format!("cannot create {}", parent.display()), e))?;
        }
        let remote = Remote::S3(s3::S3Object {
            client: client.clone(),
            bucket: bucket.clone(),
            key,
        });
        summary.bytes += fetch_one(&remote, &path, None, opts).await?;
        summary.files += 1;
    }
    Ok(summary)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Downloads one object to `path` via `path.partial`, resuming and retrying.
async fn fetch_one(
    remote: &Remote,
    path: &Path,
    sha: Option<[u8; 32]>,
    opts: &Opts,
) -> Result<u64, FetchError> {
    let partial = sibling(path, ".partial");
    if let Some(expected) = sha
        && tokio::fs::try_exists(path).await.unwrap_or(false)
        && !tokio::fs::try_exists(&partial).await.unwrap_or(false)
    {
        let (hasher, len) = hash_file(path).await?;
        if hasher.finalize().as_slice() == expected {
            if opts.progress.is_some() {
                eprintln!(
                    "berth-model-fetch: {} is already there and matches --sha256",
                    path.display()
                );
            }
            return Ok(len);
        }
    }
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| remote.display());
    let mut progress = Progress::new(label, opts.progress);
    let mut attempt = 0;
    loop {
        match fetch_attempt(remote, path, &partial, sha, &mut progress).await {
            Ok(n) => return Ok(n),
            Err(e) if e.is_retryable() && attempt < opts.retries => {
                attempt += 1;
                let wait = Duration::from_secs((1u64 << attempt.min(5)).min(30));
                eprintln!(
                    "berth-model-fetch: {e}; retrying in {}s ({attempt}/{}), resuming where it stopped",
                    wait.as_secs(),
                    opts.retries
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn file_len(path: &Path) -> u64 {
    tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .unwrap_or(0)
}

async fn fetch_attempt(
    remote: &Remote,
    path: &Path,
    partial: &Path,
    sha: Option<[u8; 32]>,
    progress: &mut Progress,
) -> Result<u64, FetchError> {
    let meta = sibling(path, ".partial.meta");
    let offset = file_len(partial).await;
    let validator = if offset > 0 {
        tokio::fs::read_to_string(&meta)
            .await
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    // A partial download is continued only under the validator of the version it holds: the
    // server then sends the rest of that version or the whole new one (If-Range). Without
    // one, a range could splice two versions, so the download starts over.
    let mut opened = match validator {
        Some(validator) => remote.open(offset, Some(&validator)).await?,
        None => {
            if offset > 0 {
                remove_quietly(partial).await;
            }
            remote.open(0, None).await?
        }
    };
    if matches!(opened, Opened::RangeNotSatisfiable | Opened::Changed) {
        // The partial download does not fit the object any more: start over.
        remove_quietly(partial).await;
        opened = remote.open(0, None).await?;
    }
    let (mut body, total, append) = match opened {
        Opened::Resumed { body, total } => (body, total, true),
        Opened::Full {
            body,
            total,
            validator,
        } => {
            tokio::fs::write(&meta, validator.unwrap_or_default())
                .await
                .map_err(|e| FetchError::disk(format!("cannot write {}", meta.display()), e))?;
            (body, total, false)
        }
        Opened::RangeNotSatisfiable | Opened::Changed => {
            return Err(FetchError::Network(format!(
                "the server refused to send {} from the start",
                remote.display()
            )));
        }
    };
    let mut hasher = Sha256::new();
    let (file, mut written) = if append {
        if sha.is_some() {
            let (h, _) = hash_file(partial).await?;
            hasher = h;
        }
        let f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(partial)
            .await
            .map_err(|e| FetchError::disk(format!("cannot open {}", partial.display()), e))?;
        (f, offset)
    } else {
        let f = tokio::fs::File::create(partial)
            .await
            .map_err(|e| FetchError::disk(format!("cannot create {}", partial.display()), e))?;
        (f, 0)
    };
    progress.restart(written, total);
    let disk_err = |e| FetchError::disk(format!("cannot write {}", partial.display()), e);
    let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // Keep what arrived so the next attempt can resume from it.
                w.flush().await.map_err(disk_err)?;
                return Err(e);
            }
        };
        w.write_all(&chunk).await.map_err(disk_err)?;
        if sha.is_some() {
            hasher.update(&chunk);
        }
        written += chunk.len() as u64;
        progress.add(chunk.len() as u64);
    }
    drop(body);
    w.flush().await.map_err(disk_err)?;
    let file = w.into_inner();
    file.sync_all().await.map_err(disk_err)?;
    drop(file);
    if let Some(t) = total
        && written != t
    {
        return Err(FetchError::Network(format!(
            "the transfer of {} ended early: got {written} of {t} bytes",
            remote.display()
        )));
    }
    progress.finish();
    if let Some(expected) = sha {
        let actual = hasher.finalize();
        if actual.as_slice() != expected {
            remove_quietly(partial).await;
            remove_quietly(&meta).await;
            return Err(FetchError::Checksum {
                what: remote.display(),
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
    }
    tokio::fs::rename(partial, path).await.map_err(|e| {
        FetchError::disk(
            format!("cannot rename {} to {}", partial.display(), path.display()),
            e,
        )
    })?;
    remove_quietly(&meta).await;
    if let Some(dir) = path.parent()
        && let Ok(d) = tokio::fs::File::open(dir).await
    {
        let _ = d.sync_all().await;
    }
    Ok(written)
}

async fn remove_quietly(path: &Path) {
    let _ = tokio::fs::remove_file(path).await;
}

/// SHA-256 state over a whole file (streamed), and the file's length.
async fn hash_file(path: &Path) -> Result<(Sha256, u64), FetchError> {
    let err = |e| FetchError::disk(format!("cannot read {}", path.display()), e);
    let mut f = tokio::fs::File::open(path).await.map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher, len))
}

/// A one-line description of a successful run.
pub fn progress_summary(s: &Summary, dest: &Path) -> String {
    let mut out = format!(
        "{} file{} ({}) in {}",
        s.files,
        if s.files == 1 { "" } else { "s" },
        progress::human(s.bytes),
        dest.display()
    );
    if let Some(n) = s.unpacked {
        out.push_str(&format!(
            ", unpacked {n} file{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn a_key_that_is_both_file_and_folder_is_an_invalid_source() {
        assert!(
            refuse_file_and_folder(&keys(&["m/a", "m/a-old/x", "m/b/c", "m/b/d/e"]), "bk").is_ok()
        );
        let err = refuse_file_and_folder(&keys(&["m/a", "m/a/x", "m/b"]), "bk").unwrap_err();
        assert_eq!(err.exit_code(), exit::BAD_ARGS);
        let text = err.to_string();
        assert!(
            text.starts_with("invalid source: s3://bk/m/a is both an object and a folder"),
            "{text}"
        );
        assert!(text.contains("s3://bk/m/a/x"), "{text}");
    }
}
