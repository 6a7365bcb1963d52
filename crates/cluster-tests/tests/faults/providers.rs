//! What the outside services hold for each Project, counted through their own admin APIs: buckets
//! and access keys in Garage, clients and groups in Keycloak.
//!
//! [`owned`] is the one place that knows how a Project's outside objects are found, so it alone
//! changes when their names do. It finds each by what the Project itself publishes (the bucket in
//! its status, the key and the client id in its Secrets) where it can, and counts everything that
//! appeared since the [`Baseline`]: an object that matches no Project is a stray, which is how a
//! duplicate under another name shows.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::Value;

use berth_api::Project;
use berth_controllers::names::outside as names;
use berth_services::{Garage, Keycloak};

/// What each service held before the test made any Project.
#[derive(Debug, Default, Clone)]
pub struct Baseline {
    buckets: BTreeSet<String>,
    keys: BTreeSet<String>,
    clients: BTreeSet<String>,
    groups: BTreeSet<String>,
}

/// How many of each outside object a Project has.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owned {
    pub buckets: usize,
    pub keys: usize,
    /// Garage's owner-marker keys (`berth-owner-<uid>`): the record that the bucket is the
    /// Project's, where Garage has no tags.
    pub markers: usize,
    pub clients: usize,
    pub groups: usize,
}

/// The services' objects: (id, name) pairs.
struct Listing {
    buckets: Vec<(String, Vec<String>)>,
    keys: Vec<(String, String)>,
    clients: Vec<(String, String)>,
    groups: Vec<(String, String)>,
}

async fn keycloak_list(keycloak: &Keycloak, realm: &str, what: &str) -> Result<Vec<Value>> {
    let token = keycloak.admin_token().await?;
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/admin/realms/{realm}/{what}?max=100000&briefRepresentation=true",
            keycloak.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await?;
    let status = answer.status();
    let body = answer.text().await?;
    if !status.is_success() {
        bail!("Keycloak GET {what}: HTTP {status}: {body}");
    }
    Ok(serde_json::from_str::<Value>(&body)?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn list(garage: Option<&Garage>, keycloak: Option<(&Keycloak, &str)>) -> Result<Listing> {
    let mut listing = Listing {
        buckets: Vec::new(),
        keys: Vec::new(),
        clients: Vec::new(),
        groups: Vec::new(),
    };
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    if let Some(garage) = garage {
        let buckets: Value = garage.admin_get("ListBuckets").await?;
        for b in buckets.as_array().into_iter().flatten() {
            let aliases = b["globalAliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            listing.buckets.push((s(b, "id"), aliases));
        }
        let keys: Value = garage.admin_get("ListKeys").await?;
        for k in keys.as_array().into_iter().flatten() {
            listing.keys.push((s(k, "id"), s(k, "name")));
        }
    }
    if let Some((keycloak, realm)) = keycloak {
        for c in keycloak_list(keycloak, realm, "clients").await? {
            listing.clients.push((s(&c, "id"), s(&c, "clientId")));
        }
        for g in keycloak_list(keycloak, realm, "groups").await? {
            listing.groups.push((s(&g, "id"), s(&g, "name")));
        }
    }
    Ok(listing)
}

impl Baseline {
    pub async fn take(
        garage: Option<&Garage>,
        keycloak: Option<(&Keycloak, &str)>,
    ) -> Result<Self> {
        let l = list(garage, keycloak).await?;
        Ok(Self {
            buckets: l.buckets.into_iter().map(|b| b.0).collect(),
            keys: l.keys.into_iter().map(|k| k.0).collect(),
            clients: l.clients.into_iter().map(|c| c.0).collect(),
            groups: l.groups.into_iter().map(|g| g.0).collect(),
        })
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// Per Project, how many buckets, keys, clients and groups it has; and every object made since
/// `baseline` that belongs to none of them.
pub async fn owned(
    client: &Client,
    projects: &[Project],
    baseline: &Baseline,
    garage: Option<&Garage>,
    keycloak: Option<(&Keycloak, &str)>,
) -> Result<(BTreeMap<String, Owned>, Vec<String>)> {
    let l = list(garage, keycloak).await?;
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut out = BTreeMap::new();
    for p in projects {
        let name = p.name_any();
        let uid = p.uid().unwrap_or_default();
        let namespace = p
            .status
            .as_ref()
            .and_then(|s| s.namespace.clone())
            .unwrap_or_else(|| name.clone());
        let external = p.status.as_ref().and_then(|s| s.external.clone());
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let mut owned = Owned::default();
        if garage.is_some() {
            let bucket = external
                .as_ref()
                .and_then(|e| e.bucket.clone())
                .with_context(|| format!("{name} has no bucket in its status"))?;
            let storage = secrets.get("berth-storage").await?;
            let key_id = secret_value(&storage, "AWS_ACCESS_KEY_ID")
                .with_context(|| format!("{name}'s storage Secret has no key"))?;
            for (id, aliases) in &l.buckets {
                if aliases.contains(&bucket) {
                    owned.buckets += 1;
                    claimed.insert(format!("bucket {id}"));
                }
            }
            let prefix = names::credential_prefix(&uid);
            let marker = names::marker(&uid);
            for (id, key_name) in &l.keys {
                // The key the Secret hands out, or another key under the Project's credential
                // prefix (a leftover of an earlier attempt).
                if *id == key_id || key_name.starts_with(&prefix) {
                    owned.keys += 1;
                    claimed.insert(format!("key {id}"));
                } else if *key_name == marker {
                    owned.markers += 1;
                    claimed.insert(format!("key {id}"));
                }
            }
        }
        if keycloak.is_some() {
            let oidc = secrets.get("berth-oidc").await?;
            let client_id = secret_value(&oidc, "OIDC_CLIENT_ID")
                .with_context(|| format!("{name}'s OIDC Secret has no client id"))?;
            for (id, cid) in &l.clients {
                if *cid == client_id {
                    owned.clients += 1;
                    claimed.insert(format!("client {id}"));
                }
            }
            let group = names::oidc_group(&name);
            for (id, g) in &l.groups {
                if *g == group {
                    owned.groups += 1;
                    claimed.insert(format!("group {id}"));
                }
            }
        }
        out.insert(name, owned);
    }
    let mut strays = Vec::new();
    let mut stray = |kind: &str, id: &str, name: &str, before: &BTreeSet<String>| {
        if !before.contains(id) && !claimed.contains(&format!("{kind} {id}")) {
            strays.push(format!("{kind} {id} ({name}) belongs to no Project"));
        }
    };
    for (id, aliases) in &l.buckets {
        stray("bucket", id, &aliases.join(","), &baseline.buckets);
    }
    for (id, n) in &l.keys {
        stray("key", id, n, &baseline.keys);
    }
    for (id, n) in &l.clients {
        stray("client", id, n, &baseline.clients);
    }
    for (id, n) in &l.groups {
        stray("group", id, n, &baseline.groups);
    }
    Ok((out, strays))
}
