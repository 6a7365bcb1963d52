//! The console in `cargo xtask dev`: `berth-console` as a process on loopback, in token mode —
//! the local API server trusts Keycloak's ID tokens for the console's client
//! (`providers::CONSOLE_CLIENT`), so the console forwards each user's own token and holds no
//! impersonation power (docs/console.md, "Acting as the user"). Its own ServiceAccount
//! (`berth-system/berth-console`, installed by the chart) reviews tokens and watches Projects.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_services::Keycloak;
use berth_testenv::Cluster;
use berth_testenv::Process;

use crate::providers::{CONSOLE_CLIENT, REALM, Realm};
use crate::repo_root;

/// The sample project every sample account but the outsider is a member of.
const SAMPLE_PROJECT: &str = "fraud-detection";

/// Builds `berth-console` (debug, the workspace's target directory) and returns its path.
fn binary() -> Result<PathBuf> {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
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

/// Starts the console at `realm.console_url` (loopback) and waits for its `/healthz`.
///
/// Errors: the build, the ServiceAccount's token, a console that exits or does not answer
/// within 30 s (with the end of its log).
pub async fn start(
    cluster: &Cluster,
    dir: &Path,
    keycloak: &Keycloak,
    realm: &Realm,
    secret_file: &Path,
) -> Result<Process> {
    let program = binary()?;
    let kubeconfig = dir.join("console.kubeconfig");
    cluster
        .service_account_kubeconfig("berth-system", "berth-console", &kubeconfig)
        .await
        .context("a kubeconfig for the console's ServiceAccount")?;
    let issuer = keycloak
        .https_issuer(REALM)
        .context("Keycloak serves no HTTPS")?;
    let ca = keycloak.ca_path().context("Keycloak has no CA file")?;
    let listen = realm
        .console_url
        .strip_prefix("http://")
        .context("the dev console's URL is http://<loopback>:<port>")?;
    let args = [
        format!("--listen={listen}"),
        format!("--public-url={}", realm.console_url),
        "--act-as=token".to_owned(),
        "--notebook-domain=nb.localhost".to_owned(),
        format!("--oidc-issuer={issuer}"),
        format!("--oidc-ca-file={}", ca.display()),
        format!("--oidc-client-id={CONSOLE_CLIENT}"),
        format!("--oidc-client-secret-file={}", secret_file.display()),
    ];
    let mut console = Process::spawn_with_env(
        "berth-console",
        &program,
        &args,
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.join("console.log"),
    )?;
    let health = format!("{}/healthz", realm.console_url);
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = console.exited() {
            bail!(
                "berth-console exited with {status}:\n{}",
                console.log_tail(4000)
            );
        }
        if http
            .get(&health)
            .send()
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// How a new user opens the console.
pub fn explain(realm: &Realm, dir: &Path) {
    eprintln!(
        "The console: open {}/ and log in with a sample account below (log: {})",
        realm.console_url,
        dir.join("console.log").display()
    );
}

/// For `--smoke`: each sample account's own ID token, sent to the console as a bearer token,
/// shows the sample project on *My projects* to its members and not to the outsider, whose
/// direct URL to the project's page is refused; a browser without a session is sent to log in.
pub async fn smoke_check(keycloak: &Keycloak, realm: &Realm) -> Result<()> {
    let http = client()?;
    let home = format!("{}/", realm.console_url);
    let anonymous = http.get(&home).header("accept", "text/html").send().await?;
    ensure!(
        anonymous.status().is_redirection(),
        "the console answered {} to a browser without a session, not a redirect to log in",
        anonymous.status()
    );
    for (email, password, _) in &realm.accounts {
        let tokens = keycloak
            .log_in(
                REALM,
                &realm.console,
                &realm.console_secret,
                email,
                password,
            )
            .await
            .with_context(|| format!("logging {email} in"))?;
        let page = |path: &str| {
            http.get(format!("{}{path}", realm.console_url))
                .bearer_auth(&tokens.id_token)
                .send()
        };
        let mine = page("/").await?;
        let status = mine.status();
        let body = mine.text().await?;
        ensure!(
            status.is_success(),
            "My projects answered {status} to {email}: {}",
            body.chars().take(400).collect::<String>()
        );
        let outsider = email.starts_with("outsider@");
        let listed = body.contains(&format!("/projects/{SAMPLE_PROJECT}"));
        if listed == outsider {
            bail!(
                "My projects of {email} {} {SAMPLE_PROJECT}",
                if outsider { "lists" } else { "does not list" }
            );
        }
        let project = page(&format!("/projects/{SAMPLE_PROJECT}")).await?.status();
        let allowed = project.is_success();
        ensure!(
            allowed != outsider,
            "the page of {SAMPLE_PROJECT} answered {project} to {email}"
        );
    }
    eprintln!(
        "    the console (token mode) showed {SAMPLE_PROJECT} to its {} members' own ID tokens and refused the outsider",
        realm.accounts.len().saturating_sub(1)
    );
    Ok(())
}
