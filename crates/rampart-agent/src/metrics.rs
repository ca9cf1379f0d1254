//! The agent's Prometheus metrics: declared here, served on `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use rampart_logs::LineCounts;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabel {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScenarioLabel {
    pub scenario: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    pub origin: String,
    pub action: String,
    pub dry_run: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub backend: String,
    pub op: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    pub lines: Family<SourceLabel, Counter>,
    pub events: Family<SourceLabel, Counter>,
    pub skipped: Family<SkipLabel, Counter>,
    pub findings: Family<ScenarioLabel, Counter>,
    pub decisions: Family<DecisionLabel, Counter>,
    pub firewall_ops: Family<OpLabel, Counter>,
    pub firewall_failures: Family<OpLabel, Counter>,
    pub active_bans: Gauge,
    pub store_errors: Counter,
    pub source_errors: Family<SourceLabel, Counter>,
    /// Lines read, all sources (for the fleet heartbeat).
    pub lines_total: std::sync::atomic::AtomicU64,
    /// Decisions made (for the fleet heartbeat).
    pub decisions_total: std::sync::atomic::AtomicU64,
}

impl Metrics {
    /// The agent's metrics, plus whatever `more` registers (the fleet
    /// link's counters, when there is a link), all prefixed `rampart_`.
    pub fn new(more: impl FnOnce(&mut Registry)) -> Arc<Self> {
        let mut registry = Registry::with_prefix("rampart");
        more(&mut registry);
        let m = Self {
            lines: Family::default(),
            events: Family::default(),
            skipped: Family::default(),
            findings: Family::default(),
            decisions: Family::default(),
            firewall_ops: Family::default(),
            firewall_failures: Family::default(),
            active_bans: Gauge::default(),
            store_errors: Counter::default(),
            source_errors: Family::default(),
            lines_total: std::sync::atomic::AtomicU64::new(0),
            decisions_total: std::sync::atomic::AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register("log_lines", "Log lines read", m.lines.clone());
        registry.register(
            "log_events",
            "Log lines parsed into events",
            m.events.clone(),
        );
        registry.register(
            "log_lines_skipped",
            "Log lines skipped, by reason",
            m.skipped.clone(),
        );
        registry.register(
            "detect_findings",
            "Findings by scenario",
            m.findings.clone(),
        );
        registry.register(
            "policy_decisions",
            "Decisions by origin, action and dry run",
            m.decisions.clone(),
        );
        registry.register(
            "firewall_operations",
            "Firewall operations carried out",
            m.firewall_ops.clone(),
        );
        registry.register(
            "firewall_failures",
            "Firewall operations that failed",
            m.firewall_failures.clone(),
        );
        registry.register(
            "firewall_active_bans",
            "Bans enforced now",
            m.active_bans.clone(),
        );
        registry.register(
            "agent_store_errors",
            "Store operations of the agent that failed",
            m.store_errors.clone(),
        );
        registry.register(
            "log_source_errors",
            "Read errors of log sources",
            m.source_errors.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    /// Adds a batch of line counts of `source`.
    pub fn add_lines(&self, source: &str, counts: &LineCounts) {
        let label = SourceLabel {
            source: source.to_owned(),
        };
        self.lines.get_or_create(&label).inc_by(counts.lines);
        self.lines_total
            .fetch_add(counts.lines, std::sync::atomic::Ordering::Relaxed);
        self.events.get_or_create(&label).inc_by(counts.events);
        for (reason, n) in counts.skipped_by_reason() {
            self.skipped
                .get_or_create(&SkipLabel {
                    source: source.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc_by(n);
        }
    }

    /// Counts one read error of `source`.
    pub fn source_error(&self, source: &str) {
        self.source_errors
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `/metrics` on `addr` until the process ends (or the task is
/// dropped).
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?;
    tracing::info!(%addr, "serving metrics");
    axum::serve(listener, app).await?;
    Ok(())
}
