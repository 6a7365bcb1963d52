//! Work in progress.

use async_trait::async_trait;

use super::{BucketSpec, ObjectStore, StoreConfig};
use crate::{Credential, Error, ErrorKind, IssuedCredential, Result};

pub struct MinioStore {}

impl MinioStore {
    pub fn new(_config: StoreConfig) -> Result<Self> {
        Err(Error::new(ErrorKind::NotConfigured, "not yet"))
    }
}

#[async_trait]
impl ObjectStore for MinioStore {
    fn kind(&self) -> &'static str {
        "minio"
    }
    fn endpoint(&self) -> &str {
        ""
    }
    fn region(&self) -> &str {
        ""
    }
    fn supports_quota(&self) -> bool {
        false
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
    async fn ensure_bucket(&self, _b: &BucketSpec) -> Result<()> {
        Ok(())
    }
    async fn bucket_exists(&self, _n: &str) -> Result<bool> {
        Ok(false)
    }
    async fn delete_bucket(&self, _n: &str) -> Result<()> {
        Ok(())
    }
    async fn list_keys(&self, _p: &str) -> Result<Vec<Credential>> {
        Ok(vec![])
    }
    async fn create_key(&self, _n: &str, _b: &str) -> Result<IssuedCredential> {
        Err(Error::new(ErrorKind::NotConfigured, "not yet"))
    }
    async fn recover_key(&self, _k: &Credential, _b: &str) -> Result<IssuedCredential> {
        Err(Error::new(ErrorKind::NotConfigured, "not yet"))
    }
    async fn ensure_grant(&self, _k: &Credential, _b: &str) -> Result<()> {
        Ok(())
    }
    async fn delete_key(&self, _k: &Credential) -> Result<()> {
        Ok(())
    }
}
