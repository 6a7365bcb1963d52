//! Bad input is refused at admission with a message a user understands: malformed Project and
//! MLModel specs, each created (server-side dry run, so nothing is stored) by an admin for the
//! schema and CEL rules, and by a tenant who may create Projects for the admission policies that
//! bind tenants only. Each must be refused with its own message (every listed fragment present);
//! valid controls must pass, so the harness cannot refuse everything.

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TENANT: &str = "tenant@example.com";
const MODEL_NAMESPACE: &str = "faults-models";

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Admin,
    Tenant,
}

struct Case {
    what: &'static str,
    who: Who,
    /// A Project or an MLModel, whole.
    object: Value,
    /// Fragments the refusal's message must contain.
    says: &'static [&'static str],
}

fn project(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": name}, "spec": spec})
}

fn model(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "berth.dev/v1alpha1", "kind": "MLModel",
           "metadata": {"name": name, "namespace": MODEL_NAMESPACE}, "spec": spec})
}

/// A Project spec with a valid owner plus `extra`.
fn owned(extra: Value) -> Value {
    let mut spec = json!({"owners": ["alice@example.com"]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    spec
}

/// A tenant's Project spec: the tenant is its owner.
fn tenant(extra: Value) -> Value {
    let mut spec = owned(extra);
    spec["owners"] = json!([TENANT]);
    spec
}

/// An MLModel spec with a valid source plus `extra`.
fn sourced(extra: Value) -> Value {
    let mut spec = json!({"source": {"uri": "s3://models/fraud/model.onnx"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    spec
}

fn cases() -> Vec<Case> {
    use Who::*;
    let p = |what, spec, says| Case {
        what,
        who: Admin,
        object: project("bad-input", spec),
        says,
    };
    let t = |what, spec, says| Case {
        what,
        who: Tenant,
        object: project("bad-tenant", spec),
        says,
    };
    let m = |what, spec, says| Case {
        what,
        who: Admin,
        object: model("bad-model", spec),
        says,
    };
    let long = |n: usize| "a".repeat(n);
    vec![
        // Project: names and the schema.
        Case {
            what: "upper-case project name",
            who: Admin,
            object: project("Bad-Name", owned(json!({}))),
            says: &["a project name must be a DNS label"],
        },
        Case {
            what: "underscore in the project name",
            who: Admin,
            object: project("bad_name", owned(json!({}))),
            says: &["a project name must be a DNS label"],
        },
        Case {
            what: "64-character project name",
            who: Admin,
            object: project(&long(64), owned(json!({}))),
            says: &["a project name must be a DNS label"],
        },
        p(
            "unknown deletion policy",
            owned(json!({"deletionPolicy": "Destroy"})),
            &["spec.deletionPolicy", "Unsupported value"],
        ),
        p(
            "redirect URI that is not a URL",
            owned(json!({"idp": {"redirectUris": ["not a url"]}})),
            &["each redirect URI must be an absolute URL"],
        ),
        p(
            "33 redirect URIs",
            owned(json!({"idp": {"redirectUris": vec!["https://a.example.com/cb"; 33]}})),
            &["spec.idp.redirectUris", "Too many"],
        ),
        p(
            "redirect URI of 2049 characters",
            owned(
                json!({"idp": {"redirectUris": [format!("https://a.example.com/{}", long(2030))]}}),
            ),
            &["spec.idp.redirectUris", "Too long"],
        ),
        p(
            "limit default that is not a quantity",
            owned(json!({"limitRange": {"default": {"cpu": "lots"}}})),
            &["every default value must be a quantity"],
        ),
        p(
            "limit defaultRequest that is not a quantity",
            owned(json!({"limitRange": {"defaultRequest": {"memory": "1 Gi"}}})),
            &["every defaultRequest value must be a quantity"],
        ),
        p(
            "member kind Robot",
            owned(json!({"members": [{"kind": "Robot", "name": "r2", "role": "viewer"}]})),
            &["kind", "Unsupported value"],
        ),
        p(
            "member role admin",
            owned(json!({"members": [{"kind": "User", "name": "bob", "role": "admin"}]})),
            &["role", "Unsupported value"],
        ),
        p(
            "member with an empty name",
            owned(json!({"members": [{"kind": "User", "name": "", "role": "viewer"}]})),
            &["name", "at least 1"],
        ),
        p(
            "ServiceAccount member with a bad name",
            owned(
                json!({"members": [{"kind": "ServiceAccount", "name": "Bad/Name!", "role": "viewer"}]}),
            ),
            &["a ServiceAccount member is named"],
        ),
        p(
            "member without a role",
            owned(json!({"members": [{"kind": "User", "name": "bob"}]})),
            &["role", "Required value"],
        ),
        p(
            "the same member twice",
            owned(
                json!({"members": [{"kind": "User", "name": "bob", "role": "viewer"}, {"kind": "User", "name": "bob", "role": "editor"}]}),
            ),
            &["Duplicate value"],
        ),
        p(
            "namespace that is not a DNS label",
            owned(json!({"namespace": "Bad_NS"})),
            &["spec.namespace must be a DNS label"],
        ),
        p(
            "namespace of 64 characters",
            owned(json!({"namespace": long(64)})),
            &["spec.namespace", "Too long"],
        ),
        p(
            "berth.dev annotation on the namespace",
            owned(json!({"namespaceAnnotations": {"berth.dev/x": "1"}})),
            &["namespaceAnnotations cannot set berth.dev/*"],
        ),
        p(
            "pod-security label on the namespace",
            owned(json!({"namespaceLabels": {"pod-security.kubernetes.io/enforce": "privileged"}})),
            &["namespaceLabels cannot set pod-security.kubernetes.io/*"],
        ),
        p(
            "istio label on the namespace",
            owned(json!({"namespaceLabels": {"istio-injection": "enabled"}})),
            &["namespaceLabels cannot set"],
        ),
        p(
            "managed-by label on the namespace",
            owned(json!({"namespaceLabels": {"app.kubernetes.io/managed-by": "me"}})),
            &["namespaceLabels cannot set"],
        ),
        p(
            "egress to something that is not a CIDR",
            owned(json!({"network": {"allowEgressTo": ["not-a-cidr"]}})),
            &["allowEgressTo must list CIDRs"],
        ),
        p(
            "egress to the metadata service",
            owned(json!({"network": {"allowEgressTo": ["169.254.169.254/32"]}})),
            &["cannot open link-local"],
        ),
        p(
            "egress to IPv6 link-local",
            owned(json!({"network": {"allowEgressTo": ["fe80::1/128"]}})),
            &["cannot open link-local"],
        ),
        p(
            "ingress from a namespace with a space",
            owned(json!({"network": {"allowIngressFromNamespaces": ["bad ns"]}})),
            &["allowIngressFromNamespaces must list namespace names"],
        ),
        p(
            "an empty owner",
            json!({"owners": [""]}),
            &["each owner must be a non-empty user name"],
        ),
        p(
            "an owner of 254 characters",
            json!({"owners": [long(254)]}),
            &["spec.owners", "Too long"],
        ),
        p(
            "the same owner twice",
            json!({"owners": ["alice@example.com", "alice@example.com"]}),
            &["spec.owners", "Duplicate value"],
        ),
        p(
            "no owner at all",
            json!({"members": [{"kind": "User", "name": "bob", "role": "viewer"}]}),
            &["a project needs at least one owner"],
        ),
        p(
            "owners that is not a list",
            json!({"owners": "alice"}),
            &["spec.owners", "array"],
        ),
        p(
            "unknown pod security level",
            owned(json!({"podSecurity": {"level": "root"}})),
            &["spec.podSecurity.level", "Unsupported value"],
        ),
        p(
            "quota value that is not a quantity",
            owned(json!({"resourceQuota": {"hard": {"cpu": "many"}}})),
            &["every quota value must be a quantity"],
        ),
        p(
            "quota on a resource quotas do not know",
            owned(json!({"resourceQuota": {"hard": {"gpus": "1"}}})),
            &["must be a resource a ResourceQuota knows"],
        ),
        p(
            "quota naming cpu twice",
            owned(json!({"resourceQuota": {"hard": {"cpu": "1", "requests.cpu": "2"}}})),
            &["names one resource twice"],
        ),
        p(
            "negative bucket quota",
            owned(json!({"storage": {"quota": "-1Gi"}})),
            &["storage.quota must be a positive size"],
        ),
        p(
            "zero bucket quota",
            owned(json!({"storage": {"quota": "0"}})),
            &["storage.quota must be a positive size"],
        ),
        p(
            "bucket quota that is not a size",
            owned(json!({"storage": {"quota": "lots"}})),
            &["storage.quota must be a positive size"],
        ),
        p(
            "registry.enabled that is a string",
            owned(json!({"registry": {"enabled": "yes"}})),
            &["spec.registry.enabled", "boolean"],
        ),
        // Project: what only a platform admin may do, asked by a tenant.
        t(
            "a tenant who is not an owner",
            json!({"owners": ["someone-else@example.com"]}),
            &["must list yourself as an owner"],
        ),
        t(
            "privileged pods",
            tenant(json!({"podSecurity": {"level": "privileged"}})),
            &["privileged pod security needs a platform admin"],
        ),
        Case {
            what: "adopting a namespace",
            who: Tenant,
            object: json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": "bad-tenant", "annotations": {"berth.dev/adopt-namespace": "true"}}, "spec": tenant(json!({}))}),
            says: &["only a platform admin may set", "berth.dev/adopt-namespace"],
        },
        t(
            "everyone as a member",
            tenant(
                json!({"members": [{"kind": "Group", "name": "system:authenticated", "role": "viewer"}]}),
            ),
            &["members named system:... need a platform admin"],
        ),
        t(
            "quota above the maximum",
            tenant(json!({"resourceQuota": {"hard": {"cpu": "1000"}}})),
            &["quota above the platform maximum needs a platform admin"],
        ),
        t(
            "a bucket above the maximum",
            tenant(json!({"storage": {"quota": "100Ti"}})),
            &["above the platform maximum"],
        ),
        t(
            "namespace labels",
            tenant(json!({"namespaceLabels": {"team": "vision"}})),
            &["namespace labels need a platform admin"],
        ),
        t(
            "namespace annotations",
            tenant(json!({"namespaceAnnotations": {"note": "x"}})),
            &["namespace annotations need a platform admin"],
        ),
        t(
            "egress outside the allowed ranges",
            tenant(json!({"network": {"allowEgressTo": ["203.0.113.0/24"]}})),
            &["is outside the ranges projects may open"],
        ),
        t(
            "one person twice, in two cases",
            json!({"owners": [TENANT, "Tenant@Example.com"]}),
            &["name one person"],
        ),
        t(
            "the project's own ServiceAccount as owner",
            tenant(
                json!({"members": [{"kind": "ServiceAccount", "name": "bot", "role": "owner"}]}),
            ),
            &["cannot be an owner"],
        ),
        Case {
            what: "Berth's own labels on a Project",
            who: Tenant,
            object: json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Project", "metadata": {"name": "bad-tenant", "labels": {"berth.dev/project": "other"}}, "spec": tenant(json!({}))}),
            says: &["only Berth creates objects with its labels"],
        },
        // MLModel.
        Case {
            what: "model name starting with a digit",
            who: Admin,
            object: model("9model", sourced(json!({}))),
            says: &["an MLModel name must start with a letter"],
        },
        Case {
            what: "model name of 41 characters",
            who: Admin,
            object: model(&format!("m{}", long(40)), sourced(json!({}))),
            says: &["an MLModel name must start with a letter"],
        },
        m(
            "ftp source",
            json!({"source": {"uri": "ftp://host/model.onnx"}}),
            &["source.uri must start with s3://, https:// or pvc://"],
        ),
        m(
            "bad bucket name",
            json!({"source": {"uri": "s3://A_B/key"}}),
            &["an s3:// source is s3://bucket/key"],
        ),
        m(
            "https source that is not a URL",
            json!({"source": {"uri": "https://exa mple.com/m.onnx"}}),
            &["an https:// source must be a valid URL"],
        ),
        m(
            // CEL's isURL accepts a URL without a host; a rule of its own refuses it.
            "https source without a host",
            json!({"source": {"uri": "https:///models/m.onnx"}}),
            &["an https:// source must name a host"],
        ),
        m(
            "bare https source",
            json!({"source": {"uri": "https://"}}),
            &["an https:// source must name a host"],
        ),
        m(
            "pvc source without a claim",
            json!({"source": {"uri": "pvc://"}}),
            &["a pvc:// source is pvc://claim-name/path/in/volume"],
        ),
        m(
            "short sha256",
            json!({"source": {"uri": "s3://models/m.onnx", "sha256": "abc"}}),
            &["source.sha256 must be 64 lowercase hex digits"],
        ),
        m(
            "sha256 of a prefix",
            json!({"source": {"uri": "s3://models/dir/", "sha256": "a".repeat(64)}}),
            &["source.sha256 checks a single file"],
        ),
        m(
            "sha256 of a volume",
            json!({"source": {"uri": "pvc://claim/m.onnx", "sha256": "a".repeat(64)}}),
            &["a pvc:// source is not downloaded: remove sha256"],
        ),
        m(
            "credentials for https",
            json!({"source": {"uri": "https://example.com/m.onnx", "secretName": "creds"}}),
            &["source.secretName holds S3 credentials"],
        ),
        m(
            "bad Secret name",
            json!({"source": {"uri": "s3://models/m.onnx", "secretName": "Bad_Name"}}),
            &["source.secretName must be the name of a Secret"],
        ),
        m(
            "timeout that is not a duration",
            json!({"source": {"uri": "s3://models/m.onnx", "timeout": "forever"}}),
            &["source.timeout must be a duration of 1s to 24h"],
        ),
        m(
            "timeout of two days",
            json!({"source": {"uri": "s3://models/m.onnx", "timeout": "48h"}}),
            &["source.timeout must be a duration of 1s to 24h"],
        ),
        m(
            "timeout of a volume",
            json!({"source": {"uri": "pvc://claim/m.onnx", "timeout": "5m"}}),
            &["remove timeout"],
        ),
        m(
            "no source",
            json!({"replicas": 1}),
            &["spec.source", "Required value"],
        ),
        m(
            "zero replicas",
            sourced(json!({"replicas": 0})),
            &["spec.replicas", "greater than or equal to 1"],
        ),
        m(
            "101 replicas",
            sourced(json!({"replicas": 101})),
            &["spec.replicas", "less than or equal to 100"],
        ),
        m(
            "replicas and autoscaling",
            sourced(json!({"replicas": 2, "autoscaling": {"maxReplicas": 4}})),
            &["set either replicas or autoscaling, not both"],
        ),
        m(
            "autoscaling minimum above maximum",
            sourced(json!({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}})),
            &["autoscaling.minReplicas must not exceed autoscaling.maxReplicas"],
        ),
        m(
            "autoscaling without a maximum",
            sourced(json!({"autoscaling": {"minReplicas": 1}})),
            &["maxReplicas", "Required value"],
        ),
        m(
            "hostname that is not a DNS name",
            sourced(json!({"expose": {"mode": "gateway", "hostname": "Bad_Host"}})),
            &["expose.hostname must be a DNS name"],
        ),
        m(
            "unknown exposure",
            sourced(json!({"expose": {"mode": "nodeport"}})),
            &["spec.expose.mode", "Unsupported value"],
        ),
        m(
            "hostname for a cluster model",
            sourced(json!({"expose": {"mode": "cluster", "hostname": "fraud.example.com"}})),
            &["expose.hostname applies to gateway and istio exposure only"],
        ),
        m(
            "limit that is not a quantity",
            sourced(json!({"resources": {"limits": {"memory": "lots"}}})),
            &["every resources.limits value must be a quantity"],
        ),
        m(
            "request that is not a quantity",
            sourced(json!({"resources": {"requests": {"cpu": "x"}}})),
            &["every resources.requests value must be a quantity"],
        ),
        m(
            "17 GPUs",
            sourced(json!({"resources": {"gpus": 17}})),
            &["spec.resources.gpus", "less than or equal to 16"],
        ),
        m(
            "custom runtime without an image",
            sourced(json!({"runtime": {"name": "custom", "port": 9000}})),
            &["a custom runtime needs runtime.image"],
        ),
        m(
            "port for a built-in runtime",
            sourced(json!({"runtime": {"name": "onnx", "port": 9000}})),
            &["runtime.port applies to custom runtimes only"],
        ),
        m(
            "readiness path without a slash",
            sourced(
                json!({"runtime": {"name": "custom", "image": "r/i:1", "port": 9000, "readinessPath": "health"}}),
            ),
            &["runtime.readinessPath must start with '/'"],
        ),
        m(
            "unknown runtime",
            sourced(json!({"runtime": {"name": "pytorch"}})),
            &["spec.runtime.name", "Unsupported value"],
        ),
        m(
            "zero-sized volume",
            sourced(json!({"storage": {"size": "0"}})),
            &["storage.size must be a positive quantity"],
        ),
    ]
}

fn api(client: &Client, object: &Value) -> Api<DynamicObject> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let (plural, namespace) = if kind == "MLModel" {
        ("mlmodels", Some(MODEL_NAMESPACE))
    } else {
        ("projects", None)
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("berth.dev", "v1alpha1", kind),
        plural,
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Whether a refusal is the API server still loading an admission policy rather than the policy's
/// answer (messages of k8s.io/apiserver's admission/plugin/policy/generic).
fn policies_loading(message: &str) -> bool {
    message.contains("failed to find resource referenced by paramKind")
        || message.contains("not yet synced to use for admission")
        || message.contains("failed to configure policy")
}

/// Creates `object` in a server-side dry run: the answer, or the refusal's message.
async fn dry_create(client: &Client, object: &Value) -> Result<std::result::Result<(), String>> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    match api(client, &serde_json::to_value(&object)?)
        .create(&params, &object)
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(kube::Error::Api(status)) => Ok(Err(format!("{} ({})", status.message, status.code))),
        Err(other) => bail!("not an answer from the API server: {other}"),
    }
}

#[tokio::test]
async fn malformed_projects_and_models_are_refused_at_admission_with_their_reason() -> Result<()> {
    let cluster = berth_testenv::shared()?;
    let admin = cluster.client().await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": MODEL_NAMESPACE}}))?;
    let _ = Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "faults-tenant-creates-projects"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth-project-creator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}],
    }))?;
    let _ = Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await;
    let tenant_client = cluster.impersonate(TENANT, &[]).await?;

    // The API server loads ValidatingAdmissionPolicies, their bindings and their parameters (the
    // platform settings) through informers, and resolves a policy's paramKind through a discovery
    // cache it refreshes on its own schedule: for some seconds after Berth's install (tens under
    // load) a policy may not be in force yet, or refuse every request it matches with "failed to
    // configure policy: failed to find resource referenced by paramKind" or "... not yet synced to
    // use for admission" (Kubernetes' own integration tests wait the same way). This suite's
    // cluster starts right before this test, so an answer that is one of those (or an acceptance,
    // or a valid object refused) is asked again, once a second, until LOADING has passed since the
    // first; any other wrong message fails at once.
    const LOADING: Duration = Duration::from_secs(60);
    let started = Instant::now();

    // Controls: the same paths accept valid input.
    for (who, object) in [
        (
            &admin,
            project(
                "fine-input",
                owned(json!({"members": [{"kind": "User", "name": "bob", "role": "viewer"}]})),
            ),
        ),
        (&tenant_client, project("fine-tenant", tenant(json!({})))),
        (&admin, model("fine-model", sourced(json!({"replicas": 2})))),
    ] {
        while let Err(message) = dry_create(who, &object).await? {
            if started.elapsed() > LOADING {
                bail!("a valid {} was refused: {message}", object["kind"]);
            }
            eprintln!(
                "a valid {} was refused, asking again in 1 s: {message}",
                object["kind"]
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    let cases = cases();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut refused = Vec::new();
    // Wrong answers that waiting cannot change: they fail the test whatever happens later.
    let mut wrong = Vec::new();
    // Answers that may still be the policies loading: asked again.
    let mut loading = Vec::new();
    let mut pending: Vec<&Case> = cases.iter().collect();
    let mut round = 0;
    while !pending.is_empty() {
        round += 1;
        loading.clear();
        let mut again = Vec::new();
        for case in pending {
            let client = if case.who == Who::Tenant {
                &tenant_client
            } else {
                &admin
            };
            match dry_create(client, &case.object).await? {
                Ok(()) => {
                    loading.push(format!("{}: accepted", case.what));
                    again.push(case);
                }
                Err(message) => {
                    let missing: Vec<&&str> = case
                        .says
                        .iter()
                        .filter(|s| !message.contains(**s))
                        .collect();
                    if missing.is_empty() {
                        let when = if round > 1 {
                            format!(
                                " (round {round}, {:.1} s in)",
                                started.elapsed().as_secs_f64()
                            )
                        } else {
                            String::new()
                        };
                        refused.push(format!("refused {}{when}: {message}", case.what));
                        continue;
                    }
                    let failure = format!(
                        "{}: refused, but the message lacks {missing:?}: {message}",
                        case.what
                    );
                    if policies_loading(&message) {
                        loading.push(failure);
                        again.push(case);
                    } else {
                        wrong.push(failure);
                    }
                }
            }
        }
        pending = again;
        if pending.is_empty() || started.elapsed() > LOADING {
            break;
        }
        eprintln!(
            "{} cases not refused with their reason yet (round {round}, {:.1} s in); asking again in 1 s:\n  {}",
            loading.len(),
            started.elapsed().as_secs_f64(),
            loading.join("\n  ")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let failures: Vec<String> = wrong.into_iter().chain(loading).collect();
    // The failures first: CI shows the head of a long output.
    if !failures.is_empty() {
        eprintln!(
            "NOT REFUSED WITH THEIR REASON after {round} rounds:\n  {}",
            failures.join("\n  ")
        );
    }
    for line in &refused {
        eprintln!("{line}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed specs were not refused with their reason:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} malformed specs refused, each with its reason",
        cases.len()
    );
    Ok(())
}

#[test]
fn only_a_policy_still_loading_is_asked_again() {
    // The messages k8s.io/apiserver v0.36.3 gives while a policy's paramKind is not resolved or
    // its parameters' informer not synced (admission/plugin/policy/generic), as the API server
    // wraps them for a denied request.
    for loading in [
        "projects.berth.dev \"bad-tenant\" is forbidden: ValidatingAdmissionPolicy 'berth-project-limits' with binding 'berth-project-limits' denied request: failed to configure policy: failed to find resource referenced by paramKind: 'berth.dev/v1alpha1, Kind=PlatformSettings'",
        "projects.berth.dev \"bad-tenant\" is forbidden: ValidatingAdmissionPolicy 'berth-project-limits' with binding 'berth-project-limits' denied request: failed to configure binding: paramKind kind `berth.dev/v1alpha1, Kind=PlatformSettings` not yet synced to use for admission",
    ] {
        assert!(policies_loading(loading), "{loading}");
    }
    for answer in [
        "projects.berth.dev \"bad-tenant\" is forbidden: ValidatingAdmissionPolicy 'berth-project-limits' with binding 'berth-project-limits' denied request: quota above the platform maximum needs a platform admin: cpu: 1000 asked, the maximum is 64",
        "Project.berth.dev \"bad-input\" is invalid: spec.owners: Invalid value: each owner must be a non-empty user name of at most 253 characters",
    ] {
        assert!(!policies_loading(answer), "{answer}");
    }
}
