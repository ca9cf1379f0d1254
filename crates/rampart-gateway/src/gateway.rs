//! The gateway: built from [`GatewayConfig`], it binds its listeners, then
//! runs the accept loops, the admin listener, health checks, the decision
//! follower and the request-log writer until shut down.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_config::{GatewayConfig, GatewayMode, parse_backend_url};
use rampart_store::{ChangeSink, Follower};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::backend::{CheckResult, Pool};
use crate::hooks::{GuardHook, Hooks};
use crate::metrics::{BackendLabel, Metrics};
use crate::request_log::RequestLog;
use crate::shared::{GatewayContext, GatewayError, Shared};
use rampart_guard::{Guard, GuardConfig, GuardCounters};
use rampart_http::forwarded::TrustedProxies;

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

        let metrics = Arc::new(match ctx.more_metrics {
            Some(more) => Metrics::with_more(more),
            None => Metrics::new(),
        });
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

        let guard = Arc::new(
            Guard::new(
                GuardConfig {
                    detection: &config.detection,
                    policy: ctx.policy,
                    whitelist: ctx.whitelist,
                    ban_for: config.ban_for,
                    monitor: config.mode == GatewayMode::Monitor,
                },
                Arc::clone(&store),
                GuardCounters {
                    bans: metrics.bans.clone(),
                    store_errors: metrics.store_errors.clone(),
                },
            )
            .map_err(|e| GatewayError::Config(format!("gateway.detection.signatures: {e}")))?,
        );
        // The cursor to follow from, then the bans in force and the
        // escalation history (a change between the two is applied twice,
        // which is harmless; none is missed).
        let cursor = store.latest_cursor().await?;
        let now = Utc::now();
        guard.load(now).await?;
        let mut hooks: Vec<Arc<dyn Hooks>> = vec![Arc::new(GuardHook::new(
            Arc::clone(&guard),
            config.timeouts.header_read.0,
        ))];
        hooks.extend(ctx.hooks);

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
            hooks,
            guard,
            metrics,
            log,
            store,
            started: Instant::now(),
            started_at: now,
            id_prefix: rand_u32(),
            next_id: AtomicU64::new(0),
        });
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

/// How often the decision change log is read.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// The gateway's [`ChangeSink`]: bans and unbans made anywhere (agents,
/// the CLI, other gateways, the server) apply here within [`FOLLOW_EVERY`].
struct BanTableSink(Arc<Shared>);

#[async_trait::async_trait]
impl ChangeSink for BanTableSink {
    async fn apply(&mut self, changes: &[rampart_store::Change]) {
        let now = Utc::now();
        for change in changes {
            self.0
                .guard
                .apply_change(change.kind, &change.decision, now);
        }
    }

    fn store_error(&mut self, error: &rampart_store::StoreError) {
        self.0.metrics.store_errors.inc();
        tracing::warn!(%error, "cannot read the decision change log");
    }
}

/// Follows the store's decision change log from `cursor` until `stop`.
async fn follow_decisions(
    shared: Arc<Shared>,
    cursor: i64,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let follower = Follower::from(shared.store.clone(), cursor);
    follower
        .run(&mut BanTableSink(shared), FOLLOW_EVERY, stop)
        .await;
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
        let left = shared.guard.expire(Utc::now());
        shared
            .metrics
            .banned
            .set(i64::try_from(left).unwrap_or(i64::MAX));
        shared
            .metrics
            .tracked_clients
            .set(i64::try_from(shared.guard.tracked()).unwrap_or(i64::MAX));
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
