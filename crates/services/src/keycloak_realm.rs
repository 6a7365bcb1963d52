//! Setting up a realm for people: users with passwords, groups, and the console's OIDC client,
//! through Keycloak's admin REST API (`/admin/realms/<realm>/...`, Keycloak 26).

use serde_json::{Value, json};

use crate::common::{expect_success, random_hex};
use crate::{Error, Keycloak, Result};

/// The console's OIDC client ([`Keycloak::create_console_client`]).
#[derive(Clone, Debug)]
pub struct ConsoleClient {
    /// Its `client_id`, which is also the ID token's `aud` and `azp`: what the API server's
    /// `jwt` authenticator accepts. Choose one no Project can produce: Berth names a Project's
    /// client `berth-<project>` (a DNS label), so `berth.console` (with a dot) is never one, while
    /// `berth-console` would be the client of a Project named `console`, whose owner could then
    /// log users in through it and hold ID tokens the API server takes.
    pub client_id: String,
    /// `<console URL>/oauth2/callback`.
    pub redirect_uri: String,
    /// `<console URL>/`, where Keycloak sends the browser back after logging out.
    pub post_logout_redirect_uri: String,
}

/// A person in a realm ([`Keycloak::create_account`]).
#[derive(Clone, Debug)]
pub struct Account<'a> {
    pub username: &'a str,
    pub email: &'a str,
    /// Whether Keycloak records the address as verified (`email_verified` in tokens).
    pub email_verified: bool,
    /// A permanent password, so the account can log in on Keycloak's form; none when `None`.
    pub password: Option<&'a str>,
    /// Realm groups (top level, made when missing) the account is put in.
    pub groups: &'a [&'a str],
}

/// The last path segment of a `Location` header: the id of what a `POST` made.
fn created_id(what: &str, response: &reqwest::Response) -> Result<String> {
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::Answer {
            what: what.to_owned(),
            message: "no Location header naming what was made".to_owned(),
        })
}

impl Keycloak {
    async fn admin_post(&self, what: &str, path: &str, body: &Value) -> Result<String> {
        let token = self.admin_token().await?;
        let response = self
            .http()
            .post(format!("{}/admin/realms/{path}", self.base_url()))
            .bearer_auth(&token)
            .json(body)
            .send()
            .await
            .map_err(|e| Error::http(what, e))?;
        let id = created_id(what, &response);
        expect_success(what, Ok(response)).await?;
        id
    }

    async fn admin_get(&self, what: &str, path: &str) -> Result<Value> {
        let token = self.admin_token().await?;
        let body = expect_success(
            what,
            self.http()
                .get(format!("{}/admin/realms/{path}", self.base_url()))
                .bearer_auth(&token)
                .send()
                .await,
        )
        .await?;
        crate::common::parse_json(what, &body)
    }

    /// The id of top-level group `name` of `realm`, made when missing
    /// (`POST /admin/realms/<realm>/groups`).
    pub async fn ensure_group(&self, realm: &str, name: &str) -> Result<String> {
        let what = format!("looking up group {name} in realm {realm}");
        let found = self
            .admin_get(&what, &format!("{realm}/groups?search={name}&exact=true"))
            .await?;
        if let Some(id) = found
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == name))
            .and_then(|g| g["id"].as_str())
        {
            return Ok(id.to_owned());
        }
        self.admin_post(
            &format!("creating group {name} in realm {realm}"),
            &format!("{realm}/groups"),
            &json!({"name": name}),
        )
        .await
    }

    /// Creates an enabled user with a name, the given e-mail (verified or not), a permanent
    /// password and groups; returns the user's id.
    pub async fn create_account(&self, realm: &str, account: &Account<'_>) -> Result<String> {
        let mut user = json!({
            "username": account.username, "email": account.email,
            "emailVerified": account.email_verified,
            "firstName": account.username, "lastName": "Berth", "enabled": true,
        });
        if let Some(password) = account.password {
            user["credentials"] =
                json!([{"type": "password", "value": password, "temporary": false}]);
        }
        let id = self
            .admin_post(
                &format!("creating user {} in realm {realm}", account.username),
                &format!("{realm}/users"),
                &user,
            )
            .await?;
        for group in account.groups {
            let group_id = self.ensure_group(realm, group).await?;
            let what = format!("putting user {} in group {group}", account.username);
            let token = self.admin_token().await?;
            expect_success(
                &what,
                self.http()
                    .put(format!(
                        "{}/admin/realms/{realm}/users/{id}/groups/{group_id}",
                        self.base_url()
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await,
            )
            .await?;
        }
        Ok(id)
    }

    /// Creates the console's client in `realm` and returns its secret: confidential, the
    /// authorization code flow only (no direct access grants, implicit flow or service account),
    /// PKCE S256 required, exactly one redirect URI and one post-logout redirect URI, and two
    /// mappers on the ID token (and userinfo): `groups`, the user's realm groups by name without
    /// a leading `/`, and, by Keycloak's default, `aud` and `azp` = the client id. Access tokens
    /// get no `groups` and not this audience: the API server takes the ID token only.
    pub async fn create_console_client(
        &self,
        realm: &str,
        client: &ConsoleClient,
    ) -> Result<String> {
        let secret = random_hex(32)?;
        self.admin_post(
            &format!("creating client {} in realm {realm}", client.client_id),
            &format!("{realm}/clients"),
            &console_client(client, &secret),
        )
        .await?;
        Ok(secret)
    }
}

/// Keycloak's representation of the console's client (see [`Keycloak::create_console_client`]).
fn console_client(client: &ConsoleClient, secret: &str) -> Value {
    json!({
        "clientId": client.client_id,
        "name": "Berth console",
        "enabled": true,
        "protocol": "openid-connect",
        "publicClient": false,
        "clientAuthenticatorType": "client-secret",
        "secret": secret,
        "standardFlowEnabled": true,
        "directAccessGrantsEnabled": false,
        "implicitFlowEnabled": false,
        "serviceAccountsEnabled": false,
        "redirectUris": [client.redirect_uri],
        "webOrigins": [],
        "attributes": {
            "pkce.code.challenge.method": "S256",
            "post.logout.redirect.uris": client.post_logout_redirect_uri,
        },
        "protocolMappers": [{
            "name": "groups",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-group-membership-mapper",
            "config": {
                "claim.name": "groups",
                "full.path": "false",
                "id.token.claim": "true",
                "access.token.claim": "false",
                "userinfo.token.claim": "true",
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_client_has_the_code_flow_only_with_pkce_and_groups_by_name() {
        let client = super::ConsoleClient {
            client_id: "berth.console".into(),
            redirect_uri: "http://127.0.0.1:8080/oauth2/callback".into(),
            post_logout_redirect_uri: "http://127.0.0.1:8080/".into(),
        };
        let c = super::console_client(&client, "s3cret");
        assert_eq!(c["standardFlowEnabled"], true);
        for off in [
            "directAccessGrantsEnabled",
            "implicitFlowEnabled",
            "serviceAccountsEnabled",
            "publicClient",
        ] {
            assert_eq!(c[off], false, "{off}");
        }
        assert_eq!(c["attributes"]["pkce.code.challenge.method"], "S256");
        assert_eq!(
            c["redirectUris"],
            serde_json::json!(["http://127.0.0.1:8080/oauth2/callback"])
        );
        let groups = &c["protocolMappers"][0]["config"];
        assert_eq!(groups["full.path"], "false");
        assert_eq!(groups["id.token.claim"], "true");
    }
}
