//! The gateway: built from [`GatewayConfig`], it binds its listeners, then
//! runs the accept loops, the admin listener, health checks, the decision
//! follower and the request-log writer until shut down.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use rampart_config::{GatewayConfig, GatewayMode, PolicyConfig, parse_backend_url};
use rampart_core::{
    Action, Decision, Evidence, Finding, HumanDuration, Level, Origin, Subject, Whitelist,
};
use rampart_detect::policy::{Outcome as PolicyOutcome, Policy};
use rampart_store::{ChangeKind, DecisionQuery, Store, StoredDecision};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::backend::{CheckResult, Pool};
use crate::bans::{BanEntry, BanKind, BanTable};
use crate::inspect::{Inspector, Judgement, RequestFacts};
use crate::metrics::{BackendLabel, Metrics, ReasonLabel};
use crate::proxy::{Body, RequestCtx};
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

/// How often the decision change log is read.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

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
}

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
    policy: Mutex<Policy>,
    started: Instant,
    pub(crate) started_at: DateTime<Utc>,
    id_prefix: u32,
    next_id: AtomicU64,
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

    fn store_decision(self: &Arc<Self>, decision: Decision, kind: BanKind) {
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
    fn apply_change(&self, kind: ChangeKind, stored: &StoredDecision, now: DateTime<Utc>) {
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

fn ban_entry(decision: &Decision, id: Option<i64>, kind: BanKind) -> BanEntry {
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

/// A gateway with its listeners bound, ready to run.
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    admin: Option<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cursor: i64,
    log_writer: Option<tokio::task::JoinHandle<()>>,
    log_stop: tokio::sync::watch::Sender<bool>,
}

impl Gateway {
    /// Checks the config, binds every listener, loads the bans in force
    /// and the ban history from the store, and starts the request-log
    /// writer. Nothing is served until [`Gateway::run`].
    pub async fn build(config: &GatewayConfig, ctx: GatewayContext) -> Result<Self, GatewayError> {
        let problems = config.validate();
        if !problems.is_empty() {
            return Err(GatewayError::Config(problems.join("; ")));
        }
        if config.backends.is_empty() {
            return Err(GatewayError::Config(
                "gateway: no backend configured ([[gateway.backend]] or --backend)".into(),
            ));
        }
        let backends = config
            .backends
            .iter()
            .map(|b| parse_backend_url(&b.url).map(|authority| (b.url.clone(), authority)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(GatewayError::Config)?;
        let trusted = config
            .trusted_proxies
            .iter()
            .map(|p| rampart_core::parse_net(p).map_err(|e| GatewayError::Config(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match &config.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(
                rampart_http::tls::server_config(&tls.cert, &tls.key)?,
            )),
            None => None,
        };

        let mut listeners = Vec::new();
        for addr in &config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: *addr,
                    source,
                })?;
            listeners.push(listener);
        }
        let admin = match config.admin {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind { addr, source })?,
            ),
            None => None,
        };

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeouts.connect.0));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .build(connector);

        let metrics = Arc::new(Metrics::new());
        let store = ctx.store;
        let (log_stop, log_stop_rx) = tokio::sync::watch::channel(false);
        let (log, log_writer) = if config.request_log.enabled {
            let (log, writer) = RequestLog::start(
                Arc::clone(&store),
                Arc::clone(&metrics),
                config.request_log.queue,
                config.request_log.batch,
                log_stop_rx,
            );
            (log, Some(writer))
        } else {
            (RequestLog::disabled(), None)
        };

        let mut policy_config = ctx.policy;
        policy_config.dry_run |= config.mode == GatewayMode::Monitor;
        let overrides: HashMap<String, HumanDuration> = LABELS
            .iter()
            .map(|l| ((*l).to_owned(), config.ban_for))
            .collect();
        let lookback = policy_config.escalation.lookback;
        let mut policy = Policy::new(policy_config, ctx.whitelist.clone(), overrides);

        // Bans in force and the escalation history, then the cursor to follow from.
        let cursor = store.latest_cursor().await?;
        let now = Utc::now();
        let active = store
            .query_decisions(&DecisionQuery {
                active_at: Some(now),
                ..DecisionQuery::default()
            })
            .await?;
        let history = store.ban_history(now - lookback.to_chrono()).await?;
        policy.seed_history(history);

        let pool = Arc::new(Pool::new(backends, config.balance, config.health.clone()));
        for b in pool.backends() {
            metrics
                .backend_up
                .get_or_create(&BackendLabel {
                    backend: b.url.clone(),
                })
                .set(1);
        }
        let shared = Arc::new(Shared {
            id: ctx.id,
            config: config.clone(),
            pool,
            client,
            trusted: TrustedProxies::new(trusted),
            whitelist: ctx.whitelist,
            bans: BanTable::new(),
            inspector: Inspector::new(&config.detection)
                .map_err(|e| GatewayError::Config(format!("gateway.detection.signatures: {e}")))?,
            metrics,
            log,
            store,
            policy: Mutex::new(policy),
            started: Instant::now(),
            started_at: now,
            id_prefix: rand_u32(),
            next_id: AtomicU64::new(0),
        });
        for stored in &active {
            shared.apply_change(ChangeKind::Added, stored, now);
        }
        Ok(Self {
            shared,
            listeners,
            admin,
            tls,
            cursor,
            log_writer,
            log_stop,
        })
    }

    /// The addresses the proxy listens on (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then stops accepting, lets open
    /// requests finish (up to 10 s) and flushes the request log.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), GatewayError> {
        let Gateway {
            shared,
            listeners,
            admin,
            tls,
            cursor,
            log_writer,
            log_stop,
        } = self;
        let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();

        for listener in listeners {
            tasks.spawn(crate::server::accept_loop(
                Arc::clone(&shared),
                listener,
                tls.clone(),
                Arc::clone(&graceful),
                stop_rx.clone(),
            ));
        }
        if let Some(admin) = admin {
            let router = crate::admin::router(Arc::clone(&shared));
            let mut stop = stop_rx.clone();
            tasks.spawn(async move {
                let served = axum::serve(admin, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(error) = served {
                    tracing::error!(%error, "admin listener failed");
                }
            });
        }
        if shared.config.health.enabled {
            for index in 0..shared.pool.backends().len() {
                tasks.spawn(health_loop(Arc::clone(&shared), index, stop_rx.clone()));
            }
        }
        tasks.spawn(follow_decisions(
            Arc::clone(&shared),
            cursor,
            stop_rx.clone(),
        ));
        tasks.spawn(housekeeping(Arc::clone(&shared), stop_rx.clone()));

        tracing::info!(gateway = %shared.id, "gateway serving");
        shutdown.await;
        tracing::info!("gateway stopping");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Every accept loop has ended, so this is the last handle.
        if let Ok(graceful) = Arc::try_unwrap(graceful)
            && tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
                .await
                .is_err()
        {
            tracing::warn!("connections still open after 10s, closing them");
        }
        // Requests are over: the writer writes what is queued and ends.
        let _ = log_stop.send(true);
        drop(shared);
        if let Some(writer) = log_writer
            && tokio::time::timeout(Duration::from_secs(10), writer)
                .await
                .is_err()
        {
            tracing::warn!("request log not flushed within 10s");
        }
        Ok(())
    }

    /// The shared state (for in-process tests and the admin router).
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
}

/// Checks one backend every interval.
async fn health_loop(
    shared: Arc<Shared>,
    index: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let health = shared.pool.health().clone();
    let backend_url = shared.pool.backends()[index].url.clone();
    let uri = match shared.pool.backends()[index].uri(&health.path) {
        Ok(uri) => uri,
        Err(error) => {
            tracing::error!(%error, backend = %backend_url, "bad health-check uri");
            return;
        }
    };
    let mut ticker = tokio::time::interval(health.interval.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = Instant::now();
        let request = http::Request::get(uri.clone())
            .header(http::header::USER_AGENT, "rampart-health-check")
            .body(http_body_util::BodyExt::boxed_unsync(
                http_body_util::BodyExt::map_err(Empty::<Bytes>::new(), |e| match e {}),
            ));
        let Ok(request) = request else { return };
        let outcome = tokio::time::timeout(health.timeout.0, shared.client.request(request)).await;
        let (status, error) = match outcome {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                let error = (status >= health.max_status).then(|| format!("status {status}"));
                (Some(status), error)
            }
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some(format!("no answer within {}", health.timeout))),
        };
        let result = CheckResult {
            status,
            error,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            at: Utc::now().to_rfc3339(),
        };
        match shared.pool.report_check(index, result).await {
            crate::backend::Transition::Up => shared.backend_changed(index, true),
            crate::backend::Transition::Down => shared.backend_changed(index, false),
            crate::backend::Transition::None => {}
        }
    }
}

/// Follows the store's decision change log: bans and unbans made anywhere
/// (agents, CLI, other gateways) apply here within [`FOLLOW_EVERY`].
async fn follow_decisions(
    shared: Arc<Shared>,
    mut cursor: i64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(FOLLOW_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match shared.store.changes_since(cursor, 1000).await {
                Ok(changes) => {
                    let now = Utc::now();
                    for change in &changes {
                        shared.apply_change(change.kind, &change.decision, now);
                        cursor = change.seq;
                    }
                    if changes.len() < 1000 {
                        break;
                    }
                }
                Err(error) => {
                    shared.metrics.store_errors.inc();
                    tracing::warn!(%error, "cannot read the decision change log");
                    break;
                }
            }
        }
    }
}

/// How often old request-log records are deleted.
const RETENTION_EVERY: u64 = 600;

/// Expires bans and refreshes gauges once a second; deletes request-log
/// records older than `request_log.keep` every ten minutes.
async fn housekeeping(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let keep = shared.config.request_log.keep.0;
        if ticks.is_multiple_of(RETENTION_EVERY) && !keep.is_zero() {
            let before =
                Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
            match shared.store.purge_requests(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "request log retention"),
                Err(error) => {
                    shared.metrics.store_errors.inc();
                    tracing::warn!(%error, "request log retention failed");
                }
            }
        }
        ticks += 1;
        let left = shared.bans.expire(Utc::now());
        shared
            .metrics
            .banned
            .set(i64::try_from(left).unwrap_or(i64::MAX));
        shared
            .metrics
            .tracked_clients
            .set(i64::try_from(shared.inspector.tracked()).unwrap_or(i64::MAX));
    }
}

/// A random-enough u32 for request-id prefixes (no RNG dependency).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}
