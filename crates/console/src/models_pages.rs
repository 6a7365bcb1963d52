//! *Models* (`/projects/<name>/models`, `/projects/<name>/models/<model>`, docs/console.md
//! "Models"): the project's MLModels and each model's page ([`views::models::model_view`]:
//! status, versions, URL, how to call it with a token, the last failure), the deploy form
//! ([`views::deploy::parse_deploy`]), the canary form ([`views::deploy::parse_canary`]), promote
//! and rollback (the views' merge patches, guarded by the resourceVersion read) and delete.
//! Every read and write is the user's (crate::acting); buttons are drawn when a
//! SelfSubjectAccessReview allows them and the API server decides each request anyway.
//!
//! Order of checks on a POST, nothing written before the last: authenticated, the body within
//! [`workloads::MAX_BODY`] (413), same site and the CSRF token (403), names (404), the form
//! (400: a deploy form's field errors are found before any API call), the project and model
//! read as the user (403 / 404), the write as the user.

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Response, StatusCode};
use berth_api::mlmodel::MLModel;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::members::{CONFLICT_ATTEMPTS, redirect_after_post};
use crate::projects::{Ctx, context};
use crate::views::deploy::{NAME_MAX, parse_canary, parse_deploy};
use crate::views::form::is_object_name;
use crate::views::models::{ModelView, model_view, promote_patch, rollback_patch};
use crate::workloads::{self, Kept, ProjectRef, field, may_in, refusal};

/// Events shown on a model's page at most.
pub const EVENTS: usize = 20;

#[derive(Template)]
#[template(path = "models.html")]
pub struct ModelsPage {
    pub layout: Layout,
    pub project: String,
    pub namespace: String,
    pub error: String,
    /// `Err`: why the list is not shown (not readable, or a form to fix first).
    pub models: Result<Vec<ModelView>, String>,
    pub can_deploy: bool,
    pub kept: Kept,
}

#[derive(Template)]
#[template(path = "model.html")]
pub struct ModelPage {
    pub layout: Layout,
    pub project: String,
    pub model: ModelView,
    pub error: String,
    pub can_patch: bool,
    pub can_delete: bool,
    /// The canary form as submitted, with its errors.
    pub kept: Kept,
}

async fn list_page(
    ctx: &Ctx,
    project: &ProjectRef,
    status: StatusCode,
    error: String,
    kept: Kept,
) -> Response<Body> {
    let ns = project.namespace.as_str();
    let api = Api::<MLModel>::namespaced(ctx.client.clone(), ns);
    let list = crate::workloads::bounded_list();
    let (found, can_deploy) = futures::join!(
        api.list(&list),
        may_in(&ctx.client, "create", "mlmodels", ns),
    );
    let models = match found {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|m| m.name_any());
            Ok(items.iter().map(|m| model_view(m, &[])).collect())
        }
        Err(e) => Err(refusal(ctx, &e, "list the models here").1),
    };
    render(
        status,
        &ModelsPage {
            layout: ctx.layout.clone(),
            project: project.name.clone(),
            namespace: project.namespace.clone(),
            error,
            models,
            can_deploy,
            kept,
        },
    )
}

/// `GET /projects/<name>/models`.
pub async fn list(
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
    list_page(
        &ctx,
        &project,
        StatusCode::OK,
        String::new(),
        Kept::default(),
    )
    .await
}

/// `POST /projects/<name>/models`: deploys a model as the user.
pub async fn deploy(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    request: Request,
) -> Response<Body> {
    let (ctx, fields) = match workloads::posted_form(&console, request).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    if crate::projects::new::dns_label(&name).is_err() {
        return workloads::no_such_project(&ctx);
    }
    let fields: Vec<(String, String)> = fields.into_iter().filter(|(n, _)| n != "csrf").collect();
    // The form's own errors first, before any API call: the list is not needed to fix them.
    if let Err(errors) = parse_deploy(&fields, &name, &[]) {
        let page = ModelsPage {
            layout: ctx.layout.clone(),
            project: name.clone(),
            namespace: String::new(),
            error: "The model was not deployed: see the form below.".into(),
            models: Err("Fix the form, then the list is shown again.".into()),
            can_deploy: true,
            kept: Kept { fields, errors },
        };
        return render(StatusCode::BAD_REQUEST, &page);
    }
    let project = match workloads::project(&ctx, &name).await {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    let api = Api::<MLModel>::namespaced(ctx.client.clone(), &project.namespace);
    let names: Vec<String> = api
        .list(&crate::workloads::bounded_list())
        .await
        .map(|l| l.items.iter().map(|m| m.name_any()).collect())
        .unwrap_or_default();
    let model = match parse_deploy(&fields, &project.namespace, &names) {
        Ok(model) => model,
        Err(errors) => {
            return list_page(
                &ctx,
                &project,
                StatusCode::BAD_REQUEST,
                "The model was not deployed: see the form below.".into(),
                Kept { fields, errors },
            )
            .await;
        }
    };
    let user = ctx.caller.identity.username.clone();
    match api.create(&PostParams::default(), &model).await {
        Ok(made) => {
            let model = made.name_any();
            tracing::info!(user = %user, namespace = %project.namespace, model = %model, "model deployed");
            redirect_after_post(&format!("/projects/{name}/models/{model}"))
        }
        Err(e) => {
            tracing::info!(user = %user, namespace = %project.namespace, error = %e, "model deploy refused");
            let (status, line) = refusal(&ctx, &e, &format!("deploy models in project {name}"));
            list_page(
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

fn no_such_model(ctx: &Ctx) -> Response<Body> {
    ctx.message(
        StatusCode::NOT_FOUND,
        "Not found",
        vec!["There is no model of that name.".into()],
    )
}

/// The page of `model` (read as the user) in `project`.
async fn model_page(
    ctx: &Ctx,
    project: &ProjectRef,
    model: &MLModel,
    status: StatusCode,
    error: String,
    kept: Kept,
) -> Response<Body> {
    let ns = project.namespace.as_str();
    let name = model.name_any();
    let events_api = Api::<Event>::namespaced(ctx.client.clone(), ns);
    let selector = crate::workloads::bounded_list().fields(&format!(
        "involvedObject.kind=MLModel,involvedObject.name={name}"
    ));
    let (events, can_patch, can_delete) = futures::join!(
        events_api.list(&selector),
        may_in(&ctx.client, "patch", "mlmodels", ns),
        may_in(&ctx.client, "delete", "mlmodels", ns),
    );
    let mut events = events.map(|l| l.items).unwrap_or_default();
    events.sort_by_key(|e| {
        std::cmp::Reverse(
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0)),
        )
    });
    events.truncate(EVENTS);
    render(
        status,
        &ModelPage {
            layout: ctx.layout.clone(),
            project: project.name.clone(),
            model: model_view(model, &events),
            error,
            can_patch,
            can_delete,
            kept,
        },
    )
}

/// `GET /projects/<name>/models/<model>`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Path((name, model)): Path<(String, String)>,
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
    if !is_object_name(&model, NAME_MAX) {
        return no_such_model(&ctx);
    }
    match Api::<MLModel>::namespaced(ctx.client.clone(), &project.namespace)
        .get(&model)
        .await
    {
        Ok(found) => {
            model_page(
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
            let (status, line) = refusal(&ctx, &e, &format!("see model {model}"));
            ctx.message(status, "Model", vec![line])
        }
    }
}

/// `POST /projects/<name>/models/<model>`: `action=promote|rollback|delete|canary` as the user.
pub async fn act(
    State(console): State<Arc<Console>>,
    Path((name, model)): Path<(String, String)>,
    request: Request,
) -> Response<Body> {
    let (ctx, fields) = match workloads::posted_form(&console, request).await {
        Ok(posted) => posted,
        Err(answer) => return answer,
    };
    if crate::projects::new::dns_label(&name).is_err() {
        return workloads::no_such_project(&ctx);
    }
    if !is_object_name(&model, NAME_MAX) {
        return no_such_model(&ctx);
    }
    let action = field(&fields, "action").unwrap_or("").to_owned();
    if !matches!(
        action.as_str(),
        "promote" | "rollback" | "delete" | "canary"
    ) {
        return ctx.message(
            StatusCode::BAD_REQUEST,
            "Not a model action",
            vec![format!(
                "{action:?} is not an action; use promote, rollback, delete or canary"
            )],
        );
    }
    let fields: Vec<(String, String)> = fields.into_iter().filter(|(n, _)| n != "csrf").collect();
    let project = match workloads::project(&ctx, &name).await {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    let api = Api::<MLModel>::namespaced(ctx.client.clone(), &project.namespace);
    let doing = format!("{action} model {model} of project {name}");
    // The patches carry the resourceVersion read: the operator's status writes move it, so a
    // conflict is read again and the same change computed from the fresh spec, a few times
    // (as the member form does).
    let mut attempt = 0;
    let (found, result) = loop {
        attempt += 1;
        let found = match api.get(&model).await {
            Ok(found) => found,
            Err(e) => {
                let (status, line) = refusal(&ctx, &e, &doing);
                return ctx.message(status, "Model", vec![line]);
            }
        };
        let patch = match action.as_str() {
            "promote" => promote_patch(&found),
            "rollback" => rollback_patch(&found),
            "canary" => match parse_canary(&fields, &found) {
                Ok(patch) => Some(patch),
                Err(errors) => {
                    return model_page(
                        &ctx,
                        &project,
                        &found,
                        StatusCode::BAD_REQUEST,
                        "The canary was not set: see the form below.".into(),
                        Kept { fields, errors },
                    )
                    .await;
                }
            },
            _ => None,
        };
        let result = if action == "delete" {
            api.delete(&model, &DeleteParams::default())
                .await
                .map(|_| ())
        } else {
            let Some(patch) = patch else {
                return model_page(
                    &ctx,
                    &project,
                    &found,
                    StatusCode::CONFLICT,
                    format!("Model {model} has no canary to {action}; reload the page."),
                    Kept::default(),
                )
                .await;
            };
            api.patch(&model, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        };
        match result {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => continue,
            result => break (found, result),
        }
    };
    let user = ctx.caller.identity.username.clone();
    match result {
        Ok(()) => {
            tracing::info!(user = %user, namespace = %project.namespace, model = %model, action, "model changed");
            let to = if action == "delete" {
                format!("/projects/{name}/models")
            } else {
                format!("/projects/{name}/models/{model}")
            };
            redirect_after_post(&to)
        }
        Err(e) => {
            tracing::info!(user = %user, namespace = %project.namespace, model = %model, action, error = %e, "model change refused");
            let (status, line) = refusal(&ctx, &e, &doing);
            model_page(
                &ctx,
                &project,
                &found,
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
