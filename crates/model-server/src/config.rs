//! Command-line flags and their environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::AuthArgs;

/// Serves one ONNX model over the KServe Open Inference Protocol (V2) REST API
/// (`berth-model-server --model-path M`), or checks callers in front of another runtime
/// (`berth-model-server proxy --listen A --upstream H:P`).
///
/// With --auth oidc or kubernetes, every request to the public port (health included) needs
/// `Authorization: Bearer <token>`: 401 with `WWW-Authenticate: Bearer realm="berth",
/// error="invalid_token"` without a valid one, 403 with `error="insufficient_scope"` when the
/// token is valid but not allowed. `/v2/health/live`, `/v2/health/ready` and `/metrics` are
/// served unauthenticated on --metrics-addr.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "berth-model-server",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Config,
}

/// What else the binary does than serve a model.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Checks each request like the server (--auth ...), strips `Authorization`, and forwards
    /// it to another runtime in the same pod, streaming bodies both ways; 502 if that runtime
    /// is down. `/metrics` and the proxy's own health are on --metrics-addr.
    Proxy(crate::proxy::ProxyConfig),
}

/// Serves one ONNX model over the KServe Open Inference Protocol (V2) REST API.
#[derive(Debug, Clone, Parser)]
#[command(name = "berth-model-server", version)]
pub struct Config {
    /// The model: an .onnx file, or a directory holding `model.onnx`.
    #[arg(long, env = "BERTH_MODEL_PATH", required = true)]
    pub model_path: Option<PathBuf>,

    /// The name the model is served under [default: the directory's name, or
    /// the file's name without .onnx].
    #[arg(long, env = "BERTH_MODEL_NAME")]
    pub model_name: Option<String>,

    /// The model's version. When set, it is the only version served at
    /// `/v2/models/{name}/versions/{version}` and is reported in responses.
    #[arg(long, env = "BERTH_MODEL_VERSION")]
    pub model_version: Option<String>,

    /// The address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "BERTH_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// The address the Prometheus metrics (`/metrics`) are served on, apart from the API, so
    /// that a Service or route to the API port does not expose them (port 0 picks a free port).
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// The address the Open Inference Protocol's gRPC API is served on (plain HTTP/2), beside
    /// the REST API, for the same model under the same limits [default: not served].
    #[arg(long, env = "BERTH_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// How many inference requests may wait for a free inference slot; one more is answered
    /// 429 Too Many Requests at once, before its body is read. Memory held by request bodies
    /// is thus at most inference threads × max-request-bytes (plus what parsing makes of them):
    /// a waiting request's body is not read until it holds a slot.
    #[arg(long, env = "BERTH_MAX_QUEUED_REQUESTS", default_value_t = 64)]
    pub max_queued_requests: usize,

    /// Seconds a request that holds an inference slot may take to send its body (408 after).
    #[arg(long, env = "BERTH_REQUEST_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub request_body_timeout_secs: u64,

    /// The largest request body accepted, in bytes.
    #[arg(long, env = "BERTH_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// The bytes that request bodies and their decoded input tensors may hold at once
    /// [default: inference threads × max-request-bytes × 5, at most 3/4 of the cgroup's
    /// memory.max]. A request is charged its body plus the most its tensors can decode to
    /// before its body is read, and waits until that much is free; one that could never fit
    /// is answered 413. The model's working memory and the response are not charged.
    #[arg(long, env = "BERTH_MEMORY_BUDGET_BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub memory_budget_bytes: Option<u64>,

    /// How many inference requests run at once [default: the number of CPUs].
    #[arg(long, env = "BERTH_INFERENCE_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub inference_threads: Option<u16>,

    /// Seconds to wait for in-flight requests after SIGTERM/SIGINT before
    /// giving up (and exiting non-zero).
    #[arg(long, env = "BERTH_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    #[command(flatten, next_help_heading = "Authentication of the public port")]
    pub auth: AuthArgs,
}

impl Config {
    /// The number of inference requests to run at once.
    pub fn inference_concurrency(&self) -> usize {
        match self.inference_threads {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Config {
    /// The memory budget: the flag, or its default (see [`crate::budget::default_budget`]).
    pub fn memory_budget_bytes(&self) -> u64 {
        self.memory_budget_bytes.unwrap_or_else(|| {
            crate::budget::default_budget(
                self.inference_concurrency(),
                self.max_request_bytes,
                crate::budget::cgroup_memory_limit(),
            )
        })
    }
}

/// Checks a model name or version: it becomes one URL path segment.
pub fn check_path_segment(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} must not be empty"));
    }
    if value.contains('/') || value.chars().any(char::is_control) {
        return Err(format!(
            "the {what} '{value}' must not contain '/' or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::try_parse_from(["berth-model-server", "--model-path", "/m"]).unwrap();
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(c.max_queued_requests, 64);
        assert_eq!(c.model_name, None);
        assert_eq!(c.model_version, None);
        assert!(c.inference_concurrency() >= 1);
    }

    #[test]
    fn model_path_is_required() {
        assert!(Config::try_parse_from(["berth-model-server"]).is_err());
        assert!(Cli::try_parse_from(["berth-model-server"]).is_err());
    }

    #[test]
    fn serve_or_proxy() {
        let cli =
            Cli::try_parse_from(["berth-model-server", "--model-path", "/m", "--auth", "oidc"])
                .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.auth.auth, crate::auth::AuthMode::Oidc);
        let cli = Cli::try_parse_from([
            "berth-model-server",
            "proxy",
            "--listen",
            "127.0.0.1:8080",
            "--upstream",
            "127.0.0.1:8000",
            "--auth",
            "kubernetes",
        ])
        .unwrap();
        let Some(Command::Proxy(p)) = cli.command else {
            panic!("not the proxy")
        };
        assert_eq!(p.upstream, "127.0.0.1:8000");
        assert_eq!(p.auth.auth, crate::auth::AuthMode::Kubernetes);
        // The proxy needs an upstream; a model path means nothing to it.
        assert!(
            Cli::try_parse_from(["berth-model-server", "proxy", "--listen", "0.0.0.0:1"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "berth-model-server",
                "--model-path",
                "/m",
                "proxy",
                "--upstream",
                "h:1"
            ])
            .is_err()
        );
    }

    #[test]
    fn path_segments() {
        assert!(check_path_segment("model name", "iris").is_ok());
        assert!(check_path_segment("model name", "").is_err());
        assert!(check_path_segment("model name", "a/b").is_err());
    }
}
