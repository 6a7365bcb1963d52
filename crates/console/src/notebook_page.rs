//! A notebook's own page (`GET /projects/<name>/notebooks/<notebook>`): everything
//! [`views::notebooks::notebook_view`] says with its pod (`<notebook>-0`) and its Events, read as
//! the user, the same buttons as the list, and the resize form (`action=resize`, read by
//! [`views::resize::parse_resize`] into a merge patch of the spec guarded by the resourceVersion;
//! a resize restarts the notebook with its home).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use berth_api::notebook::Notebook;
use berth_api::notebook_template::NotebookTemplate;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use std::sync::Arc;

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::members::{CONFLICT_ATTEMPTS, redirect_after_post};
use crate::projects::{Ctx, context};
use crate::views::form::is_object_name;
use crate::views::notebooks::{NotebookView, notebook_view};
use crate::views::resize::parse_resize;
use crate::views::spawn::NAME_MAX;
use crate::views::spawner::{TemplateChoice, spawner};
use crate::workloads::{self, Kept, ProjectRef, may_in, refusal};

#[derive(Template)]
#[template(path = "notebook.html")]
pub struct NotebookPage {
    pub layout: Layout,
    pub project: String,
    pub nb: NotebookView,
    pub error: String,
    pub can_patch: bool,
    pub can_delete: bool,
    /// Whether the console's proxy would let the caller in (`create notebooks/connect`).
    pub can_open: bool,
    /// The notebook's template as the spawner offers it (its bundles for the resize form).
    pub template: Option<TemplateChoice>,
    /// The resize form as submitted, with its errors.
    pub kept: Kept,
}

pub(crate) fn no_such_notebook(ctx: &Ctx) -> Response<Body> {
    ctx.message(
        StatusCode::NOT_FOUND,
        "Not found",
        vec!["There is no notebook of that name.".into()],
    )
}

/// The page of `notebook` (as read by the user).
pub(crate) async fn show(
    ctx: &Ctx,
    project: &ProjectRef,
    notebook: &Notebook,
    status: StatusCode,
    error: String,
    kept: Kept,
) -> Response<Body> {
    let ns = project.namespace.as_str();
    let name = notebook.metadata.name.clone().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let events = Api::<Event>::namespaced(ctx.client.clone(), ns);
    let templates = Api::<NotebookTemplate>::all(ctx.client.clone());
    let selector = crate::workloads::bounded_list().fields(&format!(
        "involvedObject.kind=Notebook,involvedObject.name={name}"
    ));
    let all = crate::workloads::bounded_list();
    let pod_name = format!("{name}-0");
    let (pod, events, templates, can_patch, can_delete, can_open) = futures::join!(
        pods.get_opt(&pod_name),
        events.list(&selector),
        templates.list(&all),
        may_in(&ctx.client, "patch", "notebooks", ns),
        may_in(&ctx.client, "delete", "notebooks", ns),
        may_in(&ctx.client, "create", "notebooks/connect", ns),
    );
    let pod = pod.ok().flatten();
    let events = events.map(|l| l.items).unwrap_or_default();
    let templates = templates.map(|l| l.items).unwrap_or_default();
    let nb = notebook_view(notebook, pod.as_ref(), &events, Timestamp::now());
    let template = spawner(&templates, &project.labels)
        .templates
        .into_iter()
        .find(|t| t.name == nb.template);
    render(
        status,
        &NotebookPage {
            layout: ctx.layout.clone(),
            project: project.name.clone(),
            nb,
            error,
            can_patch,
            can_delete,
            can_open,
            template,
            kept,
        },
    )
}

/// `GET /projects/<name>/notebooks/<notebook>`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path((name, notebook)): Path<(String, String)>,
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
    if !is_object_name(&notebook, NAME_MAX) {
        return no_such_notebook(&ctx);
    }
    match Api::<Notebook>::namespaced(ctx.client.clone(), &project.namespace)
        .get(&notebook)
        .await
    {
        Ok(found) => {
            show(
                &ctx,
                &project,
                &found,
                StatusCode::OK,
                String::new(),
                Kept::default(),
            )
            .await
        }
        Err(e) => {
            let (status, line) = refusal(&ctx, &e, &format!("see notebook {notebook}"));
            ctx.message(status, "Notebook", vec![line])
        }
    }
}

/// `action=resize` of `notebook`: the merge patch as the user, read again on a conflict.
pub(crate) async fn resize(
    ctx: &Ctx,
    project: &ProjectRef,
    notebook: &str,
    fields: Vec<(String, String)>,
) -> Response<Body> {
    let api = Api::<Notebook>::namespaced(ctx.client.clone(), &project.namespace);
    let templates = Api::<NotebookTemplate>::all(ctx.client.clone())
        .list(&crate::workloads::bounded_list())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let form: Vec<(String, String)> = fields
        .iter()
        .filter(|(n, _)| n != "action")
        .cloned()
        .collect();
    let doing = format!("resize notebook {notebook} of project {}", project.name);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let found = match api.get(notebook).await {
            Ok(found) => found,
            Err(e) => {
                let (status, line) = refusal(ctx, &e, &doing);
                return ctx.message(status, "Notebook", vec![line]);
            }
        };
        let patch = match parse_resize(&form, &found, &templates) {
            Ok(patch) => patch,
            Err(errors) => {
                return show(
                    ctx,
                    project,
                    &found,
                    StatusCode::BAD_REQUEST,
                    "The notebook was not resized: see the form below.".into(),
                    Kept { fields, errors },
                )
                .await;
            }
        };
        match api
            .patch(notebook, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(user = %ctx.caller.identity.username, namespace = %project.namespace, notebook, "notebook resized");
                return redirect_after_post(&format!(
                    "/projects/{}/notebooks/{notebook}",
                    project.name
                ));
            }
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => {
                tracing::info!(user = %ctx.caller.identity.username, namespace = %project.namespace, notebook, error = %e, "notebook resize refused");
                let (status, line) = refusal(ctx, &e, &doing);
                return show(
                    ctx,
                    project,
                    &found,
                    status,
                    line,
                    Kept {
                        fields,
                        errors: Vec::new(),
                    },
                )
                .await;
            }
        }
    }
}
