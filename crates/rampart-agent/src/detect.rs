//! Detection: batches of events from the sources through the detector
//! (scenarios and policy); decisions and findings into the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::Level;
use rampart_detect::{Outcome, Pipeline};
use rampart_logs::Batch;
use rampart_logs::clock::ClockGuard;
use rampart_store::Store;
use tokio::sync::mpsc;

use crate::metrics::{DecisionLabel, Metrics, ScenarioLabel};

/// What enforcement tells detection.
pub(crate) enum Control {
    /// Bans on the target (and inside it) were lifted.
    Lift(Option<IpNet>),
    /// A ban made elsewhere (an operator, the server) is in force.
    Active(IpNet, DateTime<Utc>, Level),
}

/// Detection: events in, decisions stored.
pub(crate) async fn detect(
    mut detector: Pipeline,
    store: Arc<dyn Store>,
    mut batches: mpsc::Receiver<Batch>,
    mut control: mpsc::UnboundedReceiver<Control>,
    metrics: Arc<Metrics>,
) {
    let mut guards: HashMap<Arc<str>, ClockGuard> = HashMap::new();
    let mut outcomes = Vec::new();
    loop {
        tokio::select! {
            biased;
            Some(ctl) = control.recv() => match ctl {
                Control::Lift(target) => detector.policy_mut().lift(target.as_ref()),
                Control::Active(target, until, level) => detector.policy_mut().note_active(target, until, level),
            },
            batch = batches.recv() => {
                let Some(mut batch) = batch else { return };
                let now = Utc::now();
                let guard = guards.entry(Arc::clone(&batch.source)).or_default();
                for event in &batch.events {
                    if !guard.admit(event.time, now) {
                        batch.counts.clock_jumps += 1;
                        batch.counts.events -= 1;
                        continue;
                    }
                    detector.handle(event, Some(now), &mut outcomes);
                }
                metrics.add_lines(&batch.source, &batch.counts);
                for outcome in outcomes.drain(..) {
                    record(store.as_ref(), outcome, &metrics).await;
                }
                if let Some(position) = &batch.position
                    && let Err(e) = store.save_position(position).await
                {
                    metrics.store_errors.inc();
                    tracing::error!(error = %e, path = %position.path, "cannot save position");
                }
            }
        }
    }
}

/// Stores an outcome; a decision is retried until stored, since the
/// enforcer only acts on what the store holds.
async fn record(store: &dyn Store, outcome: Outcome, metrics: &Metrics) {
    match outcome {
        Outcome::Decided(decision) => {
            let scenario = decision.origin.name().to_owned();
            metrics
                .findings
                .get_or_create(&ScenarioLabel {
                    scenario: scenario.clone(),
                })
                .inc();
            metrics
                .decisions
                .get_or_create(&DecisionLabel {
                    origin: scenario.clone(),
                    action: decision.action.as_str().to_owned(),
                    dry_run: decision.dry_run.to_string(),
                })
                .inc();
            metrics.decisions_total.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                ip = %rampart_core::addr::display_net(&decision.target),
                action = decision.action.as_str(),
                scenario = %scenario,
                until = %decision.until.map(|u| u.to_rfc3339()).unwrap_or_else(|| "-".to_owned()),
                dry_run = decision.dry_run,
                reason = %decision.reason,
                "decision"
            );
            let mut delay = Duration::from_millis(100);
            loop {
                match store.insert_decision(&decision).await {
                    Ok(_) => break,
                    Err(e) => {
                        metrics.store_errors.inc();
                        tracing::error!(error = %e, "cannot store decision; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        Outcome::Skipped { finding, note } => {
            metrics
                .findings
                .get_or_create(&ScenarioLabel {
                    scenario: finding.label.clone(),
                })
                .inc();
            tracing::debug!(scenario = %finding.label, subject = %finding.subject, %note, "finding without decision");
            if let Err(e) = store.insert_finding(&finding, &note).await {
                metrics.store_errors.inc();
                tracing::error!(error = %e, "cannot store finding");
            }
        }
    }
}
