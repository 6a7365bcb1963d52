//! Keycloak, through its admin REST API (`<url>/admin/realms/<realm>/...`).
//!
//! The admin logs in with the password grant of `admin-cli` in the admin realm; the token is kept
//! and fetched anew a little before it expires (or at once if the server rejects it).
//!
//! **The client.** Each Project gets one confidential OpenID Connect client (`publicClient:
//! false`, authenticated by its secret), found by its `clientId` before anything is created:
//! - *service accounts* on: a program authenticates to the project's APIs with the
//!   `client_credentials` grant, which is what "a client for API authentication" needs;
//! - *standard flow* (authorization code) on, so that the spec's redirect URIs mean something:
//!   a web app of the project can log its users in;
//! - *direct access grants* (passwords through the client) and the *implicit flow* off;
//! - a `groups` protocol mapper, so that tokens carry the user's groups, among them the project's
//!   group.
//!
//! **Rotation.** Keycloak keeps a client's previous secret valid as a "rotated secret" only when
//! its preview feature `client-secret-rotation` is enabled and a client policy with the
//! `secret-rotation` executor applies to the client. When the server has that executor, Berth
//! puts a profile and a policy in the realm (`berth-secret-rotation`, applying to clients with
//! the attribute `berth.managed: true`, which Berth's clients carry): `rotate_secret` then leaves
//! the old secret working until `revoke_old_secret` (`DELETE .../client-secret/rotated`), or at
//! most [`ROTATED_SECRET_GRACE`]. Without the feature (Keycloak's default), `rotate_secret`
//! regenerates the secret and the old one stops working at once; `revoke_old_secret` has nothing
//! to do. [`Keycloak::rotation_keeps_old_secret`] tells which.
//!
//! **Ownership.** The client and the group record their owner's UID as the attribute
//! [`crate::OWNER_TAG`], set in the request that creates them. One that exists without it is
//! never used, changed or deleted (a conflict) unless the owner asks to adopt it.
//!
//! **The group.** A top-level realm group per Project whose members are exactly the given
//! usernames that have an account in the realm (Keycloak keeps usernames in lower case, so the
//! match is on the lower-cased name); the others are reported as missing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{ClientSpec, ClientState, GroupSync, IdentityConfig, IdentityProvider};
use crate::{Error, ErrorKind, OWNER_TAG, Owner, Result, Secret};

/// The client attribute that marks Berth's clients (and brings them under the rotation policy).
pub const MANAGED_ATTRIBUTE: &str = "berth.managed";
/// The realm's client profile and policy for secret rotation.
pub const ROTATION_POLICY: &str = "berth-secret-rotation";
/// How long an old secret stays valid after a rotation if nobody revokes it.
pub const ROTATED_SECRET_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How long a secret is valid under the rotation policy: Keycloak's executor makes secrets
/// expire, so this is long (ten years); Berth rotates when asked, not on a schedule.
const SECRET_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Fetch a new admin token when the current one has less than this left.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// Page size for member lists.
const PAGE: usize = 100;

/// A Keycloak admin client. It keeps the admin token, so share one behind an `Arc`.
pub struct Keycloak {
    base: String,
    realm: String,
    admin_realm: String,
    admin_username: String,
    admin_password: Secret,
    http: reqwest::Client,
    token: Mutex<Option<AdminToken>>,
    rotation: Mutex<Option<bool>>,
}

impl std::fmt::Debug for Keycloak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keycloak")
            .field("url", &self.base)
            .field("realm", &self.realm)
            .field("admin_realm", &self.admin_realm)
            .field("admin_username", &self.admin_username)
            .finish_non_exhaustive()
    }
}

struct AdminToken {
    value: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct SecretAnswer {
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    id: String,
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, Vec<String>>,
}

impl Group {
    /// What the group records instead of `owner`, or None if it records `owner`.
    fn not_owned(&self, owner: &Owner) -> Option<String> {
        whose(
            self.attributes
                .get(OWNER_TAG)
                .and_then(|v| v.first())
                .map(String::as_str),
            owner,
        )
    }
}

/// What a recorded owner UID says instead of `owner`, or None if it is `owner`'s.
fn whose(recorded: Option<&str>, owner: &Owner) -> Option<String> {
    match recorded {
        Some(uid) if uid == owner.uid => None,
        Some(uid) => Some(format!(
            "belongs to another project (its attribute {OWNER_TAG} is {uid})"
        )),
        None => Some(format!(
            "records no owner (it has no attribute {OWNER_TAG})"
        )),
    }
}

/// What a client (as Keycloak represents it) records instead of `owner`, or None.
fn client_not_owned(client: &Value, owner: &Owner) -> Option<String> {
    whose(
        client
            .get("attributes")
            .and_then(|a| a.get(OWNER_TAG))
            .and_then(Value::as_str),
        owner,
    )
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: String,
}

impl Keycloak {
    /// A client for the Keycloak at `config.url`. Makes no request: [`IdentityProvider::check`]
    /// does.
    pub fn new(config: IdentityConfig) -> Result<Self> {
        let base = config.url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            Error::new(
                ErrorKind::NotConfigured,
                format!("the Keycloak URL {:?} is not a URL: {e}", config.url),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                format!(
                    "the Keycloak URL {:?} must be an http(s) URL with a host and no credentials",
                    config.url
                ),
            ));
        }
        for (what, value) in [
            ("realm", &config.realm),
            ("admin realm", &config.admin_realm),
        ] {
            if value.is_empty() || value.contains('/') {
                return Err(Error::new(
                    ErrorKind::NotConfigured,
                    format!("the Keycloak {what} {value:?} is not a realm name"),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::new(ErrorKind::Backend, format!("building an HTTP client: {e}")))?;
        Ok(Self {
            base,
            realm: config.realm,
            admin_realm: config.admin_realm,
            admin_username: config.admin_username,
            admin_password: config.admin_password,
            http,
            token: Mutex::new(None),
            rotation: Mutex::new(None),
        })
    }

    /// Whether [`IdentityProvider::rotate_secret`] keeps the old secret valid until
    /// [`IdentityProvider::revoke_old_secret`]: true when the server has Keycloak's
    /// `secret-rotation` client policy executor (preview feature `client-secret-rotation`).
    pub async fn rotation_keeps_old_secret(&self) -> Result<bool> {
        let mut known = self.rotation.lock().await;
        if let Some(known) = *known {
            return Ok(known);
        }
        let what = "reading Keycloak's server info";
        let response = self
            .admin(what, Method::GET, "/admin/serverinfo", None)
            .await?;
        let info: Value = json_body(what, expect_ok(what, response).await?).await?;
        let has = info
            .pointer("/componentTypes/org.keycloak.services.clientpolicy.executor.ClientPolicyExecutorProvider")
            .and_then(Value::as_array)
            .is_some_and(|executors| {
                executors
                    .iter()
                    .any(|e| e.get("id").and_then(Value::as_str) == Some("secret-rotation"))
            });
        *known = Some(has);
        Ok(has)
    }

    fn realm_path(&self, rest: &str) -> String {
        format!("/admin/realms/{}{rest}", segment(&self.realm))
    }

    fn unknown_realm(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::NotConfigured,
            format!(
                "{what}: Keycloak at {} has no realm {:?}: create it, or set the realm Berth uses",
                self.base, self.realm
            ),
        )
    }

    /// The admin token, fetched if there is none or it is about to expire.
    async fn admin_token(&self) -> Result<Secret> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let what = format!(
            "logging in to Keycloak at {} as {} (realm {})",
            self.base, self.admin_username, self.admin_realm
        );
        let url = format!(
            "{}/realms/{}/protocol/openid-connect/token",
            self.base,
            segment(&self.admin_realm)
        );
        let response = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", self.admin_username.as_str()),
                ("password", self.admin_password.expose()),
            ])
            .send()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let answer: Option<TokenError> = serde_json::from_str(&body).ok();
            let (error, description) = answer
                .map(|a| (a.error, a.error_description))
                .unwrap_or_default();
            return Err(match status {
                StatusCode::NOT_FOUND => Error::new(
                    ErrorKind::NotConfigured,
                    format!(
                        "{what}: Keycloak has no realm {:?} to log the admin in to",
                        self.admin_realm
                    ),
                ),
                StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST
                    if error == "invalid_grant" || status == StatusCode::UNAUTHORIZED =>
                {
                    Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "{what}: Keycloak rejected the admin username or password ({error}: {description})"
                        ),
                    )
                }
                _ => Error::status(&what, status, &format!("{error} {description}")),
            });
        }
        let answer: TokenAnswer = json_body(&what, response).await?;
        let lifetime = Duration::from_secs(answer.expires_in.max(1));
        // Refresh with a margin, or at half the lifetime for very short-lived tokens.
        let early = lifetime.saturating_sub(TOKEN_MARGIN).max(lifetime / 2);
        let value = Secret::new(answer.access_token);
        *slot = Some(AdminToken {
            value: value.clone(),
            refresh_at: Instant::now() + early,
        });
        Ok(value)
    }

    /// An admin API call. A 401 (the token expired early, or was revoked) gets one retry with a
    /// new token.
    async fn admin(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response> {
        for attempt in 0..2 {
            let token = self.admin_token().await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Error::transport(what, &e))?;
            if response.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            return Ok(response);
        }
        Err(Error::new(
            ErrorKind::Unauthorized,
            format!("{what}: Keycloak rejected a fresh admin token"),
        ))
    }

    /// A GET that answers JSON; 404 means the realm is missing.
    async fn get_in_realm<T: DeserializeOwned>(&self, what: &str, path: &str) -> Result<T> {
        let response = self.admin(what, Method::GET, path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.unknown_realm(what));
        }
        json_body(what, expect_ok(what, response).await?).await
    }

    /// The client with this client id, as Keycloak represents it.
    async fn find_client(&self, client_id: &str) -> Result<Option<Value>> {
        let what = format!("looking up client {client_id}");
        let path = self.realm_path(&format!("/clients?clientId={}", query(client_id)));
        let clients: Vec<Value> = self.get_in_realm(&what, &path).await?;
        Ok(clients
            .into_iter()
            .find(|c| c.get("clientId").and_then(Value::as_str) == Some(client_id)))
    }

    async fn client_uuid(&self, client_id: &str) -> Result<Option<String>> {
        Ok(self
            .find_client(client_id)
            .await?
            .and_then(|c| c.get("id").and_then(Value::as_str).map(str::to_owned)))
    }

    async fn read_secret(&self, client_id: &str, uuid: &str) -> Result<Secret> {
        let what = format!("reading the secret of client {client_id}");
        let path = self.realm_path(&format!("/clients/{}/client-secret", segment(uuid)));
        let response = self.admin(&what, Method::GET, &path, None).await?;
        let answer: SecretAnswer = json_body(&what, expect_ok(&what, response).await?).await?;
        answer
            .value
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| Error::new(ErrorKind::Backend, format!("{what}: Keycloak has none")))
    }

    /// Puts the rotation profile and policy in the realm if they are missing.
    async fn ensure_rotation_policy(&self) -> Result<()> {
        let seconds = |d: Duration| d.as_secs().to_string();
        let what = "setting up client secret rotation in the realm";
        let path = self.realm_path("/client-policies/profiles");
        let mut profiles: Value = self.get_in_realm(what, &path).await?;
        let has_profile = profiles
            .get("profiles")
            .and_then(Value::as_array)
            .is_some_and(|p| {
                p.iter()
                    .any(|p| p.get("name").and_then(Value::as_str) == Some(ROTATION_POLICY))
            });
        if !has_profile {
            let profile = json!({
                "name": ROTATION_POLICY,
                "description": "Berth: keep a client's previous secret valid until Berth has stored the new one",
                "executors": [{
                    "executor": "secret-rotation",
                    "configuration": {
                        "expiration-period": seconds(SECRET_LIFETIME),
                        "rotated-expiration-period": seconds(ROTATED_SECRET_GRACE),
                        "remaining-rotation-period": "60",
                    },
                }],
            });
            let list = profiles
                .as_object_mut()
                .map(|o| o.entry("profiles").or_insert_with(|| json!([])));
            match list.and_then(Value::as_array_mut) {
                Some(list) => list.push(profile),
                None => profiles = json!({ "profiles": [profile] }),
            }
            let response = self
                .admin(what, Method::PUT, &path, Some(&profiles))
                .await?;
            expect_ok(what, response).await?;
        }

        let path = self.realm_path("/client-policies/policies");
        let mut policies: Value = self.get_in_realm(what, &path).await?;
        let has_policy = policies
            .get("policies")
            .and_then(Value::as_array)
            .is_some_and(|p| {
                p.iter()
                    .any(|p| p.get("name").and_then(Value::as_str) == Some(ROTATION_POLICY))
            });
        if !has_policy {
            let policy = json!({
                "name": ROTATION_POLICY,
                "description": "Berth's clients",
                "enabled": true,
                "conditions": [{
                    "condition": "client-attributes",
                    "configuration": {
                        "is-negative-logic": false,
                        "attributes": format!("[{{\"key\":\"{MANAGED_ATTRIBUTE}\",\"value\":\"true\"}}]"),
                    },
                }],
                "profiles": [ROTATION_POLICY],
            });
            let list = policies
                .as_object_mut()
                .map(|o| o.entry("policies").or_insert_with(|| json!([])));
            match list.and_then(Value::as_array_mut) {
                Some(list) => list.push(policy),
                None => policies = json!({ "policies": [policy] }),
            }
            let response = self
                .admin(what, Method::PUT, &path, Some(&policies))
                .await?;
            expect_ok(what, response).await?;
        }
        Ok(())
    }

    /// The realm's top-level group with this exact name.
    async fn find_group(&self, name: &str) -> Result<Option<Group>> {
        let what = format!("looking up group {name}");
        let path = self.realm_path(&format!(
            "/groups?search={}&exact=true&briefRepresentation=false&first=0&max={PAGE}",
            query(name)
        ));
        let groups: Vec<Group> = self.get_in_realm(&what, &path).await?;
        let top = format!("/{name}");
        Ok(groups
            .into_iter()
            .find(|g| g.name == name && g.path.as_deref().is_none_or(|p| p == top)))
    }

    async fn group_members(&self, group: &Group) -> Result<Vec<User>> {
        let what = format!("listing the members of group {}", group.name);
        let mut out = Vec::new();
        let mut first = 0;
        loop {
            let path = self.realm_path(&format!(
                "/groups/{}/members?briefRepresentation=true&first={first}&max={PAGE}",
                segment(&group.id)
            ));
            let page: Vec<User> = self.get_in_realm(&what, &path).await?;
            let received = page.len();
            out.extend(page);
            if received < PAGE {
                return Ok(out);
            }
            first += received;
        }
    }

    async fn find_user(&self, username: &str) -> Result<Option<User>> {
        let what = format!("looking up user {username}");
        let path = self.realm_path(&format!(
            "/users?username={}&exact=true&briefRepresentation=true",
            query(username)
        ));
        let users: Vec<User> = self.get_in_realm(&what, &path).await?;
        let wanted = username.to_lowercase();
        Ok(users.into_iter().find(|u| u.username == wanted))
    }

    async fn membership(&self, method: Method, user: &User, group: &Group) -> Result<()> {
        let verb = if method == Method::PUT {
            "adding"
        } else {
            "removing"
        };
        let what = format!("{verb} {} in group {}", user.username, group.name);
        let path = self.realm_path(&format!(
            "/users/{}/groups/{}",
            segment(&user.id),
            segment(&group.id)
        ));
        let response = self.admin(&what, method, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // The user or the group went meanwhile: nothing left to do for this one.
            return Ok(());
        }
        expect_ok(&what, response).await.map(drop)
    }
}

#[async_trait]
impl IdentityProvider for Keycloak {
    fn kind(&self) -> &'static str {
        "keycloak"
    }

    fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base, self.realm)
    }

    async fn check(&self) -> Result<()> {
        let what = format!("reading realm {} of Keycloak at {}", self.realm, self.base);
        let response = self
            .admin(&what, Method::GET, &self.realm_path(""), None)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(self.unknown_realm(&what)),
            StatusCode::FORBIDDEN => Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "{what}: {} may not manage realm {}: give it the realm-admin role (or manage-clients, manage-users, view-realm)",
                    self.admin_username, self.realm
                ),
            )),
            _ => expect_ok(&what, response).await.map(drop),
        }
    }

    async fn ensure_client(&self, spec: &ClientSpec, owner: &Owner) -> Result<ClientState> {
        let client_id = spec.client_id.as_str();
        let existing = match self.find_client(client_id).await? {
            Some(existing) => existing,
            None => {
                let what = format!("creating client {client_id}");
                let body = json!({
                    "clientId": client_id,
                    "name": client_id,
                    "description": spec.description,
                    "enabled": true,
                    "protocol": "openid-connect",
                    "publicClient": false,
                    "clientAuthenticatorType": "client-secret",
                    "serviceAccountsEnabled": true,
                    "standardFlowEnabled": true,
                    "directAccessGrantsEnabled": false,
                    "implicitFlowEnabled": false,
                    "redirectUris": spec.redirect_uris,
                    "attributes": { MANAGED_ATTRIBUTE: "true", OWNER_TAG: owner.uid },
                    "protocolMappers": [{
                        "name": "groups",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-group-membership-mapper",
                        "config": {
                            "claim.name": "groups",
                            "full.path": "false",
                            "id.token.claim": "true",
                            "access.token.claim": "true",
                            "userinfo.token.claim": "true",
                        },
                    }, audience_mapper(client_id)],
                });
                let response = self
                    .admin(
                        &what,
                        Method::POST,
                        &self.realm_path("/clients"),
                        Some(&body),
                    )
                    .await?;
                match response.status() {
                    StatusCode::NOT_FOUND => return Err(self.unknown_realm(&what)),
                    // Made meanwhile: look again, never a second client.
                    StatusCode::CONFLICT => {}
                    _ => {
                        expect_ok(&what, response).await?;
                    }
                }
                self.find_client(client_id).await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Backend,
                        format!("{what}: Keycloak accepted it but does not list it"),
                    )
                })?
            }
        };
        let uuid = existing
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    format!("client {client_id}: Keycloak's answer has no id"),
                )
            })?;

        let foreign = client_not_owned(&existing, owner);
        if let Some(whose) = &foreign
            && !owner.adopt
        {
            return Err(Error::conflict(
                &format!("Keycloak client {client_id}"),
                whose,
            ));
        }

        // Update what the spec decides, if it differs.
        let current_uris: BTreeSet<&str> = existing
            .get("redirectUris")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let wanted_uris: BTreeSet<&str> = spec.redirect_uris.iter().map(String::as_str).collect();
        let current_description = existing
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let marked = existing
            .pointer(&format!("/attributes/{MANAGED_ATTRIBUTE}"))
            .and_then(Value::as_str)
            == Some("true");
        if current_uris != wanted_uris
            || current_description != spec.description
            || !marked
            || foreign.is_some()
        {
            let what = format!("updating client {client_id}");
            let mut body = existing.clone();
            if let Some(object) = body.as_object_mut() {
                object.insert("redirectUris".into(), json!(spec.redirect_uris));
                object.insert("description".into(), json!(spec.description));
                let attributes = object.entry("attributes").or_insert_with(|| json!({}));
                if let Some(attributes) = attributes.as_object_mut() {
                    attributes.insert(MANAGED_ATTRIBUTE.into(), json!("true"));
                    attributes.insert(OWNER_TAG.into(), json!(owner.uid));
                }
                // The secret is not ours to send back.
                object.remove("secret");
            }
            let path = self.realm_path(&format!("/clients/{}", segment(&uuid)));
            let response = self.admin(&what, Method::PUT, &path, Some(&body)).await?;
            expect_ok(&what, response).await?;
        }

        // Clients made before the audience mapper existed get it now.
        if !has_audience_mapper(&existing, client_id) {
            let what = format!("adding the audience mapper to client {client_id}");
            let path = self.realm_path(&format!(
                "/clients/{}/protocol-mappers/models",
                segment(&uuid)
            ));
            let response = self
                .admin(
                    &what,
                    Method::POST,
                    &path,
                    Some(&audience_mapper(client_id)),
                )
                .await?;
            // 409: a mapper of that name is there already (made meanwhile).
            if response.status() != StatusCode::CONFLICT {
                expect_ok(&what, response).await?;
            }
        }

        let secret = self.read_secret(client_id, &uuid).await?;
        Ok(ClientState {
            client_id: client_id.to_owned(),
            id: uuid,
            secret,
        })
    }

    async fn rotate_secret(&self, client_id: &str) -> Result<ClientState> {
        let what = format!("rotating the secret of client {client_id}");
        if self.rotation_keeps_old_secret().await? {
            self.ensure_rotation_policy().await?;
        }
        let uuid = self.client_uuid(client_id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("{what}: there is no such client"),
            )
        })?;
        let path = self.realm_path(&format!("/clients/{}/client-secret", segment(&uuid)));
        let response = self.admin(&what, Method::POST, &path, None).await?;
        let answer: SecretAnswer = json_body(&what, expect_ok(&what, response).await?).await?;
        let secret = match answer.value.filter(|v| !v.is_empty()) {
            Some(value) => Secret::new(value),
            None => self.read_secret(client_id, &uuid).await?,
        };
        Ok(ClientState {
            client_id: client_id.to_owned(),
            id: uuid,
            secret,
        })
    }

    async fn revoke_old_secret(&self, client_id: &str) -> Result<()> {
        if !self.rotation_keeps_old_secret().await? {
            // Without Keycloak's rotation the old secret ended with the rotation.
            return Ok(());
        }
        let what = format!("revoking the previous secret of client {client_id}");
        let Some(uuid) = self.client_uuid(client_id).await? else {
            return Ok(());
        };
        let path = self.realm_path(&format!(
            "/clients/{}/client-secret/rotated",
            segment(&uuid)
        ));
        let response = self.admin(&what, Method::DELETE, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_ok(&what, response).await.map(drop)
    }

    async fn delete_client(&self, client_id: &str, owner: &Owner) -> Result<()> {
        let what = format!("deleting client {client_id}");
        let Some(client) = self.find_client(client_id).await? else {
            return Ok(());
        };
        if let Some(whose) = client_not_owned(&client, owner) {
            return Err(Error::conflict(
                &format!("Keycloak client {client_id}"),
                &whose,
            ));
        }
        let Some(uuid) = client.get("id").and_then(Value::as_str) else {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("{what}: Keycloak's answer has no id"),
            ));
        };
        let path = self.realm_path(&format!("/clients/{}", segment(uuid)));
        let response = self.admin(&what, Method::DELETE, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_ok(&what, response).await.map(drop)
    }

    async fn sync_group(
        &self,
        name: &str,
        usernames: &[String],
        owner: &Owner,
    ) -> Result<GroupSync> {
        let group = match self.find_group(name).await? {
            Some(group) => group,
            None => {
                let what = format!("creating group {name}");
                let response = self
                    .admin(
                        &what,
                        Method::POST,
                        &self.realm_path("/groups"),
                        Some(&json!({ "name": name, "attributes": { OWNER_TAG: [owner.uid] } })),
                    )
                    .await?;
                match response.status() {
                    StatusCode::NOT_FOUND => return Err(self.unknown_realm(&what)),
                    StatusCode::CONFLICT => {}
                    _ => {
                        expect_ok(&what, response).await?;
                    }
                }
                self.find_group(name).await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Backend,
                        format!("{what}: Keycloak accepted it but does not list it"),
                    )
                })?
            }
        };

        if let Some(whose) = group.not_owned(owner) {
            if !owner.adopt {
                return Err(Error::conflict(&format!("Keycloak group {name}"), &whose));
            }
            let what = format!("recording the owner of group {name}");
            let mut attributes = group.attributes.clone();
            attributes.insert(OWNER_TAG.to_owned(), vec![owner.uid.clone()]);
            let path = self.realm_path(&format!("/groups/{}", segment(&group.id)));
            let response = self
                .admin(
                    &what,
                    Method::PUT,
                    &path,
                    Some(&json!({ "name": group.name, "attributes": attributes })),
                )
                .await?;
            expect_ok(&what, response).await?;
        }

        let mut sync = GroupSync::default();
        let wanted: BTreeSet<String> = usernames
            .iter()
            .filter(|u| !u.is_empty())
            .map(|u| u.to_lowercase())
            .collect();
        let current: BTreeMap<String, User> = self
            .group_members(&group)
            .await?
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect();

        for (username, user) in &current {
            if !wanted.contains(username) {
                self.membership(Method::DELETE, user, &group).await?;
                sync.removed += 1;
            }
        }
        for username in &wanted {
            if current.contains_key(username) {
                continue;
            }
            match self.find_user(username).await? {
                Some(user) => {
                    self.membership(Method::PUT, &user, &group).await?;
                    sync.added += 1;
                }
                None => sync.missing_users.push(username.clone()),
            }
        }
        Ok(sync)
    }

    async fn delete_group(&self, name: &str, owner: &Owner) -> Result<()> {
        let what = format!("deleting group {name}");
        let Some(group) = self.find_group(name).await? else {
            return Ok(());
        };
        if let Some(whose) = group.not_owned(owner) {
            return Err(Error::conflict(&format!("Keycloak group {name}"), &whose));
        }
        let path = self.realm_path(&format!("/groups/{}", segment(&group.id)));
        let response = self.admin(&what, Method::DELETE, &path, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_ok(&what, response).await.map(drop)
    }
}

/// A path segment, percent-encoded.
/// The name of the protocol mapper that puts a project's client id in the `aud` of the access
/// tokens issued through that client.
pub const AUDIENCE_MAPPER: &str = "berth-audience";

/// Keycloak puts a client's own id in `azp`, not in `aud`, of the tokens it issues through that
/// client (client_credentials, or a user logging in through it); a model server checks `aud`
/// (RFC 9068 section 4: the resource server must check its audience). This mapper
/// (`oidc-audience-mapper`, "Audience" in the admin console) adds it.
fn audience_mapper(client_id: &str) -> Value {
    json!({
        "name": AUDIENCE_MAPPER,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {
            "included.client.audience": client_id,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
        },
    })
}

/// Whether `client` (Keycloak's representation) has the mapper that puts `client_id` in `aud`.
fn has_audience_mapper(client: &Value, client_id: &str) -> bool {
    client
        .get("protocolMappers")
        .and_then(Value::as_array)
        .is_some_and(|mappers| {
            mappers.iter().any(|m| {
                m.get("protocolMapper").and_then(Value::as_str) == Some("oidc-audience-mapper")
                    && m.pointer("/config/included.client.audience")
                        .and_then(Value::as_str)
                        == Some(client_id)
            })
        })
}

fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query value, percent-encoded.
fn query(value: &str) -> String {
    segment(value)
}

async fn expect_ok(what: &str, response: Response) -> Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    // Keycloak's errors are `{"error": ..., "error_description": ...}` or `{"errorMessage": ...}`.
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            ["errorMessage", "error_description", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or(body);
    Err(Error::status(what, status, &message))
}

async fn json_body<T: DeserializeOwned>(what: &str, response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::transport(what, &e))?;
    // The position only: an answer may carry a secret, which must not reach the message.
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!(
                "{what}: the answer is not what Keycloak's admin API describes (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn encodes() {
        assert_eq!(segment("team a/b"), "team%20a%2Fb");
    }
}
