//! End-to-end tests of the real binary against a real loopback HTTP(S) server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Behavior, Body, Route, Server, data, pattern_sha256, sha256_hex};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_berth-model-fetch");

struct Fixture {
    server: Server,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl Fixture {
    async fn new(routes: Vec<(&str, Route)>) -> Fixture {
        let server = Server::start(routes, true).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, server.ca_pem.as_ref().unwrap()).unwrap();
        Fixture { server, dir, ca }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    async fn fetch(&self, path: &str, extra: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg(self.server.url(path))
            .arg(self.dest())
            .arg("--ca-file")
            .arg(&self.ca)
            .args(["--progress-interval", "1s"])
            .args(extra)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap()
            .unwrap();
        eprintln!(
            "$ berth-model-fetch {path} {extra:?} -> {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn bytes_route(d: &[u8], b: Behavior) -> Route {
    Route::new(Body::Bytes(Arc::new(d.to_vec())), b)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_download_with_sha256() {
    let d = data(3 << 20);
    let f = Fixture::new(vec![(
        "/models/model.bin",
        bytes_route(&d, Behavior::Normal),
    )])
    .await;
    let out = f
        .fetch("/models/model.bin", &["--sha256", &sha256_hex(&d)])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("model.bin")).unwrap(), d);
    assert_eq!(listing(&f.dest()), vec!["model.bin"]);
    assert!(
        stderr(&out).contains("done: 1 file (3.0 MiB)"),
        "{}",
        stderr(&out)
    );
    // Run again: the verified file is already there, nothing is downloaded.
    let out = f
        .fetch("/models/model.bin", &["--sha256", &sha256_hex(&d)])
        .await;
    assert_eq!(code(&out), 0);
    assert_eq!(f.server.requests("/models/model.bin").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_a_network_error() {
    let f = Fixture::new(vec![("/m.bin", bytes_route(b"x", Behavior::Normal))]).await;
    let out = tokio::process::Command::new(BIN)
        .arg(f.server.url("/m.bin"))
        .arg(f.dest())
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_mismatch_deletes_partial() {
    let d = data(1 << 20);
    let f = Fixture::new(vec![("/m.bin", bytes_route(&d, Behavior::Normal))]).await;
    let wrong = sha256_hex(b"something else");
    let out = f.fetch("/m.bin", &["--sha256", &wrong]).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("checksum mismatch") && err.contains(&wrong) && err.contains(&sha256_hex(&d)),
        "{err}"
    );
    assert_eq!(listing(&f.dest()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_with_range_after_dropped_connection() {
    let d = data(4 << 20);
    let route = bytes_route(
        &d,
        Behavior::DropAfter {
            after: 1 << 20,
            times: 1,
        },
    );
    let f = Fixture::new(vec![("/m.bin", route)]).await;
    let sha = sha256_hex(&d);
    // First run: the server drops the connection after 1 MiB; no retries.
    let out = f
        .fetch("/m.bin", &["--sha256", &sha, "--retries", "0"])
        .await;
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let partial = std::fs::metadata(f.dest().join("m.bin.partial"))
        .unwrap()
        .len();
    assert!(
        partial > 0 && partial <= 1 << 20,
        "partial is {partial} bytes"
    );
    assert!(!f.dest().join("m.bin").exists());
    // Second run resumes from the partial file with a Range request, re-hashing what is there.
    let out = f
        .fetch("/m.bin", &["--sha256", &sha, "--retries", "0"])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m.bin")).unwrap(), d);
    assert_eq!(listing(&f.dest()), vec!["m.bin"]);
    let reqs = f.server.requests("/m.bin");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].range, None);
    assert_eq!(
        reqs[1].range.as_deref(),
        Some(format!("bytes={partial}-").as_str())
    );
    assert_eq!(reqs[1].if_range.as_deref(), Some("\"v1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_in_process_and_resumes() {
    let d = data(2 << 20);
    let route = bytes_route(
        &d,
        Behavior::DropAfter {
            after: 512 << 10,
            times: 1,
        },
    );
    let f = Fixture::new(vec![("/m.bin", route)]).await;
    let out = f.fetch("/m.bin", &["--sha256", &sha256_hex(&d)]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m.bin")).unwrap(), d);
    let reqs = f.server.requests("/m.bin");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].range.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_full_download_when_range_is_ignored() {
    let d = data(1 << 20);
    let f = Fixture::new(vec![("/m.bin", bytes_route(&d, Behavior::IgnoreRange))]).await;
    std::fs::create_dir_all(f.dest()).unwrap();
    std::fs::write(f.dest().join("m.bin.partial"), vec![0xAAu8; 5000]).unwrap();
    // The version the partial download holds, as the first run recorded it.
    std::fs::write(f.dest().join("m.bin.partial.meta"), "\"v1\"").unwrap();
    let out = f.fetch("/m.bin", &["--sha256", &sha256_hex(&d)]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m.bin")).unwrap(), d);
    let reqs = f.server.requests("/m.bin");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].range.as_deref(), Some("bytes=5000-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_longer_than_object_restarts() {
    let d = data(10_000);
    let f = Fixture::new(vec![("/m.bin", bytes_route(&d, Behavior::Normal))]).await;
    std::fs::create_dir_all(f.dest()).unwrap();
    std::fs::write(f.dest().join("m.bin.partial"), vec![1u8; 20_000]).unwrap();
    let out = f.fetch("/m.bin", &["--sha256", &sha256_hex(&d)]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m.bin")).unwrap(), d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_codes_map_to_exit_codes() {
    let f = Fixture::new(vec![
        ("/forbidden.bin", bytes_route(b"", Behavior::Status(403))),
        ("/unauthorized.bin", bytes_route(b"", Behavior::Status(401))),
        ("/broken.bin", bytes_route(b"", Behavior::Status(503))),
    ])
    .await;
    let out = f.fetch("/missing.bin", &[]).await;
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not found") && stderr(&out).contains("404"),
        "{}",
        stderr(&out)
    );
    let out = f.fetch("/forbidden.bin", &[]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("access denied"), "{}", stderr(&out));
    let out = f.fetch("/unauthorized.bin", &[]).await;
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let out = f.fetch("/broken.bin", &["--retries", "0"]).await;
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(stderr(&out).contains("HTTP 503"), "{}", stderr(&out));
    assert_eq!(listing(&f.dest()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_exceeded_leaves_partial_for_resume() {
    let d = data(1 << 20);
    let f = Fixture::new(vec![("/slow.bin", bytes_route(&d, Behavior::Stall))]).await;
    let start = Instant::now();
    let out = f.fetch("/slow.bin", &["--timeout", "1500ms"]).await;
    let took = start.elapsed();
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        stderr(&out).contains("deadline exceeded"),
        "{}",
        stderr(&out)
    );
    assert!(f.dest().join("slow.bin.partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2() {
    let f = Fixture::new(vec![]).await;
    for args in [
        vec![],
        vec!["ftp://example.invalid/x", "/tmp/x"],
        vec!["s3://", "/tmp/x"],
        vec!["https://127.0.0.1:1/m.bin", "/tmp/x", "--sha256", "abc"],
        vec!["https://127.0.0.1:1/m.bin", "/tmp/x", "--timeout", "soon"],
        vec!["s3://bucket/prefix/", "/tmp/x", "--sha256", &"0".repeat(64)],
    ] {
        let out = tokio::process::Command::new(BIN)
            .args(&args)
            .output()
            .await
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
    let out = tokio::process::Command::new(BIN)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert_eq!(code(&out), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit codes:") && help.contains("5  checksum mismatch"),
        "{help}"
    );
    drop(f);
}

fn tar_gz(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(enc);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_path("model/").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    for (name, body, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, *body).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// A tar with one raw entry, bypassing the tar crate's own path checks.
fn evil_tar(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut ok = tar::Header::new_gnu();
    ok.set_size(2);
    ok.set_mode(0o644);
    ok.set_path("fine.txt").unwrap();
    ok.set_cksum();
    b.append(&ok, &b"ok"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    let raw = name.as_bytes();
    h.as_gnu_mut().unwrap().name[..raw.len()].copy_from_slice(raw);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    let body: &[u8] = if kind == tar::EntryType::Regular {
        b"evil"
    } else {
        b""
    };
    h.set_size(body.len() as u64);
    if let Some(l) = link {
        h.as_gnu_mut().unwrap().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    b.append(&h, body).unwrap();
    b.into_inner().unwrap()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    w.add_directory("weights/", opts).unwrap();
    for (name, body) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpacks_tar_gz_and_zip() {
    let weights = data(300_000);
    let tgz = tar_gz(&[
        ("model/config.json", b"{\"layers\": 2}", 0o644),
        ("model/weights/part-0.bin", &weights, 0o644),
        ("model/run.sh", b"#!/bin/sh\n", 0o755),
    ]);
    let zipped = zip_of(&[("config.json", b"{}"), ("weights/part-0.bin", &weights)]);
    let plain_tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_path("tok/vocab.txt").unwrap();
        h.set_cksum();
        b.append(&h, &b"a b c"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let f = Fixture::new(vec![
        ("/m.tar.gz", bytes_route(&tgz, Behavior::Normal)),
        ("/m.zip", bytes_route(&zipped, Behavior::Normal)),
        ("/m.tar", bytes_route(&plain_tar, Behavior::Normal)),
        ("/download", bytes_route(&tgz, Behavior::Normal)),
    ])
    .await;

    let out = f.fetch("/m.tar.gz", &["--sha256", &sha256_hex(&tgz)]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dest = f.dest();
    assert_eq!(
        listing(&dest),
        vec![
            "model/",
            "model/config.json",
            "model/run.sh",
            "model/weights/",
            "model/weights/part-0.bin"
        ]
    );
    assert_eq!(
        std::fs::read(dest.join("model/weights/part-0.bin")).unwrap(),
        weights
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest.join("model/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o100 != 0, "mode {mode:o}");
    std::fs::remove_dir_all(&dest).unwrap();

    let out = f.fetch("/m.zip", &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        listing(&dest),
        vec!["config.json", "weights/", "weights/part-0.bin"]
    );
    assert_eq!(
        std::fs::read(dest.join("weights/part-0.bin")).unwrap(),
        weights
    );
    std::fs::remove_dir_all(&dest).unwrap();

    let out = f.fetch("/m.tar", &["--keep-archive"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(listing(&dest), vec!["m.tar", "tok/", "tok/vocab.txt"]);
    std::fs::remove_dir_all(&dest).unwrap();

    // No archive extension: kept as is unless --unpack, which sniffs the format.
    let out = f.fetch("/download", &[]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(listing(&dest), vec!["download"]);
    std::fs::remove_dir_all(&dest).unwrap();
    let out = f.fetch("/download", &["--unpack"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        listing(&dest).contains(&"model/run.sh".to_string()),
        "{:?}",
        listing(&dest)
    );
    std::fs::remove_dir_all(&dest).unwrap();

    // --no-unpack keeps the archive.
    let out = f.fetch("/m.zip", &["--no-unpack"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(listing(&dest), vec!["m.zip"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_archives_are_refused() {
    let f = Fixture::new(vec![
        (
            "/dotdot.tar",
            bytes_route(
                &evil_tar("../evil.txt", tar::EntryType::Regular, None),
                Behavior::Normal,
            ),
        ),
        (
            "/nested.tar",
            bytes_route(
                &evil_tar("a/../../evil.txt", tar::EntryType::Regular, None),
                Behavior::Normal,
            ),
        ),
        (
            "/abs.tar",
            bytes_route(
                &evil_tar("/tmp/berth-evil.txt", tar::EntryType::Regular, None),
                Behavior::Normal,
            ),
        ),
        (
            "/symlink.tar",
            bytes_route(
                &evil_tar("link", tar::EntryType::Symlink, Some("/etc/passwd")),
                Behavior::Normal,
            ),
        ),
        (
            "/hardlink.tar",
            bytes_route(
                &evil_tar("hl", tar::EntryType::Link, Some("/etc/passwd")),
                Behavior::Normal,
            ),
        ),
        (
            "/dotdot.zip",
            bytes_route(
                &zip_of(&[("ok.txt", b"ok"), ("../evil.txt", b"evil")]),
                Behavior::Normal,
            ),
        ),
        (
            "/corrupt.tar.gz",
            bytes_route(b"\x1f\x8bthis is not gzip at all", Behavior::Normal),
        ),
        ("/notarchive", bytes_route(b"plain text", Behavior::Normal)),
    ])
    .await;
    for (path, expect) in [
        ("/dotdot.tar", "outside the target directory"),
        ("/nested.tar", "outside the target directory"),
        ("/abs.tar", "outside the target directory"),
        ("/symlink.tar", "link"),
        ("/hardlink.tar", "link"),
        ("/dotdot.zip", "outside the target directory"),
        ("/corrupt.tar.gz", "not a valid tar archive"),
    ] {
        let out = f.fetch(path, &[]).await;
        assert_eq!(code(&out), 8, "{path}: {}", stderr(&out));
        assert!(stderr(&out).contains(expect), "{path}: {}", stderr(&out));
        // Nothing escaped, nothing half-unpacked: only the downloaded archive remains.
        assert!(!f.dir.path().join("evil.txt").exists());
        assert!(!Path::new("/tmp/berth-evil.txt").exists());
        let name = path.trim_start_matches('/').to_string();
        assert_eq!(listing(&f.dest()), vec![name], "{path}");
        std::fs::remove_dir_all(f.dest()).unwrap();
    }
    let out = f.fetch("/notarchive", &["--unpack"]).await;
    assert_eq!(code(&out), 8, "{}", stderr(&out));
}

/// Peak RSS (VmHWM) of the real child process while it downloads 200 MiB over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_memory_for_200_mib() {
    const LEN: u64 = 200 << 20;
    let f = Fixture::new(vec![(
        "/big.bin",
        Route::new(Body::Pattern(LEN), Behavior::Normal),
    )])
    .await;
    let sha = pattern_sha256(LEN);
    let mut child = tokio::process::Command::new(BIN)
        .arg(f.server.url("/big.bin"))
        .arg(f.dest())
        .arg("--ca-file")
        .arg(&f.ca)
        .args(["--sha256", &sha, "--progress-interval", "2s"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut peak_kib = 0u64;
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(v) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(v);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "download took too long");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(f.dest().join("big.bin")).unwrap().len(),
        LEN
    );
    eprintln!(
        "peak RSS (VmHWM) of berth-model-fetch for 200 MiB: {} KiB",
        peak_kib
    );
    assert!(peak_kib > 0);
    assert!(
        peak_kib <= 32 * 1024,
        "peak RSS {peak_kib} KiB exceeds 32 MiB"
    );
}

/// A server that names no version of the file (no ETag, no Last-Modified): a partial download
/// cannot be told apart from a new version, so the second run starts over instead of asking
/// for a range that could splice two versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_a_validator_starts_over() {
    let d = data(2 << 20);
    let mut route = bytes_route(
        &d,
        Behavior::DropAfter {
            after: 512 << 10,
            times: 1,
        },
    );
    route.etag = String::new();
    let f = Fixture::new(vec![("/m.bin", route)]).await;
    let out = f.fetch("/m.bin", &["--retries", "0"]).await;
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert!(f.dest().join("m.bin.partial").exists());
    let out = f
        .fetch("/m.bin", &["--sha256", &sha256_hex(&d), "--retries", "0"])
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m.bin")).unwrap(), d);
    let reqs = f.server.requests("/m.bin");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range, None, "no validator, no range: {reqs:?}");
}

/// An https download redirected to http stops with exit 11 and says where it was sent;
/// nothing is requested over http and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_http_redirect_is_refused() {
    let f = Fixture::new(vec![
        (
            "/m.bin",
            bytes_route(b"", Behavior::Redirect("http://127.0.0.1:9/m.bin")),
        ),
        (
            "/moved.bin",
            bytes_route(b"", Behavior::Redirect("/m2.bin")),
        ),
        ("/m2.bin", bytes_route(b"hello", Behavior::Normal)),
    ])
    .await;
    let out = f.fetch("/m.bin", &["--retries", "0"]).await;
    assert_eq!(code(&out), 11, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("redirected to http://127.0.0.1:9/m.bin, which is not https"),
        "{}",
        stderr(&out)
    );
    assert_eq!(listing(&f.dest()), Vec::<String>::new());
    // A redirect that stays on https is followed.
    let out = f.fetch("/moved.bin", &["--output-name", "m2.bin"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(f.dest().join("m2.bin")).unwrap(), b"hello");
}

/// Archive bombs stop at their limit with exit 10, and nothing of them lands in DEST: a
/// highly compressed file (ratio), too many entries, too many bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_bombs_are_refused() {
    let zeros = vec![0u8; 8 << 20];
    let bomb = tar_gz(&[("model/zeros.bin", &zeros, 0o644)]);
    assert!(bomb.len() * 100 < zeros.len(), "{} bytes", bomb.len());
    let many: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("model/f{i}.txt"), b"x".to_vec()))
        .collect();
    let many_refs: Vec<(&str, &[u8], u32)> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice(), 0o644))
        .collect();
    let crowded = tar_gz(&many_refs);
    let zipped = zip_of(&[("big.bin", &zeros)]);
    let f = Fixture::new(vec![
        ("/bomb.tar.gz", bytes_route(&bomb, Behavior::Normal)),
        ("/crowded.tar.gz", bytes_route(&crowded, Behavior::Normal)),
        ("/big.zip", bytes_route(&zipped, Behavior::Normal)),
    ])
    .await;

    let out = f.fetch("/bomb.tar.gz", &["--max-ratio", "100"]).await;
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 100 times its size"),
        "{}",
        stderr(&out)
    );
    assert_eq!(listing(&f.dest()), vec!["bomb.tar.gz"]);

    let out = f.fetch("/crowded.tar.gz", &["--max-entries", "10"]).await;
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 10 entries"),
        "{}",
        stderr(&out)
    );

    let out = f
        .fetch("/big.zip", &["--max-unpacked-bytes", "1000000"])
        .await;
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 1000000 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(
        !listing(&f.dest())
            .iter()
            .any(|p| p.contains("zeros") || p.contains("big.bin"))
    );

    // Within the limits, the same archive unpacks.
    let out = f.fetch("/bomb.tar.gz", &["--max-ratio", "5000"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(f.dest().join("model/zeros.bin"))
            .unwrap()
            .len(),
        8 << 20
    );
}
