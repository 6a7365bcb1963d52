//! The S3 side shared by the three backends: one way to build a client, to sort its errors, and
//! to create, probe and empty a bucket.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, Tag, Tagging,
};

use crate::{Error, ErrorKind, OWNER_TAG, Owner, Result, Secret};

/// An S3 client for `endpoint` (empty: AWS's regional endpoint) signing for `region` with the
/// given key: path-style addressing and checksums only when required, so that S3-compatible
/// stores (Garage, MinIO) work; rustls with ring, as everywhere in the workspace.
pub(crate) fn client(endpoint: &str, region: &str, access_key: &str, secret: &Secret) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            secret.expose(),
            None,
            None,
            "berth-providers",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        )
        // The caller retries with its own backoff: one retry here for a dropped connection.
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if !endpoint.is_empty() {
        conf = conf.endpoint_url(endpoint);
    }
    Client::from_conf(conf.build())
}

/// The error code S3 answered with, if it answered.
fn code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Sorts an S3 error for `what` (e.g. `S3 CreateBucket team-a`): no answer is
/// [`ErrorKind::Unreachable`], a key the server does not know or a bad signature is
/// [`ErrorKind::Unauthorized`], a refusal [`ErrorKind::Forbidden`].
pub(crate) fn error<E>(what: &str, e: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Error::new(
            ErrorKind::Unreachable,
            format!("{what}: no answer: {}", DisplayErrorContext(e)),
        ),
        _ => {
            let code = code(e).unwrap_or("");
            let status = status(e);
            let kind = match (code, status) {
                (
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"
                    | "InvalidClientTokenId",
                    _,
                )
                | (_, Some(401)) => ErrorKind::Unauthorized,
                ("AccessDenied", _) | (_, Some(403)) => ErrorKind::Forbidden,
                (_, Some(400 | 409 | 422)) => ErrorKind::Rejected,
                _ => ErrorKind::Backend,
            };
            let message = e
                .as_service_error()
                .and_then(ProvideErrorMetadata::message)
                .unwrap_or("");
            let status = status.map_or_else(|| "no status".to_owned(), |s| format!("HTTP {s}"));
            let detail = if code.is_empty() && message.is_empty() {
                DisplayErrorContext(e).to_string()
            } else {
                format!("{code}: {message}")
            };
            let detail: String = detail.chars().take(300).collect();
            Error::new(kind, format!("{what}: {status}: {detail}"))
        }
    }
}

/// Creates `bucket` through S3. True when this call made it, false when the caller's credentials
/// already had it (`BucketAlreadyOwnedByYou`). Outside `us-east-1` AWS needs the region as a
/// location constraint; S3-compatible stores accept the one they are configured with.
pub(crate) async fn create_bucket(client: &Client, bucket: &str, region: &str) -> Result<bool> {
    let mut req = client.create_bucket().bucket(bucket);
    if !region.is_empty() && region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e) if code(&e) == Some("BucketAlreadyOwnedByYou") => Ok(false),
        Err(e) if code(&e) == Some("BucketAlreadyExists") => Err(Error::conflict(
            &format!("bucket {bucket}"),
            "belongs to another account of the object store",
        )),
        Err(e) => Err(error(&format!("S3 CreateBucket {bucket}"), &e)),
    }
}

/// The bucket's tags, by key (none: an empty map).
pub(crate) async fn tags(
    client: &Client,
    bucket: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(answer) => Ok(answer
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()),
        Err(e) if code(&e) == Some("NoSuchTagSet") || code(&e) == Some("NoSuchTagSetError") => {
            Ok(Default::default())
        }
        Err(e) => Err(error(&format!("S3 GetBucketTagging {bucket}"), &e)),
    }
}

/// Records `owner` on the bucket as the tag [`OWNER_TAG`], keeping its other tags.
async fn put_owner_tag(client: &Client, bucket: &str, owner: &Owner) -> Result<()> {
    let what = format!("S3 PutBucketTagging {bucket}");
    let mut all = tags(client, bucket).await?;
    all.insert(OWNER_TAG.to_owned(), owner.uid.clone());
    let tag_set = all
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::new(ErrorKind::Backend, format!("{what}: {e}")))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| Error::new(ErrorKind::Backend, format!("{what}: {e}")))?;
    client
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| error(&what, &e))?;
    Ok(())
}

/// What the bucket's tags say instead of `owner`, or None if they record `owner`.
fn not_owned(tags: &std::collections::BTreeMap<String, String>, owner: &Owner) -> Option<String> {
    match tags.get(OWNER_TAG) {
        Some(uid) if *uid == owner.uid => None,
        Some(uid) => Some(format!(
            "belongs to another project (its tag {OWNER_TAG} is {uid})"
        )),
        None => Some(format!("records no owner (it has no tag {OWNER_TAG})")),
    }
}

/// Makes `bucket` exist with `owner` recorded as its tag [`OWNER_TAG`] (the S3 way, for MinIO and
/// AWS). A bucket this call creates is tagged at once, and removed again if the tag cannot be
/// written, so no unmarked bucket is left behind; one that exists must carry the tag
/// ([`ErrorKind::Conflict`] if not, unless `owner.adopt`, which writes it).
pub(crate) async fn ensure_owned_bucket(
    client: &Client,
    bucket: &str,
    region: &str,
    owner: &Owner,
) -> Result<()> {
    if create_bucket(client, bucket, region).await? {
        if let Err(e) = put_owner_tag(client, bucket, owner).await {
            // Empty and just made: nothing is lost by removing it.
            let _ = client.delete_bucket().bucket(bucket).send().await;
            return Err(e);
        }
        return Ok(());
    }
    match not_owned(&tags(client, bucket).await?, owner) {
        None => Ok(()),
        Some(_) if owner.adopt => put_owner_tag(client, bucket, owner).await,
        Some(whose) => Err(Error::conflict(&format!("bucket {bucket}"), &whose)),
    }
}

/// Whether `bucket` exists and its tag records `owner`.
pub(crate) async fn owns_bucket(client: &Client, bucket: &str, owner: &Owner) -> Result<bool> {
    if !bucket_exists(client, bucket).await? {
        return Ok(false);
    }
    Ok(not_owned(&tags(client, bucket).await?, owner).is_none())
}

/// Deletes `bucket` with everything in it if its tag records `owner`: `Ok(false)` if there is no
/// such bucket, [`ErrorKind::Conflict`] (and nothing deleted) if it is someone else's.
pub(crate) async fn delete_owned_bucket(
    client: &Client,
    bucket: &str,
    owner: &Owner,
) -> Result<bool> {
    if !bucket_exists(client, bucket).await? {
        return Ok(false);
    }
    if let Some(whose) = not_owned(&tags(client, bucket).await?, owner) {
        return Err(Error::conflict(&format!("bucket {bucket}"), &whose));
    }
    empty_bucket(client, bucket).await?;
    match client.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if status(&e) == Some(404) => Ok(false),
        Err(e) => Err(error(&format!("S3 DeleteBucket {bucket}"), &e)),
    }
}

/// Whether `bucket` exists (`HeadBucket`: 404 is no).
pub(crate) async fn bucket_exists(client: &Client, bucket: &str) -> Result<bool> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if status(&e) == Some(404) => Ok(false),
        Err(e) => Err(error(&format!("S3 HeadBucket {bucket}"), &e)),
    }
}

fn missing_bucket<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    code(e) == Some("NoSuchBucket") || status(e) == Some(404)
}

/// Deletes everything in `bucket` with `client`'s key: every object, every object version and
/// delete marker where the store keeps versions, and every unfinished multipart upload. A
/// missing bucket is empty.
pub(crate) async fn empty_bucket(client: &Client, bucket: &str) -> Result<()> {
    // Current objects, a page (at most 1000) at a time.
    loop {
        let page = match client.list_objects_v2().bucket(bucket).send().await {
            Ok(page) => page,
            Err(e) if missing_bucket(&e) => return Ok(()),
            Err(e) => return Err(error(&format!("S3 ListObjectsV2 {bucket}"), &e)),
        };
        let ids: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        if ids.is_empty() {
            break;
        }
        delete_objects(client, bucket, ids).await?;
    }
    // Older versions and delete markers, where the store keeps them (Garage does not, and says
    // it does not implement the call).
    loop {
        let page = match client.list_object_versions().bucket(bucket).send().await {
            Ok(page) => page,
            Err(e) if missing_bucket(&e) => return Ok(()),
            Err(e) if status(&e) == Some(501) || code(&e) == Some("NotImplemented") => break,
            Err(e) => return Err(error(&format!("S3 ListObjectVersions {bucket}"), &e)),
        };
        let versions = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            );
        let ids: Vec<ObjectIdentifier> = versions
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key?)
                    .set_version_id(version.filter(|v| *v != "null").map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            break;
        }
        delete_objects(client, bucket, ids).await?;
    }
    // Unfinished multipart uploads keep their parts (and count against a quota) until aborted.
    loop {
        let page = match client.list_multipart_uploads().bucket(bucket).send().await {
            Ok(page) => page,
            Err(e) if missing_bucket(&e) => return Ok(()),
            Err(e) => return Err(error(&format!("S3 ListMultipartUploads {bucket}"), &e)),
        };
        let uploads: Vec<(String, String)> = page
            .uploads()
            .iter()
            .filter_map(|u| Some((u.key()?.to_owned(), u.upload_id()?.to_owned())))
            .collect();
        if uploads.is_empty() {
            break;
        }
        for (key, upload_id) in uploads {
            match client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code(&e) == Some("NoSuchUpload") => {}
                Err(e) => {
                    return Err(error(
                        &format!("S3 AbortMultipartUpload {bucket}/{key}"),
                        &e,
                    ));
                }
            }
        }
    }
    Ok(())
}

async fn delete_objects(client: &Client, bucket: &str, ids: Vec<ObjectIdentifier>) -> Result<()> {
    let what = format!("S3 DeleteObjects {bucket}");
    let delete = Delete::builder()
        .set_objects(Some(ids))
        .quiet(true)
        .build()
        .map_err(|e| Error::new(ErrorKind::Backend, format!("{what}: {e}")))?;
    let out = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| error(&what, &e))?;
    if let Some(failed) = out.errors().first() {
        return Err(Error::new(
            ErrorKind::Backend,
            format!(
                "{what}: {} objects not deleted, the first {:?}: {} {}",
                out.errors().len(),
                failed.key().unwrap_or(""),
                failed.code().unwrap_or(""),
                failed.message().unwrap_or("")
            ),
        ));
    }
    Ok(())
}
