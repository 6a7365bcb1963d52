//! Prometheus metrics every controller reports: reconciles, their duration, errors and writes.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// The metrics of all controllers, registered once.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    durations: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    writes: Family<ControllerLabel, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            errors: Family::default(),
            writes: Family::default(),
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
        metrics
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
