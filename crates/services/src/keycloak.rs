//! Keycloak, an OIDC provider, on loopback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_testenv::Process;
use serde::Deserialize;

use crate::common::{
    RunDir, answers_ok, expect_success, free_ports, http_client, locate, parse_json, progress,
    random_hex, spawn, wait_until, write,
};
use crate::{Error, Relay, Result};

/// The bootstrap admin's user name in the master realm.
pub const KEYCLOAK_ADMIN: &str = "admin";

/// A running Keycloak in dev mode (`kc.sh start-dev`, in-memory database) on free loopback ports,
/// with a bootstrap admin whose password is generated at random. Dropping it stops the server and
/// removes its directory.
pub struct Keycloak {
    // Fields drop in order: the relay and the server stop before the directory is removed.
    relay: Option<Relay>,
    process: Process,
    dir: RunDir,
    base_url: String,
    management_url: String,
    admin_password: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

impl Keycloak {
    /// Fetches Keycloak if it is not cached (`tools/keycloak/build.sh`, or the distribution named
    /// by `BERTH_KEYCLOAK_DIR`), starts it and returns once the master realm's OIDC discovery
    /// document answers. That takes tens of seconds (minutes on a busy machine, or the first time
    /// after a fetch, when Keycloak re-augments itself for dev mode): progress goes to stderr.
    ///
    /// Keycloak 26 needs Java 21 or newer: the JDK named by `BERTH_KEYCLOAK_JAVA_HOME`, else the one
    /// `tools/keycloak/build.sh` chose (`<dist>/java-home`), else `JAVA_HOME`.
    pub async fn start() -> Result<Self> {
        let address = "127.0.0.1";
        let home = locate("keycloak", "tools/keycloak/build.sh", "BERTH_KEYCLOAK_DIR")?;
        let java_home = java_home(&home)?;
        let begin = Instant::now();
        let dir = RunDir::new("keycloak")?;
        let [port, management_port] = free_ports()?;
        let base_url = format!("http://{address}:{port}");
        let management_url = format!("http://{address}:{management_port}");
        let admin_password = random_hex(16)?;
        progress(
            "keycloak",
            &format!(
                "starting on {base_url} in {} (this takes tens of seconds)",
                dir.path().display()
            ),
        );

        // kc.sh runs Java as its child, which the parent-death signal of kc.sh does not reach: run
        // Java through setpriv so it is killed when kc.sh is, whichever way kc.sh ends.
        let java = dir.join("java");
        write(
            &java,
            &format!(
                "#!/bin/sh\nexec /usr/bin/setpriv --pdeathsig KILL '{}/bin/java' \"$@\"\n",
                java_home.display()
            ),
        )?;
        make_executable(&java)?;

        let args = vec![
            "start-dev".to_owned(),
            // Every instance has a database of its own, in memory: nothing is written under the
            // shared distribution's data/ directory.
            "--db=dev-mem".to_owned(),
            format!("--http-host={address}"),
            format!("--http-port={port}"),
            format!("--http-management-port={management_port}"),
            "--health-enabled=true".to_owned(),
            // Client secret rotation keeps the old secret valid until it is revoked, so Berth
            // can store a new secret before the old one stops working.
            "--features=client-secret-rotation".to_owned(),
            format!(
                "-Dquarkus.transaction-manager.object-store.directory={}",
                dir.join("transaction-logs").display()
            ),
        ];
        let env = [
            ("JAVA_HOME", java_home.display().to_string()),
            ("JAVA", java.display().to_string()),
            ("KC_BOOTSTRAP_ADMIN_USERNAME", KEYCLOAK_ADMIN.to_owned()),
            ("KC_BOOTSTRAP_ADMIN_PASSWORD", admin_password.clone()),
        ];
        // On its first start with these build options, kc.sh re-augments the shared distribution
        // in place (lib/quarkus): one start at a time does that, across processes too.
        let lock = lock_distribution(&home, begin).await?;
        let log = dir.join("keycloak.log");
        let mut process = spawn("keycloak", &home.join("bin/kc.sh"), &args, &env, &log)?;
        let client = http_client()?;
        let discovery = format!("{base_url}/realms/master/.well-known/openid-configuration");
        wait_until(
            &mut process,
            "its dev-mode build",
            Duration::from_secs(600),
            begin,
            || async {
                std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains("Running the server in development mode"))
                    || answers_ok(&client, &discovery).await
            },
        )
        .await?;
        drop(lock);
        wait_until(
            &mut process,
            "the master realm's OIDC discovery",
            Duration::from_secs(600),
            begin,
            || answers_ok(&client, &discovery),
        )
        .await?;
        progress(
            "keycloak",
            &format!("ready after {:.1} s", begin.elapsed().as_secs_f64()),
        );
        Ok(Self {
            relay: None,
            process,
            dir,
            base_url,
            management_url,
            admin_password,
            client,
        })
    }

    /// [`Keycloak::start`], reachable on `address` too (the real node's address, for an operator
    /// that runs as a pod there) through a [`Relay`]: Keycloak itself stays on loopback, so that
    /// its master realm, which requires HTTPS from non-local clients, answers plain HTTP. Every URL
    /// this returns ([`Keycloak::base_url`], [`Keycloak::issuer`], ...) is the relay's, so tokens
    /// name one issuer whoever asks.
    pub async fn start_on(address: &str) -> Result<Self> {
        let address: IpAddr = address.parse().map_err(|_| Error::Answer {
            what: "the address to reach Keycloak on".to_owned(),
            message: format!("{address:?} is not an IP address"),
        })?;
        let mut keycloak = Self::start().await?;
        let target = keycloak
            .base_url
            .strip_prefix("http://")
            .and_then(|rest| rest.parse::<SocketAddr>().ok())
            .ok_or_else(|| Error::Answer {
                what: "Keycloak's loopback address".to_owned(),
                message: keycloak.base_url.clone(),
            })?;
        let relay = Relay::start(address, target).await?;
        keycloak.base_url = format!("http://{}", relay.address());
        progress(
            "keycloak",
            &format!("reachable on {} as well", keycloak.base_url),
        );
        keycloak.relay = Some(relay);
        Ok(keycloak)
    }

    /// An access token for the bootstrap admin from the master realm's token endpoint (password
    /// grant with the `admin-cli` client), for the admin REST API.
    pub async fn admin_token(&self) -> Result<String> {
        let what = "the master realm's token endpoint";
        let body = expect_success(
            what,
            self.client
                .post(self.token_endpoint("master"))
                .form(&[
                    ("grant_type", "password"),
                    ("client_id", "admin-cli"),
                    ("username", KEYCLOAK_ADMIN),
                    ("password", self.admin_password.as_str()),
                ])
                .send()
                .await,
        )
        .await?;
        let answer: TokenAnswer = parse_json(what, &body)?;
        if answer.access_token.is_empty() {
            return Err(Error::Answer {
                what: what.into(),
                message: "an empty access_token".into(),
            });
        }
        Ok(answer.access_token)
    }

    /// Creates a realm (the admin API's `POST /admin/realms`), enabled.
    pub async fn create_realm(&self, realm: &str) -> Result<()> {
        let token = self.admin_token().await?;
        expect_success(
            &format!("creating realm {realm}"),
            self.client
                .post(format!("{}/admin/realms", self.base_url))
                .bearer_auth(&token)
                .json(&serde_json::json!({"realm": realm, "enabled": true}))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    /// Creates an enabled user in `realm`, with a verified e-mail address and a name, so that the
    /// account is complete and can log in.
    pub async fn create_user(&self, realm: &str, username: &str, email: &str) -> Result<()> {
        let token = self.admin_token().await?;
        expect_success(
            &format!("creating user {username} in realm {realm}"),
            self.client
                .post(format!("{}/admin/realms/{realm}/users", self.base_url))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "username": username, "email": email, "emailVerified": true,
                    "firstName": username, "lastName": "Berth", "enabled": true,
                }))
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`, the root of every realm and of the admin API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A realm's issuer URL, `<base>/realms/<realm>`.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base_url)
    }

    /// A realm's token endpoint.
    pub fn token_endpoint(&self, realm: &str) -> String {
        format!("{}/protocol/openid-connect/token", self.issuer(realm))
    }

    /// The management interface (`/health`, `/health/ready`).
    pub fn management_url(&self) -> &str {
        &self.management_url
    }

    /// The bootstrap admin's user name in the master realm.
    pub fn admin_username(&self) -> &str {
        KEYCLOAK_ADMIN
    }

    /// The bootstrap admin's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Where this instance keeps its log and transaction log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The process id of `kc.sh`, whose child is the JVM.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Takes the distribution's start lock, waiting (with progress) while another start holds it.
async fn lock_distribution(home: &Path, begin: Instant) -> Result<std::fs::File> {
    let path = home.join(".berth-start.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut next_report = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
        }
        if Instant::now() >= next_report {
            progress(
                "keycloak",
                &format!(
                    "waiting for another Keycloak start to finish its dev-mode build ({:.0} s so far)",
                    begin.elapsed().as_secs_f64()
                ),
            );
            next_report = Instant::now() + Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JDK (21 or newer) to run Keycloak with.
fn java_home(dist: &Path) -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("BERTH_KEYCLOAK_JAVA_HOME") {
        return Ok(PathBuf::from(home));
    }
    match std::fs::read_to_string(dist.join("java-home")) {
        Ok(home) if !home.trim().is_empty() => Ok(PathBuf::from(home.trim())),
        _ => match std::env::var_os("JAVA_HOME") {
            Some(home) => Ok(PathBuf::from(home)),
            None => Err(Error::Build {
                service: "keycloak",
                script: dist.join("java-home"),
                message: "no JDK chosen: set BERTH_KEYCLOAK_JAVA_HOME to a JDK 21 or newer".into(),
            }),
        },
    }
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("making {} executable", path.display()), e))
}
