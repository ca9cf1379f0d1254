//! rampart's HTTP detection hook: everything between "a request arrived
//! from this client" and "refuse it, and ban the client", without the
//! proxy around it. The gateway calls it on every request; the in-app
//! middleware (next) calls the same thing from inside an application.
//!
//! - [`bans::BanTable`]: who is refused now, from every origin.
//! - [`inspect::Inspector`]: request signatures and per-client scoring.
//! - [`Guard`]: both, the whitelist and the policy that turns a verdict
//!   into a ban. A ban reaches the table in one place ([`Guard::enforce`]):
//!   the guard's own decisions, operators' bans and the store's change log
//!   all go through it.

pub mod bans;
pub mod inspect;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rampart_config::{HttpDetectionConfig, PolicyConfig};
use rampart_core::{
    Action, Decision, Evidence, Finding, HumanDuration, Level, Origin, Prediction, Subject,
    Whitelist,
};
use rampart_detect::policy::{Outcome as PolicyOutcome, Policy};
use rampart_store::{ChangeKind, Store, StoreError, StoredDecision};

use crate::bans::{BanEntry, BanKind, BanTable};
use crate::inspect::{Inspector, Judgement, RequestFacts, Verdict};

pub use rampart_detect::http::SignatureError;

/// Labels of the findings the guard makes; each bans for `ban_for`.
pub const LABELS: [&str; 7] = [
    "gateway-flood",
    "gateway-anomaly",
    "gateway-sqli",
    "gateway-xss",
    "gateway-traversal",
    "gateway-scanner",
    "gateway-sensitive-path",
];

/// The `reason` label of `rampart_gateway_bans_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The ban's label (one of [`LABELS`]).
    pub reason: String,
}

/// Counters the guard moves, registered by whoever serves metrics.
#[derive(Debug, Clone, Default)]
pub struct GuardCounters {
    /// Bans the guard decided, by label.
    pub bans: Family<ReasonLabel, Counter>,
    /// Decisions that could not be stored.
    pub store_errors: Counter,
}

/// What the guard is built from.
pub struct GuardConfig<'a> {
    /// Signatures, thresholds and weights.
    pub detection: &'a HttpDetectionConfig,
    /// Ban durations, escalation, dry run.
    pub policy: PolicyConfig,
    /// Addresses never refused or banned.
    pub whitelist: Whitelist,
    /// How long the guard's own bans and operators' default bans last.
    pub ban_for: HumanDuration,
    /// Decide and record, but refuse nothing (monitor mode).
    pub monitor: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client is banned; a flood ban is answered 429 until `until`.
    Banned {
        /// Answer 429 (flood) rather than 403.
        flood: bool,
        /// When the ban ends.
        until: Option<DateTime<Utc>>,
    },
    /// This request made a flood ban (429 until `until`).
    Flood {
        /// When the ban ends.
        until: Option<DateTime<Utc>>,
    },
    /// A request signature matched (403).
    Attack,
    /// The client's behaviour score is at or above the block threshold (403).
    Anomaly,
}

/// What the guard made of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Screening {
    /// The client's key in the behaviour table, once it was scored.
    pub key: Option<IpNet>,
    /// The client's anomaly score, 0..1.
    pub score: f64,
    /// What the request looks like.
    pub prediction: Prediction,
    /// Why it was refused or flagged.
    pub reason: Option<String>,
    /// `Some`: refuse it so.
    pub refusal: Option<Refusal>,
}

impl Screening {
    fn pass() -> Self {
        Self {
            key: None,
            score: 0.0,
            prediction: Prediction::Normal,
            reason: None,
            refusal: None,
        }
    }
}

/// One request as the guard sees it.
pub struct Request<'a> {
    /// The client (after trusted-proxy resolution).
    pub client: IpAddr,
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// Monotonic milliseconds (for rates).
    pub now_ms: u64,
    /// The request id, quoted in a ban's evidence.
    pub id: &'a str,
    /// Method, path, query, headers detection looks at.
    pub facts: &'a RequestFacts<'a>,
}

/// The detection hook: ban table, inspector, whitelist and policy.
pub struct Guard {
    bans: BanTable,
    inspector: Inspector,
    whitelist: Whitelist,
    policy: Mutex<Policy>,
    store: Arc<dyn Store>,
    ban_for: HumanDuration,
    lookback: HumanDuration,
    monitor: bool,
    counters: GuardCounters,
}

impl Guard {
    /// A guard deciding with `config`, storing decisions in `store`.
    pub fn new(
        config: GuardConfig<'_>,
        store: Arc<dyn Store>,
        counters: GuardCounters,
    ) -> Result<Self, SignatureError> {
        let mut policy_config = config.policy;
        policy_config.dry_run |= config.monitor;
        let lookback = policy_config.escalation.lookback;
        let overrides: HashMap<String, HumanDuration> = LABELS
            .iter()
            .map(|l| ((*l).to_owned(), config.ban_for))
            .collect();
        Ok(Self {
            bans: BanTable::new(),
            inspector: Inspector::new(config.detection)?,
            policy: Mutex::new(Policy::new(
                policy_config,
                config.whitelist.clone(),
                overrides,
            )),
            whitelist: config.whitelist,
            store,
            ban_for: config.ban_for,
            lookback,
            monitor: config.monitor,
            counters,
        })
    }

    /// Loads what the store knows: bans in force (into the table) and the
    /// ban history since `lookback` (for escalation).
    pub async fn load(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let history = self
            .store
            .ban_history(now - self.lookback.to_chrono())
            .await?;
        self.policy().seed_history(history);
        let active = self
            .store
            .query_decisions(&rampart_store::DecisionQuery {
                active_at: Some(now),
                ..rampart_store::DecisionQuery::default()
            })
            .await?;
        for stored in &active {
            self.apply_change(ChangeKind::Added, stored, now);
        }
        Ok(())
    }

    fn policy(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ban table (for listings).
    pub fn bans(&self) -> &BanTable {
        &self.bans
    }

    /// The whitelist.
    pub fn whitelist(&self) -> &Whitelist {
        &self.whitelist
    }

    /// Clients tracked by the behaviour table now.
    pub fn tracked(&self) -> usize {
        self.inspector.tracked()
    }

    /// Largest form body inspected (0: bodies are not inspected).
    pub fn max_body_bytes(&self) -> usize {
        self.inspector.max_body_bytes()
    }

    /// Screens a request's head: the ban table, then signatures and the
    /// client's behaviour. A verdict that calls for it bans the client
    /// (through policy), unless whitelisted; in monitor mode nothing is
    /// refused, but bans are still decided (as dry runs) and recorded.
    pub fn screen(self: &Arc<Self>, req: &Request<'_>) -> Screening {
        let mut out = Screening::pass();
        let whitelisted = self.whitelist.contains_addr(req.client);
        if !whitelisted && let Some(ban) = self.bans.lookup(req.client, req.time) {
            out.prediction = Prediction::Blocked;
            out.reason = Some(ban.reason.clone());
            if !(self.monitor || ban.dry_run) {
                out.refusal = Some(Refusal::Banned {
                    flood: ban.kind == BanKind::Flood,
                    until: ban.until,
                });
                return out;
            }
        }
        let judgement = self.inspector.judge(req.client, req.facts, req.now_ms);
        out.key = Some(judgement.key);
        out.score = judgement.score;
        if judgement.verdict == Verdict::Monitor {
            out.reason = judgement.reason;
            return out;
        }
        self.verdict(req, &judgement, whitelisted, out)
    }

    /// Screens a small `application/x-www-form-urlencoded` body read whole
    /// (`key`: the client's key from [`screen`](Self::screen)). `None`: nothing matched.
    pub fn screen_form(
        self: &Arc<Self>,
        req: &Request<'_>,
        key: Option<IpNet>,
        body: &[u8],
    ) -> Option<Screening> {
        let (label, reason) = self.inspector.check_form(body)?;
        let judgement = Judgement {
            key: key.unwrap_or_else(|| self.inspector.key(req.client)),
            score: 1.0,
            verdict: Verdict::Attack(label),
            reason: Some(reason),
            seen: 1,
        };
        let whitelisted = self.whitelist.contains_addr(req.client);
        // The head's key and score stand; the body only adds its verdict.
        Some(self.verdict(req, &judgement, whitelisted, Screening::pass()))
    }

    /// What a refusing verdict does: the prediction, a ban through policy
    /// (unless whitelisted) and the refusal (none in monitor mode).
    /// `Allow` and `Monitor` refuse nothing.
    fn verdict(
        self: &Arc<Self>,
        req: &Request<'_>,
        judgement: &Judgement,
        whitelisted: bool,
        mut out: Screening,
    ) -> Screening {
        let (prediction, kind, label) = match judgement.verdict {
            Verdict::Allow | Verdict::Monitor => return out,
            Verdict::Flood => (Prediction::Ddos, BanKind::Flood, "gateway-flood"),
            Verdict::Anomaly => (Prediction::Ddos, BanKind::Other, "gateway-anomaly"),
            Verdict::Attack(label) => (Prediction::Attack, BanKind::Other, label),
        };
        out.prediction = prediction;
        let reason = judgement.reason.clone().unwrap_or_else(|| label.to_owned());
        if whitelisted {
            out.reason = Some(format!("whitelisted; {reason}"));
            return out;
        }
        let ban = self.decide(req, judgement, label, kind);
        if self.monitor {
            out.reason = Some(format!("monitor: {reason}"));
            return out;
        }
        out.reason = Some(reason);
        out.refusal = Some(match judgement.verdict {
            Verdict::Flood => Refusal::Flood {
                until: ban.and_then(|b| b.until),
            },
            Verdict::Anomaly => Refusal::Anomaly,
            _ => Refusal::Attack,
        });
        out
    }

    /// Decides (through policy) a ban on the judged client and enforces
    /// it; the ban in force afterwards, if any (`None`: policy refused).
    fn decide(
        self: &Arc<Self>,
        req: &Request<'_>,
        judgement: &Judgement,
        label: &str,
        kind: BanKind,
    ) -> Option<BanEntry> {
        let facts = req.facts;
        let summary = judgement
            .reason
            .clone()
            .unwrap_or_else(|| format!("{label} score {:.2}", judgement.score));
        let finding = Finding {
            time: req.time,
            subject: Subject::Net(judgement.key),
            label: label.to_owned(),
            score: judgement.score,
            level: Level::Medium,
            evidence: Evidence {
                count: judgement.seen,
                first_seen: None,
                last_seen: Some(req.time),
                first_line: None,
                last_line: Some(format!(
                    "{} {}{}{} (request id {})",
                    facts.method,
                    facts.path,
                    if facts.query.is_some() { "?" } else { "" },
                    facts.query.unwrap_or(""),
                    req.id
                )),
                distinct: Vec::new(),
                summary,
            },
        };
        let outcome = self.policy().decide(finding, req.time);
        match outcome {
            PolicyOutcome::Decided(decision) if decision.action == Action::Ban => {
                let entry = self.enforce(&decision, None, kind);
                self.counters
                    .bans
                    .get_or_create(&ReasonLabel {
                        reason: label.to_owned(),
                    })
                    .inc();
                tracing::info!(target = %judgement.key, label, until = ?decision.until, "gateway ban");
                self.store_decision(decision, kind);
                Some(entry)
            }
            PolicyOutcome::Decided(_) => None,
            PolicyOutcome::Skipped { note, .. } => {
                // Already banned (a concurrent request decided first): the ban in force.
                tracing::debug!(target = %judgement.key, note, "no new ban");
                self.bans.lookup(req.client, req.time)
            }
        }
    }

    /// The one way a ban reaches the table: the entry, and the ban noted in
    /// force by the policy (so detection never shortens or duplicates it).
    pub fn enforce(&self, decision: &Decision, id: Option<i64>, kind: BanKind) -> BanEntry {
        let entry = ban_entry(decision, id, kind);
        if let Some(until) = decision.until {
            self.policy()
                .note_active(decision.target, until, decision.level());
        }
        self.bans.insert(entry.clone());
        entry
    }

    fn store_decision(self: &Arc<Self>, decision: Decision, kind: BanKind) {
        let guard = Arc::clone(self);
        tokio::spawn(async move {
            match guard.store.insert_decision(&decision).await {
                Ok(id) => {
                    guard.bans.insert(ban_entry(&decision, Some(id), kind));
                }
                Err(error) => {
                    guard.counters.store_errors.inc();
                    tracing::warn!(%error, target = %decision.target, "cannot store gateway ban");
                }
            }
        });
    }

    /// An operator's ban: stored, then enforced. `duration` defaults to `ban_for`.
    pub async fn operator_ban(
        &self,
        target: IpNet,
        duration: Option<Duration>,
        by: &str,
    ) -> Result<BanEntry, StoreError> {
        let now = Utc::now();
        let duration = duration.unwrap_or(self.ban_for.0);
        let decision = Decision::operator_ban(
            target,
            by,
            now,
            HumanDuration(duration).to_chrono(),
            Some(format!("banned by {by} for {}", HumanDuration(duration))),
            false,
        );
        let id = self.store.insert_decision(&decision).await?;
        Ok(self.enforce(&decision, Some(id), BanKind::Other))
    }

    /// An operator's unban: every ban on `target` and inside it is lifted
    /// in the store and here; the client's behaviour history is forgotten.
    /// The ids revoked, and the table entries removed.
    pub async fn operator_unban(
        &self,
        target: IpNet,
        by: &str,
    ) -> Result<(Vec<i64>, usize), StoreError> {
        let ids = self.store.revoke(Some(&target), by, Utc::now()).await?;
        let removed = self.lift(&target, None);
        Ok((ids, removed))
    }

    fn lift(&self, target: &IpNet, id: Option<i64>) -> usize {
        let removed = self.bans.remove(target, id);
        self.policy().lift(Some(target));
        self.inspector.forget(target);
        removed
    }

    /// Applies one change of the store's decision log.
    pub fn apply_change(&self, kind: ChangeKind, stored: &StoredDecision, now: DateTime<Utc>) {
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
                self.enforce(decision, Some(stored.id), ban_kind);
            }
            ChangeKind::Added => {}
            ChangeKind::Revoked => {
                self.lift(&decision.target, Some(stored.id));
            }
        }
    }

    /// Feeds back the status a backend answered to a request of `key`.
    pub fn response(&self, key: IpNet, status: u16, now_ms: u64) {
        self.inspector.response(key, status, now_ms);
    }

    /// Drops expired bans; the bans left.
    pub fn expire(&self, now: DateTime<Utc>) -> usize {
        self.bans.expire(now)
    }
}

/// A table entry for a stored (`id`) or not yet stored decision.
pub fn ban_entry(decision: &Decision, id: Option<i64>, kind: BanKind) -> BanEntry {
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
