//! Prometheus metrics every controller reports: reconciles, their duration, errors and writes,
//! and how many of its objects are ready and why not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::Category;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    category: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ObjectLabels {
    controller: &'static str,
    ready: String,
    reason: String,
}

/// One object's readiness as its `Ready` condition states it: the condition's status (`True`,
/// `False`, `Unknown`; `Unknown` too when the object has no such condition yet) and its reason
/// (empty when there is none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub ready: String,
    pub reason: String,
}

impl Readiness {
    /// The readiness that `conditions` state (an object's `status.conditions`; `None` when it
    /// has no status yet).
    pub fn of(
        conditions: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
    ) -> Self {
        match conditions.and_then(|cs| cs.iter().find(|c| c.type_ == "Ready")) {
            Some(c) => Self {
                ready: c.status.clone(),
                reason: c.reason.clone(),
            },
            None => Self {
                ready: "Unknown".to_owned(),
                reason: String::new(),
            },
        }
    }
}

type Census = Box<dyn Fn() -> Vec<Readiness> + Send + Sync>;

/// The controllers' caches of their own objects, counted at each scrape into the gauge
/// `berth_objects{controller, ready, reason}`. Only a leader has caches: a standby exports none.
#[derive(Clone, Default)]
struct Censuses(Arc<Mutex<Vec<(&'static str, Census)>>>);

impl std::fmt::Debug for Censuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Censuses")
    }
}

impl Censuses {
    fn counts(&self) -> BTreeMap<ObjectLabels, i64> {
        let mut counts = BTreeMap::new();
        let Ok(censuses) = self.0.lock() else {
            return counts;
        };
        for (controller, census) in censuses.iter() {
            for Readiness { ready, reason } in census() {
                *counts
                    .entry(ObjectLabels {
                        controller,
                        ready,
                        reason,
                    })
                    .or_insert(0) += 1;
            }
        }
        counts
    }
}

impl Collector for Censuses {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.counts();
        if counts.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(
            "objects",
            "Objects each controller owns, by the status and reason of their Ready condition",
            None,
            MetricType::Gauge,
        )?;
        for (labels, count) in counts {
            ConstGauge::new(count).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The metrics of all controllers, registered once.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    durations: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    writes: Family<ControllerLabel, Counter>,
    censuses: Censuses,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            errors: Family::default(),
            writes: Family::default(),
            censuses: Censuses::default(),
        };
        let berth = registry.sub_registry_with_prefix("berth");
        berth.register(
            "reconciles",
            "Reconciles by controller and result",
            metrics.reconciles.clone(),
        );
        berth.register(
            "reconcile_duration_seconds",
            "How long reconciles take",
            metrics.durations.clone(),
        );
        berth.register(
            "reconcile_errors",
            "Failed reconciles by error category",
            metrics.errors.clone(),
        );
        berth.register(
            "writes",
            "Objects written or deleted by reconciles",
            metrics.writes.clone(),
        );
        berth.register_collector(Box::new(metrics.censuses.clone()));
        metrics
    }

    /// Counts `controller`'s objects in `store` by [`Readiness`] at every scrape, as the gauge
    /// `berth_objects{controller, ready, reason}`: degraded Projects and failing models on a
    /// dashboard, without a write or a request per object.
    pub fn count_objects<K>(
        &self,
        controller: &'static str,
        store: Store<K>,
        readiness: fn(&K) -> Readiness,
    ) where
        K: kube::Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let census: Census = Box::new(move || store.state().iter().map(|o| readiness(o)).collect());
        if let Ok(mut censuses) = self.censuses.0.lock() {
            censuses.retain(|(c, _)| *c != controller);
            censuses.push((controller, census));
        }
    }

    /// Starts timing one reconcile.
    pub fn start(&self, controller: &'static str) -> Measurement<'_> {
        Measurement {
            metrics: self,
            controller,
            started: Instant::now(),
        }
    }
}

/// One reconcile being measured.
pub struct Measurement<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    started: Instant,
}

impl Measurement<'_> {
    fn finish(&self, result: &'static str) {
        let controller = self.controller;
        self.metrics
            .durations
            .get_or_create(&ControllerLabel { controller })
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .reconciles
            .get_or_create(&ResultLabels { controller, result })
            .inc();
    }

    /// The reconcile succeeded after `writes` writes.
    pub fn succeeded(self, writes: usize) {
        self.metrics
            .writes
            .get_or_create(&ControllerLabel {
                controller: self.controller,
            })
            .inc_by(writes as u64);
        self.finish("success");
    }

    /// The reconcile failed.
    pub fn failed(self, category: Category) {
        self.metrics
            .errors
            .get_or_create(&ErrorLabels {
                controller: self.controller,
                category: category.as_label(),
            })
            .inc();
        self.finish("error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    fn labelled(name: &str, ready: Option<&str>) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(name.to_owned());
        map.metadata.namespace = Some("ns".to_owned());
        if let Some(ready) = ready {
            map.data = Some([("ready".to_owned(), ready.to_owned())].into());
        }
        map
    }

    fn readiness(map: &ConfigMap) -> Readiness {
        match map.data.as_ref().and_then(|d| d.get("ready")) {
            Some(r) => Readiness {
                ready: if r == "ok" { "True" } else { "False" }.to_owned(),
                reason: r.clone(),
            },
            None => Readiness::of(None),
        }
    }

    #[test]
    fn objects_are_counted_by_readiness_at_each_scrape_and_a_standby_exports_none() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let scrape = |registry: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).map(|_| text)
        };
        let text = scrape(&registry).expect("encoding the registry");
        assert!(!text.contains("berth_objects"), "{text}");

        let mut writer = Writer::<ConfigMap>::default();
        metrics.count_objects("project", writer.as_reader(), readiness);
        for object in [
            labelled("a", Some("ok")),
            labelled("b", Some("QuotaExceeded")),
            labelled("c", Some("QuotaExceeded")),
            labelled("d", None),
        ] {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        let text = scrape(&registry).expect("encoding the registry");
        assert!(text.contains("# TYPE berth_objects gauge"), "{text}");
        for line in [
            r#"berth_objects{controller="project",ready="True",reason="ok"} 1"#,
            r#"berth_objects{controller="project",ready="False",reason="QuotaExceeded"} 2"#,
            r#"berth_objects{controller="project",ready="Unknown",reason=""} 1"#,
        ] {
            assert!(text.contains(line), "no {line} in:\n{text}");
        }

        // Counted at scrape time: an object made ready moves, none is left behind.
        writer.apply_watcher_event(&Event::Apply(labelled("b", Some("ok"))));
        writer.apply_watcher_event(&Event::Delete(labelled("c", Some("QuotaExceeded"))));
        let text = scrape(&registry).expect("encoding the registry");
        assert!(
            text.contains(r#"berth_objects{controller="project",ready="True",reason="ok"} 2"#),
            "{text}"
        );
        assert!(!text.contains("QuotaExceeded"), "{text}");
    }

    #[test]
    fn readiness_is_the_ready_condition() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let condition = |type_: &str, status: &str, reason: &str| Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        };
        let cs = [
            condition("QuotaReady", "True", "QuotaEnforced"),
            condition("Ready", "False", "NamespaceConflict"),
        ];
        assert_eq!(
            Readiness::of(Some(&cs)),
            Readiness {
                ready: "False".into(),
                reason: "NamespaceConflict".into()
            }
        );
        assert_eq!(Readiness::of(Some(&cs[..1])).ready, "Unknown");
        assert_eq!(Readiness::of(None).reason, "");
    }
}
