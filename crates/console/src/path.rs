//! The notebook paths the console serves: `/notebook/<namespace>/<name>/<rest>`, the prefix
//! JupyterLab answers under (`NB_PREFIX`, `berth_controllers::names::kube::notebook_path`).
//!
//! A path is refused before anything else happens (no API call, no upstream connection) when it
//! could mean something else to the console than to Jupyter or to an intermediary: percent-encoded
//! slashes, backslashes or dots (`%2F`, `%5C`, `%2E`), `.` or `..` segments, empty segments inside
//! the prefix, NUL or control bytes, or a namespace or name that is not a DNS label (RFC 1123, at
//! most 63 characters: what Kubernetes allows for namespaces and Services).

/// The prefix of every notebook path.
pub const PREFIX: &str = "/notebook/";

/// A notebook path, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotebookPath {
    pub namespace: String,
    pub name: String,
    /// Whether the path is exactly `/notebook/<ns>/<name>` (no trailing slash): redirected.
    pub bare: bool,
}

impl NotebookPath {
    /// `/notebook/<namespace>/<name>/`.
    pub fn prefix(&self) -> String {
        format!("{PREFIX}{}/{}/", self.namespace, self.name)
    }
}

/// Why a path is refused (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Whether `s` is an RFC 1123 DNS label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Parses the raw (still percent-encoded) path of a request, without its query.
pub fn parse(raw: &str) -> Result<NotebookPath, BadPath> {
    let rest = raw.strip_prefix(PREFIX).ok_or(BadPath(
        "not a notebook path: /notebook/<namespace>/<name>/",
    ))?;
    if raw
        .bytes()
        .any(|c| c.is_ascii_control() || c == b'\\' || c == b' ')
    {
        return Err(BadPath("the path holds control characters or backslashes"));
    }
    let lower = raw.to_ascii_lowercase();
    for encoded in ["%2f", "%5c", "%2e", "%00"] {
        if lower.contains(encoded) {
            return Err(BadPath(
                "the path holds an encoded slash, backslash, dot or NUL",
            ));
        }
    }
    if raw
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(BadPath("the path holds . or .. segments"));
    }
    let mut parts = rest.splitn(3, '/');
    let namespace = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let bare = parts.next().is_none();
    if !is_dns_label(namespace) {
        return Err(BadPath("the namespace is not a DNS label"));
    }
    if !is_dns_label(name) {
        return Err(BadPath("the notebook's name is not a DNS label"));
    }
    Ok(NotebookPath {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        bare,
    })
}

/// The longest `next` (where a login returns to) kept, in bytes: each pending login keeps it in
/// memory, and anyone may start a login.
pub const MAX_NEXT: usize = 512;

/// Whether `target` is a path of this origin to send a browser back to after login: starts with
/// one `/` (not `//` or `/\`, which browsers read as another host), no scheme, no control
/// characters, at most [`MAX_NEXT`] bytes. Anything else becomes `/`.
pub fn same_origin_path(target: &str) -> Option<&str> {
    let b = target.as_bytes();
    let ok = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !b.iter().any(|c| c.is_ascii_control() || *c == b'\\')
        && target.len() <= MAX_NEXT;
    ok.then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_path_is_at_most_512_bytes() {
        let long = format!("/notebook/a/b/{}", "x".repeat(MAX_NEXT));
        assert_eq!(same_origin_path(&long), None);
        let fits = format!("/{}", "x".repeat(MAX_NEXT - 1));
        assert_eq!(same_origin_path(&fits), Some(fits.as_str()));
    }

    #[test]
    fn notebook_paths_parse() {
        let p = parse("/notebook/team-a/lab/api/status").unwrap();
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("team-a", "lab"));
        assert!(!p.bare);
        assert_eq!(p.prefix(), "/notebook/team-a/lab/");
        assert!(parse("/notebook/team-a/lab/").is_ok());
        assert!(parse("/notebook/team-a/lab").unwrap().bare);
        // Jupyter's own encoded names (a file with a space) are fine.
        assert!(parse("/notebook/team-a/lab/api/contents/my%20file.ipynb").is_ok());
    }

    #[test]
    fn tricky_paths_are_refused() {
        for bad in [
            "/notebook/a/b/..%2F..%2Fother/x",
            "/notebook/a/b/..%2f..%2fother/x",
            "/notebook/a/b/%2e%2e/x",
            "/notebook/a/b/../../other/nb/",
            "/notebook/a/../other/nb/",
            "/notebook/a/b/./x",
            "/notebook/a%2Fb/c/",
            "/notebook/A/b/",
            "/notebook/a/B/",
            "/notebook/a/b_c/",
            "/notebook/-a/b/",
            "/notebook/a/b-/",
            "/notebook//b/",
            "/notebook/a//x",
            "/notebook/a",
            "/notebook/",
            "/notebooks/a/b/",
            "/notebook/a/b/x%00",
            "/notebook/a/b/x\\..\\y",
            &format!("/notebook/{}/b/", "a".repeat(64)),
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(parse(&format!("/notebook/{}/b/", "a".repeat(63))).is_ok());
    }

    #[test]
    fn only_same_origin_paths_are_redirect_targets() {
        assert_eq!(
            same_origin_path("/notebook/a/b/lab"),
            Some("/notebook/a/b/lab")
        );
        for bad in [
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(same_origin_path(bad), None, "{bad:?}");
        }
    }
}
