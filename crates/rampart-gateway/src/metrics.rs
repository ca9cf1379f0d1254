//! The gateway's Prometheus metrics, declared in one place and served on
//! the admin listener's `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What happened to a request, for `rampart_gateway_requests_total`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Forwarded and answered by a backend.
    forwarded,
    /// Refused: the client is banned.
    banned,
    /// Refused: flood (429).
    flood,
    /// Refused: request signature (SQLi, XSS, traversal, scanner, probe).
    attack,
    /// Refused: behaviour score at or above the block threshold.
    anomaly,
    /// Answered by a hook added to the gateway (not its own detection).
    refused,
    /// 400: the request cannot be rebuilt for a backend.
    bad_request,
    /// 502: no backend could be reached.
    bad_gateway,
    /// 503: no healthy backend.
    unavailable,
    /// 504: the backend did not answer in time.
    timeout,
    /// 400: the client's form body was incomplete or longer than declared.
    aborted,
    /// 500: the gateway lost the request (a bug).
    internal,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 12] = [
        Outcome::forwarded,
        Outcome::banned,
        Outcome::flood,
        Outcome::attack,
        Outcome::anomaly,
        Outcome::refused,
        Outcome::bad_request,
        Outcome::bad_gateway,
        Outcome::unavailable,
        Outcome::timeout,
        Outcome::aborted,
        Outcome::internal,
    ];
}

/// Who caused a failed request (STYLE: the gateway records whether the
/// client, the upstream or we caused an error).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Culprit {
    /// A client sent something we refuse (bad framing, oversized head).
    client,
    /// A backend failed or timed out.
    upstream,
    /// The gateway itself (a bug).
    gateway,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabel {
    pub backend: String,
}

pub(crate) use rampart_guard::ReasonLabel;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CulpritLabel {
    culprit: Culprit,
}

/// Every metric the gateway exports (prefix `rampart_gateway_`).
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    errors: Family<CulpritLabel, Counter>,
    /// From request head to response head, seconds.
    pub latency: Histogram,
    /// Requests forwarded, per backend.
    pub(crate) backend_requests: Family<BackendLabel, Counter>,
    /// Failed attempts (connect, timeout), per backend.
    pub(crate) backend_failures: Family<BackendLabel, Counter>,
    /// 1 when a backend is healthy.
    pub(crate) backend_up: Family<BackendLabel, Gauge>,
    /// Bans the gateway decided, by reason.
    pub(crate) bans: Family<ReasonLabel, Counter>,
    /// Clients (or prefixes) banned now.
    pub banned: Gauge,
    /// Clients tracked by the behaviour table.
    pub tracked_clients: Gauge,
    /// Request-log records dropped because the store fell behind.
    pub log_dropped: Counter,
    /// Request-log records written to the store.
    pub log_written: Counter,
    /// Store errors (request log, decisions, change log).
    pub store_errors: Counter,
    /// Client connections accepted.
    pub connections: Counter,
    /// Client connections open now.
    pub open_connections: Gauge,
    /// Requests refused for ambiguous framing (smuggling attempts), by reason.
    pub(crate) framing_rejected: Family<ReasonLabel, Counter>,
    /// TLS handshakes that failed.
    pub tls_failures: Counter,
}

impl Metrics {
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        Self::with_more(|_| {})
    }

    /// Fresh metrics, and whatever `more` registers beside them (under
    /// the prefix `rampart`; the gateway's own are `rampart_gateway_…`).
    pub fn with_more(more: impl FnOnce(&mut Registry)) -> Self {
        let mut root = Registry::with_prefix("rampart");
        more(&mut root);
        let registry = root.sub_registry_with_prefix("gateway");
        let m = Self {
            requests: Family::default(),
            errors: Family::default(),
            latency: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            backend_requests: Family::default(),
            backend_failures: Family::default(),
            backend_up: Family::default(),
            bans: Family::default(),
            banned: Gauge::default(),
            tracked_clients: Gauge::default(),
            log_dropped: Counter::default(),
            log_written: Counter::default(),
            store_errors: Counter::default(),
            connections: Counter::default(),
            open_connections: Gauge::default(),
            framing_rejected: Family::default(),
            tls_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests handled, by outcome",
            m.requests.clone(),
        );
        registry.register(
            "errors",
            "Failed requests, by who caused them",
            m.errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to response head",
            m.latency.clone(),
        );
        registry.register(
            "backend_requests",
            "Requests forwarded, per backend",
            m.backend_requests.clone(),
        );
        registry.register(
            "backend_failures",
            "Failed attempts (connect, timeout), per backend",
            m.backend_failures.clone(),
        );
        registry.register(
            "backend_up",
            "1 when a backend is healthy",
            m.backend_up.clone(),
        );
        registry.register(
            "bans",
            "Bans decided by the gateway, by reason",
            m.bans.clone(),
        );
        registry.register(
            "banned_clients",
            "Clients and prefixes banned now",
            m.banned.clone(),
        );
        registry.register(
            "tracked_clients",
            "Clients tracked by the behaviour table",
            m.tracked_clients.clone(),
        );
        registry.register(
            "request_log_dropped",
            "Request-log records dropped because the store fell behind",
            m.log_dropped.clone(),
        );
        registry.register(
            "request_log_written",
            "Request-log records written to the store",
            m.log_written.clone(),
        );
        registry.register(
            "store_errors",
            "Store operations that failed",
            m.store_errors.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open now",
            m.open_connections.clone(),
        );
        registry.register(
            "framing_rejected",
            "Requests refused for ambiguous framing, by reason",
            m.framing_rejected.clone(),
        );
        registry.register(
            "tls_failures",
            "TLS handshakes that failed",
            m.tls_failures.clone(),
        );
        Self {
            registry: root,
            ..m
        }
    }

    /// Counts a request's outcome.
    pub fn request(&self, outcome: Outcome) {
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Requests counted with `outcome` so far.
    pub fn requests_with(&self, outcome: Outcome) -> u64 {
        self.requests.get_or_create(&OutcomeLabel { outcome }).get()
    }

    /// Requests handled and requests refused (banned, flood, attack,
    /// anomaly, refused by a hook) so far: what a fleet heartbeat reports.
    pub fn totals(&self) -> (u64, u64) {
        let refusals = [
            Outcome::banned,
            Outcome::flood,
            Outcome::attack,
            Outcome::anomaly,
            Outcome::refused,
        ];
        let sum = |list: &[Outcome]| list.iter().map(|o| self.requests_with(*o)).sum();
        (sum(&Outcome::ALL), sum(&refusals))
    }

    /// Counts a failed request by who caused it.
    pub fn error(&self, culprit: Culprit) {
        self.errors.get_or_create(&CulpritLabel { culprit }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
