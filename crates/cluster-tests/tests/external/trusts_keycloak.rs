//! The API server trusts Keycloak (issue 15, "acting as the user"): a control plane of its own
//! started with `Options::trust` (structured authentication configuration) and a Keycloak serving
//! HTTPS with a CA made for it. Every token is asked of the real Keycloak through its real login
//! form (the authorization code flow with PKCE, as the console does), and shown to the API
//! server as a bearer token with a kube client:
//!
//! - a verified user's ID token is the user: a SelfSubjectReview says the username is the e-mail
//!   and the groups are the Keycloak groups (and `system:authenticated`), and RBAC bound to the
//!   e-mail applies (a RoleBinding by e-mail, as a Project's);
//! - refused (401): an unverified e-mail; an ID token of another client of the realm; the
//!   console client's access token (its `aud` is not the console); garbage; a valid token with
//!   one byte of its signature changed, or with its e-mail rewritten; a token past its `exp`
//!   (its twin is taken before);
//! - a user put in a Keycloak group named `system:masters` is refused, so they can ask nothing
//!   (not even `can-i`), and the same user out of that group is let in as themselves: the group
//!   is the reason;
//! - a user who changes their own e-mail in Keycloak's account console to a Project owner's
//!   address is never that owner to the API server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use berth_services::{Account, ConsoleClient, Keycloak, KeycloakOptions, Tokens};
use berth_testenv::{ControlPlane, Options, TrustedIssuer};

const REALM: &str = "berth";
const CONSOLE: &str = "berth.console";
const OTHER: &str = "other-app";
const PASSWORD: &str = "berth-test-Password-1";
/// Never dialled: the login's last redirect is read, not followed.
const CONSOLE_URL: &str = "http://127.0.0.1:9/";

fn client(id: &str) -> ConsoleClient {
    ConsoleClient {
        client_id: id.to_owned(),
        redirect_uri: format!("{CONSOLE_URL}oauth2/callback"),
        post_logout_redirect_uri: CONSOLE_URL.to_owned(),
    }
}

/// Base64url without padding (RFC 4648 §5), for PKCE and JWT segments.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn b64url_decode(text: &str) -> Result<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => bail!("not base64url: {c}"),
        };
        bits = bits << 6 | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Ok(out)
}

/// One login of `username` through Keycloak's form for client `id` (code flow with PKCE).
async fn tokens(keycloak: &Keycloak, id: &str, secret: &str, username: &str) -> Result<Tokens> {
    let tokens = keycloak
        .log_in(REALM, &client(id), secret, username, PASSWORD)
        .await?;
    Ok(tokens)
}

/// A JWT's claims, read without checking anything (what the test sent, for messages).
fn claims(token: &str) -> Result<Value> {
    let payload = token.split('.').nth(1).context("not a JWT")?;
    Ok(serde_json::from_slice(&b64url_decode(payload)?)?)
}

/// A kube client that sends `token` as its bearer, and nothing else of the admin's.
async fn as_bearer(plane: &ControlPlane, token: &str) -> Result<kube::Client> {
    let mut config = plane.cluster().config().await?;
    config.auth_info.token = Some(token.to_owned().into());
    config.auth_info.token_file = None;
    Ok(kube::Client::try_from(config)?)
}

/// Who the API server says `token` is (`SelfSubjectReview`), or the HTTP status it refused with.
async fn who(plane: &ControlPlane, token: &str) -> Result<Result<UserInfo, u16>> {
    let reviews: Api<SelfSubjectReview> = Api::all(as_bearer(plane, token).await?);
    match reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(review) => Ok(Ok(review
            .status
            .and_then(|s| s.user_info)
            .context("a SelfSubjectReview without userInfo")?)),
        Err(kube::Error::Api(status)) => Ok(Err(status.code)),
        Err(e) => Err(e.into()),
    }
}

/// `kubectl auth can-i <verb> <resource> [-n <namespace>]` with `token`: Ok(allowed), or the
/// status the API server refused the question with.
async fn can_i(
    plane: &ControlPlane,
    token: &str,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<Result<bool, u16>> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(as_bearer(plane, token).await?);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                resource: Some(resource.to_owned()),
                group: Some("*".to_owned()).filter(|_| resource == "*"),
                namespace: namespace.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match reviews.create(&PostParams::default(), &review).await {
        Ok(answer) => Ok(Ok(answer.status.is_some_and(|s| s.allowed))),
        Err(kube::Error::Api(status)) => Ok(Err(status.code)),
        Err(e) => Err(e.into()),
    }
}

fn refused(what: &str, answer: Result<UserInfo, u16>) -> Result<()> {
    match answer {
        Err(401) => Ok(()),
        other => bail!("{what}: expected 401, the API server answered {other:?}"),
    }
}

#[tokio::test]
async fn the_api_server_takes_a_verified_keycloak_user_by_email_and_nothing_of_the_platform()
-> Result<()> {
    let begin = Instant::now();
    let keycloak = Keycloak::start_with(KeycloakOptions {
        https: true,
        address: None,
    })
    .await?;
    keycloak.create_realm(REALM).await?;
    let console_secret = keycloak
        .create_console_client(REALM, &client(CONSOLE))
        .await?;
    let other_secret = keycloak
        .create_console_client(REALM, &client(OTHER))
        .await?;
    let account = |username: &'static str, verified: bool, groups: &'static [&'static str]| {
        (username, verified, groups)
    };
    let mut ids = std::collections::BTreeMap::new();
    for (username, verified, groups) in [
        account("alice", true, &["data-science", "berth-vision"]),
        account("mallory", false, &[]),
        account("root", true, &["system:masters"]),
        account("eve", true, &[]),
    ] {
        let email = format!("{username}@example.com");
        let id = keycloak
            .create_account(
                REALM,
                &Account {
                    username,
                    email: &email,
                    email_verified: verified,
                    password: Some(PASSWORD),
                    groups,
                },
            )
            .await?;
        ids.insert(username, id);
    }
    // The management interface takes the main one's TLS.
    let health = format!("{}/health/ready", keycloak.management_url());
    ensure!(health.starts_with("https://"), "{health}");
    keycloak
        .http()
        .get(&health)
        .send()
        .await?
        .error_for_status()?;
    let issuer = keycloak.https_issuer(REALM).context("no HTTPS issuer")?;
    let plane = ControlPlane::start(Options {
        nodes: 1,
        install_berth: false,
        trust: Some(TrustedIssuer {
            url: issuer.clone(),
            certificate_authority: keycloak.ca_pem().context("no CA")?.to_owned(),
            client_id: CONSOLE.to_owned(),
        }),
        ..Options::default()
    })
    .await?;
    let started = begin.elapsed();

    // Alice is alice@example.com, in her Keycloak groups. The API server fetches Keycloak's keys
    // in the background after its start: a 401 before that is retried for a while.
    let alice = tokens(&keycloak, CONSOLE, &console_secret, "alice").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let user = loop {
        match who(&plane, &alice.id_token).await? {
            Ok(user) => break user,
            Err(code) if Instant::now() < deadline && code == 401 => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(code) => bail!(
                "alice's ID token (claims {}) was refused: {code}",
                claims(&alice.id_token)?
            ),
        }
    };
    assert_eq!(user.username.as_deref(), Some("alice@example.com"));
    let mut groups = user.groups.clone().unwrap_or_default();
    groups.sort();
    // berth-vision is the realm group a Project named vision gets: its creator chose that name,
    // so it is no Kubernetes group (a Project named platform-admin must not make its members
    // berth-platform-admin).
    assert_eq!(groups, ["data-science", "system:authenticated"], "{user:?}");
    assert_eq!(
        user.uid.as_deref(),
        ids.get("alice").map(String::as_str),
        "the uid is Keycloak's subject"
    );

    // RBAC by e-mail applies to her, as a Project's RoleBinding does; nothing more.
    let admin = plane.cluster().client().await?;
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "vision"}}))?,
        )
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), "vision")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "alice-view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}],
            }))?,
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while can_i(&plane, &alice.id_token, "list", "pods", Some("vision")).await? != Ok(true) {
        ensure!(
            Instant::now() < deadline,
            "alice cannot list pods in vision"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Api::<Pod>::namespaced(as_bearer(&plane, &alice.id_token).await?, "vision")
        .list(&ListParams::default())
        .await?;
    assert_eq!(
        can_i(&plane, &alice.id_token, "create", "pods", Some("vision")).await?,
        Ok(false)
    );
    assert_eq!(
        can_i(&plane, &alice.id_token, "*", "*", None).await?,
        Ok(false)
    );

    // An unverified e-mail names nobody.
    let mallory = tokens(&keycloak, CONSOLE, &console_secret, "mallory").await?;
    ensure!(claims(&mallory.id_token)?["email_verified"] == false);
    refused(
        "an unverified e-mail",
        who(&plane, &mallory.id_token).await?,
    )?;

    // A token for another client of the realm, or the console's access token, is not the
    // console's ID token.
    let elsewhere = tokens(&keycloak, OTHER, &other_secret, "alice").await?;
    ensure!(claims(&elsewhere.id_token)?["aud"] == OTHER);
    refused(
        "another client's ID token",
        who(&plane, &elsewhere.id_token).await?,
    )?;
    refused(
        "the console's access token",
        who(&plane, &alice.access_token).await?,
    )?;

    // Garbage, a changed signature, a rewritten e-mail.
    refused("garbage", who(&plane, "not-a-token").await?)?;
    let parts: Vec<&str> = alice.id_token.split('.').collect();
    ensure!(parts.len() == 3, "alice's ID token is no JWS");
    let mut signature = b64url_decode(parts[2])?;
    signature[10] ^= 1;
    refused(
        "a changed signature",
        who(
            &plane,
            &format!("{}.{}.{}", parts[0], parts[1], b64url(&signature)),
        )
        .await?,
    )?;
    let forged = claims(&alice.id_token)?
        .to_string()
        .replace("alice@", "root@");
    refused(
        "a rewritten e-mail",
        who(
            &plane,
            &format!("{}.{}.{}", parts[0], b64url(forged.as_bytes()), parts[2]),
        )
        .await?,
    )?;

    // A Keycloak group named system:masters makes nobody an admin: the token is refused, so
    // its holder cannot even ask `can-i`.
    let root = tokens(&keycloak, CONSOLE, &console_secret, "root").await?;
    ensure!(
        claims(&root.id_token)?["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:masters")),
        "Keycloak did not put system:masters in root's token: {}",
        claims(&root.id_token)?
    );
    refused("a system:masters group", who(&plane, &root.id_token).await?)?;
    assert_eq!(
        can_i(&plane, &root.id_token, "*", "*", None).await?,
        Err(401)
    );
    // Out of that group, the same user is let in as themselves: the group was the reason.
    let root_id = ids.get("root").context("no id for root")?;
    let group_id = keycloak.ensure_group(REALM, "system:masters").await?;
    let token = keycloak.admin_token().await?;
    keycloak
        .http()
        .delete(format!(
            "{}/admin/realms/{REALM}/users/{root_id}/groups/{group_id}",
            keycloak.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let root = tokens(&keycloak, CONSOLE, &console_secret, "root").await?;
    let user = who(&plane, &root.id_token)
        .await?
        .map_err(|code| anyhow::anyhow!("root out of system:masters: {code}"))?;
    assert_eq!(user.username.as_deref(), Some("root@example.com"));
    assert_eq!(
        can_i(&plane, &root.id_token, "*", "*", None).await?,
        Ok(false)
    );

    // Eve gives herself the address of a Project owner who has no Keycloak account yet, in
    // Keycloak's account console (its REST API, with her own token): she never becomes them.
    let eve = tokens(&keycloak, CONSOLE, &console_secret, "eve").await?;
    let edit = keycloak
        .http()
        .post(format!("{issuer}/account/"))
        .bearer_auth(&eve.access_token)
        .json(&json!({
            "username": "eve", "email": "boss@example.com",
            "firstName": "eve", "lastName": "Berth",
        }))
        .send()
        .await?;
    let edit_status = edit.status();
    let edit_body = edit.text().await?;
    let eve = tokens(&keycloak, CONSOLE, &console_secret, "eve").await?;
    let eve_claims = claims(&eve.id_token)?;
    let answer = who(&plane, &eve.id_token).await?;
    eprintln!(
        "eve's e-mail edit: {edit_status} {edit_body}; her next ID token says {} (verified: {}); the API server: {:?}",
        eve_claims["email"],
        eve_claims["email_verified"],
        answer.as_ref().map(|u| u.username.clone())
    );
    match &answer {
        Ok(user) => assert_eq!(
            user.username.as_deref(),
            Some("eve@example.com"),
            "eve became someone else"
        ),
        Err(code) => {
            assert_eq!(*code, 401);
            assert_eq!(eve_claims["email"], "boss@example.com");
            assert_eq!(eve_claims["email_verified"], false);
        }
    }

    // A token past its `exp` is refused: ID tokens of this realm live 6 s from now on. A twin
    // (the same user, client and lifespan, from a second login) is taken before its `exp`, so
    // the time is the reason. Not the same token: the API server caches a token it accepted for
    // 10 s (kube-apiserver's token success cache), past its `exp` too.
    let token = keycloak.admin_token().await?;
    keycloak
        .http()
        .put(format!("{}/admin/realms/{REALM}", keycloak.base_url()))
        .bearer_auth(token)
        .json(&json!({"accessTokenLifespan": 6}))
        .send()
        .await?
        .error_for_status()?;
    let twin = tokens(&keycloak, CONSOLE, &console_secret, "alice").await?;
    let short = tokens(&keycloak, CONSOLE, &console_secret, "alice").await?;
    let exp = |token: &str| -> Result<u64> { claims(token)?["exp"].as_u64().context("no exp") };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    };
    ensure!(
        exp(&short.id_token)? <= now() + 7,
        "the short token lives until {}",
        exp(&short.id_token)?
    );
    let before = who(&plane, &twin.id_token).await?;
    ensure!(
        now() < exp(&twin.id_token)?,
        "the test was too slow to use the twin before its exp"
    );
    ensure!(
        before.as_ref().ok().and_then(|u| u.username.as_deref()) == Some("alice@example.com"),
        "the short-lived twin before its exp: {before:?}"
    );
    tokio::time::sleep(Duration::from_secs(
        exp(&short.id_token)?.saturating_sub(now()) + 1,
    ))
    .await;
    refused("an expired token", who(&plane, &short.id_token).await?)?;

    eprintln!(
        "Keycloak and the trusting control plane up in {:.1} s; the whole test {:.1} s",
        started.as_secs_f64(),
        begin.elapsed().as_secs_f64()
    );
    Ok(())
}
