//! Activity probes for IDEs other than JupyterLab (`spec.activityProbe`):
//!
//! - `exec`: a command run in the notebook's container through the API server (`pods/exec`, a
//!   WebSocket), whose standard output is the last activity time: RFC 3339 (`2026-11-30T14:00:00Z`)
//!   or Unix seconds (`1795960800`);
//! - `http`: a GET on the container's port through the API server's pod proxy (`pods/proxy`, as
//!   Jupyter's API is read), whose JSON answer has `lastActivity` (RFC 3339 or Unix seconds) or
//!   `lastHeartbeat` (Unix milliseconds: code-server's `/healthz`,
//!   https://github.com/coder/code-server/blob/main/src/node/heart.ts).
//!
//! The container runs the tenant's code, so its answers are hostile until read: at most
//! [`MAX_EXEC_OUTPUT`] bytes of standard output (the rest is never read: kube's exec streams
//! through a 1 KiB pipe, so a command that prints forever blocks, and is dropped at the timeout),
//! at most `activity::MAX_ANSWER_BYTES` of an HTTP answer, each within its timeout; a time in the
//! future counts as now. An unreadable answer is an unknown activity: the notebook is not culled.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, AttachParams};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use berth_api::notebook::ActivityProbe;

use super::activity::{self, Activity};

/// The most of an exec probe's standard output that is read: a time is a few dozen bytes.
pub const MAX_EXEC_OUTPUT: usize = 4 * 1024;

/// An exec probe's timeout when it sets none.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// How a notebook's activity is read.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Probe {
    /// Jupyter's own API (`activity::read`).
    #[default]
    Jupyter,
    /// A command in the notebook's container.
    Exec {
        command: Vec<String>,
        timeout: Duration,
    },
    /// A GET of `path` on the container's `port`.
    Http { port: i32, path: String },
}

/// Whether an HTTP probe's path stays a path on the pod: '/'-separated parts of unreserved
/// characters, no `.` or `..` part, no query, no percent-encoding. The path is appended to the
/// API server's pod-proxy URL under the operator's credentials: nothing in it may climb out of
/// that URL.
pub fn http_path_allowed(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 256
        && path[1..].split('/').all(|part| {
            part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        })
}

/// The probe the spec asks for (Jupyter when it asks for none), or why it cannot be used.
pub fn from_spec(spec: Option<&ActivityProbe>) -> Result<Probe, String> {
    let Some(spec) = spec else {
        return Ok(Probe::Jupyter);
    };
    let chosen = [
        spec.jupyter.is_some(),
        spec.exec.is_some(),
        spec.http.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if chosen != 1 {
        return Err("activityProbe is exactly one of jupyter, exec or http".into());
    }
    if let Some(http) = &spec.http
        && (!http_path_allowed(&http.path) || !(1..=65535).contains(&http.port))
    {
        return Err(format!(
            "activityProbe.http: {:?} on port {} is not a plain path on a port of the pod",
            http.path, http.port
        ));
    }
    if let Some(exec) = &spec.exec
        && (exec.command.is_empty() || exec.command.len() > 16)
    {
        return Err("activityProbe.exec.command has 1 to 16 parts".into());
    }
    Ok(from_valid_spec(spec))
}

fn from_valid_spec(spec: &ActivityProbe) -> Probe {
    if let Some(exec) = &spec.exec {
        let seconds = exec.timeout_seconds.unwrap_or(5).clamp(1, 30);
        return Probe::Exec {
            command: exec.command.clone(),
            timeout: Duration::from_secs(u64::try_from(seconds).unwrap_or(5)),
        };
    }
    if let Some(http) = &spec.http {
        return Probe::Http {
            port: http.port,
            path: http.path.clone(),
        };
    }
    Probe::Jupyter
}

/// A time as a probe prints it: RFC 3339, or whole Unix seconds. Surrounding white space is
/// ignored; anything else is an error.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the probe printed nothing".into());
    }
    if text.len() > 64 {
        return Err("the probe printed more than a time".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a Unix time"))?;
        return Timestamp::from_second(seconds).map_err(|e| format!("{text:?}: {e}"));
    }
    text.parse::<Timestamp>().map_err(|e| {
        format!(
            "{:?} is neither RFC 3339 nor Unix seconds: {e}",
            text.chars().take(64).collect::<String>()
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpAnswer {
    last_activity: Option<serde_json::Value>,
    last_heartbeat: Option<serde_json::Value>,
}

/// The last activity in an HTTP probe's JSON answer: `lastActivity` (RFC 3339 string, or Unix
/// seconds), else `lastHeartbeat` (Unix milliseconds, code-server).
pub fn parse_http(body: &str) -> Result<Timestamp, String> {
    let answer: HttpAnswer = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not the JSON expected: {e}"))?;
    match (answer.last_activity, answer.last_heartbeat) {
        (Some(serde_json::Value::String(s)), _) => parse_time(&s),
        (Some(serde_json::Value::Number(n)), _) => n
            .as_i64()
            .ok_or_else(|| format!("lastActivity {n} is not whole Unix seconds"))
            .and_then(|s| Timestamp::from_second(s).map_err(|e| e.to_string())),
        (_, Some(serde_json::Value::Number(n))) => n
            .as_i64()
            .ok_or_else(|| format!("lastHeartbeat {n} is not whole Unix milliseconds"))
            .and_then(|ms| Timestamp::from_millisecond(ms).map_err(|e| e.to_string())),
        _ => Err("the answer has neither lastActivity nor lastHeartbeat".into()),
    }
}

/// An activity of one time: a probe knows no kernels or terminals. A time in the future counts
/// as `now`, so no answer moves the last activity past the moment it was read.
pub fn activity_at(time: Timestamp, now: Timestamp) -> Activity {
    Activity {
        last_activity: time.min(now),
        busy_kernels: 0,
        kernels: 0,
        terminals: 0,
    }
}

/// Runs `command` in `container` of `pod` and reads its standard output, bounded in size and
/// time.
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Result<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(false)
        .max_stdout_buf_size(MAX_EXEC_OUTPUT);
    let run = async {
        let mut process = pods
            .exec(pod, command.to_vec(), &params)
            .await
            .map_err(|e| format!("exec: {e}"))?;
        let stdout = process
            .stdout()
            .ok_or_else(|| "exec: no standard output".to_owned())?;
        let mut output = Vec::new();
        let limit = u64::try_from(MAX_EXEC_OUTPUT + 1).unwrap_or(u64::MAX);
        stdout
            .take(limit)
            .read_to_end(&mut output)
            .await
            .map_err(|e| format!("exec: reading its output: {e}"))?;
        if output.len() > MAX_EXEC_OUTPUT {
            process.abort();
            return Err(format!(
                "exec: the command printed more than {MAX_EXEC_OUTPUT} bytes"
            ));
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        if let Some(status) = status
            && status.status.as_deref() != Some("Success")
        {
            return Err(format!(
                "exec: the command failed: {}",
                status
                    .message
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
        }
        String::from_utf8(output).map_err(|_| "exec: the output is not UTF-8".to_owned())
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("exec: no answer within {} s", timeout.as_secs()))?
}

/// Reads the activity of a notebook's pod with `probe`.
#[allow(clippy::too_many_arguments)]
pub async fn read(
    client: &Client,
    namespace: &str,
    pod: &str,
    probe: &Probe,
    jupyter_port: i32,
    base: &str,
    container: &str,
    now: Timestamp,
) -> Result<Activity, String> {
    match probe {
        // Its three GETs share one deadline: a server answering each just inside the per-answer
        // bound cannot hold a reconcile worker three times as long.
        Probe::Jupyter => tokio::time::timeout(
            activity::ANSWER_TIMEOUT,
            activity::read(client, namespace, pod, jupyter_port, base),
        )
        .await
        .map_err(|_| {
            format!(
                "Jupyter's activity API: no whole answer within {} s",
                activity::ANSWER_TIMEOUT.as_secs()
            )
        })?,
        Probe::Exec { command, timeout } => {
            let output = exec(client, namespace, pod, container, command, *timeout).await?;
            Ok(activity_at(parse_time(&output)?, now))
        }
        Probe::Http { port, path } => {
            let body = activity::get(client, namespace, pod, *port, path, None).await?;
            Ok(activity_at(parse_http(&body)?, now))
        }
    }
}
