//! Leader election on a coordination.k8s.io Lease, so two replicas are safe: only the holder runs
//! controllers. It follows client-go's `leaderelection` package (the semantics every Kubernetes
//! controller relies on), with its tryAcquireOrRenew step, and is stricter in one place:
//!
//! - **Expiry by local observation.** A replica records, on its own monotonic clock, when it last
//!   saw the lease record change. It takes the lease only once `leaseDurationSeconds` (the holder's)
//!   have passed since then with no change. No other node's timestamp is compared with the local
//!   clock, so clock skew between nodes cannot make two leaders.
//! - **Renew deadline < lease duration**, and the retry period below both ([`Timing::new`] refuses
//!   anything else).
//! - **Every call has a timeout**: each acquire or renew attempt is cut off at its deadline.
//! - **The leader stops before anyone can take over.** The holder's renewals count from when each
//!   successful attempt *started*; when none succeeds within the renew deadline of that start,
//!   [`Elector::hold`] returns and the caller stops acting (the operator exits). A standby waits a
//!   full lease duration from the moment it saw that renewal, which is after it started, so the old
//!   leader is gone `lease duration - renew deadline` before the standby may take over. (client-go
//!   counts the deadline from the end of the previous round, which a slow renewal can stretch.)
//!
//! The two sides in numbers with the defaults (15 s, 10 s, 2 s): the leader renews every 2 s;
//! a hung renewal makes it stop at most 10 s after its last good one began; a standby takes over
//! no sooner than 15 s after it saw that good one.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a lease lasts, how soon its holder must have renewed it, and how often to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a standby waits, after it last saw the lease change, before taking it over.
    pub lease_duration: Duration,
    /// How long the holder may go without renewing before it stops acting.
    pub renew_deadline: Duration,
    /// How often the holder renews and a standby looks.
    pub retry_period: Duration,
}

impl Timing {
    /// Checks client-go's constraints: lease duration > renew deadline > 1.2 × retry period.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, String> {
        if lease_duration <= renew_deadline {
            return Err(format!(
                "the lease duration ({lease_duration:?}) must be longer than the renew deadline ({renew_deadline:?}), or a standby could take over while the leader still acts"
            ));
        }
        if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
            return Err(format!(
                "the renew deadline ({renew_deadline:?}) must be longer than 1.2 × the retry period ({retry_period:?})"
            ));
        }
        if lease_duration.as_secs() < 1 || lease_duration.subsec_nanos() != 0 {
            return Err("the lease duration must be whole seconds".into());
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }
}

impl Default for Timing {
    /// client-go's defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this replica last saw of the lease, and when (on its own clock).
#[derive(Clone, Debug)]
struct Observed {
    /// The lease as read or written last, for its resourceVersion and record.
    lease: Option<Lease>,
    /// The record's JSON, to tell a change.
    raw: String,
    /// When the record was last seen to change.
    at: Instant,
}

impl Observed {
    fn spec(&self) -> Option<&LeaseSpec> {
        self.lease.as_ref().and_then(|l| l.spec.as_ref())
    }

    fn holder(&self) -> &str {
        self.spec()
            .and_then(|s| s.holder_identity.as_deref())
            .unwrap_or_default()
    }

    /// Whether the holder's term, counted from when this replica saw the record change, has not
    /// run out at `now`.
    fn valid(&self, now: Instant) -> bool {
        let seconds = self
            .spec()
            .and_then(|s| s.lease_duration_seconds)
            .unwrap_or(0)
            .max(0);
        self.at + Duration::from_secs(u64::try_from(seconds).unwrap_or(0)) > now
    }

    /// Records `lease` as seen at `now`; the observation time moves only if the record changed.
    fn see(&mut self, lease: Lease, now: Instant) {
        let raw = serde_json::to_string(&lease.spec).unwrap_or_default();
        if raw != self.raw || self.lease.is_none() {
            self.raw = raw;
            self.at = now;
        }
        self.lease = Some(lease);
    }

    /// Records a write of ours: a change, seen now.
    fn wrote(&mut self, lease: Lease, now: Instant) {
        self.raw = serde_json::to_string(&lease.spec).unwrap_or_default();
        self.at = now;
        self.lease = Some(lease);
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    observed: Mutex<Observed>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: Mutex::new(Observed {
                lease: None,
                raw: String::new(),
                at: Instant::now(),
            }),
        }
    }

    fn observed(&self) -> Observed {
        self.observed
            .lock()
            .map(|o| o.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn update_observed(&self, change: impl FnOnce(&mut Observed)) {
        match self.observed.lock() {
            Ok(mut o) => change(&mut o),
            Err(e) => change(&mut e.into_inner()),
        }
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15)
    }

    /// client-go's tryAcquireOrRenew: renew the lease if we hold it, take it if it is free or its
    /// holder let it run out (by our observation), else report that another holds it.
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let wall = MicroTime(Timestamp::now());
        let observed = self.observed();

        // 1. The fast path for the holder: update the record we saw last.
        if observed.holder() == self.identity
            && observed.valid(now)
            && let Some(mut lease) = observed.lease.clone()
        {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(wall.clone());
            spec.lease_duration_seconds = Some(self.seconds());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(written) => {
                    self.update_observed(|o| o.wrote(written, now));
                    return Ok(true);
                }
                Err(e) => {
                    warn!(error = %e, "could not renew the lease on the fast path; reading it")
                }
            }
        }

        // 2. Read the lease, or create it.
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(wall.clone()),
                    renew_time: Some(wall),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(written) => {
                    self.update_observed(|o| o.wrote(written, now));
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };

        // 3. A changed record restarts the clock of its term.
        self.update_observed(|o| o.see(lease.clone(), now));
        let observed = self.observed();
        let ours = observed.holder() == self.identity;
        if !observed.holder().is_empty() && observed.valid(now) && !ours {
            return Ok(false);
        }

        // 4. Free, run out, or ours: write ourselves in.
        let mut lease = lease;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if !ours {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(wall.clone());
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(wall);
        spec.lease_duration_seconds = Some(self.seconds());
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.update_observed(|o| o.wrote(written, now));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease; returns when the successful attempt started,
    /// which [`Elector::hold`] counts the first renew deadline from.
    pub async fn acquire(&self) -> Instant {
        let mut announced = false;
        loop {
            let started = Instant::now();
            let attempt =
                tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(true)) => {
                    info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return started;
                }
                Ok(Ok(false)) if !announced => {
                    info!(lease = %self.name, holder = %self.observed().holder(), "another replica leads; standing by");
                    announced = true;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => warn!(error = %e, "could not read or take the lease"),
                Err(_) => {
                    warn!(timeout = ?self.timing.renew_deadline, "reading or taking the lease timed out")
                }
            }
            tokio::time::sleep(jittered(self.timing.retry_period)).await;
        }
    }

    /// Renews the lease every retry period. Returns (and the caller must stop acting at once) when
    /// no renewal succeeded within the renew deadline of the start of the last one that did, or
    /// when another replica holds the lease. `since` is when the acquiring attempt started.
    pub async fn hold(&self, since: Instant) {
        let mut valid_until = since + self.timing.renew_deadline;
        loop {
            let next = (Instant::now() + self.timing.retry_period).min(valid_until);
            tokio::time::sleep_until(next).await;
            if Instant::now() >= valid_until {
                warn!(lease = %self.name, deadline = ?self.timing.renew_deadline, "could not renew the lease within the renew deadline");
                return;
            }
            let started = Instant::now();
            match tokio::time::timeout_at(valid_until, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => valid_until = started + self.timing.renew_deadline,
                Ok(Ok(false)) => {
                    let holder = self.observed().holder().to_owned();
                    if !holder.is_empty() && holder != self.identity {
                        warn!(lease = %self.name, %holder, "another replica holds the lease");
                        return;
                    }
                }
                Ok(Err(e)) => warn!(error = %e, "could not renew the lease; trying again"),
                Err(_) => {
                    warn!(lease = %self.name, deadline = ?self.timing.renew_deadline, "renewing the lease hung past the renew deadline");
                    return;
                }
            }
        }
    }

    /// Gives the lease up on a clean shutdown (holder cleared, one-second duration), so a standby
    /// need not wait for it to run out. Bounded by the renew deadline; failing is harmless.
    pub async fn release(&self) {
        let release = async {
            let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
                return;
            };
            let Some(spec) = lease.spec.as_mut() else {
                return;
            };
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return;
            }
            let now = MicroTime(Timestamp::now());
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now.clone());
            spec.acquire_time = Some(now);
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        };
        if tokio::time::timeout(self.timing.renew_deadline, release)
            .await
            .is_err()
        {
            warn!("releasing the lease timed out");
        }
    }
}

/// `period` plus up to 20 % more (client-go's jitter factor 1.2), so replicas do not move in step.
fn jittered(period: Duration) -> Duration {
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    );
    period + period.mul_f64((nanos % 1000) as f64 / 5000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, seconds: i32, renewed: &str) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(seconds),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn timing_follows_client_go() {
        assert!(
            Timing::new(
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
            .is_ok()
        );
        assert!(
            Timing::new(
                Duration::from_secs(10),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
            .is_err()
        );
        assert!(
            Timing::new(
                Duration::from_secs(15),
                Duration::from_secs(2),
                Duration::from_secs(2)
            )
            .is_err()
        );
    }

    /// A record whose renewTime lies far in the past or future (another node's clock) does not
    /// matter: the term runs from when this replica saw it change.
    #[test]
    fn expiry_is_judged_by_local_observation_time() {
        let start = Instant::now();
        let mut observed = Observed {
            lease: None,
            raw: String::new(),
            at: start,
        };
        // Renewed "in 1970" by a node with a broken clock, seen just now: still valid.
        observed.see(lease("a", 15, "1970-01-01T00:00:00Z"), start);
        assert!(observed.valid(start + Duration::from_secs(14)));
        assert!(!observed.valid(start + Duration::from_secs(15)));
        // Seeing the same record again later does not extend the term...
        observed.see(
            lease("a", 15, "1970-01-01T00:00:00Z"),
            start + Duration::from_secs(10),
        );
        assert!(!observed.valid(start + Duration::from_secs(15)));
        // ...a renewal (a changed record) does, from when it was seen.
        observed.see(
            lease("a", 15, "1970-01-01T00:00:02Z"),
            start + Duration::from_secs(12),
        );
        assert!(observed.valid(start + Duration::from_secs(26)));
        // A record renewed "in 2100" is no more valid than any other.
        observed.see(
            lease("a", 15, "2100-01-01T00:00:00Z"),
            start + Duration::from_secs(30),
        );
        assert!(!observed.valid(start + Duration::from_secs(45)));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let period = Duration::from_secs(2);
        let j = jittered(period);
        assert!(j >= period && j <= period.mul_f64(1.2));
    }
}
