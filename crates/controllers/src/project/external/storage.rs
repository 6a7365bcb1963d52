//! The project's bucket and its access key.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use berth_api::quantity;
use berth_providers::storage::{BucketSpec, ObjectStore};
use berth_providers::{Error, ErrorKind};

use super::super::build::secret::Contents;
use super::super::part::Part;
use super::credentials::{Decision, decide};
use super::part::{Claimed, Held, Input, OutsidePart, Removed, Replaced, Synced};
use crate::names::outside;

/// Storage on an object store.
pub struct Storage(pub Arc<dyn ObjectStore>);

/// The bucket's quota in bytes: the project's, else the platform default.
fn quota(input: &Input) -> Result<Option<u64>, Error> {
    let q = input
        .project
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
pub fn inputs(input: &Input) -> Option<u64> {
    quota(input).ok().flatten()
}

fn spec(name: &str, quota_bytes: Option<u64>) -> BucketSpec {
    BucketSpec {
        name: name.to_owned(),
        quota_bytes,
        policy: outside::bucket_policy(name),
    }
}

/// The bucket name, or the rule it breaks (checked before the part runs).
fn bucket_name(names: &super::super::validate::OutsideNames) -> Result<&str, Error> {
    names
        .bucket
        .as_deref()
        .map_err(|refused| Error::new(ErrorKind::Rejected, refused.to_string()))
}

#[async_trait]
impl OutsidePart for Storage {
    async fn sync(&self, input: &Input<'_>) -> Result<Synced, Error> {
        let store = &self.0;
        let names = &input.project.outside;
        let bucket = spec(bucket_name(names)?, quota(input)?);
        store.ensure_bucket(&bucket, &input.owner).await?;
        let prefix = &names.credential_prefix;
        let keys = store.list_keys(prefix).await?;
        let (decision, stale) = decide(&keys, input.current.as_deref(), input.rotate, prefix);
        let (login, secret, verb) = match decision {
            Decision::Keep(key) => {
                store.ensure_grant(&key, &bucket).await?;
                (key.id, None, "in use")
            }
            Decision::Recover(key) => {
                let issued = store.recover_key(&key, &bucket).await?;
                (issued.login.clone(), Some(issued), "recovered")
            }
            Decision::Create(name) => {
                let issued = store.create_key(&name, &bucket).await?;
                let verb = if input.rotate { "rotated" } else { "created" };
                (issued.login.clone(), Some(issued), verb)
            }
        };
        let contents = secret.map(|issued| {
            let mut data = BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".to_owned(), issued.login.clone()),
                (
                    "AWS_SECRET_ACCESS_KEY".to_owned(),
                    issued.secret.expose().to_owned(),
                ),
                ("AWS_REGION".to_owned(), store.region().to_owned()),
                ("AWS_DEFAULT_REGION".to_owned(), store.region().to_owned()),
                ("BUCKET".to_owned(), bucket.name.clone()),
            ]);
            if !store.endpoint().is_empty() {
                data.insert("AWS_ENDPOINT_URL".to_owned(), store.endpoint().to_owned());
            }
            Contents {
                type_: "Opaque".to_owned(),
                data,
                credential_id: issued.credential.id,
                fingerprint: None,
            }
        });
        let quota = match (bucket.quota_bytes, store.supports_quota()) {
            (Some(q), true) => format!(", quota {q} bytes"),
            (Some(_), false) => format!(", no quota: {} has none", store.kind()),
            (None, _) => String::new(),
        };
        Ok(Synced {
            claimed: Claimed {
                bucket: Some(bucket.name.clone()),
                ..Default::default()
            },
            secret: contents,
            message: format!(
                "bucket {} on {}{quota}; access key {login} ({verb}) reaches only that bucket, in Secret {}",
                bucket.name,
                store.kind(),
                Part::Storage.secret_name()
            ),
            replaced: (!stale.is_empty()).then_some(Replaced::Credentials(stale)),
        })
    }

    async fn revoke_replaced(&self, replaced: &Replaced) -> Result<(), Error> {
        if let Replaced::Credentials(keys) = replaced {
            for key in keys {
                self.0.delete_key(key).await?;
            }
        }
        Ok(())
    }

    async fn revoke(&self, held: &Held<'_>) -> Result<Vec<String>, Error> {
        let mut revoked = Vec::new();
        for key in self.0.list_keys(&held.names.credential_prefix).await? {
            self.0.delete_key(&key).await?;
            revoked.push(format!("access key {}", key.id));
        }
        Ok(revoked)
    }

    async fn delete(&self, held: &Held<'_>) -> Result<Removed, Error> {
        let mut removed = Removed::default();
        let Ok(name) = held.names.bucket.as_deref() else {
            return Ok(removed);
        };
        let result = self.0.delete_bucket(&spec(name, None), &held.owner).await;
        removed.record(format!("bucket {name} with its objects"), result)?;
        Ok(removed)
    }
}
