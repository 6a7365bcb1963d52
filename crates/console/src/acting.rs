//! Acting as the user (docs/console.md, "Acting as the user"): every Kubernetes read or write a
//! page makes for a user goes to the API server as that user, so the API server's RBAC and
//! Berth's admission policies decide, exactly as for `kubectl`.
//!
//! Two modes ([`ActAs`], flag `--act-as`):
//! - [`ActAs::Token`]: the user's own bearer token goes with each request (the ID token of a
//!   browser session, or the token an API client presented). The API server must trust the
//!   identity provider (structured authentication configuration). The client that carries it is
//!   built from a configuration **without credentials** (see [`Acting::new`]): kube's own auth
//!   layer would otherwise replace our `Authorization`.
//! - [`ActAs::Impersonate`]: the console's ServiceAccount sends `Impersonate-User` and
//!   `Impersonate-Group` (Kubernetes' user impersonation); that ServiceAccount may impersonate and
//!   nothing else (deploy/rbac/31-console-impersonate.yaml). A group in Kubernetes' reserved
//!   `system:` space other than `system:authenticated` is never impersonated: such a caller is
//!   refused ([`impersonation`]).
//!
//! Both wrap one shared [`kube::Client`] (its connection pool) in a small tower service that adds
//! the headers to each request, and make a [`kube::Client`] of it per page.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response, header};
use kube::client::Body;

use crate::kube_auth::Identity;

/// How the console acts as the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ActAs {
    /// Impersonation headers through the console's ServiceAccount.
    Impersonate,
    /// The user's own bearer token, to an API server that trusts the identity provider.
    Token,
}

impl std::fmt::Display for ActAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Impersonate => "impersonate",
            Self::Token => "token",
        })
    }
}

/// Who a page acts for: the identity, and the bearer token they proved it with (token mode).
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Identity,
    /// The ID token of a browser session, or the bearer token of an API client.
    pub token: Option<String>,
}

/// Why the console will not act for a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WillNotAct(pub String);

/// The impersonation headers for `who`: `Impersonate-User`, and one `Impersonate-Group` per
/// group. `system:authenticated` is left out (the API server adds it to every impersonated
/// user). A ServiceAccount user (`system:serviceaccount:<ns>:<name>`) is impersonated without
/// groups: the API server then adds its own ServiceAccount groups. Any other `system:` user or
/// group is refused: the console never asks to be `system:masters` or a node.
pub fn impersonation(who: &Identity) -> Result<Vec<(HeaderName, HeaderValue)>, WillNotAct> {
    let user = who.username.as_str();
    let service_account = user.starts_with("system:serviceaccount:");
    if user.is_empty() || (user.starts_with("system:") && !service_account) {
        return Err(WillNotAct(format!(
            "the console does not act as the reserved user {user:?}"
        )));
    }
    let value = |v: &str| {
        HeaderValue::from_str(v)
            .map_err(|_| WillNotAct(format!("{v:?} cannot be sent in an HTTP header")))
    };
    let mut headers = vec![(HeaderName::from_static("impersonate-user"), value(user)?)];
    if service_account {
        return Ok(headers);
    }
    for group in &who.groups {
        if group == "system:authenticated" {
            continue;
        }
        if group.starts_with("system:") {
            return Err(WillNotAct(format!(
                "the console does not act for a member of the reserved group {group:?}"
            )));
        }
        headers.push((HeaderName::from_static("impersonate-group"), value(group)?));
    }
    Ok(headers)
}

/// Makes clients that act as a caller.
#[derive(Clone)]
pub struct Acting {
    mode: ActAs,
    /// Impersonate: the console's ServiceAccount client. Token: a client without credentials.
    base: kube::Client,
}

impl Acting {
    /// `base` must be the console's own client for [`ActAs::Impersonate`], and a client built
    /// from a configuration without credentials for [`ActAs::Token`] ([`without_credentials`]).
    pub fn new(mode: ActAs, base: kube::Client) -> Self {
        Self { mode, base }
    }

    pub fn mode(&self) -> ActAs {
        self.mode
    }

    /// A client whose every request is `caller`'s.
    pub fn client(&self, caller: &Caller) -> Result<kube::Client, WillNotAct> {
        let headers = match self.mode {
            ActAs::Impersonate => impersonation(&caller.identity)?,
            ActAs::Token => {
                let token = caller.token.as_deref().ok_or_else(|| {
                    WillNotAct("this session has no token to act with; log in again".into())
                })?;
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| WillNotAct("the token cannot be sent".into()))?;
                value.set_sensitive(true);
                vec![(header::AUTHORIZATION, value)]
            }
        };
        let service = AsUser {
            base: self.base.clone(),
            headers: std::sync::Arc::new(headers),
            user: std::sync::Arc::from(caller.identity.username.as_str()),
        };
        Ok(kube::Client::new(
            service,
            self.base.default_namespace().to_owned(),
        ))
    }
}

/// `config` with every credential removed (token, token file, client certificate, exec,
/// auth provider, impersonation), for [`ActAs::Token`]: the user's bearer is the only one.
pub fn without_credentials(mut config: kube::Config) -> kube::Config {
    config.auth_info = Default::default();
    config
}

/// The tower service that adds the caller's headers, then sends through the base client; each
/// request is logged with the real user (the audit; with impersonation the API server's own
/// audit log shows the console's ServiceAccount and the `impersonatedUser`).
#[derive(Clone)]
struct AsUser {
    base: kube::Client,
    headers: std::sync::Arc<Vec<(HeaderName, HeaderValue)>>,
    user: std::sync::Arc<str>,
}

impl tower::Service<Request<Body>> for AsUser {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let target = request.headers_mut();
        // Nothing of the caller's own choosing: our values replace any of these names.
        for (name, _) in self.headers.iter() {
            target.remove(name);
        }
        for (name, value) in self.headers.iter() {
            target.append(name.clone(), value.clone());
        }
        let base = self.base.clone();
        let user = self.user.clone();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            let answer = base.send(request).await;
            match &answer {
                Ok(response) => {
                    tracing::info!(user = %user, %method, %path, status = response.status().as_u16(), "as the user")
                }
                Err(e) => tracing::info!(user = %user, %method, %path, error = %e, "as the user"),
            }
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            username: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn users_and_their_groups_are_impersonated_but_never_a_system_group() {
        let headers = impersonation(&who(
            "ada@example.com",
            &["ml-team", "system:authenticated"],
        ))
        .unwrap();
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("impersonate-user".into(), "ada@example.com".into()),
                ("impersonate-group".into(), "ml-team".into()),
            ]
        );
        for bad in ["system:masters", "system:nodes", "system:serviceaccounts"] {
            assert!(
                impersonation(&who("ada@example.com", &[bad])).is_err(),
                "{bad} must be refused"
            );
        }
        assert!(impersonation(&who("system:admin", &[])).is_err());
        assert!(impersonation(&who("system:kube-scheduler", &[])).is_err());
        assert!(impersonation(&who("", &[])).is_err());
    }

    #[test]
    fn a_service_account_is_impersonated_without_groups() {
        let headers = impersonation(&who(
            "system:serviceaccount:team-a:ci",
            &["system:serviceaccounts", "system:serviceaccounts:team-a"],
        ))
        .unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].1, "system:serviceaccount:team-a:ci");
    }

    /// A local "API server" that answers each request with the headers it got.
    async fn echo() -> kube::Config {
        use axum::http::HeaderMap;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
            let seen: std::collections::BTreeMap<String, Vec<String>> = headers
                .keys()
                .map(|k| {
                    (
                        k.to_string(),
                        headers
                            .get_all(k)
                            .iter()
                            .map(|v| v.to_str().unwrap_or("?").to_owned())
                            .collect(),
                    )
                })
                .collect();
            axum::Json(seen)
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        kube::Config::new(format!("http://{addr}").parse().unwrap())
    }

    async fn seen(client: &kube::Client) -> std::collections::BTreeMap<String, Vec<String>> {
        let request = Request::get("/api").body(Vec::new()).unwrap();
        serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn token_mode_sends_the_users_bearer_and_no_credential_of_the_console() {
        let mut config = echo().await;
        config.auth_info.token = Some("consoles-own".to_owned().into());
        config.auth_info.impersonate = Some("someone".into());
        let bare = without_credentials(config);
        assert!(bare.auth_info.token.is_none() && bare.auth_info.impersonate.is_none());
        let acting = Acting::new(ActAs::Token, kube::Client::try_from(bare).unwrap());
        let mut caller = Caller {
            identity: who("ada@example.com", &["ml-team"]),
            token: None,
        };
        assert!(acting.client(&caller).is_err(), "no token, no client");
        caller.token = Some("users-id-token".into());
        let got = seen(&acting.client(&caller).unwrap()).await;
        assert_eq!(got["authorization"], vec!["Bearer users-id-token"]);
        assert!(!got.contains_key("impersonate-user"));
    }

    #[tokio::test]
    async fn impersonate_mode_keeps_the_consoles_credential_and_adds_the_user() {
        let mut config = echo().await;
        config.auth_info.token = Some("consoles-own".to_owned().into());
        let acting = Acting::new(ActAs::Impersonate, kube::Client::try_from(config).unwrap());
        let caller = Caller {
            identity: who("ada@example.com", &["ml-team", "data"]),
            token: Some("users-id-token".into()),
        };
        let got = seen(&acting.client(&caller).unwrap()).await;
        assert_eq!(got["authorization"], vec!["Bearer consoles-own"]);
        assert_eq!(got["impersonate-user"], vec!["ada@example.com"]);
        assert_eq!(got["impersonate-group"], vec!["ml-team", "data"]);
        let masters = Caller {
            identity: who("ada@example.com", &["system:masters"]),
            token: None,
        };
        assert!(acting.client(&masters).is_err());
    }
}
