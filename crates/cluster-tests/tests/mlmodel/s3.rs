//! One real MinIO for the whole test binary, the project storage Secret that points at it, and
//! putting models into it.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use anyhow::{Result, anyhow};
use aws_sdk_s3::primitives::ByteStream;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

/// Where the MinIO is and how to sign for it.
#[derive(Clone, Debug)]
pub struct S3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// The bucket the tests put models in.
pub const BUCKET: &str = "models";

/// The shared MinIO, started on first use; it lives as long as the test binary.
pub fn s3() -> Result<S3> {
    static SERVER: Mutex<Option<berth_services::Minio>> = Mutex::new(None);
    static STARTED: OnceLock<Result<S3, String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let started = std::thread::spawn(|| -> Result<S3, String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let server = runtime
                    .block_on(berth_services::Minio::start())
                    .map_err(|e| e.to_string())?;
                let s3 = S3 {
                    endpoint: server.endpoint().to_owned(),
                    access_key: server.access_key().to_owned(),
                    secret_key: server.secret_key().to_owned(),
                    region: server.region().to_owned(),
                };
                if let Ok(mut slot) = SERVER.lock() {
                    *slot = Some(server);
                }
                Ok(s3)
            })
            .join();
            started.unwrap_or_else(|_| Err("starting MinIO panicked".into()))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

impl S3 {
    fn client(&self) -> aws_sdk_s3::Client {
        berth_services::s3_client(
            &self.endpoint,
            &self.region,
            &self.access_key,
            &self.secret_key,
        )
    }

    /// Puts `body` at `s3://models/<key>`, creating the bucket when needed.
    pub async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        let client = self.client();
        // A new MinIO may refuse the first bucket creation for a moment; and the bucket may
        // exist from another test.
        let mut tries = 0;
        loop {
            match client.create_bucket().bucket(BUCKET).send().await {
                Ok(_) => break,
                Err(e) => {
                    let code = e
                        .as_service_error()
                        .and_then(|s| s.meta().code())
                        .unwrap_or_default()
                        .to_owned();
                    if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
                        break;
                    }
                    tries += 1;
                    if tries > 20 {
                        return Err(anyhow!("creating bucket {BUCKET}: {e:?}"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow!("putting s3://{BUCKET}/{key}: {e:?}"))?;
        Ok(())
    }

    /// Creates a Secret shaped like the one a Project with storage gets (`berth-storage`), with
    /// `secret_key` as the secret (the real one unless a test wants it refused).
    pub async fn secret(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        secret_key: &str,
    ) -> Result<()> {
        let data: BTreeMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", self.region.as_str()),
            ("AWS_DEFAULT_REGION", self.region.as_str()),
            ("BUCKET", BUCKET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    },
                    string_data: Some(data),
                    ..Default::default()
                },
            )
            .await?;
        Ok(())
    }
}
