//! Gateway API for real: with the Gateway API's CRDs installed (tools/gateway-api, standard
//! channel), an MLModel exposed with `gateway` gets an HTTPRoute that the API server admits (the
//! CRDs' schema and CEL rules) and that attaches to the Gateway the settings name, by the Gateway
//! API's attachment rules: its parentRef is that Gateway; a listener of the Gateway takes it (an
//! HTTP listener whose allowedRoutes admit the route's namespace and kind, and whose hostname
//! intersects the route's); its backend is the model's Service and port.
//!
//! No Gateway implementation runs here, so no controller writes the route's status and no
//! request goes through a gateway: docs/install.md ("Gateway API") says why.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{GATEWAY, GATEWAY_NAMESPACE, MANAGER, MODEL_DOMAIN, eventually};

fn gateway_api(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        kind,
    ))
}

/// Whether `host` falls under the listener hostname `pattern` (`*.` is a suffix match of one or
/// more labels; no pattern takes every host), as the Gateway API defines hostname matching.
fn host_matches(pattern: Option<&str>, host: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => match p.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => p == host,
        },
    }
}

/// Whether the listener's allowedRoutes admit an HTTPRoute from `namespace` (labels `labels`).
fn listener_admits(
    listener: &Value,
    route_namespace: &str,
    gateway_namespace: &str,
    labels: &Value,
) -> bool {
    let allowed = &listener["allowedRoutes"];
    let from = allowed["namespaces"]["from"].as_str().unwrap_or("Same");
    let namespace_ok = match from {
        "All" => true,
        "Same" => route_namespace == gateway_namespace,
        "Selector" => allowed["namespaces"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| &labels[k] == v)),
        _ => false,
    };
    let kinds = allowed["kinds"].as_array();
    let kind_ok = kinds.is_none_or(|k| {
        k.iter().any(|k| {
            k["kind"] == json!("HTTPRoute")
                && k["group"].as_str().unwrap_or("gateway.networking.k8s.io")
                    == "gateway.networking.k8s.io"
        })
    });
    let protocol_ok = matches!(listener["protocol"].as_str(), Some("HTTP" | "HTTPS"));
    namespace_ok && kind_ok && protocol_ok
}

/// An MLModel exposed with `gateway` in project namespace `namespace`: its HTTPRoute is admitted
/// and attaches to the configured Gateway.
pub async fn a_gateway_model_gets_an_attached_route(
    client: &Client,
    namespace: &str,
) -> Result<()> {
    let models: Api<berth_api::MLModel> = Api::namespaced(client.clone(), namespace);
    let name = "routed";
    let model: berth_api::MLModel = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"uri": "https://models.invalid/routed/model.onnx"},
            "runtime": {"name": "onnx"},
            "expose": {"mode": "gateway"},
        },
    }))?;
    models
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&model),
        )
        .await?;
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &gateway_api("HTTPRoute"));
    let route = eventually("the model's HTTPRoute", Duration::from_secs(60), || async {
        routes.get_opt(name).await.map_err(Into::into)
    })
    .await?;
    let spec = &route.data["spec"];
    eprintln!("    HTTPRoute {namespace}/{name}: {spec}");

    // Its parent is the Gateway the settings name, and that Gateway exists.
    let parents = spec["parentRefs"].as_array().context("no parentRefs")?;
    ensure!(parents.len() == 1, "parentRefs: {parents:?}");
    let parent = &parents[0];
    ensure!(
        parent["group"]
            .as_str()
            .unwrap_or("gateway.networking.k8s.io")
            == "gateway.networking.k8s.io"
    );
    ensure!(parent["kind"].as_str().unwrap_or("Gateway") == "Gateway");
    ensure!(parent["name"] == json!(GATEWAY) && parent["namespace"] == json!(GATEWAY_NAMESPACE));
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), GATEWAY_NAMESPACE, &gateway_api("Gateway"));
    let gateway = gateways.get(GATEWAY).await?;

    // A listener takes it: kind, namespace and hostname.
    let hostnames: Vec<&str> = spec["hostnames"]
        .as_array()
        .context("the route names no host")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        hostnames == [format!("{name}.{namespace}.{MODEL_DOMAIN}").as_str()],
        "hostnames {hostnames:?}"
    );
    let labels = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await?
        .metadata
        .labels
        .map(|l| json!(l))
        .unwrap_or_default();
    let listeners = gateway.data["spec"]["listeners"]
        .as_array()
        .context("no listeners")?;
    let section = parent["sectionName"].as_str();
    let attached = listeners.iter().any(|l| {
        section.is_none_or(|s| l["name"] == json!(s))
            && listener_admits(l, namespace, GATEWAY_NAMESPACE, &labels)
            && hostnames
                .iter()
                .any(|h| host_matches(l["hostname"].as_str(), h))
    });
    ensure!(
        attached,
        "no listener of {GATEWAY_NAMESPACE}/{GATEWAY} takes the route"
    );

    // Its backend is the model's Service, on a port the Service has.
    let backends = spec["rules"][0]["backendRefs"]
        .as_array()
        .context("no backendRefs")?;
    ensure!(backends.len() == 1);
    let backend = &backends[0];
    ensure!(backend["kind"].as_str().unwrap_or("Service") == "Service");
    ensure!(
        backend["namespace"].is_null(),
        "a cross-namespace backend needs a ReferenceGrant"
    );
    let service = Api::<Service>::namespaced(client.clone(), namespace)
        .get(backend["name"].as_str().context("no backend name")?)
        .await?;
    let port = backend["port"].as_i64().context("no backend port")?;
    ensure!(
        service
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default()
            .iter()
            .any(|p| i64::from(p.port) == port),
        "the Service has no port {port}"
    );
    // The model says where it is reached.
    let url = eventually("the model's URL", Duration::from_secs(30), || async {
        let m = models.get(name).await?;
        Ok(m.status.and_then(|s| s.url))
    })
    .await?;
    ensure!(url == format!("http://{}", hostnames[0]), "url {url}");
    Ok(())
}

#[test]
fn hostnames_match_as_the_gateway_api_says() {
    assert!(host_matches(
        Some("*.models.berth.test"),
        "a.b.models.berth.test"
    ));
    assert!(!host_matches(
        Some("*.models.berth.test"),
        "models.berth.test"
    ));
    assert!(host_matches(Some("a.test"), "a.test"));
    assert!(host_matches(None, "anything"));
}
