//! Gateway API for real (issue 13, item 7): Traefik (tools/traefik, its Kubernetes Gateway
//! provider) runs on the host beside the real node as the implementation of a GatewayClass; an
//! MLModel exposed with `mode: gateway` gets Berth's HTTPRoute, which Traefik accepts and
//! resolves (its own status on the route), and a prediction sent to Traefik's listener with the
//! model's host name is answered by the model on the real node.
//!
//! Then a hostile tenant, the owner of project B (impersonated), tries to take project A's model
//! traffic through the gateway: an HTTPRoute of its own (refused: project roles grant no route
//! writes), an MLModel asking for A's host name (refused by Berth: `HostnameConflict`, no route),
//! and, where a platform has granted tenants HTTPRoutes, routes attached to the models' Gateway,
//! one to A's Service across namespaces and one on A's host with a more specific match, which the
//! Gateway API's precedence would let win (both refused at admission: the models' Gateway is
//! Berth's, `berth-model-gateway-routes`), and A's host on a route to another Gateway or on an
//! Ingress (refused: host names under the models' domain are Berth's, `berth-model-route-hosts`).
//! Through all of it, A's host is answered by A's model.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::mlmodel::MLModel;
use berth_testenv::realnode::NODE_IP;
use berth_testenv::traefik::{CONTROLLER_NAME, Traefik};

use crate::models::{infer, make_models, project_s3, until_ready_on};
use crate::platform::platform;
use crate::support::{Env, env, eventually, namespace, place_on_real_node, unique};

/// The Gateway's namespace, the Gateway and its class.
const GATEWAY_NAMESPACE: &str = "berth-traefik";
const GATEWAY: &str = "models";
const GATEWAY_CLASS: &str = "berth-traefik";
/// The domain models get host names under.
const MODEL_DOMAIN: &str = "models.berth.test";
/// Words of the refusal by `berth-model-route-hosts` and `berth-model-ingress-hosts`.
const HOSTS_ARE_BERTHS: &str = "where Berth names its models' hosts";
/// Words of the refusal by `berth-model-gateway-routes`.
const GATEWAY_IS_BERTHS: &str = "serves Berth's models";
/// The owners of the victim's project and of the hostile tenant's.
const OWNER_A: &str = "alice@example.com";
const OWNER_B: &str = "mallory@example.com";
const MANAGER: &str = "berth-realnode-tests";

fn gateway_api(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        kind,
    ))
}

/// The Gateway API's CRDs (standard channel, tools/gateway-api), established. The platform
/// installs them before it starts the operator, which discovers the kinds it may write once.
pub(crate) async fn install_gateway_api_crds(client: &Client) -> Result<()> {
    Ok(berth_testenv::manifests::install_gateway_api_crds(client).await?)
}

/// A Project owned by `owner`, Ready with its bucket.
async fn project_owned_by(env: &Env, name: &str, owner: &str) -> Result<()> {
    crate::support::ready_project(&env.client, name, json!({"owners": [owner]})).await
}

/// The route's status for Traefik's parent: `(type, status, reason)` of each condition, once
/// Traefik has written one for the current generation.
async fn traefik_conditions(
    routes: &Api<DynamicObject>,
    name: &str,
) -> Result<Option<Vec<(String, String, String)>>> {
    let route = routes.get(name).await?;
    let generation = route.metadata.generation.unwrap_or_default();
    let parents = route.data["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(parent) = parents
        .iter()
        .find(|p| p["controllerName"] == json!(CONTROLLER_NAME))
    else {
        return Ok(None);
    };
    let conditions: Vec<(String, String, String)> = parent["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|c| c["observedGeneration"].as_i64() == Some(generation))
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("type"), s("status"), s("reason"))
        })
        .collect();
    Ok((!conditions.is_empty()).then_some(conditions))
}

fn has(conditions: &[(String, String, String)], type_: &str, status: &str) -> bool {
    conditions.iter().any(|(t, s, _)| t == type_ && s == status)
}

/// An HTTP client that sends every request for `host` to Traefik's entrypoint.
fn through(traefik: &Traefik, host: &str) -> Result<reqwest::Client> {
    let socket: SocketAddr = traefik.entrypoint().parse()?;
    Ok(reqwest::Client::builder()
        .no_proxy()
        .resolve(host, socket)
        .timeout(Duration::from_secs(5))
        .build()?)
}

#[tokio::test]
async fn a_model_is_served_through_traefik_and_another_tenant_cannot_take_its_traffic() -> Result<()>
{
    let env = env().await?;
    platform(&env).await?;
    let started = Instant::now();
    let client = &env.client;
    let models_dir = make_models()?;

    // Traefik on the node's address, serving a GatewayClass of its own and the models' Gateway.
    let kubeconfig = env.shared.cluster.kubeconfig_path().to_path_buf();
    let traefik =
        tokio::task::spawn_blocking(move || Traefik::start(&kubeconfig, NODE_IP)).await??;
    namespace(client, GATEWAY_NAMESPACE, &[]).await?;
    berth_testenv::manifests::apply_text(
        client,
        &format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: {GATEWAY_CLASS}
spec:
  controllerName: {CONTROLLER_NAME}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {GATEWAY}
  namespace: {GATEWAY_NAMESPACE}
spec:
  gatewayClassName: {GATEWAY_CLASS}
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
      hostname: "*.{MODEL_DOMAIN}"
      allowedRoutes:
        namespaces:
          from: All
"#,
            port = traefik.port()
        ),
        "Traefik's GatewayClass and the models' Gateway",
    )
    .await?;
    let settings: Api<berth_api::PlatformSettings> = Api::all(client.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"models": {
                "gateway": {"name": GATEWAY, "namespace": GATEWAY_NAMESPACE},
                "domain": MODEL_DOMAIN,
            }}})),
        )
        .await?;

    // Project A's model, exposed through the gateway.
    let a = unique("rn-gw-a");
    let b = unique("rn-gw-b");
    project_owned_by(&env, &a, OWNER_A).await?;
    project_owned_by(&env, &b, OWNER_B).await?;
    place_on_real_node(client, &a).await?;
    let (s3, bucket) = project_s3(client, &a).await?;
    s3.put_object()
        .bucket(&bucket)
        .key("scorer/model.onnx")
        .body(std::fs::read(models_dir.join("mlp/model.onnx"))?.into())
        .send()
        .await
        .context("uploading the model")?;
    let uri = format!("s3://{bucket}/scorer/model.onnx");
    let models: Api<MLModel> = Api::namespaced(client.clone(), &a);
    let model: MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
        "metadata": {"name": "scorer", "namespace": a},
        "spec": {
            "source": {"uri": uri},
            "runtime": {"name": "onnx"},
            "expose": {"mode": "gateway"},
            // Calls without a token: authentication is tested in auth.rs.
            "auth": {"mode": "none"},
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
            "storage": {"size": "64Mi"},
        },
    }))?;
    models
        .patch(
            "scorer",
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&model),
        )
        .await?;
    until_ready_on(&models, "scorer", &uri, None).await?;
    let host_a = format!("scorer.{a}.{MODEL_DOMAIN}");

    // Traefik accepts Berth's route and resolves its backend: Traefik's own status on it.
    let routes_a: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &a, &gateway_api("HTTPRoute"));
    let accepted = eventually(
        "Traefik's status on the model's HTTPRoute",
        Duration::from_secs(60),
        || async {
            Ok(traefik_conditions(&routes_a, "scorer")
                .await?
                .filter(|c| has(c, "Accepted", "True") && has(c, "ResolvedRefs", "True")))
        },
    )
    .await
    .with_context(|| format!("Traefik's log:\n{}", traefik.log_tail(4000)))?;
    eprintln!("HTTPRoute {a}/scorer, by {CONTROLLER_NAME}: {accepted:?}");

    // A prediction through Traefik's listener, by the model's host name.
    let url_a = format!("http://{host_a}:{}/v2/models/scorer/infer", traefik.port());
    let to_a = through(&traefik, &host_a)?;
    let version = eventually(
        "a prediction through Traefik",
        Duration::from_secs(30),
        || async { Ok(infer(&to_a, &url_a).await.ok()) },
    )
    .await
    .with_context(|| format!("Traefik's log:\n{}", traefik.log_tail(4000)))?;
    eprintln!(
        "{host_a} answered through Traefik ({}) by version {version}, {:.1} s into the test",
        traefik.entrypoint(),
        started.elapsed().as_secs_f64()
    );

    // The hostile tenant: B's owner.
    let mallory = env.shared.cluster.impersonate(OWNER_B, &[]).await?;
    let routes_b_as_mallory: Api<DynamicObject> =
        Api::namespaced_with(mallory.clone(), &b, &gateway_api("HTTPRoute"));
    let capture = |name: &str, hostname: &str, backend: Value| -> Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": b},
            "spec": {
                "parentRefs": [{"name": GATEWAY, "namespace": GATEWAY_NAMESPACE}],
                "hostnames": [hostname],
                "rules": [{"backendRefs": [backend]}],
            },
        }))?)
    };

    // 1. An HTTPRoute of B's own, taking A's host: the project roles grant no route writes.
    let taken = capture(
        "capture-host",
        &host_a,
        json!({"name": "scorer", "namespace": a, "port": 80}),
    )?;
    match routes_b_as_mallory
        .create(&Default::default(), &taken)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 => {
            eprintln!("B's owner creating an HTTPRoute: refused ({})", e.message);
        }
        other => bail!("B's owner creating an HTTPRoute with A's host: {other:?}"),
    }

    // 2. An MLModel of B's asking for A's host name: Berth keeps the host for its first claimant.
    let thief: MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
        "metadata": {"name": "thief", "namespace": b},
        "spec": {
            "source": {"uri": "s3://nowhere/thief/model.onnx"},
            "runtime": {"name": "onnx"},
            "expose": {"mode": "gateway", "hostname": host_a},
        },
    }))?;
    let models_b_as_mallory: Api<MLModel> = Api::namespaced(mallory.clone(), &b);
    match models_b_as_mallory
        .patch("thief", &PatchParams::apply(MANAGER), &Patch::Apply(&thief))
        .await
    {
        Err(kube::Error::Api(e)) => {
            eprintln!(
                "B's model asking for A's host: refused at admission ({})",
                e.message
            );
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {
            let exposed = eventually(
                "B's model told why it has no host",
                Duration::from_secs(60),
                || async {
                    let status = models_b_as_mallory
                        .get("thief")
                        .await?
                        .status
                        .unwrap_or_default();
                    Ok(status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == "Exposed" && c.status == "False")
                        .cloned())
                },
            )
            .await?;
            ensure!(
                exposed.reason == "HostnameConflict",
                "B's model asking for A's host: Exposed=False {} ({})",
                exposed.reason,
                exposed.message
            );
            eprintln!(
                "B's model asking for A's host: Exposed=False {}: {}",
                exposed.reason, exposed.message
            );
        }
    }
    let routes_b: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &b, &gateway_api("HTTPRoute"));
    let with_host_a: Vec<String> = routes_b
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|r| {
            r.data["spec"]["hostnames"]
                .as_array()
                .is_some_and(|h| h.iter().any(|h| h == &json!(host_a)))
        })
        .map(ResourceExt::name_any)
        .collect();
    ensure!(
        with_host_a.is_empty(),
        "routes in {b} with A's host: {with_host_a:?}"
    );

    // 3. A platform that lets tenants write HTTPRoutes: B's owner routes a host of B's to A's
    //    Service across namespaces, without a ReferenceGrant from A. Traefik refuses the reference.
    berth_testenv::manifests::apply_text(
        client,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: tenant-routes
  namespace: {b}
rules:
  - apiGroups: [gateway.networking.k8s.io]
    resources: [httproutes]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: tenant-routes
  namespace: {b}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: tenant-routes
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: {OWNER_B}
"#
        ),
        "HTTPRoutes granted to B's owner",
    )
    .await?;
    // Two routes a tenant with route writes could use to take A's traffic: one to A's Service
    // across namespaces, and one on A's own host with a more specific match (the Gateway API lets
    // the most specific match win, so Traefik would send A's predictions to B's backend). Both
    // attach to the models' Gateway, which admission keeps to Berth (berth-model-gateway-routes).
    let host_b = format!("loot.{b}.{MODEL_DOMAIN}");
    let across = capture(
        "capture-backend",
        &host_b,
        json!({"name": "scorer", "namespace": a, "port": 80}),
    )?;
    let mut specific = capture(
        "capture-path",
        &host_a,
        json!({"name": "scorer", "port": 80}),
    )?;
    specific.data["spec"]["rules"][0]["matches"] =
        json!([{"path": {"type": "Exact", "value": "/v2/models/scorer/infer"}}]);
    for route in [&across, &specific] {
        let name = route.name_any();
        let message = eventually(
            "B's owner's route refused by admission (once RBAC lets the request through)",
            Duration::from_secs(10),
            || async {
                match routes_b_as_mallory.create(&Default::default(), route).await {
                    Ok(_) => bail!("B's owner attached {name} to the models' Gateway"),
                    // Both policies refuse these; either may answer first.
                    Err(kube::Error::Api(e))
                        if e.code == 403
                            && (e.message.contains(GATEWAY_IS_BERTHS)
                                || e.message.contains(HOSTS_ARE_BERTHS)) =>
                    {
                        Ok(Some(e.message))
                    }
                    Err(kube::Error::Api(e)) if e.code == 403 => Ok(None),
                    Err(e) => Err(e.into()),
                }
            },
        )
        .await?;
        eprintln!("B's owner attaching {name} to the models' Gateway: refused ({message})");
    }
    // The same host elsewhere: on a route to a Gateway of B's own, and on an Ingress (the project
    // roles include Kubernetes' edit role, which writes Ingresses). A proxy serving those and the
    // models' Gateway on one port would let the more specific path win, so host names under the
    // models' domain are Berth's (berth-model-route-hosts, berth-model-ingress-hosts).
    let mut elsewhere = capture(
        "capture-elsewhere",
        &host_a,
        json!({"name": "scorer", "port": 80}),
    )?;
    elsewhere.data["spec"]["parentRefs"] = json!([{"name": "tenant-gateway", "namespace": b}]);
    match routes_b_as_mallory
        .create(&Default::default(), &elsewhere)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains(HOSTS_ARE_BERTHS) => {
            eprintln!(
                "B's owner naming A's host on a route to another Gateway: refused ({})",
                e.message
            );
        }
        other => bail!("B's owner naming A's host on a route to another Gateway: {other:?}"),
    }
    let ingresses_b_as_mallory: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(mallory.clone(), &b);
    let ingress = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "capture-ingress", "namespace": b},
        "spec": {"rules": [{"host": host_a, "http": {"paths": [{
            "path": "/v2/models/scorer/infer", "pathType": "Exact",
            "backend": {"service": {"name": "scorer", "port": {"number": 80}}},
        }]}}]},
    }))?;
    match ingresses_b_as_mallory
        .create(&Default::default(), &ingress)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains(HOSTS_ARE_BERTHS) => {
            eprintln!(
                "B's owner naming A's host on an Ingress: refused ({})",
                e.message
            );
        }
        other => bail!("B's owner naming A's host on an Ingress: {other:?}"),
    }
    let in_b = routes_b.list(&ListParams::default()).await?.items;
    ensure!(
        in_b.is_empty(),
        "routes in {b}: {:?}",
        in_b.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
    );

    // A's host is still answered by A's model, every time.
    for _ in 0..20 {
        let by = infer(&to_a, &url_a)
            .await
            .context("A's model through Traefik, after B's attempts")?;
        ensure!(by == version, "A's host answered by version {by}");
    }
    eprintln!(
        "gateway test done in {:.1} s after the platform was up",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
