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

/// Free loopback ports for servers this process is about to start, all distinct.
///
/// A port is chosen at random from 16384 to 29999: below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default, read) and below
/// Kubernetes' NodePort range (30000-32767, which kube-proxy on the real node captures on every
/// local address, loopback included); checked free by binding it, and never handed out twice by
/// one process. Binding port 0 instead, as this did before, returns an ephemeral port and frees
/// it at once: until the server binds it, any outgoing connection on the machine may take it as
/// its local port, or another test's `bind(0)` may get it, and the server then fails with
/// "address already in use" (kwok did, in a CI run).
/// Below the ephemeral range neither can happen; a port another process bound in between is still
/// possible, but no longer the usual case.
///
/// Errors: an I/O error when no port is free after 2,000 tries per port.
pub fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const LOWEST: u16 = 16384;
    const BELOW_NODE_PORTS: u16 = 29999;
    let highest = ephemeral_start()
        .saturating_sub(1)
        .clamp(LOWEST + 1024, BELOW_NODE_PORTS);
    let span = u32::from(highest - LOWEST) + 1;
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let mut tries = 0;
        *port = loop {
            tries += 1;
            if tries > 2000 {
                return Err(Error::io(
                    "finding a free loopback port",
                    std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("no free port in {LOWEST}-{highest} after 2000 tries"),
                    ),
                ));
            }
            let candidate =
                u16::try_from(u32::from(LOWEST) + random_u32()? % span).unwrap_or(LOWEST);
            if given.contains(&candidate) {
                continue;
            }
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", candidate)) {
                listeners.push(listener);
                break candidate;
            }
        };
        given.insert(*port);
    }
    Ok(ports)
}

/// The first port of the kernel's ephemeral range (outgoing connections' and `bind(0)`'s local
/// ports); 32768, Linux's default, when it cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A random u32 from the kernel.
fn random_u32() -> Result<u32, Error> {
    let mut buf = [0u8; 4];
    fill_random(&mut buf)?;
    Ok(u32::from_le_bytes(buf))
}

/// Fills `buf` from /dev/urandom.
fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::io("reading /dev/urandom", e))
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> Result<(), Error> {
        let start = ephemeral_start();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let ports: [u16; 6] = free_ports()?;
            for port in ports {
                assert!(
                    (16384..start).contains(&port),
                    "{port} (ephemeral from {start})"
                );
                assert!(seen.insert(port), "{port} handed out twice");
                // Free when handed out: a server can bind it.
                TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| Error::io(format!("binding {port}"), e))?;
            }
        }
        Ok(())
    }
}
