//! Small pieces every loopback service needs: free ports, random secrets, a run directory, and the
//! pinned builds under `tools/`. Shared by the control plane here and by `berth-services`.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// The repository this crate was built from.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Free loopback ports, all distinct: every listener is held until all are chosen.
pub fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("finding a free loopback port", e))?;
        *port = listener
            .local_addr()
            .map_err(|e| Error::io("finding a free loopback port", e))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The directory a pinned build script (relative to the repository) prints last, building or
/// finding it in the cache; `override_env`, when set, names the directory instead. A cold build
/// prints its progress on stderr.
pub fn locate_build(script: &str, override_env: &str) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(override_env) {
        return Ok(PathBuf::from(dir));
    }
    let script = repo_root().join(script);
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io(format!("running {}", script.display()), e))?;
    if !output.status.success() {
        return Err(Error::Build(format!(
            "{} exited with {}",
            script.display(),
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if !dir.trim().is_empty() => Ok(PathBuf::from(dir.trim())),
        _ => Err(Error::Build(format!(
            "{} printed no directory",
            script.display()
        ))),
    }
}

/// A fresh directory under `$TMPDIR/<area>/run-<pid>-<label>-<n>`. Directories of earlier runs
/// whose process is gone (killed with SIGKILL, say) are removed first.
pub fn fresh_run_dir(area: &str, label: &str) -> Result<PathBuf, Error> {
    let root = std::env::temp_dir().join(area);
    sweep_stale_runs(&root);
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let pid = std::process::id();
    // create_dir fails if the directory exists, so two servers started at once in one process
    // can never share a directory.
    for n in 0u32.. {
        let path = root.join(format!("run-{pid}-{label}-{n}"));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
        }
    }
    Err(Error::io(
        "choosing a run directory",
        std::io::Error::other("no free name"),
    ))
}

fn sweep_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
