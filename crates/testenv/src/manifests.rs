//! Applying YAML manifests (what users `kubectl apply`) with server-side apply, and installing
//! Berth the way a platform team does: CRDs, RBAC, admission policies and the platform settings.

use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde::Deserialize;

use crate::util::{free_ports, repo_root};
use crate::{Cluster, Error, Process};

const FIELD_MANAGER: &str = "berth-install";

/// The namespace and service account the operator runs as.
pub const OPERATOR_NAMESPACE: &str = "berth-system";
pub const OPERATOR_ACCOUNT: &str = "berth-operator";

/// The YAML files under `dir`, sorted by name.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every object in a multi-document YAML text.
pub fn parse_objects(text: &str, origin: &str) -> Result<Vec<DynamicObject>, Error> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value).map_err(|e| Error::Manifest {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        objects.push(object);
    }
    Ok(objects)
}

/// The Gateway API's CRDs (standard channel, as `tools/gateway-api/build.sh` pins them, or the
/// directory `BERTH_GATEWAY_API_DIR` names), applied and each established (30 s at most).
pub async fn install_gateway_api_crds(client: &Client) -> Result<(), Error> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};
    let dir = crate::util::locate_build("tools/gateway-api/build.sh", "BERTH_GATEWAY_API_DIR")?;
    apply_dirs(client, &[dir.join("crds")]).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds.list(&Default::default()).await?.items {
        let name = crd.name_any();
        if !name.ends_with(".gateway.networking.k8s.io") {
            continue;
        }
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(std::time::Duration::from_secs(30), established)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("CRD {name} to be established"),
                seconds: 30,
            })?
            .map_err(|e| Error::Wait {
                what: format!("CRD {name}"),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

/// Server-side applies every object in every YAML file of `dirs`, in order; returns `Kind/name` of each.
pub async fn apply_dirs(client: &Client, dirs: &[PathBuf]) -> Result<Vec<String>, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = Vec::new();
    for dir in dirs {
        for file in yaml_files(dir)? {
            let origin = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::io(format!("reading {origin}"), e))?;
            applied.extend(
                apply_objects(client, &discovery, parse_objects(&text, &origin)?, &origin).await?,
            );
        }
    }
    Ok(applied)
}

/// Server-side applies every object of a multi-document YAML text, in order; returns `Kind/name`
/// of each. `origin` names the text in errors.
pub async fn apply_text(client: &Client, text: &str, origin: &str) -> Result<Vec<String>, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    apply_objects(client, &discovery, parse_objects(text, origin)?, origin).await
}

async fn apply_objects(
    client: &Client,
    discovery: &Discovery,
    objects: Vec<DynamicObject>,
    origin: &str,
) -> Result<Vec<String>, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    for object in objects {
        let types = object.types.clone().ok_or_else(|| Error::Manifest {
            origin: origin.to_owned(),
            message: "an object has no apiVersion or kind".into(),
        })?;
        let gvk = kube::api::GroupVersionKind::try_from(&types).map_err(|e| Error::Manifest {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let (resource, capabilities) =
            discovery.resolve_gvk(&gvk).ok_or_else(|| Error::Manifest {
                origin: origin.to_owned(),
                message: format!(
                    "the cluster does not serve {}/{}",
                    types.api_version, types.kind
                ),
            })?;
        let name = object.name_any();
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.namespace().as_deref().unwrap_or("default"),
                &resource,
            ),
        };
        api.patch(&name, &params, &Patch::Apply(&object)).await?;
        applied.push(format!("{}/{}", types.kind, name));
    }
    Ok(applied)
}

/// Server-side applies a Secret of string values in `namespace`, as a platform team stores a
/// provider's admin credentials in the operator's namespace.
pub async fn apply_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    data: &[(&str, &str)],
) -> Result<(), Error> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    Ok(())
}

impl Cluster {
    /// Installs Berth as a platform team would: CRDs, then `deploy/rbac` (the operator's identity and
    /// rights, the project roles, the admission policies) and `deploy/settings`.
    pub async fn install_berth(&self) -> Result<(), Error> {
        self.install_crds().await?;
        let client = self.client().await?;
        let deploy = repo_root().join("deploy");
        apply_dirs(&client, &[deploy.join("rbac"), deploy.join("settings")]).await?;
        Ok(())
    }

    /// Writes a kubeconfig that authenticates as the operator's service account, with a token the
    /// API server issues for it, so the operator runs with exactly the RBAC Berth ships.
    pub async fn operator_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        self.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, path)
            .await
    }

    /// Starts `binary` as the operator, a real process under its own service account (kubeconfig
    /// written to `dir/operator.kubeconfig`), logging to `dir/<log>` and serving health and metrics
    /// on a free loopback port. Returns the process and that port.
    pub async fn start_operator(
        &self,
        binary: &Path,
        dir: &Path,
        log: &str,
        extra_args: &[String],
    ) -> Result<(Process, u16), Error> {
        let kubeconfig = dir.join("operator.kubeconfig");
        self.operator_kubeconfig(&kubeconfig).await?;
        let [port] = free_ports()?;
        let mut args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--health-addr=127.0.0.1:{port}"),
        ];
        args.extend_from_slice(extra_args);
        let process = Process::spawn("berth-operator", binary, &args, &dir.join(log))?;
        Ok((process, port))
    }

    /// A kubeconfig for any service account, with a 24-hour token.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        account: &str,
        path: &Path,
    ) -> Result<(), Error> {
        let client = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None,
                expiration_seconds: Some(24 * 3600),
                bound_object_ref: None,
            }),
            ..Default::default()
        };
        let answer = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await?;
        let token = answer.status.map(|s| s.token).unwrap_or_default();
        let mut kubeconfig: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(self.kubeconfig_path()).map_err(
                |e| Error::io(format!("reading {}", self.kubeconfig_path().display()), e),
            )?)?;
        let user = format!("system:serviceaccount:{namespace}:{account}");
        kubeconfig["users"] = serde_yaml::to_value(vec![
            serde_json::json!({"name": user, "user": {"token": token}}),
        ])?;
        if let Some(contexts) = kubeconfig["contexts"].as_sequence_mut() {
            for context in contexts {
                context["context"]["user"] = serde_yaml::Value::String(user.clone());
            }
        }
        let text = serde_yaml::to_string(&kubeconfig)?;
        // The token is a credential: readable by its owner only (mode 0600), like the admin's.
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let _ = std::fs::remove_file(path);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?
                .write_all(text.as_bytes())
        };
        write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }
}

/// What an admin does to let the operator run notebooks' `exec` activity probes in `namespace`
/// (docs/notebooks.md): a RoleBinding `berth-notebook-exec` of the ClusterRole of that name to the
/// operator's ServiceAccount (`berth-system/berth-operator`).
pub async fn grant_notebook_exec(client: &Client, namespace: &str) -> Result<(), Error> {
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("berth-notebook-exec".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: "berth-notebook-exec".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "berth-operator".into(),
                    namespace: Some("berth-system".into()),
                    api_group: None,
                }]),
            },
        )
        .await?;
    Ok(())
}
