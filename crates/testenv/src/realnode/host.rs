//! The real node's hold on the host: `tools/node/host.sh hold`, a process of its own that takes the
//! machine-wide lock, sweeps what a killed run left, records the host's state, sets up the node's
//! bridge, routes and guard, and undoes all of it once this process ends (in any way: it waits for
//! the end of the pipe on its stdin, which only the kernel closes when we are gone).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::Error;
use crate::util::repo_root;

use super::{NODE_BRIDGE, NODE_CGROUP, NODE_IP, POD_CIDR, POD_RANGE, SERVICE_RANGE, paths};

/// The host held for one real node. Dropping it (or the end of this process) cleans the host up
/// and releases the lock.
pub struct HostLease {
    holder: Child,
    stdin: Option<ChildStdin>,
}

fn script() -> std::path::PathBuf {
    repo_root().join("tools/node/host.sh")
}

fn prefix_len(cidr: &str) -> &str {
    cidr.split_once('/').map(|(_, p)| p).unwrap_or("32")
}

/// The environment `host.sh` reads: the same names and addresses the node's configuration uses.
fn environment(command: &mut Command) {
    command
        .env("BERTH_NODE_STATE", paths::STATE)
        .env("BERTH_NODE_DATA", paths::DATA)
        .env("BERTH_NODE_LOCK", paths::LOCK)
        .env("BERTH_NODE_BRIDGE", NODE_BRIDGE)
        .env(
            "BERTH_NODE_GATEWAY",
            format!("{NODE_IP}/{}", prefix_len(POD_CIDR)),
        )
        .env("BERTH_POD_RANGE", POD_RANGE)
        .env("BERTH_SERVICE_RANGE", SERVICE_RANGE)
        .env("BERTH_NODE_CGROUP", NODE_CGROUP)
        .env("BERTH_NODE_OWNER", std::process::id().to_string());
}

impl HostLease {
    /// Takes the machine's real node: waits (up to `BERTH_NODE_LOCK_WAIT` seconds, default 600)
    /// while another run holds it, then prepares the host. Fails with the holder's words when the
    /// node stays busy or the host cannot be set up.
    pub fn acquire(progress: bool) -> Result<Self, Error> {
        let wait = std::env::var("BERTH_NODE_LOCK_WAIT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600);
        Self::acquire_within(progress, Duration::from_secs(wait))
    }

    /// [`HostLease::acquire`], waiting at most `wait` for another run to release the node.
    pub fn acquire_within(progress: bool, wait: Duration) -> Result<Self, Error> {
        let script = script();
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .arg("hold")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C at the terminal reaches us, not the one that cleans
            // up after us.
            .process_group(0);
        environment(&mut command);
        command.env("BERTH_NODE_LOCK_WAIT", wait.as_secs().max(1).to_string());
        if !progress {
            command.stderr(Stdio::null());
        }
        let mut holder = command.spawn().map_err(|source| Error::Spawn {
            name: "host.sh hold".into(),
            program: script.clone(),
            source,
        })?;
        let stdin = holder.stdin.take();
        let stdout = holder.stdout.take().ok_or_else(|| {
            Error::io(
                "reading host.sh hold",
                std::io::Error::other("no stdout pipe"),
            )
        })?;
        let mut answer = String::new();
        BufReader::new(stdout)
            .read_line(&mut answer)
            .map_err(|e| Error::io("reading host.sh hold", e))?;
        let lease = Self { holder, stdin };
        match answer.trim() {
            "ready" => Ok(lease),
            "busy" => Err(Error::RealNode(
                "the real node is busy: another run holds it (see the message above); only one real node runs per machine".into(),
            )),
            other => Err(Error::RealNode(format!(
                "tools/node/host.sh could not prepare the host for the real node (answered {other:?}; see its messages above)"
            ))),
        }
    }

    /// Puts back the kernel settings the kubelet changed when it started (it does not read them
    /// again), so the machine keeps its own for the rest of the run.
    pub fn restore_sysctls(&self) -> Result<(), Error> {
        let mut command = Command::new("bash");
        command.arg(script()).arg("sysctls");
        environment(&mut command);
        let status = command
            .status()
            .map_err(|e| Error::io("running host.sh sysctls", e))?;
        if !status.success() {
            return Err(Error::RealNode(format!(
                "host.sh sysctls exited with {status}"
            )));
        }
        Ok(())
    }

    /// Cleans the host up now and waits until that is done (up to `timeout`).
    pub fn release(mut self, timeout: Duration) {
        self.release_now(timeout);
    }

    fn release_now(&mut self, timeout: Duration) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.holder.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        self.release_now(Duration::from_secs(60));
    }
}
