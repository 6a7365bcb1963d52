//! How a model is reached: its Service (every serving pod, stable and canary), and the route on
//! the platform's gateway (a Gateway API HTTPRoute, or an Istio VirtualService).
//!
//! **The canary's share.** Behind the one Service (cluster exposure), kube-proxy picks an endpoint
//! for each connection with equal odds, so the canary's share is its share of the ready replicas:
//! `c / (n + c)` for `n` stable and `c` canary replicas, where `c` is the whole number nearest
//! `n · w / (100 − w)` (at least 1). Routed exposure splits by the route's weights instead: both
//! tracks get a Service of their own and the route weighs them `100 − w : w`, per request (Istio)
//! or per connection or request as the gateway implements HTTPRoute weights.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use berth_api::mlmodel::{ExposeMode, RuntimeName};
use berth_reconcile::{Desired, Error};

use super::runtime::GRPC_PORT;
use super::{Built, CANARY, Ctx, Exposure, Plan, STABLE};
use crate::kinds;
use crate::mlmodel::host::Host;
use crate::names::kube::{model_canary, model_stable};

/// The canary's replicas for `stable` stable replicas and a share of `weight` percent: the whole
/// number nearest `stable · weight / (100 − weight)`, at least 1.
pub fn canary_replicas(stable: i32, weight: i32) -> i32 {
    let weight = weight.clamp(1, 99);
    let exact = f64::from(stable.max(1)) * f64::from(weight) / f64::from(100 - weight);
    // Bounded by 100 stable replicas and a weight of 99: at most 9,900.
    (exact.round() as i32).max(1)
}

/// The canary's share, in percent, of `stable` and `canary` replicas behind one Service.
pub fn replica_share(stable: i32, canary: i32) -> i32 {
    let total = stable.max(0) + canary.max(0);
    if total == 0 {
        return 0;
    }
    // At most 100.
    ((f64::from(canary.max(0)) * 100.0 / f64::from(total)).round()) as i32
}

/// A Service on port 80 to the pods' `http` port and, for the onnx runtime, on port 9000 to
/// their `grpc` port (never their `metrics` port).
fn service(ctx: &Ctx, name: &str, selector: BTreeMap<String, String>) -> Service {
    let mut ports = vec![ServicePort {
        name: Some("http".into()),
        port: 80,
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }];
    if ctx.model.spec.runtime.name == RuntimeName::Onnx {
        ports.push(ServicePort {
            name: Some("grpc".into()),
            port: GRPC_PORT,
            target_port: Some(IntOrString::String("grpc".into())),
            protocol: Some("TCP".into()),
            app_protocol: Some("kubernetes.io/h2c".into()),
            ..Default::default()
        });
    }
    Service {
        metadata: ctx.meta(name, BTreeMap::new()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Services and the route of the model, its URL and how it is exposed.
pub fn build(ctx: &Ctx, plan: &Plan, host: &Host) -> Result<Built, Error> {
    let name = ctx.name;
    let namespace = ctx.namespace;
    let mut children = Vec::new();
    // The Service exists from the start, so the model's address is stable across versions.
    children.push(Desired::new(
        &kinds::service(),
        &service(ctx, name, ctx.server_selector()),
    )?);

    let expose = ctx.model.spec.expose.clone().unwrap_or_default();
    let routed_canary = plan.canary.as_ref().filter(|_| {
        expose.mode != ExposeMode::Cluster
            && matches!(host, Host::Granted(_))
            && plan.serve.is_some()
    });
    // A route weighs the tracks' own Services.
    if routed_canary.is_some() {
        children.push(Desired::new(
            &kinds::service(),
            &service(ctx, &model_stable(name), ctx.track_selector(STABLE)),
        )?);
        children.push(Desired::new(
            &kinds::service(),
            &service(ctx, &model_canary(name), ctx.track_selector(CANARY)),
        )?);
    }
    let stable_replicas = if ctx.model.spec.autoscaling.is_some() {
        plan.autoscaled_replicas.unwrap_or(1)
    } else {
        ctx.model.spec.replicas.unwrap_or(1)
    };
    let mut canary_split = plan.canary.as_ref().map(|c| {
        (
            "replicas".to_owned(),
            replica_share(stable_replicas, c.replicas),
        )
    });

    let service_host = format!("{name}.{namespace}.svc.cluster.local");
    let cluster_url = format!("http://{service_host}");
    let host = match host {
        Host::Granted(h) => Some(h.clone()),
        Host::None => None,
        Host::Refused { reason, message } => {
            return Ok(Built {
                children,
                url: cluster_url,
                exposure: Exposure::NotPossible {
                    reason: reason.clone(),
                    message: message.clone(),
                },
                host: None,
                canary_split,
            });
        }
    };
    let weights = routed_canary.map(|c| (100 - c.weight, c.weight));
    let (exposure, url) = match expose.mode {
        ExposeMode::Cluster => (Exposure::Cluster, cluster_url),
        ExposeMode::Gateway => match (&ctx.settings.gateway, &ctx.env.http_route) {
            (_, None) => (
                Exposure::NotPossible {
                    reason: "GatewayAPINotInstalled".into(),
                    message: "expose.mode is gateway but the Gateway API (HTTPRoute) is not installed in this cluster; the model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (None, Some(_)) => (
                Exposure::NotPossible {
                    reason: "GatewayNotConfigured".into(),
                    message: "expose.mode is gateway but the platform settings name no Gateway (models.gateway); ask a platform admin. The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(gateway), Some(route)) => {
                let mut parent = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway.name, "namespace": gateway.namespace});
                if let Some(section) = &gateway.section_name {
                    parent["sectionName"] = json!(section);
                }
                let backends = match weights {
                    Some((stable, canary)) => json!([
                        {"name": model_stable(name), "port": 80, "weight": stable},
                        {"name": model_canary(name), "port": 80, "weight": canary},
                    ]),
                    None => json!([{"name": name, "port": 80}]),
                };
                let mut spec = json!({
                    "parentRefs": [parent],
                    "rules": [{"backendRefs": backends}],
                });
                if let Some(host) = &host {
                    spec["hostnames"] = json!([host]);
                }
                children.push(Desired::from_value(
                    route,
                    json!({"metadata": ctx.meta(name, BTreeMap::new()), "spec": spec}),
                )?);
                if let Some((_, canary)) = weights {
                    canary_split = Some(("HTTPRoute".into(), canary));
                }
                let url = host
                    .as_ref()
                    .map(|h| format!("http://{h}"))
                    .unwrap_or(cluster_url);
                let routed = Exposure::Routed {
                    kind: "HTTPRoute",
                    api_version: route.resource.api_version.clone(),
                };
                (routed, url)
            }
        },
        ExposeMode::Istio => match (&ctx.settings.istio_gateway, &ctx.env.virtual_service, &host) {
            (_, None, _) => (
                Exposure::NotPossible {
                    reason: "IstioNotInstalled".into(),
                    message: "expose.mode is istio but Istio (VirtualService) is not installed in this cluster; the model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (None, Some(_), _) => (
                Exposure::NotPossible {
                    reason: "IstioGatewayNotConfigured".into(),
                    message: "expose.mode is istio but the platform settings name no Istio gateway (models.istioGateway); ask a platform admin. The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(_), Some(_), None) => (
                Exposure::NotPossible {
                    reason: "NoHostname".into(),
                    message: "expose.mode is istio but there is no host name: set expose.hostname (the platform sets no model domain). The model is reachable inside the cluster only".into(),
                },
                cluster_url,
            ),
            (Some(gateway), Some(route), Some(host)) => {
                let fqdn = |service: &str| format!("{service}.{namespace}.svc.cluster.local");
                let destinations = match weights {
                    Some((stable, canary)) => json!([
                        {"destination": {"host": fqdn(&model_stable(name)), "port": {"number": 80}}, "weight": stable},
                        {"destination": {"host": fqdn(&model_canary(name)), "port": {"number": 80}}, "weight": canary},
                    ]),
                    None => json!([{"destination": {"host": service_host, "port": {"number": 80}}}]),
                };
                children.push(Desired::from_value(
                    route,
                    json!({
                        "metadata": ctx.meta(name, BTreeMap::new()),
                        "spec": {
                            "hosts": [host],
                            "gateways": [gateway],
                            "http": [{"route": destinations}],
                        },
                    }),
                )?);
                if let Some((_, canary)) = weights {
                    canary_split = Some(("VirtualService".into(), canary));
                }
                let routed = Exposure::Routed {
                    kind: "VirtualService",
                    api_version: route.resource.api_version.clone(),
                };
                (routed, format!("http://{host}"))
            }
        },
    };

    let host = host.filter(|_| expose.mode != ExposeMode::Cluster);
    Ok(Built {
        children,
        url,
        exposure,
        host,
        canary_split,
    })
}
