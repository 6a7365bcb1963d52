//! Cached JSON text kept compressed: raw DEFLATE (RFC 1951, zlib-rs through flate2) against a
//! preset dictionary (RFC 1950's FDICT, here without the zlib header) shared by every object of
//! one kind.
//!
//! The children of one kind differ little from each other (the same keys, labels, owner kind and
//! rules; other names and uids), so the first object a cache stores of a kind is a good
//! dictionary for every later one: at 1,000 Projects the ~22,000 cached children's JSON is most of
//! the operator's heap (heaptrack, docs/benchmarks.md), and a child compressed against a sibling
//! takes a fraction of its text. Reading one back costs an inflate of a few hundred bytes.

use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The longest dictionary kept: DEFLATE looks back at most 32 KiB, and a child is far smaller.
const MAX_DICTIONARY: usize = 16 * 1024;

/// One object's JSON text, compressed against its kind's dictionary, or as it was when that
/// failed (never expected; the text is kept rather than lost).
#[derive(Debug)]
pub(crate) enum Packed {
    Plain(Box<str>),
    Deflated {
        data: Box<[u8]>,
        /// The text's length in bytes.
        len: u32,
        dictionary: Arc<[u8]>,
    },
}

impl Packed {
    /// The JSON text. `None` only if the compressed form cannot be inflated (a bug; the caller
    /// treats the object as unknown, so it is written again rather than trusted).
    pub(crate) fn text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Packed::Plain(text) => Some(std::borrow::Cow::Borrowed(text)),
            Packed::Deflated {
                data,
                len,
                dictionary,
            } => {
                let mut inflate = Decompress::new(false);
                inflate.set_dictionary(dictionary).ok()?;
                let mut out = Vec::with_capacity(*len as usize);
                let status = inflate
                    .decompress_vec(data, &mut out, FlushDecompress::Finish)
                    .ok()?;
                if status != Status::StreamEnd || out.len() != *len as usize {
                    return None;
                }
                String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
            }
        }
    }

    /// Bytes held for the text (not counting the shared dictionary).
    pub(crate) fn size(&self) -> usize {
        match self {
            Packed::Plain(text) => text.len(),
            Packed::Deflated { data, .. } => data.len(),
        }
    }
}

/// One DEFLATE state for every cache, reused between objects: a state is about 270 KiB, too much
/// to keep one per kind (a Project alone has some twenty watches) or to set up for each object.
static DEFLATE: Mutex<Option<Compress>> = Mutex::new(None);

/// Compresses the objects of one kind; the first text it is given becomes the dictionary.
#[derive(Default)]
pub(crate) struct Packer {
    dictionary: Option<Arc<[u8]>>,
}

impl Packer {
    pub(crate) fn pack(&mut self, text: String) -> Packed {
        let dictionary = self
            .dictionary
            .get_or_insert_with(|| {
                let bytes = text.as_bytes();
                Arc::from(&bytes[bytes.len().saturating_sub(MAX_DICTIONARY)..])
            })
            .clone();
        let Ok(len) = u32::try_from(text.len()) else {
            return Packed::Plain(text.into_boxed_str());
        };
        // A poisoned lock only means another compression panicked: its state is reset below.
        let mut shared = DEFLATE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let deflate = shared.get_or_insert_with(|| Compress::new(Compression::default(), false));
        deflate.reset();
        if deflate.set_dictionary(&dictionary).is_err() {
            return Packed::Plain(text.into_boxed_str());
        }
        // DEFLATE's worst case is a few bytes per 16 KiB block over the input.
        let mut data = Vec::with_capacity(text.len() + text.len() / 1000 + 64);
        match deflate.compress_vec(text.as_bytes(), &mut data, FlushCompress::Finish) {
            Ok(Status::StreamEnd) if data.len() < text.len() => Packed::Deflated {
                data: data.into_boxed_slice(),
                len,
                dictionary,
            },
            _ => Packed::Plain(text.into_boxed_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(i: usize) -> String {
        format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"berth-editors","namespace":"team-{i}","labels":{{"app.kubernetes.io/managed-by":"berth","berth.dev/project":"team-{i}"}},"ownerReferences":[{{"apiVersion":"berth.dev/v1alpha1","kind":"Project","name":"team-{i}","uid":"3f1c0a7e-0000-4000-8000-{i:012}","controller":true}}],"resourceVersion":"{}"}},"roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"berth-editor"}},"subjects":[{{"kind":"User","name":"user-{i}@example.com"}}]}}"#,
            1000 + i
        )
    }

    #[test]
    fn siblings_come_back_byte_for_byte_and_smaller() {
        let mut packer = Packer::default();
        let packed: Vec<(String, Packed)> =
            (0..50).map(|i| (child(i), packer.pack(child(i)))).collect();
        for (text, p) in &packed {
            assert_eq!(p.text().as_deref(), Some(text.as_str()));
        }
        // A sibling of the dictionary takes a fraction of its text.
        let (text, p) = &packed[7];
        assert!(matches!(p, Packed::Deflated { .. }));
        assert!(p.size() * 3 < text.len(), "{} of {}", p.size(), text.len());
    }

    #[test]
    fn unlike_and_empty_texts_survive() {
        let mut packer = Packer::default();
        for text in [
            child(1),
            String::new(),
            "x".repeat(100_000),
            "é{}".repeat(10),
        ] {
            assert_eq!(
                packer.pack(text.clone()).text().as_deref(),
                Some(text.as_str())
            );
        }
    }
}
