//! *Notebooks* (`/projects/<name>/notebooks`, docs/console.md "Notebooks"): the project's
//! notebooks ([`views::notebooks::notebook_view`]) with open, start, stop and delete, and the
//! spawner ([`views::spawner::spawner`] from the NotebookTemplates and the namespace's labels;
//! [`views::spawn::parse_spawn`] on POST). Every read and write is the user's
//! (crate::acting): the buttons are drawn when a SelfSubjectAccessReview allows them, and the
//! API server decides each request anyway (a viewer's forged POST is its 403).
//!
//! - `POST /projects/<name>/notebooks`: the spawner form; the Notebook created as the user, or
//!   the page again with the field errors or the API server's message, values kept.
//! - `POST /projects/<name>/notebooks/<notebook>`: `action=start|stop|delete`, the view's merge
//!   patch of `spec.stopped` (or a DELETE) sent as the user; `action=resize`
//!   (crate::notebook_page).
//!
//! Order of checks, nothing written before the last: authenticated (401 / login), the body
//! within [`workloads::MAX_BODY`] (413), same site and the session's CSRF token (403), names
//! (404), the project read as the user (403 / 404), the form (400), the write as the user.

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::members::redirect_after_post;
use crate::projects::{Ctx, context};
use crate::views::form::is_object_name;
use crate::views::notebooks::{NotebookView, notebook_view};
use crate::views::spawn::{NAME_MAX, SpawnContext, parse_spawn};
use crate::views::spawner::{ImageChoice, Spawner, TemplateChoice, spawner};
use crate::workloads::{self, Kept, ProjectRef, field, may_in, refusal};

/// Data volume rows a spawner form offers (`volumes.<i>.*`; the parser reads up to 16).
pub const VOLUME_ROWS: usize = 3;
/// Environment variable rows a spawner form offers (`env.<i>.*`; the parser reads up to 64).
pub const ENV_ROWS: usize = 4;

/// One data volume row of a spawner form, with its submitted values.
pub struct VolumeRow {
    pub i: usize,
    pub name: String,
    pub mount_path: String,
    pub size: String,
    pub access_mode: String,
    pub existing_claim: String,
    pub read_only: bool,
}

/// One environment variable row of a spawner form, with its submitted values.
pub struct EnvRow {
    pub i: usize,
    pub name: String,
    pub value: String,
}

/// The access modes a new volume may ask for (empty: the storage class's default).
pub const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

#[derive(Template)]
#[template(path = "notebooks.html")]
pub struct NotebooksPage {
    pub layout: Layout,
    pub project: String,
    pub namespace: String,
    /// A refusal of the last POST, above the page.
    pub error: String,
    pub notebooks: Result<Vec<NotebookView>, String>,
    pub can_spawn: bool,
    pub can_patch: bool,
    pub can_delete: bool,
    /// Whether the console's proxy would let the caller in (`create notebooks/connect`).
    pub can_open: bool,
    pub spawner: Spawner,
    /// The spawner form as submitted, with its errors.
    pub kept: Kept,
}

impl NotebooksPage {
    /// Whether `t`'s form is the one submitted (its values and errors shown there).
    pub fn is_submitted(&self, t: &TemplateChoice) -> bool {
        self.kept.submitted() && self.kept.value("template") == t.name
    }

    /// The value of `name` in `t`'s form, when that form was submitted.
    pub fn value_in(&self, t: &TemplateChoice, name: &str) -> String {
        if self.is_submitted(t) {
            self.kept.value(name).to_owned()
        } else {
            String::new()
        }
    }

    pub fn image_selected(&self, t: &TemplateChoice, i: &ImageChoice) -> bool {
        if self.is_submitted(t) {
            self.kept.value("imageId") == i.id
        } else {
            i.selected
        }
    }

    pub fn bundle_selected(&self, t: &TemplateChoice, id: &str, default: &bool) -> bool {
        if self.is_submitted(t) {
            self.kept.value("bundle") == id
        } else {
            *default
        }
    }

    /// Whether "resources below" (no bundle) is the choice of `t`'s submitted form.
    pub fn custom_selected(&self, t: &TemplateChoice) -> bool {
        self.is_submitted(t) && self.kept.value("bundle").is_empty()
    }

    /// The errors of `name` in `t`'s form.
    pub fn error_in(&self, t: &TemplateChoice, name: &str) -> String {
        if self.is_submitted(t) {
            self.kept.error(name)
        } else {
            String::new()
        }
    }

    fn kept_in(&self, submitted: bool) -> Option<&Kept> {
        submitted.then_some(&self.kept)
    }

    fn volume_rows(&self, submitted: bool) -> Vec<VolumeRow> {
        let kept = self.kept_in(submitted);
        let v = |i: usize, f: &str| {
            kept.map(|k| k.value(&format!("volumes.{i}.{f}")).to_owned())
                .unwrap_or_default()
        };
        (0..VOLUME_ROWS)
            .map(|i| VolumeRow {
                i,
                name: v(i, "name"),
                mount_path: v(i, "mountPath"),
                size: v(i, "size"),
                access_mode: v(i, "accessMode"),
                existing_claim: v(i, "existingClaim"),
                read_only: !v(i, "readOnly").is_empty(),
            })
            .collect()
    }

    fn env_rows(&self, submitted: bool) -> Vec<EnvRow> {
        let kept = self.kept_in(submitted);
        let v = |i: usize, f: &str| {
            kept.map(|k| k.value(&format!("env.{i}.{f}")).to_owned())
                .unwrap_or_default()
        };
        (0..ENV_ROWS)
            .map(|i| EnvRow {
                i,
                name: v(i, "name"),
                value: v(i, "value"),
            })
            .collect()
    }

    /// The data volume rows of `t`'s form.
    pub fn volumes_in(&self, t: &TemplateChoice) -> Vec<VolumeRow> {
        self.volume_rows(self.is_submitted(t))
    }

    /// The environment variable rows of `t`'s form.
    pub fn env_in(&self, t: &TemplateChoice) -> Vec<EnvRow> {
        self.env_rows(self.is_submitted(t))
    }

    /// The data volume rows of the no-template form.
    pub fn plain_volumes(&self) -> Vec<VolumeRow> {
        self.volume_rows(self.plain_submitted())
    }

    /// The environment variable rows of the no-template form.
    pub fn plain_env(&self) -> Vec<EnvRow> {
        self.env_rows(self.plain_submitted())
    }

    /// Whether the no-template form was the one submitted.
    pub fn plain_submitted(&self) -> bool {
        self.kept.submitted() && self.kept.value("template").is_empty()
    }
}

/// The page of `project` for `ctx`, with `error` and the spawner form `kept`.
async fn show(
    ctx: &Ctx,
    project: &ProjectRef,
    status: StatusCode,
    error: String,
    kept: Kept,
) -> Response<Body> {
    let ns = project.namespace.as_str();
    let notebooks = Api::<Notebook>::namespaced(ctx.client.clone(), ns);
    let templates = Api::<NotebookTemplate>::all(ctx.client.clone());
    let list = crate::workloads::bounded_list();
    let (found, offered, can_spawn, can_patch, can_delete, can_open) = futures::join!(
        notebooks.list(&list),
        templates.list(&list),
        may_in(&ctx.client, "create", "notebooks", ns),
        may_in(&ctx.client, "patch", "notebooks", ns),
        may_in(&ctx.client, "delete", "notebooks", ns),
        may_in(&ctx.client, "create", "notebooks/connect", ns),
    );
    let now = Timestamp::now();
    let notebooks = match found {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|n| n.name_any());
            Ok(items
                .iter()
                .map(|n| notebook_view(n, None, &[], now))
                .collect())
        }
        Err(e) => Err(refusal(ctx, &e, "list the notebooks here").1),
    };
    let templates = offered.map(|l| l.items).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot list NotebookTemplates as the user");
        Vec::new()
    });
    let page = NotebooksPage {
        layout: ctx.layout.clone(),
        project: project.name.clone(),
        namespace: project.namespace.clone(),
        error,
        notebooks,
        can_spawn,
        can_patch,
        can_delete,
        can_open,
        spawner: spawner(&templates, &project.labels),
        kept,
    };
    render(status, &page)
}

/// `GET /projects/<name>/notebooks`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    request: Request,
) -> Response<Body> {
    let ctx = match context(&console, request.method(), request.uri(), request.headers()).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let project = match workloads::project(&ctx, &name).await {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    show(
        &ctx,
        &project,
        StatusCode::OK,
        String::new(),
        Kept::default(),
    )
    .await
}

/// `POST /projects/<name>/notebooks`: spawns a notebook as the user.
pub async fn spawn(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    request: Request,
) -> Response<Body> {
    let (ctx, fields) = match workloads::posted_form(&console, request).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    let project = match workloads::project(&ctx, &name).await {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    let ns = project.namespace.as_str();
    let list = crate::workloads::bounded_list();
    let notebooks_api = Api::<Notebook>::namespaced(ctx.client.clone(), ns);
    let templates_api = Api::<NotebookTemplate>::all(ctx.client.clone());
    let claims_api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), ns);
    let (templates, notebooks, claims) = futures::join!(
        templates_api.list(&list),
        notebooks_api.list(&list),
        claims_api.list(&list),
    );
    let templates = templates.map(|l| l.items).unwrap_or_default();
    let names: Vec<String> = notebooks
        .map(|l| l.items.iter().map(|n| n.name_any()).collect())
        .unwrap_or_default();
    let claims = claims.ok().map(|l| l.items);
    let spawn_ctx = SpawnContext {
        namespace: ns,
        namespace_labels: &project.labels,
        templates: &templates,
        notebooks: &names,
        claims: claims.as_deref(),
    };
    let fields: Vec<(String, String)> = fields.into_iter().filter(|(n, _)| n != "csrf").collect();
    let notebook = match parse_spawn(&fields, &spawn_ctx) {
        Ok(notebook) => notebook,
        Err(errors) => {
            let kept = Kept { fields, errors };
            return show(
                &ctx,
                &project,
                StatusCode::BAD_REQUEST,
                "The notebook was not created: see the form below.".into(),
                kept,
            )
            .await;
        }
    };
    let user = ctx.caller.identity.username.clone();
    match notebooks_api
        .create(&PostParams::default(), &notebook)
        .await
    {
        Ok(made) => {
            tracing::info!(user = %user, namespace = %ns, notebook = %made.name_any(), "notebook spawned");
            redirect_after_post(&format!("/projects/{name}/notebooks"))
        }
        Err(e) => {
            tracing::info!(user = %user, namespace = %ns, error = %e, "notebook spawn refused");
            let (status, line) = refusal(&ctx, &e, &format!("create notebooks in project {name}"));
            show(
                &ctx,
                &project,
                status,
                line,
                Kept {
                    fields,
                    errors: Vec::new(),
                },
            )
            .await
        }
    }
}

/// `POST /projects/<name>/notebooks/<notebook>`: `action=start|stop|delete` as the user.
pub async fn act(
    State(console): State<Arc<Console>>,
    Path((name, notebook)): Path<(String, String)>,
    request: Request,
) -> Response<Body> {
    let (ctx, fields) = match workloads::posted_form(&console, request).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    if !is_object_name(&notebook, NAME_MAX) {
        return crate::notebook_page::no_such_notebook(&ctx);
    }
    let action = field(&fields, "action").unwrap_or("").to_owned();
    let action = action.as_str();
    if !matches!(action, "start" | "stop" | "delete" | "resize") {
        return ctx.message(
            StatusCode::BAD_REQUEST,
            "Not a notebook action",
            vec![format!(
                "{action:?} is not an action; use start, stop, delete or resize"
            )],
        );
    }
    let project = match workloads::project(&ctx, &name).await {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    if action == "resize" {
        let fields: Vec<(String, String)> =
            fields.into_iter().filter(|(n, _)| n != "csrf").collect();
        return crate::notebook_page::resize(&ctx, &project, &notebook, fields).await;
    }
    let api = Api::<Notebook>::namespaced(ctx.client.clone(), &project.namespace);
    let doing = format!("{action} notebook {notebook} of project {name}");
    let found = match api.get(&notebook).await {
        Ok(found) => found,
        Err(e) => {
            let (status, line) = refusal(&ctx, &e, &doing);
            return show(&ctx, &project, status, line, Kept::default()).await;
        }
    };
    let view = notebook_view(&found, None, &[], Timestamp::now());
    let Some(chosen) = view.actions.iter().find(|a| a.kind == action) else {
        return show(
            &ctx,
            &project,
            StatusCode::CONFLICT,
            format!(
                "Notebook {notebook} cannot {action} now (it is {}); reload the page.",
                view.phase_text
            ),
            Kept::default(),
        )
        .await;
    };
    let result = match (chosen.method, &chosen.patch) {
        ("PATCH", Some(patch)) => api
            .patch(&notebook, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ()),
        ("DELETE", _) => api
            .delete(&notebook, &DeleteParams::default())
            .await
            .map(|_| ()),
        _ => {
            return ctx.message(
                StatusCode::BAD_REQUEST,
                "Not a notebook action",
                vec![format!("{action:?} is a link, not a change")],
            );
        }
    };
    let user = ctx.caller.identity.username.clone();
    match result {
        Ok(()) => {
            tracing::info!(user = %user, namespace = %project.namespace, notebook = %notebook, action, "notebook changed");
            redirect_after_post(&format!("/projects/{name}/notebooks"))
        }
        Err(e) => {
            tracing::info!(user = %user, namespace = %project.namespace, notebook = %notebook, action, error = %e, "notebook change refused");
            let (status, line) = refusal(&ctx, &e, &doing);
            show(&ctx, &project, status, line, Kept::default()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn running() -> NotebookView {
        let nb: Notebook = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
            "metadata": {"name": "lab", "namespace": "team-a"},
            "spec": {"template": "<b>jupyter</b>", "imageId": "py", "bundle": "small"},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        notebook_view(&nb, None, &[], Timestamp::now())
    }

    fn page(can: bool) -> String {
        NotebooksPage {
            layout: Layout {
                user: "ada@example.com".into(),
                csrf: "tok".into(),
                ..Default::default()
            },
            project: "team-a".into(),
            namespace: "team-a".into(),
            error: String::new(),
            notebooks: Ok(vec![running()]),
            can_spawn: can,
            can_patch: can,
            can_delete: can,
            can_open: can,
            spawner: spawner(&[], &Default::default()),
            kept: Kept::default(),
        }
        .render()
        .unwrap()
    }

    #[test]
    fn an_editor_gets_the_buttons_and_a_viewer_none() {
        let editor = page(true);
        assert!(
            editor.contains(r#"href="/notebook/team-a/lab/lab""#),
            "{editor}"
        );
        assert!(editor.contains(r#"name="action" value="stop""#));
        assert!(editor.contains(r#"name="action" value="delete""#));
        assert!(editor.contains(r#"name="csrf" value="tok""#));
        assert!(editor.contains("Start a notebook"));
        assert!(editor.contains("&#60;b&#62;jupyter&#60;/b&#62;"), "escaped");
        let viewer = page(false);
        assert!(viewer.contains("lab"), "the notebook is listed");
        assert!(!viewer.contains("/notebook/team-a/lab/lab"), "no Open link");
        assert!(!viewer.contains("name=\"action\"") && !viewer.contains("Start a notebook"));
        assert!(!viewer.contains("<b>jupyter"));
    }
}
