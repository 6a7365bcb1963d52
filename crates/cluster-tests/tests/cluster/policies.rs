//! The admission policies Berth ships compile: the API server type-checks every CEL expression of
//! a ValidatingAdmissionPolicy against the kinds it matches and reports what does not fit in the
//! policy's status. An expression that does not type-check fails at run time, and with
//! `failurePolicy: Fail` that refuses every request it matches.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use kube::api::{Api, ListParams};

use crate::support::{admin, eventually};

#[tokio::test]
async fn every_shipped_admission_policy_type_checks() -> Result<()> {
    let (_, client) = admin().await?;
    let api: Api<ValidatingAdmissionPolicy> = Api::all(client);
    let policies = eventually(
        "every Berth policy to be type-checked",
        Duration::from_secs(30),
        || async {
            let list = api
                .list(&ListParams::default().labels("app.kubernetes.io/name=berth"))
                .await?;
            let checked = list.items.iter().all(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == p.metadata.generation && s.type_checking.is_some()
                })
            });
            Ok((checked && !list.items.is_empty()).then_some(list.items))
        },
    )
    .await?;
    let mut problems = Vec::new();
    for policy in &policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let warnings = policy
            .status
            .as_ref()
            .and_then(|s| s.type_checking.as_ref())
            .and_then(|t| t.expression_warnings.clone())
            .unwrap_or_default();
        for warning in warnings {
            problems.push(format!(
                "{name} {}: {}",
                warning.field_ref,
                warning.warning.chars().take(600).collect::<String>()
            ));
        }
    }
    let names: Vec<String> = policies
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    for expected in [
        "berth-project-creators",
        "berth-project-members",
        "berth-project-limits",
        "berth-managed-labels",
        "berth-tenant-network-policies",
        "berth-operator-scope",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}
