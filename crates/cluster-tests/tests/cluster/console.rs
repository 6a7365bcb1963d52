//! The console's Project pages against the real control plane, driven in-process (tower
//! `oneshot`) as browser sessions of several users, the console acting by impersonation through
//! the test's admin client. What they show is what the API server lets each user see, every
//! change is decided by the API server (its RBAC, Berth's admission), and the hostile tenant
//! changes nothing: the outsider's direct URLs and forms, the viewer's forged POST, the editor
//! who makes themselves owner, the `system:masters` group claim. Each victim is read back
//! unchanged by the admin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use berth_api::Project;
use berth_api::project::{Member, MemberKind, Role};
use berth_console::app::{Config, Console, router};
use berth_console::kube_auth::Identity;
use berth_console::session::{Session, random_id};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use tower::ServiceExt as _;

use crate::project::{create, wait_ready};

mod origin;
mod workloads;
use crate::support::{eventually, unique, with_operator};

/// A browser session of one user.
struct Browser {
    console: Arc<Console>,
    cookie: String,
    csrf: String,
}

/// What a page answered.
struct Answer {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

impl Browser {
    fn new(console: &Arc<Console>, user: &str, groups: &[&str]) -> Result<Self> {
        let id = random_id().map_err(|e| anyhow::anyhow!("{e}"))?;
        let csrf = random_id().map_err(|e| anyhow::anyhow!("{e}"))?;
        let session = Session {
            identity: Identity {
                username: user.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            },
            until: Some(Instant::now() + Duration::from_secs(600)),
            id_token_until: Some(Instant::now() + Duration::from_secs(600)),
            csrf: csrf.clone(),
            ..Default::default()
        };
        console
            .store()
            .put_session(id.clone(), session)
            .map_err(|_| anyhow::anyhow!("the session store is full"))?;
        Ok(Self {
            console: console.clone(),
            cookie: format!("__Host-berth_console_session={id}"),
            csrf,
        })
    }

    async fn send(&self, request: Request<Body>) -> Result<Answer> {
        let response = router(self.console.clone()).oneshot(request).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            location,
        })
    }

    async fn get(&self, path: &str) -> Result<Answer> {
        self.send(
            Request::get(path)
                .header(header::COOKIE, &self.cookie)
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())?,
        )
        .await
    }

    /// A form POST from the console's own page, with this session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Result<Answer> {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let body = serde_urlencoded_pairs(&all);
        self.send(
            Request::post(path)
                .header(header::COOKIE, &self.cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, "https://console.example")
                .header("sec-fetch-site", "same-origin")
                .body(Body::from(body))?,
        )
        .await
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A console acting by impersonation through the admin client, its Project cache started.
async fn console(admin: &kube::Client) -> Result<Arc<Console>> {
    console_with(admin, None).await
}

/// [`console`] with `--notebook-domain` `notebook_domain`.
async fn console_with(admin: &kube::Client, notebook_domain: Option<&str>) -> Result<Arc<Console>> {
    let console = Console::new(
        Config {
            public_url: "https://console.example".into(),
            oidc: None,
            notebook_domain: notebook_domain.map(str::to_owned),
        },
        admin.clone(),
    )?;
    console.watch_projects();
    ensure!(
        console.projects.wait_ready(Duration::from_secs(30)).await,
        "the console's Project cache did not fill"
    );
    Ok(console)
}

async fn spec(admin: &kube::Client, name: &str) -> Result<(Vec<String>, Vec<Member>)> {
    let p = Api::<Project>::all(admin.clone()).get(name).await?;
    Ok((p.spec.owners, p.spec.members))
}

async fn bind(admin: &kube::Client, role: &str, user: &str) -> Result<String> {
    let name = unique("console-test-bind");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Default::default()
                }]),
            },
        )
        .await?;
    Ok(name)
}

#[tokio::test]
async fn members_see_their_project_as_their_role_allows_and_only_owners_change_members()
-> Result<()> {
    let (_, admin) = with_operator().await?;
    let name = unique("console");
    let owner = format!("owner-{name}@example.com");
    let editor = format!("editor-{name}@example.com");
    let viewer = format!("viewer-{name}@example.com");
    let group = format!("group-{name}");
    let newcomer = format!("new-{name}@example.com");
    create(
        &admin,
        &name,
        json!({
            "owners": [owner],
            "members": [
                {"kind": "User", "name": editor, "role": "editor"},
                {"kind": "User", "name": viewer, "role": "viewer"},
                {"kind": "Group", "name": group, "role": "viewer"},
            ],
            "resourceQuota": {"hard": {"cpu": "4", "memory": "8Gi"}},
        }),
    )
    .await?;
    wait_ready(&admin, &name).await?;
    let console = console(&admin).await?;
    let owner_b = Browser::new(&console, &owner, &[])?;
    let editor_b = Browser::new(&console, &editor, &[])?;
    let viewer_b = Browser::new(&console, &viewer, &[])?;
    let grouped = Browser::new(&console, &format!("someone-{name}@example.com"), &[&group])?;
    let outsider = Browser::new(
        &console,
        &format!("eve-{name}@example.com"),
        &["other-team"],
    )?;
    let page = format!("/projects/{name}");
    let members = format!("/projects/{name}/members");

    // My projects: found by user name and by group, with the role; not for the outsider.
    let mine = eventually(
        "the owner's project list",
        Duration::from_secs(20),
        || async {
            let answer = owner_b.get("/").await?;
            Ok(answer.body.contains(&page).then_some(answer))
        },
    )
    .await?;
    ensure!(mine.status == StatusCode::OK);
    ensure!(
        mine.body.contains("owner"),
        "the role is shown: {}",
        mine.body
    );
    ensure!(mine.body.contains("<meter"), "quota use as bars");
    let theirs = grouped.get("/").await?;
    ensure!(
        theirs.body.contains(&page) && theirs.body.contains("viewer"),
        "a member through a group sees it as viewer: {}",
        theirs.body
    );
    let not_theirs = outsider.get("/").await?;
    ensure!(not_theirs.status == StatusCode::OK && !not_theirs.body.contains(&page));

    // The Project page: the owner sees the forms, who has access and the quota.
    let owners_view = owner_b.get(&page).await?;
    ensure!(owners_view.status == StatusCode::OK, "{}", owners_view.body);
    ensure!(owners_view.body.contains("Add a member"));
    ensure!(owners_view.body.contains("Who has access"));
    ensure!(owners_view.body.contains(&viewer), "members are listed");
    ensure!(
        owners_view.body.contains("RoleBinding") && owners_view.body.contains(&editor),
        "who has access, from the RoleBindings"
    );
    ensure!(owners_view.body.contains("Ready"), "conditions are listed");
    // A viewer sees the project, no edit controls.
    let viewers_view = viewer_b.get(&page).await?;
    ensure!(viewers_view.status == StatusCode::OK);
    ensure!(
        !viewers_view.body.contains("Add a member") && !viewers_view.body.contains(">Remove<"),
        "no edit controls for a viewer"
    );
    // The outsider's direct URL: 403 from the API server, nothing of the project shown.
    let outsiders_view = outsider.get(&page).await?;
    ensure!(outsiders_view.status == StatusCode::FORBIDDEN);
    ensure!(outsiders_view.body.contains("You cannot do this here"));
    ensure!(
        !outsiders_view.body.contains(&owner),
        "nothing of the project leaks"
    );

    let before = spec(&admin, &name).await?;
    // A viewer's forged POST (their own valid session and CSRF token: only the API server can
    // refuse it) making themselves owner.
    let forged = viewer_b
        .post(
            &members,
            &[
                ("action", "role"),
                ("kind", "User"),
                ("name", &viewer),
                ("role", "owner"),
            ],
        )
        .await?;
    ensure!(forged.status == StatusCode::FORBIDDEN, "{}", forged.body);
    ensure!(forged.body.contains("You cannot do this here"));
    ensure!(
        forged.body.contains("owner role"),
        "the role that would allow it"
    );
    // An editor cannot make themselves owner either, nor add anyone.
    for fields in [
        vec![
            ("action", "role"),
            ("kind", "User"),
            ("name", editor.as_str()),
            ("role", "owner"),
        ],
        vec![
            ("action", "add"),
            ("kind", "User"),
            ("name", "friend@example.com"),
            ("role", "owner"),
        ],
    ] {
        let answer = editor_b.post(&members, &fields).await?;
        ensure!(answer.status == StatusCode::FORBIDDEN, "{}", answer.body);
    }
    // The outsider's member form: 403 too.
    let answer = outsider
        .post(
            &members,
            &[
                ("action", "add"),
                ("kind", "User"),
                ("name", "eve@example.com"),
                ("role", "owner"),
            ],
        )
        .await?;
    ensure!(answer.status == StatusCode::FORBIDDEN, "{}", answer.body);
    ensure!(
        spec(&admin, &name).await? == before,
        "the victim is unchanged"
    );

    // The owner adds a user and a group, changes a role, removes a member.
    let added = owner_b
        .post(
            &members,
            &[
                ("action", "add"),
                ("kind", "User"),
                ("name", &newcomer),
                ("role", "editor"),
            ],
        )
        .await?;
    ensure!(
        added.status == StatusCode::SEE_OTHER && added.location.as_deref() == Some(page.as_str()),
        "{} {}",
        added.status,
        added.body
    );
    let added_group = owner_b
        .post(
            &members,
            &[
                ("action", "add"),
                ("kind", "Group"),
                ("name", "ml-readers"),
                ("role", "viewer"),
            ],
        )
        .await?;
    ensure!(
        added_group.status == StatusCode::SEE_OTHER,
        "{}",
        added_group.body
    );
    let changed = owner_b
        .post(
            &members,
            &[
                ("action", "role"),
                ("kind", "User"),
                ("name", &viewer),
                ("role", "editor"),
            ],
        )
        .await?;
    ensure!(changed.status == StatusCode::SEE_OTHER, "{}", changed.body);
    let removed = owner_b
        .post(
            &members,
            &[
                ("action", "remove"),
                ("kind", "Group"),
                ("name", &group),
                ("role", ""),
            ],
        )
        .await?;
    ensure!(removed.status == StatusCode::SEE_OTHER, "{}", removed.body);
    let (owners, now) = spec(&admin, &name).await?;
    ensure!(owners == vec![owner.clone()]);
    let has = |kind: MemberKind, who: &str, role: Role| {
        now.iter()
            .any(|m| m.kind == kind && m.name == who && m.role == role)
    };
    ensure!(has(MemberKind::User, &newcomer, Role::Editor), "{now:?}");
    ensure!(
        has(MemberKind::Group, "ml-readers", Role::Viewer),
        "{now:?}"
    );
    ensure!(has(MemberKind::User, &viewer, Role::Editor), "{now:?}");
    ensure!(!now.iter().any(|m| m.name == group), "{now:?}");

    // Berth's admission decides and its message is shown as it comes.
    let refused = owner_b
        .post(
            &members,
            &[
                ("action", "add"),
                ("kind", "ServiceAccount"),
                ("name", "Not_A_Name"),
                ("role", "viewer"),
            ],
        )
        .await?;
    ensure!(
        refused.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{} {}",
        refused.status,
        refused.body
    );
    ensure!(
        refused.body.contains("a ServiceAccount member is named"),
        "the CRD's own message: {}",
        refused.body
    );
    ensure!(
        refused.body.contains("value=\"Not_A_Name\""),
        "the form value is kept"
    );
    Ok(())
}

#[tokio::test]
async fn new_project_is_offered_only_to_who_may_create_projects_and_admins_see_all() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let console = console(&admin).await?;
    let base = unique("console-new");
    let creator = format!("creator-{base}@example.com");
    let nobody = Browser::new(&console, &format!("nobody-{base}@example.com"), &[])?;
    let home = nobody.get("/").await?;
    ensure!(
        home.status == StatusCode::OK && !home.body.contains("/projects/new"),
        "not linked"
    );
    let form = nobody.get("/projects/new").await?;
    ensure!(form.status == StatusCode::FORBIDDEN && form.body.contains("berth-project-creator"));
    let answer = nobody
        .post("/projects/new", &[("name", &format!("{base}-x"))])
        .await?;
    ensure!(
        answer.status == StatusCode::FORBIDDEN,
        "the API server refuses: {}",
        answer.body
    );
    ensure!(
        Api::<Project>::all(admin.clone())
            .get_opt(&format!("{base}-x"))
            .await?
            .is_none()
    );

    let binding = bind(&admin, "berth-project-creator", &creator).await?;
    let browser = Browser::new(&console, &creator, &[])?;
    let shown = eventually(
        "the creator role to reach RBAC",
        Duration::from_secs(20),
        || async {
            let form = browser.get("/projects/new").await?;
            Ok((form.status == StatusCode::OK).then_some(form))
        },
    )
    .await?;
    ensure!(
        shown.body.contains(&format!("value=\"{creator}\"")),
        "owners default to the user"
    );
    // Admission's message as it comes, values kept.
    let refused = browser
        .post(
            "/projects/new",
            &[("name", &base), ("owners", ""), ("cpu", "lots")],
        )
        .await?;
    ensure!(
        refused.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{} {}",
        refused.status,
        refused.body
    );
    ensure!(
        refused.body.contains("must be a quantity"),
        "{}",
        refused.body
    );
    ensure!(refused.body.contains(&format!("value=\"{base}\"")));
    let made = browser
        .post(
            "/projects/new",
            &[
                ("name", &base),
                ("owners", ""),
                ("members", "Group ml editor"),
                ("cpu", "2"),
            ],
        )
        .await?;
    ensure!(
        made.status == StatusCode::SEE_OTHER,
        "{} {}",
        made.status,
        made.body
    );
    let (owners, members) = spec(&admin, &base).await?;
    ensure!(owners == vec![creator.clone()] && members.len() == 1);

    // A platform admin (may list projects) sees every project, listed as themselves.
    let admin_user = format!("admin-{base}@example.com");
    let admin_binding = bind(&admin, "berth-platform-admin", &admin_user).await?;
    let platform = Browser::new(&console, &admin_user, &[])?;
    let all = eventually("the admin's list", Duration::from_secs(20), || async {
        let page = platform.get("/").await?;
        Ok(page
            .body
            .contains(&format!("/projects/{base}"))
            .then_some(page))
    })
    .await?;
    ensure!(all.body.contains("every project"));
    for name in [binding, admin_binding] {
        Api::<ClusterRoleBinding>::all(admin.clone())
            .delete(&name, &Default::default())
            .await
            .context("cleaning up")?;
    }
    Ok(())
}

#[tokio::test]
async fn a_system_masters_group_claim_does_not_get_through() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let console = console(&admin).await?;
    let name = unique("console-masters");
    let intruder = Browser::new(
        &console,
        &format!("mallory-{name}@example.com"),
        &["system:masters"],
    )?;
    for path in ["/", "/projects/new", "/projects/kube-system"] {
        let answer = intruder.get(path).await?;
        ensure!(
            answer.status == StatusCode::FORBIDDEN,
            "{path}: {}",
            answer.body
        );
    }
    let answer = intruder.post("/projects/new", &[("name", &name)]).await?;
    ensure!(answer.status == StatusCode::FORBIDDEN);
    ensure!(
        Api::<Project>::all(admin.clone())
            .get_opt(&name)
            .await?
            .is_none()
    );
    Ok(())
}

/// A token of ServiceAccount `account` of `ns` for the API server (`kubectl create token`).
async fn account_token(admin: &kube::Client, ns: &str, account: &str) -> Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    if accounts.get_opt(account).await?.is_none() {
        accounts
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(account.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await?;
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await?;
    answer
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("no token in the TokenRequest's answer")
}

#[tokio::test]
async fn token_mode_forwards_the_callers_own_token_and_the_api_server_decides() -> Result<()> {
    use berth_console::acting::{ActAs, Acting, without_credentials};
    let (cluster, admin) = with_operator().await?;
    let name = unique("console-token");
    create(
        &admin,
        &name,
        json!({
            "owners": [format!("owner-{name}@example.com")],
            "members": [{"kind": "ServiceAccount", "name": "ci", "role": "viewer"}],
        }),
    )
    .await?;
    let project = wait_ready(&admin, &name).await?;
    let namespace = project
        .status
        .and_then(|s| s.namespace)
        .context("the project's namespace")?;
    let elsewhere = crate::support::namespace(&admin, "console-token-other").await?;
    let member = account_token(&admin, &namespace, "ci").await?;
    let intruder = account_token(&admin, &elsewhere, "ci").await?;
    // The pages' client carries no credential of the console's: only the caller's token.
    let bare = kube::Client::try_from(without_credentials(cluster.config().await?))?;
    let console = Console::with_acting(
        Config {
            public_url: "https://console.example".into(),
            oidc: None,
            notebook_domain: None,
        },
        admin.clone(),
        Acting::new(ActAs::Token, bare),
    )?;
    console.watch_projects();
    ensure!(console.projects.wait_ready(Duration::from_secs(30)).await);
    let send = |token: String, request: axum::http::request::Builder, body: Body| {
        let console = console.clone();
        async move {
            let response = router(console)
                .oneshot(
                    request
                        .header(header::AUTHORIZATION, format!("Bearer {token}"))
                        .body(body)?,
                )
                .await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await?;
            anyhow::Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        }
    };
    let page = format!("/projects/{name}");
    let (status, body) = send(member.clone(), Request::get(&page), Body::empty()).await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    ensure!(
        body.contains(&format!("system:serviceaccount:{namespace}:ci")),
        "who you are"
    );
    ensure!(!body.contains("Add a member"), "a viewer sees no form");
    let (status, body) = send(member.clone(), Request::get("/"), Body::empty()).await?;
    ensure!(status == StatusCode::OK && body.contains(&page), "{body}");
    // The other namespace's ServiceAccount of the same name is nobody here.
    let (status, _) = send(intruder.clone(), Request::get(&page), Body::empty()).await?;
    ensure!(status == StatusCode::FORBIDDEN);
    let before = spec(&admin, &name).await?;
    // A bearer client needs no CSRF token, but its write is its own and the API server refuses.
    let (status, body) = send(
        member,
        Request::post(format!("{page}/members"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        Body::from("action=role&kind=ServiceAccount&name=ci&role=owner"),
    )
    .await?;
    ensure!(status == StatusCode::FORBIDDEN, "{status} {body}");
    ensure!(spec(&admin, &name).await? == before, "unchanged");
    Ok(())
}
