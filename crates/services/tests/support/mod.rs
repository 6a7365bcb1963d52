//! An S3 client for a loopback object store, set up the way Berth talks to S3-compatible stores.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};

/// Path-style addressing, checksums only when required, and the store's own region; credentials
/// given here, never from the environment.
pub fn s3_client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "berth-services-test",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

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
