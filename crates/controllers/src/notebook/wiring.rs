//! What the build adds to a notebook beyond its spec, from what was observed: the project's
//! account and pull secret (`account`), the data volumes' mounts and claims (`volumes`), and
//! whether the notebook is held (a volume cannot be mounted, or the notebook does not fit the
//! quota): a held notebook's StatefulSet has 0 replicas and no claim that does not exist yet is
//! made, so nothing is half-applied and no pod waits broken.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;

use super::account::{self, Identity};
use super::build::CONTAINER;
use super::validate::Validated;
use super::volumes;

/// What the build adds, from observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Wiring {
    pub identity: Identity,
    /// The live StorageClass of each claim Berth made for a data volume, by claim name.
    pub volume_classes: BTreeMap<String, String>,
    /// Claims Berth has not made (the home's and new volumes'), by name: absent, or held by a
    /// claim that is not Berth's for it.
    pub absent: BTreeSet<String>,
    /// The notebook may not start now: 0 replicas, and no absent claim is made.
    pub held: bool,
    /// Held while its pod still runs (a resize that does not fit, a volume added that cannot be
    /// mounted): nothing is applied, so the pod keeps running as it is until the change can be
    /// made whole.
    pub keep_running: bool,
}

impl Wiring {
    /// Whether the build makes the claim `name`.
    pub fn makes(&self, name: &str) -> bool {
        !(self.held && self.absent.contains(name))
    }

    /// Adds the account, the pull secrets and the data volumes to the StatefulSet, and holds it.
    pub fn apply(&self, nb: &Validated, sts: &mut StatefulSet) {
        let Some(spec) = sts.spec.as_mut() else {
            return;
        };
        if self.held {
            spec.replicas = Some(0);
        }
        if let Some(pod) = spec.template.spec.as_mut() {
            account::wire(pod, &self.identity);
            volumes::mount(pod, CONTAINER, &nb.volumes);
        }
    }
}
