//! `charts/berth/values.schema.json`: every value the chart reads, described, and nothing else.
//! Objects are closed (`additionalProperties: false`), so a misspelt key is refused by
//! `helm install`, `helm upgrade`, `helm template` and `helm lint` instead of being ignored.
//! `settings` is the PlatformSettings spec schema of `deploy/crds`, closed the same way.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

/// A closed object of described properties.
fn object(description: &str, properties: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": false,
        "properties": properties,
    })
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn integer(description: &str, minimum: i64) -> Value {
    json!({"type": "integer", "minimum": minimum, "description": description})
}

/// Free-form Kubernetes content the chart passes through as it is (a pod's affinity, say).
fn passthrough(kind: &str, description: &str) -> Value {
    json!({"type": kind, "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}, "description": description})
}

/// `auto` (when the cluster serves the Prometheus Operator's kind), `true` or `false`.
fn auto_or_bool(description: &str) -> Value {
    json!({"description": description, "oneOf": [{"type": "boolean"}, {"const": "auto"}]})
}

fn image(what: &str, repository: &str) -> Value {
    object(
        &format!("The image of {what}."),
        json!({
            "repository": string(&format!("Where it is pulled from, without tag or digest (default {repository}); set it for a private registry.")),
            "tag": string("Its tag; by default the chart's appVersion."),
            "digest": json!({
                "type": "string",
                "pattern": "^(sha256:[0-9a-f]{64})?$",
                "description": "Its manifest digest (sha256:<64 hex>), as `cargo xtask images` writes in images.json. When set, the reference is repository:tag@digest and the node runs exactly that image.",
            }),
        }),
    )
}

fn credentials(provider: &str, keys: &str) -> Value {
    object(
        &format!(
            "The {provider} provider's admin credentials (settings.{provider}), by reference: the Berth operator reads them from a Secret in the release namespace and nowhere else."
        ),
        json!({
            "existingSecret": string(&format!("The name of a Secret in the release namespace that holds them ({keys}); made by you, sops, External Secrets or Vault. The chart sets settings.{provider}.adminSecretRef to it.")),
            "create": json!({
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": format!("Quick start only: key/value pairs ({keys}) for a Secret the chart makes, berth-{provider}-admin. The values end up in the Helm release (a Secret of Helm's) too; use existingSecret for anything that matters."),
            }),
        }),
    )
}

/// Closes every object schema that lists its properties, as the API server's strict field
/// validation would refuse unknown fields instead of pruning them.
fn close(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.contains_key("properties") && !object.contains_key("additionalProperties") {
                object.insert("additionalProperties".into(), json!(false));
            }
            for (key, value) in object.iter_mut() {
                // `enum` and `default` hold data, not schemas.
                if key != "enum" && key != "default" {
                    close(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close),
        _ => {}
    }
}

/// The PlatformSettings spec schema from the CRD in `deploy/crds`.
fn settings_schema(crd: &str) -> Result<Value> {
    let crd: serde_yaml::Value =
        serde_yaml::from_str(crd).context("parsing the PlatformSettings CRD")?;
    let crd = serde_json::to_value(crd)?;
    let mut spec = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .cloned()
        .context("the PlatformSettings CRD has no spec schema")?;
    close(&mut spec);
    // The chart fills each provider's adminSecretRef in from `credentials`, so values need not.
    for provider in ["storage", "identity", "registry"] {
        if let Some(Value::Array(required)) =
            spec.pointer_mut(&format!("/properties/{provider}/required"))
        {
            required.retain(|r| r != "adminSecretRef");
        }
    }
    if let Some(object) = spec.as_object_mut() {
        object.insert(
            "description".into(),
            json!("The spec of the PlatformSettings `default` the chart makes (every Project follows it): the schema of the PlatformSettings CRD, closed. Its defaults are deploy/settings/default.yaml. models.fetchImage and models.runtimeImages.onnx default to `images`, and each provider's adminSecretRef to `credentials`."),
        );
    }
    Ok(spec)
}

/// The whole schema, given the text of the PlatformSettings CRD.
pub fn values_schema(platform_settings_crd: &str) -> Result<String> {
    let properties = json!({
        "images": object("Berth's images. A reference is repository:tag, or repository:tag@digest when a digest is set.", json!({
            "operator": image("the Berth operator (the Deployment)", "berth.dev/operator"),
            "modelServer": image("Berth's ONNX model server (settings.models.runtimeImages.onnx)", "berth.dev/model-server"),
            "modelFetch": image("the model download Job (settings.models.fetchImage)", "berth.dev/model-fetch"),
            "jupyter": image("Berth's Jupyter image, offered by the default NotebookTemplate", "berth.dev/jupyter"),
            "pullPolicy": json!({"type": "string", "enum": ["Always", "IfNotPresent", "Never"], "description": "The operator's imagePullPolicy."}),
        })),
        "imagePullSecrets": json!({
            "type": "array",
            "description": "Secrets in the release namespace for pulling the operator's image from a private registry ([{name: ...}]).",
            "items": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {"name": {"type": "string", "description": "The Secret's name."}}},
        }),
        "operator": object("The operator's Deployment.", json!({
            "replicas": integer("How many replicas run; one leads (the Lease berth-operator in the release namespace), the others wait to take over.", 1),
            "concurrency": integer("How many Projects, and how many MLModels, are reconciled at once (--concurrency).", 1),
            "logLevel": string("The log filter (RUST_LOG), such as info or berth_controllers=debug,info."),
            "leaderElection": object("Leader election timing, in seconds.", json!({
                "leaseDurationSeconds": integer("How long a standby waits, after it last saw the lease change, before taking it over.", 2),
                "renewDeadlineSeconds": integer("How long the leader may go without renewing before it stops (less than leaseDurationSeconds).", 1),
                "retryPeriodSeconds": integer("Seconds between renewals, and between a standby's looks at the lease.", 1),
            })),
            "resources": passthrough("object", "The container's resources (requests and limits), measured on the local cluster: see docs/install.md."),
            "nodeSelector": string_map("The pods' nodeSelector."),
            "tolerations": passthrough("array", "The pods' tolerations."),
            "affinity": passthrough("object", "The pods' affinity. Empty: the replicas prefer different nodes."),
            "topologySpreadConstraints": passthrough("array", "The pods' topologySpreadConstraints."),
            "priorityClassName": string("The pods' priorityClassName."),
            "podAnnotations": string_map("Extra annotations on the pods."),
            "podLabels": string_map("Extra labels on the pods."),
            "terminationGracePeriodSeconds": integer("How long a stopping pod has to hand the lease over.", 1),
        })),
        "podDisruptionBudget": object("The PodDisruptionBudget of the operator's pods.", json!({
            "enabled": boolean("Whether the chart makes it."),
            "minAvailable": integer("How many replicas a voluntary disruption (a node drain) must leave running.", 0),
        })),
        "networkPolicy": object("A NetworkPolicy for the operator's own pods: ingress to its health and metrics port only, egress to DNS, the API server and the providers only.", json!({
            "enabled": boolean("Whether the chart makes it."),
            "apiServer": object("Where the API server is. A NetworkPolicy sees the address a connection goes to after the Service's translation, so name the API server's own addresses (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes) and the kubernetes Service's.", json!({
                "cidrs": json!({"type": "array", "minItems": 1, "items": {"type": "string"}, "description": "Address ranges (CIDR) of the API server; at least one (an egress rule without addresses would open every address)."}),
                "ports": json!({"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}, "description": "Its ports; empty: any."}),
            })),
            "dns": object("Egress to the cluster DNS, for providers named by host name.", json!({
                "enabled": boolean("Whether DNS may be reached."),
                "namespace": string("The DNS pods' namespace."),
                "podLabels": string_map("The DNS pods' labels."),
            })),
            "providers": passthrough("array", "Egress rules (NetworkPolicyEgressRule: to, ports) for the providers' admin APIs: object storage, identity, registry. Empty: none may be reached."),
            "metricsFrom": passthrough("array", "Peers (NetworkPolicyPeer) that may reach the health and metrics port besides the namespaces in settings.monitoringNamespaces. Kubelet probes come from the node."),
        })),
        "metrics": object("The operator's /metrics (and /healthz, /readyz) port, and what reads it.", json!({
            "port": integer("The port the operator serves /healthz, /readyz and /metrics on.", 1),
            "service": object("A Service in front of the metrics port (berth-operator-metrics).", json!({
                "enabled": boolean("Whether the chart makes it."),
            })),
            "serviceMonitor": object("A Prometheus Operator ServiceMonitor for the metrics Service.", json!({
                "enabled": auto_or_bool("auto: when the cluster serves monitoring.coreos.com/v1 ServiceMonitor; true or false otherwise."),
                "interval": string("How often Prometheus scrapes, such as 30s."),
                "labels": string_map("Extra labels, such as the one your Prometheus selects ServiceMonitors by."),
            })),
            "prometheusRule": object("A Prometheus Operator PrometheusRule with Berth's alerts.", json!({
                "enabled": auto_or_bool("auto: when the cluster serves monitoring.coreos.com/v1 PrometheusRule; true or false otherwise."),
                "labels": string_map("Extra labels, such as the one your Prometheus selects rules by."),
            })),
            "dashboard": object("A Grafana dashboard in a ConfigMap, for Grafana's dashboard sidecar.", json!({
                "enabled": boolean("Whether the chart makes it."),
                "namespace": string("Where the ConfigMap goes; empty: the release namespace."),
                "labels": string_map("Labels the sidecar finds dashboards by."),
            })),
        })),
        "notebookTemplate": object("The default NotebookTemplate `jupyter` (docs/notebooks.md): Berth's Jupyter image, three CPU bundles and one GPU bundle, open to every project.", json!({
            "enabled": boolean("Whether the chart makes it (annotated as the default template)."),
            "gpuResource": string("The extended resource of the GPU bundle, such as nvidia.com/gpu or amd.com/gpu."),
        })),
        "console": object("The console's Deployment and Service (berth-console): the authenticated proxy to notebooks (docs/console.md).", json!({
            "enabled": boolean("Whether the chart deploys the console."),
            "publicURL": string("The URL browsers reach the console at; its origin is the only one WebSockets may come from, and https makes its cookies Secure. Required when enabled."),
            "logLevel": string("The log filter (RUST_LOG)."),
            "notebookDomain": string("Serve each notebook at an origin of its own, <label>.<notebookDomain> (the scheme and port of publicURL; needs a wildcard DNS record and certificate *.<notebookDomain> routed to the console). Empty: every notebook shares the console's origin, where a notebook's scripts can act as its visitors on the console's pages; set it in production (docs/console.md)."),
            "actAs": json!({"type": "string", "enum": ["impersonate", "token"], "description": "How the console's pages act as the user: impersonate (the console's ServiceAccount may impersonate users and groups: deploy/rbac/31-console-impersonate.yaml is installed) or token (the user's own ID token, to an API server that trusts the identity provider; no impersonation power)."}),
            "oidc": object("Browser login through the identity provider (OIDC code flow with PKCE).", json!({
                "issuer": string("The issuer URL (Keycloak: <url>/realms/<realm>); empty: bearer tokens only."),
                "clientId": string("The console's client id at the issuer."),
                "clientSecret": object("The client's secret, by reference.", json!({
                    "existingSecret": string("A Secret in the release namespace with the key clientSecret."),
                })),
                "usernamePrefix": string("Put before the verified e-mail to make the Kubernetes user name (as the API server's OIDC username prefix)."),
                "groupsPrefix": string("Put before each group of the groups claim."),
            })),
            "service": object("The console's Service.", json!({
                "port": integer("The Service's port.", 1),
            })),
            "resources": passthrough("object", "The container's resources."),
            "nodeSelector": string_map("The pod's nodeSelector."),
            "tolerations": passthrough("array", "The pod's tolerations."),
        })),
        "credentials": object("The providers' admin credentials, by reference.", json!({
            "storage": credentials("storage", "garage: adminToken; minio, aws: accessKeyId, secretAccessKey"),
            "identity": credentials("identity", "keycloak: username, password"),
            "registry": credentials("registry", "harbor: username, password"),
        })),
        "settings": settings_schema(platform_settings_crd)?,
    });
    let mut schema = Map::new();
    schema.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    schema.insert("title".into(), json!("Values of the Berth chart"));
    schema.insert("type".into(), json!("object"));
    schema.insert("additionalProperties".into(), json!(false));
    schema.insert("properties".into(), properties);
    let mut text = serde_json::to_string_pretty(&Value::Object(schema))?;
    text.push('\n');
    Ok(text)
}

/// Every property path in `schema` that has no description (the chart describes every value).
#[cfg(test)]
fn undescribed(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let here = format!("{path}.{name}");
        if property.get("description").is_none() {
            out.push(here.clone());
        }
        undescribed(property, &here, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> String {
        std::fs::read_to_string(
            crate::repo_root().join("deploy/crds/platformsettings.berth.dev.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn the_top_and_every_listed_object_are_closed() {
        let schema: Value = serde_json::from_str(&values_schema(&crd()).unwrap()).unwrap();
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(
            schema.pointer("/properties/settings/properties/storage/additionalProperties"),
            Some(&json!(false))
        );
        assert_eq!(
            schema.pointer("/properties/operator/additionalProperties"),
            Some(&json!(false))
        );
    }

    #[test]
    fn provider_credentials_may_come_from_credentials() {
        let schema: Value = serde_json::from_str(&values_schema(&crd()).unwrap()).unwrap();
        for provider in ["storage", "identity", "registry"] {
            let required = schema
                .pointer(&format!(
                    "/properties/settings/properties/{provider}/required"
                ))
                .cloned()
                .unwrap_or(json!([]));
            assert!(
                !required.to_string().contains("adminSecretRef"),
                "{provider}: {required}"
            );
        }
    }

    #[test]
    fn every_value_is_described() {
        let schema: Value = serde_json::from_str(&values_schema(&crd()).unwrap()).unwrap();
        let mut missing = Vec::new();
        undescribed(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "values without a description: {missing:?}"
        );
    }
}
