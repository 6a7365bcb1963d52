//! The console's *Notebooks* and *Models* pages against the real control plane (kwok nodes, the
//! operator running), driven as browser sessions of a project's editor, viewer and an outsider,
//! the console acting by impersonation. The editor spawns a notebook from a template's form,
//! stops and starts it, and deploys a model; the viewer sees no buttons and their forged POSTs
//! (their own valid CSRF token: only the API server can refuse them) are refused by the API
//! server with the role that would allow them, the victim read back unchanged by the admin; the
//! outsider's direct URLs are 403.

use anyhow::{Result, ensure};
use axum::http::StatusCode;
use berth_api::mlmodel::MLModel;
use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::{Browser, console};
use crate::project::{create, wait_ready};
use crate::support::{unique, with_operator};

/// A project with an editor, a viewer, and an outsider's browser besides.
struct Team {
    name: String,
    editor: Browser,
    viewer: Browser,
    outsider: Browser,
}

async fn team(admin: &kube::Client, prefix: &str) -> Result<Team> {
    let name = unique(prefix);
    let editor = format!("editor-{name}@example.com");
    let viewer = format!("viewer-{name}@example.com");
    create(
        admin,
        &name,
        json!({
            "owners": [format!("owner-{name}@example.com")],
            "members": [
                {"kind": "User", "name": editor, "role": "editor"},
                {"kind": "User", "name": viewer, "role": "viewer"},
            ],
        }),
    )
    .await?;
    wait_ready(admin, &name).await?;
    let console = console(admin).await?;
    Ok(Team {
        editor: Browser::new(&console, &editor, &[])?,
        viewer: Browser::new(&console, &viewer, &[])?,
        outsider: Browser::new(&console, &format!("eve-{name}@example.com"), &["other"])?,
        name,
    })
}

/// A template like the chart's default (Berth's Jupyter image, one small bundle), offered to
/// project `project` only.
fn chart_like_template(name: &str, project: &str) -> Result<NotebookTemplate> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "NotebookTemplate",
        "metadata": {"name": name},
        "spec": {
            "displayName": "Jupyter (console test)",
            "images": [{"id": "jupyter", "image": "berth.dev/jupyter:test", "labels": {"python": "3.12"}}],
            "defaultImage": "jupyter",
            "bundles": [{"id": "small", "displayName": "Small",
                         "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}},
                        {"id": "medium", "displayName": "Medium",
                         "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}],
            "defaultBundle": "small",
            "projects": {"matchLabels": {"berth.dev/project": project}},
        },
    }))?)
}

async fn stopped(admin: &kube::Client, ns: &str, name: &str) -> Result<bool> {
    Ok(Api::<Notebook>::namespaced(admin.clone(), ns)
        .get(name)
        .await?
        .spec
        .stopped)
}

#[tokio::test]
async fn an_editor_spawns_stops_starts_and_resizes_a_notebook_and_a_viewers_forged_posts_change_nothing()
-> Result<()> {
    let (_, admin) = with_operator().await?;
    let began = std::time::Instant::now();
    let t = team(&admin, "console-nb").await?;
    let ns = t.name.clone();
    let template = unique("console-nbt");
    let templates = Api::<NotebookTemplate>::all(admin.clone());
    templates
        .create(
            &PostParams::default(),
            &chart_like_template(&template, &ns)?,
        )
        .await?;
    let page = format!("/projects/{ns}/notebooks");

    // The Project page links here.
    let project_page = t.editor.get(&format!("/projects/{ns}")).await?;
    ensure!(project_page.body.contains(&format!("href=\"{page}\"")));
    // The editor sees the spawner from the template; the viewer sees the page, no buttons.
    let editors = t.editor.get(&page).await?;
    ensure!(editors.status == StatusCode::OK, "{}", editors.body);
    ensure!(
        editors.body.contains("Jupyter (console test)"),
        "{}",
        editors.body
    );
    ensure!(
        editors.body.contains("Small (0.1 CPU, 512 MiB)"),
        "the bundle in human units"
    );
    ensure!(editors.body.contains("Start a notebook"));
    let viewers = t.viewer.get(&page).await?;
    ensure!(viewers.status == StatusCode::OK, "{}", viewers.body);
    ensure!(
        !viewers.body.contains("Start a notebook") && !viewers.body.contains("name=\"action\"")
    );
    // The outsider: 403 on the project's notebooks and models, nothing of it shown.
    for path in [page.clone(), format!("/projects/{ns}/models")] {
        let answer = t.outsider.get(&path).await?;
        ensure!(
            answer.status == StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
        ensure!(answer.body.contains("You cannot do this here"));
        ensure!(
            !answer.body.contains("editor-"),
            "nothing of the project leaks"
        );
    }

    // Bad input: the field's error beside it, the values kept, nothing created.
    let bad = t
        .editor
        .post(
            &page,
            &[
                ("template", &template),
                ("name", "Lab_1"),
                ("imageId", "jupyter"),
                ("bundle", "small"),
                ("idleTimeout", "2h"),
            ],
        )
        .await?;
    ensure!(
        bad.status == StatusCode::BAD_REQUEST,
        "{} {}",
        bad.status,
        bad.body
    );
    ensure!(
        bad.body.contains("a name starts with a letter"),
        "{}",
        bad.body
    );
    ensure!(
        bad.body.contains("value=\"Lab_1\"") && bad.body.contains("value=\"2h\""),
        "values kept"
    );

    // The viewer's forged spawn: the API server refuses it, nothing is created.
    let fields = [
        ("template", template.as_str()),
        ("name", "lab"),
        ("imageId", "jupyter"),
        ("bundle", "small"),
        ("env.0.name", "GREETING"),
        ("env.0.value", "hello there"),
        ("volumes.0.name", "data"),
        ("volumes.0.mountPath", "/data"),
        ("volumes.0.size", "1Gi"),
        ("volumes.0.accessMode", ""),
        ("volumes.1.name", ""),
    ];
    let forged = t.viewer.post(&page, &fields).await?;
    ensure!(
        forged.status == StatusCode::FORBIDDEN,
        "{} {}",
        forged.status,
        forged.body
    );
    ensure!(forged.body.contains("You cannot do this here") && forged.body.contains("editor"));
    let notebooks = Api::<Notebook>::namespaced(admin.clone(), &ns);
    ensure!(
        notebooks.get_opt("lab").await?.is_none(),
        "the viewer created nothing"
    );

    // The editor spawns it: created as the editor, from the template.
    let spawned = t.editor.post(&page, &fields).await?;
    ensure!(
        spawned.status == StatusCode::SEE_OTHER
            && spawned.location.as_deref() == Some(page.as_str()),
        "{} {}",
        spawned.status,
        spawned.body
    );
    let lab = notebooks.get("lab").await?;
    ensure!(
        lab.spec.env.len() == 1
            && lab.spec.env[0].name == "GREETING"
            && lab.spec.env[0].value == "hello there",
        "the variable, its value as typed: {:?}",
        lab.spec.env
    );
    ensure!(
        lab.spec.volumes.len() == 1 && lab.spec.volumes[0].name == "data",
        "one data volume, the empty rows skipped: {:?}",
        lab.spec.volumes
    );
    ensure!(lab.spec.template.as_deref() == Some(template.as_str()));
    ensure!(
        lab.spec.image_id.as_deref() == Some("jupyter")
            && lab.spec.bundle.as_deref() == Some("small")
    );
    ensure!(!lab.spec.stopped);
    let listed = t.editor.get(&page).await?;
    ensure!(
        listed.body.contains("id=\"nb-lab\"") && listed.body.contains("value=\"stop\""),
        "{}",
        listed.body
    );
    // Its name is taken now: said beside the field.
    let again = t.editor.post(&page, &fields).await?;
    ensure!(again.status == StatusCode::BAD_REQUEST && again.body.contains("already exists"));

    // The viewer's forged stop and delete, and the outsider's: refused, the notebook unchanged.
    let action = format!("{page}/lab");
    for what in ["stop", "delete"] {
        let forged = t.viewer.post(&action, &[("action", what)]).await?;
        ensure!(
            forged.status == StatusCode::FORBIDDEN,
            "{what}: {} {}",
            forged.status,
            forged.body
        );
        ensure!(forged.body.contains("You cannot do this here") && forged.body.contains("editor"));
        let outsiders = t.outsider.post(&action, &[("action", what)]).await?;
        ensure!(
            outsiders.status == StatusCode::FORBIDDEN,
            "{what}: {}",
            outsiders.body
        );
    }
    ensure!(!stopped(&admin, &ns, "lab").await?, "still running");

    // The editor stops it, then starts it again (what a culled notebook needs too).
    let stop = t.editor.post(&action, &[("action", "stop")]).await?;
    ensure!(
        stop.status == StatusCode::SEE_OTHER,
        "{} {}",
        stop.status,
        stop.body
    );
    ensure!(stopped(&admin, &ns, "lab").await?);
    let listed = t.editor.get(&page).await?;
    ensure!(
        listed.body.contains("value=\"start\""),
        "a Start button: {}",
        listed.body
    );
    // Opening it through the console's proxy now says it is not running, and links its page.
    let proxied = t.editor.get(&format!("/notebook/{ns}/lab/lab")).await?;
    ensure!(
        proxied.status == StatusCode::SERVICE_UNAVAILABLE
            && proxied
                .body
                .contains(&format!("href=\"/projects/{ns}/notebooks/lab\"")),
        "{} {}",
        proxied.status,
        proxied.body
    );
    let forged = t.viewer.post(&action, &[("action", "start")]).await?;
    ensure!(forged.status == StatusCode::FORBIDDEN);
    ensure!(
        stopped(&admin, &ns, "lab").await?,
        "the viewer did not start it"
    );
    let start = t.editor.post(&action, &[("action", "start")]).await?;
    ensure!(
        start.status == StatusCode::SEE_OTHER,
        "{} {}",
        start.status,
        start.body
    );
    ensure!(!stopped(&admin, &ns, "lab").await?);

    // Its own page: the editor may resize it, the viewer sees it without a form, the outsider
    // gets 403; a resize the template does not allow is the field's error; the viewer's forged
    // resize is refused; the editor's moves it to another bundle.
    let detail = t.editor.get(&action).await?;
    ensure!(detail.status == StatusCode::OK, "{}", detail.body);
    ensure!(detail.body.contains("Notebook lab") && detail.body.contains("value=\"resize\""));
    ensure!(
        detail.body.contains("Medium (0.2 CPU, 1 GiB)"),
        "{}",
        detail.body
    );
    let viewers = t.viewer.get(&action).await?;
    ensure!(viewers.status == StatusCode::OK && !viewers.body.contains("name=\"action\""));
    ensure!(t.outsider.get(&action).await?.status == StatusCode::FORBIDDEN);
    let bad = t
        .editor
        .post(&action, &[("action", "resize"), ("bundle", "huge")])
        .await?;
    ensure!(
        bad.status == StatusCode::BAD_REQUEST && bad.body.contains("no bundle"),
        "{}",
        bad.body
    );
    let forged = t
        .viewer
        .post(&action, &[("action", "resize"), ("bundle", "medium")])
        .await?;
    ensure!(
        forged.status == StatusCode::FORBIDDEN,
        "{} {}",
        forged.status,
        forged.body
    );
    ensure!(notebooks.get("lab").await?.spec.bundle.as_deref() == Some("small"));
    let resized = t
        .editor
        .post(&action, &[("action", "resize"), ("bundle", "medium")])
        .await?;
    ensure!(
        resized.status == StatusCode::SEE_OTHER,
        "{} {}",
        resized.status,
        resized.body
    );
    ensure!(notebooks.get("lab").await?.spec.bundle.as_deref() == Some("medium"));

    // The editor deletes it.
    let delete = t.editor.post(&action, &[("action", "delete")]).await?;
    ensure!(
        delete.status == StatusCode::SEE_OTHER,
        "{} {}",
        delete.status,
        delete.body
    );
    let gone = notebooks.get_opt("lab").await?;
    ensure!(
        gone.is_none_or(|nb| nb.metadata.deletion_timestamp.is_some()),
        "deleted"
    );
    templates
        .delete(&template, &DeleteParams::default())
        .await?;
    eprintln!(
        "[console::workloads] notebooks in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test]
async fn an_editor_deploys_a_model_from_the_form_and_sees_its_page() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let began = std::time::Instant::now();
    let t = team(&admin, "console-mm").await?;
    let ns = t.name.clone();
    let list = format!("/projects/{ns}/models");
    let fields = [
        ("name", "iris"),
        ("sourceUri", "s3://models/iris/model.onnx"),
        ("runtime", "onnx"),
        ("replicas", "1"),
    ];

    let editors = t.editor.get(&list).await?;
    ensure!(
        editors.status == StatusCode::OK && editors.body.contains("Deploy a model"),
        "{}",
        editors.body
    );
    let viewers = t.viewer.get(&list).await?;
    ensure!(viewers.status == StatusCode::OK && !viewers.body.contains("Deploy a model"));
    // The viewer's forged deploy: refused by the API server, nothing created.
    let forged = t.viewer.post(&list, &fields).await?;
    ensure!(
        forged.status == StatusCode::FORBIDDEN,
        "{} {}",
        forged.status,
        forged.body
    );
    ensure!(forged.body.contains("You cannot do this here") && forged.body.contains("editor"));
    let models = Api::<MLModel>::namespaced(admin.clone(), &ns);
    ensure!(models.get_opt("iris").await?.is_none());

    let deployed = t.editor.post(&list, &fields).await?;
    let page = format!("{list}/iris");
    ensure!(
        deployed.status == StatusCode::SEE_OTHER
            && deployed.location.as_deref() == Some(page.as_str()),
        "{} {}",
        deployed.status,
        deployed.body
    );
    let iris = models.get("iris").await?;
    ensure!(iris.spec.source.uri == "s3://models/iris/model.onnx");
    let shown = t.editor.get(&page).await?;
    ensure!(shown.status == StatusCode::OK, "{}", shown.body);
    ensure!(
        shown.body.contains("Model iris") && shown.body.contains("How to call it"),
        "{}",
        shown.body
    );
    ensure!(
        shown.body.contains("Set the canary"),
        "the editor's canary form"
    );
    let listed = t.editor.get(&list).await?;
    ensure!(listed.body.contains(&format!("href=\"{page}\"")));
    // The viewer sees it, without buttons; a forged delete is refused; the outsider gets 403.
    let viewers = t.viewer.get(&page).await?;
    ensure!(viewers.status == StatusCode::OK && !viewers.body.contains("name=\"action\""));
    let forged = t.viewer.post(&page, &[("action", "delete")]).await?;
    ensure!(forged.status == StatusCode::FORBIDDEN, "{}", forged.body);
    let outsiders = t.outsider.get(&page).await?;
    ensure!(
        outsiders.status == StatusCode::FORBIDDEN,
        "{}",
        outsiders.body
    );
    ensure!(models.get_opt("iris").await?.is_some(), "still there");
    // A canary without a source or runtime: the field's error, nothing written.
    let bad = t
        .editor
        .post(&page, &[("action", "canary"), ("weight", "10")])
        .await?;
    ensure!(
        bad.status == StatusCode::BAD_REQUEST,
        "{} {}",
        bad.status,
        bad.body
    );
    ensure!(bad.body.contains("canarySourceUri") && bad.body.contains("value=\"10\""));
    ensure!(models.get("iris").await?.spec.canary.is_none());
    // The editor starts a canary, a viewer's forged rollback is refused, the editor rolls back.
    let canary = t
        .editor
        .post(
            &page,
            &[
                ("action", "canary"),
                ("canarySourceUri", "s3://models/iris/v2.onnx"),
                ("weight", "10"),
            ],
        )
        .await?;
    ensure!(
        canary.status == StatusCode::SEE_OTHER,
        "{} {}",
        canary.status,
        canary.body
    );
    let set = models.get("iris").await?.spec.canary;
    ensure!(set.as_ref().is_some_and(|c| c.weight == 10), "{set:?}");
    let shown = t.editor.get(&page).await?;
    ensure!(shown.body.contains("value=\"promote\"") && shown.body.contains("value=\"rollback\""));
    let forged = t.viewer.post(&page, &[("action", "rollback")]).await?;
    ensure!(forged.status == StatusCode::FORBIDDEN, "{}", forged.body);
    ensure!(models.get("iris").await?.spec.canary == set, "unchanged");
    let rollback = t.editor.post(&page, &[("action", "rollback")]).await?;
    ensure!(
        rollback.status == StatusCode::SEE_OTHER,
        "{} {}",
        rollback.status,
        rollback.body
    );
    ensure!(
        models.get("iris").await?.spec.canary.is_none(),
        "rolled back"
    );
    // Again, and promoted: the canary's source becomes the model's.
    let canary = t
        .editor
        .post(
            &page,
            &[
                ("action", "canary"),
                ("canarySourceUri", "s3://models/iris/v3.onnx"),
                ("weight", "20"),
            ],
        )
        .await?;
    ensure!(canary.status == StatusCode::SEE_OTHER, "{}", canary.body);
    let promote = t.editor.post(&page, &[("action", "promote")]).await?;
    ensure!(
        promote.status == StatusCode::SEE_OTHER,
        "{} {}",
        promote.status,
        promote.body
    );
    let promoted = models.get("iris").await?.spec;
    ensure!(
        promoted.source.uri == "s3://models/iris/v3.onnx" && promoted.canary.is_none(),
        "{promoted:?}"
    );
    // Nothing left to roll back: said, nothing written.
    let none = t.editor.post(&page, &[("action", "rollback")]).await?;
    ensure!(
        none.status == StatusCode::CONFLICT && none.body.contains("has no canary"),
        "{}",
        none.body
    );
    eprintln!(
        "[console::workloads] models in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
