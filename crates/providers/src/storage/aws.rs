//! AWS S3 with IAM: buckets through S3 (aws-sdk-s3), keys through IAM's query API (form-encoded
//! POSTs signed with SigV4, XML answers), without aws-sdk-iam.
//!
//! A Project's bucket records its owner as the bucket tag [`crate::OWNER_TAG`]. A Project's key
//! is an IAM user named after the key, under the path `/berth/`, with one inline
//! policy (`berth-bucket`) that reaches its bucket only, and one access key. IAM never shows a
//! secret again: [`ObjectStore::recover_key`] creates a new access key and deletes the others.
//!
//! Untested against real AWS (it cannot be reached from where Berth is built); see
//! `docs/storage-aws.md`.

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::StatusCode;

use super::sigv4::Signer;
use super::{
    BucketSpec, ObjectStore, StoreConfig, bucket_policy_in, check_key_name, error_chain, s3,
};
use crate::{Credential, Error, ErrorKind, IssuedCredential, Owner, Result, Secret};

/// The IAM path every user Berth makes lives under, so that listing finds Berth's users only.
pub const USER_PATH: &str = "/berth/";
/// The name of the inline policy on each user.
pub const POLICY_NAME: &str = "berth-bucket";
const IAM_VERSION: &str = "2010-05-08";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Object storage on AWS S3 with IAM users. See the module documentation.
pub struct AwsStore {
    endpoint: String,
    region: String,
    partition: &'static str,
    iam_endpoint: String,
    signer: Signer,
    http: reqwest::Client,
    s3: aws_sdk_s3::Client,
}

/// IAM's partition for a region: its ARN prefix, its global endpoint and the region IAM signs
/// with there.
fn partition(region: &str) -> (&'static str, &'static str, &'static str) {
    if region.starts_with("cn-") {
        (
            "aws-cn",
            "https://iam.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
        )
    } else if region.starts_with("us-gov-") {
        (
            "aws-us-gov",
            "https://iam.us-gov.amazonaws.com",
            "us-gov-west-1",
        )
    } else {
        ("aws", "https://iam.amazonaws.com", "us-east-1")
    }
}

/// The form body of an IAM query API call.
pub(crate) fn form(action: &str, params: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.append_pair("Action", action);
    s.append_pair("Version", IAM_VERSION);
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>> {
    roxmltree::Document::parse(xml).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!("IAM: an answer that is not XML: {e}"),
        )
    })
}

/// The text of the first element called `name`.
fn text<'a>(doc: &'a roxmltree::Document<'_>, name: &str) -> Option<&'a str> {
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
}

/// The texts of the elements called `field` in each `member` of the list called `list`.
fn members(doc: &roxmltree::Document<'_>, list: &str, field: &str) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name(list))
        .flat_map(|l| l.children().filter(|m| m.has_tag_name("member")))
        .filter_map(|m| {
            m.children()
                .find(|f| f.has_tag_name(field))
                .and_then(|f| f.text())
                .map(str::to_owned)
        })
        .collect()
}

/// The marker of the next page, if the answer says there is one.
fn next_marker(doc: &roxmltree::Document<'_>) -> Option<String> {
    (text(doc, "IsTruncated") == Some("true"))
        .then(|| text(doc, "Marker").map(str::to_owned))
        .flatten()
}

/// IAM's error answer: its code and message.
pub(crate) fn parse_error(xml: &str) -> (String, String) {
    match roxmltree::Document::parse(xml) {
        Ok(doc) => (
            text(&doc, "Code").unwrap_or_default().to_owned(),
            text(&doc, "Message").unwrap_or_default().to_owned(),
        ),
        Err(_) => (String::new(), xml.chars().take(300).collect()),
    }
}

/// ListUsers: the user names on this page and the marker of the next.
pub(crate) fn parse_users(xml: &str) -> Result<(Vec<String>, Option<String>)> {
    let doc = parse(xml)?;
    Ok((members(&doc, "Users", "UserName"), next_marker(&doc)))
}

/// ListAccessKeys: the access key ids on this page and the marker of the next.
pub(crate) fn parse_access_keys(xml: &str) -> Result<(Vec<String>, Option<String>)> {
    let doc = parse(xml)?;
    Ok((
        members(&doc, "AccessKeyMetadata", "AccessKeyId"),
        next_marker(&doc),
    ))
}

/// CreateAccessKey: the new key's id and secret.
pub(crate) fn parse_new_access_key(xml: &str) -> Result<(String, Secret)> {
    let doc = parse(xml)?;
    let id = text(&doc, "AccessKeyId");
    let secret = text(&doc, "SecretAccessKey");
    match (id, secret) {
        (Some(id), Some(secret)) => Ok((id.to_owned(), Secret::new(secret))),
        _ => Err(Error::new(
            ErrorKind::Backend,
            "IAM CreateAccessKey: no AccessKeyId or SecretAccessKey in the answer",
        )),
    }
}

/// What an IAM call came to, when IAM answered.
enum Answer {
    Ok(String),
    /// `NoSuchEntity` (404) or `EntityAlreadyExists` (409): the caller decides.
    Entity(String),
}

impl AwsStore {
    /// A store on AWS in `config.region` with the access key `config.admin_id` and secret
    /// `config.admin_secret` (an IAM user's long-lived key; see `docs/storage-aws.md` for the
    /// permissions it needs). `config.endpoint` may name an S3 endpoint (a VPC endpoint; empty:
    /// the regional one); `config.admin_endpoint` may name the IAM endpoint (empty: IAM's global
    /// endpoint for the region's partition).
    pub fn new(config: StoreConfig) -> Result<Self> {
        if config.region.is_empty() {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                "AWS needs the region the buckets live in",
            ));
        }
        let (partition, iam_default, iam_region) = partition(&config.region);
        let iam_endpoint = if config.admin_endpoint.is_empty() {
            iam_default.to_owned()
        } else {
            config.admin_endpoint.trim_end_matches('/').to_owned()
        };
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let signer = Signer::new(
            &config.admin_id,
            &config.admin_secret,
            iam_region,
            "iam",
            false,
        );
        let s3 = s3::client(
            &endpoint,
            &config.region,
            &config.admin_id,
            &config.admin_secret,
        );
        Ok(Self {
            endpoint,
            region: config.region,
            partition,
            iam_endpoint,
            signer,
            http: super::http_client()?,
            s3,
        })
    }

    async fn iam(&self, action: &str, params: &[(&str, &str)]) -> Result<Answer> {
        let what = format!("IAM {action}");
        let body = form(action, params);
        let url = format!("{}/", self.iam_endpoint);
        let signed = self.signer.sign(
            "POST",
            &url,
            &[("content-type", FORM)],
            body.as_bytes(),
            SystemTime::now(),
        )?;
        let mut req = self.http.post(&url).header("content-type", FORM).body(body);
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| {
            Error::new(
                ErrorKind::Unreachable,
                format!(
                    "{what}: no answer from {}: {}",
                    self.iam_endpoint,
                    error_chain(&e)
                ),
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Error::transport(&what, &e))?;
        if status.is_success() {
            return Ok(Answer::Ok(text));
        }
        let (code, message) = parse_error(&text);
        Err(match code.as_str() {
            "NoSuchEntity" | "EntityAlreadyExists" => return Ok(Answer::Entity(code)),
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "ExpiredToken"
            | "MissingAuthenticationToken" => Error::new(
                ErrorKind::Unauthorized,
                format!("{what}: the admin access key was rejected: {code}: {message}"),
            ),
            "AccessDenied" | "AccessDeniedException" => Error::new(
                ErrorKind::Forbidden,
                format!("{what}: the admin identity may not do this: {code}: {message}"),
            ),
            _ if status == StatusCode::TOO_MANY_REQUESTS || code == "Throttling" => Error::new(
                ErrorKind::Backend,
                format!("{what}: throttled: {code}: {message}"),
            ),
            _ => Error::status(&what, status, &format!("{code}: {message}")),
        })
    }

    /// An IAM call whose entity answers are errors.
    async fn iam_ok(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        match self.iam(action, params).await? {
            Answer::Ok(text) => Ok(text),
            Answer::Entity(code) => Err(Error::new(
                ErrorKind::Rejected,
                format!("IAM {action}: {code}"),
            )),
        }
    }

    async fn access_keys(&self, user: &str) -> Result<Option<Vec<String>>> {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut params = vec![("UserName", user)];
            if let Some(m) = &marker {
                params.push(("Marker", m));
            }
            let text = match self.iam("ListAccessKeys", &params).await? {
                Answer::Ok(text) => text,
                Answer::Entity(_) => return Ok(None),
            };
            let (ids, next) = parse_access_keys(&text)?;
            all.extend(ids);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(Some(all)),
            }
        }
    }

    async fn put_policy(&self, user: &str, bucket: &str) -> Result<()> {
        let policy = bucket_policy_in(self.partition, bucket).to_string();
        self.iam_ok(
            "PutUserPolicy",
            &[
                ("UserName", user),
                ("PolicyName", POLICY_NAME),
                ("PolicyDocument", &policy),
            ],
        )
        .await?;
        Ok(())
    }

    async fn new_access_key(&self, user: &str) -> Result<IssuedCredential> {
        let text = self
            .iam_ok("CreateAccessKey", &[("UserName", user)])
            .await?;
        let (id, secret) = parse_new_access_key(&text)?;
        Ok(IssuedCredential {
            credential: Credential {
                id: id.clone(),
                name: user.to_owned(),
            },
            login: id,
            secret,
        })
    }

    async fn delete_access_key(&self, user: &str, id: &str) -> Result<()> {
        self.iam(
            "DeleteAccessKey",
            &[("UserName", user), ("AccessKeyId", id)],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for AwsStore {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn supports_quota(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<()> {
        self.iam_ok("ListUsers", &[("PathPrefix", USER_PATH), ("MaxItems", "1")])
            .await?;
        Ok(())
    }

    async fn ensure_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        // S3 has no size quota: `quota_bytes` is ignored (supports_quota says so).
        s3::ensure_owned_bucket(&self.s3, &spec.name, &self.region, owner).await
    }

    async fn bucket_exists(&self, name: &str) -> Result<bool> {
        s3::bucket_exists(&self.s3, name).await
    }

    async fn owns_bucket(&self, name: &str, owner: &Owner) -> Result<bool> {
        s3::owns_bucket(&self.s3, name, owner).await
    }

    async fn delete_bucket(&self, spec: &BucketSpec, owner: &Owner) -> Result<()> {
        s3::delete_owned_bucket(&self.s3, &spec.name, owner)
            .await
            .map(drop)
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<Credential>> {
        let mut users = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut params = vec![("PathPrefix", USER_PATH)];
            if let Some(m) = &marker {
                params.push(("Marker", m));
            }
            let text = self.iam_ok("ListUsers", &params).await?;
            let (names, next) = parse_users(&text)?;
            users.extend(names.into_iter().filter(|n| n.starts_with(prefix)));
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        let mut out = Vec::new();
        for user in users {
            // A user a crash left without an access key is listed with an empty id.
            let id = self
                .access_keys(&user)
                .await?
                .and_then(|ids| ids.into_iter().next())
                .unwrap_or_default();
            out.push(Credential { id, name: user });
        }
        Ok(out)
    }

    async fn create_key(&self, name: &str, bucket: &BucketSpec) -> Result<IssuedCredential> {
        check_key_name(name)?;
        // An existing user (a crash after CreateUser) is taken over: its name carries the
        // owner's UID, which nobody else can produce.
        self.iam("CreateUser", &[("UserName", name), ("Path", USER_PATH)])
            .await?;
        self.put_policy(name, &bucket.name).await?;
        self.new_access_key(name).await
    }

    async fn recover_key(&self, key: &Credential, bucket: &BucketSpec) -> Result<IssuedCredential> {
        self.put_policy(&key.name, &bucket.name).await?;
        let mut old = self.access_keys(&key.name).await?.unwrap_or_default();
        // IAM allows two access keys per user: make room for the new one first.
        if old.len() >= 2 {
            let oldest = old.remove(0);
            self.delete_access_key(&key.name, &oldest).await?;
        }
        let issued = self.new_access_key(&key.name).await?;
        for id in old {
            self.delete_access_key(&key.name, &id).await?;
        }
        Ok(issued)
    }

    async fn ensure_grant(&self, key: &Credential, bucket: &BucketSpec) -> Result<()> {
        self.put_policy(&key.name, &bucket.name).await
    }

    async fn delete_key(&self, key: &Credential) -> Result<()> {
        let user = key.name.as_str();
        let Some(ids) = self.access_keys(user).await? else {
            return Ok(());
        };
        for id in ids {
            self.delete_access_key(user, &id).await?;
        }
        self.iam(
            "DeleteUserPolicy",
            &[("UserName", user), ("PolicyName", POLICY_NAME)],
        )
        .await?;
        self.iam("DeleteUser", &[("UserName", user)]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies() {
        assert_eq!(
            form(
                "CreateUser",
                &[("UserName", "berth-a-0"), ("Path", USER_PATH)]
            ),
            "Action=CreateUser&Version=2010-05-08&UserName=berth-a-0&Path=%2Fberth%2F"
        );
        let policy = bucket_policy_in("aws", "team-a").to_string();
        let body = form(
            "PutUserPolicy",
            &[
                ("UserName", "berth-a-0"),
                ("PolicyName", POLICY_NAME),
                ("PolicyDocument", &policy),
            ],
        );
        assert!(body.starts_with(
            "Action=PutUserPolicy&Version=2010-05-08&UserName=berth-a-0&PolicyName=berth-bucket&PolicyDocument=%7B%22"
        ));
        // The policy comes back whole from the form encoding.
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert!(decoded.contains(&("PolicyDocument".to_owned(), policy)));
    }

    #[test]
    fn policy_json() {
        let p = bucket_policy_in("aws-cn", "team-a");
        assert_eq!(p["Version"], "2012-10-17");
        let mut resources = Vec::new();
        for statement in p["Statement"].as_array().into_iter().flatten() {
            assert_eq!(statement["Effect"], "Allow");
            for r in statement["Resource"].as_array().into_iter().flatten() {
                resources.push(r.as_str().unwrap_or_default().to_owned());
            }
        }
        assert_eq!(
            resources,
            ["arn:aws-cn:s3:::team-a", "arn:aws-cn:s3:::team-a/*"]
        );
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() -> Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::new(ErrorKind::Backend, e.to_string()))?;
        let store = AwsStore::new(StoreConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            admin_endpoint: format!("http://127.0.0.1:{port}"),
            region: "eu-west-1".into(),
            admin_id: "AKIDEXAMPLE".into(),
            admin_secret: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        })?;
        let e = store.check().await.err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Unreachable));
        let e = store.bucket_exists("team-a").await.err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Unreachable));
        assert!(!format!("{e:?}").contains("wJalrXUtnFEMI"));
        Ok(())
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("eu-west-1").1, "https://iam.amazonaws.com");
        assert_eq!(partition("us-gov-east-1").2, "us-gov-west-1");
        assert_eq!(partition("cn-northwest-1").0, "aws-cn");
    }

    // The answers below are AWS's documented examples (IAM API Reference, the "Examples"
    // section of each action).

    #[test]
    fn create_access_key_answer() -> Result<()> {
        let xml = r#"<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateAccessKeyResult>
    <AccessKey>
      <UserName>Bob</UserName>
      <AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId>
      <Status>Active</Status>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
    </AccessKey>
  </CreateAccessKeyResult>
  <ResponseMetadata>
    <RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId>
  </ResponseMetadata>
</CreateAccessKeyResponse>"#;
        let (id, secret) = parse_new_access_key(xml)?;
        assert_eq!(id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
        assert!(parse_new_access_key("<CreateAccessKeyResponse/>").is_err());
        Ok(())
    }

    #[test]
    fn list_users_answer() -> Result<()> {
        let xml = r#"<ListUsersResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
   <ListUsersResult>
      <Users>
         <member>
            <UserId>AID2MAB8DPLSRHEXAMPLE</UserId>
            <Path>/division_abc/subdivision_xyz/engineering/</Path>
            <UserName>Andrew</UserName>
            <Arn>arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/engineering/Andrew</Arn>
            <CreateDate>2012-09-05T19:38:48Z</CreateDate>
            <PasswordLastUsed>2014-09-08T21:47:36Z</PasswordLastUsed>
         </member>
         <member>
            <UserId>AIDIODR4TAW7CSEXAMPLE</UserId>
            <Path>/division_abc/subdivision_xyz/engineering/</Path>
            <UserName>Jackie</UserName>
            <Arn>arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/engineering/Jackie</Arn>
            <CreateDate>2012-09-05T19:38:48Z</CreateDate>
            <PasswordLastUsed>2014-09-08T21:47:36Z</PasswordLastUsed>
         </member>
      </Users>
      <IsTruncated>false</IsTruncated>
   </ListUsersResult>
   <ResponseMetadata>
      <RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId>
   </ResponseMetadata>
</ListUsersResponse>"#;
        let (users, next) = parse_users(xml)?;
        assert_eq!(users, ["Andrew", "Jackie"]);
        assert_eq!(next, None);
        let truncated = xml.replace(
            "<IsTruncated>false</IsTruncated>",
            "<IsTruncated>true</IsTruncated><Marker>page-2</Marker>",
        );
        assert_eq!(parse_users(&truncated)?.1.as_deref(), Some("page-2"));
        Ok(())
    }

    #[test]
    fn list_access_keys_answer() -> Result<()> {
        let xml = r#"<ListAccessKeysResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
   <ListAccessKeysResult>
      <UserName>Bob</UserName>
      <AccessKeyMetadata>
         <member>
            <UserName>Bob</UserName>
            <AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId>
            <Status>Active</Status>
         </member>
         <member>
            <UserName>Bob</UserName>
            <AccessKeyId>AKIAI44QH8DHBEXAMPLE</AccessKeyId>
            <Status>Inactive</Status>
         </member>
      </AccessKeyMetadata>
      <IsTruncated>false</IsTruncated>
   </ListAccessKeysResult>
   <ResponseMetadata>
      <RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId>
   </ResponseMetadata>
</ListAccessKeysResponse>"#;
        let (ids, next) = parse_access_keys(xml)?;
        assert_eq!(ids, ["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"]);
        assert_eq!(next, None);
        Ok(())
    }

    #[test]
    fn error_answer() {
        let xml = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <Error>
    <Type>Sender</Type>
    <Code>NoSuchEntity</Code>
    <Message>The user with name Bob cannot be found.</Message>
  </Error>
  <RequestId>4f2b3c6d-EXAMPLE</RequestId>
</ErrorResponse>"#;
        assert_eq!(
            parse_error(xml),
            (
                "NoSuchEntity".to_owned(),
                "The user with name Bob cannot be found.".to_owned()
            )
        );
        assert_eq!(parse_error("not xml").0, "");
    }

    #[test]
    fn needs_a_region() {
        let config = StoreConfig {
            endpoint: String::new(),
            admin_endpoint: String::new(),
            region: String::new(),
            admin_id: "AKIDEXAMPLE".into(),
            admin_secret: Secret::new("x"),
        };
        assert!(matches!(
            AwsStore::new(config),
            Err(Error {
                kind: ErrorKind::NotConfigured,
                ..
            })
        ));
    }
}
