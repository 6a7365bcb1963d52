//! The one place the benchmark uses the Project controller's internals: the children Berth builds
//! for a Project. The floor applies exactly these; Kubeflow's Profiles copy their quota and
//! namespace labels from them, so the three variants do the same work.

use anyhow::Result;
use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};

use berth_api::{PlatformSettingsSpec, Project};
use berth_controllers::project::build::{Environment, build};
use berth_controllers::project::validate::{Known, validate};

/// One child object and the API to apply it through.
pub struct Child {
    pub api: Api<DynamicObject>,
    pub object: DynamicObject,
}

/// The children Berth builds for `project` under `settings`, in apply order (the namespace first),
/// with the APIs `client` reaches them through.
pub fn children(
    project: &Project,
    settings: &PlatformSettingsSpec,
    client: &Client,
) -> Result<Vec<Child>> {
    let validated = validate(project, settings, "berth-system", Known::default())
        .map_err(|invalid| anyhow::anyhow!(invalid.message))?;
    let built = build(&validated, settings, &Environment::default())?;
    Ok(built
        .children
        .into_iter()
        .map(|child| {
            let ns = child.object.namespace();
            Child {
                api: child.kind.api(client, ns.as_deref()),
                object: child.object,
            }
        })
        .collect())
}
