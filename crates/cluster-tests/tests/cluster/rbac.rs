//! The API server enforces RBAC on impersonated users: the clients tests use to prove access rules
//! see exactly what a real user would.

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

use crate::support::{admin, eventually, namespace, unique};

#[tokio::test]
async fn impersonated_user_without_rbac_is_forbidden_where_admin_succeeds() -> Result<()> {
    let (cluster, admin_client) = admin().await?;
    let ns = namespace(&admin_client, "rbac").await?;
    let user = format!("{}@example.com", unique("nobody"));

    let as_admin: Api<ConfigMap> = Api::namespaced(admin_client.clone(), &ns);
    as_admin.list(&ListParams::default()).await?;

    let as_user: Api<ConfigMap> = Api::namespaced(cluster.impersonate(&user, &[]).await?, &ns);
    match as_user.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(status.message.contains(&user), "{}", status.message);
        }
        other => panic!("expected 403 for {user}, got {other:?}"),
    }

    // The same user may list once bound to the view role: the denial above was RBAC's, not a
    // broken client.
    let bindings: Api<RoleBinding> = Api::namespaced(admin_client, &ns);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("viewer".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "view".into(),
                },
                subjects: Some(vec![Subject {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "User".into(),
                    name: user.clone(),
                    namespace: None,
                }]),
            },
        )
        .await?;
    eventually(
        "the binding to take effect",
        std::time::Duration::from_secs(10),
        || async {
            Ok(as_user
                .list(&ListParams::default())
                .await
                .is_ok()
                .then_some(()))
        },
    )
    .await?;
    // view does not allow writes.
    let write = as_user
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("nope".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(write, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{write:?}"
    );
    Ok(())
}
