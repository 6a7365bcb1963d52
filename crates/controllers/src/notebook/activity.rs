//! Idle detection from Jupyter's own account of its activity, read through the API server's pod
//! proxy (`GET /api/v1/namespaces/<ns>/pods/<pod>:8888/proxy/<path>`, the `pods/proxy`
//! subresource; no Service or NetworkPolicy opening is needed, and the operator holds no token of
//! the notebook).
//!
//! Jupyter Server's REST API (https://jupyter-server.readthedocs.io/en/latest/developers/rest-api.html):
//! - `GET <base>api/status`: `{"started", "last_activity", "connections", "kernels"}`, where
//!   `last_activity` is the latest of the API's, every kernel's and every terminal's activity.
//!   The status handler itself does not count as activity;
//! - `GET <base>api/kernels?no_track_activity=1`: `[{"id", "execution_state", "last_activity",
//!   …}]`, read for `execution_state: "busy"` (a cell computing without output does not move
//!   `last_activity`, and is never culled);
//! - `GET <base>api/terminals?no_track_activity=1`: `[{"name", "last_activity"}]` (404, taken as
//!   no terminals, where the jupyter_server_terminals extension is not enabled).
//!
//! `no_track_activity` keeps Berth's own reads from counting as activity (jupyter_server
//! `APIHandler.update_api_activity`).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde::Deserialize;

/// What Jupyter said about its activity.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// The latest activity of the API, the kernels and the terminals.
    pub last_activity: Timestamp,
    /// Kernels computing now.
    pub busy_kernels: usize,
    pub kernels: usize,
    pub terminals: usize,
}

#[derive(Deserialize)]
struct Status {
    last_activity: String,
}

#[derive(Deserialize)]
struct Kernel {
    #[serde(default)]
    execution_state: String,
    last_activity: Option<String>,
}

#[derive(Deserialize)]
struct Terminal {
    last_activity: Option<String>,
}

/// Reads the answers of `api/status`, `api/kernels` and `api/terminals`.
pub fn parse(status: &str, kernels: &str, terminals: &str) -> Result<Activity, String> {
    let status: Status = serde_json::from_str(status).map_err(|e| format!("api/status: {e}"))?;
    let kernels: Vec<Kernel> =
        serde_json::from_str(kernels).map_err(|e| format!("api/kernels: {e}"))?;
    let terminals: Vec<Terminal> =
        serde_json::from_str(terminals).map_err(|e| format!("api/terminals: {e}"))?;
    let time = |text: &str| -> Result<Timestamp, String> {
        text.parse()
            .map_err(|e| format!("last_activity {text:?}: {e}"))
    };
    let mut last_activity = time(&status.last_activity)?;
    for text in kernels
        .iter()
        .filter_map(|k| k.last_activity.as_deref())
        .chain(terminals.iter().filter_map(|t| t.last_activity.as_deref()))
    {
        last_activity = last_activity.max(time(text)?);
    }
    Ok(Activity {
        last_activity,
        busy_kernels: kernels
            .iter()
            .filter(|k| k.execution_state == "busy")
            .count(),
        kernels: kernels.len(),
        terminals: terminals.len(),
    })
}

/// Whether a notebook with this activity has been idle longer than `timeout` at `now`: no kernel
/// busy, and nothing since `last_activity + timeout`.
pub fn is_idle(activity: &Activity, now: Timestamp, timeout: Duration) -> bool {
    if activity.busy_kernels > 0 {
        return false;
    }
    let idle = now.duration_since(activity.last_activity);
    idle.as_secs() >= 0 && idle.unsigned_abs() >= timeout
}

/// How often a running notebook's activity is read: a quarter of its timeout, between 5 s and
/// 5 min, so a notebook is culled at most a quarter late.
pub fn poll_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_secs(5), Duration::from_secs(300))
}

/// Reads the activity of the notebook's pod through the API server. `path` is the notebook's base
/// URL (`/notebook/<ns>/<name>/`).
pub async fn read(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: i32,
    path: &str,
) -> Result<Activity, String> {
    // `absent`: what a 404 means (a server without the terminals extension has no terminals).
    let get = async |what: &str, absent: Option<&str>| -> Result<String, String> {
        let uri = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}{what}");
        let request = http::Request::get(&uri)
            .body(Vec::new())
            .map_err(|e| format!("{what}: {e}"))?;
        match client.request_text(request).await {
            Ok(text) => Ok(text),
            Err(kube::Error::Api(status)) if status.code == 404 && absent.is_some() => {
                Ok(absent.unwrap_or_default().to_owned())
            }
            Err(e) => Err(format!("{what}: {e}")),
        }
    };
    let status = get("api/status", None).await?;
    let kernels = get("api/kernels?no_track_activity=1", None).await?;
    let terminals = get("api/terminals?no_track_activity=1", Some("[]")).await?;
    parse(&status, &kernels, &terminals)
}
