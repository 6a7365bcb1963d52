//! The outside parts of a Project (its bucket, OIDC client and registry project) as the pure
//! modules see them: which exist, what their conditions, Secrets and annotations are called, and
//! what one reconcile made of each. No IO.

use berth_api::conditions::Status;
use berth_api::project::{
    ADOPT_IDENTITY_ANNOTATION, ADOPT_REGISTRY_ANNOTATION, ADOPT_STORAGE_ANNOTATION,
};
use berth_api::{PlatformSettingsSpec, Project};

/// One of the outside parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Storage,
    Identity,
    Registry,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Storage, Part::Identity, Part::Registry];

    /// The condition type.
    pub fn condition(self) -> &'static str {
        match self {
            Part::Storage => "StorageReady",
            Part::Identity => "IdentityReady",
            Part::Registry => "RegistryReady",
        }
    }

    /// The prefix of its condition reasons: `Storage`, `Identity`, `Registry`.
    pub fn label(self) -> &'static str {
        match self {
            Part::Storage => "Storage",
            Part::Identity => "Identity",
            Part::Registry => "Registry",
        }
    }

    /// The settings field that configures it.
    pub fn setting(self) -> &'static str {
        match self {
            Part::Storage => "storage",
            Part::Identity => "identity",
            Part::Registry => "registry",
        }
    }

    /// The Secret it writes in the project's namespace.
    pub fn secret_name(self) -> &'static str {
        use berth_api::providers::*;
        match self {
            Part::Storage => STORAGE_SECRET,
            Part::Identity => IDENTITY_SECRET,
            Part::Registry => REGISTRY_SECRET,
        }
    }

    /// The Project annotation that asks for a new credential.
    pub fn rotate_annotation(self) -> &'static str {
        use berth_api::providers::*;
        match self {
            Part::Storage => ROTATE_STORAGE_ANNOTATION,
            Part::Identity => ROTATE_IDENTITY_ANNOTATION,
            Part::Registry => ROTATE_REGISTRY_ANNOTATION,
        }
    }

    /// The admin-only Project annotation that adopts what exists under the part's name.
    pub fn adopt_annotation(self) -> &'static str {
        match self {
            Part::Storage => ADOPT_STORAGE_ANNOTATION,
            Part::Identity => ADOPT_IDENTITY_ANNOTATION,
            Part::Registry => ADOPT_REGISTRY_ANNOTATION,
        }
    }

    /// What it is called in messages: `bucket`, `OIDC client`, `registry project`.
    pub fn noun(self) -> &'static str {
        match self {
            Part::Storage => "bucket",
            Part::Identity => "OIDC client",
            Part::Registry => "registry project",
        }
    }

    /// Whether the platform enables it and the project has not opted out.
    pub fn enabled(self, project: &Project, settings: &PlatformSettingsSpec) -> bool {
        let spec = &project.spec;
        match self {
            Part::Storage => {
                settings.storage.is_some()
                    && spec.storage.as_ref().and_then(|s| s.enabled) != Some(false)
            }
            Part::Identity => {
                settings.identity.is_some()
                    && spec.idp.as_ref().and_then(|s| s.enabled) != Some(false)
            }
            Part::Registry => {
                settings.registry.is_some()
                    && spec.registry.as_ref().and_then(|s| s.enabled) != Some(false)
            }
        }
    }
}

/// What one part came to in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartState {
    /// Not enabled: its condition is removed.
    Disabled,
    /// Waiting out a backoff, or in sync and not checked again yet: its condition stays.
    Unchanged,
    /// Its condition.
    Set(Status, String, String),
}
