//! Error type and the process exit codes it maps to.

use std::error::Error as StdError;
use std::time::Duration;

/// Exit codes of `berth-model-fetch` (documented in the README and `--help`).
pub mod exit {
    /// The artifact was downloaded (and verified / unpacked when asked).
    pub const OK: u8 = 0;
    /// Unexpected internal failure.
    pub const INTERNAL: u8 = 1;
    /// Bad command-line arguments.
    pub const BAD_ARGS: u8 = 2;
    /// The source (object, prefix, bucket or URL) does not exist.
    pub const NOT_FOUND: u8 = 3;
    /// The server refused access (missing or wrong credentials, no permission).
    pub const ACCESS_DENIED: u8 = 4;
    /// The downloaded bytes do not match `--sha256`.
    pub const CHECKSUM_MISMATCH: u8 = 5;
    /// `--timeout` ran out before the download finished.
    pub const DEADLINE_EXCEEDED: u8 = 6;
    /// Network failure or server error.
    pub const NETWORK: u8 = 7;
    /// The archive could not be unpacked (corrupt, unsafe paths, symlinks).
    pub const UNPACK: u8 = 8;
    /// Local disk failure (cannot create, write or rename files).
    pub const DISK: u8 = 9;
    /// The archive unpacks beyond a limit (`--max-unpacked-bytes`, `--max-entries`,
    /// `--max-ratio`): a tar or zip bomb, or a model larger than its volume should hold.
    pub const UNPACK_LIMIT: u8 = 10;
    /// A redirect led from https to http: the rest of the download would travel unprotected.
    pub const INSECURE_REDIRECT: u8 = 11;
}

/// Every failure of a fetch; `Display` is the one-line message shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad arguments: {0}")]
    BadArgs(String),
    /// The source cannot be downloaded as it is (a key that is both a file and a folder).
    #[error("invalid source: {0}")]
    InvalidSource(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error(
        "checksum mismatch for {what}: expected sha256 {expected}, got {actual}; the partial download was deleted"
    )]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "deadline exceeded: the download did not finish within {}; run again to resume",
        humantime::format_duration(*.0)
    )]
    Deadline(Duration),
    #[error("network error: {0}")]
    Network(String),
    #[error("unpack error: {0}")]
    Unpack(String),
    #[error("unpack limit: {0}")]
    UnpackLimit(String),
    #[error("insecure redirect: {0}")]
    InsecureRedirect(String),
    #[error("disk error: {0}")]
    Disk(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl FetchError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::BadArgs(_) | FetchError::InvalidSource(_) => exit::BAD_ARGS,
            FetchError::NotFound(_) => exit::NOT_FOUND,
            FetchError::AccessDenied(_) => exit::ACCESS_DENIED,
            FetchError::Checksum { .. } => exit::CHECKSUM_MISMATCH,
            FetchError::Deadline(_) => exit::DEADLINE_EXCEEDED,
            FetchError::Network(_) => exit::NETWORK,
            FetchError::Unpack(_) => exit::UNPACK,
            FetchError::UnpackLimit(_) => exit::UNPACK_LIMIT,
            FetchError::InsecureRedirect(_) => exit::INSECURE_REDIRECT,
            FetchError::Disk(_) => exit::DISK,
            FetchError::Internal(_) => exit::INTERNAL,
        }
    }

    /// Whether trying again (resuming) may help.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, FetchError::Network(_))
    }

    pub(crate) fn disk(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        FetchError::Disk(format!("{what}: {err}"))
    }
}

/// Renders an error and its sources on one line.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        let s = match s.split_once(": https://docs.rs/") {
            Some((head, _)) => head.to_string(),
            None => s,
        };
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out.replace('\n', " ")
}
