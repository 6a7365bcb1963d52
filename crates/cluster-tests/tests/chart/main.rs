//! Berth installed, upgraded and uninstalled with its Helm charts (charts/berth-crds,
//! charts/berth), with the pinned Helm (tools/helm), on a cluster of its own with the real node:
//! the operator runs as two pods from its image, pinned by digest.
//!
//! - `render`: `helm lint`, `helm template` (the same output twice), the values schema refusing
//!   unknown keys, credentials by reference only; no cluster.
//! - `lifecycle`: a server-side dry-run of the rendered charts, install (two replicas, one
//!   leader, a Project Ready), upgrade to a changed chart (a new CRD field and a new setting:
//!   Projects untouched, no tenant pod restarted), uninstall (every Project, namespace, bucket
//!   and the settings stay), a second install that carries on, and the leader's pod deleted (the
//!   standby takes over and reconciles).
//!   Within it, `observability` (the metrics the dashboard and alerts read are the operator's,
//!   and the operator's NetworkPolicy lets only the monitoring namespaces scrape) and `gateway`
//!   (with the Gateway API's CRDs from tools/gateway-api, an MLModel exposed with `gateway` gets
//!   an HTTPRoute the API admits and that attaches to the configured Gateway).

mod gateway;
mod lifecycle;
mod observability;
mod render;
mod support;
