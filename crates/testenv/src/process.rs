//! The child processes of a test environment.
//!
//! Every process is started from one long-lived spawner thread with `PR_SET_PDEATHSIG`, so the
//! kernel kills it when the test binary or the dev command ends in any way: a normal exit, a panic,
//! Ctrl-C or a SIGKILL. Each runs in its own process group, so Ctrl-C reaches only our own process,
//! which then stops the children in order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::Error;

struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// The spawner thread's inbox. The thread lives as long as the process does, which is what makes the
/// parent-death signal fire only when the whole process ends.
static SPAWNER: OnceLock<Option<Mutex<mpsc::Sender<SpawnRequest>>>> = OnceLock::new();

fn spawner() -> Option<&'static Mutex<mpsc::Sender<SpawnRequest>>> {
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("berth-testenv-spawner".into())
                .spawn(move || {
                    for mut request in rx {
                        let _ = request.reply.send(request.command.spawn());
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

fn spawn_from_spawner(command: Command) -> io::Result<Child> {
    let Some(inbox) = spawner() else {
        return Err(io::Error::other("could not start the spawner thread"));
    };
    let (reply, answer) = mpsc::channel();
    inbox
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Asks the kernel to SIGKILL this (forked, not yet exec'd) child when its parent thread ends.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would ever kill us.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// Sends a signal to one process.
#[allow(unsafe_code)]
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// One running child process with its log file.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts `program args` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self, Error> {
        Self::spawn_with_env(name, program, args, &[], log)
    }

    /// Like [`Process::spawn`], with `env` set on top of this process's environment.
    pub fn spawn_with_env(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Self, Error> {
        let spawn_error = |source: io::Error| Error::Spawn {
            name: name.to_owned(),
            program: program.to_path_buf(),
            source,
        };
        let out = File::create(log).map_err(spawn_error)?;
        let err = out.try_clone().map_err(spawn_error)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        die_with_parent(&mut command);
        let child = spawn_from_spawner(command).map_err(spawn_error)?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
            exit: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// The last `max_bytes` of the process's log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// Asks the process to stop with SIGTERM, then kills it if it has not ended after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        if !grace.is_zero() {
            signal(self.child.id(), libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.exit = self.child.wait().ok();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
