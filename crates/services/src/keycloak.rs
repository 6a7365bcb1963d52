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
use crate::{Error, Relay, Result, tls};

/// The bootstrap admin's user name in the master realm.
pub const KEYCLOAK_ADMIN: &str = "admin";

/// A running Keycloak in dev mode (`kc.sh start-dev`, in-memory database) on free loopback ports,
/// with a bootstrap admin whose password is generated at random. Dropping it stops the server and
/// removes its directory.
pub struct Keycloak {
    // Fields drop in order: the relays and the server stop before the directory is removed.
    relay: Option<Relay>,
    https_relay: Option<Relay>,
    process: Process,
    dir: RunDir,
    base_url: String,
    https: Option<Https>,
    management_url: String,
    admin_password: String,
    client: reqwest::Client,
}

/// Keycloak's HTTPS side: its URL and the CA that signed its certificate.
struct Https {
    base_url: String,
    ca_pem: String,
    ca_path: PathBuf,
}

/// How to start Keycloak ([`Keycloak::start_with`]).
#[derive(Clone, Debug, Default)]
pub struct KeycloakOptions {
    /// Also serve HTTPS, with a certificate for `127.0.0.1`, `localhost` and `address`, signed by
    /// a CA made for this instance ([`Keycloak::ca_path`]): what kube-apiserver requires of an
    /// issuer it trusts (`jwt[].issuer.url` must be `https`). Plain HTTP keeps answering on
    /// [`Keycloak::base_url`] for the callers that use it.
    pub https: bool,
    /// Reachable on this address as well (the real node's), through a [`Relay`] per scheme; see
    /// [`Keycloak::start_on`].
    pub address: Option<IpAddr>,
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
        Self::start_with(KeycloakOptions::default()).await
    }

    /// [`Keycloak::start`] with options: HTTPS beside HTTP, and another address to be reached on.
    ///
    /// Keycloak names a realm's issuer after the URL it is reached by (dev mode sets no
    /// `--hostname`), so a token's `iss` is the URL its client used: the HTTPS issuer
    /// ([`Keycloak::https_issuer`]) for those that ask over HTTPS, the HTTP one
    /// ([`Keycloak::issuer`]) for the others. A verifier must fetch its keys and tokens through
    /// the same URL as the clients it serves.
    pub async fn start_with(options: KeycloakOptions) -> Result<Self> {
        let mut keycloak = Self::launch(options.https, options.address).await?;
        if let Some(address) = options.address {
            keycloak.relay_on(address).await?;
        }
        Ok(keycloak)
    }

    async fn launch(https: bool, relay_address: Option<IpAddr>) -> Result<Self> {
        let address = "127.0.0.1";
        let home = locate("keycloak", "tools/keycloak/build.sh", "BERTH_KEYCLOAK_DIR")?;
        let java_home = java_home(&home)?;
        let begin = Instant::now();
        let dir = RunDir::new("keycloak")?;
        let [port, management_port, https_port] = free_ports()?;
        let base_url = format!("http://{address}:{port}");
        let admin_password = random_hex(16)?;
        let https = if https {
            let mut names = vec![address.to_owned(), "localhost".to_owned()];
            names.extend(relay_address.map(|a| a.to_string()));
            let pki = tls::Pki::generate(&names)?;
            let ca_path = dir.join("ca.crt");
            write(&ca_path, &pki.ca_pem)?;
            write(&dir.join("tls.crt"), &pki.cert_pem)?;
            write(&dir.join("tls.key"), &pki.key_pem)?;
            Some(Https {
                base_url: format!("https://{address}:{https_port}"),
                ca_pem: pki.ca_pem,
                ca_path,
            })
        } else {
            None
        };
        // With HTTPS on, the management interface serves HTTPS too (it takes the main one's
        // certificate).
        let management_url = format!(
            "{}://{address}:{management_port}",
            if https.is_some() { "https" } else { "http" }
        );
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

        let mut args = vec![
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
        if https.is_some() {
            args.extend([
                format!("--https-port={https_port}"),
                format!("--https-certificate-file={}", dir.join("tls.crt").display()),
                format!(
                    "--https-certificate-key-file={}",
                    dir.join("tls.key").display()
                ),
            ]);
        }
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
        let client = match &https {
            Some(https) => tls::client_trusting(&https.ca_pem)?,
            None => http_client()?,
        };
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
        if let Some(https) = &https {
            let discovery = format!(
                "{}/realms/master/.well-known/openid-configuration",
                https.base_url
            );
            wait_until(
                &mut process,
                "the master realm's OIDC discovery over HTTPS",
                Duration::from_secs(60),
                begin,
                || answers_ok(&client, &discovery),
            )
            .await?;
        }
        progress(
            "keycloak",
            &format!("ready after {:.1} s", begin.elapsed().as_secs_f64()),
        );
        Ok(Self {
            relay: None,
            https_relay: None,
            process,
            dir,
            base_url,
            https,
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
        Self::start_with(KeycloakOptions {
            https: false,
            address: Some(address),
        })
        .await
    }

    /// Puts a relay on `address` in front of each scheme and makes the URLs the relays'.
    async fn relay_on(&mut self, address: IpAddr) -> Result<()> {
        let target = |url: &str| {
            url.split_once("://")
                .and_then(|(_, rest)| rest.parse::<SocketAddr>().ok())
                .ok_or_else(|| Error::Answer {
                    what: "Keycloak's loopback address".to_owned(),
                    message: url.to_owned(),
                })
        };
        let relay = Relay::start(address, target(&self.base_url)?).await?;
        self.base_url = format!("http://{}", relay.address());
        progress(
            "keycloak",
            &format!("reachable on {} as well", self.base_url),
        );
        self.relay = Some(relay);
        if let Some(https) = &mut self.https {
            let relay = Relay::start(address, target(&https.base_url)?).await?;
            https.base_url = format!("https://{}", relay.address());
            progress(
                "keycloak",
                &format!("reachable on {} as well", https.base_url),
            );
            self.https_relay = Some(relay);
        }
        Ok(())
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

    /// Creates a realm (the admin API's `POST /admin/realms`), enabled, with what a user may do
    /// to their own account stated rather than left to Keycloak's defaults: no self-registration,
    /// no editing of one's user name, and no two users with one e-mail address. A user may still
    /// change their e-mail address in the account console; Keycloak then records it as not
    /// verified (`email_verified: false`), which the console and the API server refuse as a name.
    pub async fn create_realm(&self, realm: &str) -> Result<()> {
        let token = self.admin_token().await?;
        expect_success(
            &format!("creating realm {realm}"),
            self.client
                .post(format!("{}/admin/realms", self.base_url))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "realm": realm, "enabled": true,
                    "registrationAllowed": false,
                    "editUsernameAllowed": false,
                    "duplicateEmailsAllowed": false,
                }))
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

    /// `https://<address>:<port>`, Keycloak's HTTPS side, when started with
    /// [`KeycloakOptions::https`].
    pub fn https_base_url(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.base_url.as_str())
    }

    /// A realm's issuer over HTTPS, `https://<address>:<port>/realms/<realm>`: the `iss` of every
    /// token asked for at that URL. `None` without [`KeycloakOptions::https`].
    pub fn https_issuer(&self, realm: &str) -> Option<String> {
        self.https_base_url()
            .map(|base| format!("{base}/realms/{realm}"))
    }

    /// The CA certificate (PEM) that signed the HTTPS certificate, made for this instance.
    pub fn ca_pem(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.ca_pem.as_str())
    }

    /// Where [`Keycloak::ca_pem`] is written (in this instance's directory).
    pub fn ca_path(&self) -> Option<&Path> {
        self.https.as_ref().map(|h| h.ca_path.as_path())
    }

    /// An HTTP client that trusts [`Keycloak::ca_pem`] (and only public roots besides), for
    /// the HTTPS side; the plain client otherwise.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
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
