//! Object storage: one bucket per Project and an access key that reaches that bucket only.

use async_trait::async_trait;

use crate::{Credential, Error, ErrorKind, IssuedCredential, Owner, Result, Secret};

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
    /// The name of the access policy that reaches this bucket only, where the backend keeps
    /// named policies (MinIO's canned policies); unused elsewhere. Chosen by the caller.
    pub policy: String,
}

/// One of the object stores Berth provisions in: Garage, MinIO or AWS S3 with IAM.
///
/// Keys are named by the caller (`name`, 3 to [`MAX_KEY_NAME`] characters of `[a-z0-9-]`, which
/// every backend accepts as a key name or user name) and listed by a name prefix, so that the
/// caller can find what a crash left behind instead of creating a duplicate. The name is the
/// key's ownership record: the caller puts its owner's UID in it.
///
/// Buckets record their [`Owner`] (see the crate documentation): a bucket that exists without the
/// owner's record is never used, changed or deleted ([`ErrorKind::Conflict`]).
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

    /// Creates the bucket, recording `owner` on it, if it does not exist; if it exists, checks
    /// that it records `owner` ([`ErrorKind::Conflict`] if not, unless `owner.adopt`, which
    /// records it). Then sets its quota (or removes it). Idempotent.
    async fn ensure_bucket(&self, bucket: &BucketSpec, owner: &Owner) -> Result<()>;
    /// Whether the bucket exists.
    async fn bucket_exists(&self, name: &str) -> Result<bool>;
    /// Whether the bucket exists and records `owner`.
    async fn owns_bucket(&self, name: &str, owner: &Owner) -> Result<bool>;
    /// Deletes every object (every version) in the bucket, then the bucket and what recorded its
    /// owner. Idempotent: a missing bucket is not an error. A bucket that does not record `owner`
    /// is left as it is ([`ErrorKind::Conflict`]).
    async fn delete_bucket(&self, bucket: &BucketSpec, owner: &Owner) -> Result<()>;

    /// The keys whose name starts with `prefix`.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<Credential>>;
    /// Creates a key called `name` and grants it read, write and list on `bucket`, and nothing
    /// else: it cannot list, read or write any other bucket, nor create buckets.
    async fn create_key(&self, name: &str, bucket: &BucketSpec) -> Result<IssuedCredential>;
    /// Gives an existing key a known secret again (Garage: reads it back; MinIO: sets a new one;
    /// AWS: replaces the access key), for a key whose secret a crash lost before it was stored.
    async fn recover_key(&self, key: &Credential, bucket: &BucketSpec) -> Result<IssuedCredential>;
    /// Makes sure the key's grant is exactly read, write and list on `bucket`. Idempotent.
    async fn ensure_grant(&self, key: &Credential, bucket: &BucketSpec) -> Result<()>;
    /// Revokes and deletes a key. Idempotent: a missing key is not an error.
    async fn delete_key(&self, key: &Credential) -> Result<()>;
}

pub mod aws;
pub mod garage;
mod madmin;
pub mod minio;
mod s3;
mod sigv4;

pub use aws::AwsStore;
pub use garage::GarageStore;
pub use minio::MinioStore;

/// The store of `kind` (`garage`, `minio` or `aws`, as in the platform settings), reached with
/// `config`. Builds the clients only: call [`ObjectStore::check`] to find out whether the endpoint
/// answers and takes the admin credentials.
pub fn connect(kind: &str, config: StoreConfig) -> Result<Box<dyn ObjectStore>> {
    match kind {
        "garage" => Ok(Box::new(GarageStore::new(config)?)),
        "minio" => Ok(Box::new(MinioStore::new(config)?)),
        "aws" => Ok(Box::new(AwsStore::new(config)?)),
        other => Err(Error::new(
            ErrorKind::NotConfigured,
            format!("unknown object store kind {other:?}: expected garage, minio or aws"),
        )),
    }
}

/// The longest key name every backend accepts: AWS IAM user names are at most 64 characters
/// (Garage key names and MinIO access keys have no upper limit; MinIO's 20 is only the length of
/// the keys it generates itself).
pub const MAX_KEY_NAME: usize = 64;

/// Refuses a key name that some backend would not take: 3 to [`MAX_KEY_NAME`] characters of
/// `[a-z0-9-]`.
pub(crate) fn check_key_name(name: &str) -> Result<()> {
    let ok = (3..=MAX_KEY_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Rejected,
            format!(
                "key name {name:?} is not 3 to {MAX_KEY_NAME} characters of lowercase letters, digits and '-'"
            ),
        ))
    }
}

/// The IAM policy (MinIO and AWS speak the same language) that lets a key list `bucket` and read,
/// write and delete its objects, and nothing else: no other bucket, no bucket creation, no
/// change to the bucket's own settings or policy.
pub(crate) fn bucket_policy(bucket: &str) -> serde_json::Value {
    bucket_policy_in("aws", bucket)
}

/// [`bucket_policy`] with the ARNs of an AWS partition (`aws`, `aws-cn`, `aws-us-gov`).
pub(crate) fn bucket_policy_in(partition: &str, bucket: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucketLocation",
                    "s3:ListBucket",
                    "s3:ListBucketVersions",
                    "s3:ListBucketMultipartUploads",
                ],
                "Resource": [format!("arn:{partition}:s3:::{bucket}")],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectVersion",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": [format!("arn:{partition}:s3:::{bucket}/*")],
            },
        ],
    })
}

/// A fresh secret access key: 40 characters of base64url from 30 random bytes.
pub(crate) fn random_secret() -> Result<Secret> {
    use base64::Engine;
    let mut bytes = [0u8; 30];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("no randomness for a secret key: {e}"),
        )
    })?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// The HTTP client for admin APIs: bounded connect and request times, so an outage is an
/// [`ErrorKind::Unreachable`] error and not a hang.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::new(ErrorKind::Backend, format!("building an HTTP client: {e}")))
}

/// An error and its sources, for a transport failure ("connection refused" is in a source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        assert!(check_key_name("p-team-a-0").is_ok());
        assert!(check_key_name("ab").is_err());
        assert!(check_key_name(&"a".repeat(65)).is_err());
        assert!(check_key_name("berth-3f1c0a7e00004000800000000000000a-1").is_ok());
        assert!(check_key_name("Upper").is_err());
        assert!(check_key_name("under_score").is_err());
    }

    #[test]
    fn policy_reaches_its_bucket_only() {
        let p = bucket_policy("team-a").to_string();
        assert!(p.contains("\"arn:aws:s3:::team-a\""));
        assert!(p.contains("\"arn:aws:s3:::team-a/*\""));
        assert!(!p.contains("s3:*"));
        assert!(!p.contains("CreateBucket"));
        assert!(!p.contains("ListAllMyBuckets"));
    }

    #[test]
    fn secrets_are_fresh() -> Result<()> {
        let (a, b) = (random_secret()?, random_secret()?);
        assert_eq!(a.expose().len(), 40);
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn unknown_kind() {
        let config = StoreConfig {
            endpoint: String::new(),
            admin_endpoint: String::new(),
            region: "r".into(),
            admin_id: String::new(),
            admin_secret: Secret::new(""),
        };
        assert!(matches!(
            connect("ceph", config),
            Err(Error {
                kind: ErrorKind::NotConfigured,
                ..
            })
        ));
    }
}
