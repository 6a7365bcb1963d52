//! The dev platform's sample model: an ONNX model made by the model server's own script, uploaded
//! to the sample Project's bucket with the Project's own storage credentials, and the sample
//! MLModel pointing at it.
//!
//! The sample model's pods run on the real node (its namespace is placed there): the download Job
//! runs berth-model-fetch from its image against Garage, and berth-model-server serves it. On
//! kwok nodes alone (no real node), `berth_testenv::model_runtime` stands in for a container
//! runtime instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use berth_api::{MLModel, Project};

/// The pinned `onnx` package the model server's tests use too.
const ONNX_VERSION: &str = "1.20.1";
/// The sample Project and where its sample MLModel expects the model.
const PROJECT: &str = "fraud-detection";
const MODEL_KEY: &str = "models/fraud-scorer/v1/model.onnx";

/// Makes the sample model, uploads it, and applies the sample MLModel. With `stand_in` (the
/// berth-model-fetch binary) it also starts the stand-in runtime for kwok nodes and returns its
/// task; without, the model's pods run on the real node.
pub async fn sample(
    client: &Client,
    root: &Path,
    dev_dir: &Path,
    stand_in: Option<PathBuf>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let model = make_model(root, dev_dir)?;
    let secret = storage_secret(client).await?;
    upload(&secret, &model).await?;
    let runtime = match stand_in {
        Some(fetch) => {
            let volumes = dev_dir.join("volumes");
            let _ = std::fs::remove_dir_all(&volumes);
            std::fs::create_dir_all(&volumes)?;
            Some(tokio::spawn(berth_testenv::model_runtime::run(
                client.clone(),
                fetch,
                volumes,
            )))
        }
        None => None,
    };
    let applied =
        berth_testenv::manifests::apply_dirs(client, &[root.join("deploy/samples/models")]).await?;
    for name in &applied {
        eprintln!("    applied {name}");
    }
    Ok(runtime)
}

/// A Python with the pinned `onnx`: a venv in Berth's cache, made once.
fn python_with_onnx() -> Result<PathBuf> {
    let cache = std::env::var_os("BERTH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/berth")))
        .context("neither BERTH_CACHE nor HOME is set")?;
    let venv = cache.join(format!("onnx-{ONNX_VERSION}-venv"));
    let python = venv.join("bin/python");
    let has_onnx = |python: &Path| {
        Command::new(python)
            .args(["-c", "import onnx"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_onnx(&python) {
        return Ok(python);
    }
    eprintln!(
        "    installing onnx=={ONNX_VERSION} from PyPI into {} (once)",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?
        .success()
        && Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(format!("onnx=={ONNX_VERSION}"))
            .status()?
            .success();
    if !ok || !has_onnx(&python) {
        bail!(
            "could not install onnx=={ONNX_VERSION} into {}",
            venv.display()
        );
    }
    Ok(python)
}

/// The model server's test MLP, made by its own script.
fn make_model(root: &Path, dev_dir: &Path) -> Result<PathBuf> {
    let out = dev_dir.join("models");
    let status = Command::new(python_with_onnx()?)
        .arg(root.join("crates/model-server/tests/make_models.py"))
        .arg(&out)
        .status()?;
    if !status.success() {
        bail!("make_models.py failed ({status})");
    }
    Ok(out.join("mlp/model.onnx"))
}

/// The sample Project's storage Secret, once the Project has its bucket.
async fn storage_secret(client: &Client) -> Result<Secret> {
    let projects: Api<Project> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = projects.get(PROJECT).await?;
        let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
        if berth_api::conditions::is_true(&conditions, "StorageReady") {
            break;
        }
        if Instant::now() > deadline {
            bail!("Project/{PROJECT} has no bucket after 90 s: {conditions:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(Api::<Secret>::namespaced(client.clone(), PROJECT)
        .get("berth-storage")
        .await?)
}

/// Uploads the model with the Project's own key, as a data scientist would.
async fn upload(secret: &Secret, model: &Path) -> Result<()> {
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| -> Result<String> {
        let v = data
            .get(k)
            .with_context(|| format!("berth-storage has no {k}"))?;
        Ok(String::from_utf8(v.0.clone())?)
    };
    let s3 = berth_services::s3_client(
        &get("AWS_ENDPOINT_URL")?,
        &get("AWS_REGION")?,
        &get("AWS_ACCESS_KEY_ID")?,
        &get("AWS_SECRET_ACCESS_KEY")?,
    );
    let bucket = get("BUCKET")?;
    s3.put_object()
        .bucket(&bucket)
        .key(MODEL_KEY)
        .body(std::fs::read(model)?.into())
        .send()
        .await
        .with_context(|| format!("uploading the sample model to s3://{bucket}/{MODEL_KEY}"))?;
    eprintln!(
        "    uploaded {} to s3://{bucket}/{MODEL_KEY}",
        model.display()
    );
    Ok(())
}

/// For `--smoke`: the sample MLModel reaches Ready.
pub async fn smoke_check(client: &Client) -> Result<()> {
    let models: Api<MLModel> = Api::namespaced(client.clone(), PROJECT);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let m = models.get("fraud-scorer").await?;
        let status = m.status.unwrap_or_default();
        if berth_api::conditions::is_true(&status.conditions, "Ready") {
            eprintln!(
                "    MLModel/{PROJECT}/fraud-scorer is Ready: version {}, {}",
                status.active_version.unwrap_or_default(),
                status.url.unwrap_or_default()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("MLModel fraud-scorer was not Ready after 90 s: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `client_credentials` access token of the sample Project's OIDC client (its id, secret and
/// issuer from the Secret `berth-oidc` Berth stored in the namespace), for calling the sample
/// model, which checks tokens (docs/models.md, "Authentication"). The issuer is plain HTTP on the
/// node's address (the dev platform's Keycloak relay).
pub async fn sample_token(client: &Client) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let secret = Api::<Secret>::namespaced(client.clone(), PROJECT)
        .get("berth-oidc")
        .await
        .with_context(|| format!("the OIDC Secret of {PROJECT}"))?;
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| -> Result<String> {
        let v = data
            .get(k)
            .with_context(|| format!("berth-oidc has no {k}"))?;
        Ok(String::from_utf8(v.0.clone())?)
    };
    let issuer = get("OIDC_ISSUER_URL")?;
    let rest = issuer
        .strip_prefix("http://")
        .with_context(|| format!("the dev issuer {issuer} is not plain http"))?;
    let (authority, realm_path) = rest.split_once('/').unwrap_or((rest, ""));
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        form_encode(&get("OIDC_CLIENT_ID")?),
        form_encode(&get("OIDC_CLIENT_SECRET")?)
    );
    let request = format!(
        "POST /{realm_path}/protocol/openid-connect/token HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("Keycloak did not answer within 10 s")??;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let answer: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("Keycloak's token answer: {text}"))?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no access_token in Keycloak's answer: {body}"))
}

/// `application/x-www-form-urlencoded` escaping of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
