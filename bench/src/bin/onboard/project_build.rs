//! The one place the benchmark uses the Project controller's internals: the children Berth builds
//! for a Project. The floor applies exactly these; Kubeflow's Profiles copy their quota and
//! namespace labels from them, so the three variants do the same work.

use anyhow::Result;
use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};

use berth_api::{PlatformSettingsSpec, Project};
use berth_controllers::discovery;
use berth_controllers::project::FoundKinds;
use berth_controllers::project::build::{Environment, build};
use berth_controllers::project::validate::{Known, validate};

/// What the operator's builder knows about the cluster, found the way the operator finds it: the
/// optional kinds discovery finds (an admin-tier policy where network-policy-api is served, Istio's
/// AuthorizationPolicy), the API server's addresses (kept out of tenants' egress), and the
/// console's namespace (`berth-system`, let into every project). With these the floor builds and
/// applies exactly the children the operator does, the console's NetworkPolicy included; no
/// platform namespace is a project's here.
pub async fn environment(client: &Client) -> Environment {
    let found =
        FoundKinds::from_answers(discovery::find_until_answered(client, &FoundKinds::ASKED).await);
    Environment {
        authorization_policy: found.authorization_policy.kind().cloned(),
        admin_network_policy: found.admin_tier().cloned(),
        api_server: discovery::api_server_addresses_until_answered(client).await,
        untrusted: Default::default(),
        adopted: false,
        console_namespace: Some("berth-system".to_owned()),
    }
}

/// One child object and the API to apply it through.
pub struct Child {
    pub api: Api<DynamicObject>,
    pub object: DynamicObject,
}

/// The children Berth builds for `project` under `settings` in `env`, in apply order (the
/// namespace first), with the APIs `client` reaches them through.
pub fn children(
    project: &Project,
    settings: &PlatformSettingsSpec,
    env: &Environment,
    client: &Client,
) -> Result<Vec<Child>> {
    let validated = validate(project, settings, "berth-system", Known::default())
        .map_err(|invalid| anyhow::anyhow!(invalid.message))?;
    let built = build(&validated, settings, env)?;
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
