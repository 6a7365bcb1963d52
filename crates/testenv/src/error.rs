use std::path::PathBuf;

/// Why the test environment could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the control plane with tools/build.sh failed: {0}")]
    Build(String),
    #[error("{name} exited with {status} before it was ready; the end of its log ({log}):\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("generating certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{origin}: {message}")]
    Manifest { origin: String, message: String },
    #[error("waiting for {what}: {message}")]
    Wait { what: String, message: String },
    #[error("the shared control plane failed to start: {0}")]
    SharedStartFailed(String),
    #[error("the real node: {0}")]
    RealNode(String),
    #[error("helm {command} failed: {stderr}")]
    Helm { command: String, stderr: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
