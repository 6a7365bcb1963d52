//! No takeover, outside the cluster: a bucket, an OIDC client and group, and a registry project
//! that exist under a Project's names but were not made for it are never used, changed or
//! deleted. Each attempt is made as a tenant would (a project creator, by impersonation), against
//! real Garage, MinIO and Keycloak and the Harbor double; each fails with the condition a user
//! reads, and the victim's data and access are shown intact.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use berth_api::Project;
use berth_harbor_double::HarborDouble;
use berth_services::{Garage, Keycloak, Minio};

use super::support::*;
use super::{
    REALM, garage_buckets, garage_keys, group_members, harbor_all_robots, harbor_members,
    key_prefix,
};

/// A user who may create Projects, and a client acting as them.
async fn creator(platform: &Platform, user: &str) -> Result<Client> {
    Api::<ClusterRoleBinding>::all(platform.client.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(format!("creator-{}", user.replace('@', "-"))),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "berth-project-creator".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.to_owned(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    namespace: None,
                }]),
            },
        )
        .await?;
    Ok(platform.plane.cluster().impersonate(user, &[]).await?)
}

/// Creates a Project as `client`, retrying while the creator's role reaches the authorizer.
async fn create_as(client: &Client, name: &str, spec: Value) -> Result<()> {
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name}, "spec": spec,
    }))?;
    let api: Api<Project> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.create(&PostParams::default(), &project).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 403 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn message(p: &Project, t: &str) -> String {
    p.status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, t))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

fn reason_is(p: &Project, t: &str, reason: &str) -> bool {
    condition(p, t).is_some_and(|(s, r)| s == "False" && r == reason)
}

async fn no_secret(platform: &Platform, namespace: &str, name: &str) -> Result<bool> {
    Ok(
        Api::<Secret>::namespaced(platform.client.clone(), namespace)
            .get_opt(name)
            .await?
            .is_none(),
    )
}

/// Keycloak's admin API, for making the victims by hand and reading them back.
struct KeycloakAdmin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl KeycloakAdmin {
    async fn new(keycloak: &Keycloak) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::new(),
            base: format!("{}/admin/realms/{REALM}", keycloak.base_url()),
            token: keycloak.admin_token().await?,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<()> {
        rest(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
        .map(drop)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        rest(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    /// Puts `username` in the top-level group `group`.
    async fn join(&self, username: &str, group: &str) -> Result<()> {
        let users = self
            .get(&format!("/users?username={username}&exact=true"))
            .await?;
        let user = users[0]["id"].as_str().context("no such user")?.to_owned();
        let groups = self
            .get(&format!("/groups?search={group}&exact=true"))
            .await?;
        let group = groups[0]["id"]
            .as_str()
            .context("no such group")?
            .to_owned();
        rest(
            self.http
                .put(format!("{}/users/{user}/groups/{group}", self.base))
                .bearer_auth(&self.token),
        )
        .await
        .map(drop)
    }

    async fn redirect_uris(&self, client_id: &str) -> Result<Value> {
        let clients = self.get(&format!("/clients?clientId={client_id}")).await?;
        Ok(clients[0]["redirectUris"].clone())
    }
}

/// The Harbor double's API as its system admin.
async fn harbor_call(
    harbor: &HarborDouble,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<()> {
    rest(
        reqwest::Client::new()
            .request(method, format!("{}/api/v2.0{path}", harbor.url()))
            .header("X-Is-Resource-Name", "true")
            .basic_auth(harbor.admin_username(), Some(harbor.admin_password()))
            .json(&body),
    )
    .await
    .map(drop)
}

/// Run inside the first test of `main.rs`, on its platform (storage, identity and registry
/// configured and working), sharing its Garage, Keycloak and Harbor double.
pub async fn nothing_outside_the_cluster_is_taken_by_its_name(
    platform: &mut Platform,
    garage: &Garage,
    keycloak: &Keycloak,
    harbor: &HarborDouble,
) -> Result<()> {
    for user in ["mallory", "trent"] {
        keycloak
            .create_user(REALM, user, &format!("{user}@example.com"))
            .await?;
        harbor.add_user(user);
    }

    // The victims, made outside Berth under the names a Project named "ledger" maps to: alice's
    // bucket with her data and her key, a client and a group of the realm, a registry project
    // with alice as its admin and an image.
    let bucket_id = garage.create_bucket("ledger").await?;
    let alices_key = garage.create_key("alice", false).await?;
    garage
        .allow(&bucket_id, &alices_key, true, true, false)
        .await?;
    let alice_s3 = s3(
        garage.s3_endpoint(),
        garage.region(),
        &alices_key.access_key_id,
        &alices_key.secret_access_key,
    );
    alice_s3
        .put_object()
        .bucket("ledger")
        .key("books.csv")
        .body(b"2026,profit".to_vec().into())
        .send()
        .await?;
    let kc = KeycloakAdmin::new(keycloak).await?;
    kc.post(
        "/clients",
        json!({"clientId": "berth-ledger", "publicClient": false, "redirectUris": ["https://ledger.example.com/*"]}),
    )
    .await?;
    kc.post("/groups", json!({"name": "berth-ledger"})).await?;
    kc.join("alice", "berth-ledger").await?;
    harbor_call(
        harbor,
        reqwest::Method::POST,
        "/projects",
        json!({"project_name": "ledger"}),
    )
    .await?;
    harbor_call(
        harbor,
        reqwest::Method::POST,
        "/projects/ledger/members",
        json!({"role_id": 1, "member_user": {"username": "alice"}}),
    )
    .await?;
    harbor.add_repository("ledger", "payroll");
    let ledger_members = harbor_members(harbor, "ledger").await?;

    // Mallory, a project creator, asks for a Project named ledger.
    let as_mallory = creator(platform, "mallory").await?;
    create_as(&as_mallory, "ledger", json!({"owners": ["mallory"]})).await?;
    let p = platform
        .wait_project(
            "ledger",
            "a conflict for each outside part",
            Duration::from_secs(60),
            |p| {
                reason_is(p, "StorageReady", "StorageConflict")
                    && reason_is(p, "IdentityReady", "IdentityConflict")
                    && reason_is(p, "RegistryReady", "RegistryConflict")
            },
        )
        .await?;
    let mut attempts = 3;
    for (t, annotation) in [
        ("StorageReady", "berth.dev/adopt-storage"),
        ("IdentityReady", "berth.dev/adopt-identity"),
        ("RegistryReady", "berth.dev/adopt-registry"),
    ] {
        let m = message(&p, t);
        assert!(
            m.contains("records no owner")
                && m.contains(annotation)
                && m.contains("nothing of it was used or changed"),
            "{t}: {m}"
        );
    }
    // The in-cluster parts do not wait; Ready says what is wrong.
    assert!(is_true(&p, "NamespaceReady"));
    assert!(!is_true(&p, "Ready"));
    for secret in ["berth-storage", "berth-oidc", "berth-registry"] {
        assert!(
            no_secret(platform, "ledger", secret).await?,
            "{secret} was written"
        );
    }
    // The victims are untouched: alice's data and key, the client, the group, the registry project.
    let ledger_prefix = key_prefix(platform, "ledger").await?;
    let check_victims = || async {
        assert!(
            can_read(&alice_s3, "ledger", "books.csv").await,
            "alice lost her data"
        );
        assert!(
            garage_keys(garage, &ledger_prefix).await?.is_empty(),
            "a key was made on alice's bucket"
        );
        assert_eq!(
            kc.redirect_uris("berth-ledger").await?,
            json!(["https://ledger.example.com/*"])
        );
        assert_eq!(
            group_members(keycloak, "berth-ledger").await?,
            Some(BTreeSet::from(["alice".to_owned()]))
        );
        assert_eq!(harbor_members(harbor, "ledger").await?, ledger_members);
        assert_eq!(
            harbor.repositories("ledger"),
            vec!["ledger/payroll".to_owned()]
        );
        assert!(
            harbor_all_robots(harbor, "ledger").await?.is_empty(),
            "a robot was put on ledger"
        );
        anyhow::Ok(())
    };
    check_victims().await?;

    // Mallory cannot adopt them herself.
    let projects: Api<Project> = Api::all(as_mallory.clone());
    for annotation in [
        "berth.dev/adopt-storage",
        "berth.dev/adopt-identity",
        "berth.dev/adopt-registry",
    ] {
        attempts += 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = loop {
            let result = projects
                .patch(
                    "ledger",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": {annotation: "true"}}})),
                )
                .await;
            match result {
                Err(kube::Error::Api(s))
                    if s.message.contains("cannot patch") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(kube::Error::Api(s)) => break s.message,
                Ok(_) => bail!("mallory set {annotation}"),
                Err(e) => return Err(e.into()),
            }
        };
        assert!(refused.contains("only a platform admin"), "{refused}");
    }
    check_victims().await?;
    eprintln!(
        "{attempts} attempts on what exists outside the cluster under ledger's names, all refused"
    );

    // A Project of the same name as another team's retained one, in a namespace of its own, gets
    // a conflict, not the old team's bucket, client or registry project.
    let as_trent = creator(platform, "trent").await?;
    create_as(&as_trent, "shared", json!({"owners": ["trent"]})).await?;
    platform
        .wait_project("shared", "Ready", Duration::from_secs(60), |p| {
            is_true(p, "Ready")
        })
        .await?;
    let trents = platform.secret("shared", "berth-storage").await?;
    let trent_s3 = s3_from_secret(&trents)?;
    trent_s3
        .put_object()
        .bucket("shared")
        .key("model.onnx")
        .body(b"trent's weights".to_vec().into())
        .send()
        .await?;
    Api::<Project>::all(as_trent.clone())
        .delete("shared", &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while platform.projects().get_opt("shared").await?.is_some() {
        if Instant::now() > deadline {
            bail!("shared was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let as_mallory_again = as_mallory.clone();
    create_as(
        &as_mallory_again,
        "shared",
        json!({"owners": ["mallory"], "namespace": "shared-too"}),
    )
    .await?;
    platform
        .wait_project(
            "shared",
            "a conflict, not trent's things",
            Duration::from_secs(60),
            |p| {
                reason_is(p, "StorageReady", "StorageConflict")
                    && reason_is(p, "IdentityReady", "IdentityConflict")
                    && reason_is(p, "RegistryReady", "RegistryConflict")
            },
        )
        .await?;
    let p = platform.projects().get("shared").await?;
    assert!(
        message(&p, "StorageReady").contains("belongs to another project"),
        "{}",
        message(&p, "StorageReady")
    );
    for secret in ["berth-storage", "berth-oidc", "berth-registry"] {
        assert!(
            no_secret(platform, "shared-too", secret).await?,
            "{secret} was written"
        );
    }
    // Trent's retained bucket keeps his data, and his key still works on it.
    assert!(can_read(&trent_s3, "shared", "model.onnx").await);
    attempts += 3;

    // A platform admin adopts alice's bucket for ledger: the data stays and ledger's key reaches it.
    platform
        .annotate("ledger", "berth.dev/adopt-storage", "true")
        .await?;
    platform
        .wait_project(
            "ledger",
            "StorageReady after adoption",
            Duration::from_secs(60),
            |p| is_true(p, "StorageReady"),
        )
        .await?;
    let ledger_s3 = s3_from_secret(&platform.secret("ledger", "berth-storage").await?)?;
    assert!(can_read(&ledger_s3, "ledger", "books.csv").await);
    assert!(garage_buckets(garage).await?.contains("ledger"));
    eprintln!(
        "{attempts} takeover attempts in all, each refused; adoption by a platform admin works"
    );
    Ok(())
}

#[tokio::test]
async fn a_minio_bucket_berth_did_not_make_is_never_taken() -> Result<()> {
    let (platform, minio) = tokio::join!(Platform::start(), Minio::start());
    let (mut platform, minio) = (platform?, minio?);
    let admin_s3 = s3(
        minio.endpoint(),
        minio.region(),
        minio.access_key(),
        minio.secret_key(),
    );
    admin_s3.create_bucket().bucket("archive").send().await?;
    admin_s3
        .put_object()
        .bucket("archive")
        .key("2025.tar")
        .body(b"old data".to_vec().into())
        .send()
        .await?;
    platform
        .admin_secret(
            "minio-admin",
            &[
                ("accessKeyId", minio.access_key()),
                ("secretAccessKey", minio.secret_key()),
            ],
        )
        .await?;
    platform
        .settings(json!({"storage": {
            "provider": "minio", "endpoint": minio.endpoint(), "region": minio.region(),
            "adminSecretRef": {"name": "minio-admin"}, "defaultQuota": "1Mi",
        }}))
        .await?;
    let as_mallory = creator(&platform, "mallory@example.com").await?;
    create_as(
        &as_mallory,
        "archive",
        json!({"owners": ["mallory@example.com"]}),
    )
    .await?;
    let p = platform
        .wait_project("archive", "StorageConflict", Duration::from_secs(60), |p| {
            reason_is(p, "StorageReady", "StorageConflict")
        })
        .await?;
    let m = message(&p, "StorageReady");
    assert!(
        m.contains("bucket archive") && m.contains("no tag berth.dev/project-uid"),
        "{m}"
    );
    assert!(no_secret(&platform, "archive", "berth-storage").await?);
    // The bucket is as it was: its data, no owner tag, and its 1 MiB default quota never set
    // (a 2 MiB object still goes in).
    assert!(can_read(&admin_s3, "archive", "2025.tar").await);
    let tags = admin_s3.get_bucket_tagging().bucket("archive").send().await;
    assert!(tags.is_err() || tags.is_ok_and(|t| t.tag_set().is_empty()));
    admin_s3
        .put_object()
        .bucket("archive")
        .key("big")
        .body(vec![0u8; 2 * 1024 * 1024].into())
        .send()
        .await
        .context("the bucket got a quota")?;
    let _ = &mut platform;
    Ok(())
}
