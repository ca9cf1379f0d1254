//! The server's Prometheus metrics (prefix `rampart_server_`), declared in
//! one place and served on `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LatencyLabel {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IngestLabel {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabel {
    pub action: &'static str,
}

/// Every metric the server exports.
pub struct ServerMetrics {
    registry: Registry,
    pub(crate) requests: Family<RouteLabel, Counter>,
    pub(crate) latency: Family<LatencyLabel, Histogram>,
    pub(crate) ingested: Family<IngestLabel, Counter>,
    pub(crate) decisions: Family<ActionLabel, Counter>,
    pub(crate) login_failures: Counter,
    pub(crate) login_rate_limited: Counter,
    pub(crate) live_clients: Gauge,
    pub(crate) live_dropped: Counter,
    pub(crate) live_sent: Counter,
    pub(crate) store_errors: Counter,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl ServerMetrics {
    /// Registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("rampart_server");
        let requests = Family::<RouteLabel, Counter>::default();
        registry.register(
            "http_requests",
            "API requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let ingested = Family::<IngestLabel, Counter>::default();
        registry.register(
            "ingested_records",
            "Pushed records, by kind (logs, events) and outcome (accepted, rejected)",
            ingested.clone(),
        );
        let decisions = Family::<ActionLabel, Counter>::default();
        registry.register(
            "decisions",
            "Decisions made through the server (ban, unban)",
            decisions.clone(),
        );
        let login_failures = Counter::default();
        registry.register("login_failures", "Failed logins", login_failures.clone());
        let login_rate_limited = Counter::default();
        registry.register(
            "login_rate_limited",
            "Logins refused by the per-address limit",
            login_rate_limited.clone(),
        );
        let live_clients = Gauge::default();
        registry.register(
            "live_clients",
            "WebSocket clients connected to /ws/live",
            live_clients.clone(),
        );
        let live_dropped = Counter::default();
        registry.register(
            "live_dropped_clients",
            "Live clients dropped for being too slow",
            live_dropped.clone(),
        );
        let live_sent = Counter::default();
        registry.register(
            "live_messages_sent",
            "Messages sent to live clients",
            live_sent.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Failed store operations in background jobs",
            store_errors.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
            ingested,
            decisions,
            login_failures,
            login_rate_limited,
            live_clients,
            live_dropped,
            live_sent,
            store_errors,
        })
    }

    /// Counts ingested records.
    pub(crate) fn ingest(&self, kind: &'static str, accepted: u64, rejected: u64) {
        self.ingested
            .get_or_create(&IngestLabel {
                kind,
                outcome: "accepted",
            })
            .inc_by(accepted);
        self.ingested
            .get_or_create(&IngestLabel {
                kind,
                outcome: "rejected",
            })
            .inc_by(rejected);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The `method` label: one of the methods HTTP defines, else `other` (the
/// method token is the client's to choose, and every new label value is a
/// series kept for the life of the process).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Middleware: counts and times every request by its route pattern.
pub async fn track(
    State(metrics): State<Arc<ServerMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method()).to_owned();
    let response = next.run(req).await;
    metrics
        .latency
        .get_or_create(&LatencyLabel {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteLabel {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_defined_methods_become_label_values() {
        let custom = axum::http::Method::from_bytes(b"X-ANYTHING-1234").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
        assert_eq!(method_label(&axum::http::Method::DELETE), "DELETE");
    }
}
