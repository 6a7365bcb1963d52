//! Traefik as the cluster's Gateway API implementation, run on the host beside the real node: its
//! Kubernetes Gateway provider watches the cluster through a kubeconfig and programs one HTTP
//! entrypoint on the node's address, from where it reaches pod addresses on the node's bridge
//! directly. The pinned binary comes from `tools/traefik/build.sh`.
//!
//! Traefik listens on the entrypoint only: no dashboard, API, ping or metrics (the internal
//! `traefik` entrypoint, which would listen on every interface, is never made), and no version
//! check or usage report leaves the machine.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::Process;
use crate::util::{fresh_run_dir, locate_build};

/// The environment variable that names Traefik's directory instead of building it.
pub const TRAEFIK_DIR_ENV: &str = "BERTH_TRAEFIK_DIR";
/// The `controllerName` Traefik's Gateway provider serves GatewayClasses of, and writes into
/// route and Gateway status.
pub const CONTROLLER_NAME: &str = "traefik.io/gateway-controller";
/// The entrypoint's name in Traefik's configuration.
pub const ENTRYPOINT: &str = "web";

/// A running Traefik; stopped when dropped (and killed with the test binary in any case).
pub struct Traefik {
    process: Process,
    address: String,
    port: u16,
    dir: PathBuf,
}

impl Traefik {
    /// Starts Traefik with its Kubernetes Gateway provider on the cluster of `kubeconfig` and one
    /// HTTP entrypoint on `address` (an IP; never a public interface) at a free port; returns once
    /// the entrypoint accepts connections (within 30 s).
    ///
    /// Errors: the binary missing or failing to build, the process exiting early (with the end of
    /// its log), or the entrypoint not listening in time.
    pub fn start(kubeconfig: &Path, address: &str) -> Result<Self, Error> {
        let binary = locate_build("tools/traefik/build.sh", TRAEFIK_DIR_ENV)?.join("traefik");
        if !binary.exists() {
            return Err(Error::Build(format!(
                "{} does not exist; run tools/traefik/build.sh",
                binary.display()
            )));
        }
        let dir = fresh_run_dir("berth-testenv", "traefik")?;
        // A port free now may be taken before Traefik binds it (another test's listener, or the
        // local end of a connection from the node's address): pick it on `address` itself, and
        // start again on another port if Traefik finds it taken.
        let mut attempt = 0;
        let (process, port, listen, begin) = loop {
            attempt += 1;
            let port = std::net::TcpListener::bind((address, 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| Error::Wait {
                    what: "a free port for traefik".into(),
                    message: format!("binding {address}: {e}"),
                })?;
            let listen = format!("{address}:{port}");
            let socket: SocketAddr = listen.parse().map_err(|e| Error::Wait {
                what: "traefik's entrypoint".into(),
                message: format!("{listen} is no socket address: {e}"),
            })?;
            eprintln!(
                "[berth-testenv] traefik: starting, entrypoint {ENTRYPOINT} on {listen}, Gateway API provider, log in {}",
                dir.display()
            );
            let args = vec![
                format!("--entryPoints.{ENTRYPOINT}.address={listen}"),
                "--providers.kubernetesGateway=true".to_owned(),
                format!("--providers.kubernetesGateway.statusAddress.ip={address}"),
                "--global.checkNewVersion=false".to_owned(),
                "--global.sendAnonymousUsage=false".to_owned(),
                "--log.level=INFO".to_owned(),
            ];
            let env = [("KUBECONFIG", kubeconfig.display().to_string())];
            let log = dir.join(format!("traefik-{attempt}.log"));
            let mut process = Process::spawn_with_env("traefik", &binary, &args, &env, &log)?;
            let begin = Instant::now();
            let timeout = Duration::from_secs(30);
            let listening = loop {
                if let Some(status) = process.exited() {
                    let tail = process.log_tail(4000);
                    if attempt < 3 && tail.contains("address already in use") {
                        eprintln!("[berth-testenv] traefik: {listen} was taken; another port");
                        break false;
                    }
                    return Err(Error::Exited {
                        name: "traefik".into(),
                        status: status.to_string(),
                        log,
                        tail,
                    });
                }
                if TcpStream::connect_timeout(&socket, Duration::from_millis(500)).is_ok() {
                    break true;
                }
                if begin.elapsed() > timeout {
                    return Err(Error::Timeout {
                        what: format!("traefik listening on {listen}"),
                        seconds: timeout.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if listening {
                break (process, port, listen, begin);
            }
        };
        eprintln!(
            "[berth-testenv] traefik: listening on {listen} after {:.1} s",
            begin.elapsed().as_secs_f64()
        );
        Ok(Self {
            process,
            address: address.to_owned(),
            port,
            dir,
        })
    }

    /// The entrypoint's port: a Gateway listener on this port is served by it.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The entrypoint, `address:port`.
    pub fn entrypoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// The end of Traefik's log, for failure messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        self.process.log_tail(max_bytes)
    }

    /// Traefik's run directory (its log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops Traefik (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}
