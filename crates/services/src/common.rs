//! What every service shares: finding its build, free ports, secrets, a run directory, spawning
//! with an environment, and waiting for readiness with progress.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testenv::Process;

use crate::{Error, Result};

/// The directory a service's build script prints last (see [`berth_testenv::util::locate_build`]).
pub(crate) fn locate(_service: &'static str, script: &str, override_env: &str) -> Result<PathBuf> {
    Ok(berth_testenv::util::locate_build(script, override_env)?)
}

/// Free loopback ports, all distinct.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    Ok(berth_testenv::util::free_ports()?)
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    Ok(berth_testenv::util::random_hex(bytes)?)
}

/// Whether to print progress: unless `BERTH_QUIET` is set, as in `berth-testenv`.
pub(crate) fn show_progress() -> bool {
    std::env::var_os("BERTH_QUIET").is_none()
}

pub(crate) fn progress(service: &str, message: &str) {
    if show_progress() {
        // Straight to the stream, so cargo test's output capture does not hide it.
        let _ = writeln!(std::io::stderr(), "[berth-services] {service}: {message}");
    }
}

pub(crate) fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A fresh directory for one server's data and log, removed on drop; directories of earlier runs
/// whose process is gone are swept when the next one is made.
pub(crate) struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub(crate) fn new(service: &str) -> Result<Self> {
        Ok(Self {
            path: berth_testenv::util::fresh_run_dir("berth-services", service)?,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Starts `program args` with `env` added to this process's environment, through
/// [`Process::spawn`] (so it dies with us). `env(1)` sets the variables and execs the program in
/// the same process, which keeps the parent-death signal.
pub(crate) fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    log: &Path,
) -> Result<Process> {
    let mut full = Vec::with_capacity(env.len() + args.len() + 1);
    full.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    full.push(program.display().to_string());
    full.extend(args.iter().cloned());
    Ok(Process::spawn(name, Path::new("/usr/bin/env"), &full, log)?)
}

/// An HTTP client for loopback: no proxy, short timeouts, and no idle connections kept, so none
/// is open to delay a server's graceful shutdown when it is dropped.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::http("building an HTTP client", e))
}

/// Whether `GET url` answers 200 right now.
pub(crate) async fn answers_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).timeout(Duration::from_secs(2)).send().await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

/// Polls `ready` until it says yes, the process exits (an error with the end of its log) or
/// `timeout` passes; prints how long it has been waiting every ten seconds.
pub(crate) async fn wait_until<F, Fut>(
    process: &mut Process,
    what: &str,
    timeout: Duration,
    begin: Instant,
    mut ready: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut next_report = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = process.exited() {
            return Err(Error::Exited {
                name: process.name().to_owned(),
                status: status.to_string(),
                log: process.log_path().to_path_buf(),
                tail: process.log_tail(4096),
            });
        }
        if ready().await {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                log: process.log_path().to_path_buf(),
                tail: process.log_tail(4096),
            });
        }
        if now >= next_report {
            progress(
                process.name(),
                &format!(
                    "waiting for {what} ({:.0} s so far)",
                    begin.elapsed().as_secs_f64()
                ),
            );
            next_report = now + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of a response that must be a success, or an error with its status and body.
pub(crate) async fn expect_success(
    what: &str,
    response: std::result::Result<reqwest::Response, reqwest::Error>,
) -> Result<String> {
    let response = response.map_err(|e| Error::http(what, e))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| Error::http(what, e))?;
    if !status.is_success() {
        return Err(Error::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    Ok(body)
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| Error::Answer {
        what: what.to_owned(),
        message: format!("{e}: {body}"),
    })
}
