//! Authenticated model endpoints for real (issue 12): a real Keycloak (on the node's address,
//! where pods fetch its keys), two Projects each with the OIDC client Berth made, and real
//! serving pods: berth-model-server checking tokens itself (onnx), and `berth-model-server proxy`
//! in front of a custom runtime. Every request goes through the model's Service ClusterIP, as a
//! caller in the cluster would.
//!
//! - a client_credentials token of the project's own client: 200; none: 401 with
//!   `WWW-Authenticate: Bearer`; another project's: 401; an expired one: 401;
//! - kubernetes mode: a TokenRequest token of a ServiceAccount of the project made for the
//!   model's audience: 200; another project's ServiceAccount: 403; one made for another audience:
//!   401;
//! - the custom runtime behind the proxy answers the same, and never sees the caller's
//!   `Authorization` header (it echoes what it got).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use berth_api::mlmodel::MLModel;
use berth_services::Keycloak;
use berth_testenv::realnode::NODE_IP;

use crate::models::{create_project, make_models, project_s3};
use crate::platform::platform;
use crate::support::{Env, env, eventually, place_on_real_node, unique};

const REALM: &str = "berth";
/// The clock skew the model servers allow in this test (PlatformSettings
/// `models.auth.clockSkewSeconds`), so an expired token is refused within seconds.
const SKEW_SECONDS: u64 = 1;
/// The access token lifespan of the client the expired token comes from.
const SHORT_LIFESPAN_SECONDS: u64 = 3;

/// Keycloak's base URL and admin password, once per binary.
static KEYCLOAK: OnceLock<Result<(String, String), String>> = OnceLock::new();
/// Keycloak and its relay run on a thread of their own until the binary exits: every Project made
/// after this test has an OIDC client, and needs Keycloak to stay Ready.
static KEYCLOAK_THREAD: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);

/// Starts Keycloak on the node's address (once), makes the realm, and points the platform
/// settings at it: identity (reachable from project pods at the node's address) and a clock skew
/// of one second for model servers.
pub(crate) async fn identity(env: &Env) -> Result<(String, String)> {
    let (url, password) = KEYCLOAK
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                // A runtime on this thread only: Keycloak's process is this thread's child (it
                // dies with it), and the relay's tasks run while block_on waits below.
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = tx.send(Err("no runtime for Keycloak".to_owned()));
                    return;
                };
                runtime.block_on(async move {
                    let started = async {
                        let kc = Keycloak::start_on(NODE_IP).await?;
                        kc.create_realm(REALM).await?;
                        Ok::<_, berth_services::Error>(kc)
                    }
                    .await;
                    match started {
                        Ok(kc) => {
                            let _ = tx.send(Ok((
                                kc.base_url().to_owned(),
                                kc.admin_password().to_owned(),
                            )));
                            // Keep it (and its relay, a task of this runtime) for the binary.
                            std::future::pending::<()>().await;
                            drop(kc);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e}")));
                        }
                    }
                });
            });
            if let Ok(mut slot) = KEYCLOAK_THREAD.lock() {
                *slot = Some(thread);
            }
            rx.recv()
                .map_err(|e| format!("Keycloak's thread ended: {e}"))
                .and_then(|r| r)
        })
        .clone()
        .map_err(|e| anyhow!(e))?;
    berth_testenv::manifests::apply_secret(
        &env.client,
        berth_testenv::manifests::OPERATOR_NAMESPACE,
        "keycloak-admin",
        &[("username", "admin"), ("password", &password)],
    )
    .await?;
    let settings: Api<berth_api::PlatformSettings> = Api::all(env.client.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "identity": {
                    "provider": "keycloak",
                    "url": url,
                    "realm": REALM,
                    "adminSecretRef": {"name": "keycloak-admin"},
                    // Where model servers fetch the realm's keys.
                    "egressTo": {
                        "cidrs": [format!("{NODE_IP}/32")],
                        "ports": berth_services::port_of(&url).into_iter().collect::<Vec<_>>(),
                    },
                },
                "models": {"auth": {"clockSkewSeconds": SKEW_SECONDS}},
            }})),
        )
        .await?;
    Ok((url, password))
}

/// The project's OIDC client id and secret, from the Secret Berth stored in its namespace.
async fn oidc_client(env: &Env, ns: &str) -> Result<(String, String, String)> {
    let secret: Secret = eventually(
        &format!("the OIDC Secret of {ns}"),
        Duration::from_secs(60),
        || async {
            Ok(Api::<Secret>::namespaced(env.client.clone(), ns)
                .get_opt("berth-oidc")
                .await?)
        },
    )
    .await?;
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| -> Result<String> {
        Ok(String::from_utf8(
            data.get(k)
                .with_context(|| format!("berth-oidc has no {k}"))?
                .0
                .clone(),
        )?)
    };
    Ok((
        get("OIDC_CLIENT_ID")?,
        get("OIDC_CLIENT_SECRET")?,
        get("OIDC_ISSUER_URL")?,
    ))
}

/// A client_credentials access token of the client.
async fn client_token(
    http: &reqwest::Client,
    issuer: &str,
    id: &str,
    secret: &str,
) -> Result<String> {
    let answer: Value = http
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

/// A token of ServiceAccount `account` of `ns`, made for `audience` (what `kubectl create token
/// ACCOUNT --audience AUDIENCE` does), or for the API server itself when `audience` is empty.
pub(crate) async fn account_token(
    env: &Env,
    ns: &str,
    account: &str,
    audience: &str,
) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audience.is_empty()).then(|| vec![audience.to_owned()]),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("no token in the TokenRequest's answer")
}

/// One call: the status, the `WWW-Authenticate` header and the body.
async fn call(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, String, String)> {
    let mut request = match body {
        Some(body) => http.post(url).json(body),
        None => http.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, challenge, response.text().await?))
}

fn inference() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
}

/// The model's Service's ClusterIP, once the operator made the Service.
async fn cluster_ip(env: &Env, ns: &str, name: &str) -> Result<String> {
    let services = Api::<Service>::namespaced(env.client.clone(), ns);
    eventually(
        &format!("the Service of {name}"),
        Duration::from_secs(60),
        || async {
            Ok(services
                .get_opt(name)
                .await?
                .and_then(|s| s.spec)
                .and_then(|s| s.cluster_ip))
        },
    )
    .await
}

async fn apply_model(models: &Api<MLModel>, name: &str, spec: Value) -> Result<()> {
    let model: MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name},
        "spec": spec,
    }))?;
    models
        .patch(
            name,
            &PatchParams::apply("berth-realnode-tests").force(),
            &Patch::Apply(&model),
        )
        .await?;
    Ok(())
}

/// Waits until the model is Ready and the host reaches it through its Service (any answer).
async fn until_serving(
    models: &Api<MLModel>,
    http: &reqwest::Client,
    name: &str,
    url: &str,
) -> Result<()> {
    eventually(
        &format!("MLModel {name} Ready"),
        Duration::from_secs(240),
        || async {
            let m = models.get(name).await?;
            let ready = m
                .status
                .as_ref()
                .is_some_and(|s| berth_api::conditions::is_true(&s.conditions, "Ready"));
            Ok(ready.then_some(()))
        },
    )
    .await?;
    eventually(
        &format!("{name}'s Service programmed"),
        Duration::from_secs(30),
        || async { Ok(call(http, url, None, None).await.ok().map(|_| ())) },
    )
    .await
}

/// Expects `status` (and, for 401, a Bearer challenge); the body never echoes the token.
fn expect(what: &str, got: &(u16, String, String), status: u16, token: Option<&str>) -> Result<()> {
    let (code, challenge, body) = got;
    ensure!(
        *code == status,
        "{what}: expected {status}, got {code} ({challenge}) {body}"
    );
    if status == 401 || status == 403 {
        ensure!(
            challenge.starts_with("Bearer"),
            "{what}: {status} without a Bearer challenge: {challenge:?}"
        );
        let error = if status == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        ensure!(
            challenge.contains(error),
            "{what}: the challenge does not say {error}: {challenge}"
        );
        if let Some(token) = token {
            ensure!(
                !body.contains(token) && !challenge.contains(token),
                "{what}: the answer echoes the token"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn model_endpoints_take_only_their_projects_tokens() -> Result<()> {
    let env = env().await?;
    platform(&env).await?;
    let started = Instant::now();
    let (_, admin_password) = identity(&env).await?;
    eprintln!(
        "Keycloak ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let models_dir = make_models()?;
    let client = &env.client;
    let a = unique("rn-auth-a");
    let b = unique("rn-auth-b");
    for ns in [&a, &b] {
        create_project(&env, ns).await?;
        place_on_real_node(client, ns).await?;
    }
    let (s3, bucket) = project_s3(client, &a).await?;
    s3.put_object()
        .bucket(&bucket)
        .key("scorer/model.onnx")
        .body(std::fs::read(models_dir.join("mlp/model.onnx"))?.into())
        .send()
        .await
        .context("uploading the model")?;
    let uri = format!("s3://{bucket}/scorer/model.onnx");
    let resources =
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}});
    let models: Api<MLModel> = Api::namespaced(client.clone(), &a);
    // The default: oidc, the project's client as audience.
    apply_model(
        &models,
        "scorer",
        json!({"source": {"uri": uri}, "resources": resources, "storage": {"size": "64Mi"}}),
    )
    .await?;
    apply_model(
        &models,
        "scorer-sa",
        json!({"source": {"uri": uri}, "auth": {"mode": "kubernetes"}, "resources": resources, "storage": {"size": "64Mi"}}),
    )
    .await?;
    // A custom runtime behind the proxy: busybox httpd, whose CGI script echoes the
    // Authorization header it received.
    let echo = concat!(
        "mkdir -p /tmp/www/cgi-bin && echo ok > /tmp/www/index.html && ",
        "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho \"authorization=[$HTTP_AUTHORIZATION] probe=[$HTTP_X_PROBE]\"\\n' > /tmp/www/cgi-bin/echo && ",
        "chmod +x /tmp/www/cgi-bin/echo && exec httpd -f -p 5000 -h /tmp/www"
    );
    apply_model(
        &models,
        "echo",
        json!({
            "source": {"uri": uri},
            "runtime": {"name": "custom", "image": env.image("helper")?, "port": 5000, "readinessPath": "/index.html", "args": ["sh", "-c", echo]},
            "resources": resources,
            "storage": {"size": "64Mi"},
        }),
    )
    .await?;

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let scorer_url = format!(
        "http://{}/v2/models/scorer/infer",
        cluster_ip(&env, &a, "scorer").await?
    );
    let sa_url = format!(
        "http://{}/v2/models/scorer-sa/infer",
        cluster_ip(&env, &a, "scorer-sa").await?
    );
    let echo_url = format!(
        "http://{}/cgi-bin/echo",
        cluster_ip(&env, &a, "echo").await?
    );
    let serving_started = Instant::now();
    until_serving(&models, &http, "scorer", &scorer_url).await?;
    until_serving(&models, &http, "scorer-sa", &sa_url).await?;
    until_serving(&models, &http, "echo", &echo_url).await?;
    eprintln!(
        "three models Ready and reachable after {:.1} s",
        serving_started.elapsed().as_secs_f64()
    );

    // What status says.
    let scorer = models.get("scorer").await?;
    let auth = scorer
        .status
        .and_then(|s| s.auth)
        .context("no status.auth")?;
    let (a_id, a_secret, issuer) = oidc_client(&env, &a).await?;
    let (b_id, b_secret, _) = oidc_client(&env, &b).await?;
    ensure!(auth.mode == "oidc", "default mode {}", auth.mode);
    ensure!(
        auth.issuer.as_deref() == Some(issuer.as_str()),
        "issuer {:?}",
        auth.issuer
    );
    ensure!(
        auth.audiences == vec![a_id.clone()],
        "audiences {:?}",
        auth.audiences
    );

    // oidc, natively (onnx) and through the proxy (custom).
    let a_token = client_token(&http, &issuer, &a_id, &a_secret).await?;
    let b_token = client_token(&http, &issuer, &b_id, &b_secret).await?;
    let body = inference();
    let answer = call(&http, &scorer_url, Some(&a_token), Some(&body)).await?;
    expect("scorer, the project's token", &answer, 200, None)?;
    let answer: Value = serde_json::from_str(&answer.2)?;
    let y = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "y"))
        .map(|t| t["data"].clone());
    ensure!(
        y == Some(json!([0.0, 2.75])),
        "the model's answer: {answer}"
    );
    for (url, what) in [(&scorer_url, "scorer"), (&echo_url, "echo (proxy)")] {
        let body = (url == &scorer_url).then(inference);
        expect(
            &format!("{what}, no token"),
            &call(&http, url, None, body.as_ref()).await?,
            401,
            None,
        )?;
        expect(
            &format!("{what}, another project's token"),
            &call(&http, url, Some(&b_token), body.as_ref()).await?,
            401,
            Some(&b_token),
        )?;
        expect(
            &format!("{what}, not a token"),
            &call(&http, url, Some("not-a-jwt"), body.as_ref()).await?,
            401,
            None,
        )?;
    }
    // The runtime behind the proxy answers a valid token, and never sees it; other headers pass.
    let echoed = http
        .get(&echo_url)
        .bearer_auth(&a_token)
        .header("X-Probe", "seen")
        .send()
        .await?;
    ensure!(
        echoed.status() == 200,
        "echo (proxy), the project's token: {}",
        echoed.status()
    );
    let echoed = echoed.text().await?;
    ensure!(
        echoed.trim() == "authorization=[] probe=[seen]",
        "what the runtime behind the proxy saw: {echoed}"
    );

    // An expired token: the project's client issues tokens for 3 s from now on (a client
    // setting in Keycloak); the servers allow 1 s of skew.
    let kc_admin = {
        let answer: Value = http
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                issuer.trim_end_matches(&format!("/realms/{REALM}"))
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", admin_password.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let base = issuer
        .trim_end_matches(&format!("/realms/{REALM}"))
        .to_owned();
    let clients: Value = http
        .get(format!(
            "{base}/admin/realms/{REALM}/clients?clientId={a_id}"
        ))
        .bearer_auth(&kc_admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut representation = clients[0].clone();
    let uuid = representation["id"]
        .as_str()
        .context("no client id")?
        .to_owned();
    representation["attributes"]["access.token.lifespan"] =
        json!(SHORT_LIFESPAN_SECONDS.to_string());
    http.put(format!("{base}/admin/realms/{REALM}/clients/{uuid}"))
        .bearer_auth(&kc_admin)
        .json(&representation)
        .send()
        .await?
        .error_for_status()?;
    let short = client_token(&http, &issuer, &a_id, &a_secret).await?;
    expect(
        "scorer, a fresh short-lived token",
        &call(&http, &scorer_url, Some(&short), Some(&body)).await?,
        200,
        None,
    )?;
    tokio::time::sleep(Duration::from_secs(
        SHORT_LIFESPAN_SECONDS + SKEW_SECONDS + 1,
    ))
    .await;
    expect(
        "scorer, an expired token",
        &call(&http, &scorer_url, Some(&short), Some(&body)).await?,
        401,
        Some(&short),
    )?;
    expect(
        "echo (proxy), an expired token",
        &call(&http, &echo_url, Some(&short), None).await?,
        401,
        Some(&short),
    )?;

    // kubernetes: ServiceAccount tokens made for the model's own audience.
    let sa = models.get("scorer-sa").await?;
    let audience = sa
        .status
        .and_then(|s| s.auth)
        .and_then(|a| a.audiences.first().cloned())
        .context("scorer-sa has no audience")?;
    ensure!(
        audience == format!("mlmodels.berth.dev/{a}/scorer-sa"),
        "audience {audience}"
    );
    let own = account_token(&env, &a, "project-automation", &audience).await?;
    let other_project = account_token(&env, &b, "project-automation", &audience).await?;
    let other_audience = account_token(
        &env,
        &a,
        "project-automation",
        &format!("mlmodels.berth.dev/{a}/scorer"),
    )
    .await?;
    expect(
        "scorer-sa, the project's ServiceAccount",
        &call(&http, &sa_url, Some(&own), Some(&body)).await?,
        200,
        None,
    )?;
    expect(
        "scorer-sa, another project's ServiceAccount",
        &call(&http, &sa_url, Some(&other_project), Some(&body)).await?,
        403,
        Some(&other_project),
    )?;
    expect(
        "scorer-sa, a token made for another model",
        &call(&http, &sa_url, Some(&other_audience), Some(&body)).await?,
        401,
        Some(&other_audience),
    )?;
    expect(
        "scorer-sa, no token",
        &call(&http, &sa_url, None, Some(&body)).await?,
        401,
        None,
    )?;
    // An OIDC token is not a ServiceAccount token.
    expect(
        "scorer-sa, the project's OIDC token",
        &call(&http, &sa_url, Some(&a_token), Some(&body)).await?,
        401,
        Some(&a_token),
    )?;
    eprintln!(
        "auth on the real node: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
