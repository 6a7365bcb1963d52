//! The auth flags (shared by the server and the `proxy` subcommand) and their checks.
//!
//! | flag | env | meaning |
//! |---|---|---|
//! | `--auth none\|oidc\|kubernetes` | `BERTH_AUTH` | how callers of the public port are checked (default `none`) |
//! | `--oidc-issuer URL` | `BERTH_OIDC_ISSUER` | the exact `iss` tokens must carry; `URL/.well-known/openid-configuration` names the JWKS |
//! | `--oidc-jwks-url URL` | `BERTH_OIDC_JWKS_URL` | the JWKS, instead of discovery (e.g. the issuer's in-cluster address) |
//! | `--oidc-audience A` (repeatable) | `BERTH_OIDC_AUDIENCE` (comma-separated) | `aud` must contain one of them |
//! | `--oidc-client C` (repeatable) | `BERTH_OIDC_CLIENT` | `azp` must be one of them |
//! | `--oidc-role R` (repeatable) | `BERTH_OIDC_ROLE` | one of them in `realm_access.roles` or `resource_access.*.roles` |
//! | `--oidc-group G` (repeatable) | `BERTH_OIDC_GROUP` | one of them in `groups` (`/G` also matches `G`) |
//! | `--oidc-ca-file PATH` | `BERTH_OIDC_CA_FILE` | extra PEM CA(s) trusted for an https issuer/JWKS |
//! | `--clock-skew-secs N` | `BERTH_CLOCK_SKEW_SECS` | leeway on `exp`, `nbf` and `iat`, seconds (default 30, at most 300) |
//! | `--kubernetes-audience A` (repeatable) | `BERTH_KUBERNETES_AUDIENCE` | TokenReview `spec.audiences`; tokens must be made for one |
//! | `--kubernetes-namespace NS` (repeatable) | `BERTH_KUBERNETES_NAMESPACE` | the caller must be `system:serviceaccount:NS:*` |
//! | `--kubernetes-service-account NAME` (repeatable) | `BERTH_KUBERNETES_SERVICE_ACCOUNT` | ...and, if given, one of these names |
//!
//! With `oidc`, `--oidc-issuer` and at least one `--oidc-audience` are required; with
//! `kubernetes`, at least one `--kubernetes-audience` and one `--kubernetes-namespace` (a
//! token made for the API server, or one from any namespace, is never enough).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::Url;

/// How the public port checks its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum AuthMode {
    /// No check: every caller gets in.
    #[default]
    None,
    /// Bearer JWTs from an OpenID Connect issuer, verified against its JWKS.
    Oidc,
    /// Kubernetes ServiceAccount tokens, checked with a TokenReview.
    Kubernetes,
}

impl AuthMode {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Oidc => "oidc",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// The largest `--clock-skew-secs`.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Authentication of the public port (see the module docs for the table of flags).
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// How callers of the public port are checked: `none`, `oidc` (bearer JWTs of an OIDC
    /// issuer) or `kubernetes` (ServiceAccount tokens, by TokenReview). With a check, every
    /// path of the public port, health included, needs `Authorization: Bearer <token>`;
    /// health stays open on the metrics address.
    #[arg(long, env = "BERTH_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,

    /// oidc: the exact `iss` a token must carry. Unless --oidc-jwks-url is given, the JWKS is
    /// found at `<issuer>/.well-known/openid-configuration` (`jwks_uri`).
    #[arg(long, env = "BERTH_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// oidc: the JWKS URL, instead of discovery (e.g. the issuer's in-cluster address).
    #[arg(long, env = "BERTH_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<Url>,

    /// oidc (repeatable, at least one): the token's `aud` must contain one of these.
    #[arg(
        long = "oidc-audience",
        env = "BERTH_OIDC_AUDIENCE",
        value_delimiter = ','
    )]
    pub oidc_audiences: Vec<String>,

    /// oidc (repeatable, optional): the token's `azp` (the client it was issued to) must be one.
    #[arg(long = "oidc-client", env = "BERTH_OIDC_CLIENT", value_delimiter = ',')]
    pub oidc_clients: Vec<String>,

    /// oidc (repeatable, optional): the token must hold one of these roles, in
    /// `realm_access.roles` or in any client's `resource_access.<client>.roles`.
    #[arg(long = "oidc-role", env = "BERTH_OIDC_ROLE", value_delimiter = ',')]
    pub oidc_roles: Vec<String>,

    /// oidc (repeatable, optional): the token's `groups` claim must hold one of these (a
    /// claim value `/G`, Keycloak's full group path, matches `G`).
    #[arg(long = "oidc-group", env = "BERTH_OIDC_GROUP", value_delimiter = ',')]
    pub oidc_groups: Vec<String>,

    /// oidc: a PEM file of extra CA certificates trusted for an https issuer or JWKS.
    #[arg(long, env = "BERTH_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,

    /// oidc: leeway, in seconds, on the token's `exp`, `nbf` and `iat` (clock skew between
    /// the issuer and this server), at most 300.
    #[arg(long, env = "BERTH_CLOCK_SKEW_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=MAX_CLOCK_SKEW_SECS))]
    pub clock_skew_secs: u64,

    /// kubernetes (repeatable, at least one): the TokenReview's `spec.audiences`; callers'
    /// tokens must be made for one (`kubectl create token SA --audience A`).
    #[arg(
        long = "kubernetes-audience",
        env = "BERTH_KUBERNETES_AUDIENCE",
        value_delimiter = ','
    )]
    pub kubernetes_audiences: Vec<String>,

    /// kubernetes (repeatable, at least one): the caller must be a ServiceAccount of one of
    /// these namespaces (`system:serviceaccount:NS:*`).
    #[arg(
        long = "kubernetes-namespace",
        env = "BERTH_KUBERNETES_NAMESPACE",
        value_delimiter = ','
    )]
    pub kubernetes_namespaces: Vec<String>,

    /// kubernetes (repeatable, optional): the caller's ServiceAccount name must be one of these.
    #[arg(
        long = "kubernetes-service-account",
        env = "BERTH_KUBERNETES_SERVICE_ACCOUNT",
        value_delimiter = ','
    )]
    pub kubernetes_service_accounts: Vec<String>,
}

/// What an OIDC verifier checks, validated from the flags.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The exact expected `iss`, as given (no trailing slash added or removed).
    pub issuer: String,
    /// Where the JWKS is: given, or found by discovery.
    pub jwks: JwksSource,
    pub audiences: Vec<String>,
    pub clients: Vec<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Extra CA certificates, PEM.
    pub ca_pem: Option<Vec<u8>>,
    pub clock_skew: Duration,
}

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks_uri` of the issuer's discovery document at this URL.
    Discovery(Url),
    /// This URL.
    Url(Url),
}

/// What a TokenReview check allows, validated from the flags.
#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    pub audiences: Vec<String>,
    pub namespaces: Vec<String>,
    pub service_accounts: Vec<String>,
}

/// The validated auth settings.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    None,
    Oidc(OidcSettings),
    Kubernetes(KubernetesSettings),
}

fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

impl AuthArgs {
    /// Checks the flags of the chosen mode. Errors are one line naming the flag to fix.
    pub fn settings(&self) -> Result<AuthSettings, String> {
        match self.auth {
            AuthMode::None => Ok(AuthSettings::None),
            AuthMode::Oidc => {
                // Kept as given: `iss` is compared as a string, and a URL parser would add a
                // trailing `/` to an issuer without a path.
                let issuer = self
                    .oidc_issuer
                    .clone()
                    .ok_or("--auth oidc needs --oidc-issuer (the exact `iss` of the tokens)")?;
                let issuer_url = Url::parse(&issuer)
                    .map_err(|e| format!("--oidc-issuer {issuer} is not a URL: {e}"))?;
                let audiences = non_empty(&self.oidc_audiences);
                if audiences.is_empty() {
                    return Err("--auth oidc needs at least one --oidc-audience".to_owned());
                }
                for url in [Some(&issuer_url), self.oidc_jwks_url.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(format!("{url} is not an http(s) URL"));
                    }
                }
                let ca_pem = match &self.oidc_ca_file {
                    None => None,
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        format!("cannot read --oidc-ca-file {}: {e}", path.display())
                    })?),
                };
                let jwks = match &self.oidc_jwks_url {
                    Some(url) => JwksSource::Url(url.clone()),
                    None => JwksSource::Discovery(discovery_url(&issuer)?),
                };
                Ok(AuthSettings::Oidc(OidcSettings {
                    issuer,
                    jwks,
                    audiences,
                    clients: non_empty(&self.oidc_clients),
                    roles: non_empty(&self.oidc_roles),
                    groups: non_empty(&self.oidc_groups),
                    ca_pem,
                    clock_skew: Duration::from_secs(self.clock_skew_secs.min(MAX_CLOCK_SKEW_SECS)),
                }))
            }
            AuthMode::Kubernetes => {
                let audiences = non_empty(&self.kubernetes_audiences);
                if audiences.is_empty() {
                    return Err(
                        "--auth kubernetes needs at least one --kubernetes-audience (tokens made for the API server are not accepted)"
                            .to_owned(),
                    );
                }
                let namespaces = non_empty(&self.kubernetes_namespaces);
                if namespaces.is_empty() {
                    return Err(
                        "--auth kubernetes needs at least one --kubernetes-namespace".to_owned(),
                    );
                }
                Ok(AuthSettings::Kubernetes(KubernetesSettings {
                    audiences,
                    namespaces,
                    service_accounts: non_empty(&self.kubernetes_service_accounts),
                }))
            }
        }
    }
}

/// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, §4): the path
/// is appended to the issuer's, whether or not it ends in `/`.
pub fn discovery_url(issuer: &str) -> Result<Url, String> {
    let base = issuer.trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .map_err(|e| format!("--oidc-issuer {issuer}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        auth: AuthArgs,
    }

    fn parse(args: &[&str]) -> Result<AuthSettings, String> {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        T::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .auth
            .settings()
    }

    #[test]
    fn none_is_the_default() {
        assert!(matches!(parse(&[]).unwrap(), AuthSettings::None));
    }

    #[test]
    fn oidc_needs_issuer_and_audience() {
        assert!(
            parse(&["--auth", "oidc"])
                .unwrap_err()
                .contains("--oidc-issuer")
        );
        assert!(
            parse(&["--auth", "oidc", "--oidc-issuer", "https://kc/realms/r"])
                .unwrap_err()
                .contains("--oidc-audience")
        );
        let AuthSettings::Oidc(s) = parse(&[
            "--auth",
            "oidc",
            "--oidc-issuer",
            "https://kc/realms/r",
            "--oidc-audience",
            "a",
            "--oidc-audience",
            "b",
            "--oidc-role",
            "r1",
        ])
        .unwrap() else {
            panic!("not oidc")
        };
        assert_eq!(s.issuer, "https://kc/realms/r");
        assert_eq!(s.audiences, ["a", "b"]);
        assert_eq!(s.roles, ["r1"]);
        assert_eq!(s.clock_skew, Duration::from_secs(30));
        assert_eq!(
            s.jwks,
            JwksSource::Discovery(
                Url::parse("https://kc/realms/r/.well-known/openid-configuration").unwrap()
            )
        );
    }

    #[test]
    fn clock_skew_is_bounded() {
        let base = [
            "--auth",
            "oidc",
            "--oidc-issuer",
            "http://i",
            "--oidc-audience",
            "a",
        ];
        let mut args = base.to_vec();
        args.extend(["--clock-skew-secs", "301"]);
        assert!(parse(&args).is_err());
        let mut args = base.to_vec();
        args.extend(["--clock-skew-secs", "300"]);
        assert!(parse(&args).is_ok());
    }

    #[test]
    fn kubernetes_needs_audience_and_namespace() {
        assert!(
            parse(&["--auth", "kubernetes"])
                .unwrap_err()
                .contains("--kubernetes-audience")
        );
        assert!(
            parse(&["--auth", "kubernetes", "--kubernetes-audience", "m"])
                .unwrap_err()
                .contains("--kubernetes-namespace")
        );
        let AuthSettings::Kubernetes(k) = parse(&[
            "--auth",
            "kubernetes",
            "--kubernetes-audience",
            "m",
            "--kubernetes-namespace",
            "team",
        ])
        .unwrap() else {
            panic!("not kubernetes")
        };
        assert_eq!(k.namespaces, ["team"]);
        assert!(k.service_accounts.is_empty());
    }
}
