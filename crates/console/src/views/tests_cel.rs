//! Both ways: the regular expressions of the CRDs' CEL rules (`self.matches('...')`, read from
//! the generated CRDs, RE2 syntax, run with the regex crate) against what the views' parsers
//! accept, on the same inputs, hostile ones included. A value the CRD refuses is refused by the
//! form, and a value the form accepts passes the CRD's rule. The rest of each rule (sizes,
//! `duration()`, lists of paths) is evaluated here in Rust from the rule's own text where it is
//! a plain list, and stated where it is not.

use berth_api::mlmodel::MLModel;
use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;
use kube::CustomResourceExt;
use regex::Regex;

use super::deploy::source_uri_problem;
use super::form::{is_object_name, is_subdomain_name, parse_duration};
use super::spawn::is_extended_resource;
use super::tests_schema::cel_rules;
use super::tests_schema::schema_problems;
use super::tests_spawn::{Fixture, refused_on};
use super::volumes::mount_path_problem;

/// The patterns of `matches('...')` in the first rule of `K`'s CRD whose text or message
/// contains `needle`, with CEL's string escapes undone.
fn patterns<K: CustomResourceExt>(needle: &str) -> (String, Vec<Regex>) {
    let (rule, _) = cel_rules::<K>()
        .into_iter()
        .find(|(r, m)| r.contains(needle) || m.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?}"));
    let mut out = Vec::new();
    let mut rest = rule.as_str();
    while let Some(i) = rest.find("matches('") {
        rest = &rest[i + "matches('".len()..];
        let end = rest.find("')").unwrap();
        out.push(Regex::new(&rest[..end].replace(r"\\", r"\")).unwrap());
        rest = &rest[end..];
    }
    assert!(!out.is_empty(), "no pattern in {rule}");
    (rule, out)
}

const NAMES: &[&str] = &[
    "a", "lab", "lab-1", "l-a-b", "a1", "Lab", "1lab", "lab-", "-lab", "lab_1", "lab.x", "la b",
    "<script>", "läb", "lab\n", "", "home", "my-home", "x-home-y",
];

#[test]
fn notebook_names_agree_with_the_crd() {
    let (_, p) = patterns::<Notebook>("self.metadata.name.matches");
    let f = Fixture::new();
    let long = ["a".repeat(40), "a".repeat(41)];
    for name in NAMES.iter().copied().chain(long.iter().map(String::as_str)) {
        // The form trims what surrounds a value (a pasted name's newline), as `Form::get` says.
        let crd = p[0].is_match(name.trim()) && name.trim().len() <= 40;
        let form = f
            .parse(&[("name", name)])
            .map_or_else(|e| !e.iter().any(|e| e.field == "name"), |_| true);
        assert_eq!(form, crd, "{name:?}: form {form}, CRD {crd}");
        assert_eq!(is_object_name(name.trim(), 40), crd, "{name:?}");
    }
}

#[test]
fn volume_names_agree_with_the_crd() {
    let (_, p) = patterns::<Notebook>("a volume name starts with a letter");
    let home_rule = cel_rules::<Notebook>()
        .into_iter()
        .any(|(r, _)| r == "self != 'home' && !self.endsWith('-home')");
    assert!(home_rule);
    let f = Fixture::new();
    let long = ["v".repeat(22), "v".repeat(23)];
    for name in NAMES.iter().copied().chain(long.iter().map(String::as_str)) {
        let name = name.trim();
        let crd = p[0].is_match(name)
            && name.len() <= 22
            && !name.is_empty()
            && name != "home"
            && !name.ends_with("-home");
        let form = f
            .parse(&[
                ("name", "lab"),
                ("volumes.0.name", name),
                ("volumes.0.mountPath", "/data"),
                ("volumes.0.size", "1Gi"),
            ])
            .map_or_else(|e| !e.iter().any(|e| e.field == "volumes.0.name"), |_| true);
        assert_eq!(form, crd, "{name:?}: form {form}, CRD {crd}");
    }
}

#[test]
fn mount_paths_agree_with_the_crd() {
    let (_, clean) = patterns::<Notebook>("^(/[A-Za-z0-9._-]+)+$");
    assert_eq!(clean.len(), 2, "the path pattern and the dot-part pattern");
    let (system, _) = cel_rules::<Notebook>()
        .into_iter()
        .find(|(r, _)| r.contains("startsWith(p + '/')"))
        .unwrap();
    let (list, _) = system.split_once("].exists").unwrap();
    let forbidden: Vec<String> = list
        .trim_start_matches("![")
        .split(", ")
        .map(|p| p.trim_matches('\'').to_owned())
        .collect();
    assert!(
        forbidden.contains(&"/etc".to_owned()) && forbidden.len() > 10,
        "{forbidden:?}"
    );
    let crd = |path: &str| {
        path.len() >= 2
            && path.len() <= 256
            && clean[0].is_match(path)
            && !clean[1].is_match(path)
            && path != "/home/jovyan"
            && path != "/home"
            && !forbidden
                .iter()
                .any(|p| path == p || path.starts_with(&format!("{p}/")))
    };
    let long = format!("/{}", "d".repeat(256));
    for path in [
        "/data",
        "/home/jovyan/data",
        "/var/data",
        "/opt/x.y_z-1",
        "/etcetera",
        "/homework",
        "/home/jovyan",
        "/home",
        "/etc",
        "/etc/x",
        "/usr/local",
        "/tmp",
        "/var/lib/x",
        "/var/run",
        "/proc",
        "/data/../etc",
        "/data/./x",
        "/data/..",
        "/..",
        "/.",
        "/.x",
        "/x..",
        "/data/",
        "data",
        "/",
        "/da ta",
        "/data\n",
        "//data",
        "/d<a>",
        "/lib64/x",
        "/run",
        "/runner",
        "/rootfs",
        "/root/x",
        long.as_str(),
    ] {
        assert_eq!(mount_path_problem(path).is_none(), crd(path), "{path:?}");
    }
}

#[test]
fn claim_names_and_idle_timeouts_agree_with_the_crd() {
    let (_, claim) = patterns::<Notebook>("existingClaim is the name");
    let (_, claim_rule) = patterns::<Notebook>("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')");
    assert_eq!(claim[0].as_str(), claim_rule[0].as_str());
    for name in [
        "data",
        "team-datasets",
        "a.b",
        "0",
        "a..b",
        "A",
        "-a",
        "a-",
        "a/b",
        "ns/claim",
        "a b",
        "",
    ] {
        assert_eq!(
            is_subdomain_name(name, 253),
            claim[0].is_match(name) && name.len() <= 253,
            "{name:?}"
        );
    }
    let (_, timeout) = patterns::<Notebook>("idleTimeout must be a duration");
    for t in [
        "1h", "90s", "1h30m", "10m", "168h", "0s", "1d", "1.5h", "h", "", "1H", "01m", "1h 3m",
        "-1h", "30", "1m1m",
    ] {
        assert_eq!(parse_duration(t).is_some(), timeout[0].is_match(t), "{t:?}");
    }
}

#[test]
fn gpu_resources_agree_with_the_template_crd() {
    let (rule, p) = patterns::<NotebookTemplate>("gpu.resource must be");
    assert!(rule.contains("!self.split('/')[0].endsWith('kubernetes.io')"));
    assert!(rule.contains("!self.split('/')[0].endsWith('k8s.io')"));
    for r in [
        "nvidia.com/gpu",
        "amd.com/gpu",
        "gpu.intel.com/i915",
        "nvidia.com/mig-1g.10gb",
        "kubernetes.io/gpu",
        "example.k8s.io/gpu",
        "gpu",
        "nvidia.com/",
        "NVIDIA.com/gpu",
        "a/b",
        "nvidia.c/gpu",
        "nvidia.com/-gpu",
        "nvidia.com/gpu_",
        "x.com/a/b",
        "-x.com/gpu",
    ] {
        let domain = r.split('/').next().unwrap_or_default();
        let crd =
            p[0].is_match(r) && !domain.ends_with("kubernetes.io") && !domain.ends_with("k8s.io");
        assert_eq!(is_extended_resource(r), crd, "{r:?}");
    }
}

#[test]
fn model_names_sources_and_checksums_agree_with_the_crd() {
    let (_, name) = patterns::<MLModel>("self.metadata.name.matches");
    for n in NAMES {
        let crd = name[0].is_match(n) && n.len() <= 40;
        assert_eq!(is_object_name(n, 40), crd, "{n:?}");
    }
    let (_, s3) = patterns::<MLModel>("!self.startsWith('s3://') || self.matches");
    let (_, pvc) = patterns::<MLModel>("!self.startsWith('pvc://') || self.matches");
    for uri in [
        "s3://models/a.onnx",
        "s3://models/prefix/",
        "s3://ab/m",
        "s3://-bucket/m",
        "s3://Bucket/m",
        "s3://my.bucket-1",
        "s3://models",
        "s3:///x",
        "s3://a_b/x",
    ] {
        assert_eq!(
            source_uri_problem(uri).is_none(),
            s3[0].is_match(uri),
            "{uri:?}"
        );
    }
    for uri in [
        "pvc://claim/path",
        "pvc://claim.x",
        "pvc://Claim/x",
        "pvc:///x",
        "pvc://-c/x",
        "pvc://c-/x",
        "pvc://a..b/x",
    ] {
        // The CRD's pattern lets `a..b` pass; the form asks for a real claim name (each
        // dot-separated part a DNS label), which the API server would then look up.
        let form = source_uri_problem(uri).is_none();
        let crd = pvc[0].is_match(uri);
        assert!(
            !form || crd,
            "{uri:?}: the form accepts what the CRD refuses"
        );
        if uri != "pvc://a..b/x" {
            assert_eq!(form, crd, "{uri:?}");
        }
    }
    let (_, sum) = patterns::<MLModel>("source.sha256 must be 64");
    let ok = "a".repeat(64);
    let upper = "A".repeat(64);
    let short = "a".repeat(63);
    for s in [ok.as_str(), upper.as_str(), short.as_str(), "xyz"] {
        let form = super::deploy::parse_deploy(
            &[
                ("name".into(), "m".into()),
                ("sourceUri".into(), "s3://models/a.onnx".into()),
                ("sha256".into(), s.into()),
            ],
            "ns",
            &[],
        )
        .is_ok();
        assert_eq!(form, sum[0].is_match(s), "{s:?}");
    }
}

#[test]
fn env_names_agree_with_the_crd() {
    let (_, p) = patterns::<Notebook>("an env name has letters");
    let reserved = cel_rules::<Notebook>().into_iter().any(|(r, _)| {
        r.contains("!(self in ['NB_PREFIX', 'HOME', 'NB_PORT']) && !self.startsWith('JUPYTER_')")
    });
    assert!(reserved);
    let f = Fixture::new();
    for name in [
        "A",
        "_",
        "_X1",
        "MY_SETTING",
        "x",
        "HOME",
        "NB_PORT",
        "JUPYTER_X",
        "JUPYTER",
        "1X",
        "MY-VAR",
        "MY VAR",
        "é",
        "A.B",
    ] {
        let crd = p[0].is_match(name)
            && name.len() <= 128
            && !matches!(name, "NB_PREFIX" | "HOME" | "NB_PORT")
            && !name.starts_with("JUPYTER_");
        let form = f
            .parse(&[("name", "lab"), ("env.0.name", name)])
            .map_or_else(|e| !e.iter().any(|e| e.field == "env.0.name"), |_| true);
        assert_eq!(form, crd, "{name:?}");
    }
}

#[test]
fn environment_variables_follow_the_crd_rules() {
    let f = Fixture::new();
    let nb = f
        .parse(&[
            ("name", "lab"),
            ("env.0.name", "MY_SETTING"),
            ("env.0.value", " a value <b>&amp; "),
            ("env.1.name", ""),
            ("env.1.value", ""),
            ("env.2.name", "_X1"),
        ])
        .unwrap();
    let env: Vec<(&str, &str)> = nb
        .spec
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(env, [("MY_SETTING", " a value <b>&amp; "), ("_X1", "")]);
    assert_eq!(
        schema_problems::<Notebook>(&serde_json::to_value(&nb).unwrap()),
        Vec::<String>::new()
    );
    for bad in [
        "HOME",
        "NB_PREFIX",
        "NB_PORT",
        "JUPYTER_TOKEN",
        "1X",
        "MY-VAR",
        "MY VAR",
        "é",
    ] {
        refused_on(
            f.parse(&[("name", "lab"), ("env.0.name", bad)]),
            "env.0.name",
        );
    }
    refused_on(
        f.parse(&[("name", "lab"), ("env.0.name", &"X".repeat(129))]),
        "env.0.name",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("env.0.value", "orphan")]),
        "env.0.name",
    );
    refused_on(
        f.parse(&[("name", "lab"), ("env.0.name", "A"), ("env.1.name", "A")]),
        "env.1.name",
    );
    refused_on(f.parse(&[("name", "lab"), ("env.64.name", "A")]), "env");
    refused_on(
        f.parse(&[("name", "lab"), ("env.0.name", "A"), ("env.0.name", "B")]),
        "env.0.name",
    );
}
