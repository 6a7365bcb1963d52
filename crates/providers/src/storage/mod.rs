//! Object storage: one bucket per Project and an access key that reaches that bucket only.

use async_trait::async_trait;

use crate::{Credential, IssuedCredential, Result, Secret};

/// How to reach an object store's admin side. The admin credentials come from a Secret in the
/// operator's namespace; the caller reads it and passes them here.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The S3 endpoint the projects' clients use, e.g. `http://127.0.0.1:3900`. For AWS, empty
    /// (the regional endpoint is used).
    pub endpoint: String,
    /// The admin API endpoint where it differs from `endpoint` (Garage's admin port); else empty.
    pub admin_endpoint: String,
    /// The region clients sign with.
    pub region: String,
    /// Garage: the admin token. MinIO: the admin access key. AWS: the access key id.
    pub admin_id: String,
    /// Garage: unused (empty). MinIO: the admin secret key. AWS: the secret access key.
    pub admin_secret: Secret,
}

/// What a Project's bucket should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    /// The bucket's name, from the platform's template; valid as an S3 bucket name.
    pub name: String,
    /// A hard limit on the bucket's size in bytes, where the backend has one.
    pub quota_bytes: Option<u64>,
}

/// One of the object stores Berth provisions in: Garage, MinIO or AWS S3 with IAM.
///
/// Keys are named by the caller (`name`, at most 20 characters of `[a-z0-9-]`, which every backend
/// accepts as a key name or user name) and listed by a name prefix, so that the caller can find
/// what a crash left behind instead of creating a duplicate.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// `garage`, `minio` or `aws`.
    fn kind(&self) -> &'static str;
    /// The S3 endpoint clients use (`AWS_ENDPOINT_URL`), empty for AWS.
    fn endpoint(&self) -> &str;
    /// The region clients sign with (`AWS_REGION`).
    fn region(&self) -> &str;
    /// Whether the backend enforces [`BucketSpec::quota_bytes`].
    fn supports_quota(&self) -> bool;

    /// Reaches the admin API with the admin credentials; the error says which of the two failed.
    async fn check(&self) -> Result<()>;

    /// Creates the bucket if it does not exist and sets its quota (or removes it). Idempotent.
    async fn ensure_bucket(&self, bucket: &BucketSpec) -> Result<()>;
    /// Whether the bucket exists.
    async fn bucket_exists(&self, name: &str) -> Result<bool>;
    /// Deletes every object (every version) in the bucket, then the bucket. Idempotent: a
    /// missing bucket is not an error.
    async fn delete_bucket(&self, name: &str) -> Result<()>;

    /// The keys whose name starts with `prefix`.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<Credential>>;
    /// Creates a key called `name` and grants it read, write and list on `bucket`, and nothing
    /// else: it cannot list, read or write any other bucket, nor create buckets.
    async fn create_key(&self, name: &str, bucket: &str) -> Result<IssuedCredential>;
    /// Gives an existing key a known secret again (Garage: reads it back; MinIO: sets a new one;
    /// AWS: replaces the access key), for a key whose secret a crash lost before it was stored.
    async fn recover_key(&self, key: &Credential, bucket: &str) -> Result<IssuedCredential>;
    /// Makes sure the key's grant is exactly read, write and list on `bucket`. Idempotent.
    async fn ensure_grant(&self, key: &Credential, bucket: &str) -> Result<()>;
    /// Revokes and deletes a key. Idempotent: a missing key is not an error.
    async fn delete_key(&self, key: &Credential) -> Result<()>;
}

pub mod aws;
pub mod garage;
pub mod minio;
