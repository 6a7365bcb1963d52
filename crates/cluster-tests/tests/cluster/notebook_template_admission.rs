//! What admission says of NotebookTemplates and Notebooks' template fields, and the chart's default
//! template as the API server and the controller's resolution take it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;

use crate::notebook_templates::{refusal, template};
use crate::support::{eventually, unique, with_operator};

#[tokio::test]
async fn a_bad_template_is_refused_with_a_message_an_admin_understands() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let templates: Api<NotebookTemplate> = Api::all(admin.clone());
    let base = json!({
        "displayName": "Lab",
        "images": [{"id": "a", "image": "x/a"}, {"id": "b", "image": "x/b"}],
        "defaultImage": "a",
        "bundles": [{"id": "s"}],
        "defaultBundle": "s",
    });
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a redirect to nothing",
            json!({"images": [{"id": "a", "image": "x/a", "redirect": {"to": "z"}}]}),
            "an image's redirect.to must name another image id of the same template",
        ),
        (
            "a redirect to itself",
            json!({"images": [{"id": "a", "image": "x/a", "redirect": {"to": "a"}}]}),
            "an image's redirect.to must name another image id of the same template",
        ),
        (
            "two images with one id",
            json!({"images": [{"id": "a", "image": "x/a"}, {"id": "a", "image": "x/b"}]}),
            "every images[].id must be unique within the template",
        ),
        (
            "a default image that is not there",
            json!({"defaultImage": "z"}),
            "defaultImage must be the id of one of the template's images",
        ),
        (
            "a default bundle that is not there",
            json!({"defaultBundle": "z"}),
            "defaultBundle must be the id of one of the template's bundles",
        ),
        (
            "bundles without a default",
            json!({"defaultBundle": null}),
            "set defaultBundle exactly when the template has bundles",
        ),
        (
            "a GPU resource that is no device plugin's",
            json!({"bundles": [{"id": "s", "gpu": {"resource": "gpu", "count": 1}}]}),
            "gpu.resource must be a device plugin's extended resource",
        ),
        (
            "a Kubernetes resource as a GPU",
            json!({"bundles": [{"id": "s", "gpu": {"resource": "example.kubernetes.io/gpu", "count": 1}}]}),
            "gpu.resource must be a device plugin's extended resource",
        ),
        (
            "idle timeout bounds the wrong way round",
            json!({"idleTimeout": {"minimum": "2h", "maximum": "1h"}}),
            "idleTimeout needs minimum <= defaultTimeout <= maximum",
        ),
    ];
    let mut failures = Vec::new();
    for (what, change, expected) in cases {
        let mut spec = base.clone();
        if let (Some(spec), Some(change)) = (spec.as_object_mut(), change.as_object()) {
            for (k, v) in change {
                if v.is_null() {
                    spec.remove(k);
                } else {
                    spec.insert(k.clone(), v.clone());
                }
            }
        }
        let name = unique("nbt-bad");
        let result = templates
            .create(&PostParams::default(), &template(&name, spec)?)
            .await;
        match refusal(result) {
            Ok((422, message)) if message.contains(expected) => {}
            Ok((code, message)) => failures.push(format!("{what}: {code} {message}")),
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    // The base itself is fine (so the refusals above are about their one change).
    let name = unique("nbt-good");
    templates
        .create(&PostParams::default(), &template(&name, base)?)
        .await?;
    templates.delete(&name, &Default::default()).await?;

    // A Notebook picks an image one way and resources one way.
    let ns = crate::support::project_namespace(&admin, "nbt-cel").await?;
    let notebooks: Api<Notebook> = Api::namespaced(admin.clone(), &ns);
    for (what, spec, expected) in [
        (
            "image and imageId",
            json!({"image": "x/a", "imageId": "a"}),
            "set image (an image reference, if the template allows custom images) or imageId (one of the template's images), not both",
        ),
        (
            "bundle and resources",
            json!({"bundle": "s", "resources": {"requests": {"cpu": "1"}}}),
            "set bundle (one of the template's resource bundles) or resources (explicit, within the template's custom maximum), not both",
        ),
    ] {
        let notebook: Notebook = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": ns}, "spec": spec,
        }))?;
        match refusal(notebooks.create(&PostParams::default(), &notebook).await) {
            Ok((422, message)) if message.contains(expected) => {}
            Ok((code, message)) => failures.push(format!("notebook with {what}: {code} {message}")),
            Err(e) => failures.push(format!("notebook with {what}: {e}")),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Creates (as `admin`) a NotebookTemplate whose project selector reads a `cost.example.com/`
/// label; returns the refusal's message. Called by the allowlist test while PlatformSettings lets
/// tenants set that prefix (it owns that window of the shared settings).
pub async fn forgeable_selector_refusal(admin: &Client) -> Result<String> {
    let templates: Api<NotebookTemplate> = Api::all(admin.clone());
    let name = unique("nbt-forgeable");
    let forgeable = template(
        &name,
        json!({
            "displayName": "Forgeable",
            "images": [{"id": "a", "image": "x/a"}],
            "defaultImage": "a",
            "projects": {"matchExpressions": [{"key": "cost.example.com/center", "operator": "Exists"}]},
        }),
    )?;
    eventually(
        "the template selector policy to see the tenant prefixes",
        Duration::from_secs(30),
        || async {
            match templates.create(&PostParams::default(), &forgeable).await {
                Ok(_) => {
                    templates.delete(&name, &Default::default()).await?;
                    Ok(None)
                }
                Err(kube::Error::Api(status)) if status.code == 403 => Ok(Some(status.message)),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await
}

/// The chart's default template, as Helm renders it: admitted by the API server (schema and CEL,
/// a dry run: a default template would change other tests' notebooks), with Berth's Jupyter image
/// by digest; and a notebook like the real-node test's (explicit resources, no image) and one with
/// the GPU bundle resolve against it.
#[tokio::test]
async fn the_charts_default_template_is_admitted_and_offers_berths_jupyter_image() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let helm = berth_testenv::chart::Helm::locate(cluster.kubeconfig_path())?;
    let digest = format!("sha256:{}", "b".repeat(64));
    let rendered = helm
        .run(&[
            "template",
            berth_testenv::chart::RELEASE,
            berth_testenv::chart::CHART,
            "--namespace",
            berth_testenv::chart::NAMESPACE,
            "--show-only",
            "templates/notebook-template.yaml",
            "--set",
            &format!("images.jupyter.digest={digest}"),
        ])
        .await?;
    let objects = berth_testenv::manifests::parse_objects(&rendered, "helm template")?;
    ensure!(objects.len() == 1, "{rendered}");
    let chart_template: NotebookTemplate =
        serde_json::from_value(serde_json::to_value(&objects[0])?)?;
    ensure!(chart_template.name_any() == "jupyter");
    ensure!(
        chart_template
            .annotations()
            .get("berth.dev/default-template")
            .map(String::as_str)
            == Some("true")
    );
    ensure!(
        chart_template.spec.images[0].image
            == format!("{}@{digest}", berth_api::mlmodel::berth_image("jupyter")),
        "{:?}",
        chart_template.spec.images
    );
    Api::<NotebookTemplate>::all(admin.clone())
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &chart_template,
        )
        .await
        .context("the API server refuses the chart's template")?;

    use berth_controllers::notebook::{template::resolve, validate::validate};
    let templates = [std::sync::Arc::new(chart_template)];
    let labels = BTreeMap::from([("berth.dev/project".to_owned(), "team-a".to_owned())]);
    let notebook = |spec: Value| -> Result<Notebook> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": "team-a"}, "spec": spec,
        }))?)
    };
    let realnode_like = notebook(json!({
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "idleTimeout": "10s",
    }))?;
    let resolved = validate(&realnode_like)
        .and_then(|v| resolve(v, &realnode_like, &templates, Some(&labels)))
        .map_err(|e| anyhow::anyhow!("{}: {}", e.reason, e.message))?;
    ensure!(resolved.image == format!("{}@{digest}", berth_api::mlmodel::berth_image("jupyter")));
    let gpu = notebook(json!({"bundle": "gpu-1"}))?;
    let resolved = validate(&gpu)
        .and_then(|v| resolve(v, &gpu, &templates, Some(&labels)))
        .map_err(|e| anyhow::anyhow!("{}: {}", e.reason, e.message))?;
    ensure!(
        resolved
            .resources
            .limits
            .get("nvidia.com/gpu")
            .map(|q| q.0.as_str())
            == Some("1"),
        "{:?}",
        resolved.resources
    );
    Ok(())
}
