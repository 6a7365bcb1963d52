//! The console's notebook proxy for real (issue 14, first piece of issue 15): `berth-console` as
//! a pod from the operator's image, under its ServiceAccount and the RBAC of
//! deploy/rbac/30-console.yaml, in front of a real JupyterLab on the real node, with the real
//! Keycloak of the platform for browser logins. Every request goes to the console's Service as a
//! caller in the cluster would.
//!
//! - a ServiceAccount editor of the project (token by TokenRequest) reaches JupyterLab's
//!   `api/status`, starts a kernel and talks to it over its WebSocket through the console;
//! - a viewer of the project (who may `get` the Notebook but not `create notebooks/connect`)
//!   gets 403 on HTTP and WebSocket: JupyterLab runs code;
//! - a member of another project gets 403 on HTTP and WebSocket, an unauthenticated caller 401,
//!   a WebSocket from another Origin 403, a path-traversal attempt 400, and the member gets 403 for
//!   another project's notebook;
//! - a Keycloak user whose verified e-mail is the project's owner logs in through the real code
//!   flow (Keycloak's login form) and reaches the notebook; a Keycloak user who is not a member is
//!   refused; a user with the owner's e-mail unverified gets no session;
//! - a Service of the notebook's name that Berth did not make for that Notebook is never dialled
//!   (502, "not Berth's"); once it carries the Notebook's controller reference, a header-echoing
//!   upstream in its place shows that neither the console's cookie nor `Authorization` reaches
//!   it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use berth_api::notebook::{Notebook, NotebookPhase};
use berth_testenv::realnode::{NODE_LABEL, NODE_LABEL_VALUE};

use crate::platform::platform;
use crate::support::{Env, env, eventually, place_on_real_node, ready_project, shell_pod, unique};

const REALM: &str = "berth";
const PASSWORD: &str = "berth-test-Password-1";
const OTHER_OWNER: &str = "eve@example.com";

/// An upstream that answers every GET with the request's headers as JSON, on 8888.
const ECHO: &str = r#"
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"authorization": self.headers.get_all("authorization"),
                           "cookie": self.headers.get_all("cookie"),
                           "host": self.headers.get("host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8888), H).serve_forever()
"#;

/// A token of ServiceAccount `account` of `ns` for the API server (`kubectl create token`).
async fn token(env: &Env, ns: &str, account: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
    if accounts.get_opt(account).await?.is_none() {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": account}}))?;
        accounts.create(&PostParams::default(), &sa).await?;
    }
    crate::auth::account_token(env, ns, account, "").await
}

/// Keycloak's admin API with a master-realm admin token.
struct KeycloakAdmin {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl KeycloakAdmin {
    async fn new(url: &str, password: &str) -> Result<Self> {
        let http = reqwest::Client::new();
        let answer: Value = http
            .post(format!("{url}/realms/master/protocol/openid-connect/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", "admin"),
                ("password", password),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = answer["access_token"]
            .as_str()
            .context("no admin token")?
            .to_owned();
        Ok(Self {
            http,
            url: url.to_owned(),
            token,
        })
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<()> {
        let response = self
            .http
            .request(method, format!("{}/admin/realms/{REALM}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        ensure!(
            status.is_success() || status.as_u16() == 409,
            "Keycloak {path}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }

    async fn user(&self, username: &str, email: &str, verified: bool) -> Result<()> {
        self.send(
            reqwest::Method::POST,
            "/users",
            &json!({
                "username": username, "email": email, "emailVerified": verified,
                "enabled": true, "firstName": "Test", "lastName": username,
                "credentials": [{"type": "password", "value": PASSWORD, "temporary": false}],
            }),
        )
        .await
    }
}

/// A browser: keeps cookies per host, follows no redirect by itself.
struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    fn new() -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()?,
            jar: HashMap::new(),
        })
    }

    fn cookies(&self, url: &reqwest::Url) -> String {
        self.jar
            .get(url.host_str().unwrap_or_default())
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    fn keep(&mut self, url: &reqwest::Url, response: &reqwest::Response) {
        let host = url.host_str().unwrap_or_default().to_owned();
        for set in response.headers().get_all("set-cookie") {
            let Ok(text) = set.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                let jar = self.jar.entry(host.clone()).or_default();
                if v.is_empty() || text.contains("Max-Age=0") {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_owned(), v.to_owned());
                }
            }
        }
    }

    /// One request; returns status, Location (absolute) and body.
    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Result<(u16, Option<String>, String)> {
        let url = reqwest::Url::parse(url)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .header("Accept", "text/html");
        let cookies = self.cookies(&url);
        if !cookies.is_empty() {
            request = request.header("Cookie", cookies);
        }
        if let Some(form) = form {
            request = request.form(form);
        }
        let response = request.send().await?;
        self.keep(&url, &response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| url.join(l).map(String::from))
            .transpose()?;
        Ok((status, location, response.text().await?))
    }

    /// GETs `url`, following redirects; the last answer and its URL.
    async fn follow(&mut self, url: &str) -> Result<(u16, String, String)> {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let (status, location, body) = self.send(reqwest::Method::GET, &url, None).await?;
            match location {
                Some(next) if (300..400).contains(&status) => url = next,
                _ => return Ok((status, url, body)),
            }
        }
        bail!("too many redirects from {url}")
    }

    /// Opens `url` of the console, logs in on Keycloak's form as `username`, and follows back to
    /// the console; the final answer.
    async fn log_in(&mut self, url: &str, username: &str) -> Result<(u16, String, String)> {
        let (status, at, form) = self.follow(url).await?;
        ensure!(
            status == 200 && at.contains("/protocol/openid-connect/auth"),
            "not sent to Keycloak's login: {status} {at}"
        );
        let action = form
            .split("id=\"kc-form-login\"")
            .nth(1)
            .and_then(|rest| rest.split("action=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .map(|a| a.replace("&amp;", "&"))
            .with_context(|| {
                format!(
                    "no login form in Keycloak's page: {}",
                    &form[..form.len().min(500)]
                )
            })?;
        let (status, location, body) = self
            .send(
                reqwest::Method::POST,
                &action,
                Some(&[("username", username), ("password", PASSWORD)]),
            )
            .await?;
        let next = location.with_context(|| {
            format!(
                "Keycloak did not redirect after the login ({status}): {}",
                &body[..body.len().min(800)]
            )
        })?;
        self.follow(&next).await
    }
}

/// Sends a raw WebSocket handshake to `address` for `path`; returns the status line's code and,
/// on 101, the stream.
async fn websocket(
    address: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Result<(u16, tokio::net::TcpStream)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (k, v) in extra {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 16384, "an endless answer head");
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut byte)).await??;
        ensure!(n == 1, "the connection closed during the answer's head");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {text}"))?;
    Ok((code, stream))
}

/// Sends one masked text frame (RFC 6455 §5.2).
async fn send_text(stream: &mut tokio::net::TcpStream, text: &str) -> Result<()> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await?;
    Ok(())
}

/// Reads frames (unmasked, from the server) until one's text contains `needle`.
async fn read_until(stream: &mut tokio::net::TcpStream, needle: &str) -> Result<()> {
    for _ in 0..50 {
        let mut head = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut head)).await??;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await?;
            len = u64::from(u16::from_be_bytes(ext));
        } else if len == 127 {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await?;
            len = u64::from_be_bytes(ext);
        }
        ensure!(len < 1 << 24, "a frame of {len} bytes");
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).await?;
        if String::from_utf8_lossy(&payload).contains(needle) {
            return Ok(());
        }
    }
    bail!("no frame with {needle}")
}

/// The console's Deployment: the operator's image, `berth-console`, on the real node.
fn console_deployment(image: &str, public_url: &str, issuer: &str, client_id: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "berth-console", "namespace": "berth-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "berth-console"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "berth-console"}},
                "spec": {
                    "serviceAccountName": "berth-console",
                    "enableServiceLinks": false,
                    "nodeSelector": {NODE_LABEL: NODE_LABEL_VALUE},
                    "tolerations": [{"key": NODE_LABEL, "operator": "Equal", "value": NODE_LABEL_VALUE, "effect": "NoSchedule"}],
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "console",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["/usr/local/bin/berth-console"],
                        "env": [
                            {"name": "BERTH_CONSOLE_PUBLIC_URL", "value": public_url},
                            {"name": "BERTH_CONSOLE_OIDC_ISSUER", "value": issuer},
                            {"name": "BERTH_CONSOLE_OIDC_CLIENT_ID", "value": client_id},
                            {"name": "BERTH_CONSOLE_OIDC_CLIENT_SECRET_FILE", "value": "/etc/berth-console/oidc/clientSecret"},
                        ],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
                        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "oidc", "mountPath": "/etc/berth-console/oidc", "readOnly": true}],
                    }],
                    "volumes": [{"name": "oidc", "secret": {"secretName": "berth-console-oidc"}}],
                },
            },
        },
    })
}

/// Applies `object` (server-side) through `api`.
async fn apply<K>(api: &Api<K>, name: &str, object: &Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply("berth-realnode-tests").force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

async fn until_running(notebooks: &Api<Notebook>, name: &str) -> Result<()> {
    eventually(
        &format!("Notebook {name} Running"),
        Duration::from_secs(120),
        || async {
            let nb = notebooks.get(name).await?;
            Ok((nb.status.and_then(|s| s.phase) == Some(NotebookPhase::Running)).then_some(()))
        },
    )
    .await
}

/// The console pod's log (the last 100 lines), for failures.
async fn console_logs(env: &Env) -> String {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "berth-system");
    let Ok(list) = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=berth-console"))
        .await
    else {
        return "(no pods)".into();
    };
    let mut out = String::new();
    for pod in list.items {
        let name = kube::ResourceExt::name_any(&pod);
        let states = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| format!("{:?}", c.iter().map(|c| &c.state).collect::<Vec<_>>()))
            .unwrap_or_default();
        out.push_str(&format!("--- {name} state: {states}\n"));
        let params = kube::api::LogParams {
            tail_lines: Some(100),
            ..Default::default()
        };
        out.push_str(&format!(
            "--- {name}\n{}\n",
            pods.logs(&name, &params).await.unwrap_or_default()
        ));
    }
    out
}

#[tokio::test]
async fn the_console_lets_in_only_those_who_may_connect_to_the_notebook() -> Result<()> {
    let env = env().await?;
    let result = console_test(&env).await;
    if let Err(e) = &result {
        eprintln!(
            "the console test failed: {e:#}\nthe console's log:\n{}",
            console_logs(&env).await
        );
    }
    result
}

async fn console_test(env: &Env) -> Result<()> {
    platform(env).await?;
    let (kc_url, kc_password) = crate::auth::identity(env).await?;
    let started = Instant::now();
    let client = &env.client;
    let issuer = format!("{kc_url}/realms/{REALM}");
    let tag = unique("c");
    let owner = format!("{tag}-owner@example.com");
    let (ns, other, echo_ns) = (
        unique("rn-con"),
        unique("rn-con-other"),
        unique("rn-con-echo"),
    );
    let member_sa = json!([{"kind": "ServiceAccount", "name": "ci", "role": "editor"}]);
    let members = json!([
        {"kind": "ServiceAccount", "name": "ci", "role": "editor"},
        {"kind": "ServiceAccount", "name": "watcher", "role": "viewer"},
    ]);
    ready_project(client, &ns, json!({"owners": [owner], "members": members})).await?;
    ready_project(
        client,
        &other,
        json!({"owners": [OTHER_OWNER], "members": member_sa}),
    )
    .await?;
    place_on_real_node(client, &ns).await?;
    let notebooks: Api<Notebook> = Api::namespaced(client.clone(), &ns);
    apply(
        &notebooks,
        "lab",
        &json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": ns},
            "spec": {
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                "home": {"size": "256Mi"},
            },
        }),
    )
    .await?;

    // The console: its Service first (its address is the public URL), the OIDC client, the pod.
    let services: Api<Service> = Api::namespaced(client.clone(), "berth-system");
    apply(
        &services,
        "berth-console",
        &json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "berth-console", "namespace": "berth-system"},
            "spec": {
                "selector": {"app.kubernetes.io/name": "berth-console"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }),
    )
    .await?;
    let ip = services
        .get("berth-console")
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let console = format!("http://{ip}");
    let client_id = format!("berth-console-{tag}");
    let secret = format!("{tag}-secret");
    let kc = KeycloakAdmin::new(&kc_url, &kc_password).await?;
    kc.send(
        reqwest::Method::POST,
        "/clients",
        &json!({
            "clientId": client_id, "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "secret": secret, "standardFlowEnabled": true,
            "directAccessGrantsEnabled": false,
            "redirectUris": [format!("{console}/oauth2/callback"), format!("{console}/")],
            "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": "+"},
        }),
    )
    .await?;
    // A realm where users may share an e-mail: the impostor below gives themselves the owner's.
    kc.send(
        reqwest::Method::PUT,
        "",
        // Keycloak refuses duplicate e-mails together with login by e-mail.
        &json!({"duplicateEmailsAllowed": true, "loginWithEmailAllowed": false}),
    )
    .await?;
    kc.user(&format!("{tag}-owner"), &owner, true).await?;
    kc.user(
        &format!("{tag}-outsider"),
        &format!("{tag}-outsider@example.com"),
        true,
    )
    .await?;
    kc.user(&format!("{tag}-impostor"), &owner, false).await?;
    berth_testenv::manifests::apply_secret(
        client,
        "berth-system",
        "berth-console-oidc",
        &[("clientSecret", &secret)],
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "berth-system");
    apply(
        &deployments,
        "berth-console",
        &console_deployment(&env.image("operator")?, &console, &issuer, &client_id),
    )
    .await?;
    eventually("the console Ready", Duration::from_secs(60), || async {
        let d = deployments.get("berth-console").await?;
        let s = d.status.unwrap_or_default();
        Ok((s.ready_replicas.unwrap_or(0) > 0 && s.updated_replicas == s.replicas).then_some(()))
    })
    .await?;
    eventually(
        "the console's Service programmed",
        Duration::from_secs(30),
        || async {
            Ok(reqwest::get(format!("{console}/healthz"))
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    until_running(&notebooks, "lab").await?;
    eprintln!(
        "console and notebook ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let member = token(env, &ns, "ci").await?;
    let viewer = token(env, &ns, "watcher").await?;
    let stranger = token(env, &other, "ci").await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = format!("{console}/notebook/{ns}/lab/");
    let get = |url: String, bearer: Option<String>| {
        let http = http.clone();
        async move {
            let mut request = http.get(url);
            if let Some(t) = bearer {
                request = request.bearer_auth(t);
            }
            let response = request.send().await?;
            let status = response.status().as_u16();
            let cookies: Vec<String> = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            Ok::<_, anyhow::Error>((status, cookies, response.text().await?))
        }
    };

    // The member reaches JupyterLab (the notebook may need a moment behind its Service).
    let status = eventually(
        "the member reaches api/status",
        Duration::from_secs(30),
        || {
            let get = &get;
            let url = format!("{base}api/status");
            let member = member.clone();
            async move {
                let (code, _, body) = get(url, Some(member)).await?;
                Ok((code == 200).then_some(body))
            }
        },
    )
    .await;
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let last = get(format!("{base}api/status"), Some(member.clone())).await;
            let logs = console_logs(env).await;
            bail!("{e:#}; last answer {last:?}; the console's log:\n{logs}");
        }
    };
    ensure!(status.contains("last_activity"), "api/status: {status}");

    // Others: another project's member 403 (saying who they are, never the token), nobody 401,
    // the member on another project's notebook 403, traversal 400.
    let (code, _, body) = get(format!("{base}api/status"), Some(stranger.clone())).await?;
    ensure!(code == 403, "another project's member: {code} {body}");
    ensure!(
        body.contains(&format!("system:serviceaccount:{other}:ci")),
        "403 says who: {body}"
    );
    ensure!(!body.contains(&stranger), "the 403 page echoes the token");
    // The viewer, as themselves (impersonated), may get the Notebook (so `get` alone would let
    // them in) ...
    let as_viewer = env
        .shared
        .cluster
        .impersonate(
            &format!("system:serviceaccount:{ns}:watcher"),
            &[
                "system:serviceaccounts",
                &format!("system:serviceaccounts:{ns}"),
            ],
        )
        .await?;
    Api::<Notebook>::namespaced(as_viewer, &ns)
        .get("lab")
        .await
        .context("the viewer may get the Notebook")?;
    // ... and the console refuses them: opening it runs code.
    let (code, _, body) = get(format!("{base}api/status"), Some(viewer.clone())).await?;
    ensure!(
        code == 403 && body.contains("notebooks.berth.dev/connect"),
        "a viewer of the project (may get the Notebook, may not connect): {code} {body}"
    );
    let (code, _, _) = get(format!("{base}api/status"), None).await?;
    ensure!(code == 401, "no credentials: {code}");
    let (code, _, _) = get(
        format!("{console}/notebook/{other}/lab/api/status"),
        Some(member.clone()),
    )
    .await?;
    ensure!(
        code == 403,
        "the member on another project's notebook: {code}"
    );
    let (code, _, _) = get(
        format!("{base}..%2F..%2F{other}/lab/api/status"),
        Some(member.clone()),
    )
    .await?;
    ensure!(code == 400, "traversal: {code}");
    let (code, _, _) = get(
        format!("{console}/notebook/{ns}/nothing/api/status"),
        Some(member.clone()),
    )
    .await?;
    ensure!(
        code == 404,
        "a notebook that does not exist, for a member: {code}"
    );
    let (code, _, _) = get(
        format!("{console}/notebook/{other}/nothing/api/status"),
        Some(member.clone()),
    )
    .await?;
    ensure!(
        code == 403,
        "a notebook that does not exist, for an outsider: {code} (not 404)"
    );

    // A kernel over its WebSocket, through the console; JupyterLab's XSRF cookie is its own.
    let (code, cookies, _) = get(format!("{base}lab"), Some(member.clone())).await?;
    ensure!(code == 200, "lab: {code}");
    let xsrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("_xsrf="))
        .and_then(|c| c.split(';').next())
        .context("no _xsrf cookie from JupyterLab")?
        .to_owned();
    let kernel: Value = http
        .post(format!("{base}api/kernels"))
        .bearer_auth(&member)
        .header("Cookie", format!("_xsrf={xsrf}"))
        .header("X-XSRFToken", &xsrf)
        .json(&json!({"name": "python3"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = kernel["id"].as_str().context("no kernel id")?;
    let channels = format!("/notebook/{ns}/lab/api/kernels/{id}/channels?session_id=s1");
    let address = format!("{ip}:80");
    let bearer = format!("Bearer {member}");
    let (code, mut ws) = websocket(&address, &ip, &channels, &[("Authorization", &bearer)]).await?;
    ensure!(code == 101, "the member's kernel WebSocket: {code}");
    send_text(
        &mut ws,
        &json!({
            "header": {"msg_id": "m1", "msg_type": "kernel_info_request", "username": "t", "session": "s1", "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "content": {}, "buffers": [],
        })
        .to_string(),
    )
    .await?;
    read_until(&mut ws, "kernel_info_reply").await?;
    drop(ws);
    let stranger_bearer = format!("Bearer {stranger}");
    let viewer_bearer = format!("Bearer {viewer}");
    for (who, headers, want) in [
        (
            "another project's member",
            vec![("Authorization", stranger_bearer.as_str())],
            403,
        ),
        (
            "the project's viewer",
            vec![("Authorization", viewer_bearer.as_str())],
            403,
        ),
        ("nobody", vec![], 401),
        (
            "the member from another origin",
            vec![
                ("Authorization", bearer.as_str()),
                ("Origin", "http://evil.example"),
            ],
            403,
        ),
    ] {
        let (code, _) = websocket(&address, &ip, &channels, &headers).await?;
        ensure!(code == want, "{who}'s WebSocket: {code}, not {want}");
    }

    // Browsers: the owner logs in through Keycloak and lands on JupyterLab.
    let mut browser = Browser::new()?;
    let (code, at, body) = browser
        .log_in(&format!("{base}lab"), &format!("{tag}-owner"))
        .await?;
    ensure!(
        code == 200 && at == format!("{base}lab"),
        "the owner after login: {code} {at} {}",
        &body[..body.len().min(300)]
    );
    let (code, _, body) = browser
        .send(reqwest::Method::GET, &format!("{base}api/status"), None)
        .await?;
    ensure!(
        code == 200 && body.contains("last_activity"),
        "the owner's session: {code}"
    );
    let session = browser.cookies(&reqwest::Url::parse(&console)?);
    ensure!(
        session.contains("berth_console_session="),
        "no session cookie: {session}"
    );
    // A session's WebSocket needs the console's own Origin.
    let (code, _) = websocket(
        &address,
        &ip,
        &channels,
        &[("Cookie", &session), ("Origin", "http://evil.example")],
    )
    .await?;
    ensure!(
        code == 403,
        "a cross-site WebSocket with the owner's cookie: {code}"
    );
    let (code, _) = websocket(
        &address,
        &ip,
        &channels,
        &[("Cookie", &session), ("Origin", &console)],
    )
    .await?;
    ensure!(
        code == 101,
        "the owner's WebSocket from the console's origin: {code}"
    );
    let (code, _, _) = browser
        .send(reqwest::Method::GET, &format!("{console}/logout"), None)
        .await?;
    ensure!(code == 302 || code == 200, "logout: {code}");
    let (code, _, _) = browser
        .send(reqwest::Method::GET, &format!("{base}api/status"), None)
        .await?;
    ensure!(code == 302 || code == 401, "after logout: {code}");

    // A realm user who is no member, and one who gave themselves the owner's e-mail.
    let mut outsider = Browser::new()?;
    let (code, _, body) = outsider
        .log_in(&format!("{base}lab"), &format!("{tag}-outsider"))
        .await?;
    ensure!(
        code == 403 && body.contains(&format!("{tag}-outsider@example.com")),
        "the outsider: {code}"
    );
    let mut impostor = Browser::new()?;
    let (code, _, body) = impostor
        .log_in(&format!("{base}lab"), &format!("{tag}-impostor"))
        .await?;
    ensure!(
        code == 403 && body.contains("not verified"),
        "the impostor: {code} {}",
        &body[..body.len().min(300)]
    );
    ensure!(
        !impostor
            .cookies(&reqwest::Url::parse(&console)?)
            .contains("berth_console_session"),
        "the impostor got a session"
    );

    // A Service Berth did not make, then what reaches the upstream: an echo in the place of a
    // notebook (a namespace that is not a project's, where the member may connect to Notebook
    // `hdr`; the operator writes nothing there).
    crate::support::namespace(client, &echo_ns, &[]).await?;
    place_on_real_node(client, &echo_ns).await?;
    let mut pod = shell_pod(
        "hdr-0",
        &env.image("jupyter")?,
        "",
        &[("app", "hdr")],
        "Always",
    );
    if let Some(c) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.command = Some(vec!["python3".into(), "-c".into(), ECHO.into()]);
    }
    Api::<Pod>::namespaced(client.clone(), &echo_ns)
        .create(&PostParams::default(), &pod)
        .await?;
    apply(
        &Api::<Service>::namespaced(client.clone(), &echo_ns),
        "hdr",
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hdr", "namespace": echo_ns},
                "spec": {"selector": {"app": "hdr"}, "ports": [{"name": "http", "port": 8888, "targetPort": 8888}]}}),
    )
    .await?;
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "get-hdr", "namespace": echo_ns},
        "rules": [{"apiGroups": ["berth.dev"], "resources": ["notebooks/connect"], "verbs": ["create"], "resourceNames": ["hdr"]}]});
    apply(
        &Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(client.clone(), &echo_ns),
        "get-hdr",
        &role,
    )
    .await?;
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "get-hdr", "namespace": echo_ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "get-hdr"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": ns}]});
    apply(
        &Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(client.clone(), &echo_ns),
        "get-hdr",
        &binding,
    )
    .await?;
    apply(
        &Api::<Notebook>::namespaced(client.clone(), &echo_ns),
        "hdr",
        &json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
                "metadata": {"name": "hdr", "namespace": echo_ns},
                "spec": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}, "home": {"size": "64Mi"}}}),
    )
    .await?;
    // Service `hdr` was made by hand (as an editor could, before or instead of the operator):
    // the console refuses to dial it.
    let refused = eventually(
        "the console refuses a Service that is not Berth's",
        Duration::from_secs(30),
        || {
            let get = &get;
            let url = format!("{console}/notebook/{echo_ns}/hdr/echo");
            let member = member.clone();
            async move {
                let (code, _, body) = get(url, Some(member)).await?;
                Ok((code != 403).then_some((code, body)))
            }
        },
    )
    .await?;
    ensure!(
        refused.0 == 502 && refused.1.contains("not Berth"),
        "a Service Berth did not make: {} {}",
        refused.0,
        refused.1
    );
    // With the Notebook's controller reference (what the operator's Service carries), it is.
    let uid = Api::<Notebook>::namespaced(client.clone(), &echo_ns)
        .get("hdr")
        .await?
        .metadata
        .uid
        .context("Notebook hdr has no uid")?;
    apply(
        &Api::<Service>::namespaced(client.clone(), &echo_ns),
        "hdr",
        &json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "hdr", "namespace": echo_ns, "ownerReferences": [{
                    "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook", "name": "hdr",
                    "uid": uid, "controller": true}]},
                "spec": {"selector": {"app": "hdr"}, "ports": [{"name": "http", "port": 8888, "targetPort": 8888}]}}),
    )
    .await?;
    let echoed: Value = eventually(
        "the echo through the console",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let url = format!("{console}/notebook/{echo_ns}/hdr/echo");
            let member = member.clone();
            async move {
                let response = http
                    .get(url)
                    .bearer_auth(&member)
                    .header(
                        "Cookie",
                        "berth_console_session=stolen; _xsrf=kept; berth_console_login=x",
                    )
                    .send()
                    .await?;
                if response.status().as_u16() != 200 {
                    return Ok(None);
                }
                Ok(response.json::<Value>().await.ok())
            }
        },
    )
    .await?;
    ensure!(
        echoed["authorization"].is_null() || echoed["authorization"] == json!([]),
        "Authorization reached the upstream: {echoed}"
    );
    ensure!(
        echoed["cookie"] == json!(["_xsrf=kept"]),
        "the console's cookies reached the upstream: {echoed}"
    );
    eprintln!("console test: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
