//! The Keycloak client against a real Keycloak (`berth_services::Keycloak`, dev mode on
//! loopback). Keycloak takes tens of seconds to start, so one test shares one server.
//!
//! Rotation: Keycloak keeps an old client secret valid only with its preview feature
//! `client-secret-rotation`. The test checks whichever behaviour the server has; to run it against
//! a server with the feature, start it with `KC_FEATURES=client-secret-rotation` from a copy of
//! the distribution (`BERTH_KEYCLOAK_DIR`), since the feature is a build option that re-augments
//! the distribution it runs from.

use std::sync::Arc;

use berth_providers::identity::keycloak::Keycloak;
use berth_providers::identity::{ClientSpec, IdentityConfig, IdentityProvider};
use berth_providers::{ErrorKind, Owner, Secret};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

const REALM: &str = "berth";

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Fallible<u16> {
        let mut request = self
            .http
            .request(method, format!("{}/admin/realms{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send().await?.status().as_u16())
    }

    async fn get(&self, path: &str) -> Fallible<Value> {
        Ok(self
            .http
            .get(format!("{}/admin/realms{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn clients(&self, client_id: &str) -> Fallible<Vec<Value>> {
        let clients = self
            .get(&format!("/{REALM}/clients?clientId={client_id}"))
            .await?;
        Ok(clients.as_array().cloned().unwrap_or_default())
    }

    async fn group_members(&self, group: &str) -> Fallible<Vec<String>> {
        let groups = self
            .get(&format!("/{REALM}/groups?search={group}&exact=true"))
            .await?;
        let Some(id) = groups
            .as_array()
            .and_then(|g| g.iter().find(|g| g["name"] == group))
            .and_then(|g| g["id"].as_str())
        else {
            return Ok(Vec::new());
        };
        let members = self.get(&format!("/{REALM}/groups/{id}/members")).await?;
        let mut names: Vec<String> = members
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|u| u["username"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }
}

/// The status of a `client_credentials` grant with this secret.
async fn client_credentials(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    secret: &str,
) -> Fallible<u16> {
    Ok(http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await?
        .status()
        .as_u16())
}

/// The `aud` of a `client_credentials` access token of this client (one string or a list).
async fn token_audiences(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    secret: &str,
) -> Fallible<Vec<String>> {
    use base64::Engine as _;
    let answer: Value = http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = answer["access_token"].as_str().ok_or("no access_token")?;
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    Ok(match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    })
}

/// A project's owner record.
fn owner(n: u8, adopt: bool) -> Owner {
    Owner {
        uid: format!("3f1c0a7e-0000-4000-8000-00000000000{n}"),
        marker: String::new(),
        adopt,
    }
}

fn config(url: &str, realm: &str, admin_password: &str) -> IdentityConfig {
    IdentityConfig {
        url: url.to_owned(),
        realm: realm.to_owned(),
        admin_realm: "master".to_owned(),
        admin_username: "admin".to_owned(),
        admin_password: Secret::new(admin_password),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycloak_clients_groups_rotation_and_errors() -> TestResult {
    let kc = berth_services::Keycloak::start().await?;
    let http = reqwest::Client::new();
    let admin = Admin {
        http: http.clone(),
        base: kc.base_url().to_owned(),
        token: kc.admin_token().await?,
    };
    assert_eq!(
        admin
            .send(
                reqwest::Method::POST,
                "",
                Some(json!({"realm": REALM, "enabled": true}))
            )
            .await?,
        201
    );
    for user in ["alice", "bob", "carol"] {
        assert_eq!(
            admin
                .send(
                    reqwest::Method::POST,
                    &format!("/{REALM}/users"),
                    Some(json!({"username": user, "enabled": true}))
                )
                .await?,
            201
        );
    }

    let provider = Arc::new(Keycloak::new(config(
        kc.base_url(),
        REALM,
        kc.admin_password(),
    ))?);
    provider.check().await?;
    assert_eq!(provider.kind(), "keycloak");
    assert_eq!(provider.issuer(), kc.issuer(REALM));
    let token_endpoint = kc.token_endpoint(REALM);
    let mut secrets: Vec<String> = vec![kc.admin_password().to_owned()];
    let mut messages_before_errors = Vec::new();

    // --- The client: made once, updated in place. ---
    let spec = ClientSpec {
        client_id: "berth-team-a".into(),
        description: "Berth project team-a".into(),
        redirect_uris: vec!["https://team-a.example.com/callback".into()],
    };
    let ours = owner(1, false);
    let first = provider.ensure_client(&spec, &ours).await?;
    let second = provider.ensure_client(&spec, &ours).await?;
    assert_eq!(first.id, second.id);
    assert_eq!(first.secret, second.secret);
    secrets.push(first.secret.expose().to_owned());
    let clients = admin.clients("berth-team-a").await?;
    assert_eq!(clients.len(), 1);
    let client = clients.first().ok_or("no client")?;
    assert_eq!(client["publicClient"], false);
    assert_eq!(client["serviceAccountsEnabled"], true);
    assert_eq!(client["standardFlowEnabled"], true);
    assert_eq!(client["directAccessGrantsEnabled"], false);
    assert_eq!(client["implicitFlowEnabled"], false);
    assert_eq!(
        client["redirectUris"],
        json!(["https://team-a.example.com/callback"])
    );
    assert_eq!(client["attributes"]["berth.managed"], "true");
    assert_eq!(
        client["attributes"]["berth.dev/project-uid"],
        json!(ours.uid)
    );

    // Its secret works for client_credentials; a wrong one does not.
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            first.secret.expose()
        )
        .await?,
        200
    );
    assert_eq!(
        client_credentials(&http, &token_endpoint, "berth-team-a", "not-the-secret").await?,
        401
    );

    // Its tokens carry its client id in `aud` (what a model server checks), through the audience
    // mapper; a client made before the mapper existed gets it on the next ensure_client.
    let audiences = token_audiences(
        &http,
        &token_endpoint,
        "berth-team-a",
        first.secret.expose(),
    )
    .await?;
    assert!(
        audiences.contains(&"berth-team-a".to_owned()),
        "{audiences:?}"
    );
    let mapper_id = client["protocolMappers"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == "berth-audience"))
        .and_then(|m| m["id"].as_str())
        .ok_or("no berth-audience mapper in the client")?
        .to_owned();
    let uuid = client["id"].as_str().ok_or("no id")?.to_owned();
    assert_eq!(
        admin
            .send(
                reqwest::Method::DELETE,
                &format!("/{REALM}/clients/{uuid}/protocol-mappers/models/{mapper_id}"),
                None
            )
            .await?,
        204
    );
    let audiences = token_audiences(
        &http,
        &token_endpoint,
        "berth-team-a",
        first.secret.expose(),
    )
    .await?;
    assert!(
        !audiences.contains(&"berth-team-a".to_owned()),
        "{audiences:?}"
    );
    provider.ensure_client(&spec, &ours).await?;
    let audiences = token_audiences(
        &http,
        &token_endpoint,
        "berth-team-a",
        first.secret.expose(),
    )
    .await?;
    assert!(
        audiences.contains(&"berth-team-a".to_owned()),
        "{audiences:?}"
    );

    // New redirect URIs reach Keycloak; the secret stays.
    let moved = ClientSpec {
        redirect_uris: vec![
            "https://team-a.example.com/callback".into(),
            "https://team-a.example.org/oauth2/callback".into(),
        ],
        ..spec.clone()
    };
    let updated = provider.ensure_client(&moved, &ours).await?;
    assert_eq!(updated.id, first.id);
    assert_eq!(updated.secret, first.secret);
    let clients = admin.clients("berth-team-a").await?;
    let uris = clients
        .first()
        .map(|c| c["redirectUris"].clone())
        .unwrap_or_default();
    let mut uris: Vec<String> = uris
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    uris.sort();
    assert_eq!(
        uris,
        vec![
            "https://team-a.example.com/callback".to_owned(),
            "https://team-a.example.org/oauth2/callback".to_owned()
        ]
    );

    // Reconciles racing on a new client: still one client.
    let mut handles = Vec::new();
    for _ in 0..4 {
        let provider = provider.clone();
        let spec = ClientSpec {
            client_id: "berth-team-race".into(),
            description: "race".into(),
            redirect_uris: vec![],
        };
        handles.push(tokio::spawn(async move {
            provider.ensure_client(&spec, &owner(9, false)).await
        }));
    }
    let mut ids = Vec::new();
    for handle in handles {
        ids.push(handle.await??.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(admin.clients("berth-team-race").await?.len(), 1);

    // --- Rotation. ---
    let keeps_old = provider.rotation_keeps_old_secret().await?;
    let rotated = provider.rotate_secret("berth-team-a").await?;
    secrets.push(rotated.secret.expose().to_owned());
    assert_eq!(rotated.id, first.id);
    assert_ne!(rotated.secret, first.secret);
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            rotated.secret.expose()
        )
        .await?,
        200
    );
    let old_status = client_credentials(
        &http,
        &token_endpoint,
        "berth-team-a",
        first.secret.expose(),
    )
    .await?;
    if keeps_old {
        eprintln!("rotation: Keycloak keeps the old secret until it is revoked");
        assert_eq!(
            old_status, 200,
            "the old secret ended before it was revoked"
        );
    } else {
        eprintln!(
            "rotation: this Keycloak has no client-secret-rotation feature: the old secret ends at once"
        );
        assert_eq!(old_status, 401);
    }
    provider.revoke_old_secret("berth-team-a").await?;
    provider.revoke_old_secret("berth-team-a").await?;
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            first.secret.expose()
        )
        .await?,
        401
    );
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            rotated.secret.expose()
        )
        .await?,
        200
    );
    // ensure_client now returns the new secret.
    assert_eq!(
        provider.ensure_client(&moved, &ours).await?.secret,
        rotated.secret
    );

    // --- Takeover attempts: what exists without this owner's record is left as it is. ---
    // Another project (another UID) cannot take, change or delete team-a's client.
    let theirs = owner(2, false);
    let e = provider
        .ensure_client(
            &ClientSpec {
                redirect_uris: vec!["https://attacker.example.com/".into()],
                ..spec.clone()
            },
            &theirs,
        )
        .await
        .err()
        .ok_or("another project took the client")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("belongs to another project"),
        "{}",
        e.message
    );
    let e = provider
        .delete_client("berth-team-a", &theirs)
        .await
        .err()
        .ok_or("another project deleted the client")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    let clients = admin.clients("berth-team-a").await?;
    assert_eq!(clients.len(), 1);
    assert!(
        !clients[0]["redirectUris"].to_string().contains("attacker"),
        "the victim's redirect URIs changed"
    );
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            rotated.secret.expose()
        )
        .await?,
        200,
        "the victim's secret stopped working"
    );
    // A client someone made by hand, with no owner record.
    assert_eq!(
        admin
            .send(
                reqwest::Method::POST,
                &format!("/{REALM}/clients"),
                Some(json!({"clientId": "berth-legacy", "publicClient": false, "redirectUris": ["https://legacy.example.com/*"]}))
            )
            .await?,
        201
    );
    let legacy = ClientSpec {
        client_id: "berth-legacy".into(),
        description: "Berth project legacy".into(),
        redirect_uris: vec!["https://attacker.example.com/".into()],
    };
    let e = provider
        .ensure_client(&legacy, &theirs)
        .await
        .err()
        .ok_or("a hand-made client was taken")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("records no owner"), "{}", e.message);
    messages_before_errors.push(e.message);
    assert_eq!(
        admin.clients("berth-legacy").await?[0]["redirectUris"],
        json!(["https://legacy.example.com/*"])
    );
    // A platform admin adopts it: from then on it is that project's.
    provider.ensure_client(&legacy, &owner(2, true)).await?;
    assert_eq!(
        admin.clients("berth-legacy").await?[0]["attributes"]["berth.dev/project-uid"],
        json!(theirs.uid)
    );
    provider.ensure_client(&legacy, &theirs).await?;
    provider.delete_client("berth-legacy", &theirs).await?;
    assert!(admin.clients("berth-legacy").await?.is_empty());

    // --- The group. ---
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let sync = provider
        .sync_group("team-a", &names(&["alice", "bob", "ghost"]), &ours)
        .await?;
    assert_eq!((sync.added, sync.removed), (2, 0));
    assert_eq!(sync.missing_users, names(&["ghost"]));
    assert_eq!(
        admin.group_members("team-a").await?,
        names(&["alice", "bob"])
    );

    let sync = provider
        .sync_group("team-a", &names(&["bob", "Carol"]), &ours)
        .await?;
    assert_eq!((sync.added, sync.removed), (1, 1));
    assert!(sync.missing_users.is_empty());
    assert_eq!(
        admin.group_members("team-a").await?,
        names(&["bob", "carol"])
    );

    let sync = provider
        .sync_group("team-a", &names(&["bob", "carol"]), &ours)
        .await?;
    assert_eq!((sync.added, sync.removed), (0, 0));

    // Another project cannot empty, fill or delete team-a's group, nor a group made by hand.
    let e = provider
        .sync_group("team-a", &names(&["alice"]), &theirs)
        .await
        .err()
        .ok_or("another project synced the group")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    let e = provider
        .delete_group("team-a", &theirs)
        .await
        .err()
        .ok_or("another project deleted the group")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(
        admin.group_members("team-a").await?,
        names(&["bob", "carol"])
    );
    assert_eq!(
        admin
            .send(
                reqwest::Method::POST,
                &format!("/{REALM}/groups"),
                Some(json!({"name": "admins"}))
            )
            .await?,
        201
    );
    let e = provider
        .sync_group("admins", &names(&["alice"]), &theirs)
        .await
        .err()
        .ok_or("a hand-made group was taken")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        admin.group_members("admins").await?.is_empty(),
        "alice was added to a group that is not Berth's"
    );

    let sync = provider.sync_group("team-a", &[], &ours).await?;
    assert_eq!(sync.removed, 2);
    assert!(admin.group_members("team-a").await?.is_empty());

    // --- Deletion, twice each. ---
    provider.delete_client("berth-team-a", &ours).await?;
    provider.delete_client("berth-team-a", &ours).await?;
    assert!(admin.clients("berth-team-a").await?.is_empty());
    assert_eq!(
        client_credentials(
            &http,
            &token_endpoint,
            "berth-team-a",
            rotated.secret.expose()
        )
        .await?,
        401
    );
    provider.delete_group("team-a", &ours).await?;
    provider.delete_group("team-a", &ours).await?;
    let groups = admin
        .get(&format!("/{REALM}/groups?search=team-a&exact=true"))
        .await?;
    assert_eq!(groups.as_array().map(Vec::len), Some(0));

    // --- Errors: each says which setting is wrong, none carries a secret. ---
    let mut messages = messages_before_errors;

    let no_realm = Keycloak::new(config(kc.base_url(), "no-such-realm", kc.admin_password()))?;
    let e = no_realm
        .check()
        .await
        .err()
        .ok_or("unknown realm accepted")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);
    assert!(e.message.contains("no-such-realm"), "{}", e.message);
    messages.push(e.message);
    let e = no_realm
        .ensure_client(&spec, &ours)
        .await
        .err()
        .ok_or("client made in an unknown realm")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);
    messages.push(e.message);
    let e = no_realm
        .sync_group("team-a", &names(&["alice"]), &ours)
        .await
        .err()
        .ok_or("group made in an unknown realm")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);
    messages.push(e.message);

    let wrong_password = "Wrong-password-77";
    secrets.push(wrong_password.to_owned());
    let wrong = Keycloak::new(config(kc.base_url(), REALM, wrong_password))?;
    let e = wrong.check().await.err().ok_or("wrong password accepted")?;
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    messages.push(e.message);
    let e = wrong
        .ensure_client(&spec, &ours)
        .await
        .err()
        .ok_or("wrong password accepted")?;
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    messages.push(e.message);

    let no_admin_realm = Keycloak::new(IdentityConfig {
        admin_realm: "no-such-admin-realm".into(),
        ..config(kc.base_url(), REALM, kc.admin_password())
    })?;
    let e = no_admin_realm
        .check()
        .await
        .err()
        .ok_or("unknown admin realm accepted")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);
    assert!(e.message.contains("no-such-admin-realm"), "{}", e.message);
    messages.push(e.message);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let nowhere = Keycloak::new(config(
        &format!("http://127.0.0.1:{closed}"),
        REALM,
        kc.admin_password(),
    ))?;
    let e = nowhere.check().await.err().ok_or("closed port answered")?;
    assert_eq!(e.kind, ErrorKind::Unreachable);
    messages.push(e.message);

    for message in &messages {
        for secret in &secrets {
            assert!(
                !message.contains(secret.as_str()),
                "a secret in {message:?}"
            );
        }
    }
    let debug = format!("{provider:?} {rotated:?}");
    for secret in &secrets {
        assert!(!debug.contains(secret.as_str()), "a secret in {debug}");
    }
    Ok(())
}
