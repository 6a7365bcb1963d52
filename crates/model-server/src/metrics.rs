//! Prometheus metrics, served on `GET /metrics` in the OpenMetrics text format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the metrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the request counter and the request duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub code: u16,
}

/// Labels of the request duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Metrics named without the server's prefix, shared with the auth proxy.
    unprefixed: Registry,
    /// `berth_model_auth_requests_total{result}` (see [`crate::auth`]).
    pub auth_requests: crate::auth::AuthCounter,
    /// `berth_model_server_requests_total{endpoint, code}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `berth_model_server_requests_in_flight`.
    pub in_flight: Gauge,
    /// `berth_model_server_request_duration_seconds{endpoint}`.
    pub request_duration: HistogramFamily<EndpointLabels>,
    /// `berth_model_server_inference_duration_seconds`: time spent running the model.
    pub inference_duration: Histogram,
    /// `berth_model_server_model_load_duration_seconds`.
    pub model_load_seconds: Gauge<f64, AtomicU64>,
    /// `berth_model_server_model_ready`: 1 once the model is loaded.
    pub model_ready: Gauge,
    /// `berth_model_server_memory_budget_bytes`: the memory budget ([`crate::budget`]).
    pub memory_budget_bytes: Gauge,
    /// `berth_model_server_memory_reserved_bytes`: the part of it requests hold now.
    pub memory_reserved_bytes: Gauge,
    /// `berth_model_server_model_working_memory_fixed_bytes`: what every run of the model is
    /// charged ([`crate::working`]).
    pub working_fixed_bytes: Gauge,
    /// `berth_model_server_model_working_memory_per_input_byte`: what a run is charged per
    /// byte of decoded input.
    pub working_per_input_byte: Gauge<f64, AtomicU64>,
}

fn latency_histogram() -> Histogram {
    // 50µs up to ~26s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("berth_model_server");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by endpoint and status code",
            requests.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "HTTP requests being handled now",
            in_flight.clone(),
        );
        let request_duration: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "request_duration",
            "Time to answer an HTTP request, by endpoint",
            Unit::Seconds,
            request_duration.clone(),
        );
        let inference_duration = latency_histogram();
        registry.register_with_unit(
            "inference_duration",
            "Time spent running the model for one inference request",
            Unit::Seconds,
            inference_duration.clone(),
        );
        let model_load_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "model_load_duration",
            "Time it took to load and optimize the model",
            Unit::Seconds,
            model_load_seconds.clone(),
        );
        let model_ready = Gauge::default();
        registry.register(
            "model_ready",
            "1 when the model is loaded and ready for inference, else 0",
            model_ready.clone(),
        );
        let memory_budget_bytes = Gauge::default();
        registry.register_with_unit(
            "memory_budget",
            "The bytes request bodies, their tensors and the model's runs may hold at once",
            Unit::Bytes,
            memory_budget_bytes.clone(),
        );
        let memory_reserved_bytes = Gauge::default();
        registry.register_with_unit(
            "memory_reserved",
            "The bytes of the memory budget that requests hold now",
            Unit::Bytes,
            memory_reserved_bytes.clone(),
        );
        let working_fixed_bytes = Gauge::default();
        registry.register_with_unit(
            "model_working_memory_fixed",
            "What every run of the model is charged in the memory budget, measured at load",
            Unit::Bytes,
            working_fixed_bytes.clone(),
        );
        let working_per_input_byte = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "model_working_memory_per_input_byte",
            "What a run of the model is charged per byte of decoded input, measured at load",
            working_per_input_byte.clone(),
        );
        let mut unprefixed = Registry::default();
        let auth_requests = crate::auth::register_metrics(&mut unprefixed);
        Self {
            registry,
            unprefixed,
            auth_requests,
            requests,
            in_flight,
            request_duration,
            inference_duration,
            model_load_seconds,
            model_ready,
            memory_budget_bytes,
            memory_reserved_bytes,
            working_fixed_bytes,
            working_per_input_byte,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        encode(&[&self.registry, &self.unprefixed])
    }
}

/// `registries` in one OpenMetrics text, ended by `# EOF`.
pub fn encode(registries: &[&Registry]) -> Result<String, std::fmt::Error> {
    use prometheus_client::encoding::text;
    let mut out = String::new();
    for registry in registries {
        text::encode_registry(&mut out, registry)?;
    }
    text::encode_eof(&mut out)?;
    Ok(out)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_metric() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                endpoint: "infer",
                code: 200,
            })
            .inc();
        m.inference_duration.observe(0.002);
        m.model_load_seconds.set(0.5);
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"berth_model_server_requests_total{endpoint="infer",code="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("berth_model_server_requests_in_flight 0"));
        assert!(text.contains("berth_model_server_inference_duration_seconds_count 1"));
        assert!(text.contains("berth_model_server_model_load_duration_seconds 0.5"));
        assert!(text.contains("berth_model_server_model_ready 0"));
        assert!(text.contains("berth_model_server_memory_budget_bytes 0"));
        assert!(text.contains("berth_model_server_memory_reserved_bytes 0"));
        assert!(text.contains("berth_model_server_model_working_memory_fixed_bytes 0"));
        assert!(text.contains("berth_model_server_model_working_memory_per_input_byte 0"));
        assert!(
            text.contains(r#"berth_model_auth_requests_total{result="forbidden"} 0"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
