//! The providers the platform settings enable, connected with the admin credentials from Secrets
//! in the operator's namespace. Reconnects only when the settings or those Secrets change.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::runtime::reflector::{ObjectRef, Store};

use berth_api::PlatformSettingsSpec;
use berth_api::providers::{AdminSecretRef, StorageProvider};
use berth_providers::Secret;
use berth_providers::identity::IdentityConfig;
use berth_providers::identity::keycloak::Keycloak;
use berth_providers::registry::RegistryConfig;
use berth_providers::registry::harbor::Harbor;
use berth_providers::storage::StoreConfig;
use tracing::warn;

use super::super::part::Part;
use super::identity::Identity;
use super::part::OutsidePart;
pub use super::problem::Problem;
use super::registry::Registry;
use super::storage::Storage;

/// A part on its provider, or why the provider cannot be used.
pub type Connection = Result<Arc<dyn OutsidePart>, Problem>;

/// Every part the settings enable, on its provider (a part the platform does not enable is
/// absent).
#[derive(Clone, Default)]
pub struct Connected {
    parts: Vec<(Part, Connection)>,
    /// Changes whenever any connection's settings or credentials change.
    pub fingerprint: u64,
}

impl Connected {
    /// The part on its provider; None when the platform does not enable it.
    pub fn part(&self, part: Part) -> Option<&Connection> {
        self.parts.iter().find(|(p, _)| *p == part).map(|(_, c)| c)
    }
}

/// Connects providers from the settings, and remembers the connections until the settings or the
/// admin Secrets change.
pub struct Connections {
    secrets: Store<KubeSecret>,
    namespace: String,
    current: Mutex<Option<Arc<Connected>>>,
}

impl Connections {
    /// `secrets` is a reflector of the Secrets in `namespace`, the operator's own namespace: admin
    /// credentials are read from nowhere else.
    pub fn new(secrets: Store<KubeSecret>, namespace: String) -> Self {
        Self {
            secrets,
            namespace,
            current: Mutex::new(None),
        }
    }

    /// The operator's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The providers for these settings.
    pub fn get(&self, settings: &PlatformSettingsSpec) -> Arc<Connected> {
        let fingerprint = self.fingerprint(settings);
        if let Ok(current) = self.current.lock()
            && let Some(c) = current.as_ref()
            && c.fingerprint == fingerprint
        {
            return c.clone();
        }
        let connected = Arc::new(self.connect(settings, fingerprint));
        if let Ok(mut current) = self.current.lock() {
            *current = Some(connected.clone());
        }
        connected
    }

    fn secret(&self, reference: &AdminSecretRef) -> Option<Arc<KubeSecret>> {
        self.secrets
            .get(&ObjectRef::new(&reference.name).within(&self.namespace))
    }

    fn fingerprint(&self, settings: &PlatformSettingsSpec) -> u64 {
        let mut h = DefaultHasher::new();
        let refs = [
            settings.storage.as_ref().map(|s| &s.admin_secret_ref),
            settings.identity.as_ref().map(|s| &s.admin_secret_ref),
            settings.registry.as_ref().map(|s| &s.admin_secret_ref),
        ];
        for r in refs.into_iter().flatten() {
            r.name.hash(&mut h);
            self.secret(r)
                .and_then(|s| s.metadata.resource_version.clone())
                .hash(&mut h);
        }
        serde_json::to_string(&(&settings.storage, &settings.identity, &settings.registry))
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    }

    /// The values of `keys` in the admin Secret, or a problem naming what is missing.
    fn read(
        &self,
        part: &str,
        field: &str,
        reference: &AdminSecretRef,
        keys: &[&str],
    ) -> Result<Vec<Secret>, Problem> {
        let missing = |what: String| {
            Problem::new(
                format!("{part}AdminSecretMissing"),
                format!(
                    "{what}: create it in namespace {} with the key(s) {} (PlatformSettings {field}.adminSecretRef)",
                    self.namespace,
                    keys.join(", ")
                ),
            )
        };
        let Some(secret) = self.secret(reference) else {
            return Err(missing(format!(
                "Secret {}/{} not found",
                self.namespace, reference.name
            )));
        };
        let data = secret.data.clone().unwrap_or_default();
        let strings = secret.string_data.clone().unwrap_or_default();
        keys.iter()
            .map(|k| {
                data.get(*k)
                    .and_then(|v| String::from_utf8(v.0.clone()).ok())
                    .or_else(|| strings.get(*k).cloned())
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .ok_or_else(|| {
                        missing(format!(
                            "Secret {}/{} has no key {k}",
                            self.namespace, reference.name
                        ))
                    })
            })
            .collect()
    }

    fn connect(&self, settings: &PlatformSettingsSpec, fingerprint: u64) -> Connected {
        let storage = settings.storage.as_ref().map(|s| {
            let keys: &[&str] = match s.provider {
                StorageProvider::Garage => &["adminToken"],
                StorageProvider::Minio | StorageProvider::Aws => {
                    &["accessKeyId", "secretAccessKey"]
                }
            };
            let values = self.read("Storage", "storage", &s.admin_secret_ref, keys)?;
            let (id, secret) = match values.as_slice() {
                [token] => (token.expose().to_owned(), Secret::new("")),
                [id, secret] => (id.expose().to_owned(), secret.clone()),
                _ => return Err(Problem::new("StorageAdminSecretMissing", "unreachable")),
            };
            let config = StoreConfig {
                endpoint: s.endpoint.clone(),
                admin_endpoint: s.admin_endpoint.clone(),
                region: s.region.clone(),
                admin_id: id,
                admin_secret: secret,
            };
            berth_providers::storage::connect(s.provider.as_str(), config)
                .map(|store| Arc::new(Storage(Arc::from(store))) as Arc<dyn OutsidePart>)
                .map_err(|e| Problem::from_error("Storage", "storage", &e))
        });
        let identity = settings.identity.as_ref().map(|s| {
            let values = self.read(
                "Identity",
                "identity",
                &s.admin_secret_ref,
                &["username", "password"],
            )?;
            let [username, password] = values.as_slice() else {
                return Err(Problem::new("IdentityAdminSecretMissing", "unreachable"));
            };
            let config = IdentityConfig {
                url: s.url.clone(),
                realm: s.realm.clone(),
                admin_realm: s.admin_realm.clone(),
                admin_username: username.expose().to_owned(),
                admin_password: password.clone(),
            };
            Keycloak::new(config)
                .map(|k| Arc::new(Identity(Arc::new(k))) as Arc<dyn OutsidePart>)
                .map_err(|e| Problem::from_error("Identity", "identity", &e))
        });
        let registry = settings.registry.as_ref().map(|s| {
            let values = self.read(
                "Registry",
                "registry",
                &s.admin_secret_ref,
                &["username", "password"],
            )?;
            let [username, password] = values.as_slice() else {
                return Err(Problem::new("RegistryAdminSecretMissing", "unreachable"));
            };
            let config = RegistryConfig {
                url: s.url.clone(),
                admin_username: username.expose().to_owned(),
                admin_password: password.clone(),
            };
            Harbor::new(config)
                .map(|h| Arc::new(Registry(Arc::new(h))) as Arc<dyn OutsidePart>)
                .map_err(|e| Problem::from_error("Registry", "registry", &e))
        });
        let parts: Vec<(Part, Connection)> = [
            (Part::Storage, storage),
            (Part::Identity, identity),
            (Part::Registry, registry),
        ]
        .into_iter()
        .filter_map(|(part, connection)| connection.map(|c| (part, c)))
        .collect();
        // Once per change of the settings or the admin Secrets: the conditions say it in Berth's
        // words, the log keeps what the provider said.
        for (part, connection) in &parts {
            if let Err(problem) = connection {
                warn!(part = part.label(), reason = %problem.reason, "provider not usable: {}", problem.log_text());
            }
        }
        Connected { parts, fingerprint }
    }
}
