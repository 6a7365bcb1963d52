use std::path::PathBuf;

/// Why a service could not be built, started or set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building {service} with {script} failed: {message}")]
    Build {
        service: &'static str,
        script: PathBuf,
        message: String,
    },
    #[error(transparent)]
    Process(#[from] berth_testenv::Error),
    #[error("{name} exited with {status} before it was ready; the end of its log ({log}):\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("timed out after {seconds} s waiting for {what}; the end of its log ({log}):\n{tail}")]
    Timeout {
        what: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what}: unexpected answer: {message}")]
    Answer { what: String, message: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn http(what: impl Into<String>, source: reqwest::Error) -> Self {
        Error::Http {
            what: what.into(),
            source,
        }
    }
}
