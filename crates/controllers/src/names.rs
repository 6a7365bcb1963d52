//! Deterministic, valid object names derived from user input. The same input always gives the same
//! name, so a crash between a create and a status write can never create a second object.

use sha2::{Digest, Sha256};

/// The first `n` hex characters of the SHA-256 of `input`.
pub fn short_hash(input: &str, n: usize) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..n.min(64)]
        .to_owned()
}

/// A DNS-1123 label made of `prefix` and a readable slug of `input`, made unique by a hash of the
/// raw input: `berth-owner-user-ada-example-com-1a2b3c4d`.
pub fn label_from(prefix: &str, input: &str) -> String {
    let mut slug: String = input
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let budget = 63usize.saturating_sub(prefix.len() + 1 + 1 + 8);
    let slug: String = slug.trim_matches('-').chars().take(budget).collect();
    let slug = slug.trim_matches('-');
    let hash = short_hash(input, 8);
    if slug.is_empty() {
        format!("{prefix}-{hash}")
    } else {
        format!("{prefix}-{slug}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn readable_and_distinct() {
        let a = label_from("berth-owner-user", "Ada@Example.com");
        assert!(a.starts_with("berth-owner-user-ada-example-com-"), "{a}");
        assert_ne!(a, label_from("berth-owner-user", "ada@example.com"));
    }

    proptest! {
        #[test]
        fn always_a_dns_label(input in ".{0,300}") {
            let name = label_from("berth-viewer-group", &input);
            prop_assert!(is_dns_label(&name), "{}", name);
            prop_assert_eq!(name.clone(), label_from("berth-viewer-group", &input));
        }
    }
}
