//! A Project outside the cluster: its bucket and access key (real Garage), its OIDC client and realm
//! group (real Keycloak), its registry project and robot (the Harbor contract double: Harbor cannot
//! run here). The operator runs as a real process under the RBAC Berth ships. Its own binary with
//! its own control plane: these tests change the platform settings.

mod deletion;
mod support;
mod survival;
mod takeover;
mod trusts_keycloak;
mod web_console;
mod words;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

use berth_harbor_double::HarborDouble;
use berth_services::{Garage, Keycloak};
use support::*;

const REALM: &str = "berth";

/// Creates the realm and its users through Keycloak's admin API.
async fn keycloak_realm(keycloak: &Keycloak, users: &[&str]) -> Result<()> {
    keycloak.create_realm(REALM).await?;
    for user in users {
        keycloak
            .create_user(REALM, user, &format!("{user}@example.com"))
            .await?;
    }
    Ok(())
}

/// The usernames in a realm group, or None if there is no such group.
async fn group_members(keycloak: &Keycloak, group: &str) -> Result<Option<BTreeSet<String>>> {
    let http = reqwest::Client::new();
    let token = keycloak.admin_token().await?;
    let base = keycloak.base_url();
    let groups = rest(
        http.get(format!(
            "{base}/admin/realms/{REALM}/groups?search={group}&exact=true"
        ))
        .bearer_auth(&token),
    )
    .await?;
    let Some(id) = groups
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == group))
        .and_then(|g| g["id"].as_str())
    else {
        return Ok(None);
    };
    let members = rest(
        http.get(format!("{base}/admin/realms/{REALM}/groups/{id}/members"))
            .bearer_auth(&token),
    )
    .await?;
    Ok(Some(
        members
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|u| u["username"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    ))
}

/// How many clients have this client id.
async fn clients_named(keycloak: &Keycloak, client_id: &str) -> Result<usize> {
    let http = reqwest::Client::new();
    let token = keycloak.admin_token().await?;
    let clients = rest(
        http.get(format!(
            "{}/admin/realms/{REALM}/clients?clientId={client_id}",
            keycloak.base_url()
        ))
        .bearer_auth(&token),
    )
    .await?;
    Ok(clients.as_array().map(Vec::len).unwrap_or(0))
}

/// Whether the client's credentials get a token (client credentials grant) from the issuer.
async fn client_gets_token(issuer: &str, id: &str, secret: &str) -> Result<bool> {
    let answer = reqwest::Client::new()
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await?;
    Ok(answer.status().is_success())
}

/// The members of a Harbor project, name to role id, through Harbor's API.
async fn harbor_members(harbor: &HarborDouble, project: &str) -> Result<Vec<(String, i64)>> {
    let members = rest(
        reqwest::Client::new()
            .get(format!(
                "{}/api/v2.0/projects/{project}/members?page_size=100",
                harbor.url()
            ))
            .header("X-Is-Resource-Name", "true")
            .basic_auth(harbor.admin_username(), Some(harbor.admin_password())),
    )
    .await?;
    let mut out: Vec<(String, i64)> = members
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| {
                    Some((
                        m["entity_name"].as_str()?.to_owned(),
                        m["role_id"].as_i64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    Ok(out)
}

/// The push/pull robots of a Harbor project (not its owner-marker robot).
async fn harbor_robots(harbor: &HarborDouble, project: &str) -> Result<Vec<Value>> {
    Ok(harbor_all_robots(harbor, project)
        .await?
        .into_iter()
        .filter(|r| {
            !r["name"]
                .as_str()
                .unwrap_or_default()
                .contains("+berth-owner-")
        })
        .collect())
}

/// Every robot of a Harbor project.
async fn harbor_all_robots(harbor: &HarborDouble, project: &str) -> Result<Vec<Value>> {
    let robots = rest(
        reqwest::Client::new()
            .get(format!(
                "{}/api/v2.0/robots?q=Level=project,ProjectID={}&page_size=100",
                harbor.url(),
                harbor_project_id(harbor, project).await?
            ))
            .basic_auth(harbor.admin_username(), Some(harbor.admin_password())),
    )
    .await?;
    Ok(robots.as_array().cloned().unwrap_or_default())
}

async fn harbor_project_id(harbor: &HarborDouble, project: &str) -> Result<i64> {
    let p = rest(
        reqwest::Client::new()
            .get(format!("{}/api/v2.0/projects/{project}", harbor.url()))
            .header("X-Is-Resource-Name", "true")
            .basic_auth(harbor.admin_username(), Some(harbor.admin_password())),
    )
    .await?;
    p["project_id"].as_i64().context("no project_id")
}

async fn harbor_project_exists(harbor: &HarborDouble, project: &str) -> Result<bool> {
    let answer = reqwest::Client::new()
        .get(format!("{}/api/v2.0/projects/{project}", harbor.url()))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(harbor.admin_username(), Some(harbor.admin_password()))
        .send()
        .await?;
    match answer.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        other => bail!("GET project {project}: HTTP {other}"),
    }
}

/// Garage keys whose name starts with `prefix`, through its admin API.
async fn garage_keys(garage: &Garage, prefix: &str) -> Result<Vec<String>> {
    let keys: Value = garage.admin_get("ListKeys").await?;
    Ok(keys
        .as_array()
        .map(|k| {
            k.iter()
                .filter(|k| k["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
                .filter_map(|k| k["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// Garage buckets by global alias.
async fn garage_buckets(garage: &Garage) -> Result<BTreeSet<String>> {
    let buckets: Value = garage.admin_get("ListBuckets").await?;
    Ok(buckets
        .as_array()
        .map(|b| {
            b.iter()
                .flat_map(|b| b["globalAliases"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn storage_settings(garage: &Garage) -> Value {
    json!({
        "provider": "garage",
        "endpoint": garage.s3_endpoint(),
        "adminEndpoint": garage.admin_endpoint(),
        "region": garage.region(),
        "adminSecretRef": {"name": "garage-admin"},
    })
}

/// The prefix of a project's key names: its UID, from the naming authority.
async fn key_prefix(platform: &Platform, project: &str) -> Result<String> {
    let uid = platform
        .projects()
        .get(project)
        .await?
        .metadata
        .uid
        .context("no uid")?;
    Ok(berth_controllers::names::outside::credential_prefix(&uid))
}

#[tokio::test]
async fn a_project_gets_a_bucket_a_client_and_a_registry_project_that_follow_its_members()
-> Result<()> {
    let (platform, garage, keycloak, harbor) = tokio::join!(
        Platform::start(),
        Garage::start(),
        Keycloak::start(),
        HarborDouble::start()
    );
    let (mut platform, garage, keycloak, harbor) = (platform?, garage?, keycloak?, harbor?);
    keycloak_realm(&keycloak, &["alice", "bob", "carol"]).await?;
    for user in ["alice", "bob", "carol"] {
        harbor.add_user(user);
    }

    // Bad settings first: each gets a condition that says which setting is wrong.
    platform
        .admin_secret("garage-admin", &[("adminToken", "not-the-token")])
        .await?;
    platform
        .admin_secret(
            "keycloak-admin",
            &[
                ("username", keycloak.admin_username()),
                ("password", keycloak.admin_password()),
            ],
        )
        .await?;
    platform
        .settings(json!({
            "storage": storage_settings(&garage),
            "identity": {"provider": "keycloak", "url": keycloak.base_url(), "realm": "no-such-realm", "adminSecretRef": {"name": "keycloak-admin"}},
            "registry": {"provider": "harbor", "url": harbor.url(), "adminSecretRef": {"name": "harbor-admin"}},
        }))
        .await?;
    platform
        .create_project(
            json!({"owners": ["alice"], "members": [
                {"kind": "User", "name": "bob", "role": "editor"},
                {"kind": "User", "name": "carol", "role": "viewer"},
                {"kind": "User", "name": "dave", "role": "viewer"},
                {"kind": "Group", "name": "vision-team", "role": "viewer"},
            ], "idp": {"redirectUris": ["https://vision.example.com/callback"]},
               "deletionPolicy": "Delete"}),
            "vision",
        )
        .await?;
    let p = platform
        .wait_project(
            "vision",
            "each bad setting reported",
            Duration::from_secs(60),
            |p| {
                condition(p, "StorageReady")
                    .is_some_and(|(_, r)| r == "StorageAdminCredentialsRejected")
                    && condition(p, "IdentityReady")
                        .is_some_and(|(_, r)| r == "IdentityNotConfigured")
                    && condition(p, "RegistryReady")
                        .is_some_and(|(_, r)| r == "RegistryAdminSecretMissing")
            },
        )
        .await?;
    // The in-cluster parts do not wait for the outside ones.
    for t in ["NamespaceReady", "AccessReady", "NetworkReady"] {
        assert!(is_true(&p, t), "{t} should be True: {:?}", p.status);
    }
    assert!(!is_true(&p, "Ready"));
    let message = |t: &str| {
        p.status
            .as_ref()
            .and_then(|s| berth_api::conditions::get(&s.conditions, t))
            .map(|c| c.message.clone())
            .unwrap_or_default()
    };
    assert!(
        message("IdentityReady").contains("no-such-realm"),
        "{}",
        message("IdentityReady")
    );
    assert!(
        message("RegistryReady").contains("harbor-admin"),
        "{}",
        message("RegistryReady")
    );
    // In Berth's words: what failed and what to do. The providers' admin endpoints and raw
    // answers go to the operator's log only.
    words::conditions_keep_endpoints_and_answers_to_the_log(
        &platform,
        &p,
        &[garage.admin_endpoint(), keycloak.base_url()],
    )?;
    // The members read that in their namespace's Events; nothing of it is in default.
    words::members_read_events_and_default_holds_none(&platform, "vision", "alice").await?;

    // Fixed: everything is provisioned.
    platform
        .admin_secret("garage-admin", &[("adminToken", garage.admin_token())])
        .await?;
    platform
        .admin_secret(
            "harbor-admin",
            &[
                ("username", harbor.admin_username()),
                ("password", harbor.admin_password()),
            ],
        )
        .await?;
    platform
        .settings(json!({"identity": {"realm": REALM}}))
        .await?;
    let begin = Instant::now();
    let p = platform
        .wait_project("vision", "Ready", Duration::from_secs(90), |p| {
            is_true(p, "Ready")
        })
        .await?;
    eprintln!(
        "vision Ready {:.1} s after the settings were fixed",
        begin.elapsed().as_secs_f64()
    );
    for t in ["StorageReady", "IdentityReady", "RegistryReady"] {
        assert!(is_true(&p, t), "{t}: {:?}", p.status);
    }
    let external = p
        .status
        .as_ref()
        .and_then(|s| s.external.clone())
        .context("no status.external")?;
    assert_eq!(external.bucket.as_deref(), Some("vision"));
    assert_eq!(external.oidc_client_id.as_deref(), Some("berth-vision"));
    assert_eq!(external.registry_project.as_deref(), Some("vision"));

    // Storage: the Secret works as it is with an S3 client.
    let storage = platform.secret("vision", "berth-storage").await?;
    assert_eq!(value(&storage, "BUCKET")?, "vision");
    assert_eq!(value(&storage, "AWS_REGION")?, garage.region());
    assert_eq!(value(&storage, "AWS_DEFAULT_REGION")?, garage.region());
    let vision_s3 = s3_from_secret(&storage)?;
    vision_s3
        .put_object()
        .bucket("vision")
        .key("models/resnet.onnx")
        .body(b"weights".to_vec().into())
        .send()
        .await?;
    assert!(can_read(&vision_s3, "vision", "models/resnet.onnx").await);

    // A second project: its key cannot reach the first one's bucket, nor the reverse.
    platform
        .create_project(
            json!({"owners": ["alice"], "deletionPolicy": "Retain"}),
            "audio",
        )
        .await?;
    platform
        .wait_project("audio", "Ready", Duration::from_secs(60), |p| {
            is_true(p, "Ready")
        })
        .await?;
    let audio_storage = platform.secret("audio", "berth-storage").await?;
    let audio_s3 = s3_from_secret(&audio_storage)?;
    assert!(can_write(&audio_s3, "audio").await);
    assert!(
        !can_list(&audio_s3, "vision").await,
        "audio's key listed vision's bucket"
    );
    assert!(
        !can_read(&audio_s3, "vision", "models/resnet.onnx").await,
        "audio's key read vision's object"
    );
    assert!(
        !can_write(&audio_s3, "vision").await,
        "audio's key wrote to vision's bucket"
    );
    assert!(
        !can_list(&vision_s3, "audio").await,
        "vision's key listed audio's bucket"
    );
    assert!(
        audio_s3
            .create_bucket()
            .bucket("audio-extra")
            .send()
            .await
            .is_err(),
        "a project key created a bucket"
    );

    // Identity: a confidential client whose secret works, and a group of the members that exist.
    let oidc = platform.secret("vision", "berth-oidc").await?;
    let issuer = value(&oidc, "OIDC_ISSUER_URL")?;
    assert_eq!(issuer, keycloak.issuer(REALM));
    let client_secret = value(&oidc, "OIDC_CLIENT_SECRET")?;
    assert!(client_gets_token(&issuer, &value(&oidc, "OIDC_CLIENT_ID")?, &client_secret).await?);
    assert!(!client_gets_token(&issuer, "berth-vision", "wrong").await?);
    assert_eq!(
        group_members(&keycloak, "berth-vision").await?,
        Some(BTreeSet::from([
            "alice".into(),
            "bob".into(),
            "carol".into()
        ]))
    );
    assert!(
        message_of(&p, "IdentityReady").contains("dave"),
        "a member missing from the realm is named"
    );

    // Registry: members by role, a robot in a dockerconfigjson Secret used by the service accounts.
    assert_eq!(
        harbor_members(&harbor, "vision")
            .await?
            .into_iter()
            .filter(|(n, _)| n != harbor.admin_username())
            .collect::<Vec<_>>(),
        vec![
            ("alice".to_owned(), 1),
            ("bob".to_owned(), 2),
            ("carol".to_owned(), 3)
        ]
    );
    let pull = platform.secret("vision", "berth-registry").await?;
    assert_eq!(
        pull.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config: Value = serde_json::from_str(&value(&pull, ".dockerconfigjson")?)?;
    let auths = config["auths"].as_object().context("no auths")?;
    assert_eq!(auths.len(), 1);
    let sa = Api::<ServiceAccount>::namespaced(platform.client.clone(), "vision")
        .get("project-automation")
        .await?;
    assert_eq!(
        sa.image_pull_secrets
            .unwrap_or_default()
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>(),
        vec!["berth-registry".to_owned()]
    );
    assert_eq!(harbor_robots(&harbor, "vision").await?.len(), 1);

    // Steady: nothing is written while nothing changes.
    let versions = |p: &berth_api::Project, secrets: &[&k8s_openapi::api::core::v1::Secret]| {
        let mut v = vec![p.metadata.resource_version.clone()];
        v.extend(secrets.iter().map(|s| s.metadata.resource_version.clone()));
        v
    };
    let before = {
        let p = platform.projects().get("vision").await?;
        let (a, b, c) = (
            platform.secret("vision", "berth-storage").await?,
            platform.secret("vision", "berth-oidc").await?,
            platform.secret("vision", "berth-registry").await?,
        );
        versions(&p, &[&a, &b, &c])
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = {
        let p = platform.projects().get("vision").await?;
        let (a, b, c) = (
            platform.secret("vision", "berth-storage").await?,
            platform.secret("vision", "berth-oidc").await?,
            platform.secret("vision", "berth-registry").await?,
        );
        versions(&p, &[&a, &b, &c])
    };
    assert_eq!(
        before, after,
        "a steady project or its Secrets were written"
    );

    // A member leaves: the group and the registry follow.
    platform
        .projects()
        .patch(
            "vision",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"members": [
                {"kind": "User", "name": "carol", "role": "editor"},
            ]}})),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let group = group_members(&keycloak, "berth-vision").await?;
        let members = harbor_members(&harbor, "vision").await?;
        if group == Some(BTreeSet::from(["alice".into(), "carol".into()]))
            && members
                .iter()
                .filter(|(n, _)| n != harbor.admin_username())
                .cloned()
                .collect::<Vec<_>>()
                == vec![("alice".to_owned(), 1), ("carol".to_owned(), 2)]
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("members did not follow: group {group:?}, registry {members:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let vision_keys = key_prefix(&platform, "vision").await?;
    // Rotation: the new key is in the Secret before the old one stops working.
    let old_id = value(&storage, "AWS_ACCESS_KEY_ID")?;
    let old_secret = value(&storage, "AWS_SECRET_ACCESS_KEY")?;
    platform
        .annotate(
            "vision",
            berth_api::providers::ROTATE_STORAGE_ANNOTATION,
            "2026-11-22",
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rotated = loop {
        let s = platform.secret("vision", "berth-storage").await?;
        if value(&s, "AWS_ACCESS_KEY_ID")? != old_id {
            break s;
        }
        if Instant::now() > deadline {
            bail!("the storage key was not rotated");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(can_read(&s3_from_secret(&rotated)?, "vision", "models/resnet.onnx").await);
    let old_s3 = s3(garage.s3_endpoint(), garage.region(), &old_id, &old_secret);
    let deadline = Instant::now() + Duration::from_secs(30);
    while can_list(&old_s3, "vision").await {
        if Instant::now() > deadline {
            bail!("the old key still works after rotation");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        garage_keys(&garage, &vision_keys).await?.len(),
        1,
        "one key per project"
    );

    platform
        .annotate(
            "vision",
            berth_api::providers::ROTATE_IDENTITY_ANNOTATION,
            "2026-11-22",
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_secret = loop {
        let s = value(
            &platform.secret("vision", "berth-oidc").await?,
            "OIDC_CLIENT_SECRET",
        )?;
        if s != client_secret {
            break s;
        }
        if Instant::now() > deadline {
            bail!("the client secret was not rotated");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(client_gets_token(&issuer, "berth-vision", &new_secret).await?);
    // The old secret outlived the rotation only until the new one was stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client_gets_token(&issuer, "berth-vision", &client_secret).await? {
        if Instant::now() > deadline {
            bail!("the old client secret still works after rotation");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        clients_named(&keycloak, "berth-vision").await?,
        1,
        "one client per project"
    );

    // Never a credential in the operator's log, in Events or in the status.
    let vision = platform.projects().get("vision").await?;
    let status = serde_json::to_string(&vision.status)?;
    let events = Api::<Event>::all(platform.client.clone())
        .list(&ListParams::default())
        .await?;
    let events = serde_json::to_string(&events.items)?;
    let log = platform.operator_log();
    let robot_password = auths
        .values()
        .next()
        .and_then(|a| a["password"].as_str())
        .unwrap_or_default()
        .to_owned();
    for secret in [
        old_secret.as_str(),
        &value(&rotated, "AWS_SECRET_ACCESS_KEY")?,
        &client_secret,
        &new_secret,
        &robot_password,
        garage.admin_token(),
        keycloak.admin_password(),
        harbor.admin_password(),
    ] {
        assert!(!secret.is_empty());
        assert!(
            !log.contains(secret),
            "a credential is in the operator's log"
        );
        assert!(!events.contains(secret), "a credential is in an Event");
        assert!(!status.contains(secret), "a credential is in the status");
    }

    // Opting out of a part revokes its credentials and removes its Secret; the data stays.
    assert_eq!(harbor_robots(&harbor, "audio").await?.len(), 1);
    platform
        .projects()
        .patch(
            "audio",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"registry": {"enabled": false}}})),
        )
        .await?;
    let p = platform
        .wait_project(
            "audio",
            "the registry part gone",
            Duration::from_secs(30),
            |p| condition(p, "RegistryReady").is_none() && is_true(p, "Ready"),
        )
        .await?;
    assert!(
        p.status
            .as_ref()
            .and_then(|s| s.external.as_ref())
            .is_some_and(|e| e.registry_project.is_none())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<k8s_openapi::api::core::v1::Secret>::namespaced(platform.client.clone(), "audio")
        .get_opt("berth-registry")
        .await?
        .is_some()
    {
        if Instant::now() > deadline {
            bail!("the registry Secret outlived the opt-out");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        harbor_robots(&harbor, "audio").await?.is_empty(),
        "the robot was revoked"
    );
    assert!(
        harbor_project_exists(&harbor, "audio").await?,
        "the registry project (its images) stays"
    );
    let sa = Api::<ServiceAccount>::namespaced(platform.client.clone(), "audio")
        .get("project-automation")
        .await?;
    assert!(sa.image_pull_secrets.unwrap_or_default().is_empty());

    // Retain keeps the bucket and its objects, and says so.
    platform
        .projects()
        .delete("audio", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while platform.projects().get_opt("audio").await?.is_some() {
        if Instant::now() > deadline {
            bail!("project audio was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        garage_buckets(&garage).await?.contains("audio"),
        "Retain kept the bucket"
    );
    assert!(can_list(&audio_s3, "audio").await, "Retain kept the key");
    let events = Api::<Event>::all(platform.client.clone())
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Retained")
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("bucket audio"))),
        "an Event says the bucket was retained"
    );

    // Delete removes the bucket with its objects, the keys, the client, the group, the registry
    // project and its robot.
    platform
        .projects()
        .delete("vision", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while platform.projects().get_opt("vision").await?.is_some() {
        if Instant::now() > deadline {
            bail!(
                "project vision was not deleted: {:?}",
                platform.projects().get("vision").await?.status
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!garage_buckets(&garage).await?.contains("vision"));
    assert!(garage_keys(&garage, &vision_keys).await?.is_empty());
    assert_eq!(clients_named(&keycloak, "berth-vision").await?, 0);
    assert_eq!(group_members(&keycloak, "berth-vision").await?, None);
    assert!(!harbor_project_exists(&harbor, "vision").await?);

    // Then the takeover attempts, on the same services.
    takeover::nothing_outside_the_cluster_is_taken_by_its_name(
        &mut platform,
        &garage,
        &keycloak,
        &harbor,
    )
    .await
}

fn message_of(p: &berth_api::Project, t: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, t))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

const OUTAGE_PROJECTS: usize = 20;

/// Two outages side by side, each on a control plane of its own: the object store's (it never
/// blocks the projects and heals without duplicates; meanwhile a Delete project is deleted and
/// abandoned), and the operator's (`survival.rs`: tenant data survives without it). Both mostly
/// wait, on Garage's restart and on the garbage collector, so together they take the time of the
/// longer.
#[tokio::test]
async fn outages_of_the_object_store_and_of_the_operator_lose_nothing() -> Result<()> {
    let (store, operator) = tokio::join!(
        an_object_store_outage_never_blocks_the_projects_and_heals_without_duplicates(),
        survival::tenant_data_survives_a_removed_finalizer_a_stopped_operator_and_a_deleted_crd(),
    );
    store.context("the object store's outage")?;
    operator.context("the operator's outage")
}

async fn an_object_store_outage_never_blocks_the_projects_and_heals_without_duplicates()
-> Result<()> {
    let (platform, garage) = tokio::join!(Platform::start(), Garage::start());
    let (mut platform, mut garage) = (platform?, garage?);
    platform
        .admin_secret("garage-admin", &[("adminToken", garage.admin_token())])
        .await?;
    platform
        .settings(json!({"storage": storage_settings(&garage)}))
        .await?;
    let doomed_keys = deletion::before(&mut platform).await?;

    // The store goes down for 30 s while 20 Projects are created.
    garage.stop();
    let down = Instant::now();
    let names: Vec<String> = (0..OUTAGE_PROJECTS)
        .map(|i| format!("outage-{i}"))
        .collect();
    for name in &names {
        platform
            .create_project(json!({"owners": [format!("{name}@example.com")]}), name)
            .await?;
    }
    for name in &names {
        let p = platform
            .wait_project(
                name,
                "in-cluster parts Ready, storage reported down",
                Duration::from_secs(30),
                |p| {
                    ["NamespaceReady", "AccessReady", "NetworkReady"]
                        .iter()
                        .all(|t| is_true(p, t))
                        && condition(p, "StorageReady")
                            .is_some_and(|(s, r)| s == "False" && r == "StorageUnreachable")
                },
            )
            .await?;
        assert!(!is_true(&p, "Ready"));
        // What failed in Berth's words; the address it failed at is in the operator's log only.
        let unreachable = message_of(&p, "StorageReady");
        assert!(
            (unreachable.contains("no answer from the storage provider")
                || unreachable.contains("the storage provider did not answer"))
                && !unreachable.contains(garage.admin_endpoint())
                && !unreachable.contains("http://"),
            "{unreachable}"
        );
    }
    assert!(
        platform.operator_log().contains(garage.admin_endpoint()),
        "the operator's log does not say where the store did not answer"
    );
    eprintln!(
        "all {OUTAGE_PROJECTS} in-cluster parts Ready {:.1} s into the outage",
        down.elapsed().as_secs_f64()
    );
    // Meanwhile, a Delete project is deleted: its bucket is out of reach.
    deletion::during(&mut platform).await?;
    let rest = Duration::from_secs(30).saturating_sub(down.elapsed());
    tokio::time::sleep(rest).await;
    garage.restart().await?;
    let up = Instant::now();
    for name in &names {
        platform
            .wait_project(
                name,
                "Ready after the store returned",
                Duration::from_secs(90),
                |p| is_true(p, "Ready"),
            )
            .await?;
    }
    eprintln!(
        "all {OUTAGE_PROJECTS} Ready {:.1} s after the store returned",
        up.elapsed().as_secs_f64()
    );

    // No duplicates: one bucket and one key per project, and every key works.
    let buckets = garage_buckets(&garage).await?;
    for name in &names {
        assert!(buckets.contains(name), "bucket {name} missing");
        assert_eq!(
            garage_keys(&garage, &key_prefix(&platform, name).await?)
                .await?
                .len(),
            1,
            "{name} has one key"
        );
        let s = platform.secret(name, "berth-storage").await?;
        assert!(
            can_write(&s3_from_secret(&s)?, name).await,
            "{name}'s key works"
        );
    }
    assert_eq!(
        buckets.iter().filter(|b| b.starts_with("outage-")).count(),
        OUTAGE_PROJECTS
    );
    deletion::after(&mut platform, &garage, &doomed_keys).await?;
    let _ = &platform.plane;
    Ok(())
}
