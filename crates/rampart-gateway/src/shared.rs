//! The state every connection and task of a gateway shares: the backend
//! pool, the ban table, the inspector, metrics, the request log, the store
//! and the policy that turns findings into bans.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use ipnet::IpNet;
use rampart_config::{GatewayConfig, PolicyConfig};
use rampart_core::{
    Action, Decision, Evidence, Finding, HumanDuration, Level, Origin, Subject, Whitelist,
};
use rampart_detect::policy::{Outcome as PolicyOutcome, Policy};
use rampart_store::{ChangeKind, Store, StoredDecision};

use crate::backend::Pool;
use crate::bans::{BanEntry, BanKind, BanTable};
use crate::context::{Body, RequestCtx};
use crate::inspect::{Inspector, Judgement, RequestFacts};
use crate::metrics::{BackendLabel, Metrics, ReasonLabel};
use crate::request_log::RequestLog;
use rampart_http::forwarded::TrustedProxies;

/// Labels of the findings the gateway makes; each bans for `ban_for`.
pub const LABELS: [&str; 7] = [
    "gateway-flood",
    "gateway-anomaly",
    "gateway-sqli",
    "gateway-xss",
    "gateway-traversal",
    "gateway-scanner",
    "gateway-sensitive-path",
];

/// A gateway that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config is not usable (no backend, bad URL, bad CIDR).
    #[error("{0}")]
    Config(String),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] rampart_http::tls::TlsError),
    /// The store could not be read at start.
    #[error(transparent)]
    Store(#[from] rampart_store::StoreError),
}

/// What the gateway needs from the rest of rampart.
pub struct GatewayContext {
    /// Where decisions and the request log go.
    pub store: Arc<dyn Store>,
    /// Ban durations, escalation, whitelist, dry-run.
    pub policy: PolicyConfig,
    /// Addresses never blocked (the configured whitelist; loopback is not
    /// implied here, unlike the firewall: the gateway cannot lock the host out).
    pub whitelist: Whitelist,
    /// This gateway's id.
    pub id: String,
    /// Registers further metrics on the admin endpoint beside the
    /// gateway's own (the fleet link's, for a gateway that reports to a
    /// server). The registry's prefix is `rampart`.
    pub more_metrics: Option<MoreMetrics>,
}

/// See [`GatewayContext::more_metrics`].
pub type MoreMetrics = Box<dyn FnOnce(&mut prometheus_client::registry::Registry) + Send>;

/// State shared by every connection and task.
pub struct Shared {
    pub(crate) id: String,
    pub(crate) config: GatewayConfig,
    pub(crate) pool: Arc<Pool>,
    pub(crate) client: Client<HttpConnector, Body>,
    pub(crate) trusted: TrustedProxies,
    pub(crate) whitelist: Whitelist,
    pub(crate) bans: BanTable,
    pub(crate) inspector: Inspector,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) log: RequestLog,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) policy: Mutex<Policy>,
    pub(crate) started: Instant,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) id_prefix: u32,
    pub(crate) next_id: AtomicU64,
}

impl Shared {
    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Milliseconds since the gateway started (monotonic).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{n:08x}", self.id_prefix)
    }

    /// Decides (through policy) and applies a ban on `key`. Returns the ban
    /// in force afterwards, if any (`None` when policy refused: whitelisted).
    pub(crate) fn decide_ban(
        self: &Arc<Self>,
        key: IpNet,
        label: &str,
        kind: BanKind,
        judgement: &Judgement,
        facts: &RequestFacts<'_>,
        ctx: &RequestCtx,
    ) -> Option<BanEntry> {
        let summary = judgement
            .reason
            .clone()
            .unwrap_or_else(|| format!("{label} score {:.2}", judgement.score));
        let finding = Finding {
            time: ctx.time,
            subject: Subject::Net(key),
            label: label.to_owned(),
            score: judgement.score,
            level: Level::Medium,
            evidence: Evidence {
                count: judgement.seen,
                first_seen: None,
                last_seen: Some(ctx.time),
                first_line: None,
                last_line: Some(format!(
                    "{} {}{}{} (request id {})",
                    facts.method,
                    facts.path,
                    if facts.query.is_some() { "?" } else { "" },
                    facts.query.unwrap_or(""),
                    ctx.id
                )),
                distinct: Vec::new(),
                summary,
            },
        };
        let outcome = self
            .policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .decide(finding, ctx.time);
        match outcome {
            PolicyOutcome::Decided(decision) if decision.action == Action::Ban => {
                let entry = ban_entry(&decision, None, kind);
                self.bans.insert(entry.clone());
                self.metrics
                    .bans
                    .get_or_create(&ReasonLabel {
                        reason: label.to_owned(),
                    })
                    .inc();
                tracing::info!(target = %key, label, until = ?decision.until, "gateway ban");
                self.store_decision(decision, kind);
                Some(entry)
            }
            PolicyOutcome::Decided(_) => None,
            PolicyOutcome::Skipped { note, .. } => {
                // Already banned (a concurrent request decided first): the ban in force.
                tracing::debug!(target = %key, note, "no new ban");
                self.bans.lookup(ctx.client, ctx.time)
            }
        }
    }

    pub(crate) fn store_decision(self: &Arc<Self>, decision: Decision, kind: BanKind) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            match shared.store.insert_decision(&decision).await {
                Ok(id) => shared.bans.insert(ban_entry(&decision, Some(id), kind)),
                Err(error) => {
                    shared.metrics.store_errors.inc();
                    tracing::warn!(%error, target = %decision.target, "cannot store gateway ban");
                }
            }
        });
    }

    /// An operator ban from the admin listener: stored, then applied.
    pub(crate) async fn operator_ban(
        &self,
        target: IpNet,
        minutes: Option<u64>,
        by: &str,
    ) -> Result<BanEntry, rampart_store::StoreError> {
        let now = Utc::now();
        let duration = minutes.map_or(self.config.ban_for.0, |m| Duration::from_secs(m * 60));
        let decision = Decision::operator_ban(
            target,
            by,
            now,
            chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX),
            Some(format!("banned by {by} for {}", HumanDuration(duration))),
            false,
        );
        let until = decision.until.unwrap_or(now);
        let id = self.store.insert_decision(&decision).await?;
        self.policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note_active(target, until, decision.level());
        let entry = ban_entry(&decision, Some(id), BanKind::Other);
        self.bans.insert(entry.clone());
        Ok(entry)
    }

    /// An operator unban: every ban on `target` and inside it is lifted in
    /// the store and here; the client's behaviour history is forgotten.
    pub(crate) async fn operator_unban(
        &self,
        target: IpNet,
        by: &str,
    ) -> Result<(Vec<i64>, usize), rampart_store::StoreError> {
        let ids = self.store.revoke(Some(&target), by, Utc::now()).await?;
        let removed = self.bans.remove(&target, None);
        self.policy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lift(Some(&target));
        self.inspector.forget(&target);
        Ok((ids, removed))
    }

    pub(crate) fn backend_failed(&self, index: usize) {
        let backend = &self.pool.backends()[index];
        self.metrics
            .backend_failures
            .get_or_create(&BackendLabel {
                backend: backend.url.clone(),
            })
            .inc();
        if self.pool.report_failure(index) == crate::backend::Transition::Down {
            self.backend_changed(index, false);
        }
    }

    pub(crate) fn backend_changed(&self, index: usize, up: bool) {
        let backend = &self.pool.backends()[index];
        if up {
            tracing::info!(backend = %backend.url, "backend up");
        } else {
            tracing::warn!(backend = %backend.url, "backend down");
        }
        self.metrics
            .backend_up
            .get_or_create(&BackendLabel {
                backend: backend.url.clone(),
            })
            .set(i64::from(up));
    }

    /// Applies one change of the store's decision log.
    pub(crate) fn apply_change(
        &self,
        kind: ChangeKind,
        stored: &StoredDecision,
        now: DateTime<Utc>,
    ) {
        let decision = &stored.decision;
        if decision.action != Action::Ban {
            return;
        }
        match kind {
            ChangeKind::Added if stored.is_active(now) => {
                let ban_kind = if decision.scenario() == Some("gateway-flood") {
                    BanKind::Flood
                } else {
                    BanKind::Other
                };
                self.bans
                    .insert(ban_entry(decision, Some(stored.id), ban_kind));
                if let Some(until) = decision.until {
                    self.policy
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .note_active(decision.target, until, decision.level());
                }
            }
            ChangeKind::Added => {}
            ChangeKind::Revoked => {
                self.bans.remove(&decision.target, Some(stored.id));
                self.policy
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .lift(Some(&decision.target));
                self.inspector.forget(&decision.target);
            }
        }
    }
}

pub(crate) fn ban_entry(decision: &Decision, id: Option<i64>, kind: BanKind) -> BanEntry {
    let origin = match &decision.origin {
        Origin::Scenario(name) => format!("scenario:{name}"),
        Origin::Operator(name) => format!("operator:{name}"),
        Origin::Model(name) => format!("model:{name}"),
    };
    BanEntry {
        target: decision.target,
        at: decision.at,
        until: decision.until,
        reason: decision.reason.clone(),
        origin,
        kind,
        decision_id: id.or(decision.id),
        dry_run: decision.dry_run,
    }
}
