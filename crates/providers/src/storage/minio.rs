//! MinIO, through its admin API (`/minio/admin/v3`, signed with SigV4 like S3) for users,
//! policies and quotas, and S3 with the admin credentials for buckets.
//!
//! A Project's bucket records its owner as the bucket tag [`crate::OWNER_TAG`]; a project key's
//! policy has no right to change tags. A Project's key is a MinIO user whose access key is the
//! key's name, with one canned policy ([`BucketSpec::policy`]) that reaches its bucket only. MinIO never shows a user's secret again:
//! [`ObjectStore::recover_key`] sets a new one. Requests that carry a secret (add-user) and the
//! user list MinIO answers with are encrypted with the admin secret key (see `madmin.rs`).

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::sigv4::Signer;
use super::{
    BucketSpec, ObjectStore, StoreConfig, bucket_policy, check_key_name, error_chain, madmin, s3,
};
use crate::{Credential, Error, ErrorKind, IssuedCredential, Owner, Result, Secret};

/// Object storage on MinIO. See the module documentation.
pub struct MinioStore {
    endpoint: String,
    admin_endpoint: String,
    region: String,
    admin_secret: Secret,
    signer: Signer,
    http: reqwest::Client,
    s3: aws_sdk_s3::Client,
}

/// What MinIO's admin API answered with, when it is not a success.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AdminError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl MinioStore {
    /// A store on the MinIO at `config.endpoint` (its admin API is on the same port unless
    /// `config.admin_endpoint` says otherwise), signing for `config.region` (MinIO's
    /// `MINIO_REGION`, `us-east-1` by default) with the admin access key `config.admin_id` and
    /// secret key `config.admin_secret`: the root user, or a user whose policy allows the admin
    /// actions used here (`admin:CreateUser`, `admin:DeleteUser`, `admin:ListUsers`,
    /// `admin:CreatePolicy`, `admin:DeletePolicy`, `admin:AttachUserOrGroupPolicy`,
    /// `admin:SetBucketQuota`, `admin:ServerInfo`) and S3 on the projects' buckets.
    pub fn new(config: StoreConfig) -> Result<Self> {
        if config.endpoint.is_empty() {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                "MinIO needs its endpoint",
            ));
        }
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let admin_endpoint = if config.admin_endpoint.is_empty() {
            endpoint.clone()
        } else {
            config.admin_endpoint.trim_end_matches('/').to_owned()
        };
        let signer = Signer::new(
            &config.admin_id,
            &config.admin_secret,
            &config.region,
            "s3",
            true,
        );
        let s3 = s3::client(
            &endpoint,
            &config.region,
            &config.admin_id,
            &config.admin_secret,
        );
        Ok(Self {
            endpoint,
            admin_endpoint,
            region: config.region,
            admin_secret: config.admin_secret,
            signer,
            http: super::http_client()?,
            s3,
        })
    }

    /// Calls the admin API: `Ok(Err(code))` is a 404 with MinIO's error code (no such user,
    /// no such policy).
    async fn admin(
        &self,
        method: Method,
        call: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Result<Vec<u8>, String>> {
        let what = format!("MinIO admin API {call}");
        let mut url = url::Url::parse(&format!("{}/minio/admin/v3/{call}", self.admin_endpoint))
            .map_err(|e| {
                Error::new(
                    ErrorKind::NotConfigured,
                    format!(
                        "{what}: the endpoint {:?} is not a URL: {e}",
                        self.admin_endpoint
                    ),
                )
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let signed =
            self.signer
                .sign(method.as_str(), url.as_str(), &[], &body, SystemTime::now())?;
        let mut req = self.http.request(method, url).body(body);
        for (k, v) in signed {
            req = req.header(k, v);
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
            return Ok(Ok(bytes.to_vec()));
        }
        let err: AdminError = serde_json::from_slice(&bytes).unwrap_or_default();
        if status == StatusCode::NOT_FOUND {
            return Ok(Err(err.code));
        }
        let detail = if err.code.is_empty() {
            String::from_utf8_lossy(&bytes).chars().take(300).collect()
        } else {
            format!("{}: {}", err.code, err.message)
        };
        let kind = match err.code.as_str() {
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "XMinioAdminInvalidAccessKey"
            | "ExpiredToken"
            | "InvalidToken" => ErrorKind::Unauthorized,
            "AccessDenied" => ErrorKind::Forbidden,
            _ => return Err(Error::status(&what, status, &detail)),
        };
        let hint = if kind == ErrorKind::Unauthorized {
            "the admin access key or secret key was rejected"
        } else {
            "the admin user lacks a right this call needs"
        };
        Err(Error::new(
            kind,
            format!("{what}: {hint}: HTTP {status}: {detail}"),
        ))
    }

    /// An admin call that must find what it names.
    async fn admin_found(
        &self,
        method: Method,
        call: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>> {
        self.admin(method, call, query, body)
            .await?
            .map_err(|code| {
                Error::new(
                    ErrorKind::Rejected,
                    format!("MinIO admin API {call}: not found: {code}"),
                )
            })
    }

    /// Encrypts (or decrypts) with the admin secret key off the async threads: Argon2id uses
    /// 64 MiB and a noticeable share of a second.
    async fn crypt(&self, encrypt: bool, data: Vec<u8>) -> Result<Vec<u8>> {
        let password = self.admin_secret.clone();
        tokio::task::spawn_blocking(move || {
            if encrypt {
                madmin::encrypt(password.expose(), &data)
            } else {
                madmin::decrypt(password.expose(), &data)
            }
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, format!("MinIO admin encryption: {e}")))?
    }

    /// Writes the bucket's policy (overwriting it, so it is always the current one).
    async fn put_policy(&self, bucket: &BucketSpec) -> Result<String> {
        let name = bucket.policy.clone();
        let policy = serde_json::to_vec(&bucket_policy(&bucket.name))
            .map_err(|e| Error::new(ErrorKind::Backend, format!("policy JSON: {e}")))?;
        self.admin_found(Method::PUT, "add-canned-policy", &[("name", &name)], policy)
            .await?;
        Ok(name)
    }

    /// Creates the user `name`, or gives it `secret` if it exists, enabled.
    async fn set_user(&self, name: &str, secret: &Secret) -> Result<()> {
        let body = serde_json::to_vec(&serde_json::json!({
            "secretKey": secret.expose(),
            "status": "enabled",
        }))
        .map_err(|e| Error::new(ErrorKind::Backend, format!("add-user JSON: {e}")))?;
        let body = self.crypt(true, body).await?;
        self.admin_found(Method::PUT, "add-user", &[("accessKey", name)], body)
            .await?;
        Ok(())
    }

    /// Makes `policy` the user's only policy.
    async fn attach(&self, user: &str, policy: &str) -> Result<()> {
        self.admin_found(
            Method::PUT,
            "set-user-or-group-policy",
            &[
                ("policyName", policy),
                ("userOrGroup", user),
                ("isGroup", "false"),
            ],
            Vec::new(),
        )
        .await?;
        Ok(())
    }

    async fn issue(&self, name: &str, bucket: &BucketSpec) -> Result<IssuedCredential> {
        check_key_name(name)?;
        let policy = self.put_policy(bucket).await?;
        let secret = super::random_secret()?;
        self.set_user(name, &secret).await?;
        self.attach(name, &policy).await?;
        Ok(IssuedCredential {
            credential: Credential {
                id: name.to_owned(),
                name: name.to_owned(),
            },
            login: name.to_owned(),
            secret,
        })
    }
}

#[async_trait]
impl ObjectStore for MinioStore {
    fn kind(&self) -> &'static str {
        "minio"
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
        self.admin_found(Method::GET, "info", &[], Vec::new())
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Rejected => Error::new(
                    ErrorKind::NotConfigured,
                    format!("{} has no MinIO admin API: {e}", self.admin_endpoint),
                ),
                _ => e,
            })?;
        Ok(())
    }

    async fn ensure_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        s3::ensure_owned_bucket(&self.s3, &spec.name, &self.region, owner).await?;
        // A hard quota; zero removes it.
        let size = spec.quota_bytes.unwrap_or(0);
        let quota = if size > 0 {
            serde_json::json!({"quota": size, "size": size, "quotatype": "hard"})
        } else {
            serde_json::json!({"quota": 0, "size": 0})
        };
        self.admin_found(
            Method::PUT,
            "set-bucket-quota",
            &[("bucket", &spec.name)],
            quota.to_string().into_bytes(),
        )
        .await?;
        Ok(())
    }

    async fn bucket_exists(&self, name: &str) -> Result<bool> {
        s3::bucket_exists(&self.s3, name).await
    }

    async fn owns_bucket(&self, name: &str, owner: &Owner) -> Result<bool> {
        s3::owns_bucket(&self.s3, name, owner).await
    }

    async fn delete_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        s3::delete_owned_bucket(&self.s3, &spec.name, owner).await?;
        // The policy goes with the bucket, unless a key still holds it (then it stays, harmless:
        // it names a bucket that no longer exists).
        let removed = self
            .admin(
                Method::DELETE,
                "remove-canned-policy",
                &[("name", &spec.policy)],
                Vec::new(),
            )
            .await;
        if let Err(e) = removed {
            tracing::debug!(bucket = spec.name, error = %e, "MinIO: the bucket's policy stays");
        }
        Ok(())
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Credential>> {
        let answer = self
            .admin_found(Method::GET, "list-users", &[], Vec::new())
            .await?;
        let plain = self.crypt(false, answer).await?;
        let users: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&plain).map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    format!("MinIO admin API list-users: unexpected answer: {e}"),
                )
            })?;
        Ok(users
            .into_keys()
            .filter(|name| name.starts_with(prefix))
            .map(|name| Credential {
                id: name.clone(),
                name,
            })
            .collect())
    }

    async fn create_key(&self, name: &str, bucket: &BucketSpec) -> Result<IssuedCredential> {
        self.issue(name, bucket).await
    }

    async fn recover_key(&self, key: &Credential, bucket: &BucketSpec) -> Result<IssuedCredential> {
        // MinIO keeps no secret it would show: the user gets a new one.
        self.issue(&key.name, bucket).await
    }

    async fn ensure_grant(&self, key: &Credential, bucket: &BucketSpec) -> Result<()> {
        let policy = self.put_policy(bucket).await?;
        self.attach(&key.name, &policy).await
    }

    async fn delete_key(&self, key: &Credential) -> Result<()> {
        // 404 (no such user) is what we want.
        self.admin(
            Method::DELETE,
            "remove-user",
            &[("accessKey", &key.name)],
            Vec::new(),
        )
        .await?
        .ok();
        Ok(())
    }
}
