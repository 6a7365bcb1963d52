//! The naming authority's promises, as properties: every name is valid for its backend, and no
//! two distinct inputs give the same name. Each example from the review is a regression test.

use proptest::prelude::*;

use berth_api::{MemberKind, PlatformSettingsSpec, Role};

use super::*;

/// DNS-1123 labels, as Kubernetes takes them for namespaces and project names.
fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
}

/// MLModel names, as their CRD takes them.
fn model_name() -> impl Strategy<Value = String> {
    "[a-z]([-a-z0-9]{0,38}[a-z0-9])?"
}

fn uuid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
}

/// Harbor's name rule for projects and robots.
fn harbor_name(name: &str) -> bool {
    !name.is_empty()
        && name.split(['.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// What every object store takes as a key name (berth_providers::storage's rule).
fn key_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// AWS's general-purpose bucket rules, written out again independently of `check_bucket`.
fn s3_bucket(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&name.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes.first().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.last().is_some_and(|b| b.is_ascii_alphanumeric())
        && !name.contains("..")
        && !(name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()))
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|s| name.ends_with(s))
}

#[test]
fn label_from_is_readable_and_tells_case_apart() {
    let a = label_from("berth-owner-user", "Ada@Example.com");
    assert!(a.starts_with("berth-owner-user-ada-example-c"), "{a}");
    assert!(a.len() <= 63, "{a}");
    assert_ne!(a, label_from("berth-owner-user", "ada@example.com"));
}

#[test]
fn review_examples() {
    // Hostnames: model a-b in namespace c and model a in namespace b-c collided as a-b-c.
    let x = host::default_host("a-b", "c", "models.example.com");
    let y = host::default_host("a", "b-c", "models.example.com");
    assert_eq!(x.as_deref(), Ok("a-b.c.models.example.com"));
    assert_eq!(y.as_deref(), Ok("a.b-c.models.example.com"));
    // A long model name and a long namespace made one label over 63 characters.
    let long = host::default_host(&"m".repeat(40), &"n".repeat(63), "models.example.com");
    let long = long.unwrap_or_default();
    assert!(long.split('.').all(|l| l.len() <= 63), "{long}");
    // A host outside the domain, or one that only ends like it.
    for outside in [
        "evil.example.org",
        "models.example.com",
        "x.evilmodels.example.com",
        "login.example.com",
    ] {
        assert!(
            host::check(outside, "models.example.com").is_err(),
            "{outside}"
        );
    }
    assert!(host::check("fraud.models.example.com", "models.example.com").is_ok());
    // Access keys: a 40-bit hash of the project's name let a Project recover another's key.
    let mine = outside::credential_prefix("3f1c0a7e-0000-4000-8000-000000000001");
    let theirs = outside::credential_prefix("3f1c0a7e-0000-4000-8000-000000000002");
    let their_key = outside::credential(&theirs, 1);
    assert_eq!(outside::credential_serial(&mine, &their_key), None);
    assert_eq!(mine.len() - "berth--".len(), 32, "128 bits of UID");
    // Buckets: too short, punycode, no placeholder, two placeholders, an IP address.
    assert!(outside::bucket("{project}", "ab", "ab").is_err());
    assert!(outside::bucket("{project}", "xn--abc", "x").is_err());
    assert!(outside::bucket("shared-bucket", "a", "a").is_err());
    assert!(outside::bucket("{project}-{namespace}", "a-b", "c").is_err());
    assert!(outside::bucket("10.0.0.{project}", "1", "1").is_err());
    assert!(outside::bucket("{project}-s3alias", "abc", "abc").is_err());
    assert_eq!(
        outside::bucket("ml-{namespace}", "p", "team-a").as_deref(),
        Ok("ml-team-a")
    );
    // Harbor refuses `--`, which a DNS label may hold.
    assert!(outside::registry_project("a--b").is_err());
    assert_eq!(
        outside::registry_project("library").as_deref(),
        Ok("library")
    );
}

#[test]
fn reserved_namespaces_and_why() {
    let mut settings = PlatformSettingsSpec {
        gateway_namespaces: vec!["istio-system".into()],
        monitoring_namespaces: vec!["monitoring".into()],
        ..Default::default()
    };
    settings.namespaces.reserved = vec!["vault".into()];
    settings.models.istio_gateway = Some("mesh-gw/models".into());
    for (ns, why) in [
        ("kube-system", "Kubernetes"),
        ("kube-anything", "Kubernetes"),
        ("default", "cluster"),
        ("berth-system", "operator"),
        ("istio-system", "gatewayNamespaces"),
        ("monitoring", "monitoringNamespaces"),
        ("vault", "namespaces.reserved"),
        ("mesh-gw", "istioGateway"),
    ] {
        let reason = namespace::reserved(ns, "berth-system", &settings);
        assert!(
            reason.as_deref().is_some_and(|r| r.contains(why)),
            "{ns}: {reason:?}"
        );
    }
    assert_eq!(
        namespace::reserved("team-a", "berth-system", &settings),
        None
    );
}

proptest! {
    #[test]
    fn label_from_is_a_dns_label_and_stable(input in ".{0,300}") {
        let name = label_from("berth-viewer-group", &input);
        prop_assert!(is_dns_label(&name), "{}", name);
        prop_assert_eq!(name.clone(), label_from("berth-viewer-group", &input));
    }

    #[test]
    fn member_bindings_are_valid_and_distinct(
        a in "[ -~]{1,80}", b in "[ -~]{1,80}",
        ra in 0usize..3, rb in 0usize..3, ka in 0usize..3, kb in 0usize..3,
    ) {
        let roles = [Role::Owner, Role::Editor, Role::Viewer];
        let kinds = [MemberKind::User, MemberKind::Group, MemberKind::ServiceAccount];
        let x = kube::member_binding(roles[ra], kinds[ka], &a);
        let y = kube::member_binding(roles[rb], kinds[kb], &b);
        prop_assert!(is_dns_label(&x), "{}", x);
        prop_assert!(!x.starts_with("berth-sa-"), "{}", x);
        if (ra, ka, &a) != (rb, kb, &b) {
            prop_assert_ne!(x, y);
        }
    }

    #[test]
    fn project_roles_are_distinct_and_never_shipped(a in dns_label(), b in dns_label(), oa: bool, ob: bool) {
        let role = |o: bool| if o { kube::ProjectRole::Owner } else { kube::ProjectRole::Member };
        let x = kube::project_role(&a, role(oa));
        let y = kube::project_role(&b, role(ob));
        prop_assert!(x.len() <= 253);
        prop_assert!(!kube::SHIPPED_CLUSTER_ROLES.contains(&x.as_str()), "{}", x);
        if (&a, oa) != (&b, ob) {
            prop_assert_ne!(x, y);
        }
    }

    #[test]
    fn isolation_policies_are_subdomains_the_operator_scope_admits_and_distinct(a in dns_label(), b in dns_label()) {
        let x = kube::isolation_policy(&a);
        // A DNS-1123 subdomain, as the API server checks a cluster-scoped object's name: at most
        // 253 characters of lowercase letters, digits, '-' and '.', alphanumeric at both ends.
        prop_assert!(x.len() <= 253 && x.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !l.starts_with('-') && !l.ends_with('-')), "{}", x);
        // What deploy/rbac/22-operator-scope.yaml matches: ^berth-isolate-[a-z0-9]([-a-z0-9]*[a-z0-9])?$
        let rest = x.strip_prefix("berth-isolate-").unwrap_or_default();
        prop_assert_eq!(rest, a.as_str());
        prop_assert!(is_dns_label(rest), "{}", x);
        if a != b {
            prop_assert_ne!(x, kube::isolation_policy(&b));
        }
    }

    #[test]
    fn buckets_are_valid_everywhere_and_one_per_project(
        a in dns_label(), b in dns_label(),
        prefix in "([a-z0-9][-a-z0-9.]{0,8})?", by_namespace: bool,
    ) {
        let template = if by_namespace { format!("{prefix}{{namespace}}") } else { format!("{prefix}{{project}}") };
        // Distinct projects have distinct names and distinct namespaces.
        let x = outside::bucket(&template, &a, &a);
        let y = outside::bucket(&template, &b, &b);
        if let Ok(name) = &x {
            prop_assert!(s3_bucket(name), "{}", name);
            prop_assert!(outside::check_bucket(name).is_ok());
        }
        if let (Ok(x), Ok(y)) = (&x, &y) && a != b {
            prop_assert_ne!(x, y);
        }
        // A refusal names its rule.
        if let Err(refused) = x {
            prop_assert!(!refused.rule.is_empty());
        }
    }

    #[test]
    fn credentials_belong_to_one_project_only(a in uuid(), b in uuid(), sa in 1u64..1_000_000, sb in 1u64..1_000_000) {
        let (pa, pb) = (outside::credential_prefix(&a), outside::credential_prefix(&b));
        let (x, y) = (outside::credential(&pa, sa), outside::credential(&pb, sb));
        prop_assert!(key_name(&x), "{}", x);
        prop_assert!(harbor_name(&x), "{}", x);
        prop_assert_eq!(outside::credential_serial(&pa, &x), Some(sa));
        if a != b {
            prop_assert_ne!(&x, &y);
            prop_assert_eq!(outside::credential_serial(&pa, &y), None);
            prop_assert_ne!(outside::marker(&a), outside::marker(&b));
        }
        let marker = outside::marker(&a);
        prop_assert!(marker.len() <= 63 && outside::check_bucket(&marker).is_ok() && harbor_name(&marker), "{}", marker);
        prop_assert_eq!(outside::credential_serial(&pa, &marker), None);
        prop_assert!(!marker.starts_with(&pb));
    }

    #[test]
    fn clients_groups_and_registry_projects(a in dns_label(), b in dns_label()) {
        if a != b {
            prop_assert_ne!(outside::oidc_client(&a), outside::oidc_client(&b));
            prop_assert_ne!(outside::oidc_group(&a), outside::oidc_group(&b));
        }
        match outside::registry_project(&a) {
            Ok(name) => {
                prop_assert!(harbor_name(&name));
                prop_assert_eq!(name, a);
            }
            Err(refused) => prop_assert!(a.contains("--"), "{}", refused),
        }
    }

    #[test]
    fn model_hosts_are_unambiguous_and_under_the_domain(
        ma in model_name(), mb in model_name(), na in dns_label(), nb in dns_label(),
        domain in "[a-z]{1,20}(\\.[a-z]{2,10}){1,3}",
    ) {
        let x = host::default_host(&ma, &na, &domain);
        let y = host::default_host(&mb, &nb, &domain);
        if let Ok(h) = &x {
            prop_assert!(host::check(h, &domain).is_ok());
            prop_assert!(h.len() <= 253 && h.split('.').all(is_dns_label), "{}", h);
        }
        if let (Ok(x), Ok(y)) = (&x, &y) && (&ma, &na) != (&mb, &nb) {
            prop_assert_ne!(x, y);
        }
    }

    /// A canary's or stable Service's name is a DNS label that no model can have (longer than
    /// 40), so it never takes another model's Deployment or Service; two models' never meet.
    #[test]
    fn model_children_names_never_meet(ma in model_name(), mb in model_name()) {
        for name in [kube::model_canary(&ma), kube::model_stable(&ma)] {
            prop_assert!(is_dns_label(&name), "{}", name);
            prop_assert!(name.len() > kube::MODEL_NAME_MAX, "{}", name);
        }
        prop_assert_ne!(kube::model_canary(&ma), kube::model_stable(&ma));
        let job = kube::model_job(&ma, &"f".repeat(10), &"a".repeat(kube::MODEL_JOB_INPUTS_HEX));
        prop_assert!(is_dns_label(&job) && job.len() <= 63, "{}", job);
        if ma != mb {
            prop_assert_ne!(kube::model_canary(&ma), kube::model_canary(&mb));
            prop_assert_ne!(kube::model_canary(&ma), kube::model_stable(&mb));
        }
    }

    #[test]
    fn uids_keep_their_128_bits(a in uuid(), b in uuid()) {
        prop_assert_eq!(uid_hex(&a).len(), 32);
        if a != b {
            prop_assert_ne!(uid_hex(&a), uid_hex(&b));
        }
    }
}
