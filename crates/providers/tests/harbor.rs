//! The Harbor client against the Harbor contract double (`berth-harbor-double`): Harbor cannot
//! run here, so the double follows Harbor's published v2.0 API for the endpoints the client uses.

use berth_harbor_double::HarborDouble;
use berth_providers::registry::harbor::Harbor;
use berth_providers::registry::{
    MemberSync, Registry, RegistryConfig, RegistryProjectSpec, RegistryRole,
};
use berth_providers::{ErrorKind, Owner, Secret};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client(double: &HarborDouble, page_size: usize) -> Result<Harbor, Box<dyn std::error::Error>> {
    Ok(Harbor::new(RegistryConfig {
        url: double.url().to_owned(),
        admin_username: double.admin_username().to_owned(),
        admin_password: Secret::new(double.admin_password()),
    })?
    .with_page_size(page_size))
}

/// A project's owner record; `n` tells projects apart.
fn owner_n(n: u8, adopt: bool) -> Owner {
    Owner {
        uid: format!("3f1c0a7e-0000-4000-8000-00000000000{n}"),
        marker: format!("marker-3f1c0a7e00004000800000000000000{n}"),
        adopt,
    }
}

fn owner() -> Owner {
    owner_n(1, false)
}

fn spec(name: &str) -> RegistryProjectSpec {
    RegistryProjectSpec {
        name: name.to_owned(),
        scan_on_push: true,
        prevent_vulnerable: true,
        severity: "high".to_owned(),
    }
}

fn meta(double: &HarborDouble, project: &str, key: &str) -> Option<String> {
    double
        .project(project)
        .and_then(|p| p.metadata.get(key).cloned())
}

fn count(double: &HarborDouble, prefix: &str) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_is_made_once_and_follows_its_settings() -> TestResult {
    let double = HarborDouble::start().await?;
    let harbor = client(&double, 100)?;
    harbor.check().await?;
    assert_eq!(harbor.kind(), "harbor");
    assert_eq!(harbor.host(), double.url().trim_start_matches("http://"));

    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    assert_eq!(double.projects().len(), 1);
    assert_eq!(meta(&double, "team-a", "public").as_deref(), Some("false"));
    assert_eq!(
        meta(&double, "team-a", "auto_scan").as_deref(),
        Some("true")
    );
    assert_eq!(
        meta(&double, "team-a", "prevent_vul").as_deref(),
        Some("true")
    );
    assert_eq!(meta(&double, "team-a", "severity").as_deref(), Some("high"));

    // A second ensure with the same settings writes nothing.
    let puts = count(&double, "PUT /api/v2.0/projects/team-a");
    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    assert_eq!(count(&double, "PUT /api/v2.0/projects/team-a"), puts);

    // Changed settings reach Harbor.
    let relaxed = RegistryProjectSpec {
        scan_on_push: false,
        prevent_vulnerable: false,
        severity: "critical".into(),
        ..spec("team-a")
    };
    harbor.ensure_project(&relaxed, &owner()).await?;
    assert_eq!(
        meta(&double, "team-a", "auto_scan").as_deref(),
        Some("false")
    );
    assert_eq!(
        meta(&double, "team-a", "prevent_vul").as_deref(),
        Some("false")
    );
    assert_eq!(
        meta(&double, "team-a", "severity").as_deref(),
        Some("critical")
    );

    // Someone else makes the project between our look and our create: Harbor answers 409, the
    // client looks again, finds no owner record of ours on it, and leaves it alone. Still one
    // project, and not ours.
    double.lose_next_create_race();
    let posts = count(&double, "POST /api/v2.0/projects");
    let raced = harbor.ensure_project(&spec("team-race"), &owner()).await;
    assert_eq!(raced.err().map(|e| e.kind), Some(ErrorKind::Conflict));
    assert_eq!(count(&double, "POST /api/v2.0/projects"), posts + 1);
    assert_eq!(
        double
            .projects()
            .iter()
            .filter(|p| p.name == "team-race")
            .count(),
        1
    );
    assert!(
        harbor.list_robots("team-race", "").await?.is_empty(),
        "nothing of Berth's was put on someone else's project"
    );

    // Many reconciles at once: one makes it; the others either see its owner record or find it
    // unmarked for a moment and back off (a conflict, retried later). Never two projects.
    let specs: Vec<RegistryProjectSpec> = (0..8).map(|_| spec("team-many")).collect();
    let results = ensure_all(&harbor, &specs).await;
    assert!(results.iter().any(Result::is_ok));
    for result in results {
        if let Err(e) = result {
            assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
        }
    }
    harbor.ensure_project(&spec("team-many"), &owner()).await?;
    assert_eq!(
        double
            .projects()
            .iter()
            .filter(|p| p.name == "team-many")
            .count(),
        1
    );
    Ok(())
}

/// Runs `ensure_project` for every spec at once.
async fn ensure_all(
    harbor: &Harbor,
    specs: &[RegistryProjectSpec],
) -> Vec<berth_providers::Result<()>> {
    let mut handles = Vec::new();
    for spec in specs {
        let harbor = harbor.clone();
        let spec = spec.clone();
        handles.push(tokio::spawn(async move {
            harbor.ensure_project(&spec, &owner()).await
        }));
    }
    let mut out = Vec::new();
    for handle in handles {
        out.push(match handle.await {
            Ok(result) => result,
            Err(e) => Err(berth_providers::Error::new(
                ErrorKind::Backend,
                format!("task: {e}"),
            )),
        });
    }
    out
}

#[tokio::test]
async fn members_follow_the_project_by_role() -> TestResult {
    let double = HarborDouble::start().await?;
    // Pages of two, so that five members take three pages.
    let harbor = client(&double, 2)?;
    for user in ["alice", "bob", "carol", "dave"] {
        double.add_user(user);
    }
    harbor.ensure_project(&spec("team-a"), &owner()).await?;

    let sync = harbor
        .sync_members(
            "team-a",
            &[
                ("alice".into(), RegistryRole::Admin),
                ("bob".into(), RegistryRole::Developer),
                ("carol".into(), RegistryRole::Guest),
                ("dave".into(), RegistryRole::Guest),
                ("ghost".into(), RegistryRole::Developer),
            ],
        )
        .await?;
    assert_eq!(
        sync,
        MemberSync {
            missing_users: vec!["ghost".into()],
            added: 4,
            updated: 0,
            removed: 0
        }
    );
    assert_eq!(
        double.members("team-a"),
        vec![
            ("admin".to_owned(), 1),
            ("alice".to_owned(), 1),
            ("bob".to_owned(), 2),
            ("carol".to_owned(), 3),
            ("dave".to_owned(), 3),
        ]
    );

    // The same list again changes nothing (and reads every page to know it).
    let before = count(&double, "GET /api/v2.0/projects/team-a/members?page=3");
    let again = harbor
        .sync_members(
            "team-a",
            &[
                ("alice".into(), RegistryRole::Admin),
                ("bob".into(), RegistryRole::Developer),
                ("carol".into(), RegistryRole::Guest),
                ("dave".into(), RegistryRole::Guest),
                ("ghost".into(), RegistryRole::Developer),
            ],
        )
        .await?;
    assert_eq!(again.added + again.updated + again.removed, 0);
    assert_eq!(again.missing_users, vec!["ghost".to_owned()]);
    assert_eq!(
        count(&double, "GET /api/v2.0/projects/team-a/members?page=3"),
        before + 1
    );

    // Someone adds erin as a guest between our look and our add: 409, and the client sets the
    // role it wants.
    double.add_user("erin");
    double.lose_next_create_race();
    let sync = harbor
        .sync_members(
            "team-a",
            &[
                ("alice".into(), RegistryRole::Admin),
                ("bob".into(), RegistryRole::Developer),
                ("carol".into(), RegistryRole::Guest),
                ("dave".into(), RegistryRole::Guest),
                ("erin".into(), RegistryRole::Developer),
            ],
        )
        .await?;
    assert_eq!((sync.added, sync.updated, sync.removed), (0, 1, 0));
    assert!(double.members("team-a").contains(&("erin".to_owned(), 2)));

    // A role change and removals; the admin is left alone.
    let sync = harbor
        .sync_members(
            "team-a",
            &[
                ("alice".into(), RegistryRole::Guest),
                ("bob".into(), RegistryRole::Developer),
            ],
        )
        .await?;
    assert_eq!((sync.added, sync.updated, sync.removed), (0, 1, 3));
    assert_eq!(
        double.members("team-a"),
        vec![
            ("admin".to_owned(), 1),
            ("alice".to_owned(), 3),
            ("bob".to_owned(), 2)
        ]
    );

    // A removed member loses access at once: carol's token grants nothing on team-a.
    let carol = double.add_user("carol");
    let access = token_actions(&double, "carol", &carol, "team-a/app").await?;
    assert!(access.is_empty(), "{access:?}");
    let bob = double.add_user("bob");
    let access = token_actions(&double, "bob", &bob, "team-a/app").await?;
    assert_eq!(access, vec!["push".to_owned(), "pull".to_owned()]);

    // Everyone gone.
    let sync = harbor.sync_members("team-a", &[]).await?;
    assert_eq!(sync.removed, 2);
    assert_eq!(double.members("team-a"), vec![("admin".to_owned(), 1)]);

    // No project: an error, not a silent success.
    let missing = harbor
        .sync_members("nope", &[("alice".into(), RegistryRole::Admin)])
        .await;
    assert!(missing.is_err());
    Ok(())
}

/// The actions the registry's token service grants `login` on `repository` for a push+pull ask.
async fn token_actions(
    double: &HarborDouble,
    login: &str,
    secret: &str,
    repository: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/service/token", double.url()))
        .query(&[
            ("service", "harbor-registry".to_owned()),
            ("scope", format!("repository:{repository}:push,pull")),
        ])
        .basic_auth(login, Some(secret))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["access"][0]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

async fn status_as(
    double: &HarborDouble,
    login: &str,
    secret: &str,
    path: &str,
) -> Result<u16, Box<dyn std::error::Error>> {
    Ok(reqwest::Client::new()
        .get(format!("{}/api/v2.0{path}", double.url()))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(login, Some(secret))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn robots_push_and_pull_on_their_own_project_only() -> TestResult {
    let double = HarborDouble::start().await?;
    // Pages of three, so that seven robots take three pages.
    let harbor = client(&double, 3)?;
    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    harbor.ensure_project(&spec("team-b"), &owner()).await?;

    let mut issued = Vec::new();
    for i in 0..7 {
        issued.push(
            harbor
                .create_robot("team-a", &format!("berth-{i}"), &owner())
                .await?,
        );
    }
    let other = harbor.create_robot("team-b", "berth-0", &owner()).await?;
    assert_eq!(issued.len(), 7);
    let first = issued.first().ok_or("no robot")?;
    assert_eq!(first.login, "robot$team-a+berth-0");
    assert_eq!(first.credential.name, "berth-0");
    assert_eq!(other.login, "robot$team-b+berth-0");

    let listed = harbor.list_robots("team-a", "berth-").await?;
    assert_eq!(listed.len(), 7);
    assert!(count(&double, "GET /api/v2.0/robots?q=") >= 3);
    assert_eq!(harbor.list_robots("team-a", "berth-3").await?.len(), 1);
    assert_eq!(harbor.list_robots("team-a", "other-").await?.len(), 0);
    assert_eq!(harbor.list_robots("no-such-project", "").await?.len(), 0);

    // The robot's permissions, as Harbor holds them.
    let view = double
        .robots()
        .into_iter()
        .find(|r| r.name == "robot$team-a+berth-0")
        .ok_or("robot missing in the double")?;
    assert_eq!(view.project.as_deref(), Some("team-a"));
    assert_eq!(
        view.access,
        vec![
            ("repository".to_owned(), "push".to_owned()),
            ("repository".to_owned(), "pull".to_owned())
        ]
    );

    // Its credentials: push and pull on team-a, nothing on team-b, no admin API.
    let secret = first.secret.expose();
    assert_eq!(
        token_actions(&double, &first.login, secret, "team-a/app").await?,
        vec!["push".to_owned(), "pull".to_owned()]
    );
    assert!(
        token_actions(&double, &first.login, secret, "team-b/app")
            .await?
            .is_empty()
    );
    assert_eq!(
        status_as(&double, &first.login, secret, "/projects/team-a").await?,
        200
    );
    assert_eq!(
        status_as(&double, &first.login, secret, "/projects/team-b").await?,
        403
    );
    assert_eq!(
        status_as(&double, &first.login, secret, "/projects/team-a/members").await?,
        403
    );
    assert_eq!(
        status_as(&double, &first.login, "Wrong1secret", "/projects/team-a").await?,
        401
    );

    // Creating it again (a crash lost the secret): Harbor says 409, the client recovers the same
    // robot with a new secret, never a second robot.
    let again = harbor.create_robot("team-a", "berth-0", &owner()).await?;
    assert_eq!(again.credential, first.credential);
    assert_eq!(again.login, first.login);
    assert_ne!(again.secret.expose(), secret);
    assert_eq!(
        double
            .robots()
            .iter()
            .filter(|r| r.name == "robot$team-a+berth-0")
            .count(),
        1
    );
    assert_eq!(
        status_as(&double, &first.login, secret, "/projects/team-a").await?,
        401
    );
    assert_eq!(
        status_as(
            &double,
            &again.login,
            again.secret.expose(),
            "/projects/team-a"
        )
        .await?,
        200
    );

    // Recover: a new secret, the old one stops working.
    let recovered = harbor.recover_robot("team-a", &again.credential).await?;
    assert_ne!(recovered.secret.expose(), again.secret.expose());
    assert_eq!(
        status_as(
            &double,
            &again.login,
            again.secret.expose(),
            "/projects/team-a"
        )
        .await?,
        401
    );
    assert_eq!(
        status_as(
            &double,
            &recovered.login,
            recovered.secret.expose(),
            "/projects/team-a"
        )
        .await?,
        200
    );
    // A robot of another project is not recovered under this one.
    let wrong = harbor.recover_robot("team-a", &other.credential).await;
    assert_eq!(wrong.err().map(|e| e.kind), Some(ErrorKind::Rejected));

    // Delete, twice.
    harbor.delete_robot(&recovered.credential).await?;
    harbor.delete_robot(&recovered.credential).await?;
    assert_eq!(harbor.list_robots("team-a", "berth-").await?.len(), 6);
    assert_eq!(
        status_as(
            &double,
            &recovered.login,
            recovered.secret.expose(),
            "/projects/team-a"
        )
        .await?,
        401
    );
    Ok(())
}

#[tokio::test]
async fn delete_project_empties_it_first() -> TestResult {
    let double = HarborDouble::start().await?;
    let harbor = client(&double, 2)?;
    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    let robot = harbor
        .create_robot("team-a", "berth-push", &owner())
        .await?;
    for repo in ["app", "tools/builder", "web", "db", "cache"] {
        assert!(double.add_repository("team-a", repo));
    }

    // Harbor's own rule: a project with repositories is not deleted.
    let refused = reqwest::Client::new()
        .delete(format!("{}/api/v2.0/projects/team-a", double.url()))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(double.admin_username(), Some(double.admin_password()))
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 412);

    harbor.delete_project("team-a", &owner()).await?;
    assert!(double.project("team-a").is_none());
    assert!(double.repositories("team-a").is_empty());
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r == "DELETE /api/v2.0/projects/team-a/repositories/tools%252Fbuilder")
    );
    // Harbor removes the project's robots with it.
    assert!(double.robots().is_empty());
    assert_eq!(
        status_as(
            &double,
            &robot.login,
            robot.secret.expose(),
            "/projects/team-a"
        )
        .await?,
        401
    );
    // Already gone: fine.
    harbor.delete_project("team-a", &owner()).await?;
    Ok(())
}

#[tokio::test]
async fn errors_say_what_to_fix_and_carry_no_secret() -> TestResult {
    let double = HarborDouble::start().await?;
    let mut messages = Vec::new();

    let wrong = Harbor::new(RegistryConfig {
        url: double.url().to_owned(),
        admin_username: "admin".into(),
        admin_password: Secret::new("Not-the-password-42"),
    })?;
    let e = wrong.check().await.err().ok_or("wrong password accepted")?;
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    messages.push(e.message);
    let e = wrong
        .ensure_project(&spec("team-a"), &owner())
        .await
        .err()
        .ok_or("wrong password accepted")?;
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    messages.push(e.message);

    // A user that is not a system administrator.
    let password = double.add_user("mallory");
    let plain = Harbor::new(RegistryConfig {
        url: double.url().to_owned(),
        admin_username: "mallory".into(),
        admin_password: Secret::new(password.clone()),
    })?;
    let e = plain.check().await.err().ok_or("non-admin accepted")?;
    assert_eq!(e.kind, ErrorKind::Forbidden);
    messages.push(e.message);
    let e = plain
        .ensure_project(&spec("team-a"), &owner())
        .await
        .err()
        .ok_or("non-admin created a project")?;
    assert_eq!(e.kind, ErrorKind::Forbidden);
    messages.push(e.message);

    // Nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let nowhere = Harbor::new(RegistryConfig {
        url: format!("http://127.0.0.1:{closed}"),
        admin_username: "admin".into(),
        admin_password: Secret::new(double.admin_password()),
    })?;
    let e = nowhere.check().await.err().ok_or("closed port answered")?;
    assert_eq!(e.kind, ErrorKind::Unreachable);
    messages.push(e.message);

    // Something that is not Harbor's API.
    let not_harbor = Harbor::new(RegistryConfig {
        url: format!("{}/not-harbor", double.url()),
        admin_username: "admin".into(),
        admin_password: Secret::new(double.admin_password()),
    })?;
    let e = not_harbor.check().await.err().ok_or("no API accepted")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);
    messages.push(e.message);
    let e = Harbor::new(RegistryConfig {
        url: "not a url".into(),
        admin_username: "admin".into(),
        admin_password: Secret::new(double.admin_password()),
    })
    .err()
    .ok_or("bad URL accepted")?;
    assert_eq!(e.kind, ErrorKind::NotConfigured);

    // Names Harbor refuses.
    let harbor = client(&double, 100)?;
    let e = harbor
        .ensure_project(&spec("Team_A!"), &owner())
        .await
        .err()
        .ok_or("bad project name accepted")?;
    assert_eq!(e.kind, ErrorKind::Rejected);
    messages.push(e.message);
    harbor.ensure_project(&spec("team-a"), &owner()).await?;
    let e = harbor
        .create_robot("team-a", "Bad Robot", &owner())
        .await
        .err()
        .ok_or("bad robot name accepted")?;
    assert_eq!(e.kind, ErrorKind::Rejected);
    messages.push(e.message);
    let e = harbor
        .ensure_project(
            &RegistryProjectSpec {
                severity: "apocalyptic".into(),
                ..spec("team-b")
            },
            &owner(),
        )
        .await
        .err()
        .ok_or("bad severity accepted")?;
    assert_eq!(e.kind, ErrorKind::Rejected);
    messages.push(e.message);

    let robot = harbor
        .create_robot("team-a", "berth-push", &owner())
        .await?;
    for message in &messages {
        assert!(!message.is_empty());
        for secret in [
            double.admin_password(),
            "Not-the-password-42",
            password.as_str(),
            robot.secret.expose(),
        ] {
            assert!(!message.contains(secret), "a secret in {message:?}");
        }
    }
    assert!(!format!("{harbor:?} {robot:?}").contains(double.admin_password()));
    assert!(!format!("{robot:?}").contains(robot.secret.expose()));
    Ok(())
}

/// A JSON request to the double as its system admin; the status code.
async fn admin_call(
    double: &HarborDouble,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<u16, Box<dyn std::error::Error>> {
    Ok(reqwest::Client::new()
        .request(method, format!("{}/api/v2.0{path}", double.url()))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(double.admin_username(), Some(double.admin_password()))
        .json(&body)
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn a_registry_project_berth_did_not_make_is_never_taken() -> TestResult {
    let double = HarborDouble::start().await?;
    let harbor = client(&double, 100)?;
    double.add_user("platform-lead");
    double.add_user("mallory");
    // The platform's own project, made by hand: a member, an image.
    assert_eq!(
        admin_call(
            &double,
            reqwest::Method::POST,
            "/projects",
            serde_json::json!({"project_name": "library"})
        )
        .await?,
        201
    );
    assert_eq!(
        admin_call(
            &double,
            reqwest::Method::POST,
            "/projects/library/members",
            serde_json::json!({"role_id": 1, "member_user": {"username": "platform-lead"}})
        )
        .await?,
        201
    );
    assert!(double.add_repository("library", "base-image"));
    let members_before = double.members("library");

    // A Project named library: refused, and nothing about library changes.
    let e = harbor
        .ensure_project(&spec("library"), &owner())
        .await
        .err()
        .ok_or("library was taken")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(
        e.message.contains("library") && e.message.contains("records no owner"),
        "{}",
        e.message
    );
    let e = harbor
        .delete_project("library", &owner())
        .await
        .err()
        .ok_or("library was deleted")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(double.members("library"), members_before);
    assert_eq!(
        double.repositories("library"),
        vec!["library/base-image".to_owned()]
    );
    assert!(double.robots().is_empty(), "a robot was put on library");

    // Another Project's registry project is not taken either.
    harbor
        .ensure_project(&spec("team-a"), &owner_n(1, false))
        .await?;
    let mallorys = owner_n(2, false);
    let e = harbor
        .ensure_project(&spec("team-a"), &mallorys)
        .await
        .err()
        .ok_or("team-a was taken")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    let e = harbor
        .delete_project("team-a", &mallorys)
        .await
        .err()
        .ok_or("team-a was deleted")?;
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(double.project("team-a").is_some());

    // The marker: a pull-only robot whose secret nobody holds.
    let marker = double
        .robots()
        .into_iter()
        .find(|r| r.name == format!("robot$team-a+{}", owner().marker))
        .ok_or("no marker robot")?;
    assert_eq!(
        marker.access,
        vec![("repository".to_owned(), "pull".to_owned())]
    );
    assert!(harbor.list_robots("team-a", "berth-").await?.is_empty());

    // A platform admin adopts library for a Project: its members and images stay until the
    // Project's own sync decides them.
    harbor
        .ensure_project(&spec("library"), &owner_n(3, true))
        .await?;
    harbor
        .ensure_project(&spec("library"), &owner_n(3, false))
        .await?;
    assert_eq!(
        double.repositories("library"),
        vec!["library/base-image".to_owned()]
    );
    Ok(())
}

#[tokio::test]
async fn the_double_keeps_harbors_contract() -> TestResult {
    let double = HarborDouble::start().await?;
    let http = reqwest::Client::new();
    let api = format!("{}/api/v2.0", double.url());
    let admin = (double.admin_username(), double.admin_password());

    // 401 without credentials.
    let r = http
        .post(format!("{api}/projects"))
        .json(&serde_json::json!({"project_name": "p1"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);

    // 201 with a Location, then 409.
    let r = http
        .post(format!("{api}/projects"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"project_name": "p1"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(location.starts_with("/api/v2.0/projects/"), "{location}");
    let r = http
        .post(format!("{api}/projects"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"project_name": "p1"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 409);
    let body: serde_json::Value = r.json().await?;
    assert_eq!(body["errors"][0]["code"], "CONFLICT");

    // The Location names the project by id.
    let r = http
        .get(format!("{}{location}", double.url()))
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let project: serde_json::Value = r.json().await?;
    assert_eq!(project["name"], "p1");

    // 400 on a name Harbor refuses; 404 on an unknown project.
    let r = http
        .post(format!("{api}/projects"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"project_name": "P1"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .get(format!("{api}/projects/nope"))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 404);

    // Pagination: 12 projects, pages of 5.
    for i in 2..=12 {
        let r = http
            .post(format!("{api}/projects"))
            .basic_auth(admin.0, Some(admin.1))
            .json(&serde_json::json!({"project_name": format!("p{i}")}))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 201);
    }
    let r = http
        .get(format!("{api}/projects?page=2&page_size=5"))
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .await?;
    assert_eq!(
        r.headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok()),
        Some("12")
    );
    let link = r
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(link.contains("page=1&page_size=5>; rel=\"prev\""), "{link}");
    assert!(link.contains("page=3&page_size=5>; rel=\"next\""), "{link}");
    let page: Vec<serde_json::Value> = r.json().await?;
    assert_eq!(page.len(), 5);

    // Project metadata takes Harbor's own keys only: POST /projects drops any other (its
    // ProjectMetadata schema has fixed properties), and /metadatas answers 400 "invalid key". So
    // nothing can record an owner there.
    let r = http
        .post(format!("{api}/projects"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"project_name": "meta", "metadata": {"auto_scan": "true", "berth.dev/project-uid": "x"}}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let meta = double.project("meta").ok_or("no project meta")?.metadata;
    assert_eq!(meta.get("auto_scan").map(String::as_str), Some("true"));
    assert!(!meta.contains_key("berth.dev/project-uid"), "{meta:?}");
    let r = http
        .post(format!("{api}/projects/meta/metadatas"))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"berth.dev/project-uid": "x"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await?;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid key"),
        "{body}"
    );
    let r = http
        .post(format!("{api}/projects/meta/metadatas"))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(admin.0, Some(admin.1))
        .json(&serde_json::json!({"severity": "LOW"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .get(format!("{api}/projects/meta/metadatas"))
        .header("X-Is-Resource-Name", "true")
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .await?;
    let all: serde_json::Value = r.json().await?;
    assert_eq!(all["severity"], "low");
    assert!(all.get("berth.dev/project-uid").is_none());
    Ok(())
}
