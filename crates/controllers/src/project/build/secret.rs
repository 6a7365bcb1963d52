//! The Secret that carries an outside part's credentials into the project's namespace. Built here
//! (pure), written by the outside parts only when the credentials change: the controller never
//! reads a credential back from a Secret, only these annotations.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use super::super::validate::Validated;
use super::meta::labels;

/// The Secret annotation recording the id of the credential in use (a key id, a robot id, a
/// client's id).
pub const CREDENTIAL_ID_ANNOTATION: &str = "berth.dev/credential-id";
/// The Secret annotation recording a fingerprint of a credential Berth cannot look up by id
/// (the first 128 bits of the SHA-256 of an OIDC client's secret), to notice one changed by hand.
pub const FINGERPRINT_ANNOTATION: &str = "berth.dev/credential-fingerprint";
/// The Secret annotation recording the rotation request it answers.
pub const ROTATION_ANNOTATION: &str = "berth.dev/rotation";

/// What a credentials Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    /// The Secret's type, such as `Opaque` or `kubernetes.io/dockerconfigjson`.
    pub type_: String,
    pub data: BTreeMap<String, String>,
    pub credential_id: String,
    pub fingerprint: Option<String>,
}

/// The credentials Secret `name` of `project`: Berth's labels, no ownerReference (it holds what
/// the project's workloads use, so it outlives a Project removed by hand), the annotations above.
pub fn credentials(
    project: &Validated,
    name: &str,
    contents: &Contents,
    rotation: Option<&str>,
) -> Secret {
    let mut annotations = BTreeMap::from([(
        CREDENTIAL_ID_ANNOTATION.to_owned(),
        contents.credential_id.clone(),
    )]);
    if let Some(f) = &contents.fingerprint {
        annotations.insert(FINGERPRINT_ANNOTATION.to_owned(), f.clone());
    }
    if let Some(r) = rotation {
        annotations.insert(ROTATION_ANNOTATION.to_owned(), r.to_owned());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(project.namespace.clone()),
            labels: Some(labels(project)),
            annotations: Some(annotations),
            ..Default::default()
        },
        type_: Some(contents.type_.clone()),
        data: Some(
            contents
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}
