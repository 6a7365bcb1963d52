//! Model host names on the platform's shared gateway.

use super::{Refused, is_dns_label};

/// The default host of a model: `<model>.<namespace>.<domain>`. Unambiguous (a label holds no
/// '.', so model and namespace are read back from the host), each label at most 63 characters;
/// refused if the whole is over 253.
pub fn default_host(model: &str, namespace: &str, domain: &str) -> Result<String, Refused> {
    let host = format!("{model}.{namespace}.{domain}");
    check(&host, domain).map(|()| host)
}

/// Whether `host` may be used on the platform's gateway: a DNS name of at most 253 characters,
/// each label at most 63 characters and no punycode, strictly under `domain`.
pub fn check(host: &str, domain: &str) -> Result<(), Refused> {
    if host.len() > 253 {
        return Err(Refused::new(host, "a host name has at most 253 characters"));
    }
    if let Some(label) = host.split('.').find(|l| !is_dns_label(l)) {
        return Err(Refused::new(
            host,
            format!(
                "each part of a host name is a DNS label of at most 63 characters, and {label:?} is not"
            ),
        ));
    }
    if host.split('.').any(|l| l.starts_with("xn--")) {
        return Err(Refused::new(
            host,
            "a host name has no punycode (xn--) labels",
        ));
    }
    let under = host
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|rest| !rest.is_empty());
    if !under {
        return Err(Refused::new(
            host,
            format!("a model's host name is under the platform's model domain {domain}"),
        ));
    }
    Ok(())
}
