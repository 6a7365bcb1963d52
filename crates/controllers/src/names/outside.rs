//! Names outside the cluster: the bucket, the keys, the OIDC client and group, the registry
//! project and its robots, and the markers that record their owner.
//!
//! Names a person reads (the bucket, the client, the registry project) come from the Project's
//! name, so they stay readable; whether one is the Project's is decided by its owner record, never
//! by the name (see `berth_providers::Owner`). Names nobody reads (keys, robots, markers) carry the
//! Project's UID, 128 bits no other Project can produce, so a Project can only ever find its own.

use berth_providers::Owner;

use super::{Refused, uid_hex};

/// The bucket template's placeholders.
pub const PROJECT_PLACEHOLDER: &str = "{project}";
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// The bucket of a Project named `project` living in `namespace`, from the platform's template.
///
/// Refused unless the template holds exactly one placeholder (with none, every Project would get
/// the same bucket; with two, `{project}-{namespace}` gives `a-b-c` for both `a-b`/`c` and
/// `a`/`b-c`), and unless the result is a bucket name that S3, Garage and MinIO all take: 3 to 63
/// characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or
/// digit, no `..`, not an IP address, not starting with `xn--`, `sthree-` or `amzn-s3-demo-`, not
/// ending with `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3` (AWS's bucket naming rules).
pub fn bucket(template: &str, project: &str, namespace: &str) -> Result<String, Refused> {
    let placeholders = template.matches(PROJECT_PLACEHOLDER).count()
        + template.matches(NAMESPACE_PLACEHOLDER).count();
    let name = template
        .replace(PROJECT_PLACEHOLDER, project)
        .replace(NAMESPACE_PLACEHOLDER, namespace);
    if placeholders != 1 {
        return Err(Refused::new(
            name,
            "the platform's bucketTemplate must hold exactly one of {project} and {namespace}, once, so that every project gets a bucket of its own",
        ));
    }
    check_bucket(&name).map(|()| name)
}

/// Whether `name` is a bucket name every object store Berth supports takes; the rule it breaks if
/// not.
pub fn check_bucket(name: &str) -> Result<(), Refused> {
    let refuse = |rule: &str| Err(Refused::new(name, rule));
    if !(3..=63).contains(&name.len()) {
        return refuse("a bucket name has 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return refuse("a bucket name has only lowercase letters, digits, '.' and '-'");
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return refuse("a bucket name starts and ends with a letter or digit");
    }
    if name.contains("..") {
        return refuse("a bucket name has no two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return refuse("a bucket name is not an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return refuse(&format!("a bucket name does not start with {prefix}"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return refuse(&format!("a bucket name does not end with {suffix}"));
        }
    }
    Ok(())
}

/// MinIO's canned policy that reaches `bucket` only: `berth-bucket-<bucket>`, one per bucket.
pub fn bucket_policy(bucket: &str) -> String {
    format!("berth-bucket-{bucket}")
}

/// The prefix of a Project's storage keys and registry robots: `berth-<uid>-`. Listing by it finds
/// this Project's credentials and nobody else's.
pub fn credential_prefix(uid: &str) -> String {
    format!("berth-{}-", uid_hex(uid))
}

/// A credential's name: the prefix and a serial, `berth-<uid>-<serial>` (40+ characters: every
/// backend takes up to 64, see `berth_providers::storage::MAX_KEY_NAME`).
pub fn credential(prefix: &str, serial: u64) -> String {
    format!("{prefix}{serial}")
}

/// The serial of a credential named under `prefix`, if it is one.
pub fn credential_serial(prefix: &str, name: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// The name of the object that records the Project as owner where a backend has no tags:
/// Garage's marker key (and the local alias it holds on the bucket), Harbor's marker robot.
/// `berth-owner-<uid>`: 44 characters, a valid bucket alias and Harbor robot name, and never
/// under [`credential_prefix`] (`owner` is not hex).
pub fn marker(uid: &str) -> String {
    format!("berth-owner-{}", uid_hex(uid))
}

/// The owner record of a Project with this UID, and whether a platform admin asked to adopt.
pub fn owner(uid: &str, adopt: bool) -> Owner {
    Owner {
        uid: uid.to_owned(),
        marker: marker(uid),
        adopt,
    }
}

/// The OIDC client's id: `berth-<project>` (Keycloak takes up to 255 characters).
pub fn oidc_client(project: &str) -> String {
    format!("berth-{project}")
}

/// The realm group of the project's members: `berth-<project>`.
pub fn oidc_group(project: &str) -> String {
    format!("berth-{project}")
}

/// The registry project: the Project's name, where Harbor takes it (`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`,
/// at most 255 characters: a DNS label with `--` in it is refused).
pub fn registry_project(project: &str) -> Result<String, Refused> {
    let ok = !project.is_empty()
        && project.len() <= 255
        && project.split(['.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(project.to_owned())
    } else {
        Err(Refused::new(
            project,
            "a Harbor project name is lowercase letters and digits with single '.', '_' or '-' between them (no '--')",
        ))
    }
}
