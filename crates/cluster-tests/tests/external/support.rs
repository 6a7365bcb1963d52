//! What the outside-the-cluster tests share: a control plane with the operator, Project helpers,
//! and plain clients for S3, Keycloak and the Harbor API, so every check goes through the services'
//! own APIs as a user's tools would.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::{PlatformSettings, Project};
use berth_testenv::{ControlPlane, Options, Process};

/// A control plane of its own (the platform settings are a singleton) with the operator running.
pub struct Platform {
    pub plane: ControlPlane,
    pub client: Client,
    pub operator: Process,
}

impl Platform {
    pub async fn start() -> Result<Self> {
        let plane = ControlPlane::start(Options::default()).await?;
        let client = plane.cluster().client().await?;
        let (operator, _) = plane
            .cluster()
            .start_operator(
                &berth_testenv::operator_binary()?,
                plane.dir(),
                "operator.log",
                &[],
            )
            .await?;
        Ok(Self {
            plane,
            client,
            operator,
        })
    }

    /// A Secret with the admin credentials in the operator's namespace.
    pub async fn admin_secret(&self, name: &str, data: &[(&str, &str)]) -> Result<()> {
        berth_testenv::manifests::apply_secret(&self.client, "berth-system", name, data).await?;
        Ok(())
    }

    /// Merges `spec` into the platform settings.
    pub async fn settings(&self, spec: Value) -> Result<()> {
        let settings: Api<PlatformSettings> = Api::all(self.client.clone());
        settings
            .patch(
                "default",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    pub fn projects(&self) -> Api<Project> {
        Api::all(self.client.clone())
    }

    pub async fn create_project(&self, spec: Value, name: &str) -> Result<()> {
        let project: Project = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        self.projects()
            .create(&PostParams::default(), &project)
            .await?;
        Ok(())
    }

    /// Waits until `check` accepts the Project, failing early if the operator dies.
    pub async fn wait_project(
        &mut self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Project) -> bool,
    ) -> Result<Project> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.operator.exited() {
                bail!(
                    "the operator exited with {status}:\n{}",
                    self.operator.log_tail(4000)
                );
            }
            if let Some(p) = self.projects().get_opt(name).await?
                && check(&p)
            {
                return Ok(p);
            }
            if Instant::now() > deadline {
                let p = self.projects().get_opt(name).await?;
                bail!(
                    "project {name}: timed out after {timeout:?} waiting for {what}; its status: {:#?}",
                    p.and_then(|p| p.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A Secret's values, as strings.
    pub async fn secret(&self, namespace: &str, name: &str) -> Result<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .with_context(|| format!("reading Secret {namespace}/{name}"))
    }

    /// Sets an annotation on a Project.
    pub async fn annotate(&self, name: &str, key: &str, value: &str) -> Result<()> {
        self.projects()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
            )
            .await?;
        Ok(())
    }

    /// The operator's log so far.
    pub fn operator_log(&self) -> String {
        std::fs::read_to_string(self.operator.log_path()).unwrap_or_default()
    }
}

/// A Secret value as a string.
pub fn value(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("Secret {} has no {key}", secret.name_any()))?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

/// The status and reason of a Project condition.
pub fn condition(p: &Project, type_: &str) -> Option<(String, String)> {
    p.status
        .as_ref()
        .and_then(|s| berth_api::conditions::get(&s.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn is_true(p: &Project, type_: &str) -> bool {
    condition(p, type_).is_some_and(|(s, _)| s == "True")
}

/// An S3 client as a data scientist's tools would make it from the project's Secret: path-style,
/// checksums only when required.
pub fn s3_from_secret(secret: &Secret) -> Result<aws_sdk_s3::Client> {
    Ok(s3(
        &value(secret, "AWS_ENDPOINT_URL")?,
        &value(secret, "AWS_REGION")?,
        &value(secret, "AWS_ACCESS_KEY_ID")?,
        &value(secret, "AWS_SECRET_ACCESS_KEY")?,
    ))
}

pub fn s3(endpoint: &str, region: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    berth_services::s3_client(endpoint, region, id, secret)
}

/// Whether the client may put an object in `bucket`.
pub async fn can_write(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.put_object()
        .bucket(bucket)
        .key("probe.txt")
        .body(b"probe".to_vec().into())
        .send()
        .await
        .is_ok()
}

/// Whether the client may list `bucket`.
pub async fn can_list(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.list_objects_v2().bucket(bucket).send().await.is_ok()
}

/// Whether the client may read `key` from `bucket`.
pub async fn can_read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.get_object().bucket(bucket).key(key).send().await.is_ok()
}

/// A JSON answer from a REST API, failing on anything but success.
pub async fn rest(request: reqwest::RequestBuilder) -> Result<Value> {
    let answer = request.send().await?;
    let status = answer.status();
    let body = answer.text().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&body)?)
}
