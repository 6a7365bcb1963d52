//! The project's OIDC client and its realm group.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::MemberKind;
use berth_providers::Error;
use berth_providers::identity::{ClientSpec, IdentityProvider};

use super::{Input, Revoke, Synced};

/// The client id: `berth-<project>`.
pub fn client_id(project: &str) -> String {
    format!("berth-{project}")
}

/// The realm group of the project's members: `berth-<project>`.
pub fn group_name(project: &str) -> String {
    format!("berth-{project}")
}

fn spec(input: &Input) -> ClientSpec {
    ClientSpec {
        client_id: client_id(input.name),
        description: format!(
            "Berth project {} (namespace {}). Managed by Berth: changes made here are undone.",
            input.name, input.namespace
        ),
        redirect_uris: input
            .project
            .spec
            .idp
            .as_ref()
            .map(|i| i.redirect_uris.clone())
            .unwrap_or_default(),
    }
}

/// The users who belong in the group: every User member, whatever the role.
fn usernames(input: &Input) -> Vec<String> {
    input
        .subjects
        .iter()
        .filter(|s| s.kind == MemberKind::User)
        .map(|s| s.name.clone())
        .collect()
}

/// What the sync depends on, for skipping it when nothing changed.
pub fn inputs(input: &Input) -> (Vec<String>, Vec<String>) {
    (spec(input).redirect_uris, usernames(input))
}

/// Makes the client and the group exist and match; returns the Secret's contents.
pub async fn sync(idp: Arc<dyn IdentityProvider>, input: &Input<'_>) -> Result<Synced, Error> {
    let spec = spec(input);
    let mut client = idp.ensure_client(&spec).await?;
    let mut revoke = None;
    let mut verb = "";
    if input.rotate.is_some() {
        client = idp.rotate_secret(&spec.client_id).await?;
        revoke = Some(Revoke::ClientSecret(idp.clone(), spec.client_id.clone()));
        verb = "; its secret was rotated";
    }
    let users = usernames(input);
    let group = group_name(input.name);
    let sync = idp.sync_group(&group, &users).await?;
    let missing = if sync.missing_users.is_empty() {
        String::new()
    } else {
        format!(
            "; not in the realm, so not in the group: {}",
            sync.missing_users.join(", ")
        )
    };
    let data = BTreeMap::from([
        ("OIDC_CLIENT_ID".to_owned(), client.client_id.clone()),
        (
            "OIDC_CLIENT_SECRET".to_owned(),
            client.secret.expose().to_owned(),
        ),
        ("OIDC_ISSUER_URL".to_owned(), idp.issuer()),
    ]);
    Ok(Synced {
        secret_type: Some("Opaque".to_owned()),
        data,
        credential_id: None,
        message: format!(
            "client {} at {} in Secret {}{verb}; group {group} has {} member(s){missing}",
            client.client_id,
            idp.issuer(),
            super::Part::Identity.secret_name(),
            users.len() - sync.missing_users.len(),
        ),
        revoke,
    })
}

/// The Delete policy: the client and the group.
pub async fn delete(idp: Arc<dyn IdentityProvider>, input: &Input<'_>) -> Result<String, Error> {
    let id = client_id(input.name);
    idp.delete_client(&id).await?;
    idp.delete_group(&group_name(input.name)).await?;
    Ok(format!("OIDC client {id} and its group"))
}
