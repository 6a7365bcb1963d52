//! Harbor, through its v2.0 REST API (`<url>/api/v2.0`, HTTP basic auth as a system admin).
//!
//! What it calls, as `api/v2.0/swagger.yaml` in goharbor/harbor describes it:
//!
//! - `GET /users/current`: [`Registry::check`]; the admin must have `sysadmin_flag`.
//! - `GET|POST|PUT|DELETE /projects[/{name}]` with `X-Is-Resource-Name: true`: the project, with
//!   its metadata `public: "false"`, `auto_scan`, `prevent_vul`, `severity` (string values).
//! - `GET|POST /projects/{name}/members`, `PUT|DELETE /projects/{name}/members/{mid}`: user
//!   members, role 1 projectAdmin, 2 developer, 3 guest. The admin's own membership (Harbor makes
//!   the creator projectAdmin) and group members are left alone.
//! - `GET /projects/{name}/repositories`, `DELETE /projects/{name}/repositories/{repo}` (a `/`
//!   in `{repo}` sent as `%252F`): emptied before the project is deleted, since Harbor refuses to
//!   delete a project with repositories (412).
//! - `GET|POST /robots`, `GET|PATCH|DELETE /robots/{id}`: v2 project-level robots, permission
//!   `{kind: project, namespace: <project>, access: [repository push, repository pull]}`,
//!   `duration: -1` (never expires). The login Harbor gives it is `robot$<project>+<name>`.
//!
//! **Ownership.** Harbor keeps no free-form metadata on a project: `metadata` takes only its own
//! keys (`public`, `auto_scan`, `severity`, ...; `/projects/{p}/metadatas` answers 400 to any
//! other, and `POST /projects` drops them). So the owner is recorded by a *marker robot* on the
//! project, named [`Owner::marker`] (robot names never change), with pull only and a secret that
//! is never kept: nobody can log in as it. It is made right after the project; if that fails,
//! the project just made (empty) is deleted again, so no unmarked project is left behind. Only a
//! system admin or the project's own admins can make robots, so a marker proves the project is
//! Berth's or was given to it by someone who already administers it.
//!
//! Lists are read page by page (`page`, `page_size`), following the `Link` header's `rel="next"`
//! or, without one, `X-Total-Count`. A create that answers 409 looks again instead of making a
//! second one; a delete that answers 404 is done.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{MemberSync, Registry, RegistryConfig, RegistryProjectSpec, RegistryRole};
use crate::{Credential, Error, ErrorKind, IssuedCredential, Owner, Result, Secret};

/// Harbor's largest page.
const MAX_PAGE_SIZE: usize = 100;
/// A guard against a server whose pagination never ends.
const MAX_PAGES: usize = 10_000;

/// A Harbor client. Cheap to clone.
#[derive(Clone)]
pub struct Harbor {
    base: reqwest::Url,
    api: String,
    admin_username: String,
    admin_password: Secret,
    http: reqwest::Client,
    page_size: usize,
}

impl std::fmt::Debug for Harbor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harbor")
            .field("url", &self.base.as_str())
            .field("admin_username", &self.admin_username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Project {
    project_id: i64,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Member {
    id: i64,
    entity_name: String,
    #[serde(default)]
    entity_type: String,
    role_id: i64,
}

#[derive(Deserialize)]
struct Repository {
    name: String,
}

#[derive(Deserialize)]
struct Robot {
    id: i64,
    name: String,
    #[serde(default)]
    permissions: Vec<RobotPermission>,
}

#[derive(Deserialize)]
struct RobotPermission {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Deserialize)]
struct RobotCreated {
    id: i64,
    name: String,
    secret: String,
}

#[derive(Deserialize)]
struct RobotSec {
    secret: String,
}

#[derive(Deserialize)]
struct CurrentUser {
    #[serde(default)]
    sysadmin_flag: bool,
}

impl Harbor {
    /// A client for the Harbor at `config.url`. Makes no request: [`Registry::check`] does.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let base = reqwest::Url::parse(config.url.trim_end_matches('/')).map_err(|e| {
            Error::new(
                ErrorKind::NotConfigured,
                format!("the registry URL {:?} is not a URL: {e}", config.url),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                format!(
                    "the registry URL {:?} is not an http(s) URL with a host",
                    config.url
                ),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::new(
                ErrorKind::NotConfigured,
                "the registry URL carries credentials: give them as the admin username and password instead",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::new(ErrorKind::Backend, format!("building an HTTP client: {e}")))?;
        let api = format!("{}/api/v2.0", base.as_str().trim_end_matches('/'));
        Ok(Self {
            base,
            api,
            admin_username: config.admin_username,
            admin_password: config.admin_password,
            http,
            page_size: MAX_PAGE_SIZE,
        })
    }

    /// Reads lists `size` items a page (1 to 100; Harbor's default page is 10, its largest 100,
    /// which is what the client uses unless told otherwise).
    pub fn with_page_size(mut self, size: usize) -> Self {
        self.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .basic_auth(&self.admin_username, Some(self.admin_password.expose()))
            .header("X-Is-Resource-Name", "true")
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send(&self, what: &str, request: RequestBuilder) -> Result<Response> {
        request.send().await.map_err(|e| Error::transport(what, &e))
    }

    /// The project, or `None` if Harbor has none by this name.
    async fn project(&self, name: &str) -> Result<Option<Project>> {
        let what = format!("reading Harbor project {name}");
        let response = self
            .send(
                &what,
                self.request(Method::GET, &format!("/projects/{}", segment(name))),
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => json_body(&what, response).await.map(Some),
            _ => Err(failure(&what, response).await),
        }
    }

    /// Every item of a paginated list, or `None` if the list's owner does not exist (404).
    async fn list_all<T: DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Vec<T>>> {
        let mut out: Vec<T> = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut params: Vec<(&str, String)> = query.to_vec();
            params.push(("page", page.to_string()));
            params.push(("page_size", self.page_size.to_string()));
            let response = self
                .send(what, self.request(Method::GET, path).query(&params))
                .await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND && page == 1 {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(failure(what, response).await);
            }
            let headers = response.headers();
            let total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let link = headers
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let items: Vec<T> = json_body(what, response).await?;
            let received = items.len();
            out.extend(items);
            let more = match link {
                Some(link) => has_next(&link),
                None => total.is_some_and(|total| out.len() < total),
            };
            if !more || received == 0 {
                return Ok(Some(out));
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            format!("{what}: more than {MAX_PAGES} pages"),
        ))
    }

    async fn members(&self, project: &str) -> Result<Vec<Member>> {
        let what = format!("listing the members of Harbor project {project}");
        self.list_all(
            &what,
            &format!("/projects/{}/members", segment(project)),
            &[],
        )
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!("{what}: the project does not exist"),
            )
        })
    }

    async fn set_role(&self, project: &str, member: &Member, role_id: i64) -> Result<()> {
        let what = format!(
            "changing the role of {} in Harbor project {project}",
            member.entity_name
        );
        let response = self
            .send(
                &what,
                self.request(
                    Method::PUT,
                    &format!("/projects/{}/members/{}", segment(project), member.id),
                )
                .json(&json!({ "role_id": role_id })),
            )
            .await?;
        expect_success(&what, response).await
    }

    /// The robot login's short name, if the robot belongs to `project`.
    fn short_name(robot: &Robot, project: &str) -> Option<String> {
        let on_project = robot
            .permissions
            .iter()
            .any(|p| p.kind == "project" && p.namespace == project);
        // `robot$<project>+<name>`; the `robot$` prefix is configurable in Harbor.
        let marker = format!("{project}+");
        let at = robot.name.find(&marker)?;
        let short = robot.name.get(at + marker.len()..)?;
        (on_project && !short.is_empty()).then(|| short.to_owned())
    }

    /// Whether the project has `owner`'s marker robot.
    async fn records(&self, project: &str, owner: &Owner) -> Result<bool> {
        Ok(self
            .robots(project)
            .await?
            .iter()
            .any(|r| Self::short_name(r, project).as_deref() == Some(owner.marker.as_str())))
    }

    /// Makes `owner`'s marker robot on the project: pull only, its secret dropped at once.
    async fn create_marker(&self, project: &str, owner: &Owner) -> Result<()> {
        let what = format!("recording the owner of Harbor project {project}");
        let body = json!({
            "name": owner.marker,
            "description": format!("Berth: {} owns this project. Nobody holds this robot's secret.", owner.record()),
            "level": "project",
            "duration": -1,
            "permissions": [{
                "kind": "project",
                "namespace": project,
                "access": [{ "resource": "repository", "action": "pull" }],
            }],
        });
        let response = self
            .send(&what, self.request(Method::POST, "/robots").json(&body))
            .await?;
        match response.status() {
            // Its secret is in the answer and goes no further.
            StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
            _ => Err(failure(&what, response).await),
        }
    }

    async fn robots(&self, project: &str) -> Result<Vec<Robot>> {
        let Some(p) = self.project(project).await? else {
            return Ok(Vec::new());
        };
        let what = format!("listing the robots of Harbor project {project}");
        let query = [("q", format!("Level=project,ProjectID={}", p.project_id))];
        Ok(self
            .list_all::<Robot>(&what, "/robots", &query)
            .await?
            .unwrap_or_default())
    }
}

#[async_trait]
impl Registry for Harbor {
    fn kind(&self) -> &'static str {
        "harbor"
    }

    fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    async fn check(&self) -> Result<()> {
        let what = format!(
            "logging in to Harbor at {} as {}",
            self.base, self.admin_username
        );
        let response = self
            .send(&what, self.request(Method::GET, "/users/current"))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Err(Error::new(
                ErrorKind::NotConfigured,
                format!("{what}: no Harbor v2.0 API at {}/api/v2.0", self.base),
            )),
            StatusCode::UNAUTHORIZED => Err(Error::new(
                ErrorKind::Unauthorized,
                format!("{what}: Harbor rejected the admin username or password (HTTP 401)"),
            )),
            s if s.is_success() => {
                let user: CurrentUser = json_body(&what, response).await?;
                if user.sysadmin_flag {
                    Ok(())
                } else {
                    Err(Error::new(
                        ErrorKind::Forbidden,
                        format!(
                            "{what}: {} is not a Harbor system administrator",
                            self.admin_username
                        ),
                    ))
                }
            }
            _ => Err(failure(&what, response).await),
        }
    }

    async fn ensure_project(&self, spec: &RegistryProjectSpec, owner: &Owner) -> Result<()> {
        let name = spec.name.as_str();
        let wanted: BTreeMap<String, String> = [
            ("auto_scan", spec.scan_on_push.to_string()),
            ("prevent_vul", spec.prevent_vulnerable.to_string()),
            ("severity", spec.severity.to_ascii_lowercase()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let existing = match self.project(name).await? {
            Some(project) => project,
            None => {
                let what = format!("creating Harbor project {name}");
                let mut metadata = wanted.clone();
                metadata.insert("public".into(), "false".into());
                let response = self
                    .send(
                        &what,
                        self.request(Method::POST, "/projects").json(&json!({
                            "project_name": name,
                            "metadata": metadata,
                        })),
                    )
                    .await?;
                let created = match response.status() {
                    StatusCode::CREATED => true,
                    // Made meanwhile (by another reconcile, or someone else): look again, and
                    // check its owner below.
                    StatusCode::CONFLICT => false,
                    _ => return Err(failure(&what, response).await),
                };
                if created && let Err(e) = self.create_marker(name, owner).await {
                    // Empty and just made: remove it rather than leave it unmarked.
                    let _ = self
                        .send(
                            &what,
                            self.request(Method::DELETE, &format!("/projects/{}", segment(name))),
                        )
                        .await;
                    return Err(e);
                }
                self.project(name).await?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Backend,
                        format!("{what}: Harbor accepted it but does not show it"),
                    )
                })?
            }
        };
        if !self.records(name, owner).await? {
            if !owner.adopt {
                return Err(Error::conflict(
                    &format!("Harbor project {name}"),
                    &format!(
                        "records no owner of Berth's (it has no robot {})",
                        owner.marker
                    ),
                ));
            }
            self.create_marker(name, owner).await?;
        }

        let differs = wanted
            .iter()
            .any(|(k, v)| existing.metadata.get(k) != Some(v));
        if differs {
            let what = format!("updating the settings of Harbor project {name}");
            let response = self
                .send(
                    &what,
                    self.request(Method::PUT, &format!("/projects/{}", segment(name)))
                        .json(&json!({ "metadata": wanted })),
                )
                .await?;
            expect_success(&what, response).await?;
        }
        Ok(())
    }

    async fn sync_members(
        &self,
        project: &str,
        members: &[(String, RegistryRole)],
    ) -> Result<MemberSync> {
        // The strongest role wins when a name is listed twice. The admin is left as it is.
        let mut desired: BTreeMap<&str, i64> = BTreeMap::new();
        for (name, role) in members {
            if name == &self.admin_username || name.is_empty() {
                continue;
            }
            let id = role_id(*role);
            desired
                .entry(name.as_str())
                .and_modify(|r| *r = (*r).min(id))
                .or_insert(id);
        }

        let mut sync = MemberSync::default();
        let current = self.members(project).await?;
        let users: Vec<&Member> = current
            .iter()
            .filter(|m| m.entity_type == "u" && m.entity_name != self.admin_username)
            .collect();
        for member in &users {
            match desired.get(member.entity_name.as_str()) {
                None => {
                    let what = format!(
                        "removing {} from Harbor project {project}",
                        member.entity_name
                    );
                    let response = self
                        .send(
                            &what,
                            self.request(
                                Method::DELETE,
                                &format!("/projects/{}/members/{}", segment(project), member.id),
                            ),
                        )
                        .await?;
                    if response.status() != StatusCode::NOT_FOUND {
                        expect_success(&what, response).await?;
                    }
                    sync.removed += 1;
                }
                Some(&role) if role != member.role_id => {
                    self.set_role(project, member, role).await?;
                    sync.updated += 1;
                }
                Some(_) => {}
            }
        }

        for (&name, &role) in &desired {
            if users.iter().any(|m| m.entity_name == name) {
                continue;
            }
            let what = format!("adding {name} to Harbor project {project}");
            let response = self
                .send(
                    &what,
                    self.request(
                        Method::POST,
                        &format!("/projects/{}/members", segment(project)),
                    )
                    .json(&json!({ "role_id": role, "member_user": { "username": name } })),
                )
                .await?;
            match response.status() {
                StatusCode::CREATED => sync.added += 1,
                // Harbor has no such user.
                StatusCode::NOT_FOUND => sync.missing_users.push(name.to_owned()),
                // Added meanwhile: look again and set the role.
                StatusCode::CONFLICT => {
                    let again = self.members(project).await?;
                    if let Some(member) = again
                        .iter()
                        .find(|m| m.entity_type == "u" && m.entity_name == name)
                        && member.role_id != role
                    {
                        self.set_role(project, member, role).await?;
                        sync.updated += 1;
                    }
                }
                _ => return Err(failure(&what, response).await),
            }
        }
        sync.missing_users.sort();
        Ok(sync)
    }

    async fn delete_project(&self, project: &str, owner: &Owner) -> Result<()> {
        if self.project(project).await?.is_none() {
            return Ok(());
        }
        if !self.records(project, owner).await? {
            return Err(Error::conflict(
                &format!("Harbor project {project}"),
                &format!(
                    "records no owner of Berth's or another one (it has no robot {})",
                    owner.marker
                ),
            ));
        }
        let what = format!("listing the repositories of Harbor project {project}");
        let repositories: Vec<Repository> = self
            .list_all(
                &what,
                &format!("/projects/{}/repositories", segment(project)),
                &[],
            )
            .await?
            .unwrap_or_default();
        for repository in repositories {
            // Listed as `<project>/<name>`; addressed by `<name>`, a `/` in it encoded twice.
            let prefix = format!("{project}/");
            let short = repository
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&repository.name);
            let encoded = segment(short).replace("%2F", "%252F");
            let what = format!(
                "deleting repository {} of Harbor project {project}",
                repository.name
            );
            let response = self
                .send(
                    &what,
                    self.request(
                        Method::DELETE,
                        &format!("/projects/{}/repositories/{encoded}", segment(project)),
                    ),
                )
                .await?;
            if response.status() != StatusCode::NOT_FOUND {
                expect_success(&what, response).await?;
            }
        }
        let what = format!("deleting Harbor project {project}");
        let response = self
            .send(
                &what,
                self.request(Method::DELETE, &format!("/projects/{}", segment(project))),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_success(&what, response).await
    }

    async fn list_robots(&self, project: &str, prefix: &str) -> Result<Vec<Credential>> {
        let mut out: Vec<Credential> = self
            .robots(project)
            .await?
            .iter()
            .filter_map(|robot| {
                Self::short_name(robot, project).map(|name| Credential {
                    id: robot.id.to_string(),
                    name,
                })
            })
            .filter(|c| c.name.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn create_robot(
        &self,
        project: &str,
        name: &str,
        owner: &Owner,
    ) -> Result<IssuedCredential> {
        let what = format!("creating robot {name} in Harbor project {project}");
        let body = json!({
            "name": name,
            "description": format!("Berth: push and pull on {project} for {}", owner.record()),
            "level": "project",
            "duration": -1,
            "disable": false,
            "permissions": [{
                "kind": "project",
                "namespace": project,
                "access": [
                    { "resource": "repository", "action": "push" },
                    { "resource": "repository", "action": "pull" },
                ],
            }],
        });
        let response = self
            .send(&what, self.request(Method::POST, "/robots").json(&body))
            .await?;
        match response.status() {
            StatusCode::CREATED => {
                let created: RobotCreated = json_body(&what, response).await?;
                Ok(IssuedCredential {
                    credential: Credential {
                        id: created.id.to_string(),
                        name: name.to_owned(),
                    },
                    login: created.name,
                    secret: Secret::new(created.secret),
                })
            }
            // It exists (a crash lost its secret, or another reconcile made it): never a second
            // one. Give the existing robot a new secret instead.
            StatusCode::CONFLICT => {
                let existing = self
                    .list_robots(project, name)
                    .await?
                    .into_iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Backend,
                            format!("{what}: Harbor says it exists (409) but does not list it"),
                        )
                    })?;
                self.recover_robot(project, &existing).await
            }
            _ => Err(failure(&what, response).await),
        }
    }

    async fn recover_robot(&self, project: &str, robot: &Credential) -> Result<IssuedCredential> {
        let what = format!(
            "giving robot {} of Harbor project {project} a new secret",
            robot.name
        );
        let path = format!("/robots/{}", segment(&robot.id));
        let response = self.send(&what, self.request(Method::GET, &path)).await?;
        if !response.status().is_success() {
            return Err(failure(&what, response).await);
        }
        let current: Robot = json_body(&what, response).await?;
        if Self::short_name(&current, project).as_deref() != Some(robot.name.as_str()) {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "{what}: robot {} is not robot {} of this project",
                    robot.id, robot.name
                ),
            ));
        }
        let secret = new_secret()?;
        let response = self
            .send(
                &what,
                self.request(Method::PATCH, &path)
                    .json(&json!({ "secret": secret.expose() })),
            )
            .await?;
        if !response.status().is_success() {
            return Err(failure(&what, response).await);
        }
        let answer: RobotSec = json_body(&what, response).await?;
        let secret = if answer.secret.is_empty() {
            secret
        } else {
            Secret::new(answer.secret)
        };
        Ok(IssuedCredential {
            credential: robot.clone(),
            login: current.name,
            secret,
        })
    }

    async fn delete_robot(&self, robot: &Credential) -> Result<()> {
        let what = format!("deleting Harbor robot {} ({})", robot.name, robot.id);
        let response = self
            .send(
                &what,
                self.request(Method::DELETE, &format!("/robots/{}", segment(&robot.id))),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect_success(&what, response).await
    }
}

fn role_id(role: RegistryRole) -> i64 {
    match role {
        RegistryRole::Admin => 1,
        RegistryRole::Developer => 2,
        RegistryRole::Guest => 3,
    }
}

/// Whether a `Link` header (`<url>; rel="prev" , <url>; rel="next"`) has a next page.
fn has_next(link: &str) -> bool {
    link.split(',').any(|part| {
        part.split(';')
            .skip(1)
            .any(|param| matches!(param.trim(), "rel=\"next\"" | "rel=next"))
    })
}

/// A path segment, percent-encoded.
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn json_body<T: DeserializeOwned>(what: &str, response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::transport(what, &e))?;
    // The position only: an answer may carry a secret, which must not reach the message.
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::Backend,
            format!(
                "{what}: the answer is not what Harbor's API describes (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

async fn expect_success(what: &str, response: Response) -> Result<()> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(failure(what, response).await)
    }
}

/// An error for an answer that was not a success, with Harbor's own messages.
async fn failure(what: &str, response: Response) -> Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<HarborError>,
    }
    #[derive(Deserialize)]
    struct HarborError {
        #[serde(default)]
        message: String,
    }
    let message = match serde_json::from_str::<Errors>(&body) {
        Ok(errors) => errors
            .errors
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body,
    };
    Error::status(what, status, &message)
}

/// A robot secret Harbor accepts: 32 letters and digits with at least one upper-case letter,
/// one lower-case letter and one digit.
fn new_secret() -> Result<Secret> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 29];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::new(ErrorKind::Backend, format!("reading /dev/urandom: {e}")))?;
    let mut secret = String::from("Rb7");
    secret.extend(bytes.iter().map(|b| {
        ALPHABET
            .get(usize::from(*b) % ALPHABET.len())
            .copied()
            .map_or('x', char::from)
    }));
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::{has_next, segment};

    #[test]
    fn link_header_next() {
        assert!(has_next(
            "</api/v2.0/robots?page=1&page_size=3>; rel=\"prev\" , </api/v2.0/robots?page=3&page_size=3>; rel=\"next\""
        ));
        assert!(!has_next(
            "</api/v2.0/robots?page=1&page_size=3>; rel=\"prev\""
        ));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("team-a.b_c"), "team-a.b_c");
    }
}
