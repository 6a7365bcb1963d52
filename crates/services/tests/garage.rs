//! A real single-node Garage cluster: keys from the admin API, a bucket and an object through
//! aws-sdk-s3, and a key without a grant refused.

mod support;

use aws_sdk_s3::error::ProvideErrorMetadata;
use berth_services::Garage;

#[tokio::test]
async fn garage_serves_s3_and_enforces_grants() -> Result<(), Box<dyn std::error::Error>> {
    let garage = Garage::start().await?;
    assert!(garage.s3_endpoint().starts_with("http://127.0.0.1:"));

    // A key that may create buckets creates one through S3, and owns it.
    let owner = garage.create_key("berth-owner", true).await?;
    let s3 = support::s3_client(
        garage.s3_endpoint(),
        garage.region(),
        &owner.access_key_id,
        &owner.secret_access_key,
    );
    let body = b"model weights, or near enough".as_slice();
    let got = support::round_trip(&s3, "berth-models", "llm/weights.bin", body).await?;
    assert_eq!(got, body);

    // A bucket made through the admin API, known to every key by its global alias: the key
    // granted read and write uses it, a key with no grant is refused with AccessDenied.
    let bucket = garage.create_bucket("berth-shared").await?;
    let writer = garage.create_key("berth-writer", false).await?;
    garage.allow(&bucket, &writer, true, true, false).await?;
    let s3 = support::s3_client(
        garage.s3_endpoint(),
        garage.region(),
        &writer.access_key_id,
        &writer.secret_access_key,
    );
    s3.put_object()
        .bucket("berth-shared")
        .key("llm/weights.bin")
        .body(body.to_vec().into())
        .send()
        .await?;
    let got = s3
        .get_object()
        .bucket("berth-shared")
        .key("llm/weights.bin")
        .send()
        .await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), body);

    let stranger = garage.create_key("berth-stranger", false).await?;
    let s3 = support::s3_client(
        garage.s3_endpoint(),
        garage.region(),
        &stranger.access_key_id,
        &stranger.secret_access_key,
    );
    let read = s3
        .get_object()
        .bucket("berth-shared")
        .key("llm/weights.bin")
        .send()
        .await;
    let code = read
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("AccessDenied"), "{read:?}");
    let write = s3
        .put_object()
        .bucket("berth-shared")
        .key("intruder")
        .body(b"no".to_vec().into())
        .send()
        .await;
    let code = write
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(str::to_owned);
    assert_eq!(code.as_deref(), Some("AccessDenied"), "{write:?}");

    // The admin API is behind its token.
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("{}/v2/GetClusterStatus", garage.admin_endpoint()))
        .send()
        .await?;
    assert_eq!(anonymous.status(), reqwest::StatusCode::FORBIDDEN);
    Ok(())
}
