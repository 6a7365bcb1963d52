//! The project's OIDC client and its realm group.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use berth_api::MemberKind;
use berth_providers::Error;
use berth_providers::identity::{ClientSpec, IdentityProvider};

use super::super::build::secret::Contents;
use super::super::part::Part;
use super::part::{Claimed, Held, Input, OutsidePart, Removed, Replaced, Synced};
use crate::names::short_hash;

/// Identity on an OIDC provider.
pub struct Identity(pub Arc<dyn IdentityProvider>);

fn spec(input: &Input) -> ClientSpec {
    let project = input.project;
    ClientSpec {
        client_id: project.outside.oidc_client.clone(),
        description: format!(
            "Berth project {} (namespace {}). Managed by Berth: changes made here are undone.",
            project.name, project.namespace
        ),
        redirect_uris: project
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
        .project
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

/// The fingerprint of a client secret: the first 128 bits of its SHA-256. It tells a secret
/// changed by hand from the one the Secret holds, and cannot be turned back into the secret.
fn fingerprint(secret: &str) -> String {
    short_hash(secret, 32)
}

#[async_trait]
impl OutsidePart for Identity {
    async fn sync(&self, input: &Input<'_>) -> Result<Synced, Error> {
        let idp = &self.0;
        let spec = spec(input);
        let mut client = idp.ensure_client(&spec, &input.owner).await?;
        let mut replaced = None;
        let mut verb = "";
        if input.rotate {
            client = idp.rotate_secret(&spec.client_id).await?;
            replaced = Some(Replaced::ClientSecret(spec.client_id.clone()));
            verb = "; its secret was rotated";
        }
        let users = usernames(input);
        let group = input.project.outside.oidc_group.clone();
        let sync = idp.sync_group(&group, &users, &input.owner).await?;
        let missing = if sync.missing_users.is_empty() {
            String::new()
        } else {
            format!(
                "; not in the realm, so not in the group: {}",
                sync.missing_users.join(", ")
            )
        };
        let print = fingerprint(client.secret.expose());
        let unchanged = input.current.as_deref() == Some(client.id.as_str())
            && input.fingerprint.as_deref() == Some(print.as_str());
        let secret = (!unchanged).then(|| Contents {
            type_: "Opaque".to_owned(),
            data: BTreeMap::from([
                ("OIDC_CLIENT_ID".to_owned(), client.client_id.clone()),
                (
                    "OIDC_CLIENT_SECRET".to_owned(),
                    client.secret.expose().to_owned(),
                ),
                ("OIDC_ISSUER_URL".to_owned(), idp.issuer()),
            ]),
            credential_id: client.id.clone(),
            fingerprint: Some(print),
        });
        Ok(Synced {
            claimed: Claimed {
                oidc_client: Some(client.client_id.clone()),
                oidc_group: Some(group.clone()),
                ..Default::default()
            },
            secret,
            message: format!(
                "client {} at {} in Secret {}{verb}; group {group} has {} member(s){missing}",
                client.client_id,
                idp.issuer(),
                Part::Identity.secret_name(),
                users.len() - sync.missing_users.len(),
            ),
            replaced,
        })
    }

    async fn revoke_replaced(&self, replaced: &Replaced) -> Result<(), Error> {
        match replaced {
            Replaced::ClientSecret(client) => self.0.revoke_old_secret(client).await,
            Replaced::Credentials(_) => Ok(()),
        }
    }

    async fn revoke(&self, held: &Held<'_>) -> Result<Vec<String>, Error> {
        // A client is its credential: deleting it revokes its secret.
        let client = &held.names.oidc_client;
        match self.0.delete_client(client, &held.owner).await {
            Ok(()) => Ok(vec![format!("OIDC client {client}")]),
            Err(e) if e.kind == berth_providers::ErrorKind::Conflict => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, held: &Held<'_>) -> Result<Removed, Error> {
        let mut removed = Removed::default();
        let client = &held.names.oidc_client;
        let result = self.0.delete_client(client, &held.owner).await;
        removed.record(format!("OIDC client {client}"), result)?;
        let group = &held.names.oidc_group;
        let result = self.0.delete_group(group, &held.owner).await;
        removed.record(format!("realm group {group}"), result)?;
        Ok(removed)
    }
}
