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

/// What the operator logs (a warning) when a notebook's activity cannot be read; benchmarks count it.
pub const READ_FAILED: &str = "could not read the notebook's activity";

/// When each running notebook's activity was last read, so that a reconcile for any other reason
/// (a pod's status, a template's change, a resync) does not read it again within the poll
/// interval, and a notebook whose reads fail is tried once per interval, not once per event. The
/// interval is the notebook's current one: a shorter idle timeout makes the next read due sooner.
/// Keyed by `<namespace>/<name>`; an entry goes when the notebook is seen stopped or not running.
#[derive(Default)]
pub struct Schedule {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Schedule {
    /// None when a read is due at `now` (which is then noted as the last read), or how long
    /// until it is: `interval` after the last read.
    pub fn take(&self, key: &str, now: std::time::Instant, interval: Duration) -> Option<Duration> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(key).map(|at| *at + interval) {
            Some(due) if due > now => Some(due - now),
            _ => {
                last.insert(key.to_owned(), now);
                None
            }
        }
    }

    /// Forgets a notebook (stopped, not running): its next read is due as soon as it runs.
    pub fn forget(&self, key: &str) {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The most of one activity answer the operator reads: Jupyter's `/api/status`, `/api/kernels`
/// and `/api/terminals` are a few hundred bytes per kernel. The notebook's server is the tenant's
/// code (its image, its config on the home volume), so its answers are bounded here: a huge or
/// endless body cannot grow the operator's memory, which every team's Projects depend on.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// How long one activity request may take, answer included: a server that answers slowly cannot
/// hold the operator's workers.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the activity of the notebook's pod through the API server. `path` is the notebook's base
/// URL (`/notebook/<ns>/<name>/`). Each answer is read to at most [`MAX_ANSWER_BYTES`] within
/// [`ANSWER_TIMEOUT`]; a longer or slower one is an error (the activity is then unknown, and the
/// notebook is not culled).
pub async fn read(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: i32,
    path: &str,
) -> Result<Activity, String> {
    let status = get(
        client,
        namespace,
        pod,
        port,
        &format!("{path}api/status"),
        None,
    )
    .await?;
    let kernels = get(
        client,
        namespace,
        pod,
        port,
        &format!("{path}api/kernels?no_track_activity=1"),
        None,
    )
    .await?;
    let terminals = get(
        client,
        namespace,
        pod,
        port,
        &format!("{path}api/terminals?no_track_activity=1"),
        Some("[]"),
    )
    .await?;
    parse(&status, &kernels, &terminals)
}

/// One GET of `what` (a path with its query, from '/') on `port` of `pod` through the API
/// server's pod proxy, read to at most [`MAX_ANSWER_BYTES`] within [`ANSWER_TIMEOUT`]. `absent`
/// is what a 404 means, if it means something (a server without the terminals extension has no
/// terminals).
pub async fn get(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: i32,
    what: &str,
    absent: Option<&str>,
) -> Result<String, String> {
    let uri = format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{what}");
    let request = http::Request::get(&uri)
        .body(kube::client::Body::from(Vec::new()))
        .map_err(|e| format!("{what}: {e}"))?;
    let answer = async {
        let response = client
            .send(request)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND
            && let Some(absent) = absent
        {
            return Ok(absent.to_owned());
        }
        let body = bounded(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{what}: HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        String::from_utf8(body).map_err(|_| format!("{what}: the answer is not UTF-8"))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .map_err(|_| format!("{what}: no answer within {} s", ANSWER_TIMEOUT.as_secs()))?
}

/// The whole of `body`, or an error as soon as it passes `limit` bytes (nothing past the limit is
/// kept).
async fn bounded<B>(body: B, limit: usize) -> Result<Vec<u8>, String>
where
    B: http_body::Body,
    B::Data: AsRef<[u8]>,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt;
    let mut body = std::pin::pin!(body);
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let data = data.as_ref();
            if read.len() + data.len() > limit {
                return Err(format!("the answer is longer than {limit} bytes"));
            }
            read.extend_from_slice(data);
        }
    }
    Ok(read)
}

#[cfg(test)]
mod bounded_tests {
    use super::*;
    use http_body::Frame;
    use http_body_util::StreamBody;

    static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];

    #[tokio::test]
    async fn an_endless_answer_is_refused_once_it_passes_the_limit() {
        let frames = futures::stream::repeat_with(|| {
            Ok::<_, std::convert::Infallible>(Frame::data(&CHUNK[..]))
        });
        let refused = bounded(StreamBody::new(frames), MAX_ANSWER_BYTES).await;
        assert_eq!(
            refused,
            Err(format!(
                "the answer is longer than {MAX_ANSWER_BYTES} bytes"
            ))
        );
    }

    #[tokio::test]
    async fn an_answer_within_the_limit_is_read_whole() {
        let frames = futures::stream::iter([
            Ok::<_, std::convert::Infallible>(Frame::data(&b"[{\"id\": "[..])),
            Ok(Frame::data(&b"\"k\"}]"[..])),
        ]);
        let read = bounded(StreamBody::new(frames), 16).await;
        assert_eq!(read.as_deref(), Ok(&b"[{\"id\": \"k\"}]"[..]));
        let frames = futures::stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(
            &b"12345678901234567"[..],
        ))]);
        assert!(bounded(StreamBody::new(frames), 16).await.is_err());
    }
}

#[cfg(test)]
mod schedule_tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_read_is_due_once_per_interval_and_again_after_a_stop() {
        let schedule = Schedule::default();
        let interval = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(schedule.take("a/lab", t0, interval), None);
        // Other events in the interval do not read again; they learn how long to wait.
        assert_eq!(
            schedule.take("a/lab", t0 + Duration::from_secs(20), interval),
            Some(Duration::from_secs(40))
        );
        // Another notebook has its own turn.
        assert_eq!(schedule.take("b/lab", t0, interval), None);
        assert_eq!(schedule.take("a/lab", t0 + interval, interval), None);
        schedule.forget("a/lab");
        assert_eq!(
            schedule.take("a/lab", t0 + interval + Duration::from_secs(1), interval),
            None
        );
    }

    #[test]
    fn a_shorter_interval_makes_the_next_read_due_sooner() {
        let schedule = Schedule::default();
        let t0 = Instant::now();
        // Read under a 1 h idle timeout (a read every 5 min)…
        assert_eq!(schedule.take("a/lab", t0, Duration::from_secs(300)), None);
        // …then the timeout becomes 10 s (a read every 5 s): due 5 s after the last read, not
        // when the 5 min would have ended.
        let short = Duration::from_secs(5);
        assert_eq!(
            schedule.take("a/lab", t0 + Duration::from_secs(2), short),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            schedule.take("a/lab", t0 + Duration::from_secs(6), short),
            None
        );
    }
}
