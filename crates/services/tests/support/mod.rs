//! An S3 client for a loopback object store, set up the way Berth talks to S3-compatible stores.

use aws_sdk_s3::Client;

pub use berth_services::s3_client;

/// Creates `bucket`, puts `key` with `body` and reads it back.
pub async fn round_trip(
    client: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    client.create_bucket().bucket(bucket).send().await?;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await?;
    let got = client.get_object().bucket(bucket).key(key).send().await?;
    Ok(got.body.collect().await?.into_bytes().to_vec())
}
