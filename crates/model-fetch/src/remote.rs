//! A single remote object (HTTP URL or S3 object) that can be opened at an offset.

use crate::error::FetchError;
use bytes::Bytes;
use futures::stream::BoxStream;

pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, FetchError>>;

/// The answer to an open request.
pub(crate) enum Opened {
    /// The body starts at the requested offset (ranged response).
    Resumed {
        body: ByteStream,
        total: Option<u64>,
    },
    /// The body is the whole object (the server ignored or refused the range).
    Full {
        body: ByteStream,
        total: Option<u64>,
        validator: Option<String>,
    },
    /// The requested offset is at or past the end of the object (HTTP 416).
    RangeNotSatisfiable,
    /// The object changed since the partial download started (S3 412 on If-Match).
    Changed,
}

pub(crate) enum Remote {
    Http(crate::http::HttpObject),
    S3(crate::s3::S3Object),
}

impl Remote {
    /// Opens the object; `offset > 0` asks for the bytes from `offset` on,
    /// guarded by `validator` (ETag / Last-Modified of the partial download).
    pub(crate) async fn open(
        &self,
        offset: u64,
        validator: Option<&str>,
    ) -> Result<Opened, FetchError> {
        match self {
            Remote::Http(h) => h.open(offset, validator).await,
            Remote::S3(s) => s.open(offset, validator).await,
        }
    }

    pub(crate) fn display(&self) -> String {
        match self {
            Remote::Http(h) => h.display(),
            Remote::S3(s) => s.display(),
        }
    }
}
