//! Who may call a model: `spec.auth` resolved against the model's Project and the platform
//! settings into the flags of the contract `berth-model-server` (and its `proxy` subcommand)
//! implements (see `crates/model-server`, and BRIEF's "auth contract"). Pure.
//!
//! The default is never `none`: `oidc` when the platform gives the model's Project an OIDC client
//! (an identity provider in the settings, and the Project does not opt out), `kubernetes`
//! otherwise. An `oidc` model whose Project has no client (yet) is not served at all, with the
//! reason in its `AuthReady` condition: it never falls back to something weaker.

use berth_api::mlmodel::{AuthMode, AuthStatus, MLModel};
use berth_api::{PlatformSettingsSpec, Project};

use crate::names::kube::model_audience;
use crate::project::part::Part;

/// The label on every serving pod saying how it checks callers (`oidc`, `kubernetes`, `none`).
/// The project's `berth-allow-model-auth` NetworkPolicy opens the API server to `kubernetes` ones.
pub const AUTH_LABEL: &str = "berth.dev/auth";

/// How a model's pods check callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No check (`spec.auth.mode: none`, asked for explicitly).
    None,
    /// Bearer tokens of the platform's identity provider.
    Oidc {
        /// The exact `iss` expected; discovery at `<issuer>/.well-known/openid-configuration`.
        issuer: String,
        audiences: Vec<String>,
        clients: Vec<String>,
        roles: Vec<String>,
        groups: Vec<String>,
        clock_skew_seconds: u32,
    },
    /// ServiceAccount tokens, checked with a TokenReview.
    Kubernetes {
        audiences: Vec<String>,
        /// The namespace whose ServiceAccounts may call (the model's).
        namespace: String,
        /// Restrict to these ServiceAccount names (empty: any of the namespace).
        service_accounts: Vec<String>,
    },
}

/// Why a model's auth cannot be set up, and what to do: the `AuthReady` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    pub reason: String,
    pub message: String,
}

/// The reason of an `oidc` model whose Project has no OIDC client.
pub const AUTH_UNAVAILABLE: &str = "AuthUnavailable";

/// The issuer of the platform's identity provider (Keycloak: `<url>/realms/<realm>`), if any.
pub fn issuer(settings: &PlatformSettingsSpec) -> Option<String> {
    settings
        .identity
        .as_ref()
        .map(|i| format!("{}/realms/{}", i.url.trim_end_matches('/'), i.realm))
}

/// The mode `model` gets when `spec.auth.mode` is absent: oidc where the platform gives its
/// Project an OIDC client, kubernetes otherwise.
pub fn default_mode(project: Option<&Project>, settings: &PlatformSettingsSpec) -> AuthMode {
    if project.is_some_and(|p| Part::Identity.enabled(p, settings)) {
        AuthMode::Oidc
    } else {
        AuthMode::Kubernetes
    }
}

/// Resolves `model`'s auth. `project` is the Project whose namespace holds the model.
pub fn resolve(
    model: &MLModel,
    project: Option<&Project>,
    settings: &PlatformSettingsSpec,
) -> Result<Auth, Unavailable> {
    let spec = model.spec.auth.clone().unwrap_or_default();
    let name = model.metadata.name.clone().unwrap_or_default();
    let namespace = model.metadata.namespace.clone().unwrap_or_default();
    let mode = spec.mode.unwrap_or_else(|| default_mode(project, settings));
    match mode {
        AuthMode::None => Ok(Auth::None),
        AuthMode::Kubernetes => Ok(Auth::Kubernetes {
            audiences: if spec.audiences.is_empty() {
                vec![model_audience(&namespace, &name)]
            } else {
                spec.audiences
            },
            namespace,
            service_accounts: spec.service_accounts,
        }),
        AuthMode::Oidc => {
            let project_name = project
                .and_then(|p| p.metadata.name.clone())
                .unwrap_or_else(|| format!("of namespace {namespace}"));
            let enabled = project.is_some_and(|p| Part::Identity.enabled(p, settings));
            let issuer = issuer(settings).filter(|_| enabled).ok_or_else(|| Unavailable {
                reason: AUTH_UNAVAILABLE.into(),
                message: format!(
                    "spec.auth.mode is oidc, but project {project_name} has no OIDC client: the platform has no identity provider (PlatformSettings.spec.identity), or the Project opts out (spec.idp.enabled: false). Enable the project's identity, or use auth.mode kubernetes; the model is not served until then"
                ),
            })?;
            let client = project
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.external.as_ref())
                .and_then(|e| e.oidc_client_id.clone())
                .ok_or_else(|| Unavailable {
                    reason: AUTH_UNAVAILABLE.into(),
                    message: format!(
                        "spec.auth.mode is oidc, and project {project_name}'s OIDC client is not made yet (its IdentityReady condition says why); the model is served once it is"
                    ),
                })?;
            Ok(Auth::Oidc {
                issuer,
                audiences: if spec.audiences.is_empty() {
                    vec![client]
                } else {
                    spec.audiences
                },
                clients: spec.clients,
                roles: spec.roles,
                groups: spec.groups,
                clock_skew_seconds: settings.models.auth.clock_skew_seconds.min(300),
            })
        }
    }
}

impl Auth {
    /// `oidc`, `kubernetes` or `none`.
    pub fn mode(&self) -> AuthMode {
        match self {
            Auth::None => AuthMode::None,
            Auth::Oidc { .. } => AuthMode::Oidc,
            Auth::Kubernetes { .. } => AuthMode::Kubernetes,
        }
    }

    /// Whether callers are checked at all.
    pub fn enabled(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// The flags of `berth-model-server` (and `berth-model-server proxy`) that make it check
    /// callers this way.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![format!("--auth={}", self.mode().as_str())];
        let mut each = |flag: &str, values: &[String]| {
            args.extend(values.iter().map(|v| format!("--{flag}={v}")));
        };
        match self {
            Auth::None => {}
            Auth::Oidc {
                issuer,
                audiences,
                clients,
                roles,
                groups,
                clock_skew_seconds,
            } => {
                each("oidc-issuer", std::slice::from_ref(issuer));
                each("oidc-audience", audiences);
                each("oidc-client", clients);
                each("oidc-role", roles);
                each("oidc-group", groups);
                each("clock-skew-secs", &[clock_skew_seconds.to_string()]);
            }
            Auth::Kubernetes {
                audiences,
                namespace,
                service_accounts,
            } => {
                each("kubernetes-audience", audiences);
                each("kubernetes-namespace", std::slice::from_ref(namespace));
                each("kubernetes-service-account", service_accounts);
            }
        }
        args
    }

    /// `status.auth`.
    pub fn status(&self) -> AuthStatus {
        match self {
            Auth::None => AuthStatus {
                mode: "none".into(),
                ..Default::default()
            },
            Auth::Oidc {
                issuer, audiences, ..
            } => AuthStatus {
                mode: "oidc".into(),
                issuer: Some(issuer.clone()),
                audiences: audiences.clone(),
            },
            Auth::Kubernetes { audiences, .. } => AuthStatus {
                mode: "kubernetes".into(),
                issuer: None,
                audiences: audiences.clone(),
            },
        }
    }

    /// The `AuthReady` condition's reason and message.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Auth::None => (
                "AuthDisabled",
                "spec.auth.mode is none: anyone who reaches the model may call it".into(),
            ),
            Auth::Oidc {
                issuer, audiences, ..
            } => (
                "OIDC",
                format!(
                    "callers need a bearer token of {issuer} made for {}",
                    audiences.join(" or ")
                ),
            ),
            Auth::Kubernetes {
                audiences,
                namespace,
                ..
            } => (
                "ServiceAccountTokens",
                format!(
                    "callers need a token of a ServiceAccount of {namespace} made for {} (kubectl create token <account> --audience {})",
                    audiences.join(" or "),
                    audiences.first().map(String::as_str).unwrap_or_default()
                ),
            ),
        }
    }
}
