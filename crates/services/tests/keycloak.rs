//! A real Keycloak: an admin token from the master realm's token endpoint, and the realms listed
//! through the admin REST API with it.

use berth_services::Keycloak;

#[tokio::test]
async fn keycloak_issues_admin_tokens() -> Result<(), Box<dyn std::error::Error>> {
    let keycloak = Keycloak::start().await?;
    assert!(keycloak.base_url().starts_with("http://127.0.0.1:"));
    let http = reqwest::Client::builder().no_proxy().build()?;

    let discovery: serde_json::Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            keycloak.issuer("master")
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(discovery["issuer"], keycloak.issuer("master"));
    assert_eq!(
        discovery["token_endpoint"],
        keycloak.token_endpoint("master")
    );

    let token = keycloak.admin_token().await?;
    let realms: serde_json::Value = http
        .get(format!("{}/admin/realms", keycloak.base_url()))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let names: Vec<&str> = realms
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|realm| realm["realm"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["master"]);

    // A wrong password gets no token.
    let refused = http
        .post(keycloak.token_endpoint("master"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", keycloak.admin_username()),
            ("password", "not-the-password"),
        ])
        .send()
        .await?;
    let status = refused.status();
    let answer: serde_json::Value = refused.json().await?;
    assert!(status.is_client_error(), "{status}: {answer}");
    assert_eq!(answer["error"], "invalid_grant", "{status}: {answer}");
    assert!(answer.get("access_token").is_none());

    let ready = http
        .get(format!("{}/health/ready", keycloak.management_url()))
        .send()
        .await?;
    assert!(ready.status().is_success());
    Ok(())
}
