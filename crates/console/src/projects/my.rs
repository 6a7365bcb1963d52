//! *My projects* (`/`): the projects that name the user (as a User, through one of their groups,
//! or as a ServiceAccount), found in the console's cache, each then read **as the user** (a
//! metadata GET, concurrently, at most [`CONCURRENT_READS`] at once, the answer remembered for
//! [`super::cache::ACCESS_TTL`]); a project the user cannot `get` is not shown. A user who may
//! `list projects` (a platform admin; a SelfSubjectAccessReview as the user, remembered like the
//! GETs) sees all of them.

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use berth_api::Project;
use futures::StreamExt as _;
use kube::api::Api;

use crate::app::Console;
use crate::layout::{Layout, render};
use crate::projects::view::{self, Bar};
use crate::projects::{context, may_as};

/// Per-project reads as the user in flight at once.
pub const CONCURRENT_READS: usize = 32;

/// One row.
pub struct Row {
    pub name: String,
    pub namespace: String,
    pub role: String,
    pub ready: String,
    pub ready_message: String,
    pub quota: Vec<Bar>,
}

#[derive(Template)]
#[template(path = "my_projects.html")]
pub struct MyProjects {
    pub layout: Layout,
    pub rows: Vec<Row>,
    /// Every project is shown (the user may list them).
    pub all: bool,
    /// Candidates the user could not read.
    pub hidden: usize,
}

fn row(project: &Project, who: &crate::kube_auth::Identity) -> Row {
    let (ready, ready_message) = view::readiness(project);
    let quota = project
        .status
        .as_ref()
        .and_then(|s| s.quota.as_ref())
        .map(|q| view::bars(&q.hard, &q.used))
        .unwrap_or_default();
    Row {
        name: project.metadata.name.clone().unwrap_or_default(),
        namespace: view::namespace(project),
        role: view::role_of(project, who)
            .map_or("platform admin", view::role_name)
            .to_owned(),
        ready,
        ready_message,
        quota,
    }
}

/// `GET /`.
pub async fn page(State(console): State<Arc<Console>>, request: Request) -> Response<Body> {
    let ctx = match context(&console, request.method(), request.uri(), request.headers()).await {
        Ok(ctx) => ctx,
        Err(answer) => return answer,
    };
    let (all, can_create) = futures::join!(
        may_as(&console, &ctx, "list", None),
        may_as(&console, &ctx, "create", None)
    );
    let mut layout = ctx.layout.clone();
    layout.can_create = can_create;
    let who = &ctx.caller.identity;
    let projects = Api::<Project>::all(ctx.client.clone());
    let (mut rows, hidden) = if all {
        // They may list every Project (the SelfSubjectAccessReview above, as them): the cache
        // holds what that list would answer, without 1,000 projects' JSON on every page.
        let rows: Vec<Row> = console.projects.all().iter().map(|p| row(p, who)).collect();
        (rows, 0)
    } else {
        let candidates = console.projects.candidates(who);
        let wanted = candidates.len();
        let read: Vec<Arc<Project>> = futures::stream::iter(candidates)
            .map(|name| {
                let projects = projects.clone();
                let console = console.clone();
                async move {
                    // The user's own GET decides (the metadata form: the same authorization as
                    // a full GET, a fraction of the bytes), remembered for a few seconds; what
                    // the row shows is that same object as the cache holds it, which the user
                    // may read in full.
                    let allowed = match console.projects.known_access(who, &name) {
                        Some(known) => known,
                        None => {
                            let allowed = match projects.get_metadata(&name).await {
                                Ok(_) => true,
                                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => false,
                                Err(e) => {
                                    tracing::warn!(project = %name, error = %e, "reading a project as the user");
                                    return None;
                                }
                            };
                            console.projects.remember_access(who, &name, allowed);
                            allowed
                        }
                    };
                    if allowed { console.projects.get(&name) } else { None }
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .filter_map(|p| async move { p })
            .collect()
            .await;
        let hidden = wanted - read.len();
        (read.iter().map(|p| row(p, who)).collect::<Vec<_>>(), hidden)
    };
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    tracing::info!(user = %who.username, shown = rows.len(), hidden, all, "my projects");
    render(
        StatusCode::OK,
        &MyProjects {
            layout,
            rows,
            all,
            hidden,
        },
    )
}
