//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder runs
//! controllers. The holder renews the lease; a replica that cannot renew it in time exits, and
//! another takes over once it expires.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{info, warn};

/// One replica's view of the lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    /// Takes the lease if it is free or expired, or renews it if it is ours. Returns whether we hold it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(15);
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
                let holder_empty = spec
                    .holder_identity
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty();
                let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(seconds));
                let expired = spec
                    .renew_time
                    .as_ref()
                    .is_none_or(|t| t.0 + SignedDuration::from_secs(held_for) < now);
                if !(ours || holder_empty || expired) {
                    return Ok(false);
                }
                if !ours {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(MicroTime(now));
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // The resourceVersion in `lease` makes this a compare-and-swap.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(false) if !announced => {
                    info!(lease = %self.name, "another replica leads; standing by");
                    announced = true;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "could not read or take the lease"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the lease until renewing fails for longer than the lease lasts; then returns, and the
    /// caller must stop acting as leader.
    pub async fn hold(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    warn!(lease = %self.name, "another replica took the lease");
                    return;
                }
                Err(e) => warn!(error = %e, "could not renew the lease"),
            }
            if last_renewed.elapsed() > self.duration {
                warn!(lease = %self.name, "could not renew the lease in time");
                return;
            }
        }
    }

    /// Gives the lease up on a clean shutdown, so another replica need not wait for it to expire.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}
