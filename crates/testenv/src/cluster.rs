//! A handle on a running cluster: clients for the admin and for impersonated users, and the CRD install.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

use crate::Error;

/// The field manager the test environment applies with.
const FIELD_MANAGER: &str = "berth-testenv";

/// A cluster reachable through an admin kubeconfig. Cheap to clone; clients are made per runtime.
#[derive(Clone, Debug)]
pub struct Cluster {
    kubeconfig: Kubeconfig,
    path: PathBuf,
}

impl Cluster {
    /// A cluster from a kubeconfig file, using its current context.
    pub async fn from_kubeconfig_file(path: &Path) -> Result<Self, Error> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            kubeconfig,
            path: path.to_path_buf(),
        })
    }

    /// The admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.path
    }

    /// The admin's client configuration.
    pub async fn config(&self) -> Result<Config, Error> {
        Config::from_custom_kubeconfig(self.kubeconfig.clone(), &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// A client with the admin's credentials, bound to the calling runtime.
    pub async fn client(&self) -> Result<Client, Error> {
        Ok(Client::try_from(self.config().await?)?)
    }

    /// A client that acts as `user` in `groups` (plus `system:authenticated`), through the admin's
    /// right to impersonate. What it may do is exactly what RBAC grants that user.
    pub async fn impersonate(&self, user: &str, groups: &[&str]) -> Result<Client, Error> {
        let mut config = self.config().await?;
        config.auth_info.impersonate = Some(user.to_owned());
        let mut all: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        all.push("system:authenticated".to_owned());
        config.auth_info.impersonate_groups = Some(all);
        Ok(Client::try_from(config)?)
    }

    /// Applies Berth's CRDs with server-side apply and waits until each is established.
    pub async fn install_crds(&self) -> Result<(), Error> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for crd in berth_api::crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(&crd)).await?;
            let established = await_condition(api.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(Duration::from_secs(30), established)
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
}
