//! The server's Prometheus metrics (OpenMetrics text on `GET /metrics`),
//! named by Prometheus conventions: `qualys_respond_` prefix, base units,
//! counters ending in `_total`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics exposition.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text exposition (version 0.0.4).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/webhook/cdr`, …; `other` for unknown paths).
    pub endpoint: String,
    /// The HTTP status code.
    pub code: u16,
}

/// One label called `mode` (`audit`, `enforce`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// The policy's mode.
    pub mode: String,
}

/// One label called `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened.
    pub outcome: String,
}

/// One label called `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Labels of a reputation decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReputationLabels {
    /// `abuseipdb`, `feed`, `allowlist`, `cluster`, `feeds`.
    pub source: String,
    /// `malicious`, `clean`, `unknown`, `allowed`.
    pub verdict: String,
}

/// Labels of the build information.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by endpoint and code.
    pub requests: Family<RequestLabels, Counter>,
    /// Webhook findings by outcome (`applied`, `duplicate`, `unknown_category`, `refused`, `failed`).
    pub events: Family<OutcomeLabels, Counter>,
    /// Signature failures by reason.
    pub signature_failures: Family<ReasonLabels, Counter>,
    /// Policy objects by what applying did (`created`, `configured`, `unchanged`, `deleted`).
    pub policies: Family<OutcomeLabels, Counter>,
    /// Duration of one mapper call.
    pub mapper_call: Histogram,
    /// Reputation decisions by source and verdict.
    pub reputation: Family<ReputationLabels, Counter>,
    /// From a finding's detection time to its policy being applied.
    pub detection_to_applied: Histogram,
    /// From a finding's request to its policy being applied.
    pub request_to_applied: Histogram,
    /// Policies we manage in the cluster, by mode.
    pub managed_policies: Family<ModeLabels, Gauge>,
    /// Addresses and ranges in the block policies.
    pub blocked_ips: Gauge,
    /// Ports in the block policies.
    pub blocked_ports: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn seconds(start: f64, factor: f64, length: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, factor, length))
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("qualys_respond");
        let requests = Family::default();
        registry.register("http_requests", "HTTP requests by endpoint and status code", requests.clone());
        let events = Family::default();
        registry.register("webhook_events", "Findings received on /webhook/cdr, by outcome", events.clone());
        let signature_failures = Family::default();
        registry.register(
            "webhook_signature_failures",
            "Webhook requests refused for their signature, by reason",
            signature_failures.clone(),
        );
        let policies = Family::default();
        registry.register("policies", "Policy objects written by the server, by outcome", policies.clone());
        let mapper_call = seconds(0.000_001, 4.0, 12);
        registry.register_with_unit(
            "mapper_call_duration",
            "Duration of one mapper component call",
            Unit::Seconds,
            mapper_call.clone(),
        );
        let reputation = Family::default();
        registry.register(
            "reputation_lookups",
            "Reputation decisions on finding addresses, by source and verdict",
            reputation.clone(),
        );
        let detection_to_applied = seconds(0.005, 1.5, 30);
        registry.register_with_unit(
            "detection_to_applied",
            "Time from a finding's detection to its policy being in the cluster (mean time to policy)",
            Unit::Seconds,
            detection_to_applied.clone(),
        );
        let request_to_applied = seconds(0.005, 1.5, 24);
        registry.register_with_unit(
            "request_to_applied",
            "Time from a finding's request to its policy being in the cluster",
            Unit::Seconds,
            request_to_applied.clone(),
        );
        let managed_policies = Family::default();
        registry.register(
            "managed_policies",
            "TracingPolicies kubectl-qualys-respond manages in the cluster, by mode",
            managed_policies.clone(),
        );
        let blocked_ips = Gauge::default();
        registry.register("blocked_ips", "Addresses and ranges in the block policies", blocked_ips.clone());
        let blocked_ports = Gauge::default();
        registry.register("blocked_ports", "Ports in the block policies", blocked_ports.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").to_string() }).set(1);
        registry.register("build_info", "The running version (always 1)", build);
        Metrics {
            registry,
            requests,
            events,
            signature_failures,
            policies,
            mapper_call,
            reputation,
            detection_to_applied,
            request_to_applied,
            managed_policies,
            blocked_ips,
            blocked_ports,
        }
    }

    /// The exposition for a scraper that sent `accept`: OpenMetrics when it
    /// asks for it (Prometheus does), else the Prometheus text format.
    pub fn encode(&self, accept: &str) -> (&'static str, String) {
        let mut out = String::new();
        // Writing to a String cannot fail.
        if accept.contains("application/openmetrics-text") {
            let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
            (OPENMETRICS, out)
        } else {
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
            (PROMETHEUS_TEXT, out)
        }
    }

    /// Counts one event outcome `n` times.
    pub fn event(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.events.get_or_create(&OutcomeLabels { outcome: outcome.to_string() }).inc_by(n);
        }
    }

    /// Observes a duration in seconds.
    pub fn observe(histogram: &Histogram, duration: Duration) {
        histogram.observe(duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_its_conventional_name() {
        let metrics = Metrics::new();
        metrics.event("applied", 2);
        metrics.requests.get_or_create(&RequestLabels { endpoint: "/health".into(), code: 200 }).inc();
        Metrics::observe(&metrics.mapper_call, Duration::from_micros(3));
        let (kind, text) = metrics.encode("application/openmetrics-text;version=1.0.0");
        assert_eq!(kind, OPENMETRICS);
        for line in [
            "qualys_respond_webhook_events_total{outcome=\"applied\"} 2",
            "qualys_respond_http_requests_total{endpoint=\"/health\",code=\"200\"} 1",
            "# TYPE qualys_respond_mapper_call_duration_seconds histogram",
            "qualys_respond_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        let (kind, text) = metrics.encode("*/*");
        assert_eq!(kind, PROMETHEUS_TEXT);
        assert!(text.contains("# TYPE qualys_respond_webhook_events_total counter") && !text.contains("# EOF"));
    }
}
