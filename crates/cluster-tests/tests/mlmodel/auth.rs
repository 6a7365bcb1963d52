//! Issue 12, authenticated endpoints, on kwok nodes: what admission tells a tenant about
//! `spec.auth` (as the tenant, by impersonation), and what the operator makes of it: the default
//! (kubernetes here: the platform has no identity provider), the visible opt-out (status and the
//! `Auth` column), and an `oidc` model without a client refused with a reason and not served.
//! The answers of real servers to real tokens are tested on the real node (realnode/auth.rs).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use berth_api::mlmodel::MLModel;

use super::{condition, is_true, model_bytes, world};
use crate::support::{self, eventually};

#[tokio::test]
async fn auth_is_explained_at_admission_and_on_by_default() -> Result<()> {
    let w = world("mlm-auth").await?;
    let (cluster, admin) = support::admin().await?;

    // A tenant: an editor of the project's namespace.
    let tenant = "auth-editor@example.com";
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &w.ns);
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "auth-editor"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth-project-editor"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tenant}],
            }))?,
        )
        .await?;
    let as_tenant: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.impersonate(tenant, &[]).await?,
        &w.ns,
        &kube::api::ApiResource::erase::<MLModel>(&()),
    );
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let object = |name: &str, auth: Value| -> Result<kube::api::DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1",
            "kind": "MLModel",
            "metadata": {"name": name},
            "spec": {"source": {"uri": "s3://models/m.onnx"}, "auth": auth},
        }))?)
    };
    // Each valid shape is admitted (the role binding takes a moment to count).
    let valid = [
        json!({"mode": "oidc", "audiences": ["berth-team"], "clients": ["berth-team"], "roles": ["scorer"], "groups": ["risk"]}),
        json!({"mode": "kubernetes", "audiences": ["scoring"], "serviceAccounts": ["batch", "web.frontend"]}),
        json!({"mode": "none"}),
        json!({}),
    ];
    for (i, auth) in valid.iter().enumerate() {
        let model = object(&format!("valid-{i}"), auth.clone())?;
        eventually(
            &format!("the tenant to create a model with auth {auth}"),
            Duration::from_secs(20),
            || async { Ok(as_tenant.create(&dry, &model).await.ok().map(|_| ())) },
        )
        .await?;
    }
    let long = "r".repeat(256);
    let many: Vec<String> = (0..17).map(|i| format!("role-{i}")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "roles-kubernetes",
            json!({"mode": "kubernetes", "roles": ["scorer"]}),
            "auth.roles applies to mode oidc",
        ),
        (
            "roles-no-mode",
            json!({"roles": ["scorer"]}),
            "auth.roles applies to mode oidc",
        ),
        (
            "groups-none",
            json!({"mode": "none", "groups": ["risk"]}),
            "auth.groups applies to mode oidc",
        ),
        (
            "clients-kubernetes",
            json!({"mode": "kubernetes", "clients": ["berth-team"]}),
            "auth.clients applies to mode oidc",
        ),
        (
            "accounts-oidc",
            json!({"mode": "oidc", "serviceAccounts": ["batch"]}),
            "auth.serviceAccounts applies to mode kubernetes",
        ),
        (
            "accounts-other-namespace",
            json!({"mode": "kubernetes", "serviceAccounts": ["other/batch"]}),
            "not namespace/name",
        ),
        (
            "audiences-none",
            json!({"mode": "none", "audiences": ["x"]}),
            "auth.audiences needs auth.mode oidc or kubernetes",
        ),
        (
            "too-many-roles",
            json!({"mode": "oidc", "roles": many}),
            "must have at most 16 items",
        ),
        (
            "long-role",
            json!({"mode": "oidc", "roles": [long]}),
            "may not be more than 255 bytes",
        ),
        (
            "unknown-mode",
            json!({"mode": "basic"}),
            "Unsupported value: \"basic\"",
        ),
    ];
    let mut failures = Vec::new();
    for (name, auth, message) in cases {
        match as_tenant.create(&dry, &object(name, auth)?).await {
            Ok(_) => failures.push(format!("{name}: admitted")),
            Err(e) if e.to_string().contains(message) => {}
            Err(e) => failures.push(format!("{name}: expected {message:?}, got {e}")),
        }
    }
    // Found in review: the onnx server is what checks callers, so an editor may not swap its
    // image (nor the canary's) unless the model opts out, nor pass it flags beyond its tuning;
    // an auth list item may not hide two names behind a comma.
    let spec_of = |name: &str, spec: Value| -> Result<kube::api::DynamicObject> {
        let mut full = json!({"source": {"uri": "s3://models/m.onnx"}});
        if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
            full.extend(extra.clone());
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1",
            "kind": "MLModel",
            "metadata": {"name": name},
            "spec": full,
        }))?)
    };
    let image = "registry.example.com/mine:1";
    let image_message = "the onnx runtime checks callers itself, so it runs the platform's image";
    let args_message = "the onnx runtime takes only these arguments";
    let runtime_cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "onnx-image-default-auth",
            json!({"runtime": {"image": image}}),
            Some(image_message),
        ),
        (
            "onnx-image-oidc",
            json!({"runtime": {"name": "onnx", "image": image}, "auth": {"mode": "oidc"}}),
            Some(image_message),
        ),
        (
            "canary-onnx-image",
            json!({"canary": {"runtime": {"image": image}, "weight": 10}}),
            Some(image_message),
        ),
        (
            "onnx-image-none",
            json!({"runtime": {"image": image}, "auth": {"mode": "none"}}),
            None,
        ),
        (
            "custom-image",
            json!({"runtime": {"name": "custom", "image": image, "port": 8080}}),
            None,
        ),
        (
            "onnx-jwks-arg",
            json!({"runtime": {"args": ["--oidc-jwks-url=http://evil/keys"]}}),
            Some(args_message),
        ),
        (
            "onnx-split-arg",
            json!({"runtime": {"args": ["--kubernetes-namespace", "other"]}}),
            Some(args_message),
        ),
        (
            "onnx-proxy-arg",
            json!({"runtime": {"args": ["proxy"]}}),
            Some(args_message),
        ),
        (
            "canary-onnx-arg",
            json!({"canary": {"runtime": {"args": ["--auth=none"]}, "weight": 10}}),
            Some(args_message),
        ),
        (
            "onnx-tuning-arg",
            json!({"runtime": {"args": ["--inference-threads=2", "--max-request-bytes=1048576"]}}),
            None,
        ),
        (
            "comma-group",
            json!({"auth": {"mode": "oidc", "groups": ["risk,ops"]}}),
            Some("may not contain ','"),
        ),
    ];
    for (name, spec, message) in runtime_cases {
        match (as_tenant.create(&dry, &spec_of(name, spec)?).await, message) {
            (Ok(_), None) => {}
            (Ok(_), Some(_)) => failures.push(format!("{name}: admitted")),
            (Err(e), Some(message)) if e.to_string().contains(message) => {}
            (Err(e), _) => failures.push(format!("{name}: expected {message:?}, got {e}")),
        }
    }
    if !failures.is_empty() {
        bail!("auth admission:\n{}", failures.join("\n"));
    }

    // The default, without an identity provider: kubernetes, with the model's own audience.
    let (uri, sha) = w
        .upload("guarded/v1/model.onnx", &model_bytes("a-v1;", 4 * 1024))
        .await?;
    w.create("guarded", json!({"source": {"uri": uri, "sha256": sha}}))
        .await?;
    let audience = format!("mlmodels.berth.dev/{}/guarded", w.ns);
    let guarded = w
        .until(
            "guarded",
            "guarded to be Ready",
            Duration::from_secs(60),
            |m| is_true(m, "Ready"),
        )
        .await?;
    let auth = guarded
        .status
        .as_ref()
        .and_then(|s| s.auth.clone())
        .context("no status.auth")?;
    assert_eq!(auth.mode, "kubernetes");
    assert_eq!(auth.audiences, vec![audience.clone()]);
    assert_eq!(
        condition(&guarded, "AuthReady"),
        Some(("True".into(), "ServiceAccountTokens".into()))
    );
    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), &w.ns);
    let pod = deployments
        .get("guarded")
        .await?
        .spec
        .and_then(|s| s.template.spec)
        .context("no pod template")?;
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("berth-model-auth")
    );
    let args = pod.containers[0].args.clone().unwrap_or_default();
    assert!(args.contains(&"--auth=kubernetes".to_owned()), "{args:?}");
    assert!(
        args.contains(&format!("--kubernetes-audience={audience}")),
        "{args:?}"
    );

    // The opt-out is visible: status.auth.mode and the Auth column of `kubectl get`.
    w.patch_spec("guarded", json!({"auth": {"mode": "none"}}))
        .await?;
    w.until(
        "guarded",
        "status.auth.mode to say none",
        Duration::from_secs(30),
        |m| {
            m.status
                .as_ref()
                .and_then(|s| s.auth.as_ref())
                .is_some_and(|a| a.mode == "none")
        },
    )
    .await?;
    let table: Value = {
        let request = http::Request::get(format!(
            "/apis/berth.dev/v1alpha1/namespaces/{}/mlmodels/guarded",
            w.ns
        ))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())?;
        w.client.request(request).await?
    };
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .context("no columns")?
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let at = columns
        .iter()
        .position(|c| c == "Auth")
        .context(format!("no Auth column in {columns:?}"))?;
    assert_eq!(table["rows"][0]["cells"][at], "none", "{table}");

    // oidc asked for, but the platform has no identity provider: a reason, and nothing serves
    // (the Service stays; no Deployment, so no unchecked pod).
    w.create(
        "needs-oidc",
        json!({"source": {"uri": uri}, "auth": {"mode": "oidc"}}),
    )
    .await?;
    let refused = w
        .until(
            "needs-oidc",
            "needs-oidc to say AuthUnavailable",
            Duration::from_secs(30),
            |m| condition(m, "AuthReady").is_some_and(|(s, _)| s == "False"),
        )
        .await?;
    assert_eq!(
        condition(&refused, "AuthReady"),
        Some(("False".into(), "AuthUnavailable".into()))
    );
    assert_eq!(
        condition(&refused, "Ready"),
        Some(("False".into(), "AuthUnavailable".into()))
    );
    // It stays so: give the operator time to act on the download it makes meanwhile.
    eventually(
        "needs-oidc to be downloaded",
        Duration::from_secs(30),
        || async {
            let m = w.models().get("needs-oidc").await?;
            Ok(is_true(&m, "Downloaded").then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        deployments.get_opt("needs-oidc").await?.is_none(),
        "an oidc model without a client must not run unchecked"
    );
    Ok(())
}
