//! Generated specs (Projects and MLModels) through the pure steps: none may panic. Each test runs
//! `PROPTEST_CASES` cases (proptest's default, 256, in CI; the fault suite's documented command
//! sets 50000, so 10⁵ specs in all: see docs/benchmarks.md).
//! The generator mixes valid values, values next to every rule's boundary and arbitrary strings,
//! so most specs reach the builders and many are wrong in some way admission would refuse (the
//! pure steps must still answer with an error, not a panic, whatever reaches them).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use berth_api::mlmodel::{MLModel, ModelSettings};
use berth_api::{PlatformSettingsSpec, Project};

/// Strings a user might type, near a rule's edge, or anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("alice@example.com".to_owned()),
        Just("system:authenticated".to_owned()),
        Just("ns/sa".to_owned()),
        Just("a".repeat(64)),
        "[a-z0-9-]{1,70}",
        "[a-zA-Z0-9./:_@-]{0,40}",
        any::<String>(),
    ]
}

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("16".to_owned()),
        Just("500m".to_owned()),
        Just("32Gi".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1e3".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just("99999999999999999999Ei".to_owned()),
        "[0-9]{1,25}(m|k|Ki|Mi|Gi|Ti|Pi|Ei|E|e9)?",
        text(),
    ]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("cpu".to_owned()),
        Just("requests.cpu".to_owned()),
        Just("limits.memory".to_owned()),
        Just("nvidia.com/gpu".to_owned()),
        Just("requests.nvidia.com/gpu".to_owned()),
        Just("count/secrets".to_owned()),
        Just("pods".to_owned()),
        Just("hugepages-2Mi".to_owned()),
        text(),
    ]
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("10.20.0.0/16".to_owned()),
        Just("169.254.169.254/32".to_owned()),
        Just("::/0".to_owned()),
        Just("fe80::/10".to_owned()),
        Just("0.0.0.0/0".to_owned()),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}",
        text(),
    ]
}

fn member() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("User"), Just("Group"), Just("ServiceAccount")],
        text(),
        prop_oneof![Just("owner"), Just("editor"), Just("viewer")],
    )
        .prop_map(|(kind, name, role)| json!({"kind": kind, "name": name, "role": role}))
}

fn map_of(
    keys: impl Strategy<Value = String>,
    values: impl Strategy<Value = String>,
) -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(keys, values, 0..6).prop_map(|m| json!(m))
}

fn maybe(s: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), s]
}

fn project_spec() -> impl Strategy<Value = Value> {
    (
        (
            proptest::collection::vec(text(), 0..4),
            proptest::collection::vec(member(), 0..6),
            maybe(map_of(resource(), quantity()).prop_map(|h| json!({"hard": h}))),
            maybe(
                (
                    map_of(resource(), quantity()),
                    map_of(resource(), quantity()),
                )
                    .prop_map(|(d, r)| json!({"default": d, "defaultRequest": r})),
            ),
            maybe(text().prop_map(Value::String)),
        ),
        (
            maybe(map_of(text(), text())),
            maybe(map_of(text(), text())),
            maybe(
                (
                    proptest::collection::vec(cidr(), 0..4),
                    proptest::collection::vec(text(), 0..3),
                )
                    .prop_map(
                        |(e, i)| json!({"allowEgressTo": e, "allowIngressFromNamespaces": i}),
                    ),
            ),
            maybe(
                (any::<Option<bool>>(), quantity())
                    .prop_map(|(enabled, quota)| json!({"enabled": enabled, "quota": quota})),
            ),
            maybe(
                (
                    any::<Option<bool>>(),
                    proptest::collection::vec(text(), 0..3),
                )
                    .prop_map(|(enabled, uris)| json!({"enabled": enabled, "redirectUris": uris})),
            ),
            maybe(
                prop_oneof![Just("restricted"), Just("baseline"), Just("privileged")]
                    .prop_map(|l| json!({"level": l})),
            ),
            maybe(prop_oneof![Just("Retain"), Just("Delete")].prop_map(|d| json!(d))),
        ),
    )
        .prop_map(
            |(
                (owners, members, quota, limits, namespace),
                (labels, annotations, network, storage, idp, pod_security, deletion),
            )| {
                let mut spec = json!({"owners": owners, "members": members});
                for (k, v) in [
                    ("resourceQuota", quota),
                    ("limitRange", limits),
                    ("namespace", namespace),
                    ("namespaceLabels", labels),
                    ("namespaceAnnotations", annotations),
                    ("network", network),
                    ("storage", storage),
                    ("idp", idp),
                    ("podSecurity", pod_security),
                    ("deletionPolicy", deletion),
                ] {
                    if !v.is_null() {
                        spec[k] = v;
                    }
                }
                spec
            },
        )
}

fn uri() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("s3://models/fraud/model.onnx".to_owned()),
        Just("s3://models/dir/".to_owned()),
        Just("s3://".to_owned()),
        Just("https://example.com/m.onnx".to_owned()),
        Just("pvc://claim/path/m.onnx".to_owned()),
        Just("pvc://".to_owned()),
        Just("pvc://claim".to_owned()),
        "(s3|https|pvc|ftp)://[a-zA-Z0-9./_-]{0,30}",
        text(),
    ]
}

fn model_spec() -> impl Strategy<Value = Value> {
    (
        (
            uri(),
            maybe(prop_oneof!["[0-9a-f]{64}", text()].prop_map(Value::String)),
            maybe(text().prop_map(Value::String)),
            maybe(prop_oneof!["[0-9]{1,6}(s|m|h|d)?", text()].prop_map(Value::String)),
        ),
        (
            maybe(
                (
                    prop_oneof![Just("onnx"), Just("tensorflow"), Just("triton"), Just("mlserver"), Just("custom")],
                    maybe(text().prop_map(Value::String)),
                    maybe(any::<i32>().prop_map(|p| json!(p))),
                    maybe(text().prop_map(Value::String)),
                    proptest::collection::vec(text(), 0..3),
                )
                    .prop_map(|(name, image, port, path, args)| {
                        json!({"name": name, "image": image, "port": port, "readinessPath": path, "args": args})
                    }),
            ),
            maybe(any::<i32>().prop_map(|r| json!(r))),
            maybe(
                (any::<Option<i32>>(), any::<i32>(), any::<Option<i32>>()).prop_map(|(min, max, cpu)| {
                    json!({"minReplicas": min, "maxReplicas": max, "targetCpuUtilization": cpu})
                }),
            ),
            maybe(
                (prop_oneof![Just("cluster"), Just("gateway"), Just("istio")], maybe(text().prop_map(Value::String)))
                    .prop_map(|(mode, host)| json!({"mode": mode, "hostname": host})),
            ),
            maybe(
                (map_of(resource(), quantity()), map_of(resource(), quantity()), any::<Option<i32>>())
                    .prop_map(|(l, r, g)| json!({"limits": l, "requests": r, "gpus": g})),
            ),
            maybe(quantity().prop_map(|s| json!({"size": s}))),
        ),
    )
        .prop_map(|((uri, sha, secret, timeout), (runtime, replicas, autoscaling, expose, resources, storage))| {
            let mut source = json!({"uri": uri});
            for (k, v) in [("sha256", sha), ("secretName", secret), ("timeout", timeout)] {
                if !v.is_null() {
                    source[k] = v;
                }
            }
            let mut spec = json!({"source": source});
            for (k, v) in [
                ("runtime", runtime),
                ("replicas", replicas),
                ("autoscaling", autoscaling),
                ("expose", expose),
                ("resources", resources),
                ("storage", storage),
            ] {
                if !v.is_null() {
                    spec[k] = v;
                }
            }
            spec
        })
}

/// The Project controller's pure steps, as the controller runs them: validate, then build.
/// Whether the spec passed validation and reached the builders.
fn project_pure_steps(project: &Project, settings: &PlatformSettingsSpec) -> bool {
    let mut built = false;
    use berth_controllers::project::{build, validate};
    for known in [
        validate::Known::default(),
        validate::Known {
            namespace_ours: true,
        },
    ] {
        if let Ok(validated) = validate::validate(project, settings, "berth-system", known) {
            let _ = build::build(&validated, settings, &build::Environment::default());
            built = true;
        }
    }
    built
}

/// The MLModel controller's pure steps: decide the rollout from nothing observed yet, then build.
fn model_pure_steps(model: &MLModel) {
    use berth_controllers::mlmodel::{build, host, observe, plan};
    let uri = model.spec.source.uri.clone();
    let settings = ModelSettings::default();
    let target = build::Version::target(model, &settings);
    let canary = build::Version::canary(model, &settings);
    let observed = plan::Observed {
        target_download: observe::download(None, &[], None, &uri, "10m"),
        target_problem: None,
        active_problem: None,
        serving: None,
        succeeded_jobs: Default::default(),
        canary: Default::default(),
        volumes_deleting: Default::default(),
    };
    let decision = plan::decide(
        model,
        &target,
        canary.as_ref(),
        &observed,
        k8s_openapi::jiff::Timestamp::now(),
    );
    let host = host::wanted(model, &settings);
    let auth = berth_controllers::mlmodel::auth::resolve(model, None, &Default::default());
    let _ = build::build(
        model,
        &settings,
        &build::Environment::default(),
        &decision.plan,
        &host,
        auth.as_ref().ok(),
    );
}

/// The platform settings the project ships (deploy/settings), and the defaults.
fn settings() -> Vec<PlatformSettingsSpec> {
    let mut all = vec![PlatformSettingsSpec::default()];
    let dir = berth_testenv::util::repo_root().join("deploy/settings");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Ok(objects) = berth_testenv::manifests::parse_objects(&text, "settings")
            && let Some(spec) = objects
                .into_iter()
                .find(|o| {
                    o.types
                        .as_ref()
                        .is_some_and(|t| t.kind == "PlatformSettings")
                })
                .and_then(|o| serde_json::from_value(o.data["spec"].clone()).ok())
        {
            all.push(spec);
        }
    }
    all
}

#[test]
fn generated_projects_never_panic_the_pure_steps() {
    let settings = settings();
    assert!(settings.len() >= 2, "deploy/settings was not read");
    // Config::default() reads PROPTEST_CASES.
    let config = Config::default();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let reached = std::cell::Cell::new(0u32);
    let built = std::cell::Cell::new(0u32);
    let result = runner.run(&(project_spec(), "[a-z][a-z0-9-]{0,62}"), |(spec, name)| {
        let object = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project",
                            "metadata": {"name": name, "uid": "0b7c1f0e-0000-4000-8000-000000000001"}, "spec": spec});
        // What the API server would never store does not reach the controller.
        if let Ok(project) = serde_json::from_value::<Project>(object) {
            reached.set(reached.get() + 1);
            let mut any = false;
            for s in &settings {
                any |= project_pure_steps(&project, s);
            }
            built.set(built.get() + u32::from(any));
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!(
        "{} of {cases} generated specs reached the pure steps, {} passed validation and were built",
        reached.get(),
        built.get()
    );
    assert!(
        reached.get() > cases / 2,
        "only {} specs reached the pure steps",
        reached.get()
    );
    // The builders must be exercised too, not only validation's refusals (about 14 % of the
    // generated Projects pass validation: 6,841 of 50,000 on 2026-11-30; a twentieth leaves room
    // for the spread of 256 cases).
    assert!(
        built.get() > cases / 20,
        "only {} specs passed validation and reached the builders",
        built.get()
    );
}

#[test]
fn generated_models_never_panic_the_pure_steps() {
    let config = Config::default();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let reached = std::cell::Cell::new(0u32);
    let result = runner.run(&(model_spec(), "[a-z][a-z0-9-]{0,39}"), |(spec, name)| {
        let object = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
                            "metadata": {"name": name, "namespace": "team", "uid": "0b7c1f0e-0000-4000-8000-000000000002", "generation": 1},
                            "spec": spec});
        if let Ok(model) = serde_json::from_value::<MLModel>(object) {
            reached.set(reached.get() + 1);
            model_pure_steps(&model);
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    eprintln!(
        "{} of {cases} generated specs reached the pure steps",
        reached.get()
    );
    assert!(
        reached.get() > cases / 2,
        "only {} specs reached the pure steps",
        reached.get()
    );
}
