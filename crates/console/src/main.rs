//! `berth-console`: serves `/notebook/<namespace>/<name>/...` to callers the API server lets
//! `create notebooks/connect` on that Notebook, and the Project pages, acting as the user
//! (docs/console.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use berth_console::acting::{ActAs, Acting, without_credentials};
use berth_console::app::{Config, Console, router};
use berth_console::oidc::OidcSettings;

#[derive(Parser, Debug)]
#[command(name = "berth-console", version, about)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "BERTH_CONSOLE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The console's URL as browsers reach it (its origin checks WebSockets, https makes cookies
    /// Secure, `<url>/oauth2/callback` is the OIDC redirect URI).
    #[arg(long, env = "BERTH_CONSOLE_PUBLIC_URL")]
    public_url: String,
    /// The OIDC issuer of browser logins (Keycloak: `<url>/realms/<realm>`); none: bearer
    /// tokens only.
    #[arg(long, env = "BERTH_CONSOLE_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// The console's client id at the issuer.
    #[arg(
        long,
        env = "BERTH_CONSOLE_OIDC_CLIENT_ID",
        default_value = "berth.console"
    )]
    oidc_client_id: String,
    /// A file holding the client's secret (a mounted Secret).
    #[arg(long, env = "BERTH_CONSOLE_OIDC_CLIENT_SECRET_FILE")]
    oidc_client_secret_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an https issuer no public root signs (the platform's own
    /// CA); without it, the public roots only.
    #[arg(long, env = "BERTH_CONSOLE_OIDC_CA_FILE")]
    oidc_ca_file: Option<PathBuf>,
    /// Put before the verified e-mail to make the Kubernetes user name.
    #[arg(long, env = "BERTH_CONSOLE_OIDC_USERNAME_PREFIX", default_value = "")]
    oidc_username_prefix: String,
    /// Put before each of the `groups` claim's groups.
    #[arg(long, env = "BERTH_CONSOLE_OIDC_GROUPS_PREFIX", default_value = "")]
    oidc_groups_prefix: String,
    /// How pages act as the user: `impersonate` (Impersonate-User/Group through the console's
    /// ServiceAccount, which then needs deploy/rbac/31-console-impersonate.yaml) or `token` (the
    /// user's own bearer token, to an API server that trusts the identity provider).
    #[arg(long, env = "BERTH_CONSOLE_ACT_AS", value_enum, default_value_t = ActAs::Impersonate)]
    act_as: ActAs,
    /// Serve each notebook at an origin of its own, `<label>.<domain>` (scheme and port of
    /// --public-url; a wildcard DNS record and certificate `*.<domain>`), after a login hand-off
    /// through the console. Without it every notebook shares the console's origin, and a
    /// notebook's scripts can act as its visitors on the console's pages: set it in production.
    #[arg(long, env = "BERTH_CONSOLE_NOTEBOOK_DOMAIN")]
    notebook_domain: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let public_url = args.public_url.trim_end_matches('/').to_owned();
    let oidc = match &args.oidc_issuer {
        None => None,
        Some(issuer) => {
            let file = args
                .oidc_client_secret_file
                .as_ref()
                .context("--oidc-issuer needs --oidc-client-secret-file")?;
            let secret = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .trim()
                .to_owned();
            anyhow::ensure!(!secret.is_empty(), "{} is empty", file.display());
            let ca_pem = args
                .oidc_ca_file
                .as_ref()
                .map(|f| {
                    std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))
                })
                .transpose()?;
            Some(OidcSettings {
                issuer: issuer.clone(),
                client_id: args.oidc_client_id.clone(),
                client_secret: secret,
                redirect_uri: format!("{public_url}/oauth2/callback"),
                username_prefix: args.oidc_username_prefix.clone(),
                groups_prefix: args.oidc_groups_prefix.clone(),
                ca_pem,
            })
        }
    };
    let config = kube::Config::infer()
        .await
        .context("the in-cluster configuration (or KUBECONFIG)")?;
    let kube = kube::Client::try_from(config.clone()).context("the console's client")?;
    let acting = match args.act_as {
        ActAs::Impersonate => Acting::new(ActAs::Impersonate, kube.clone()),
        // No credential of the console's: the user's bearer is the only Authorization.
        ActAs::Token => Acting::new(
            ActAs::Token,
            kube::Client::try_from(without_credentials(config))
                .context("the client for users' tokens")?,
        ),
    };
    if args.notebook_domain.is_none() {
        tracing::warn!(
            "no --notebook-domain: every notebook is served on the console's own origin, where a notebook's JavaScript runs with its visitor's console session (it can read and post the console's pages as them); set --notebook-domain in production (docs/console.md, \"An origin per notebook\")"
        );
    }
    let console = Console::with_acting(
        Config {
            public_url,
            oidc,
            notebook_domain: args.notebook_domain.clone(),
        },
        kube,
        acting,
    )?;
    console.watch_projects();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, origin = console.origin(), act_as = %args.act_as, notebook_domain = ?args.notebook_domain, "berth-console serving");
    berth_console::serve::serve(
        listener,
        router(console),
        berth_console::serve::HEADER_READ_TIMEOUT,
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    Ok(())
}
