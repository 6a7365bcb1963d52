//! AWS Signature Version 4 for the admin calls made with reqwest (MinIO's admin API, IAM's query
//! API), through the `aws-sigv4` crate the S3 SDK uses.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::{Error, ErrorKind, Result, Secret};

/// Signs requests for one service and region with one key.
pub(crate) struct Signer {
    identity: Identity,
    region: String,
    service: &'static str,
    /// Whether to send `x-amz-content-sha256` (MinIO wants it, as S3 does).
    content_sha256: bool,
}

impl Signer {
    pub(crate) fn new(
        access_key: &str,
        secret: &Secret,
        region: &str,
        service: &'static str,
        content_sha256: bool,
    ) -> Self {
        let identity =
            Credentials::new(access_key, secret.expose(), None, None, "berth-providers").into();
        Self {
            identity,
            region: region.to_owned(),
            service,
            content_sha256,
        }
    }

    /// The headers to add to a request to `url` (already percent-encoded, exactly as it will be
    /// sent) with `headers` (which are signed too) and `body`: `authorization`, `x-amz-date`
    /// and, if asked for, `x-amz-content-sha256`.
    pub(crate) fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::Backend, format!("signing a request: {e}"))
        };
        let mut settings = SigningSettings::default();
        if self.content_sha256 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| fail(&e))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| fail(&e))?;
        let (instructions, _signature) = sign(request, &params).map_err(|e| fail(&e))?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// AWS's documented example: IAM ListUsers, signed on 2015-08-30T12:36:00Z with the example
    /// key (docs.aws.amazon.com, "Create a signed AWS API request", the GET example).
    #[test]
    fn aws_documented_example() -> Result<()> {
        let signer = Signer::new(
            "AKIDEXAMPLE",
            &Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            "us-east-1",
            "iam",
            false,
        );
        let time = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let headers = signer.sign(
            "GET",
            "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            b"",
            time,
        )?;
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        Ok(())
    }
}
