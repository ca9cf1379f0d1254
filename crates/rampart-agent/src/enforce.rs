//! Enforcement: the store's change log carried out by an actuator (the
//! firewall), each try recorded as an action; and detection told of bans
//! made or lifted elsewhere.
//!
//! Every decision reaches the actuator this way, wherever it was made —
//! this agent's detection, `rampart decisions ban`, the server — so there
//! is one path to test and to trust.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::Utc;
use rampart_act::{Attempt, Executor, Queued};
use rampart_core::{Action, Decision, Origin};
use rampart_store::{ActionRecord, Change, ChangeKind, ChangeSink, Store, StoreError};
use tokio::sync::mpsc;

use crate::detect::Control;
use crate::metrics::{Metrics, OpLabel};

/// Rounds between two refreshes of the active-bans gauge.
const GAUGE_EVERY: u64 = 20;

/// The agent's [`ChangeSink`]: changes to the executor and to detection.
pub(crate) struct Enforcement {
    /// `None` without an actuator (firewall backend `none`): decisions are
    /// stored and detection still learns of them.
    pub executor: Option<Executor>,
    pub control: mpsc::UnboundedSender<Control>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// The node name actions are recorded under.
    pub node: String,
    pub rounds: u64,
}

impl Enforcement {
    /// Queues the bans of `decisions` (those in force at start-up).
    pub fn queue_all(&mut self, decisions: &[Decision]) -> usize {
        let now = Utc::now();
        let Some(executor) = self.executor.as_mut() else {
            return 0;
        };
        decisions
            .iter()
            .filter(|d| queue_logged(executor, d, now) == Queued::Ban)
            .count()
    }

    /// Tries what is queued (off the runtime: actuators block), then
    /// records and counts every attempt.
    pub async fn run_executor(&mut self) {
        let Some(mut executor) = self.executor.take() else {
            return;
        };
        if executor.pending() == 0 {
            self.executor = Some(executor);
            return;
        }
        let joined = tokio::task::spawn_blocking(move || {
            let attempts = executor.run(Utc::now(), Instant::now());
            (executor, attempts)
        })
        .await;
        match joined {
            Ok((executor, attempts)) => {
                self.executor = Some(executor);
                for attempt in &attempts {
                    self.report(attempt).await;
                }
            }
            // The executor panicked: its queue is lost with it. Say so loudly;
            // the decisions stay in the store and a restart restores them.
            Err(e) => tracing::error!(error = %e, "the actuator panicked; enforcement stops"),
        }
    }

    async fn report(&self, attempt: &Attempt) {
        let label = OpLabel {
            backend: attempt.actuator.clone(),
            op: attempt.verb.to_owned(),
        };
        let n = attempt.targets.len();
        if attempt.ok {
            self.metrics
                .firewall_ops
                .get_or_create(&label)
                .inc_by(n as u64);
        } else {
            self.metrics.firewall_failures.get_or_create(&label).inc();
            tracing::error!(
                error = %attempt.detail,
                op = attempt.verb,
                elements = n,
                attempt = attempt.attempt,
                "firewall operation failed; will retry"
            );
        }
        let now = Utc::now();
        for target in &attempt.targets {
            let action = ActionRecord {
                time: now,
                node: self.node.clone(),
                decision_id: None,
                action: attempt.verb.to_owned(),
                target: rampart_core::addr::display_net(target),
                ok: attempt.ok,
                detail: attempt.detail.clone(),
            };
            if let Err(e) = self.store.insert_action(&action).await {
                self.metrics.store_errors.inc();
                tracing::warn!(error = %e, "cannot record a firewall action");
                return;
            }
        }
    }

    async fn refresh_gauge(&self) {
        let Some(executor) = &self.executor else {
            return;
        };
        let actuator = Arc::clone(executor.actuator());
        if let Ok(Some(held)) = tokio::task::spawn_blocking(move || actuator.held()).await {
            self.metrics
                .active_bans
                .set(i64::try_from(held).unwrap_or(i64::MAX));
        }
    }
}

/// Queues `decision`, saying when a whitelist keeps it out of the firewall.
fn queue_logged(
    executor: &mut Executor,
    decision: &Decision,
    now: chrono::DateTime<Utc>,
) -> Queued {
    let queued = executor.queue(decision, now);
    if queued == Queued::Whitelisted {
        tracing::info!(
            ip = %rampart_core::addr::display_net(&decision.target),
            "ban not enforced in the firewall: whitelisted"
        );
    }
    queued
}

#[async_trait]
impl ChangeSink for Enforcement {
    async fn apply(&mut self, changes: &[Change]) {
        let now = Utc::now();
        for change in changes {
            let d = &change.decision.decision;
            match change.kind {
                ChangeKind::Added if d.action == Action::Ban => {
                    if let (Origin::Operator(_), Some(until)) = (&d.origin, d.until) {
                        let _ = self
                            .control
                            .send(Control::Active(d.target, until, d.level()));
                    }
                    if let Some(executor) = self.executor.as_mut() {
                        queue_logged(executor, d, now);
                    }
                }
                ChangeKind::Added => {}
                ChangeKind::Revoked => {
                    let _ = self.control.send(Control::Lift(Some(d.target)));
                    if let Some(executor) = self.executor.as_mut() {
                        executor.queue_lift(d.target);
                    }
                }
            }
        }
    }

    async fn tick(&mut self) {
        self.rounds += 1;
        self.run_executor().await;
        if self.rounds.is_multiple_of(GAUGE_EVERY) {
            self.refresh_gauge().await;
        }
    }

    fn store_error(&mut self, error: &StoreError) {
        self.metrics.store_errors.inc();
        tracing::error!(%error, "cannot read the decision change log");
    }
}
