//! OCI images built without a container engine, the same bytes from the same inputs.
//!
//! The pieces follow the OCI image specification v1.1 (<https://github.com/opencontainers/image-spec>):
//!
//! - [`layer::Tree`]: the files of one layer, written as a tar archive with sorted entries, fixed
//!   modification times and fixed owners, then compressed with gzip at a level fixed by its size
//!   ([`layer::gzip_level`]) and without a timestamp ([`layer::Layer`]: its `diff_id` is the
//!   SHA-256 of the tar, its digest the SHA-256 of the gzip stream);
//! - [`image::Image`]: the image configuration (platform, user, entrypoint, environment, labels,
//!   the layers' `diff_id`s) and the manifest that names the config and the layers;
//! - [`archive`]: an OCI image-layout tar archive of one image (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`, plus Docker's `manifest.json`), and a reader that checks every digest.
//!
//! The JSON documents are `oci-spec` types, serialised with their object keys sorted (see
//! [`json::canonical`]), so a document's digest depends on its content only.

pub mod archive;
pub mod image;
pub mod json;
pub mod layer;

use sha2::{Digest as _, Sha256};

/// What can go wrong while building or reading an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an input file or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An OCI document could not be built from its parts.
    #[error("building an OCI document: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// A document could not be serialised or parsed.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// The input is not a valid image or layer (a bad path, a digest that does not match, a
    /// missing blob).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The OCI digest of `bytes`: `sha256:` and 64 lowercase hex digits.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A content-addressed blob: its bytes, their digest and media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>` of [`Blob::bytes`].
    pub digest: String,
    /// The OCI media type, such as `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: oci_spec::image::MediaType,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: oci_spec::image::MediaType, bytes: Vec<u8>) -> Self {
        Self {
            digest: sha256_digest(&bytes),
            media_type,
            bytes,
        }
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// An OCI descriptor of this blob.
    pub fn descriptor(&self) -> Result<oci_spec::image::Descriptor> {
        let digest: oci_spec::image::Digest = self
            .digest
            .parse()
            .map_err(|e| Error::Invalid(format!("digest {}: {e}", self.digest)))?;
        Ok(oci_spec::image::DescriptorBuilder::default()
            .media_type(self.media_type.clone())
            .digest(digest)
            .size(self.size())
            .build()?)
    }

    /// The hex part of the digest (the blob's file name under `blobs/sha256/`).
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
