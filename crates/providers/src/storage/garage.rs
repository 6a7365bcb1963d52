//! Garage, through its admin API v2 (Garage 2.x) with a bearer token.
//!
//! A Project's bucket is a bucket with a global alias (its name); its key is a Garage access key
//! with read and write (not owner) on that bucket and no right to create buckets. Garage keeps
//! the secret of a key and shows it to the admin again, so [`ObjectStore::recover_key`] reads it
//! back.
//!
//! **Ownership.** Garage buckets have no tags. The owner is recorded by a *marker key*: a key
//! named [`Owner::marker`] (only an admin names keys) with no rights at all and no right to create
//! buckets, holding a local alias of the same name on the bucket. The bucket is created with that
//! alias in one request (`CreateBucket` with `localAlias`), so no crash leaves an unmarked bucket
//! behind. `GetBucketInfo` lists the keys with an alias on the bucket, which is how the record is
//! read.
//!
//! Garage's admin API does not delete a bucket that holds objects: [`GarageStore`] empties it
//! through S3 first, with the marker key given read and write for that moment only.

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{BucketSpec, ObjectStore, StoreConfig, check_key_name, error_chain, s3};
use crate::{Credential, Error, ErrorKind, IssuedCredential, Owner, Result, Secret};

/// Object storage on Garage. See the module documentation.
pub struct GarageStore {
    endpoint: String,
    admin_endpoint: String,
    region: String,
    token: Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketInfo {
    id: String,
    #[serde(default)]
    objects: i64,
    #[serde(default)]
    unfinished_uploads: i64,
    #[serde(default)]
    unfinished_multipart_uploads: i64,
    quotas: Quotas,
    /// The keys with rights or a local alias on the bucket.
    #[serde(default)]
    keys: Vec<BucketKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketKey {
    name: String,
    #[serde(default)]
    bucket_local_aliases: Vec<String>,
}

impl BucketInfo {
    /// Whether `owner`'s marker key holds its alias on this bucket.
    fn records(&self, owner: &Owner) -> bool {
        self.keys
            .iter()
            .any(|k| k.name == owner.marker && k.bucket_local_aliases.contains(&owner.marker))
    }

    /// What the bucket records instead of `owner`, for a conflict message.
    fn whose(&self, owner: &Owner) -> String {
        let markers: Vec<&str> = self
            .keys
            .iter()
            .filter(|k| !k.bucket_local_aliases.is_empty())
            .map(|k| k.name.as_str())
            .collect();
        if markers.is_empty() {
            format!(
                "records no owner (no marker key {} holds an alias on it)",
                owner.marker
            )
        } else {
            format!(
                "belongs to another project or someone else (local aliases held by the keys {})",
                markers.join(", ")
            )
        }
    }
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Quotas {
    max_size: Option<u64>,
    max_objects: Option<u64>,
}

#[derive(Deserialize)]
struct KeyListItem {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    access_key_id: String,
    name: String,
    secret_access_key: Option<String>,
    permissions: KeyPermissions,
    buckets: Vec<KeyBucket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyPermissions {
    #[serde(default)]
    create_bucket: bool,
}

#[derive(Deserialize)]
struct KeyBucket {
    id: String,
    permissions: BucketPermissions,
}

#[derive(Deserialize)]
struct BucketPermissions {
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
}

impl GarageStore {
    /// A store on the Garage whose S3 API is `config.endpoint` and whose admin API is
    /// `config.admin_endpoint`, with the admin token `config.admin_id` (an admin token of Garage
    /// 2.x, global or with the scopes of the calls used here). `config.region` is Garage's
    /// `s3_region`.
    pub fn new(config: StoreConfig) -> Result<Self> {
        if config.endpoint.is_empty() || config.admin_endpoint.is_empty() {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                "Garage needs both its S3 endpoint and its admin API endpoint",
            ));
        }
        Ok(Self {
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
            admin_endpoint: config.admin_endpoint.trim_end_matches('/').to_owned(),
            region: config.region,
            token: Secret::new(config.admin_id),
            http: super::http_client()?,
        })
    }

    /// Calls `endpoint` of the admin API. `Ok(None)` is a 404 (no such bucket or key).
    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<Option<Vec<u8>>> {
        let what = format!("Garage admin API {endpoint}");
        let url = format!("{}/v2/{endpoint}", self.admin_endpoint);
        let mut req = self
            .http
            .request(method, &url)
            .query(query)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|e| {
            Error::new(
                ErrorKind::Unreachable,
                format!(
                    "{what}: no answer from {}: {}",
                    self.admin_endpoint,
                    error_chain(&e)
                ),
            )
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        if status.is_success() {
            return Ok(Some(bytes.to_vec()));
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // Garage's errors are {"code", "message", ...}: keep the two that say something.
        let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if v["code"].is_string() => format!(
                "{}: {}",
                v["code"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            ),
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        };
        if status == StatusCode::FORBIDDEN {
            // Garage answers 403 to a missing, wrong or expired token and to a token without
            // the scope of this call.
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "{what}: the admin token was rejected (wrong, expired, or without this call in its scope): {}",
                    body.chars().take(300).collect::<String>().trim()
                ),
            ));
        }
        Err(Error::status(&what, status, &body))
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>> {
        match self.call(method, endpoint, query, body).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("Garage admin API {endpoint}: unexpected answer: {e}"),
                )
            }),
        }
    }

    async fn bucket(&self, name: &str) -> Result<Option<BucketInfo>> {
        self.call_json(Method::GET, "GetBucketInfo", &[("globalAlias", name)], None)
            .await
    }

    async fn existing_bucket(&self, name: &str) -> Result<BucketInfo> {
        self.bucket(name).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Rejected,
                format!(
                    "Garage: no bucket {name:?}; ensure the bucket before granting a key on it"
                ),
            )
        })
    }

    async fn key_info(&self, id: &str, show_secret: bool) -> Result<Option<KeyInfo>> {
        let show = if show_secret { "true" } else { "false" };
        self.call_json(
            Method::GET,
            "GetKeyInfo",
            &[("id", id), ("showSecretKey", show)],
            None,
        )
        .await
    }

    async fn set_permissions(
        &self,
        allow: bool,
        bucket_id: &str,
        key_id: &str,
        perms: (bool, bool, bool),
    ) -> Result<()> {
        let endpoint = if allow {
            "AllowBucketKey"
        } else {
            "DenyBucketKey"
        };
        let (read, write, owner) = perms;
        self.call(
            Method::POST,
            endpoint,
            &[],
            Some(json!({
                "bucketId": bucket_id,
                "accessKeyId": key_id,
                "permissions": {"read": read, "write": write, "owner": owner},
            })),
        )
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Rejected,
                format!("Garage admin API {endpoint}: no such bucket or key"),
            )
        })?;
        Ok(())
    }

    /// Brings the key's rights to read and write on `bucket_id` and nothing else.
    async fn grant(&self, key: &KeyInfo, bucket_id: &str) -> Result<()> {
        if key.permissions.create_bucket {
            self.call(
                Method::POST,
                "UpdateKey",
                &[("id", &key.access_key_id)],
                Some(json!({"deny": {"createBucket": true}})),
            )
            .await?;
        }
        for b in &key.buckets {
            let p = &b.permissions;
            if b.id == bucket_id {
                if p.owner {
                    self.set_permissions(false, &b.id, &key.access_key_id, (false, false, true))
                        .await?;
                }
            } else if p.read || p.write || p.owner {
                self.set_permissions(false, &b.id, &key.access_key_id, (true, true, true))
                    .await?;
            }
        }
        let granted = key
            .buckets
            .iter()
            .any(|b| b.id == bucket_id && b.permissions.read && b.permissions.write);
        if !granted {
            self.set_permissions(true, bucket_id, &key.access_key_id, (true, true, false))
                .await?;
        }
        Ok(())
    }

    async fn delete_key_id(&self, id: &str) -> Result<()> {
        self.call(Method::POST, "DeleteKey", &[("id", id)], None)
            .await?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyListItem>> {
        Ok(self
            .call_json(Method::GET, "ListKeys", &[], None)
            .await?
            .unwrap_or_default())
    }

    /// The owner's marker key, if Garage has one (the first, should a crash have made two).
    async fn marker_key(&self, owner: &Owner) -> Result<Option<KeyListItem>> {
        Ok(self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.name == owner.marker))
    }

    /// The owner's marker key, made if missing: no rights, no right to create buckets.
    async fn ensure_marker_key(&self, owner: &Owner) -> Result<String> {
        if let Some(key) = self.marker_key(owner).await? {
            return Ok(key.id);
        }
        let key: KeyInfo = self
            .call_json(
                Method::POST,
                "CreateKey",
                &[],
                Some(json!({"name": owner.marker, "deny": {"createBucket": true}})),
            )
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Backend, "Garage admin API CreateKey: 404"))?;
        Ok(key.access_key_id)
    }

    /// Empties a bucket through S3 with the owner's marker key, given read and write for this
    /// only and none afterwards, whatever happened.
    async fn empty(&self, bucket: &BucketInfo, name: &str, marker_id: &str) -> Result<()> {
        let key = self.key_info(marker_id, true).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("Garage: the marker key of bucket {name} vanished"),
            )
        })?;
        let emptied = async {
            let secret = key.secret_access_key.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    "Garage admin API GetKeyInfo: no secret in the answer",
                )
            })?;
            self.set_permissions(true, &bucket.id, &key.access_key_id, (true, true, false))
                .await?;
            let client = s3::client(
                &self.endpoint,
                &self.region,
                &key.access_key_id,
                &Secret::new(secret),
            );
            s3::empty_bucket(&client, name).await
        }
        .await;
        let revoked = self
            .set_permissions(false, &bucket.id, &key.access_key_id, (true, true, true))
            .await;
        emptied.and(revoked)
    }
}

#[async_trait]
impl ObjectStore for GarageStore {
    fn kind(&self) -> &'static str {
        "garage"
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn supports_quota(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<()> {
        self.call(Method::GET, "GetClusterHealth", &[], None)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotConfigured,
                    format!(
                        "{} has no Garage admin API v2 (GetClusterHealth: 404); Garage 2.x is needed",
                        self.admin_endpoint
                    ),
                )
            })?;
        Ok(())
    }

    async fn ensure_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        let marker = self.ensure_marker_key(owner).await?;
        let info = match self.bucket(&spec.name).await? {
            Some(info) => info,
            None => {
                // The bucket and its owner's alias in one request: no crash can part them.
                let created: Result<Option<BucketInfo>> = self
                    .call_json(
                        Method::POST,
                        "CreateBucket",
                        &[],
                        Some(json!({
                            "globalAlias": spec.name,
                            "localAlias": {"accessKeyId": marker, "alias": owner.marker},
                        })),
                    )
                    .await;
                match created {
                    Ok(Some(info)) => info,
                    // Lost a race with another create: the bucket is there now, and is checked.
                    Ok(None)
                    | Err(Error {
                        kind: ErrorKind::Rejected,
                        ..
                    }) => self.existing_bucket(&spec.name).await?,
                    Err(e) => return Err(e),
                }
            }
        };
        if !info.records(owner) {
            if !owner.adopt {
                return Err(Error::conflict(
                    &format!("Garage bucket {}", spec.name),
                    &info.whose(owner),
                ));
            }
            self.call(
                Method::POST,
                "AddBucketAlias",
                &[],
                Some(
                    json!({"bucketId": info.id, "accessKeyId": marker, "localAlias": owner.marker}),
                ),
            )
            .await?;
        }
        let wanted = Quotas {
            max_size: spec.quota_bytes,
            max_objects: None,
        };
        if info.quotas != wanted {
            self.call(
                Method::POST,
                "UpdateBucket",
                &[("id", &info.id)],
                Some(json!({"quotas": {"maxSize": spec.quota_bytes, "maxObjects": null}})),
            )
            .await?;
        }
        Ok(())
    }

    async fn bucket_exists(&self, name: &str) -> Result<bool> {
        Ok(self.bucket(name).await?.is_some())
    }

    async fn owns_bucket(&self, name: &str, owner: &Owner) -> Result<bool> {
        Ok(self.bucket(name).await?.is_some_and(|b| b.records(owner)))
    }

    async fn delete_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        let name = spec.name.as_str();
        let marker = self.marker_key(owner).await?;
        let Some(info) = self.bucket(name).await? else {
            // Gone already; a marker key a crash left behind goes too.
            if let Some(key) = marker {
                self.delete_key_id(&key.id).await?;
            }
            return Ok(());
        };
        let Some(marker) = marker.filter(|_| info.records(owner)) else {
            return Err(Error::conflict(
                &format!("Garage bucket {name}"),
                &info.whose(owner),
            ));
        };
        if info.objects > 0 || info.unfinished_uploads > 0 || info.unfinished_multipart_uploads > 0
        {
            self.empty(&info, name, &marker.id).await?;
        }
        match self
            .call(Method::POST, "DeleteBucket", &[("id", &info.id)], None)
            .await
        {
            Ok(_) => {}
            // The counters lag behind: empty once more and retry, once.
            Err(Error {
                kind: ErrorKind::Rejected,
                ..
            }) => {
                self.empty(&info, name, &marker.id).await?;
                self.call(Method::POST, "DeleteBucket", &[("id", &info.id)], None)
                    .await?;
            }
            Err(e) => return Err(e),
        }
        self.delete_key_id(&marker.id).await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Credential>> {
        Ok(self
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.name.starts_with(prefix))
            .map(|k| Credential {
                id: k.id,
                name: k.name,
            })
            .collect())
    }

    async fn create_key(&self, name: &str, bucket: &BucketSpec) -> Result<IssuedCredential> {
        check_key_name(name)?;
        let info = self.existing_bucket(&bucket.name).await?;
        let key: KeyInfo = self
            .call_json(
                Method::POST,
                "CreateKey",
                &[],
                Some(json!({"name": name, "deny": {"createBucket": true}})),
            )
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Backend, "Garage admin API CreateKey: 404"))?;
        let secret = key.secret_access_key.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                "Garage admin API CreateKey: no secret in the answer",
            )
        })?;
        self.grant(&key, &info.id).await?;
        Ok(IssuedCredential {
            credential: Credential {
                id: key.access_key_id.clone(),
                name: key.name,
            },
            login: key.access_key_id,
            secret: Secret::new(secret),
        })
    }

    async fn recover_key(&self, key: &Credential, bucket: &BucketSpec) -> Result<IssuedCredential> {
        let info = self.existing_bucket(&bucket.name).await?;
        let found = self.key_info(&key.id, true).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Rejected,
                format!("Garage: no key {:?} ({}) to recover", key.name, key.id),
            )
        })?;
        let secret = found.secret_access_key.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                "Garage admin API GetKeyInfo: no secret in the answer",
            )
        })?;
        self.grant(&found, &info.id).await?;
        Ok(IssuedCredential {
            credential: Credential {
                id: found.access_key_id.clone(),
                name: found.name,
            },
            login: found.access_key_id,
            secret: Secret::new(secret),
        })
    }

    async fn ensure_grant(&self, key: &Credential, bucket: &BucketSpec) -> Result<()> {
        let info = self.existing_bucket(&bucket.name).await?;
        let found = self.key_info(&key.id, false).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Rejected,
                format!("Garage: no key {:?} ({}) to grant", key.name, key.id),
            )
        })?;
        self.grant(&found, &info.id).await
    }

    async fn delete_key(&self, key: &Credential) -> Result<()> {
        self.delete_key_id(&key.id).await
    }
}
