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
use berth_services::{Garage, Keycloak};

/// The realm the dev platform's projects get their OIDC clients in.
pub const REALM: &str = "berth";

/// Writes the admin Secrets, creates the realm and the sample Projects' users; returns the
/// chart values (`credentials`, `settings`) that point the platform at both providers.
pub async fn configure(
    client: &Client,
    garage: &Garage,
    keycloak: &Keycloak,
    samples: &Path,
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
    keycloak.create_realm(REALM).await?;
    let mut users = sample_users(samples)?;
    users.sort();
    users.dedup();
    for user in &users {
        keycloak.create_user(REALM, user, user).await?;
    }
    eprintln!(
        "    realm {REALM} with the sample projects' users: {}",
        users.join(", ")
    );
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

/// The User members of the sample Projects.
fn sample_users(samples: &Path) -> Result<Vec<String>> {
    let mut users = Vec::new();
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
        }
    }
    Ok(users)
}

async fn admin_secret(client: &Client, name: &str, data: &[(&str, &str)]) -> Result<()> {
    berth_testenv::manifests::apply_secret(client, "berth-system", name, data).await?;
    Ok(())
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
