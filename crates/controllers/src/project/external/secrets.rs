//! Writing and removing the credentials Secrets in a project's namespace. A Secret is written only
//! when its credentials change (server-side apply, Berth's field manager) and removed only when
//! its part is switched off; the shared apply step never prunes one (they hold what workloads use).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use berth_reconcile::{Error, FIELD_MANAGER};

use super::super::build::secret::{Contents, credentials};
use super::super::part::Part;
use super::super::validate::Validated;

/// Writes `part`'s Secret with `contents`, answering the rotation request `rotation`.
pub async fn write(
    client: &Client,
    project: &Validated<'_>,
    part: Part,
    contents: &Contents,
    rotation: Option<&str>,
) -> Result<(), Error> {
    let secret = credentials(project, part.secret_name(), contents, rotation);
    let api: Api<Secret> = Api::namespaced(client.clone(), &project.namespace);
    api.patch(
        part.secret_name(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

/// Removes `uid`'s ownerReference from `part`'s Secret, which an earlier Berth set: the garbage
/// collector would delete the Secret (what workloads use) with the Project.
pub async fn detach(
    client: &Client,
    namespace: &str,
    part: Part,
    others: &[OwnerReference],
) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({"metadata": {"ownerReferences": if others.is_empty() { serde_json::Value::Null } else { serde_json::json!(others) }}});
    match api
        .patch(
            part.secret_name(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes `part`'s Secret from `namespace`. A missing one is fine.
pub async fn delete(client: &Client, namespace: &str, part: Part) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api
        .delete(part.secret_name(), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
