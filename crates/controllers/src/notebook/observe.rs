//! What the build needs to know of the cluster beyond the notebook: the data volumes' claims, the
//! project's account, pull secret, LimitRange and ResourceQuota, and the StatefulSet's refusals.
//! Reads the child caches first; the API server only for what the caches cannot hold (claims
//! Berth did not make, the pods that use them, a StatefulSet's FailedCreate Events), and only
//! while the notebook is not running yet.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, LimitRange, PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use tracing::warn;

use berth_api::project::ResourceList;
use berth_reconcile::Error;

use super::Context;
use super::account;
use super::quota::{self, Usage};
use super::validate::{Invalid, Validated};
use super::volumes;
use super::wiring::Wiring;
use crate::kinds;
use crate::names;

/// How recent a FailedCreate Event must be to say why the pod is missing.
const RECENT_REFUSAL_SECS: i64 = 300;

/// The wiring of `nb`, and why it is held or cannot start now, if it is.
pub async fn observe(
    ctx: &Context,
    nb: &Validated,
    home_absent: bool,
    pod: Option<&Pod>,
) -> Result<(Wiring, Option<Invalid>), Error> {
    let namespace = nb.namespace.as_str();
    let mut wiring = Wiring {
        identity: account::observe(&ctx.children, namespace),
        ..Default::default()
    };
    if home_absent {
        wiring.absent.insert(nb.home.clone());
    }
    let live_sts: Option<StatefulSet> = ctx
        .children
        .get(&kinds::stateful_set().resource, Some(namespace), &nb.name)
        .and_then(|o| o.parse());
    let pod_ready = pod.is_some_and(ready);
    let mut blocked: Option<Invalid> = None;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let mut others: Option<Vec<Pod>> = None;

    for volume in &nb.volumes {
        let cached: Option<PersistentVolumeClaim> = ctx
            .children
            .get(
                &kinds::notebook_home().resource,
                Some(namespace),
                &volume.claim,
            )
            .and_then(|o| o.parse());
        if volume.new.is_some() {
            let live = match cached {
                Some(c) => Some(c),
                // Not Berth's (the cache holds Berth's only): one read, never a takeover.
                None => claims.get_opt(&volume.claim).await?,
            };
            match live {
                None => {
                    wiring.absent.insert(volume.claim.clone());
                }
                Some(c) if volumes::is_ours(&c, &nb.name, &volume.name) => {
                    if let Some(class) = c.spec.and_then(|s| s.storage_class_name) {
                        wiring.volume_classes.insert(volume.claim.clone(), class);
                    }
                }
                Some(_) => {
                    wiring.absent.insert(volume.claim.clone());
                    blocked.get_or_insert(volumes::taken(&nb.name, volume));
                }
            }
            continue;
        }
        // An existing claim: checked while the notebook is to start and does not run with it.
        if nb.stopped
            || blocked.is_some()
            || (pod_ready && mounts(live_sts.as_ref(), &volume.claim))
        {
            continue;
        }
        let claim = match cached {
            Some(c) => Some(c),
            None => claims.get_opt(&volume.claim).await?,
        };
        if others.is_none() {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
            let own = names::kube::notebook_pod(&nb.name);
            others = Some(
                pods.list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.name.as_deref() != Some(own.as_str()))
                    .collect(),
            );
        }
        let users: Vec<&Pod> = others.iter().flatten().collect();
        if let Some(problem) = volumes::check_existing(volume, claim.as_ref(), &users) {
            blocked = Some(problem);
        }
    }

    if !nb.stopped && blocked.is_none() {
        blocked = fits(ctx, nb, &wiring, live_sts.as_ref(), pod).map(|s| Invalid {
            reason: "QuotaExceeded",
            message: format!(
                "{}; stop another notebook, or raise the Project's spec.resourceQuota.hard (its owners may, within the platform's maximum)",
                s.describe()
            ),
        });
    }
    wiring.held = blocked.is_some();
    let alive = pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none());
    if let Some(b) = blocked.as_mut().filter(|_| alive && !nb.stopped) {
        wiring.keep_running = true;
        b.message
            .push_str("; meanwhile the notebook keeps running as it was");
    }

    // The fallback: a quota Berth does not read (or counted otherwise) refused the pod.
    if !nb.stopped && blocked.is_none() && pod.is_none() && live_sts.is_some() {
        blocked = refusal(ctx, nb).await;
    }
    Ok((wiring, blocked))
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the live StatefulSet's pod template mounts claim `claim`.
fn mounts(sts: Option<&StatefulSet>, claim: &str) -> bool {
    sts.and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| {
            vs.iter().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
        })
}

/// The resources of the notebook container of a pod template.
fn template_resources(sts: &StatefulSet) -> (ResourceList, ResourceList) {
    let resources = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| {
            s.containers
                .iter()
                .find(|c| c.name == super::build::CONTAINER)
        })
        .and_then(|c| c.resources.clone())
        .unwrap_or_default();
    (
        resources.requests.unwrap_or_default(),
        resources.limits.unwrap_or_default(),
    )
}

/// The first resource the notebook does not fit in the project's ResourceQuota, if any.
fn fits(
    ctx: &Context,
    nb: &Validated,
    wiring: &Wiring,
    live_sts: Option<&StatefulSet>,
    pod: Option<&Pod>,
) -> Option<quota::Shortfall> {
    let namespace = nb.namespace.as_str();
    let quota: ResourceQuota = ctx
        .children
        .get(
            &kinds::notebook_quota().resource,
            Some(namespace),
            names::kube::QUOTA,
        )?
        .parse()?;
    let limit_range: Option<LimitRange> = ctx
        .children
        .get(
            &kinds::notebook_limits().resource,
            Some(namespace),
            names::kube::LIMITS,
        )
        .and_then(|o| o.parse());
    let mut need = quota::pod_usage(
        &nb.resources.requests,
        &nb.resources.limits,
        limit_range.as_ref(),
    );
    let mut claims: Vec<(&str, Option<&str>)> = Vec::new();
    if wiring.absent.contains(&nb.home) {
        claims.push((nb.home_size.as_str(), nb.storage_class.as_deref()));
    }
    for v in &nb.volumes {
        if let Some(new) = v.new.as_ref().filter(|_| wiring.absent.contains(&v.claim)) {
            claims.push((new.size.as_str(), new.storage_class.as_deref()));
        }
    }
    quota::add(&mut need, &quota::claims_usage(claims));
    // What the notebook's own pod holds comes back when it is replaced.
    let own: Usage = match (pod, live_sts) {
        (Some(p), Some(sts)) if p.metadata.deletion_timestamp.is_none() => {
            let (requests, limits) = template_resources(sts);
            quota::pod_usage(&requests, &limits, limit_range.as_ref())
        }
        _ => Usage::new(),
    };
    quota::shortfall(&need, &own, &[&quota])
}

/// The StatefulSet controller's latest FailedCreate Event for the notebook's StatefulSet, if it
/// is a quota refusal of the last few minutes: the API server's words, with its numbers.
async fn refusal(ctx: &Context, nb: &Validated) -> Option<Invalid> {
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &nb.namespace);
    let selector = format!(
        "involvedObject.kind=StatefulSet,involvedObject.name={},reason=FailedCreate",
        nb.name
    );
    let list = match events.list(&ListParams::default().fields(&selector)).await {
        Ok(list) => list,
        Err(e) => {
            warn!(notebook = %format!("{}/{}", nb.namespace, nb.name), error = %e, "could not read the StatefulSet's Events");
            return None;
        }
    };
    let now = Timestamp::now();
    let latest = list
        .items
        .into_iter()
        .filter_map(|e| {
            let at = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))?;
            Some((at, e.message.unwrap_or_default()))
        })
        .filter(|(at, message)| {
            quota::is_quota_refusal(message)
                && now.as_second() - at.as_second() <= RECENT_REFUSAL_SECS
        })
        .max_by_key(|(at, _)| *at)?;
    let words = latest.1.split("exceeded quota: ").nth(1)?;
    Some(Invalid {
        reason: "QuotaExceeded",
        message: format!(
            "the notebook's pod is refused: exceeded quota: {}; stop another notebook, or raise the Project's spec.resourceQuota.hard (its owners may, within the platform's maximum)",
            words.chars().take(512).collect::<String>()
        ),
    })
}

/// Whether a notebook is held for quota (its Ready condition says QuotaExceeded): such notebooks
/// are woken by every change of the namespace's ResourceQuota.
pub fn waits_for_quota(notebook: &berth_api::notebook::Notebook) -> bool {
    notebook.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == super::status::READY && c.reason == "QuotaExceeded")
    })
}

/// The notebooks of `namespace` in `store`.
pub fn in_namespace<'a>(
    store: &'a [std::sync::Arc<berth_api::notebook::Notebook>],
    namespace: &'a str,
) -> impl Iterator<Item = &'a std::sync::Arc<berth_api::notebook::Notebook>> + 'a {
    store
        .iter()
        .filter(move |n| n.namespace().as_deref() == Some(namespace))
}
