//! The project's bucket and its access key.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::quantity;
use berth_providers::storage::{BucketSpec, ObjectStore};
use berth_providers::{Error, ErrorKind};

use super::credentials::{Decision, decide};
use super::{Input, Revoke, Synced};
use crate::names::short_hash;

/// The bucket's name, from the platform's template.
pub fn bucket_name(input: &Input) -> String {
    let template = input
        .settings
        .storage
        .as_ref()
        .map(|s| s.bucket_template.as_str())
        .unwrap_or("{project}");
    template
        .replace("{project}", input.name)
        .replace("{namespace}", input.namespace)
}

/// The prefix of the project's key names: short enough for every backend (MinIO takes at most 20
/// characters), and the same for the project's whole life.
pub fn key_prefix(project: &str) -> String {
    format!("b{}-", short_hash(project, 10))
}

/// The bucket's quota in bytes: the project's, else the platform default.
fn quota(input: &Input) -> Result<Option<u64>, Error> {
    let q = input
        .project
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.quota.as_ref())
        .or(input
            .settings
            .storage
            .as_ref()
            .and_then(|s| s.default_quota.as_ref()));
    let Some(q) = q else { return Ok(None) };
    let nanos = quantity::parse(&q.0)
        .map_err(|e| Error::new(ErrorKind::Rejected, format!("storage quota: {e}")))?;
    // Whole bytes, rounded up; a quantity is in billionths.
    let bytes = (nanos.0.max(0) + 999_999_999) / 1_000_000_000;
    Ok(Some(u64::try_from(bytes).unwrap_or(u64::MAX)))
}

/// What the sync depends on, for skipping it when nothing changed.
pub fn inputs(input: &Input) -> (String, Option<u64>) {
    (bucket_name(input), quota(input).ok().flatten())
}

/// Makes the bucket and the key exist; returns the Secret's contents.
pub async fn sync(store: Arc<dyn ObjectStore>, input: &Input<'_>) -> Result<Synced, Error> {
    let bucket = BucketSpec {
        name: bucket_name(input),
        quota_bytes: quota(input)?,
    };
    store.ensure_bucket(&bucket).await?;
    let prefix = key_prefix(input.name);
    let keys = store.list_keys(&prefix).await?;
    let live_secret = input.live_value("AWS_SECRET_ACCESS_KEY");
    // A Secret without its secret half cannot be kept.
    let current = input.live_credential_id().filter(|_| live_secret.is_some());
    let (decision, stale) = decide(&keys, current, input.rotate.is_some(), &prefix);
    // The credential's id (what the Secret records), the login clients use, and its secret.
    let (id, login, secret, verb) = match decision {
        Decision::Keep(key) => {
            store.ensure_grant(&key, &bucket.name).await?;
            let login = input.live_value("AWS_ACCESS_KEY_ID").unwrap_or_default();
            (key.id, login, live_secret.unwrap_or_default(), "in use")
        }
        Decision::Recover(key) => {
            let issued = store.recover_key(&key, &bucket.name).await?;
            let secret = issued.secret.expose().to_owned();
            (issued.credential.id, issued.login, secret, "recovered")
        }
        Decision::Create(name) => {
            let issued = store.create_key(&name, &bucket.name).await?;
            let verb = if input.rotate.is_some() {
                "rotated"
            } else {
                "created"
            };
            let secret = issued.secret.expose().to_owned();
            (issued.credential.id, issued.login, secret, verb)
        }
    };
    let mut data = BTreeMap::from([
        ("AWS_ACCESS_KEY_ID".to_owned(), login.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
        ("AWS_REGION".to_owned(), store.region().to_owned()),
        ("AWS_DEFAULT_REGION".to_owned(), store.region().to_owned()),
        ("BUCKET".to_owned(), bucket.name.clone()),
    ]);
    if !store.endpoint().is_empty() {
        data.insert("AWS_ENDPOINT_URL".to_owned(), store.endpoint().to_owned());
    }
    let quota = match (bucket.quota_bytes, store.supports_quota()) {
        (Some(q), true) => format!(", quota {q} bytes"),
        (Some(_), false) => format!(", no quota: {} has none", store.kind()),
        (None, _) => String::new(),
    };
    Ok(Synced {
        secret_type: Some("Opaque".to_owned()),
        data,
        credential_id: Some(id.clone()),
        message: format!(
            "bucket {} on {}{quota}; access key {login} ({verb}) reaches only that bucket, in Secret {}",
            bucket.name,
            store.kind(),
            super::Part::Storage.secret_name()
        ),
        revoke: (!stale.is_empty()).then(|| Revoke::Keys(store.clone(), stale)),
    })
}

/// The Delete policy: the bucket with every object, then every key.
pub async fn delete(store: Arc<dyn ObjectStore>, input: &Input<'_>) -> Result<String, Error> {
    let bucket = bucket_name(input);
    store.delete_bucket(&bucket).await?;
    let keys = store.list_keys(&key_prefix(input.name)).await?;
    for k in &keys {
        store.delete_key(k).await?;
    }
    Ok(format!(
        "bucket {bucket} with its objects and {} access key(s)",
        keys.len()
    ))
}
