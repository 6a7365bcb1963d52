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

use crate::providers::{CONSOLE_CLIENT, REALM, Realm, SampleLogin};
use crate::repo_root;

/// The sample project every sample account but the outsider is a member of.
const SAMPLE_PROJECT: &str = "fraud-detection";

/// Builds `berth-console` (debug, the workspace's target directory) and returns its path.
fn binary() -> Result<PathBuf> {
    let root = repo_root();
    let status = crate::cargo()
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
pub async fn smoke_check(realm: &Realm, logins: &[SampleLogin]) -> Result<()> {
    let http = client()?;
    let home = format!("{}/", realm.console_url);
    let anonymous = http.get(&home).header("accept", "text/html").send().await?;
    ensure!(
        anonymous.status().is_redirection(),
        "the console answered {} to a browser without a session, not a redirect to log in",
        anonymous.status()
    );
    for (email, _, tokens) in logins {
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
        logins.len().saturating_sub(1)
    );
    Ok(())
}

/// The sample account that may create projects on the dev platform (ClusterRoleBinding
/// [`CREATORS_BINDING`] to `berth-project-creator`): the owner of the browser walks.
pub const PROJECT_CREATOR: &str = "data.scientist@example.com";
/// The ClusterRoleBinding that lets [`PROJECT_CREATOR`] create projects.
pub const CREATORS_BINDING: &str = "berth-dev-project-creators";
/// The member the owner's walk adds by e-mail (a viewer of the sample project).
const WALK_MEMBER: &str = "analyst@example.com";
/// The Keycloak group the owner's walk adds (editors of the sample project).
const WALK_GROUP: &str = "risk-engineers";
/// A sample account as [`Realm::accounts`] holds it: e-mail, password, Keycloak groups.
type SampleAccount = (String, String, Vec<String>);
/// The sample project's notebook and model the viewer and the outsider walk to.
const SAMPLE_NOTEBOOK: &str = "lab";
const SAMPLE_MODEL: &str = "fraud-scorer";

/// Lets [`PROJECT_CREATOR`] create projects, as a platform team grants it (docs/console.md,
/// "New project").
pub async fn grant_project_creator(client: &kube::Client) -> Result<()> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    use kube::api::{Api, Patch, PatchParams};
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": CREATORS_BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth-project-creator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROJECT_CREATOR}],
    });
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            CREATORS_BINDING,
            &PatchParams::apply("berth-dev").force(),
            &Patch::Apply(&binding),
        )
        .await
        .context("binding berth-project-creator")?;
    Ok(())
}

/// The environment of the browser walks (tools/e2e/platform.mjs) against this console
/// with the sample accounts and Keycloak's CA: `kubeconfig` is the platform admin's (the walks check objects with
/// kubectl), `placement` the annotations that put the owner's new project's pods on the real
/// node; screenshots go under `<dir>/e2e-artifacts`.
///
/// Errors: an account the walks need is not among the samples'.
pub fn walk_env(
    realm: &Realm,
    keycloak: &Keycloak,
    dir: &Path,
    kubeconfig: &Path,
    placement: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(&'static str, String)>> {
    let account = |found: Option<&SampleAccount>, what: &str| {
        found
            .map(|(email, password, _)| serde_json::json!({"user": email, "password": password}))
            .with_context(|| format!("the samples give no {what} account"))
    };
    let all = &realm.accounts;
    let by_email = |email: &str| all.iter().find(|a| a.0 == email);
    let accounts = serde_json::json!({
        "owner": account(by_email(PROJECT_CREATOR), PROJECT_CREATOR)?,
        "member": account(by_email(WALK_MEMBER), WALK_MEMBER)?,
        "viewer": account(by_email(WALK_MEMBER), WALK_MEMBER)?,
        "groupMember": account(all.iter().find(|a| a.2.iter().any(|g| g == WALK_GROUP)), WALK_GROUP)?,
        "outsider": account(all.iter().find(|a| a.0.starts_with("outsider@")), "outsider")?,
        "group": WALK_GROUP,
    });
    let sample = serde_json::json!({
        "project": SAMPLE_PROJECT, "notebook": SAMPLE_NOTEBOOK, "model": SAMPLE_MODEL,
    });
    // Keycloak's certificate is signed by a CA of its own: the walks verify it with that CA
    // and let Chromium accept that one certificate (tools/e2e/run.mjs).
    let issuer = keycloak
        .https_issuer(REALM)
        .context("Keycloak serves no HTTPS")?;
    let ca = keycloak.ca_path().context("Keycloak has no CA file")?;
    Ok(vec![
        ("BERTH_E2E_CONSOLE_URL", realm.console_url.clone()),
        ("BERTH_E2E_IDP_URL", issuer),
        ("BERTH_E2E_IDP_CA_FILE", ca.display().to_string()),
        ("BERTH_E2E_ACCOUNTS", accounts.to_string()),
        ("BERTH_E2E_SAMPLE", sample.to_string()),
        ("BERTH_E2E_KUBECONFIG", kubeconfig.display().to_string()),
        ("BERTH_E2E_PLACEMENT", serde_json::to_string(placement)?),
        (
            "BERTH_E2E_ARTIFACTS",
            dir.join("e2e-artifacts").display().to_string(),
        ),
    ])
}

/// The walks, run by hand against the running platform: [`walk_env`] written to `<dir>/e2e.env`
/// (owner-only: it holds the sample passwords), and the command printed.
pub fn explain_walks(env: &[(&'static str, String)], dir: &Path) -> Result<()> {
    let mut text = String::new();
    for (key, value) in env {
        ensure!(!value.contains('\''), "{key} holds a quote");
        text.push_str(&format!("export {key}='{value}'\n"));
    }
    let file = dir.join("e2e.env");
    crate::dev::write_private(&file, &text)?;
    eprintln!(
        "The browser walks (owner, member, viewer, outsider; docs/development.md, \"Browser tests\"):"
    );
    eprintln!();
    eprintln!(
        "    (. {} && tools/e2e/install.sh >/dev/null && BERTH_CHROMIUM=$(tools/chromium.sh) node tools/e2e/run.mjs owner member viewer outsider)",
        file.display()
    );
    eprintln!();
    Ok(())
}

/// For `--smoke`: the browser walks (tools/e2e: `owner`, `member`, `viewer`,
/// `outsider`) with the environment [`walk_env`] gives.
///
/// Errors: Chromium or playwright-core missing, a walk failed.
pub async fn walks(env: Vec<(&'static str, String)>, dir: &Path) -> Result<()> {
    let begin = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let prepared = crate::e2e::prepare()?;
        Command::new("node")
            .current_dir(repo_root())
            .arg(prepared.dir.join("run.mjs"))
            .args(["owner", "member", "viewer", "outsider"])
            .env("BERTH_CHROMIUM", &prepared.chromium)
            .envs(env)
            .status()
            .context("running node (Node 20 or newer) tools/e2e/run.mjs")
    })
    .await??;
    let artifacts = dir.join("e2e-artifacts");
    ensure!(
        status.success(),
        "the browser walks failed ({status}); screenshots in {}",
        artifacts.display()
    );
    eprintln!(
        "    the browser walks (owner, member, viewer, outsider) passed in {:.1} s; screenshots in {}",
        begin.elapsed().as_secs_f64(),
        artifacts.display()
    );
    Ok(())
}
