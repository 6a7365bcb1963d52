//! The console in a real browser (issue 15's browser tests, the first scenarios): Debian's
//! Chromium driven by playwright-core (`node tools/e2e/run.mjs <scenario>`, docs/development.md,
//! "Browser tests") against the real `berth-console` binary, which runs as a process under its shipped
//! ServiceAccount (deploy/rbac/30-console.yaml) on a control plane of its own, with a real
//! Keycloak as its identity provider.
//!
//! The `login` scenario logs a realm user in through Keycloak's own login form (the console's
//! code flow with PKCE), finds their name on `/`, logs out, and is asked to log in again; a wrong
//! password and an unknown user stay on Keycloak's page with its error. `notebook-link` opens a
//! notebook's link without a session (the console runs with `--notebook-domain nb.localhost`, so
//! the link goes through the notebook's own host to the console's hand-off), logs in, comes back
//! to that hand-off and gets 403 naming the user (a member of nothing). This test also checks what the browser cannot see: after `login`,
//! Keycloak holds no session of the user any more (the logout ended it there too), and after
//! both, a screenshot of every page visited is on disk.
//!
//! Skipped, with a message, only when `BERTH_CHROMIUM` (set by `cargo xtask test` from
//! tools/chromium.sh) is not set.
//!
//! The module's name sorts last on purpose: libtest starts tests in name order on as many
//! threads as cores (two here), so the binary's two longest tests start first and this one
//! (about 45 s, most of it Keycloak's start) takes the turn of the shorter one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use berth_services::Keycloak;
use berth_testenv::{ControlPlane, Options, Process};

const REALM: &str = "console-e2e";
const CLIENT_ID: &str = "berth.console";
const USER: &str = "ada";
const EMAIL: &str = "ada@example.com";

/// The console binary: `BERTH_CONSOLE_BIN`, else built now (as berth_testenv finds the operator).
fn console_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("BERTH_CONSOLE_BIN") {
        return Ok(bin.into());
    }
    let root = berth_testenv::util::repo_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--package",
            "berth-console",
            "--bin",
            "berth-console",
        ])
        .status()
        .context("running cargo build --package berth-console")?;
    ensure!(status.success(), "building berth-console failed ({status})");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug/berth-console"))
}

/// A call of Keycloak's admin API on the test's realm; its JSON answer (Null when empty).
async fn admin(
    keycloak: &Keycloak,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!("{}/admin/realms/{REALM}{path}", keycloak.base_url()),
        )
        .bearer_auth(keycloak.admin_token().await?);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await?;
    let status = answer.status();
    let text = answer.text().await?;
    ensure!(status.is_success(), "Keycloak {path}: {status} {text}");
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    })
}

/// The realm: the console's confidential client (code flow, PKCE S256, its callback and `/` after
/// logout) and one user with a verified e-mail and a password.
async fn realm(keycloak: &Keycloak, console: &str, secret: &str, password: &str) -> Result<()> {
    keycloak.create_realm(REALM).await?;
    admin(
        keycloak,
        reqwest::Method::POST,
        "/clients",
        Some(json!({
            "clientId": CLIENT_ID, "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "secret": secret, "standardFlowEnabled": true,
            "directAccessGrantsEnabled": false,
            "redirectUris": [format!("{console}/oauth2/callback")],
            "attributes": {
                "pkce.code.challenge.method": "S256",
                "post.logout.redirect.uris": format!("{console}/"),
            },
        })),
    )
    .await?;
    admin(
        keycloak,
        reqwest::Method::POST,
        "/users",
        Some(json!({
            "username": USER, "email": EMAIL, "emailVerified": true, "enabled": true,
            "firstName": "Ada", "lastName": "Lovelace",
            "credentials": [{"type": "password", "value": password, "temporary": false}],
        })),
    )
    .await?;
    Ok(())
}

/// Starts `berth-console` on `port` of loopback, with `public` as its URL, and waits for
/// `/healthz`.
async fn start_console(
    plane: &ControlPlane,
    issuer: &str,
    public: &str,
    port: u16,
    secret: &str,
) -> Result<Process> {
    let dir = plane.dir();
    let kubeconfig = dir.join("console.kubeconfig");
    plane
        .cluster()
        .service_account_kubeconfig("berth-system", "berth-console", &kubeconfig)
        .await?;
    let secret_file = dir.join("console-client-secret");
    std::fs::write(&secret_file, secret)?;
    let args = [
        format!("--listen=127.0.0.1:{port}"),
        format!("--public-url={public}"),
        // Notebooks on hosts of their own (*.localhost is loopback to Chromium).
        "--notebook-domain=nb.localhost".to_owned(),
        format!("--oidc-issuer={issuer}"),
        format!("--oidc-client-id={CLIENT_ID}"),
        format!("--oidc-client-secret-file={}", secret_file.display()),
    ];
    let mut console = Process::spawn_with_env(
        "berth-console",
        &console_binary()?,
        &args,
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.join("console.log"),
    )?;
    let health = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = console.exited() {
            bail!(
                "berth-console exited with {status}:\n{}",
                console.log_tail(4000)
            );
        }
        if reqwest::get(&health)
            .await
            .is_ok_and(|a| a.status().is_success())
        {
            return Ok(console);
        }
        if Instant::now() > deadline {
            bail!(
                "berth-console did not answer {health} in 30 s:\n{}",
                console.log_tail(4000)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PNG files under `dir`, sorted.
fn screenshots(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut shots: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    shots.sort();
    Ok(shots)
}

/// How the test runs `node tools/e2e/run.mjs <scenario>` against its console.
struct Browser {
    chromium: PathBuf,
    console: String,
    password: String,
    artifacts: PathBuf,
}

impl Browser {
    /// Runs one scenario; fails with the console's log when it fails or the console died.
    async fn run(&self, scenario: &str, console: &mut Process) -> Result<()> {
        let root = berth_testenv::util::repo_root();
        let mut node = Command::new("node");
        node.current_dir(root)
            .arg(root.join("tools/e2e/run.mjs"))
            .arg(scenario)
            .env("BERTH_CHROMIUM", &self.chromium)
            .env("BERTH_E2E_CONSOLE_URL", &self.console)
            .env("BERTH_E2E_USER", USER)
            .env("BERTH_E2E_PASSWORD", &self.password)
            .env("BERTH_E2E_USER_NAME", EMAIL)
            .env("BERTH_E2E_ARTIFACTS", &self.artifacts);
        let begin = Instant::now();
        let run = tokio::task::spawn_blocking(move || node.status()).await??;
        eprintln!(
            "the browser scenario {scenario} took {:.1} s",
            begin.elapsed().as_secs_f64()
        );
        if !run.success() {
            bail!(
                "the browser scenario {scenario} failed ({run}); the console's log:\n{}",
                console.log_tail(4000)
            );
        }
        if let Some(status) = console.exited() {
            bail!("berth-console exited with {status} during {scenario}");
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_user_logs_in_to_the_console_in_a_browser_sees_who_they_are_and_logs_out() -> Result<()> {
    let Some(chromium) = std::env::var_os("BERTH_CHROMIUM").map(PathBuf::from) else {
        eprintln!(
            "SKIPPED: Chromium is not installed for the browser tests (BERTH_CHROMIUM is not set); \
             `cargo xtask test` sets it from tools/chromium.sh"
        );
        return Ok(());
    };
    ensure!(
        chromium.exists(),
        "BERTH_CHROMIUM={} does not exist",
        chromium.display()
    );
    let root = berth_testenv::util::repo_root();
    // playwright-core (npm ci; nothing when tools/e2e/node_modules is already this lock's).
    let install = Command::new("bash")
        .arg(root.join("tools/e2e/install.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("running tools/e2e/install.sh")?;
    ensure!(install.success(), "tools/e2e/install.sh failed ({install})");

    let (plane, keycloak) =
        tokio::join!(ControlPlane::start(Options::default()), Keycloak::start());
    let (plane, keycloak) = (plane?, keycloak?);
    let [port] = berth_testenv::util::free_ports()?;
    // The console on `localhost`, Keycloak on 127.0.0.1: two sites, as in production, so the
    // session and login cookies must work with SameSite=Lax across the redirects.
    let public = format!("http://localhost:{port}");
    let secret = berth_testenv::util::random_hex(16)?;
    let password = berth_testenv::util::random_hex(12)?;
    realm(&keycloak, &public, &secret, &password).await?;
    let mut console =
        start_console(&plane, &keycloak.issuer(REALM), &public, port, &secret).await?;

    let artifacts = root.join("target/e2e-artifacts");
    let browser = Browser {
        chromium,
        console: public,
        password,
        artifacts: artifacts.clone(),
    };
    browser.run("login", &mut console).await?;
    // The logout ended Keycloak's session too, not only the console's.
    let users = admin(
        &keycloak,
        reqwest::Method::GET,
        &format!("/users?username={USER}&exact=true"),
        None,
    )
    .await?;
    let id = users[0]["id"]
        .as_str()
        .context("no such user in the realm")?;
    let sessions = admin(
        &keycloak,
        reqwest::Method::GET,
        &format!("/users/{id}/sessions"),
        None,
    )
    .await?;
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(0),
        "Keycloak still holds the user's session after the console's logout: {sessions}"
    );

    browser.run("notebook-link", &mut console).await?;

    // A screenshot of every step's page, each a PNG.
    for (scenario, steps) in [("login", 9), ("notebook-link", 3)] {
        let dir = artifacts.join(scenario);
        let shots = screenshots(&dir)?;
        assert!(
            shots.len() >= steps,
            "{scenario}: {} screenshots, one per step ({steps}) expected: {shots:?}",
            shots.len()
        );
        for shot in &shots {
            let bytes = std::fs::read(shot)?;
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
                "{} is not a screenshot",
                shot.display()
            );
        }
        eprintln!("{} screenshots in {}", shots.len(), dir.display());
    }
    Ok(())
}
