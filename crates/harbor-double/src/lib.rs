//! # The Harbor contract double
//!
//! **This crate is a CONTRACT DOUBLE, and the only double in Berth.** Harbor cannot run on the
//! machines Berth is built and tested on, so Berth's Harbor client (`berth_providers::registry::
//! harbor`) is tested against this small in-memory server instead. Every other outside service
//! (Garage, MinIO, Keycloak) is tested against the real server.
//!
//! It follows Harbor's published v2.0 REST API, `api/v2.0/swagger.yaml` in goharbor/harbor, for
//! exactly the endpoints the client calls, with the paths, bodies and status codes that file
//! gives, and Harbor's own behaviour where the file is silent (noted at each place):
//!
//! | endpoint | answers |
//! | --- | --- |
//! | `GET /api/v2.0/users/current` | 200 `UserResp` |
//! | `GET /api/v2.0/projects` | 200 `[Project]`, paginated |
//! | `POST /api/v2.0/projects` | 201 + `Location`; 400 bad name or metadata; 409 exists |
//! | `GET/PUT/DELETE /api/v2.0/projects/{project_name_or_id}` | 200; 404; `DELETE` 412 while it has repositories |
//! | `GET/POST /api/v2.0/projects/{p}/metadatas`, `GET/PUT/DELETE /api/v2.0/projects/{p}/metadatas/{meta_name}` | 200 `{name: value}`; 400 `invalid key` for any key but Harbor's own, or more than one pair |
//! | `GET/POST /api/v2.0/projects/{p}/members` | 200 `[ProjectMemberEntity]` paginated; 201 + `Location`; 404 unknown user; 409 already a member |
//! | `PUT/DELETE /api/v2.0/projects/{p}/members/{mid}` | 200; `PUT` 404 |
//! | `GET /api/v2.0/projects/{p}/repositories` | 200 `[Repository]`, paginated |
//! | `DELETE /api/v2.0/projects/{p}/repositories/{repository_name}` | 200; 404 (a `/` in the name is sent as `%252F`) |
//! | `GET/POST /api/v2.0/robots` | 200 `[Robot]` paginated, `q=Level=project,ProjectID=<id>`; 201 `RobotCreated` + `Location`; 400; 404 unknown project; 409 name taken |
//! | `GET/PATCH/DELETE /api/v2.0/robots/{robot_id}` | 200 `Robot`; 200 `RobotSec`; 200; 404 |
//! | `GET /service/token?scope=repository:<p>/<r>:push,pull` | the registry's token service, see below |
//!
//! Common to all: HTTP basic auth, 401 without credentials or with wrong ones, 403 when the
//! caller lacks the right (a non-admin user, or a robot outside its project), errors as
//! `{"errors":[{"code","message"}]}`, `X-Is-Resource-Name: true` to read `{project_name_or_id}`
//! as a name, `page` (from 1) and `page_size` (default 10, at most 100) with `X-Total-Count` and a
//! `Link` header (`<...>; rel="prev" , <...>; rel="next"`).
//!
//! Project metadata holds Harbor's own keys only (`ProjectMetadata` in the swagger file has fixed
//! properties): `POST`/`PUT /projects` drop any other key, as Harbor's generated models do, and the
//! `/metadatas` endpoints answer 400 `invalid key: <key>`, as `project_metadata.go`'s `validate`
//! does. Booleans come back as `"true"`/`"false"`, severities in lower case.
//!
//! Names follow Harbor's rule `^[a-z0-9]+(?:[._-][a-z0-9]+)*$` for projects and robots. A
//! project robot's login is `robot$<project>+<name>`. Harbor deletes a project's robots with the
//! project; so does the double.
//!
//! Deliberate simplifications, so that nobody mistakes the double for more than it is:
//! - Project creation is admin-only (Harbor's `project_creation_restriction: adminonly`).
//! - There is no anonymous access and there are no public-project reads.
//! - A robot may read its own project and list its repositories (so a test can check that its
//!   credentials work there and nowhere else); everything else answers it 403.
//! - `GET /service/token` returns the granted access in the body (`access`) instead of inside a
//!   signed JWT, and the token itself is opaque.
//! - Repositories appear only through [`HarborDouble::add_repository`]: there is no registry to
//!   push to.
//!
//! Tests start it with [`HarborDouble::start`], seed users with [`HarborDouble::add_user`], point
//! the client at [`HarborDouble::url`] with [`HarborDouble::admin_username`] and
//! [`HarborDouble::admin_password`], and inspect what the client did with
//! [`HarborDouble::projects`], [`HarborDouble::members`], [`HarborDouble::robots`],
//! [`HarborDouble::repositories`] and [`HarborDouble::requests`].

// Handlers return an axum `Response` as their error: its size does not matter in a test server.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// The system administrator's user name, as in a fresh Harbor.
pub const ADMIN_USERNAME: &str = "admin";

/// Harbor's role ids (`ProjectMember.role_id`).
pub const ROLE_PROJECT_ADMIN: i64 = 1;
pub const ROLE_DEVELOPER: i64 = 2;
pub const ROLE_GUEST: i64 = 3;
pub const ROLE_MAINTAINER: i64 = 4;
pub const ROLE_LIMITED_GUEST: i64 = 5;

const API: &str = "/api/v2.0";

/// A running double on a free loopback port. Dropping it stops the server.
pub struct HarborDouble {
    url: String,
    admin_password: String,
    db: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A project as the double holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    /// Harbor's project metadata: `public`, `auto_scan`, `prevent_vul`, `severity`, ...
    pub metadata: BTreeMap<String, String>,
}

/// A robot account as the double holds it. Its secret is not shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotView {
    pub id: i64,
    /// The full login name, `robot$<project>+<name>` for a project robot.
    pub name: String,
    /// The project of a project-level robot.
    pub project: Option<String>,
    pub disabled: bool,
    /// `(resource, action)` pairs on its project, e.g. `("repository", "push")`.
    pub access: Vec<(String, String)>,
}

impl HarborDouble {
    /// Starts the double on `127.0.0.1` on a free port, with the system admin `admin` and a random
    /// password.
    pub async fn start() -> std::io::Result<Self> {
        let admin_password = format!("Hd{}", random_token(20)?);
        let mut db = Db::default();
        let id = db.next_id();
        db.users.push(User {
            id,
            username: ADMIN_USERNAME.into(),
            password: admin_password.clone(),
            sysadmin: true,
        });
        let db: Shared = Arc::new(Mutex::new(db));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = router(db.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            url,
            admin_password,
            db,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:<port>`: Harbor's base URL (the API is under `/api/v2.0`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The system administrator's user name.
    pub fn admin_username(&self) -> &str {
        ADMIN_USERNAME
    }

    /// The system administrator's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// Adds a (non-admin) Harbor user, as if it had signed up or been onboarded, and returns its
    /// password. Adding a name twice keeps the first account.
    pub fn add_user(&self, username: &str) -> String {
        let mut db = lock(&self.db);
        if let Some(user) = db.users.iter().find(|u| u.username == username) {
            return user.password.clone();
        }
        let password = format!(
            "Pw{}",
            random_token(16).unwrap_or_else(|_| "0123456789".into())
        );
        let id = db.next_id();
        db.users.push(User {
            id,
            username: username.into(),
            password: password.clone(),
            sysadmin: false,
        });
        password
    }

    /// Adds a repository (`<project>/<repository>`) to a project, as a push would. False if
    /// there is no such project.
    pub fn add_repository(&self, project: &str, repository: &str) -> bool {
        let mut db = lock(&self.db);
        let Some(project_id) = db.projects.iter().find(|p| p.name == project).map(|p| p.id) else {
            return false;
        };
        let name = format!("{project}/{repository}");
        if !db.repositories.iter().any(|r| r.name == name) {
            let id = db.next_id();
            db.repositories.push(Repo {
                id,
                project_id,
                name,
            });
        }
        true
    }

    /// Every project, by name.
    pub fn projects(&self) -> Vec<ProjectView> {
        let db = lock(&self.db);
        let mut out: Vec<ProjectView> = db
            .projects
            .iter()
            .map(|p| ProjectView {
                id: p.id,
                name: p.name.clone(),
                metadata: p.metadata.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One project, by name.
    pub fn project(&self, name: &str) -> Option<ProjectView> {
        self.projects().into_iter().find(|p| p.name == name)
    }

    /// A project's user members as `(username, role_id)`, by username. Empty for no project.
    pub fn members(&self, project: &str) -> Vec<(String, i64)> {
        let db = lock(&self.db);
        let Some(project_id) = db.projects.iter().find(|p| p.name == project).map(|p| p.id) else {
            return Vec::new();
        };
        let mut out: Vec<(String, i64)> = db
            .members
            .iter()
            .filter(|m| m.project_id == project_id)
            .filter_map(|m| db.user(m.user_id).map(|u| (u.username.clone(), m.role_id)))
            .collect();
        out.sort();
        out
    }

    /// Every robot account, by id.
    pub fn robots(&self) -> Vec<RobotView> {
        let db = lock(&self.db);
        db.robots
            .iter()
            .map(|r| RobotView {
                id: r.id,
                name: r.name.clone(),
                project: r
                    .project_id
                    .and_then(|id| db.project(id).map(|p| p.name.clone())),
                disabled: r.disabled,
                access: r.access.clone(),
            })
            .collect()
    }

    /// A project's repositories, full names (`<project>/<repository>`), sorted.
    pub fn repositories(&self, project: &str) -> Vec<String> {
        let db = lock(&self.db);
        let Some(project_id) = db.projects.iter().find(|p| p.name == project).map(|p| p.id) else {
            return Vec::new();
        };
        let mut out: Vec<String> = db
            .repositories
            .iter()
            .filter(|r| r.project_id == project_id)
            .map(|r| r.name.clone())
            .collect();
        out.sort();
        out
    }

    /// Simulates a concurrent writer: the next `POST /projects` or `POST /projects/{p}/members`
    /// finds that someone else made the same project (or added the same user, as a guest) an
    /// instant before, and so gets Harbor's 409. The race is lost once.
    pub fn lose_next_create_race(&self) {
        lock(&self.db).race = true;
    }

    /// Every request so far as `METHOD /path?query`, oldest first (never a credential: those
    /// travel in the `Authorization` header, which is not recorded).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.db).requests.clone()
    }
}

impl Drop for HarborDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// State

type Shared = Arc<Mutex<Db>>;

fn lock(db: &Shared) -> MutexGuard<'_, Db> {
    db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Db {
    last_id: i64,
    users: Vec<User>,
    projects: Vec<ProjectRec>,
    members: Vec<MemberRec>,
    robots: Vec<RobotRec>,
    repositories: Vec<Repo>,
    requests: Vec<String>,
    /// Set by [`HarborDouble::lose_next_create_race`].
    race: bool,
}

struct User {
    id: i64,
    username: String,
    password: String,
    sysadmin: bool,
}

struct ProjectRec {
    id: i64,
    name: String,
    owner_id: i64,
    metadata: BTreeMap<String, String>,
}

struct MemberRec {
    id: i64,
    project_id: i64,
    user_id: i64,
    role_id: i64,
}

struct RobotRec {
    id: i64,
    name: String,
    description: String,
    project_id: Option<i64>,
    secret: String,
    disabled: bool,
    duration: i64,
    access: Vec<(String, String)>,
}

struct Repo {
    id: i64,
    project_id: i64,
    name: String,
}

impl Db {
    fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }
    fn user(&self, id: i64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }
    fn project(&self, id: i64) -> Option<&ProjectRec> {
        self.projects.iter().find(|p| p.id == id)
    }
    fn role(&self, user_id: i64, project_id: i64) -> Option<i64> {
        self.members
            .iter()
            .find(|m| m.user_id == user_id && m.project_id == project_id)
            .map(|m| m.role_id)
    }
    /// `{project_name_or_id}`: a name when `X-Is-Resource-Name: true` or when it is not a number.
    fn find_project(&self, headers: &HeaderMap, name_or_id: &str) -> Option<i64> {
        let is_name = headers
            .get("X-Is-Resource-Name")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let by_id = if is_name {
            None
        } else {
            name_or_id.parse::<i64>().ok()
        };
        match by_id {
            Some(id) => self.project(id).map(|p| p.id),
            None => self
                .projects
                .iter()
                .find(|p| p.name == name_or_id)
                .map(|p| p.id),
        }
    }
    fn project_json(&self, p: &ProjectRec) -> Value {
        json!({
            "project_id": p.id,
            "name": p.name,
            "owner_id": p.owner_id,
            "owner_name": self.user(p.owner_id).map(|u| u.username.clone()).unwrap_or_default(),
            "repo_count": self.repositories.iter().filter(|r| r.project_id == p.id).count(),
            "chart_count": 0,
            "deleted": false,
            "metadata": p.metadata,
        })
    }
    fn robot_json(&self, r: &RobotRec) -> Value {
        let permissions: Vec<Value> = r
            .project_id
            .and_then(|id| self.project(id))
            .map(|p| {
                vec![json!({
                    "kind": "project",
                    "namespace": p.name,
                    "access": r.access.iter().map(|(resource, action)| json!({"resource": resource, "action": action})).collect::<Vec<_>>(),
                })]
            })
            .unwrap_or_default();
        json!({
            "id": r.id,
            "name": r.name,
            "description": r.description,
            "level": if r.project_id.is_some() { "project" } else { "system" },
            "duration": r.duration,
            "editable": true,
            "disable": r.disabled,
            "expires_at": -1,
            "permissions": permissions,
        })
    }
}

/// Who is calling.
enum Principal {
    Admin,
    User(i64),
    Robot { id: i64, project_id: Option<i64> },
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn router(db: Shared) -> Router {
    Router::new()
        .route(&format!("{API}/users/current"), get(current_user))
        .route(
            &format!("{API}/projects"),
            get(list_projects).post(create_project),
        )
        .route(
            &format!("{API}/projects/{{project}}"),
            get(get_project).put(update_project).delete(delete_project),
        )
        .route(
            &format!("{API}/projects/{{project}}/metadatas"),
            get(list_metadata).post(set_metadata),
        )
        .route(
            &format!("{API}/projects/{{project}}/metadatas/{{meta_name}}"),
            get(list_metadata).put(set_metadata).delete(delete_metadata),
        )
        .route(
            &format!("{API}/projects/{{project}}/members"),
            get(list_members).post(create_member),
        )
        .route(
            &format!("{API}/projects/{{project}}/members/{{mid}}"),
            axum::routing::put(update_member).delete(delete_member),
        )
        .route(
            &format!("{API}/projects/{{project}}/repositories"),
            get(list_repositories),
        )
        .route(
            &format!("{API}/projects/{{project}}/repositories/{{repository}}"),
            axum::routing::delete(delete_repository),
        )
        .route(
            &format!("{API}/robots"),
            get(list_robots).post(create_robot),
        )
        .route(
            &format!("{API}/robots/{{id}}"),
            get(get_robot).patch(refresh_robot).delete(delete_robot),
        )
        .route("/service/token", get(token))
        .layer(middleware::from_fn_with_state(db.clone(), record))
        .with_state(db)
}

async fn record(State(db): State<Shared>, request: Request, next: Next) -> Response {
    let line = format!(
        "{} {}",
        request.method(),
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("")
    );
    lock(&db).requests.push(line);
    next.run(request).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PRECONDITION_FAILED => "PRECONDITION",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE_ENTITY",
        _ => "UNKNOWN",
    };
    let body = json!({"errors": [{"code": code, "message": message.into()}]});
    (status, axum::Json(body)).into_response()
}

fn ok_json(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

fn created(location: String, body: Option<Value>) -> Response {
    let mut response = match body {
        Some(body) => (StatusCode::CREATED, axum::Json(body)).into_response(),
        None => StatusCode::CREATED.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}

/// Basic auth: 401 without it or with credentials that match no account.
fn authenticate(db: &Db, headers: &HeaderMap) -> Result<Principal, Response> {
    let unauthorized = || error(StatusCode::UNAUTHORIZED, "unauthorized");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (name, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
    if let Some(user) = db
        .users
        .iter()
        .find(|u| u.username == name && u.password == password)
    {
        return Ok(if user.sysadmin {
            Principal::Admin
        } else {
            Principal::User(user.id)
        });
    }
    if let Some(robot) = db
        .robots
        .iter()
        .find(|r| r.name == name && r.secret == password && !r.disabled)
    {
        return Ok(Principal::Robot {
            id: robot.id,
            project_id: robot.project_id,
        });
    }
    Err(unauthorized())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Read the project and list its repositories.
    Read,
    /// List the project's members: its users only, not its robots.
    Members,
    /// Manage the project: its members, robots, repositories, settings (projectAdmin).
    Manage,
}

fn require(db: &Db, who: &Principal, project_id: i64, need: Need) -> Result<(), Response> {
    let forbidden = || error(StatusCode::FORBIDDEN, "forbidden");
    match who {
        Principal::Admin => Ok(()),
        Principal::User(user_id) => match (db.role(*user_id, project_id), need) {
            (Some(_), Need::Read | Need::Members) => Ok(()),
            (Some(ROLE_PROJECT_ADMIN), Need::Manage) => Ok(()),
            _ => Err(forbidden()),
        },
        Principal::Robot {
            project_id: Some(own),
            ..
        } if *own == project_id && need == Need::Read => Ok(()),
        Principal::Robot { .. } => Err(forbidden()),
    }
}

fn require_admin(who: &Principal) -> Result<(), Response> {
    match who {
        Principal::Admin => Ok(()),
        _ => Err(error(StatusCode::FORBIDDEN, "forbidden")),
    }
}

/// Harbor's rule for project and robot names.
fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut previous_separator = true;
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => previous_separator = false,
            '.' | '_' | '-' if !previous_separator => previous_separator = true,
            _ => return false,
        }
    }
    !previous_separator
}

#[derive(Deserialize)]
struct PageParams {
    page: Option<i64>,
    page_size: Option<i64>,
    q: Option<String>,
    name: Option<String>,
    entityname: Option<String>,
}

/// One page of `items`, with `X-Total-Count` and a `Link` header to the previous and next pages.
fn page(items: Vec<Value>, params: &PageParams, path: &str, keep: &[(&str, &str)]) -> Response {
    let page = params.page.unwrap_or(1);
    let size = params.page_size.unwrap_or(10);
    if page < 1 || size < 1 {
        return error(
            StatusCode::BAD_REQUEST,
            "page and page_size must be positive",
        );
    }
    if size > 100 {
        // The swagger declares `maximum: 100`; its generated validation refuses more.
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "page_size in query should be less than or equal to 100",
        );
    }
    let total = items.len() as i64;
    let start = ((page - 1) * size).min(total) as usize;
    let end = (page * size).min(total) as usize;
    let slice: Vec<Value> = items
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let extra: String = keep
        .iter()
        .map(|(k, v)| format!("&{k}={}", encode_query(v)))
        .collect();
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!(
            "<{path}?page={}&page_size={size}{extra}>; rel=\"prev\"",
            page - 1
        ));
    }
    if page * size < total {
        links.push(format!(
            "<{path}?page={}&page_size={size}{extra}>; rel=\"next\"",
            page + 1
        ));
    }
    let mut response = ok_json(Value::Array(slice));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        headers.insert("X-Total-Count", v);
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(" , "))
    {
        headers.insert(header::LINK, v);
    }
    response
}

fn encode_query(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

// ---- users ----------------------------------------------------------------------------------

async fn current_user(State(db): State<Shared>, headers: HeaderMap) -> Response {
    let db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    let user = match who {
        Principal::Admin => db.users.iter().find(|u| u.sysadmin),
        Principal::User(id) => db.user(id),
        Principal::Robot { .. } => return error(StatusCode::FORBIDDEN, "forbidden"),
    };
    match user {
        Some(u) => ok_json(json!({
            "user_id": u.id,
            "username": u.username,
            "sysadmin_flag": u.sysadmin,
            "admin_role_in_auth": false,
        })),
        None => error(StatusCode::UNAUTHORIZED, "unauthorized"),
    }
}

// ---- projects -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ProjectReq {
    project_name: Option<String>,
    public: Option<bool>,
    metadata: Option<BTreeMap<String, String>>,
}

/// The keys of Harbor's `ProjectMetadata`: the only ones a project keeps.
const METADATA_KEYS: &[&str] = &[
    "public",
    "enable_content_trust",
    "enable_content_trust_cosign",
    "prevent_vul",
    "severity",
    "auto_scan",
    "auto_sbom_generation",
    "reuse_sys_cve_allowlist",
    "retention_id",
    "proxy_speed_kb",
];

/// What `POST`/`PUT /projects` keep of a request's metadata: Harbor's own keys (the generated
/// model has no room for others).
fn known_metadata(metadata: BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata
        .into_iter()
        .filter(|(k, _)| METADATA_KEYS.contains(&k.as_str()))
        .collect()
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), Response> {
    for (key, value) in metadata {
        let ok = match key.as_str() {
            "public"
            | "enable_content_trust"
            | "enable_content_trust_cosign"
            | "prevent_vul"
            | "auto_scan"
            | "auto_sbom_generation"
            | "reuse_sys_cve_allowlist" => value == "true" || value == "false",
            "severity" => matches!(
                value.as_str(),
                "none" | "low" | "medium" | "high" | "critical"
            ),
            "retention_id" | "proxy_speed_kb" => value.parse::<i64>().is_ok(),
            _ => false,
        };
        if !ok {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid metadata {key}: {value:?}"),
            ));
        }
    }
    Ok(())
}

async fn list_projects(
    State(db): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Response {
    let db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    let items: Vec<Value> = db
        .projects
        .iter()
        .filter(|p| require(&db, &who, p.id, Need::Read).is_ok())
        .filter(|p| params.name.as_deref().is_none_or(|n| p.name.contains(n)))
        .map(|p| db.project_json(p))
        .collect();
    let name = params.name.clone().unwrap_or_default();
    let keep: Vec<(&str, &str)> = if name.is_empty() {
        vec![]
    } else {
        vec![("name", name.as_str())]
    };
    page(items, &params, &format!("{API}/projects"), &keep)
}

async fn create_project(State(db): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    if let Err(e) = require_admin(&who) {
        return e;
    }
    let req: ProjectReq = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let name = req.project_name.unwrap_or_default();
    if !valid_name(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "project name {name:?} is invalid: it must match ^[a-z0-9]+(?:[._-][a-z0-9]+)*$"
            ),
        );
    }
    let mut metadata = known_metadata(req.metadata.unwrap_or_default());
    if let Err(e) = validate_metadata(&metadata) {
        return e;
    }
    if db.projects.iter().any(|p| p.name == name) {
        return error(
            StatusCode::CONFLICT,
            format!("The project named {name} already exists"),
        );
    }
    metadata
        .entry("public".into())
        .or_insert_with(|| req.public.unwrap_or(false).to_string());
    if std::mem::take(&mut db.race) {
        insert_project(&mut db, &name, metadata.clone());
        return error(
            StatusCode::CONFLICT,
            format!("The project named {name} already exists"),
        );
    }
    let id = insert_project(&mut db, &name, metadata);
    let by_name = headers
        .get("X-Resource-Name-In-Location")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let location = if by_name {
        format!("{API}/projects/{name}")
    } else {
        format!("{API}/projects/{id}")
    };
    created(location, None)
}

/// A new project, its creator (the admin) its projectAdmin.
fn insert_project(db: &mut Db, name: &str, metadata: BTreeMap<String, String>) -> i64 {
    let owner_id = db.users.iter().find(|u| u.sysadmin).map_or(0, |u| u.id);
    let id = db.next_id();
    db.projects.push(ProjectRec {
        id,
        name: name.to_owned(),
        owner_id,
        metadata,
    });
    let member_id = db.next_id();
    db.members.push(MemberRec {
        id: member_id,
        project_id: id,
        user_id: owner_id,
        role_id: ROLE_PROJECT_ADMIN,
    });
    id
}

/// Authenticates, finds the project and checks the right: the common start of the per-project
/// handlers. Returns the project id.
fn project_access(
    db: &Db,
    headers: &HeaderMap,
    project: &str,
    need: Need,
) -> Result<(Principal, i64), Response> {
    let who = authenticate(db, headers)?;
    let id = db.find_project(headers, project).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("project {project} not found"),
        )
    })?;
    require(db, &who, id, need)?;
    Ok((who, id))
}

async fn get_project(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Response {
    let db = lock(&db);
    match project_access(&db, &headers, &project, Need::Read) {
        Ok((_, id)) => match db.project(id) {
            Some(p) => ok_json(db.project_json(p)),
            None => error(StatusCode::NOT_FOUND, "project not found"),
        },
        Err(e) => e,
    }
}

async fn update_project(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut db = lock(&db);
    let id = match project_access(&db, &headers, &project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let req: ProjectReq = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let metadata = known_metadata(req.metadata.unwrap_or_default());
    if let Err(e) = validate_metadata(&metadata) {
        return e;
    }
    if let Some(p) = db.projects.iter_mut().find(|p| p.id == id) {
        p.metadata.extend(metadata);
        if let Some(public) = req.public {
            p.metadata.insert("public".into(), public.to_string());
        }
    }
    ok_empty()
}

async fn delete_project(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Response {
    let mut db = lock(&db);
    let id = match project_access(&db, &headers, &project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    if db.repositories.iter().any(|r| r.project_id == id) {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "the project contains repositories, can not be deleted",
        );
    }
    db.projects.retain(|p| p.id != id);
    db.members.retain(|m| m.project_id != id);
    db.robots.retain(|r| r.project_id != Some(id));
    ok_empty()
}

// ---- project metadata -----------------------------------------------------------------------

/// `project_metadata.go`'s `validate`: exactly one pair, a key Harbor knows, a value it parses;
/// booleans normalised to `true`/`false`, severities to lower case.
fn validate_metadata_pair(metas: BTreeMap<String, String>) -> Result<(String, String), Response> {
    let mut pairs = metas.into_iter();
    let (Some((key, value)), None) = (pairs.next(), pairs.next()) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "only allow one key/value pair",
        ));
    };
    let invalid_value = || error(StatusCode::BAD_REQUEST, format!("invalid value: {value}"));
    let value = match key.as_str() {
        "public"
        | "enable_content_trust"
        | "enable_content_trust_cosign"
        | "prevent_vul"
        | "auto_scan" => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => "true".to_owned(),
            "false" | "0" | "f" => "false".to_owned(),
            _ => return Err(invalid_value()),
        },
        "severity" => match value.to_ascii_lowercase().as_str() {
            s @ ("none" | "low" | "medium" | "high" | "critical") => s.to_owned(),
            _ => return Err(invalid_value()),
        },
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid key: {key}"),
            ));
        }
    };
    Ok((key, value))
}

#[derive(Deserialize)]
struct MetaPath {
    project: String,
    meta_name: Option<String>,
}

async fn list_metadata(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<MetaPath>,
) -> Response {
    let db = lock(&db);
    let id = match project_access(&db, &headers, &path.project, Need::Read) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let Some(p) = db.project(id) else {
        return error(StatusCode::NOT_FOUND, "project not found");
    };
    match &path.meta_name {
        None => ok_json(json!(p.metadata)),
        Some(name) => match p.metadata.get(name) {
            Some(v) => ok_json(json!({ name: v })),
            None => error(StatusCode::NOT_FOUND, format!("metadata {name} not found")),
        },
    }
}

async fn set_metadata(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<MetaPath>,
    body: Bytes,
) -> Response {
    let mut db = lock(&db);
    let id = match project_access(&db, &headers, &path.project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let mut metas: BTreeMap<String, String> = match parse_body(&body) {
        Ok(m) => m,
        Err(e) => return e,
    };
    // PUT .../metadatas/{meta_name} takes the value of that name from the body.
    if let Some(name) = &path.meta_name {
        let value = metas.remove(name).unwrap_or_default();
        metas = BTreeMap::from([(name.clone(), value)]);
    }
    let (key, value) = match validate_metadata_pair(metas) {
        Ok(pair) => pair,
        Err(e) => return e,
    };
    if let Some(p) = db.projects.iter_mut().find(|p| p.id == id) {
        p.metadata.insert(key, value);
    }
    ok_empty()
}

async fn delete_metadata(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(path): Path<MetaPath>,
) -> Response {
    let mut db = lock(&db);
    let id = match project_access(&db, &headers, &path.project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    if let (Some(p), Some(name)) = (
        db.projects.iter_mut().find(|p| p.id == id),
        path.meta_name.as_ref(),
    ) {
        p.metadata.remove(name);
    }
    ok_empty()
}

// ---- members --------------------------------------------------------------------------------

fn role_name(role_id: i64) -> &'static str {
    match role_id {
        ROLE_PROJECT_ADMIN => "projectAdmin",
        ROLE_DEVELOPER => "developer",
        ROLE_GUEST => "guest",
        ROLE_MAINTAINER => "maintainer",
        ROLE_LIMITED_GUEST => "limitedGuest",
        _ => "",
    }
}

async fn list_members(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(params): Query<PageParams>,
) -> Response {
    let db = lock(&db);
    let id = match project_access(&db, &headers, &project, Need::Members) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let filter = params.entityname.clone().unwrap_or_default();
    let items: Vec<Value> = db
        .members
        .iter()
        .filter(|m| m.project_id == id)
        .filter_map(|m| db.user(m.user_id).map(|u| (m, u)))
        .filter(|(_, u)| u.username.contains(&filter))
        .map(|(m, u)| {
            json!({
                "id": m.id,
                "project_id": m.project_id,
                "entity_name": u.username,
                "role_name": role_name(m.role_id),
                "role_id": m.role_id,
                "entity_id": u.id,
                "entity_type": "u",
            })
        })
        .collect();
    let keep: Vec<(&str, &str)> = if filter.is_empty() {
        vec![]
    } else {
        vec![("entityname", filter.as_str())]
    };
    page(
        items,
        &params,
        &format!("{API}/projects/{project}/members"),
        &keep,
    )
}

#[derive(Deserialize)]
struct MemberUser {
    user_id: Option<i64>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct ProjectMember {
    role_id: Option<i64>,
    member_user: Option<MemberUser>,
}

#[derive(Deserialize)]
struct RoleRequest {
    role_id: Option<i64>,
}

fn valid_role(role_id: Option<i64>) -> Result<i64, Response> {
    match role_id {
        Some(r) if (ROLE_PROJECT_ADMIN..=ROLE_LIMITED_GUEST).contains(&r) => Ok(r),
        _ => Err(error(StatusCode::BAD_REQUEST, "invalid role id")),
    }
}

async fn create_member(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut db = lock(&db);
    let project_id = match project_access(&db, &headers, &project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let req: ProjectMember = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let role_id = match valid_role(req.role_id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(member_user) = req.member_user else {
        return error(
            StatusCode::BAD_REQUEST,
            "member_user is required (member groups are not supported here)",
        );
    };
    let user = match (member_user.user_id, member_user.username.as_deref()) {
        (Some(id), _) if id > 0 => db.user(id),
        (_, Some(name)) if !name.is_empty() => db.users.iter().find(|u| u.username == name),
        _ => return error(StatusCode::BAD_REQUEST, "user_id or username is required"),
    };
    // Harbor answers 404 when the user is neither in its database nor found by the
    // authenticator (database authentication: no such account).
    let Some(user_id) = user.map(|u| u.id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "user {} is not found",
                member_user.username.unwrap_or_default()
            ),
        );
    };
    if std::mem::take(&mut db.race) && db.role(user_id, project_id).is_none() {
        let id = db.next_id();
        db.members.push(MemberRec {
            id,
            project_id,
            user_id,
            role_id: ROLE_GUEST,
        });
    }
    if db.role(user_id, project_id).is_some() {
        return error(
            StatusCode::CONFLICT,
            "the user is already a member of the project",
        );
    }
    let id = db.next_id();
    db.members.push(MemberRec {
        id,
        project_id,
        user_id,
        role_id,
    });
    created(format!("{API}/projects/{project_id}/members/{id}"), None)
}

async fn update_member(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path((project, mid)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let mut db = lock(&db);
    let project_id = match project_access(&db, &headers, &project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let req: RoleRequest = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let role_id = match valid_role(req.role_id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match db
        .members
        .iter_mut()
        .find(|m| m.id == mid && m.project_id == project_id)
    {
        Some(m) => {
            m.role_id = role_id;
            ok_empty()
        }
        None => error(StatusCode::NOT_FOUND, format!("member {mid} not found")),
    }
}

async fn delete_member(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path((project, mid)): Path<(String, i64)>,
) -> Response {
    let mut db = lock(&db);
    let project_id = match project_access(&db, &headers, &project, Need::Manage) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    // Harbor deletes by (project, member id) and answers 200 whether a row went or not.
    db.members
        .retain(|m| !(m.id == mid && m.project_id == project_id));
    ok_empty()
}

// ---- repositories ---------------------------------------------------------------------------

async fn list_repositories(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(params): Query<PageParams>,
) -> Response {
    let db = lock(&db);
    let id = match project_access(&db, &headers, &project, Need::Read) {
        Ok((_, id)) => id,
        Err(e) => return e,
    };
    let items: Vec<Value> = db
        .repositories
        .iter()
        .filter(|r| r.project_id == id)
        .map(|r| {
            json!({
                "id": r.id,
                "project_id": r.project_id,
                "name": r.name,
                "artifact_count": 1,
                "pull_count": 0,
            })
        })
        .collect();
    page(
        items,
        &params,
        &format!("{API}/projects/{project}/repositories"),
        &[],
    )
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%'
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn delete_repository(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path((project, repository)): Path<(String, String)>,
) -> Response {
    let mut db = lock(&db);
    // The path was decoded once by the router; a `/` inside the name arrives as `%2F`.
    let repository = percent_decode(&repository);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    // `{project_name}` here is always a name.
    let Some(project_id) = db.projects.iter().find(|p| p.name == project).map(|p| p.id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("project {project} not found"),
        );
    };
    if let Err(e) = require(&db, &who, project_id, Need::Manage) {
        return e;
    }
    let full = format!("{project}/{repository}");
    let before = db.repositories.len();
    db.repositories.retain(|r| r.name != full);
    if db.repositories.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            format!("repository {full} not found"),
        );
    }
    ok_empty()
}

// ---- robots ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Access {
    resource: Option<String>,
    action: Option<String>,
}

#[derive(Deserialize)]
struct RobotPermission {
    kind: Option<String>,
    namespace: Option<String>,
    access: Option<Vec<Access>>,
}

#[derive(Deserialize)]
struct RobotCreate {
    name: Option<String>,
    description: Option<String>,
    level: Option<String>,
    disable: Option<bool>,
    duration: Option<i64>,
    permissions: Option<Vec<RobotPermission>>,
}

#[derive(Deserialize)]
struct RobotSec {
    secret: Option<String>,
}

/// `q=k1=v1,k2=v2`: exact matches on `Level`, `ProjectID` and `name`, `name=~v` a fuzzy one.
fn robot_query(q: &str) -> Result<Vec<(String, String)>, Response> {
    let mut out = Vec::new();
    for part in q.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid query {part:?}"),
            ));
        };
        match k {
            "Level" | "level" | "ProjectID" | "project_id" | "name" => {
                out.push((k.to_ascii_lowercase(), v.to_owned()))
            }
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("unsupported query key {k:?}"),
                ));
            }
        }
    }
    Ok(out)
}

async fn list_robots(
    State(db): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Response {
    let db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    let query = match robot_query(params.q.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let project_filter = query
        .iter()
        .find(|(k, _)| k == "projectid" || k == "project_id")
        .map(|(_, v)| v.parse::<i64>());
    let project_filter = match project_filter {
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "ProjectID must be a number"),
        None => None,
    };
    // Listing every robot is for system admins; a project's, for its admins.
    let allowed = match project_filter {
        Some(id) => {
            if db.project(id).is_none() {
                return error(StatusCode::NOT_FOUND, format!("project {id} not found"));
            }
            require(&db, &who, id, Need::Manage)
        }
        None => require_admin(&who),
    };
    if let Err(e) = allowed {
        return e;
    }
    let items: Vec<Value> = db
        .robots
        .iter()
        .filter(|r| project_filter.is_none_or(|id| r.project_id == Some(id)))
        .filter(|r| {
            query.iter().all(|(k, v)| match k.as_str() {
                "level" => (v == "project") == r.project_id.is_some(),
                "name" => match v.strip_prefix('~') {
                    Some(fuzzy) => r.name.contains(fuzzy),
                    None => &r.name == v,
                },
                _ => true,
            })
        })
        .map(|r| db.robot_json(r))
        .collect();
    let q = params.q.clone().unwrap_or_default();
    let keep: Vec<(&str, &str)> = if q.is_empty() {
        vec![]
    } else {
        vec![("q", q.as_str())]
    };
    page(items, &params, &format!("{API}/robots"), &keep)
}

fn valid_secret(secret: &str) -> bool {
    (8..=128).contains(&secret.len())
        && secret.chars().any(|c| c.is_ascii_uppercase())
        && secret.chars().any(|c| c.is_ascii_lowercase())
        && secret.chars().any(|c| c.is_ascii_digit())
}

fn new_secret() -> Result<String, Response> {
    random_token(29)
        .map(|t| format!("Rs{t}7"))
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))
}

async fn create_robot(State(db): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    let req: RobotCreate = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let name = req.name.unwrap_or_default();
    if !valid_name(&name) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("robot name {name:?} is not in lower case or contains illegal characters"),
        );
    }
    let duration = req.duration.unwrap_or(-1);
    if duration < -1 || duration == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "duration must be -1 (never expires) or a number of days",
        );
    }
    let level = req.level.unwrap_or_default();
    if level != "project" {
        // System robots are outside what the client uses; the double only makes project ones.
        return error(
            StatusCode::BAD_REQUEST,
            format!("level {level:?} is not supported by the double: use \"project\""),
        );
    }
    let permissions = req.permissions.unwrap_or_default();
    let [permission] = permissions.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "a project robot has exactly one permission, on its project",
        );
    };
    if permission.kind.as_deref() != Some("project") {
        return error(
            StatusCode::BAD_REQUEST,
            "permission kind must be \"project\"",
        );
    }
    let namespace = permission.namespace.clone().unwrap_or_default();
    let Some(project_id) = db
        .projects
        .iter()
        .find(|p| p.name == namespace)
        .map(|p| p.id)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("project {namespace} not found"),
        );
    };
    if let Err(e) = require(&db, &who, project_id, Need::Manage) {
        return e;
    }
    let mut access = Vec::new();
    for a in permission.access.as_deref().unwrap_or_default() {
        let resource = a.resource.clone().unwrap_or_default();
        let action = a.action.clone().unwrap_or_default();
        let known = matches!(
            (resource.as_str(), action.as_str()),
            ("repository", "push" | "pull" | "delete" | "list" | "read")
                | ("artifact", "read" | "list" | "delete")
                | ("tag", "create" | "delete" | "list")
        );
        if !known {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown access {resource}:{action}"),
            );
        }
        access.push((resource, action));
    }
    let full = format!("robot${namespace}+{name}");
    if db.robots.iter().any(|r| r.name == full) {
        // Not in the swagger's list for this operation, but what Harbor answers.
        return error(
            StatusCode::CONFLICT,
            format!("robot account {full} already exists"),
        );
    }
    let secret = match new_secret() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let id = db.next_id();
    db.robots.push(RobotRec {
        id,
        name: full.clone(),
        description: req.description.unwrap_or_default(),
        project_id: Some(project_id),
        secret: secret.clone(),
        disabled: req.disable.unwrap_or(false),
        duration,
        access,
    });
    created(
        format!("{API}/robots/{id}"),
        Some(json!({"id": id, "name": full, "secret": secret, "expires_at": -1})),
    )
}

/// Finds a robot and checks that the caller may manage it.
fn robot_access(db: &Db, headers: &HeaderMap, id: i64) -> Result<usize, Response> {
    let who = authenticate(db, headers)?;
    let index = db
        .robots
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("robot {id} not found")))?;
    match db.robots.get(index).and_then(|r| r.project_id) {
        Some(project_id) => require(db, &who, project_id, Need::Manage)?,
        None => require_admin(&who)?,
    }
    Ok(index)
}

async fn get_robot(State(db): State<Shared>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let db = lock(&db);
    match robot_access(&db, &headers, id) {
        Ok(index) => match db.robots.get(index) {
            Some(r) => ok_json(db.robot_json(r)),
            None => error(StatusCode::NOT_FOUND, "robot not found"),
        },
        Err(e) => e,
    }
}

async fn refresh_robot(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let mut db = lock(&db);
    let index = match robot_access(&db, &headers, id) {
        Ok(index) => index,
        Err(e) => return e,
    };
    let req: RobotSec = match parse_body(&body) {
        Ok(req) => req,
        Err(e) => return e,
    };
    let secret = match req.secret.filter(|s| !s.is_empty()) {
        Some(s) if valid_secret(&s) => s,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the secret must be 8 to 128 characters with at least one uppercase letter, one lowercase letter and one digit",
            );
        }
        None => match new_secret() {
            Ok(s) => s,
            Err(e) => return e,
        },
    };
    if let Some(r) = db.robots.get_mut(index) {
        r.secret = secret.clone();
    }
    ok_json(json!({ "secret": secret }))
}

async fn delete_robot(
    State(db): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let mut db = lock(&db);
    match robot_access(&db, &headers, id) {
        Ok(_) => {
            db.robots.retain(|r| r.id != id);
            ok_empty()
        }
        Err(e) => e,
    }
}

// ---- the registry's token service ------------------------------------------------------------

/// `GET /service/token?service=harbor-registry&scope=repository:<project>/<repo>:<actions>`, the
/// Docker registry token flow a `docker login`/`push`/`pull` goes through. Real Harbor signs the
/// granted access into a JWT; the double returns it in the body as `access`.
async fn token(
    State(db): State<Shared>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let db = lock(&db);
    let who = match authenticate(&db, &headers) {
        Ok(who) => who,
        Err(e) => return e,
    };
    let mut access = Vec::new();
    for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            return error(StatusCode::BAD_REQUEST, format!("invalid scope {scope:?}"));
        };
        let project = name.split('/').next().unwrap_or("");
        let project_id = db.projects.iter().find(|p| p.name == project).map(|p| p.id);
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|action| {
                kind == "repository"
                    && project_id.is_some_and(|pid| match &who {
                        Principal::Admin => true,
                        Principal::User(uid) => match db.role(*uid, pid) {
                            Some(ROLE_PROJECT_ADMIN | ROLE_DEVELOPER | ROLE_MAINTAINER) => {
                                matches!(*action, "push" | "pull")
                            }
                            Some(_) => *action == "pull",
                            None => false,
                        },
                        Principal::Robot { id, project_id } => {
                            *project_id == Some(pid)
                                && db.robots.iter().any(|r| {
                                    r.id == *id
                                        && r.access
                                            .iter()
                                            .any(|(res, act)| res == "repository" && act == action)
                                })
                        }
                    })
            })
            .collect();
        access.push(json!({"type": kind, "name": name, "actions": granted}));
    }
    let token = random_token(32).unwrap_or_default();
    ok_json(json!({
        "token": token,
        "access_token": token,
        "expires_in": 1800,
        "access": access,
    }))
}

// ---------------------------------------------------------------------------------------------

/// `len` random letters and digits from the kernel's generator.
fn random_token(len: usize) -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| {
            ALPHABET
                .get(usize::from(*b) % ALPHABET.len())
                .copied()
                .map_or('a', char::from)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn harbor_name_rule() {
        for ok in ["a", "team-a", "a.b_c-d", "x1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a--b", "a b", "a/b", "a$"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
