//! What a project's models need to check ServiceAccount tokens (`MLModel.spec.auth.mode:
//! kubernetes`): the ServiceAccount their servers run as, its binding to the shipped
//! `berth-token-reviewer` ClusterRole (only `create tokenreviews`), and a NetworkPolicy that lets
//! those servers, and no other pod of the project, reach the API server.
//!
//! TokenReview is cluster-scoped, so only a ClusterRoleBinding grants it; it is per project
//! (`berth-project-<project>-token-reviewer`), owned by the Project, and
//! `deploy/rbac/22-operator-scope.yaml` lets the operator write no other binding of that role.
//! What a tenant can do with it: any pod of the namespace may run as the account (as with every
//! ServiceAccount of a namespace) and ask the API server whether a token is valid and whose it
//! is; it can neither make tokens nor act as anyone.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Subject as RbacSubject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use berth_api::egress::Cidr;
use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use berth_reconcile::{Desired, Error};

use super::super::validate::Validated;
use super::meta::{namespaced, owned};
use super::role_binding::cluster_role_ref;
use crate::kinds;
use crate::mlmodel::auth::AUTH_LABEL;
use crate::mlmodel::build::{COMPONENT, SERVER};
use crate::names::kube::{
    ALLOW_MODEL_AUTH, MODEL_AUTH_ACCOUNT, TOKEN_REVIEWER_ROLE, token_reviewer_binding,
};

/// The account, its binding, and (when the API server's addresses are known) the policy.
pub fn build(project: &Validated, api_server: &[Cidr]) -> Result<Vec<Desired>, Error> {
    let mut out = vec![
        Desired::new(
            &kinds::service_account(),
            &ServiceAccount {
                metadata: namespaced(project, MODEL_AUTH_ACCOUNT),
                // Only the container that checks tokens mounts one (a projected volume).
                automount_service_account_token: Some(false),
                ..Default::default()
            },
        )?,
        Desired::new(
            &kinds::cluster_role_binding(),
            &ClusterRoleBinding {
                metadata: owned(project, &token_reviewer_binding(&project.name)),
                role_ref: cluster_role_ref(TOKEN_REVIEWER_ROLE),
                subjects: Some(vec![RbacSubject {
                    kind: "ServiceAccount".into(),
                    name: MODEL_AUTH_ACCOUNT.into(),
                    namespace: Some(project.namespace.clone()),
                    api_group: None,
                }]),
            },
        )?,
    ];
    if !api_server.is_empty() {
        out.push(Desired::new(
            &kinds::network_policy(),
            &NetworkPolicy {
                metadata: namespaced(project, ALLOW_MODEL_AUTH),
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([
                            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                            (COMPONENT.to_owned(), SERVER.to_owned()),
                            (AUTH_LABEL.to_owned(), "kubernetes".to_owned()),
                        ])),
                        ..Default::default()
                    }),
                    policy_types: Some(vec!["Egress".into()]),
                    egress: Some(vec![NetworkPolicyEgressRule {
                        to: Some(
                            api_server
                                .iter()
                                .map(|c| NetworkPolicyPeer {
                                    ip_block: Some(IPBlock {
                                        cidr: c.to_string(),
                                        except: None,
                                    }),
                                    ..Default::default()
                                })
                                .collect(),
                        ),
                        ports: None,
                    }]),
                    ..Default::default()
                }),
            },
        )?);
    }
    Ok(out)
}
