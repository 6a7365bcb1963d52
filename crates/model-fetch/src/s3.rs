//! S3 (and S3-compatible: MinIO, Garage) downloads with aws-sdk-s3.

use crate::error::FetchError;
use crate::http::parse_content_range;
use crate::remote::{ByteStream, Opened};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// Builds an S3 client from the standard AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_REGION`, …),
/// with path-style addressing and checksums only when required, so that
/// S3-compatible stores work.
pub(crate) async fn client(read_timeout: Duration) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(read_timeout)
                .build(),
        )
        .load()
        .await;
    let mut conf = aws_sdk_s3::config::Builder::from(&shared);
    if shared.region().is_none() {
        // S3-compatible stores rarely care; AWS needs the right one (AWS_REGION).
        conf = conf.region(aws_config::Region::new("us-east-1"));
    }
    let conf = conf
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

pub(crate) struct S3Object {
    pub(crate) client: Client,
    pub(crate) bucket: String,
    pub(crate) key: String,
}

impl S3Object {
    pub(crate) fn display(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    pub(crate) async fn open(
        &self,
        offset: u64,
        validator: Option<&str>,
    ) -> Result<Opened, FetchError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(&self.key);
        if offset > 0 {
            req = req.range(format!("bytes={offset}-"));
            if let Some(etag) = validator {
                req = req.if_match(etag);
            }
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if offset > 0 && status == Some(416) {
                    return Ok(Opened::RangeNotSatisfiable);
                }
                if offset > 0 && status == Some(412) {
                    return Ok(Opened::Changed);
                }
                return Err(map_sdk_error(&e, &self.display()));
            }
        };
        let range = out.content_range().and_then(parse_content_range);
        let etag = out.e_tag().map(str::to_string);
        let length = out.content_length().and_then(|l| u64::try_from(l).ok());
        let what = self.display();
        let body: ByteStream = Box::pin(futures::stream::unfold(
            (out.body, what),
            |(mut body, what)| async move {
                let item = body.next().await?;
                let item = item.map_err(|e| {
                    FetchError::Network(format!(
                        "the transfer of {what} broke off: {}",
                        crate::error::chain(&e)
                    ))
                });
                Some((item, (body, what)))
            },
        ));
        match range {
            Some((start, total)) if offset > 0 && start == offset => Ok(Opened::Resumed {
                body,
                total: total.or(length.map(|l| l + offset)),
            }),
            Some(_) if offset > 0 => {
                drop(body);
                Box::pin(self.open(0, None)).await
            }
            _ => Ok(Opened::Full {
                body,
                total: length,
                validator: etag,
            }),
        }
    }
}

/// Lists the keys under `prefix` (skipping "directory" markers), in listing order.
pub(crate) async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, FetchError> {
    let what = format!("s3://{bucket}/{prefix}");
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_sdk_error(&e, &what))?;
        for obj in page.contents() {
            if let Some(k) = obj.key()
                && !k.ends_with('/')
            {
                keys.push(k.to_string());
            }
        }
    }
    Ok(keys)
}

fn map_sdk_error<E>(e: &SdkError<E, HttpResponse>, what: &str) -> FetchError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default();
    let message = e
        .as_service_error()
        .and_then(|s| s.message())
        .unwrap_or_default();
    let detail = if code.is_empty() && message.is_empty() {
        crate::error::chain(e)
    } else if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    };
    match (status, code) {
        (_, "NoSuchKey" | "NoSuchBucket" | "NotFound") | (Some(404), _) => {
            FetchError::NotFound(format!("{what} does not exist ({detail})"))
        }
        (
            _,
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "AllAccessDisabled",
        )
        | (Some(401 | 403), _) => FetchError::AccessDenied(format!(
            "the store refused access to {what} ({detail}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
        )),
        _ if status.is_none() && detail.contains("credential") => {
            FetchError::AccessDenied(format!(
                "no S3 credentials found for {what}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ))
        }
        (Some(s), _) => {
            FetchError::Network(format!("the store answered HTTP {s} for {what} ({detail})"))
        }
        (None, _) => FetchError::Network(format!("cannot reach the store for {what}: {detail}")),
    }
}
