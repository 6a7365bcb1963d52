//! `MLModel.spec.auth`: who may call a model. Enforced in the model's pod, by Berth's model
//! server (onnx) or by `berth-model-server proxy` in front of any other runtime, so it holds with
//! or without a mesh or gateway. The default is authenticated: `oidc` when the model's Project has
//! an OIDC client, `kubernetes` otherwise; `none` is an explicit opt-out, shown in
//! `status.auth.mode` and the `Auth` column of `kubectl get mlmodel`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a model checks its callers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.roles) || size(self.roles) == 0 || (has(self.mode) && self.mode == 'oidc')").message("auth.roles applies to mode oidc (tokens of the platform's identity provider): set auth.mode: oidc, or remove roles"),
    validation = Rule::new("!has(self.groups) || size(self.groups) == 0 || (has(self.mode) && self.mode == 'oidc')").message("auth.groups applies to mode oidc (tokens of the platform's identity provider): set auth.mode: oidc, or remove groups"),
    validation = Rule::new("!has(self.clients) || size(self.clients) == 0 || (has(self.mode) && self.mode == 'oidc')").message("auth.clients applies to mode oidc (tokens of the platform's identity provider): set auth.mode: oidc, or remove clients"),
    validation = Rule::new("!has(self.serviceAccounts) || size(self.serviceAccounts) == 0 || (has(self.mode) && self.mode == 'kubernetes')").message("auth.serviceAccounts applies to mode kubernetes (ServiceAccount tokens): set auth.mode: kubernetes, or remove serviceAccounts"),
    validation = Rule::new("!has(self.audiences) || size(self.audiences) == 0 || (has(self.mode) && self.mode != 'none')").message("auth.audiences needs auth.mode oidc or kubernetes (with mode none nothing is checked): set the mode, or remove audiences"),
    validation = Rule::new("[has(self.audiences) ? self.audiences : [], has(self.clients) ? self.clients : [], has(self.roles) ? self.roles : [], has(self.groups) ? self.groups : []].all(l, l.all(x, !x.contains(',')))").message("auth.audiences, clients, roles and groups may not contain ',': each item is one name (found in review: the model server split 'risk,ops' into two groups)")
)]
pub struct AuthSpec {
    /// oidc (bearer tokens of the platform's identity provider, such as a client_credentials
    /// token of the project's OIDC client), kubernetes (ServiceAccount tokens made for this
    /// model, checked with a TokenReview) or none (no check: anyone who reaches the model may
    /// call it). Default: oidc when the project has an OIDC client, kubernetes otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,

    /// The audiences a token must be made for (any one of them). Default for oidc: the
    /// project's OIDC client id; for kubernetes: this model's own audience,
    /// `mlmodels.berth.dev/<namespace>/<model>` (`kubectl create token SA --audience ...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 256)))]
    pub audiences: Vec<String>,

    /// oidc only: the OIDC clients (the token's `azp`) allowed to call. Default: any client whose
    /// tokens carry an allowed audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 255)))]
    pub clients: Vec<String>,

    /// oidc only: realm or client roles of which the caller must hold one. Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 255)))]
    pub roles: Vec<String>,

    /// oidc only: groups (the token's `groups` claim) of which the caller must be in one.
    /// Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 255)))]
    pub groups: Vec<String>,

    /// kubernetes only: the ServiceAccounts, by name in the model's namespace, allowed to call.
    /// Default: any ServiceAccount of the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(n, n.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'))").message("auth.serviceAccounts lists ServiceAccount names of the model's namespace (lowercase letters, digits, '-' and '.'), not namespace/name"))]
    pub service_accounts: Vec<String>,
}

/// How a model checks its callers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    /// Bearer tokens issued by the platform's identity provider (OIDC).
    Oidc,
    /// ServiceAccount tokens, checked with a TokenReview.
    Kubernetes,
    /// No check: an explicit opt-out.
    None,
}

impl AuthMode {
    /// `oidc`, `kubernetes` or `none`: the model server's `--auth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Oidc => "oidc",
            AuthMode::Kubernetes => "kubernetes",
            AuthMode::None => "none",
        }
    }
}

/// How a model checks its callers, as deployed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthStatus {
    /// oidc, kubernetes or none.
    pub mode: String,
    /// oidc: the issuer a token must come from (its `iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The audiences a token must be made for (any one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

/// The platform's settings for model authentication (`PlatformSettings.spec.models.auth`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelAuthSettings {
    /// How far, in seconds, a token's exp, nbf and iat may be off the model server's clock
    /// (0 to 300; default 30).
    #[serde(default = "default_clock_skew")]
    #[schemars(range(min = 0, max = 300))]
    pub clock_skew_seconds: u32,
}

impl Default for ModelAuthSettings {
    fn default() -> Self {
        Self {
            clock_skew_seconds: default_clock_skew(),
        }
    }
}

fn default_clock_skew() -> u32 {
    30
}
