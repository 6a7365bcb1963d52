//! The images `cargo xtask images` built, checked the way a node uses them, without a node:
//! - each archive reads back with every digest right, under the names `ctr images import` gives;
//! - each image holds the nonroot user and runs as 65532:65532 with no secret in its config;
//! - each image's root filesystem, unpacked, runs its binary under `chroot` as UID 65532 (the
//!   dynamic loader and libraries come from the image, not from this machine);
//! - pause, as PID 1 of a new PID namespace, reaps an orphan and exits 0 on SIGTERM;
//! - building again from the same inputs gives the same digests.
//!
//! `BERTH_IMAGES` (set by `cargo xtask test`) names images.json; without it the images are built
//! now with `cargo xtask images`. Running binaries under chroot needs root, as the real node does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_images::archive::{self, ReadArchive};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone)]
struct Entry {
    name: String,
    reference: String,
    digest: String,
    archive: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Runs `cargo xtask images --out <out>`; the path of images.json.
fn build_images(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "images",
            "--out",
        ])
        .arg(out)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo xtask images failed");
    out.join("images.json")
}

fn images_json() -> &'static PathBuf {
    static JSON: OnceLock<PathBuf> = OnceLock::new();
    JSON.get_or_init(|| match std::env::var_os("BERTH_IMAGES") {
        Some(path) => path.into(),
        None => build_images(&repo_root().join("target/images")),
    })
}

fn entries(json: &Path) -> Vec<Entry> {
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

fn read(entry: &Entry) -> ReadArchive {
    archive::read(&std::fs::read(&entry.archive).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", entry.archive.display()))
}

/// Each layer unpacked in order into a new directory: the container's root filesystem.
fn unpack(read: &ReadArchive) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for layer in &read.layers {
        let mut tar = tar::Archive::new(layer.as_slice());
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(true);
        tar.unpack(dir.path()).unwrap();
    }
    dir
}

/// The absolute path of `program` on this process's PATH (the commands below run with the
/// image's environment, whose PATH is the image's).
fn which(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not installed"))
}

/// `argv` run inside `rootfs` the way the image's config says (user, environment), as chroot does
/// it; the output, after checking it exited 0.
fn run_in(read: &ReadArchive, rootfs: &Path, argv: &[&str]) -> String {
    let config = read.config.config().as_ref().unwrap();
    let mut command = Command::new(which("chroot"));
    command
        .arg(format!("--userspec={}", config.user().as_deref().unwrap()))
        .arg(rootfs)
        .args(argv)
        .env_clear();
    for pair in config.env().as_deref().unwrap_or_default() {
        let (key, value) = pair.split_once('=').unwrap();
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{argv:?} in {} exited with {}: {text}",
        read.names[0],
        output.status
    );
    text
}

#[test]
fn every_image_is_listed_and_reads_back_under_its_reference_and_digest() {
    let entries = entries(images_json());
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pause",
            "model-server",
            "model-fetch",
            "operator",
            "local-path-provisioner",
            "helper",
            "jupyter"
        ]
    );
    for entry in &entries {
        assert!(entry.archive.is_absolute(), "{}", entry.archive.display());
        assert!(
            entry.reference.starts_with("berth.dev/"),
            "{}",
            entry.reference
        );
        let read = read(entry);
        assert_eq!(read.digest, entry.digest, "{}", entry.name);
        assert_eq!(read.ref_names, std::slice::from_ref(&entry.reference));
        assert_eq!(
            read.names,
            [
                entry.reference.clone(),
                format!("{}@{}", archive::repository(&entry.reference), entry.digest)
            ]
        );
    }
}

#[test]
fn every_image_runs_as_nonroot_with_labels_and_no_secrets() {
    for entry in entries(images_json()) {
        let read = read(&entry);
        let config = read.config.config().as_ref().unwrap();
        assert_eq!(
            config.user().as_deref(),
            Some("65532:65532"),
            "{}",
            entry.name
        );
        let working_dir = config.working_dir().as_deref().unwrap_or_default();
        assert!(working_dir.starts_with('/'), "{}", entry.name);
        let command = config
            .entrypoint()
            .as_ref()
            .or(config.cmd().as_ref())
            .unwrap();
        assert!(command[0].starts_with('/'), "{}: {command:?}", entry.name);
        for pair in config.env().as_deref().unwrap_or_default() {
            let key = pair.split('=').next().unwrap().to_uppercase();
            for word in ["SECRET", "PASSWORD", "TOKEN", "KEY"] {
                assert!(!key.contains(word), "{}: {pair}", entry.name);
            }
        }
        let labels = config.labels().as_ref().unwrap();
        for label in ["source", "version", "revision"] {
            let value = &labels[&format!("org.opencontainers.image.{label}")];
            assert!(!value.is_empty(), "{}: {label}", entry.name);
        }
        // Files belong to root and nothing is setuid: only the nonroot home is 65532's.
        let mut passwd = None;
        for layer in &read.layers {
            let mut tar = tar::Archive::new(layer.as_slice());
            for file in tar.entries().unwrap() {
                let mut file = file.unwrap();
                let path = file.path().unwrap().to_string_lossy().into_owned();
                let header = file.header();
                let mode = header.mode().unwrap();
                assert_eq!(mode & 0o6000, 0, "{}: /{path} is setuid/setgid", entry.name);
                if path.trim_end_matches('/') == "home/nonroot" {
                    assert_eq!(header.uid().unwrap(), 65532);
                } else {
                    assert_eq!(header.uid().unwrap(), 0, "{}: /{path}", entry.name);
                }
                if path == "etc/passwd" {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut file, &mut text).unwrap();
                    passwd = Some(text);
                }
            }
        }
        let passwd = passwd.unwrap_or_default();
        assert!(
            passwd.contains("nonroot:x:65532:65532:"),
            "{}: {passwd}",
            entry.name
        );
    }
}

#[test]
fn each_image_runs_its_binary_as_uid_65532_from_its_own_root_filesystem() {
    let by_name: BTreeMap<String, Entry> = entries(images_json())
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect();
    for (name, expected) in [
        ("model-server", "Usage"),
        ("model-fetch", "Usage"),
        ("operator", "Usage"),
        ("local-path-provisioner", "USAGE"),
    ] {
        let read = read(&by_name[name]);
        let rootfs = unpack(&read);
        let entrypoint = read
            .config
            .config()
            .as_ref()
            .unwrap()
            .entrypoint()
            .clone()
            .unwrap();
        let mut argv: Vec<&str> = entrypoint.iter().map(String::as_str).collect();
        argv.push("--help");
        let out = run_in(&read, rootfs.path(), &argv);
        assert!(out.contains(expected), "{name} --help: {out}");
        if name != "local-path-provisioner" {
            // The CA bundle is the machine's, the only file under /etc/ssl.
            let bundle = rootfs.path().join("etc/ssl/certs/ca-certificates.crt");
            assert_eq!(
                std::fs::read(bundle).unwrap(),
                std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap()
            );
        }
    }
    // The helper: a shell with the tools helper pods and connection checks use, as 65532.
    let read = read(&by_name["helper"]);
    let rootfs = unpack(&read);
    let out = run_in(
        &read,
        rootfs.path(),
        &[
            "/bin/sh",
            "-c",
            "set -eu; id -u; mkdir -m 0777 -p /tmp/vol/a; rm -rf /tmp/vol; test ! -e /tmp/vol; \
             for tool in wget nc nslookup timeout; do test -x /bin/$tool && echo has-$tool; done; \
             timeout 5 sleep 0.1 && echo done",
        ],
    );
    assert_eq!(
        out, "65532\nhas-wget\nhas-nc\nhas-nslookup\nhas-timeout\ndone\n",
        "the helper's shell"
    );
    // Jupyter: the image's Python loads JupyterLab, the server and pyzmq's native library (which
    // needs the image's libstdc++), as UID 65532 from the image's own root filesystem.
    let jupyter = crate::read(&by_name["jupyter"]);
    let rootfs = unpack(&jupyter);
    let out = run_in(
        &jupyter,
        rootfs.path(),
        &[
            "/usr/bin/python3",
            "-c",
            "import os, zmq, jupyter_server.serverapp, jupyterlab; print(os.getuid(), 'zmq', zmq.zmq_version())",
        ],
    );
    assert!(out.starts_with("65532 zmq 4."), "Jupyter's imports: {out}");
}

/// The children of `pid` (from /proc), with their states.
fn children(pid: u32) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        if rest[1].parse::<u32>() == Ok(pid) {
            found.push((child, rest[0].chars().next().unwrap()));
        }
    }
    found
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_reaps_orphans_as_pid_1_and_exits_0_on_sigterm() {
    let entry = entries(images_json())
        .into_iter()
        .find(|e| e.name == "pause")
        .unwrap();
    let read = read(&entry);
    let rootfs = unpack(&read);
    // A new PID namespace, pause as its PID 1, as UID 65532 from the image's root filesystem.
    let mut unshare = Command::new(which("unshare"))
        .args(["--pid", "--fork", "--kill-child"])
        .arg(which("chroot"))
        .arg("--userspec=65532:65532")
        .arg(rootfs.path())
        .arg("/pause")
        .env_clear()
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pause = 0;
    wait_until("pause runs", || {
        if let Ok(Some(status)) = unshare.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(unshare.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("pause exited at once ({status}): {err}");
        }
        pause = children(unshare.id())
            .first()
            .map(|(pid, _)| *pid)
            .unwrap_or(0);
        pause != 0
            && std::fs::read_to_string(format!("/proc/{pause}/comm")).unwrap_or_default()
                == "pause\n"
    });
    let status = std::fs::read_to_string(format!("/proc/{pause}/status")).unwrap();
    assert!(status.contains("\nUid:\t65532\t"), "{status}");
    // A process whose parent exits in that namespace is re-parented to pause; when it exits,
    // pause must reap it or it stays a zombie.
    let entered = Command::new("nsenter")
        .args(["--target", &pause.to_string(), "--pid", "--"])
        .args(["sh", "-c", "sleep 1 & exit 0"])
        .status()
        .unwrap();
    assert!(entered.success());
    wait_until("the orphan is pause's child", || {
        !children(pause).is_empty()
    });
    wait_until("pause reaps the orphan (no zombie)", || {
        children(pause).is_empty()
    });
    let kill = Command::new("kill")
        .args(["-TERM", &pause.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = unshare.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "pause exits 0 on SIGTERM");
}

#[test]
fn a_rebuild_from_the_same_inputs_gives_the_same_digests() {
    let first = entries(images_json());
    let again = tempfile::tempdir().unwrap();
    let second = entries(&build_images(again.path()));
    let digests = |list: &[Entry]| -> Vec<(String, String)> {
        list.iter()
            .map(|e| (e.name.clone(), e.digest.clone()))
            .collect()
    };
    assert_eq!(digests(&first), digests(&second));
}
