//! The API server's trust in an OpenID Connect provider: the structured authentication
//! configuration (`--authentication-config`, `apiserver.config.k8s.io/v1`
//! `AuthenticationConfiguration`, GA in Kubernetes 1.34) with one `jwt` authenticator, written by
//! [`crate::ControlPlane::start`] when [`crate::Options::trust`] names an issuer.
//!
//! Reference: <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#using-authentication-configuration>.

use serde_json::{Value, json};

/// An OpenID Connect issuer the API server takes ID tokens from.
#[derive(Clone, Debug)]
pub struct TrustedIssuer {
    /// The exact `iss` of the tokens, an `https` URL (the API server fetches
    /// `<url>/.well-known/openid-configuration` and the keys it names from it).
    pub url: String,
    /// PEM of the CA that signed the issuer's certificate.
    pub certificate_authority: String,
    /// The client id the tokens are made for: their `aud` must contain it and their `azp` be it.
    pub client_id: String,
}

/// The `AuthenticationConfiguration` that trusts `issuer`, as JSON (which is YAML):
///
/// - **who**: the username is the token's `email` claim exactly, with no prefix (Berth's Project
///   members are users by e-mail), and only when `email_verified` is `true` (a user who changes
///   their address at the provider has it unverified); the uid is `sub`; the groups are the
///   `groups` claim, unprefixed, as Projects name groups;
/// - **for whom**: `aud` must contain the client id and `azp` must be it, so a token made for
///   another client of the realm (a Project's, say) is refused;
/// - **never the platform's names**: a username or any group starting with `system:` makes the
///   token useless (401), so a provider group named `system:masters` makes nobody a cluster
///   admin, and nobody is `system:anonymous`, a node or a ServiceAccount by a claim.
pub fn authentication_config(issuer: &TrustedIssuer) -> Value {
    let client = &issuer.client_id;
    json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": {
                "url": issuer.url,
                "certificateAuthority": issuer.certificate_authority,
                "audiences": [client],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimValidationRules": [
                {
                    "expression": "has(claims.email_verified) && claims.email_verified == true",
                    "message": "the identity provider has not verified this e-mail address",
                },
                {
                    "expression": format!("has(claims.azp) && claims.azp == {}", cel_string(client)),
                    "message": format!("the token was not made for {client}"),
                },
            ],
            "claimMappings": {
                // Lower-cased as the console names the user (Keycloak stores e-mails lower-case;
                // another provider may not).
                "username": {"expression": "claims.email.lowerAscii()"},
                // A Project's creator picks the name of its realm group (`berth-<project>`), so
                // no `berth-` group from the identity provider becomes a Kubernetes group: a
                // Project named `platform-admin` must not make its members `berth-platform-admin`.
                "groups": {"expression": "has(claims.groups) ? dyn(claims.groups).filter(g, !string(g).startsWith('berth-')) : []"},
                "uid": {"claim": "sub"},
            },
            "userValidationRules": [
                {
                    "expression": "!user.username.startsWith('system:')",
                    "message": "a username from the identity provider may not start with system:",
                },
                {
                    "expression": "user.groups.all(group, !group.startsWith('system:'))",
                    "message": "a group from the identity provider may not start with system:",
                },
            ],
        }],
    })
}

/// `text` as a CEL string literal (single-quoted, `\` and `'` escaped).
fn cel_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TrustedIssuer {
        TrustedIssuer {
            url: "https://127.0.0.1:8443/realms/berth".into(),
            certificate_authority: "-----BEGIN CERTIFICATE-----\n...".into(),
            client_id: "berth.console".into(),
        }
    }

    #[test]
    fn the_username_is_a_verified_email_without_prefix_and_nothing_is_system() {
        let config = authentication_config(&issuer());
        assert_eq!(config["apiVersion"], "apiserver.config.k8s.io/v1");
        let jwt = &config["jwt"][0];
        assert_eq!(jwt["issuer"]["audiences"], json!(["berth.console"]));
        assert_eq!(
            jwt["claimMappings"]["username"]["expression"],
            "claims.email.lowerAscii()"
        );
        // Groups without a prefix, less Berth's per-Project realm groups (their names are
        // chosen by Project creators); the real API server compiles and applies it in
        // external/trusts_keycloak.rs.
        let groups = jwt["claimMappings"]["groups"]["expression"]
            .as_str()
            .unwrap_or_default();
        assert!(
            groups.contains("!string(g).startsWith('berth-')"),
            "{groups}"
        );
        let rules: Vec<&str> = jwt["claimValidationRules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["expression"].as_str())
            .collect();
        assert!(
            rules
                .iter()
                .any(|r| r.contains("claims.email_verified == true"))
        );
        assert!(rules.contains(&"has(claims.azp) && claims.azp == 'berth.console'"));
        let users: Vec<&str> = jwt["userValidationRules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["expression"].as_str())
            .collect();
        assert_eq!(users.len(), 2);
        assert!(users.iter().all(|r| r.contains("startsWith('system:')")));
    }

    #[test]
    fn a_client_id_cannot_break_out_of_its_cel_string() {
        assert_eq!(cel_string("a'b\\c"), "'a\\'b\\\\c'");
    }
}
