//! rampart's agent role: follows log sources, detects, stores decisions,
//! and carries them out with an actuator (the firewall).
//!
//! ```text
//!  file sources (a thread per path) ─┐                ┌─► store ── change log ─► Follower ─► Enforcement ─► Executor ─► firewall
//!  journal source (a thread) ────────┴─► detection ───┤                                          │
//!                        (one bounded channel)        └─ findings not decided                    └─► detection (lifted / noted bans)
//! ```
//!
//! Every decision reaches the actuator through the store's change log, the
//! same way a ban made with `rampart decisions ban` or by a server does. A
//! source's position is saved only after the events before it were decided
//! and stored, so a restart neither loses nor repeats a line's effect.
//!
//! [`replay`] runs the same parsers, scenarios and policy over files, as
//! fast as the cores allow, with the times in the lines.

pub mod detect;
mod enforce;
pub mod host;
pub mod metrics;
pub mod replay;
pub mod rules;
mod sources;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use rampart_act::{Executor, FirewallActuator, RetryPolicy};
use rampart_config::Config;
use rampart_core::{Action, Decision, Whitelist};
use rampart_detect::{Pipeline, Policy};
use rampart_logs::Batch;
use rampart_store::{DecisionQuery, Follower, Store};
use tokio::sync::{mpsc, watch};

pub use host::{host_addresses, host_name};
pub use metrics::Metrics;
pub use rules::Rules;

use detect::Control;
use enforce::Enforcement;

/// How often enforcement reads the change log.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// How long stopping waits for detection to drain the sources' batches.
const DRAIN_FOR: Duration = Duration::from_secs(10);

/// A running agent.
pub struct Agent {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    detection: tokio::task::JoinHandle<()>,
    follower_stop: watch::Sender<bool>,
    follower: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Starts the agent of `config` with `rules` over `store`, counting in
    /// `metrics`; actions are recorded under `node`. Sets the firewall up
    /// and restores the bans in force first; an error here (no nftables,
    /// not root, a source that cannot start) starts nothing.
    pub async fn start(
        config: &Config,
        rules: Rules,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        node: String,
    ) -> anyhow::Result<Self> {
        let now = Utc::now();
        let whitelist =
            Whitelist::new(config.policy.whitelist_nets()?).with_host_addresses(host_addresses());
        let mut policy = Policy::new(
            config.policy.clone(),
            whitelist.clone(),
            Pipeline::overrides(&rules.scenarios),
        );
        policy.seed_history(
            store
                .ban_history(now - config.policy.escalation.lookback.to_chrono())
                .await?,
        );
        let active = store
            .query_decisions(&DecisionQuery {
                active_at: Some(now),
                ..DecisionQuery::default()
            })
            .await?;
        for row in &active {
            if let Some(until) = row.decision.until {
                policy.note_active(row.decision.target, until, row.decision.level());
            }
        }
        let follower = Follower::at_latest(store.clone()).await?;

        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<Control>();
        let executor = match rampart_act::build_firewall(&config.firewall) {
            Some(firewall) => {
                let actuator = Arc::new(FirewallActuator(Arc::from(firewall)));
                let setup = Arc::clone(&actuator);
                tokio::task::spawn_blocking(move || rampart_act::Actuator::setup(&*setup))
                    .await?
                    .context("cannot set up the firewall (run as root with nftables installed, or set firewall.backend)")?;
                Some(Executor::new(actuator, whitelist, RetryPolicy::default()))
            }
            None => {
                tracing::warn!("firewall backend is none: decisions are stored, not enforced");
                None
            }
        };
        let mut enforcement = Enforcement {
            executor,
            control: ctl_tx,
            store: Arc::clone(&store),
            metrics: Arc::clone(&metrics),
            node,
            rounds: 0,
        };
        if enforcement.executor.is_some() {
            let restore: Vec<Decision> = active
                .iter()
                .filter(|r| !r.decision.dry_run && r.decision.action == Action::Ban)
                .map(|r| r.decision.clone())
                .collect();
            let queued = enforcement.queue_all(&restore);
            enforcement.run_executor().await;
            let backend = enforcement
                .executor
                .as_ref()
                .map(|e| e.actuator().name().to_owned());
            tracing::info!(
                backend = backend.as_deref().unwrap_or("none"),
                restored = queued,
                "firewall ready"
            );
        }

        let stop = Arc::new(AtomicBool::new(false));
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(32);
        let mut threads = Vec::new();
        for source in &config.sources {
            let saved = store.load_positions(&source.name).await?;
            match sources::start_source(source, &rules.parsers, saved, &batch_tx, &stop, &metrics) {
                Ok(started) => threads.extend(started),
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        drop(batch_tx);
        if threads.is_empty() {
            tracing::warn!(
                "no log sources configured: only decisions made with `rampart decisions` are enforced"
            );
        }

        let (follower_stop, stopped) = watch::channel(false);
        let follower = tokio::spawn(async move {
            follower.run(&mut enforcement, FOLLOW_EVERY, stopped).await;
        });
        let detection = tokio::spawn(detect::detect(
            Pipeline::new(&rules.scenarios, policy),
            store,
            batch_rx,
            ctl_rx,
            metrics,
        ));
        tracing::info!(
            sources = config.sources.len(),
            scenarios = rules.scenarios.scenarios.len(),
            dry_run = config.policy.dry_run,
            "agent started"
        );
        Ok(Self {
            stop,
            threads,
            detection,
            follower_stop,
            follower,
        })
    }

    /// Stops the sources, lets detection decide and store what they read
    /// (up to ten seconds), then stops enforcement.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        // Detection ends when every source thread has gone and its channel
        // is drained.
        let _ = tokio::time::timeout(DRAIN_FOR, self.detection).await;
        let _ = self.follower_stop.send(true);
        let _ = self.follower.await;
    }
}
