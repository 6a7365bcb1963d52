//! An origin per notebook (`--notebook-domain`) against the real control plane: the whole
//! hand-off chain for a project's owner, each SubjectAccessReview asked of the API server as that
//! owner, and the same chain refused for an outsider, as the outsider. The notebook is stopped (a
//! kwok cluster runs no Jupyter): the proxy's "not running" page, which comes only after the
//! SubjectAccessReview and the Notebook's read, shows the chain got through.

use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use berth_api::notebook::Notebook;
use berth_console::app::{Console, router};
use kube::api::{Api, PostParams};
use serde_json::json;
use tower::ServiceExt as _;

use super::{Browser, console_with};
use crate::project::{create, wait_ready};
use crate::support::{unique, with_operator};

struct Got {
    status: StatusCode,
    location: String,
    cookies: Vec<String>,
    body: String,
}

/// A browser's page load of `path` at `host` with `cookie`.
async fn load(console: &Arc<Console>, host: &str, path: &str, cookie: &str) -> Result<Got> {
    let mut request = Request::get(path)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html");
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router(console.clone())
        .oneshot(request.body(Body::empty())?)
        .await?;
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok(Got {
        status,
        location,
        cookies,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn cookie_named<'a>(got: &'a Got, name: &str) -> Option<&'a str> {
    got.cookies
        .iter()
        .find(|c| {
            c.split_once('=')
                .is_some_and(|(k, v)| k == name && !v.is_empty())
        })
        .map(String::as_str)
}

/// From the console's origin to the notebook's host, its hand-off and back, for `browser`;
/// returns the hand-off's answer on the console origin (a ticket's redirect or a refusal) and the
/// notebook host's state cookie.
async fn to_the_hand_off(
    console: &Arc<Console>,
    browser: &Browser,
    ns: &str,
    host: &str,
) -> Result<(Got, String)> {
    let path = format!("/notebook/{ns}/lab/lab");
    let first = load(console, "console.example", &path, &browser.cookie).await?;
    ensure!(
        first.status == StatusCode::FOUND && first.location == format!("https://{host}{path}"),
        "the console's origin sends the browser to the notebook's host: {} {}",
        first.status,
        first.location
    );
    let second = load(console, host, &path, "").await?;
    ensure!(
        second.status == StatusCode::FOUND
            && second
                .location
                .starts_with("https://console.example/notebook-handoff?"),
        "no notebook cookie: to the hand-off: {} {}",
        second.status,
        second.location
    );
    let state = cookie_named(&second, "__Host-berth_notebook_handoff")
        .context("the notebook host's state cookie")?
        .to_owned();
    let handoff = second
        .location
        .strip_prefix("https://console.example")
        .unwrap_or_default()
        .to_owned();
    Ok((
        load(console, "console.example", &handoff, &browser.cookie).await?,
        state,
    ))
}

#[tokio::test]
async fn a_notebook_opens_on_its_own_host_through_the_hand_off_for_its_owner_only() -> Result<()> {
    let (_, admin) = with_operator().await?;
    let began = std::time::Instant::now();
    let ns = unique("console-origin");
    let owner = format!("owner-{ns}@example.com");
    create(&admin, &ns, json!({"owners": [owner]})).await?;
    wait_ready(&admin, &ns).await?;
    let notebooks = Api::<Notebook>::namespaced(admin.clone(), &ns);
    let lab: Notebook = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Notebook",
        "metadata": {"name": "lab", "namespace": ns},
        "spec": {
            "image": "berth.dev/jupyter:test",
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "home": {"size": "1Gi"},
            "stopped": true,
        },
    }))?;
    notebooks.create(&PostParams::default(), &lab).await?;
    let console = console_with(&admin, Some("nb.example")).await?;
    let host = format!("{}.nb.example", berth_api::notebook_host::label(&ns, "lab"));
    let owner_b = Browser::new(&console, &owner, &[])?;
    let outsider = format!("eve-{ns}@example.com");
    let outsider_b = Browser::new(&console, &outsider, &["other-team"])?;

    // The owner: the API server allows `create notebooks/connect`, a ticket comes back.
    let (handoff, state) = to_the_hand_off(&console, &owner_b, &ns, &host).await?;
    let prefix = format!("https://{host}/notebook/{ns}/lab/_berth/handoff?ticket=");
    ensure!(
        handoff.status == StatusCode::FOUND && handoff.location.starts_with(&prefix),
        "the owner's hand-off: {} {} {}",
        handoff.status,
        handoff.location,
        handoff.body
    );
    let consume = handoff
        .location
        .strip_prefix(&format!("https://{host}"))
        .unwrap_or_default();
    // The outsider's browser cannot use the owner's ticket (it lacks the state cookie) ...
    let stolen = load(&console, &host, consume, "__Host-berth_notebook_handoff=x").await?;
    ensure!(stolen.status == StatusCode::FORBIDDEN, "{}", stolen.status);
    // ... and the ticket is then gone for the owner too (single use, whoever tried it).
    let spent = load(&console, &host, consume, &state).await?;
    ensure!(spent.status == StatusCode::FORBIDDEN, "{}", spent.status);
    // Again, and this time the owner's own browser takes it.
    let (handoff, state) = to_the_hand_off(&console, &owner_b, &ns, &host).await?;
    let consume = handoff
        .location
        .strip_prefix(&format!("https://{host}"))
        .unwrap_or_default();
    let signed = load(&console, &host, consume, &state).await?;
    ensure!(
        signed.status == StatusCode::FOUND && signed.location == format!("/notebook/{ns}/lab/lab"),
        "{} {}",
        signed.status,
        signed.location
    );
    let nb_cookie = cookie_named(&signed, "__Host-berth_notebook")
        .context("the notebook host's own cookie")?
        .to_owned();
    // The notebook host, with its cookie: the SubjectAccessReview as the owner passes, the
    // Notebook is read, and it is stopped.
    let opened = load(
        &console,
        &host,
        &format!("/notebook/{ns}/lab/lab"),
        &nb_cookie,
    )
    .await?;
    ensure!(
        opened.status == StatusCode::SERVICE_UNAVAILABLE
            && opened.body.contains("This notebook is not running"),
        "the owner reaches the notebook: {} {}",
        opened.status,
        opened.body
    );
    // Another notebook's host does not take that cookie.
    let other = format!(
        "{}.nb.example",
        berth_api::notebook_host::label(&ns, "other")
    );
    let elsewhere = load(
        &console,
        &other,
        &format!("/notebook/{ns}/other/lab"),
        &nb_cookie,
    )
    .await?;
    ensure!(
        elsewhere.status == StatusCode::FOUND && elsewhere.location.contains("/notebook-handoff?"),
        "{} {}",
        elsewhere.status,
        elsewhere.location
    );

    // The outsider: the API server refuses, the page names them, no ticket.
    let (refused, _) = to_the_hand_off(&console, &outsider_b, &ns, &host).await?;
    ensure!(
        refused.status == StatusCode::FORBIDDEN
            && refused.body.contains(&outsider)
            && refused.location.is_empty(),
        "the outsider's hand-off: {} {} {}",
        refused.status,
        refused.location,
        refused.body
    );
    // The notebook is as it was.
    let after = notebooks.get("lab").await?;
    ensure!(after.spec.stopped && after.metadata.deletion_timestamp.is_none());

    // The owner logs out of the console: the notebook host's cookie ends with it.
    let out = load(&console, "console.example", "/logout", &owner_b.cookie).await?;
    ensure!(out.status == StatusCode::OK, "{}", out.status);
    let ended = load(
        &console,
        &host,
        &format!("/notebook/{ns}/lab/lab"),
        &nb_cookie,
    )
    .await?;
    ensure!(
        ended.status == StatusCode::FOUND && ended.location.contains("/notebook-handoff?"),
        "{} {}",
        ended.status,
        ended.location
    );
    eprintln!(
        "[console::origin] the hand-off chain in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
