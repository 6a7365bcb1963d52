//! The dev platform's providers: Garage for object storage and Keycloak for OIDC, configured the
//! way a platform team would: admin credentials in Secrets in berth-system, the chart's values
//! naming them (charts/berth makes the PlatformSettings), a realm with the sample Projects' users.

use std::path::Path;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::Api;
use serde::Deserialize;
use serde_json::json;

use berth_api::{MemberKind, Project};
use berth_services::{Account, ConsoleClient, Garage, Keycloak};

/// The realm the dev platform's projects get their OIDC clients in.
pub const REALM: &str = "berth";

/// The console's OIDC client in the dev realm: a name no Project's client (`berth-<project>`)
/// can take, so no tenant ever holds a client whose ID tokens the API server accepts.
pub const CONSOLE_CLIENT: &str = "berth.console";

/// What the realm holds for people: the console's client and the sample accounts.
pub struct Realm {
    pub console: ConsoleClient,
    pub console_url: String,
    pub console_secret: String,
    /// Sample accounts (e-mail, password, Keycloak groups), each able to log in.
    pub accounts: Vec<(String, String, Vec<String>)>,
}

/// Creates the realm before the API server starts (it trusts the realm's HTTPS issuer): the
/// console's client (redirect URI `<console_url>/oauth2/callback`), an account with a password
/// for each User member of the sample Projects, one for each Group member (put in that Keycloak
/// group) and an outsider, all with verified e-mails.
pub async fn realm(keycloak: &Keycloak, samples: &Path, console_url: &str) -> Result<Realm> {
    keycloak.create_realm(REALM).await?;
    let console = ConsoleClient {
        client_id: CONSOLE_CLIENT.to_owned(),
        redirect_uri: format!("{console_url}/oauth2/callback"),
        post_logout_redirect_uri: format!("{console_url}/"),
    };
    let console_secret = keycloak.create_console_client(REALM, &console).await?;
    let (mut users, mut groups) = sample_members(samples)?;
    users.sort();
    users.dedup();
    groups.sort();
    groups.dedup();
    let mut accounts: Vec<(String, Vec<String>)> =
        users.into_iter().map(|u| (u, Vec::new())).collect();
    accounts.extend(
        groups
            .into_iter()
            .map(|g| (format!("{g}.member@example.com"), vec![g])),
    );
    accounts.push(("outsider@example.com".to_owned(), Vec::new()));
    let mut out = Vec::new();
    for (email, groups) in accounts {
        let password = berth_testenv::util::random_hex(8)?;
        let group_names: Vec<&str> = groups.iter().map(String::as_str).collect();
        keycloak
            .create_account(
                REALM,
                &Account {
                    username: &email,
                    email: &email,
                    email_verified: true,
                    password: Some(&password),
                    groups: &group_names,
                },
            )
            .await
            .with_context(|| format!("creating the sample account {email}"))?;
        out.push((email, password, groups));
    }
    eprintln!(
        "    realm {REALM}: the console's client {CONSOLE_CLIENT} and {} sample accounts",
        out.len()
    );
    Ok(Realm {
        console,
        console_url: console_url.to_owned(),
        console_secret,
        accounts: out,
    })
}

/// Writes the admin Secrets; returns the chart values (`credentials`, `settings`) that point
/// the platform at both providers. The realm is made first ([`realm`]).
pub async fn configure(
    client: &Client,
    garage: &Garage,
    keycloak: &Keycloak,
) -> Result<serde_json::Value> {
    admin_secret(
        client,
        "garage-admin",
        &[("adminToken", garage.admin_token())],
    )
    .await?;
    admin_secret(
        client,
        "keycloak-admin",
        &[
            ("username", keycloak.admin_username()),
            ("password", keycloak.admin_password()),
        ],
    )
    .await?;
    // The chart makes the PlatformSettings from these values, naming the Secrets above.
    Ok(json!({
        "credentials": {
            "storage": {"existingSecret": "garage-admin"},
            "identity": {"existingSecret": "keycloak-admin"},
        },
        "settings": {
            "storage": {
                "provider": "garage",
                "endpoint": garage.s3_endpoint(),
                "adminEndpoint": garage.admin_endpoint(),
                "region": garage.region(),
                // Project pods reach the S3 port only (the CIDR is the dev platform's).
                "egressTo": {"ports": berth_services::port_of(garage.s3_endpoint()).into_iter().collect::<Vec<_>>()},
            },
            "identity": {
                "provider": "keycloak",
                "url": keycloak.base_url(),
                "realm": REALM,
                "egressTo": {"ports": berth_services::port_of(keycloak.base_url()).into_iter().collect::<Vec<_>>()},
            },
        },
    }))
}

/// The User members (owners included) and the Group members of the sample Projects.
fn sample_members(samples: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for entry in std::fs::read_dir(samples)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("Project") {
                continue;
            }
            let project: Project = serde_yaml::from_value(value)
                .with_context(|| format!("reading {}", path.display()))?;
            users.extend(project.spec.owners.iter().cloned());
            users.extend(
                project
                    .spec
                    .members
                    .iter()
                    .filter(|m| m.kind == MemberKind::User)
                    .map(|m| m.name.clone()),
            );
            groups.extend(
                project
                    .spec
                    .members
                    .iter()
                    .filter(|m| m.kind == MemberKind::Group)
                    .map(|m| m.name.clone()),
            );
        }
    }
    Ok((users, groups))
}

async fn admin_secret(client: &Client, name: &str, data: &[(&str, &str)]) -> Result<()> {
    berth_testenv::manifests::apply_secret(client, "berth-system", name, data).await?;
    Ok(())
}

/// What the console needs to forward its users' own ID tokens to the API server, and the
/// sample accounts to log in with.
pub fn explain_console(keycloak: &Keycloak, realm: &Realm, secret_file: &Path) {
    let issuer = keycloak.https_issuer(REALM).unwrap_or_default();
    let ca = keycloak
        .ca_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    eprintln!("The API server trusts Keycloak's ID tokens for the console (docs/development.md):");
    eprintln!("    issuer         {issuer}");
    eprintln!("    CA             {ca}");
    eprintln!("    client id      {CONSOLE_CLIENT}");
    eprintln!("    client secret  {}", secret_file.display());
    eprintln!("    redirect URI   {}/oauth2/callback", realm.console_url);
    eprintln!();
    eprintln!("Sample accounts (Keycloak realm {REALM}; e-mail, password, groups):");
    for (email, password, groups) in &realm.accounts {
        eprintln!("    {email:<36} {password}  {}", groups.join(","));
    }
    eprintln!();
}

/// How a new user sees what the sample project got.
pub fn explain(garage: &Garage, keycloak: &Keycloak) {
    eprintln!("Object storage (Garage): S3 at {}", garage.s3_endpoint());
    eprintln!(
        "OIDC (Keycloak): {} (admin console user {}, password {})",
        keycloak.issuer(REALM),
        keycloak.admin_username(),
        keycloak.admin_password()
    );
    eprintln!();
    eprintln!("The sample project's bucket, with aws-cli:");
    eprintln!();
    eprintln!(
        "    eval \"$(kubectl -n fraud-detection get secret berth-storage -o go-template='{{{{range $k, $v := .data}}}}export {{{{$k}}}}={{{{$v | base64decode}}}}{{{{\"\\n\"}}}}{{{{end}}}}')\""
    );
    eprintln!("    aws s3 ls s3://$BUCKET");
    eprintln!();
    eprintln!("Its OIDC client: kubectl -n fraud-detection get secret berth-oidc -o yaml");
    eprintln!();
}

/// One sample account logged in through Keycloak's form for the console's client: its e-mail,
/// its Keycloak groups and its tokens.
pub type SampleLogin = (String, Vec<String>, berth_services::Tokens);

/// For `--smoke`: every sample account logs in once (the checks below share the tokens).
pub async fn sample_logins(keycloak: &Keycloak, realm: &Realm) -> Result<Vec<SampleLogin>> {
    let mut logins = Vec::with_capacity(realm.accounts.len());
    for (email, password, groups) in &realm.accounts {
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
        logins.push((email.clone(), groups.clone(), tokens));
    }
    Ok(logins)
}

/// For `--smoke`: each sample account's ID token (from [`sample_logins`]) is, to the API server
/// (a SelfSubjectReview), that e-mail in its groups.
pub async fn smoke_login(cluster: &berth_testenv::Cluster, logins: &[SampleLogin]) -> Result<()> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    for (email, groups, tokens) in logins {
        let mut config = cluster.config().await?;
        config.auth_info.token = Some(tokens.id_token.clone().into());
        let reviews: Api<SelfSubjectReview> = Api::all(kube::Client::try_from(config)?);
        let user = reviews
            .create(&Default::default(), &SelfSubjectReview::default())
            .await
            .with_context(|| format!("the API server on {email}'s ID token"))?
            .status
            .and_then(|s| s.user_info)
            .context("a SelfSubjectReview without userInfo")?;
        let seen = user.groups.unwrap_or_default();
        if user.username.as_deref() != Some(email.as_str())
            || groups.iter().any(|g| !seen.contains(g))
        {
            bail!(
                "{email}'s ID token is {:?} in {seen:?} to the API server",
                user.username
            );
        }
    }
    eprintln!(
        "    {} sample accounts logged in through Keycloak; the API server takes each one's ID token as their e-mail and groups",
        logins.len()
    );
    Ok(())
}

/// For `--smoke`: the sample project's bucket and OIDC client are provisioned.
pub async fn smoke_check(client: &Client, project: &str, conditions: &[Condition]) -> Result<()> {
    for t in ["StorageReady", "IdentityReady"] {
        if !berth_api::conditions::is_true(conditions, t) {
            bail!("Project/{project}: {t} is not True: {conditions:?}");
        }
    }
    let projects: Api<Project> = Api::all(client.clone());
    let namespace = projects
        .get(project)
        .await?
        .status
        .and_then(|s| s.namespace)
        .context("no namespace in the status")?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for name in ["berth-storage", "berth-oidc"] {
        let secret = secrets.get(name).await?;
        let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
        eprintln!("    Secret {namespace}/{name}: {}", keys.join(", "));
    }
    Ok(())
}
