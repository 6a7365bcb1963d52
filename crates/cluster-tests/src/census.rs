//! A census of what Berth created in the cluster for each Project, by label *and* owner, so that
//! tests can show that nothing was duplicated or orphaned after a fault.
//!
//! Object names cannot show a duplicate: the API server already makes names unique, so a
//! duplicate is a second object of the same role under another name. The census therefore counts
//! each Project's children per kind, selected by `berth.dev/project=<name>` and checked to be
//! controlled by that Project's UID, and tests compare those counts with a reference Project that
//! onboarded undisturbed. Anything carrying Berth's labels that belongs to no live Project, or to
//! another Project than its label says, is a problem.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use kube::api::{ListParams, ObjectMeta};
use kube::{Client, ResourceExt};

use berth_api::Project;
use berth_api::labels::{MANAGED_BY, MANAGED_BY_VALUE, OWNER_UID, PROJECT};
use berth_controllers::project::FoundKinds;
use berth_controllers::{discovery, kinds};

/// Children per kind, for one Project.
pub type KindCounts = BTreeMap<String, usize>;

/// What the census found.
#[derive(Debug, Default)]
pub struct Census {
    /// Per Project name: how many children of each kind carry its label and are controlled by it.
    pub per_project: BTreeMap<String, KindCounts>,
    /// Objects with Berth's labels that name no live Project, or whose controller is not the
    /// Project their label names, or that have more than one controller.
    pub problems: Vec<String>,
}

impl Census {
    /// Takes the census of every kind the Project controller creates, with the optional kinds
    /// (Istio's, network-policy-api's) that this cluster serves, found as the operator finds them.
    pub async fn take(client: &Client, projects: &[Project]) -> Result<Self> {
        let uids: BTreeMap<String, String> = projects
            .iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect();
        let mut census = Census::default();
        for name in uids.keys() {
            census.per_project.insert(name.clone(), KindCounts::new());
        }
        let selector = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));
        let found = FoundKinds::from_answers(
            discovery::find_until_answered(client, &FoundKinds::ASKED).await,
        );
        for kind in kinds::project_children_found(&found.served()) {
            let kind_name = kind.resource.kind.clone();
            for object in kind.api(client, None).list(&selector).await? {
                census.record(&kind_name, &object.metadata, &uids);
            }
        }
        Ok(census)
    }

    fn record(&mut self, kind: &str, meta: &ObjectMeta, uids: &BTreeMap<String, String>) {
        let what = format!(
            "{kind} {}/{}",
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or("")
        );
        let Some(project) = meta.labels.as_ref().and_then(|l| l.get(PROJECT)) else {
            // Berth's shared objects (e.g. ClusterRoles of the platform) belong to no Project.
            return;
        };
        // The owner: a controller ownerReference or, on a Project's namespace and the objects in
        // it (which carry none, so the garbage collector never takes tenant data), the
        // berth.dev/owner-uid label. An object with both must name the same UID in both.
        let mut controllers: Vec<&str> = meta
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid.as_str())
            .chain(
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(OWNER_UID))
                    .map(String::as_str),
            )
            .collect();
        controllers.sort_unstable();
        controllers.dedup();
        match uids.get(project) {
            None => self.problems.push(format!(
                "{what} is labelled for {project}, which does not exist"
            )),
            Some(uid) if controllers != [uid.as_str()] => self.problems.push(format!(
                "{what} is labelled for {project} (uid {uid}) but controlled by {controllers:?}"
            )),
            Some(_) => {
                *self
                    .per_project
                    .entry(project.clone())
                    .or_default()
                    .entry(kind.to_owned())
                    .or_default() += 1;
            }
        }
    }

    /// Every difference from `reference`'s counts, per Project (besides `reference` itself), plus
    /// the problems: empty when every Project has exactly what the reference has.
    pub fn differences(&self, reference: &str) -> Vec<String> {
        let mut out = self.problems.clone();
        let Some(want) = self.per_project.get(reference) else {
            out.push(format!("no reference project {reference}"));
            return out;
        };
        for (project, got) in &self.per_project {
            if got != want {
                let kinds: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
                let diff: Vec<String> = kinds
                    .into_iter()
                    .filter(|k| got.get(*k) != want.get(*k))
                    .map(|k| {
                        format!(
                            "{k}: {} (reference {})",
                            got.get(k).unwrap_or(&0),
                            want.get(k).unwrap_or(&0)
                        )
                    })
                    .collect();
                out.push(format!("{project}: {}", diff.join(", ")));
            }
        }
        out
    }
}
