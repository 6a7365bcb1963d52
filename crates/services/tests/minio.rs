//! A real MinIO server: create a bucket and put and get an object with aws-sdk-s3.

mod support;

use berth_services::Minio;

#[tokio::test]
async fn minio_serves_s3() -> Result<(), Box<dyn std::error::Error>> {
    let minio = Minio::start().await?;
    assert!(minio.endpoint().starts_with("http://127.0.0.1:"));
    let s3 = support::s3_client(
        minio.endpoint(),
        minio.region(),
        minio.access_key(),
        minio.secret_key(),
    );
    let body = b"model weights, or near enough".as_slice();
    let got = support::round_trip(&s3, "berth-models", "llm/weights.bin", body).await?;
    assert_eq!(got, body);

    let listed = s3.list_buckets().send().await?;
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["berth-models"]);

    // Wrong credentials are refused: the server really checks signatures.
    let stranger = support::s3_client(minio.endpoint(), minio.region(), "nobody", "not-the-secret");
    let refused = stranger.list_buckets().send().await;
    assert!(refused.is_err(), "a stranger listed buckets: {refused:?}");
    Ok(())
}

#[tokio::test]
async fn minio_stops_on_drop() -> Result<(), Box<dyn std::error::Error>> {
    let minio = Minio::start().await?;
    let pid = minio.pid();
    let dir = minio.dir().to_path_buf();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(minio);
    // Reaped by the drop: no process, no zombie, and the data directory is gone.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
    Ok(())
}
