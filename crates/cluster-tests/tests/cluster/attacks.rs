//! The attack suite: a project creator, an owner, an editor, a viewer and another project's owner
//! each try to widen what the platform gave them, by impersonation against the real API server and
//! the admission policies Berth ships. Every attempt must be refused with a message that says why,
//! and the victim project must be unchanged afterwards. The suite counts its attempts and prints
//! the number.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use berth_api::quota::{canonical, spellings};
use berth_api::{PlatformSettings, Project};

use crate::project::{create, wait_ready};
use crate::support::{eventually, unique, with_operator};

/// The attempts made and those that were not refused as they should be.
#[derive(Default)]
struct Tally {
    attempts: usize,
    failures: Vec<String>,
}

impl Tally {
    /// One attempt by `who`: it must fail with a 403 or 422 whose message holds every `expect`.
    fn refused<T>(
        &mut self,
        who: &str,
        what: &str,
        result: Result<T, kube::Error>,
        expect: &[&str],
    ) {
        self.attempts += 1;
        match result {
            Ok(_) => self.failures.push(format!("{who}: {what}: ADMITTED")),
            Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422 => {
                let missing: Vec<&&str> = expect
                    .iter()
                    .filter(|e| !status.message.contains(**e))
                    .collect();
                if !missing.is_empty() {
                    self.failures.push(format!(
                        "{who}: {what}: refused, but the message lacks {missing:?}: {}",
                        status.message
                    ));
                }
            }
            Err(e) => self
                .failures
                .push(format!("{who}: {what}: failed otherwise: {e}")),
        }
    }
}

/// A Project as a creator would send it, dry-run: admission runs in full, nothing is stored.
async fn try_create_project(client: &Client, spec: Value) -> Result<Project, kube::Error> {
    let project: Project = serde_json::from_value(json!({
        "apiVersion": "berth.dev/v1alpha1", "kind": "Project",
        "metadata": {"name": unique("attack")}, "spec": spec,
    }))
    .map_err(kube::Error::SerdeError)?;
    Api::<Project>::all(client.clone())
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &project,
        )
        .await
}

/// A change to a Project's spec, as its owner would make it (a merge patch, for real).
async fn try_patch_project(
    client: &Client,
    name: &str,
    spec: Value,
) -> Result<Project, kube::Error> {
    Api::<Project>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
}

fn network_policy(name: &str, spec: Value) -> Result<NetworkPolicy> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// What the victim is made of, to show it unchanged.
async fn snapshot(admin: &Client, project: &str) -> Result<Value> {
    let spec = Api::<Project>::all(admin.clone()).get(project).await?.spec;
    let ns = Api::<Namespace>::all(admin.clone()).get(project).await?;
    let mut policies: Vec<String> = Api::<NetworkPolicy>::namespaced(admin.clone(), project)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| serde_json::to_string(&p.spec).unwrap_or_default())
        .collect();
    policies.sort();
    let quota = Api::<ResourceQuota>::namespaced(admin.clone(), project)
        .get("berth-quota")
        .await?
        .spec;
    let mut bindings: Vec<String> = Api::<RoleBinding>::namespaced(admin.clone(), project)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|b| format!("{} {:?} {:?}", b.name_any(), b.role_ref.name, b.subjects))
        .collect();
    bindings.sort();
    let mut labelled: Vec<String> = Vec::new();
    for (kind, names) in [
        (
            "ConfigMap",
            Api::<ConfigMap>::all(admin.clone())
                .list(&ListParams::default().labels(&format!("berth.dev/project={project}")))
                .await?
                .items
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
                .collect::<Vec<_>>(),
        ),
        (
            "Secret",
            Api::<Secret>::all(admin.clone())
                .list(&ListParams::default().labels(&format!("berth.dev/project={project}")))
                .await?
                .items
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
                .collect::<Vec<_>>(),
        ),
    ] {
        for name in names {
            labelled.push(format!("{kind} {name}"));
        }
    }
    Ok(json!({
        "spec": spec,
        "namespaceLabels": ns.metadata.labels,
        "namespaceAnnotations": ns.metadata.annotations.map(|a| a.into_iter().filter(|(k, _)| !k.starts_with("berth.dev/")).collect::<BTreeMap<_, _>>()),
        "networkPolicies": policies,
        "quota": quota,
        "roleBindings": bindings,
        "labelledObjects": labelled,
    }))
}

pub async fn grant_creator(admin: &Client, user: &str) -> Result<()> {
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(unique("attack-creator")),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "berth-project-creator".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    namespace: None,
                }]),
            },
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn no_one_widens_what_the_platform_gave_them() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let victim = unique("victim");
    let other = unique("rival");
    let id = |who: &str| format!("{who}-{victim}@example.com");
    let (creator, owner, editor, viewer, rival) = (
        id("creator"),
        id("owner"),
        id("editor"),
        id("viewer"),
        id("rival"),
    );
    create(
        &admin,
        &victim,
        json!({
            "owners": [owner],
            "members": [
                {"kind": "User", "name": editor, "role": "editor"},
                {"kind": "User", "name": viewer, "role": "viewer"},
            ],
        }),
    )
    .await?;
    create(&admin, &other, json!({"owners": [rival]})).await?;
    grant_creator(&admin, &creator).await?;
    wait_ready(&admin, &victim).await?;
    wait_ready(&admin, &other).await?;

    let as_creator = cluster.impersonate(&creator, &[]).await?;
    let as_owner = cluster.impersonate(&owner, &[]).await?;
    let as_editor = cluster.impersonate(&editor, &[]).await?;
    let as_viewer = cluster.impersonate(&viewer, &[]).await?;
    let as_rival = cluster.impersonate(&rival, &[]).await?;
    // RBAC reaches the authorizer's cache quickly, but not at once.
    eventually(
        "every attacker's access",
        Duration::from_secs(30),
        || async {
            let owner_ok = Api::<NetworkPolicy>::namespaced(as_owner.clone(), &victim)
                .list(&ListParams::default())
                .await
                .is_ok();
            let rival_ok = Api::<ConfigMap>::namespaced(as_rival.clone(), &other)
                .list(&ListParams::default())
                .await
                .is_ok();
            let creator_ok = try_create_project(&as_creator, json!({"owners": [creator]}))
                .await
                .is_ok();
            Ok((owner_ok && rival_ok && creator_ok).then_some(()))
        },
    )
    .await?;
    let before = snapshot(&admin, &victim).await?;
    let mut t = Tally::default();

    // 1. Quota, by every spelling of every resource the platform limits; and the bucket size.
    let settings = Api::<PlatformSettings>::all(admin.clone())
        .get("default")
        .await?
        .spec;
    let maximum = settings.quota.maximum.clone();
    assert!(!maximum.is_empty(), "the shipped settings name a maximum");
    for (resource, limit) in &maximum {
        for spelling in spellings(&canonical(resource)) {
            let hard = json!({ spelling.clone(): "1e15" });
            let expect = [spelling.as_str(), "1e15", limit.0.as_str()];
            t.refused(
                "creator",
                &format!("quota {spelling}: 1e15"),
                try_create_project(
                    &as_creator,
                    json!({"owners": [creator], "resourceQuota": {"hard": hard}}),
                )
                .await,
                &expect,
            );
            t.refused(
                "owner",
                &format!("quota {spelling}: 1e15"),
                try_patch_project(&as_owner, &victim, json!({"resourceQuota": {"hard": hard}}))
                    .await,
                &expect,
            );
        }
    }
    for (who, client) in [
        ("editor", &as_editor),
        ("viewer", &as_viewer),
        ("another project's owner", &as_rival),
    ] {
        t.refused(
            who,
            "quota cpu: 1e15 on the victim",
            try_patch_project(
                client,
                &victim,
                json!({"resourceQuota": {"hard": {"cpu": "1e15"}}}),
            )
            .await,
            &["forbidden"],
        );
    }
    t.refused(
        "creator",
        "cpu and requests.cpu at once",
        try_create_project(
            &as_creator,
            json!({"owners": [creator], "resourceQuota": {"hard": {"cpu": "1", "requests.cpu": "1e15"}}}),
        )
        .await,
        &["names one resource twice"],
    );
    let bucket_maximum = settings
        .quota
        .bucket_maximum
        .as_ref()
        .map(|q| q.0.clone())
        .unwrap_or_default();
    t.refused(
        "creator",
        "a 10Pi bucket",
        try_create_project(
            &as_creator,
            json!({"owners": [creator], "storage": {"quota": "10Pi"}}),
        )
        .await,
        &["10Pi", &bucket_maximum, "spec.storage.quota"],
    );
    t.refused(
        "owner",
        "a 10Pi bucket",
        try_patch_project(&as_owner, &victim, json!({"storage": {"quota": "10Pi"}})).await,
        &["10Pi", &bucket_maximum],
    );

    // 2. Namespace metadata: nothing outside the (empty) allowlist; Berth's own keys never.
    for (field, key, value, expect) in [
        ("namespaceLabels", "team", "a", "need a platform admin"),
        (
            "namespaceLabels",
            "admission.gatekeeper.sh/ignore",
            "true",
            "need a platform admin",
        ),
        (
            "namespaceLabels",
            "topology.istio.io/network",
            "n1",
            "need a platform admin",
        ),
        ("namespaceLabels", "istio.io/rev", "canary", "cannot set"),
        (
            "namespaceLabels",
            "pod-security.kubernetes.io/enforce",
            "privileged",
            "cannot set",
        ),
        (
            "namespaceAnnotations",
            "scheduler.alpha.kubernetes.io/node-selector",
            "gpu=true",
            "need a platform admin",
        ),
        (
            "namespaceAnnotations",
            "scheduler.alpha.kubernetes.io/defaultTolerations",
            "[]",
            "need a platform admin",
        ),
        (
            "namespaceAnnotations",
            "sidecar.istio.io/inject",
            "false",
            "need a platform admin",
        ),
    ] {
        let metadata = json!({ field: { key: value } });
        let mut spec = json!({"owners": [creator]});
        spec[field] = metadata[field].clone();
        t.refused(
            "creator",
            &format!("{field} {key}"),
            try_create_project(&as_creator, spec).await,
            &[expect],
        );
        t.refused(
            "owner",
            &format!("{field} {key}"),
            try_patch_project(&as_owner, &victim, metadata).await,
            &[expect],
        );
    }

    // 3. Isolation: NetworkPolicies that admit other namespaces or open egress.
    let rival_namespace = json!({"matchLabels": {"kubernetes.io/metadata.name": other}});
    let open: Vec<(&str, Value, &str)> = vec![
        (
            "allow-all ingress",
            json!({"podSelector": {}, "ingress": [{}]}),
            "would admit traffic from outside",
        ),
        (
            "ingress from every namespace",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
            "would admit traffic from outside",
        ),
        (
            "ingress from another project",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": rival_namespace}]}]}),
            "would admit traffic from outside",
        ),
        (
            "ingress from 0.0.0.0/0",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
            "would admit traffic from outside",
        ),
        (
            "allow-all egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
            "would open egress",
        ),
        (
            "egress to 0.0.0.0/0",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
            "would open egress",
        ),
        (
            "egress to 169.254.169.254",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]}]}),
            "would open egress",
        ),
        (
            "egress to another project",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": rival_namespace}]}]}),
            "would open egress",
        ),
    ];
    for (who, client) in [("owner", &as_owner), ("editor", &as_editor)] {
        let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &victim);
        for (what, spec, expect) in &open {
            t.refused(
                who,
                what,
                policies
                    .create(
                        &PostParams::default(),
                        &network_policy(&unique("open"), spec.clone())?,
                    )
                    .await,
                &[expect],
            );
        }
    }
    for (who, client) in [
        ("viewer", &as_viewer),
        ("another project's owner", &as_rival),
    ] {
        t.refused(
            who,
            "allow-all ingress",
            Api::<NetworkPolicy>::namespaced(client.clone(), &victim)
                .create(
                    &PostParams::default(),
                    &network_policy(&unique("open"), open[0].1.clone())?,
                )
                .await,
            &["forbidden"],
        );
    }
    // Narrowing, or opening inside the namespace, is fine; widening it later is not.
    let own = Api::<NetworkPolicy>::namespaced(as_owner.clone(), &victim);
    let inside = network_policy(
        "inside-only",
        json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}),
    )?;
    own.create(&PostParams::default(), &inside).await?;
    t.refused(
        "owner",
        "widening an own policy to allow-all",
        own.patch(
            "inside-only",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"ingress": [{}]}})),
        )
        .await,
        &["would admit traffic from outside"],
    );
    own.delete("inside-only", &DeleteParams::default()).await?;

    // allowEgressTo: outside the (empty) allowlist, and link-local never.
    for (cidr, expect) in [
        ("0.0.0.0/0", "outside the ranges projects may open"),
        ("169.254.169.254/32", "link-local"),
        ("fe80::1/128", "link-local"),
    ] {
        t.refused(
            "creator",
            &format!("allowEgressTo {cidr}"),
            try_create_project(
                &as_creator,
                json!({"owners": [creator], "network": {"allowEgressTo": [cidr]}}),
            )
            .await,
            &[expect],
        );
        t.refused(
            "owner",
            &format!("allowEgressTo {cidr}"),
            try_patch_project(
                &as_owner,
                &victim,
                json!({"network": {"allowEgressTo": [cidr]}}),
            )
            .await,
            &[expect],
        );
    }

    // 4. Berth's labels are Berth's: forged on create, added on update, removed, deleted.
    let forged = [
        ("app.kubernetes.io/managed-by", "berth"),
        ("berth.dev/project", victim.as_str()),
    ];
    for (who, client, namespace) in [
        ("owner", &as_owner, victim.as_str()),
        ("editor", &as_editor, victim.as_str()),
        ("another project's owner", &as_rival, other.as_str()),
    ] {
        t.refused(
            who,
            "a ConfigMap forged as Berth's, on create",
            Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .create(
                    &PostParams::default(),
                    &ConfigMap {
                        metadata: labelled(&unique("forged"), &forged),
                        ..Default::default()
                    },
                )
                .await,
            &["only Berth creates objects with its labels"],
        );
        t.refused(
            who,
            "a credentials Secret forged for the victim, on create",
            Api::<Secret>::namespaced(client.clone(), namespace)
                .create(
                    &PostParams::default(),
                    &Secret {
                        metadata: labelled("berth-storage", &forged),
                        ..Default::default()
                    },
                )
                .await,
            &["only Berth creates objects with its labels"],
        );
        // Created plain, then labelled.
        let name = unique("plain");
        let maps = Api::<ConfigMap>::namespaced(client.clone(), namespace);
        maps.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: labelled(&name, &[]),
                ..Default::default()
            },
        )
        .await?;
        t.refused(
            who,
            "Berth's labels added on update",
            maps.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "berth", "berth.dev/project": victim}}})),
            )
            .await,
            &["only Berth creates objects with its labels"],
        );
        maps.delete(&name, &DeleteParams::default()).await?;
    }
    t.refused(
        "owner",
        "a pod labelled as a model's",
        Api::<Pod>::namespaced(as_owner.clone(), &victim)
            .create(
                &PostParams::default(),
                &serde_json::from_value::<Pod>(json!({
                    "metadata": {"name": unique("pod"), "labels": {"berth.dev/model": "m"}},
                    "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                             "containers": [{"name": "c", "image": "127.0.0.1:1/x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]},
                }))?,
            )
            .await,
        &["only Berth creates objects with its labels"],
    );
    t.refused(
        "owner",
        "Berth's labels removed from its default-deny policy",
        Api::<NetworkPolicy>::namespaced(as_owner.clone(), &victim)
            .patch(
                "berth-default-deny",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null, "berth.dev/project": null}}})),
            )
            .await,
        &["managed by Berth for Project", "removing Berth's labels"],
    );
    t.refused(
        "editor",
        "Berth's default-deny policy deleted",
        Api::<NetworkPolicy>::namespaced(as_editor.clone(), &victim)
            .delete("berth-default-deny", &DeleteParams::default())
            .await,
        &["managed by Berth for Project"],
    );
    t.refused(
        "owner",
        "a Berth RoleBinding changed",
        Api::<RoleBinding>::namespaced(as_owner.clone(), &victim)
            .patch(
                "berth-sa-project-automation",
                &PatchParams::default(),
                &Patch::Merge(&json!({"subjects": [{"kind": "User", "name": "mallory@example.com", "apiGroup": "rbac.authorization.k8s.io"}]})),
            )
            .await,
        &["managed by Berth for Project"],
    );

    // 5. Members: system: identities, an own-namespace ServiceAccount as owner, case duplicates.
    for member in [
        json!({"kind": "Group", "name": "system:authenticated", "role": "viewer"}),
        json!({"kind": "Group", "name": "system:serviceaccounts", "role": "editor"}),
        json!({"kind": "User", "name": "system:anonymous", "role": "viewer"}),
        json!({"kind": "User", "name": "system:serviceaccount:kube-system:default", "role": "editor"}),
    ] {
        let name = member["name"].as_str().unwrap_or_default().to_owned();
        t.refused(
            "creator",
            &format!("member {name}"),
            try_create_project(
                &as_creator,
                json!({"owners": [creator], "members": [member]}),
            )
            .await,
            &["need a platform admin", &name],
        );
        t.refused(
            "owner",
            &format!("member {name}"),
            try_patch_project(&as_owner, &victim, json!({"members": [member]})).await,
            &["need a platform admin", &name],
        );
    }
    for (member, who_too) in [
        (
            json!({"kind": "ServiceAccount", "name": "project-automation", "role": "owner"}),
            true,
        ),
        (
            json!({"kind": "ServiceAccount", "name": format!("{victim}/robot"), "role": "owner"}),
            false,
        ),
    ] {
        t.refused(
            "owner",
            &format!("own-namespace ServiceAccount {} as owner", member["name"]),
            try_patch_project(&as_owner, &victim, json!({"members": [member]})).await,
            &["cannot be an owner"],
        );
        if who_too {
            // Not even a platform admin.
            t.refused(
                "platform admin",
                "own-namespace ServiceAccount as owner",
                try_patch_project(&admin, &victim, json!({"members": [member]})).await,
                &["cannot be an owner"],
            );
        }
    }
    let shouted = creator.to_uppercase();
    t.refused(
        "creator",
        "the same person twice, cased differently",
        try_create_project(
            &as_creator,
            json!({"owners": [creator], "members": [{"kind": "User", "name": shouted, "role": "viewer"}]}),
        )
        .await,
        &["name one person", &shouted],
    );
    t.refused(
        "owner",
        "the same person twice, cased differently",
        try_patch_project(
            &as_owner,
            &victim,
            json!({"members": [{"kind": "User", "name": owner.to_uppercase(), "role": "viewer"}]}),
        )
        .await,
        &["name one person"],
    );

    // The victim is as it was.
    let after = snapshot(&admin, &victim).await?;
    assert_eq!(before, after, "the victim changed");
    eprintln!(
        "attack suite: {} attempts, {} refused as they should be",
        t.attempts,
        t.attempts - t.failures.len()
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    Ok(())
}

/// The allowlists open what they name, and no more: a range inside the allowed egress is admitted
/// for a creator, a label under an allowed prefix too.
#[tokio::test]
async fn the_allowlists_admit_what_they_name() -> Result<()> {
    let (cluster, admin) = with_operator().await?;
    let creator = format!("{}@example.com", unique("allowed"));
    grant_creator(&admin, &creator).await?;
    let settings: Api<PlatformSettings> = Api::all(admin.clone());
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "tenantEgress": {"allowedCIDRs": ["203.0.113.0/24"]},
                "tenantNamespaceMetadata": {"labelPrefixes": ["cost.example.com/"]},
            }})),
        )
        .await?;
    let as_creator = cluster.impersonate(&creator, &[]).await?;
    let admitted = eventually("the allowlists to apply", Duration::from_secs(30), || async {
        Ok(try_create_project(
            &as_creator,
            json!({"owners": [creator], "network": {"allowEgressTo": ["203.0.113.128/25"]}, "namespaceLabels": {"cost.example.com/center": "42"}}),
        )
        .await
        .ok())
    })
    .await;
    let outside = try_create_project(
        &as_creator,
        json!({"owners": [creator], "network": {"allowEgressTo": ["203.0.112.0/23"]}}),
    )
    .await;
    // While tenants may set cost.example.com/ labels, no NotebookTemplate may select on them
    // (any project could grant itself the template): refused even for a platform admin.
    let forgeable = crate::notebook_template_admission::forgeable_selector_refusal(&admin).await;
    settings
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"tenantEgress": null, "tenantNamespaceMetadata": null}}),
            ),
        )
        .await?;
    admitted?;
    let refusal = forgeable?;
    assert!(
        refusal.contains("cost.example.com/center")
            && refusal.contains("any project could grant itself this template"),
        "{refusal}"
    );
    let Err(kube::Error::Api(status)) = outside else {
        anyhow::bail!("a range wider than the allowed one was admitted: {outside:?}");
    };
    assert!(
        status.message.contains("203.0.113.0/24"),
        "{}",
        status.message
    );
    Ok(())
}
