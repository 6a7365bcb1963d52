//! The DNS label of a notebook's own origin (docs/console.md, "An origin per notebook"): the
//! console serves notebook `<name>` of namespace `<namespace>` at
//! `<label>.<--notebook-domain>`, one host per notebook, so that one notebook's scripts never
//! share an origin with another notebook or with the console's pages.
//!
//! `<readable>-<hash>`: `readable` is `<name>-<namespace>` with runs of `-` made one (so the
//! label never has `--`, and never starts with `xn--`, which browsers read as an IDNA
//! A-label), cut to 42 characters, without a trailing `-`; `hash` is the first 100 bits of
//! SHA-256(`<namespace>/<name>`) in lower-case RFC 4648 base32 (20 characters). Both names are
//! DNS labels (no `/`), so `<namespace>/<name>` is injective, and the hash decides: the readable
//! part is for people only. Two notebooks share a host only if a tenant finds a second preimage of
//! 100 bits of SHA-256 (about 2^100 hashes). At most 42 + 1 + 20 = 63 characters of `[a-z0-9-]`.
//! Canonical home: here, since the console depends on this crate and not on the controllers;
//! `berth_controllers::names::kube::notebook_host_label` re-exports it.

use sha2::{Digest as _, Sha256};

/// The longest readable part.
const READABLE: usize = 42;
/// Base32 characters of the hash (5 bits each: 100 bits).
const HASH_CHARS: usize = 20;

/// The notebook's host label: `<readable>-<hash>`, 1 to 63 characters of `[a-z0-9-]`, neither
/// starting nor ending with `-`, without `--`. `namespace` and `name` are DNS labels (what the
/// API server allows); anything else is still mapped to a valid label (its other characters
/// dropped from the readable part), and still injectively through the hash.
pub fn label(namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let mut readable = String::with_capacity(READABLE);
    for c in format!("{name}-{namespace}").chars() {
        let c = c.to_ascii_lowercase();
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            continue;
        }
        if c == '-' && (readable.is_empty() || readable.ends_with('-')) {
            continue;
        }
        if readable.len() == READABLE {
            break;
        }
        readable.push(c);
    }
    while readable.ends_with('-') {
        readable.pop();
    }
    let hash = base32(&digest, HASH_CHARS);
    if readable.is_empty() {
        return hash;
    }
    format!("{readable}-{hash}")
}

/// The first `chars` characters of RFC 4648 base32 of `bytes`, lower-case, no padding.
fn base32(bytes: &[u8], chars: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(chars);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 && out.len() < chars {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
        if out.len() == chars {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid(l: &str) -> bool {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && !l.contains("--")
    }

    #[test]
    fn readable_then_hash() {
        let l = label("team-a", "lab");
        assert!(l.starts_with("lab-team-a-"), "{l}");
        assert_eq!(l.len(), "lab-team-a-".len() + HASH_CHARS);
        assert_eq!(l, label("team-a", "lab"), "deterministic");
    }

    #[test]
    fn tricky_pairs_never_share_a_label() {
        let long = "a".repeat(63);
        let pairs = [
            ("a--b", "c"),
            ("a", "b--c"),
            ("a-b", "c"),
            ("a", "b-c"),
            ("b", "a"),
            ("a", "b"),
            ("c", "a--b"),
            ("xn--a", "b"),
            ("a", "xn--b"),
            (long.as_str(), "x"),
            (long.as_str(), "y"),
            ("x", long.as_str()),
            ("lab-team", "a"),
            ("a", "lab-team"),
            ("team-a", "lab"),
        ];
        let mut seen = HashSet::new();
        for (ns, name) in pairs {
            let l = label(ns, name);
            assert!(valid(&l), "{ns}/{name} -> {l}");
            seen.insert((ns, name, l));
        }
        let labels: HashSet<&String> = seen.iter().map(|(_, _, l)| l).collect();
        let inputs: HashSet<(&str, &str)> = seen.iter().map(|(n, m, _)| (*n, *m)).collect();
        assert_eq!(labels.len(), inputs.len(), "two notebooks share a host");
    }

    #[test]
    fn no_idna_prefix_and_bounded_length() {
        let l = label("b", "xn--a");
        assert!(!l.starts_with("xn--") && !l.contains("--"), "{l}");
        let l = label(&"n".repeat(63), &"m".repeat(63));
        assert_eq!(l.len(), 63, "{l}");
        assert!(valid(&l));
        assert!(valid(&label("-", "-")) && label("-", "-").len() == HASH_CHARS);
    }

    #[test]
    fn base32_is_rfc_4648() {
        // RFC 4648 §10: BASE32("foobar") = "MZXW6YTBOI======".
        // Only whole 5-bit groups are emitted.
        assert_eq!(base32(b"foobar", 16), "mzxw6ytbo");
        assert_eq!(base32(b"foob", 6), "mzxw6y");
    }

    proptest::proptest! {
        #[test]
        fn any_two_pairs_of_dns_labels_get_two_valid_labels(
            a in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            b in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            c in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            d in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
        ) {
            let (x, y) = (label(&a, &b), label(&c, &d));
            proptest::prop_assert!(valid(&x) && valid(&y), "{x} {y}");
            proptest::prop_assert_eq!(a == c && b == d, x == y);
        }
    }
}
