//! Prometheus metrics: requests and latencies by route, imports, attempts,
//! hand-overs and webhook rejections. Labels carry route patterns and
//! outcomes only, never ids or phone numbers.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub imports: IntCounterVec,
    pub import_rows: IntCounterVec,
    pub attempts: IntCounterVec,
    pub handovers: IntCounterVec,
    pub webhook_rejections: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter =
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = Registry::new_custom(Some("outbound".into()), None).expect("valid registry");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(request_seconds.clone()))
            .expect("metric registered once");
        Metrics {
            requests: counter(
                &registry,
                "http_requests_total",
                "HTTP requests by route and status",
                &["method", "route", "status"],
            ),
            request_seconds,
            imports: counter(
                &registry,
                "imports_total",
                "Contact imports by result",
                &["result"],
            ),
            import_rows: counter(
                &registry,
                "import_rows_total",
                "Imported rows by result",
                &["result"],
            ),
            attempts: counter(
                &registry,
                "attempts_total",
                "Ended call attempts by outcome",
                &["outcome"],
            ),
            handovers: counter(
                &registry,
                "handovers_total",
                "Call hand-overs to the voice platform by result",
                &["result"],
            ),
            webhook_rejections: counter(
                &registry,
                "webhook_rejections_total",
                "Rejected webhook requests by reason",
                &["reason"],
            ),
            registry,
        }
    })
}

/// The metrics in Prometheus text format.
pub fn render() -> String {
    let mut buffer = Vec::new();
    let families = metrics().registry.gather();
    if TextEncoder::new().encode(&families, &mut buffer).is_err() {
        return String::new();
    }
    String::from_utf8(buffer).unwrap_or_default()
}
