//! The fleet client: how an agent or a gateway reports to the central
//! server (`[fleet] url, token`).
//!
//! Everything is still stored locally — the node keeps working, and keeps
//! enforcing its own bans, while the server is away. Beside it run three
//! loops:
//!
//! - **push** ([`outbox`]): what the node records (its own ban decisions,
//!   findings, actuator actions, request-log records) is read from its
//!   store after per-kind cursors and pushed in batches
//!   (`POST /api/v1/events`, `POST /api/v1/logs`), retried with backoff;
//! - **follow** ([`stream`]): the server's decision stream is applied to
//!   the local store, so a ban made anywhere is enforced here;
//! - **heartbeat**: `POST /api/v1/heartbeat` every few seconds.
//!
//! [`Fleet::start`] starts them; [`Fleet::finish`] pushes what is left
//! (a few seconds at most) and stops them.

pub mod link;
pub mod metrics;
pub mod outbox;
pub mod stream;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_api::HeartbeatIn;
use rampart_config::FleetConfig;
use rampart_store::Store;

pub use crate::link::{Link, LinkConfigError, LinkError};
pub use crate::metrics::FleetMetrics;
use crate::outbox::Outbox;
use crate::stream::StreamFollower;

/// What the node counts for its heartbeat: (processed, blocked).
pub type Counters = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

/// What a node is, for the server's fleet list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Follows logs and enforces bans in the firewall.
    Agent,
    /// The inline HTTP gateway.
    Gateway,
}

impl NodeKind {
    /// `agent` or `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Agent => "agent",
            NodeKind::Gateway => "gateway",
        }
    }
}

/// Longest [`Fleet::finish`] pushes before giving up.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// A node's running link to the server.
pub struct Fleet {
    outbox: Arc<tokio::sync::Mutex<Outbox>>,
    metrics: Arc<FleetMetrics>,
    counters: Arc<Mutex<Option<Counters>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Starts pushing, following and heartbeats for `store` as node `node`
    /// of `kind`; `None` when `config` has no `url`.
    pub async fn start(
        config: &FleetConfig,
        store: Arc<dyn Store>,
        node: String,
        kind: NodeKind,
    ) -> Result<Option<Self>, FleetError> {
        if config.url.is_none() {
            return Ok(None);
        }
        let link = Arc::new(Link::new(config)?);
        let metrics = Arc::new(FleetMetrics::default());
        let outbox = Outbox::load(
            Arc::clone(&store),
            Arc::clone(&link),
            Arc::clone(&metrics),
            config.batch,
        )
        .await?;
        let outbox = Arc::new(tokio::sync::Mutex::new(outbox));
        let follower = StreamFollower::load(
            Arc::clone(&store),
            Arc::clone(&link),
            Arc::clone(&metrics),
            config.follow_every.0,
        )
        .await;
        let counters: Arc<Mutex<Option<Counters>>> = Arc::new(Mutex::new(None));
        let heartbeat = Heartbeat {
            link: Arc::clone(&link),
            metrics: Arc::clone(&metrics),
            counters: Arc::clone(&counters),
            node: node.clone(),
            kind,
            started: Utc::now(),
            every: config.heartbeat_every.0,
        };
        let tasks = vec![
            tokio::spawn(push_loop(Arc::clone(&outbox), config.push_every.0)),
            tokio::spawn(follower.run()),
            tokio::spawn(heartbeat.run()),
        ];
        tracing::info!(server = link.base(), %node, kind = kind.as_str(), "reporting to the server");
        Ok(Some(Self {
            outbox,
            metrics,
            counters,
            tasks,
        }))
    }

    /// Sets what the heartbeat reports as processed and blocked.
    pub fn set_counters(&self, counters: Counters) {
        if let Ok(mut c) = self.counters.lock() {
            *c = Some(counters);
        }
    }

    /// The link's metrics (to register in the node's registry).
    pub fn metrics(&self) -> &Arc<FleetMetrics> {
        &self.metrics
    }

    /// Stops the loops, then pushes what the outbox still has, for a few
    /// seconds at most (what is left is pushed after the next start).
    pub async fn finish(self) {
        for task in &self.tasks {
            task.abort();
        }
        let drained = tokio::time::timeout(FINISH_WITHIN, async {
            self.outbox.lock().await.drain().await
        })
        .await;
        match drained {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "fleet: not everything was pushed before stopping; the rest goes after the next start")
            }
            Err(_) => tracing::warn!(
                "fleet: pushing took too long at stop; the rest goes after the next start"
            ),
        }
    }
}

/// Why the fleet link could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The configuration cannot make a link.
    #[error(transparent)]
    Config(#[from] LinkConfigError),
    /// The outbox's cursors could not be read.
    #[error("fleet: cannot read the outbox cursors: {0}")]
    Store(#[from] rampart_store::StoreError),
}

/// Pushes until the outbox is empty or the server fails, then waits; forever.
async fn push_loop(outbox: Arc<tokio::sync::Mutex<Outbox>>, every: Duration) {
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = every;
        let result = outbox.lock().await.drain().await;
        if let Err(error) = result {
            tracing::warn!(%error, "fleet: push failed; retrying");
            wait = (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
        }
    }
}

struct Heartbeat {
    link: Arc<Link>,
    metrics: Arc<FleetMetrics>,
    counters: Arc<Mutex<Option<Counters>>>,
    node: String,
    kind: NodeKind,
    started: DateTime<Utc>,
    every: Duration,
}

impl Heartbeat {
    async fn run(self) {
        let mut ticker = tokio::time::interval(self.every);
        loop {
            ticker.tick().await;
            let (processed, blocked) = self
                .counters
                .lock()
                .ok()
                .and_then(|c| c.as_ref().map(|f| f()))
                .unwrap_or_default();
            let beat = HeartbeatIn {
                id: Some(self.node.clone()),
                kind: self.kind.as_str().to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_at: self.started,
                processed,
                blocked,
            };
            if let Err(error) = self.link.post("/api/v1/heartbeat", &beat).await {
                self.metrics.heartbeat_failures.inc();
                tracing::debug!(%error, "fleet: heartbeat failed");
            }
        }
    }
}
