//! One person, one role: user names that are e-mail addresses match without regard to case.
//! Admission refuses a Project that lists one person twice (the attack suite); one admitted before
//! that rule is merged by the controller: the strongest role wins, and the RoleBinding names the
//! identity the way the identity provider issues it (lower-case by default), which is the identity
//! that logs in. Shown by impersonating it.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::project::wait_ready;
use crate::support::{eventually, unique, with_operator};

/// The admission binding that refuses case duplicates.
const MEMBERS_BINDING: &str = "berth-project-members";
/// The label that lets a Project in past that binding, for this test only: as if it had been
/// created before the rule existed.
const BEFORE_THE_RULE: &str = "test.berth.dev/before-the-members-rule";

#[tokio::test]
async fn a_person_listed_twice_is_one_member_with_the_strongest_role_in_the_providers_form()
-> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let name = unique("cased");
    let person = format!("ada-{name}@example.com");
    let shouted = person.to_uppercase();
    let bindings = Api::<
        k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    >::all(admin.clone());
    let before = json!({"spec": {"matchResources": {"objectSelector": {"matchExpressions": [
        {"key": BEFORE_THE_RULE, "operator": "DoesNotExist"},
    ]}}}});
    bindings
        .patch(
            MEMBERS_BINDING,
            &PatchParams::default(),
            &Patch::Merge(&before),
        )
        .await?;
    let project: berth_api::Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": name, "labels": {BEFORE_THE_RULE: "true"}},
        // The owner as written with capitals, and again in lower case as a viewer.
        "spec": {"owners": [shouted], "members": [{"kind": "User", "name": person, "role": "viewer"}]},
    }))?;
    // The binding change reaches admission within moments.
    let created = eventually(
        "the project to be admitted as if before the rule",
        Duration::from_secs(30),
        || async {
            Ok(Api::<berth_api::Project>::all(admin.clone())
                .create(&PostParams::default(), &project)
                .await
                .ok())
        },
    )
    .await;
    bindings
        .patch(
            MEMBERS_BINDING,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"matchResources": null}})),
        )
        .await?;
    created?;
    let p = wait_ready(&admin, &name).await?;
    assert_eq!(p.status.and_then(|s| s.owners), Some(person.clone()));

    // One RoleBinding, owner, to the lower-case identity.
    let listed = Api::<RoleBinding>::namespaced(admin.clone(), &name)
        .list(&ListParams::default())
        .await?;
    let people: Vec<(String, String)> = listed
        .items
        .iter()
        .filter(|b| !b.name_any().starts_with("berth-sa-"))
        .flat_map(|b| {
            b.subjects
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|s| (b.role_ref.name.clone(), s.name))
        })
        .collect();
    assert_eq!(
        people,
        vec![("berth-project-owner".to_owned(), person.clone())]
    );

    // The identity that logs in acts as an owner: it may write a Role, which only owners
    // (Kubernetes' admin) may. The capitalised spelling is nobody.
    let as_person = cluster.impersonate(&person, &[]).await?;
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "config-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }))?;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let roles = Api::<Role>::namespaced(as_person.clone(), &name);
    let acted = eventually(
        "the lower-case identity to act as an owner",
        Duration::from_secs(30),
        || async { Ok(roles.create(&dry, &role).await.ok()) },
    )
    .await;
    if acted.is_err() {
        let refused = roles.create(&dry, &role).await.err();
        anyhow::bail!("the lower-case identity may not write a Role: {refused:?}");
    }
    let as_shouted = cluster.impersonate(&shouted, &[]).await?;
    assert!(
        Api::<RoleBinding>::namespaced(as_shouted, &name)
            .list(&ListParams::default())
            .await
            .is_err(),
        "the capitalised spelling got access"
    );
    Ok(())
}
