//! The agent: follows log sources, detects, stores decisions, and enforces
//! them in the firewall.
//!
//! ```text
//!  tail threads (one per path) ─┐               ┌─► store ── change log ─► enforcer ─► firewall
//!  journal thread ──────────────┴─► detection ──┤                              │
//!                     (bounded channel)         └─ findings not decided         └─► detection (lift / note bans)
//! ```
//!
//! Every decision reaches the firewall through the store's change log, the
//! same way a ban made with `rampart decisions ban` (or, later, by a server)
//! does. A position is saved only after the events before it were decided
//! and stored, so a restart neither loses nor repeats a line's effect.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_act::Firewall;
use rampart_config::{Config, SourceConfig, SourceType};
use rampart_core::{Action, Decision, Level, Origin, Whitelist};
use rampart_detect::{Detector, Outcome, Policy};
use rampart_logs::clock::ClockGuard;
use rampart_logs::journal::{JournalParser, JournalSource};
use rampart_logs::parse::{LineParser, ParseOptions, ParserRules, build_parser};
use rampart_logs::tail::{FileSource, TailOptions};
use rampart_logs::{Batch, Source};
use rampart_store::{ChangeKind, DecisionQuery, Position, Store};
use tokio::sync::mpsc;

use crate::metrics::{DecisionLabel, Metrics, OpLabel, ScenarioLabel};
use crate::rules::{self, Rules};

/// How often the enforcer reads the change log.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// What the enforcer tells detection.
enum Control {
    /// Bans on the target (and inside it) were lifted.
    Lift(Option<IpNet>),
    /// A ban made elsewhere (an operator) is in force.
    Active(IpNet, DateTime<Utc>),
}

/// Runs the agent; with `with_gateway`, also the gateway when the config
/// has backends (`rampart run`), on the same store.
pub fn run(path: &Path, with_gateway: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let rules = rules::load(config.rules.dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(agent(config, rules, with_gateway))
}

async fn agent(config: Config, rules: Rules, with_gateway: bool) -> anyhow::Result<ExitCode> {
    let local: Arc<dyn Store> = Arc::from(
        rampart_store::open(&config.store.url)
            .await
            .with_context(|| format!("cannot open store {}", config.store.url))?,
    );
    let node_name = config.agent.name.clone().unwrap_or_else(host_name);
    let fleet = crate::fleet::attach(
        &config.fleet,
        Arc::clone(&local),
        node_name.clone(),
        rampart_fleet::NodeKind::Agent,
    )
    .await?;
    let metrics = Metrics::with_fleet(fleet.as_ref().map(|f| Arc::clone(f.metrics())));
    if let Some(fleet) = &fleet {
        let m = Arc::clone(&metrics);
        fleet.set_counters(Box::new(move || {
            (
                m.lines_total.load(Ordering::Relaxed),
                m.decisions_total.load(Ordering::Relaxed),
            )
        }));
    }
    let store = local;
    let now = Utc::now();
    let entries = crate::gateway::whitelist_entries(&config)?;
    let gateway = if with_gateway && !config.gateway.backends.is_empty() {
        let ctx = crate::gateway::context(&config, Arc::clone(&store))?;
        Some(rampart_gateway::Gateway::build(&config.gateway, ctx).await?)
    } else {
        None
    };
    let whitelist = Whitelist::new(entries).with_host_addresses(host_addresses());
    let mut policy = Policy::new(
        config.policy.clone(),
        whitelist.clone(),
        Detector::overrides(&rules.scenarios),
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
            policy.note_active(row.decision.target, until, decision_level(&row.decision));
        }
    }
    let cursor = store.latest_cursor().await?;

    let firewall: Option<Arc<dyn Firewall>> =
        rampart_act::build_firewall(&config.firewall).map(Arc::from);
    if let Some(fw) = &firewall {
        let setup = Arc::clone(fw);
        tokio::task::spawn_blocking(move || setup.setup())
            .await?
            .context("cannot set up the firewall (run as root with nftables installed, or set firewall.backend)")?;
        let restore: Vec<Decision> = active
            .iter()
            .filter(|r| !r.decision.dry_run && r.decision.action == Action::Ban)
            .map(|r| r.decision.clone())
            .collect();
        let mut enforcer = Enforcer::new(Arc::clone(fw), Arc::clone(&metrics), whitelist.clone());
        enforcer.queue_bans(&restore, now);
        enforcer.flush().await;
        tracing::info!(
            backend = fw.name(),
            restored = restore.len(),
            "firewall ready"
        );
    } else {
        tracing::warn!("firewall backend is none: decisions are stored, not enforced");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(32);
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<Control>();
    let mut threads = Vec::new();
    for source in &config.sources {
        let saved = store.load_positions(&source.name).await?;
        threads.extend(start_source(
            source,
            &rules.parsers,
            saved,
            &batch_tx,
            &stop,
            &metrics,
        )?);
    }
    drop(batch_tx);
    if threads.is_empty() {
        tracing::warn!(
            "no log sources configured: only decisions made with `rampart decisions` are enforced"
        );
    }

    if let Some(addr) = config.metrics.listen {
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, metrics).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }

    let follower = tokio::spawn(follow(
        Arc::clone(&store),
        firewall.clone(),
        whitelist,
        cursor,
        ctl_tx,
        Arc::clone(&metrics),
        node_name.clone(),
    ));
    let detection = tokio::spawn(detect(
        Detector::new(&rules.scenarios, policy),
        Arc::clone(&store),
        batch_rx,
        ctl_rx,
        Arc::clone(&metrics),
    ));
    tracing::info!(
        sources = config.sources.len(),
        scenarios = rules.scenarios.scenarios.len(),
        dry_run = config.policy.dry_run,
        "agent started"
    );
    let (gateway_stop, mut gateway_stopped) = tokio::sync::watch::channel(false);
    let gateway = gateway.map(|g| {
        for addr in g.local_addrs() {
            tracing::info!(%addr, "gateway listening");
        }
        tokio::spawn(g.run(async move {
            let _ = gateway_stopped.wait_for(|s| *s).await;
        }))
    });

    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = gateway_stop.send(true);
    if let Some(g) = gateway {
        match g.await {
            Ok(Err(e)) => tracing::error!(error = %e, "gateway failed"),
            Err(e) => tracing::error!(error = %e, "gateway task failed"),
            Ok(Ok(())) => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    // Detection ends when every source thread has gone and its channel is drained.
    let _ = tokio::time::timeout(Duration::from_secs(10), detection).await;
    follower.abort();
    if let Some(fleet) = fleet {
        fleet.finish().await;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The level a stored decision counts as for "already banned": its
/// finding's, or critical for an operator's ban (detection never overrides it).
fn decision_level(d: &Decision) -> Level {
    d.findings
        .iter()
        .map(|f| f.level)
        .max()
        .unwrap_or(Level::Critical)
}

/// The addresses of this host's interfaces (never banned).
fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// Starts the threads of one source: one per file path, or one journal follower.
fn start_source(
    source: &SourceConfig,
    rules: &ParserRules,
    saved: Vec<Position>,
    tx: &mpsc::Sender<Batch>,
    stop: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let name: Arc<str> = Arc::from(source.name.as_str());
    let opts = ParseOptions {
        source: Arc::clone(&name),
        reference: Utc::now(),
        keep_raw: true,
    };
    // (thread name, source, its parser)
    type Run = (String, Box<dyn Source>, Box<dyn LineParser>);
    let mut runs: Vec<Run> = Vec::new();
    match source.kind {
        SourceType::File => {
            for path in &source.paths {
                let parser = build_parser(source.format, rules, source.json.as_ref(), opts.clone())
                    .map_err(|e| anyhow::anyhow!("source {}: {e}", source.name))?;
                let key = path.display().to_string();
                let file = FileSource::new(
                    Arc::clone(&name),
                    path.clone(),
                    TailOptions {
                        from_start: source.from_start,
                        max_line_bytes: source.max_line_bytes,
                    },
                    saved.iter().find(|p| p.path == key),
                );
                runs.push((format!("tail {key}"), Box::new(file), parser));
            }
        }
        SourceType::Journald => {
            let journal = JournalSource::new(
                Arc::clone(&name),
                source.journalctl.clone(),
                source.journal_matches.clone(),
                source.from_start,
                saved.iter().find_map(|p| p.cursor.clone()),
            );
            let parser = JournalParser::new(rules.clone(), opts);
            runs.push((
                format!("journal {}", source.name),
                Box::new(journal),
                Box::new(parser),
            ));
        }
    }
    let mut handles = Vec::new();
    for (thread, run, parser) in runs {
        let tx = tx.clone();
        let stop = Arc::clone(stop);
        let metrics = Arc::clone(metrics);
        let poll = source.poll_interval.0;
        handles.push(std::thread::Builder::new().name(thread).spawn(move || {
            let name = Arc::clone(run.name());
            rampart_logs::source::follow(run, parser, poll, tx, &stop, |error| {
                tracing::warn!(source = %name, %error, "cannot read the source");
                metrics.source_error(&name);
            });
        })?);
    }
    Ok(handles)
}

/// Detection: events in, decisions stored.
async fn detect(
    mut detector: Detector,
    store: Arc<dyn Store>,
    mut batches: mpsc::Receiver<Batch>,
    mut control: mpsc::UnboundedReceiver<Control>,
    metrics: Arc<Metrics>,
) {
    let mut guards: std::collections::HashMap<Arc<str>, ClockGuard> =
        std::collections::HashMap::new();
    let mut outcomes = Vec::new();
    loop {
        tokio::select! {
            biased;
            Some(ctl) = control.recv() => match ctl {
                Control::Lift(target) => detector.policy_mut().lift(target.as_ref()),
                Control::Active(target, until) => detector.policy_mut().note_active(target, until, Level::Critical),
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

/// Follows the store's change log and carries changes out.
async fn follow(
    store: Arc<dyn Store>,
    firewall: Option<Arc<dyn Firewall>>,
    whitelist: Whitelist,
    mut cursor: i64,
    control: mpsc::UnboundedSender<Control>,
    metrics: Arc<Metrics>,
    node: String,
) {
    let mut enforcer = firewall.map(|fw| {
        Enforcer::new(fw, Arc::clone(&metrics), whitelist).recording(Arc::clone(&store), node)
    });
    let mut ticker = tokio::time::interval(FOLLOW_EVERY);
    let mut ticks = 0u64;
    loop {
        ticker.tick().await;
        ticks += 1;
        let changes = match store.changes_since(cursor, 1000).await {
            Ok(c) => c,
            Err(e) => {
                metrics.store_errors.inc();
                tracing::error!(error = %e, "cannot read the decision change log");
                continue;
            }
        };
        let now = Utc::now();
        for change in changes {
            cursor = change.seq;
            let d = &change.decision.decision;
            match change.kind {
                ChangeKind::Added if d.action == Action::Ban => {
                    if let (Origin::Operator(_), Some(until)) = (&d.origin, d.until) {
                        let _ = control.send(Control::Active(d.target, until));
                    }
                    if let Some(e) = enforcer.as_mut()
                        && !d.dry_run
                    {
                        e.queue_bans(std::slice::from_ref(d), now);
                    }
                }
                ChangeKind::Added => {}
                ChangeKind::Revoked => {
                    let _ = control.send(Control::Lift(Some(d.target)));
                    if let Some(e) = enforcer.as_mut() {
                        e.queue_unban(d.target);
                    }
                }
            }
        }
        if let Some(e) = enforcer.as_mut() {
            e.flush().await;
            if ticks.is_multiple_of(20) {
                e.refresh_gauge().await;
            }
        }
    }
}

/// Firewall operations waiting to be carried out, retried until they succeed.
/// Bans that would touch a whitelisted address (loopback, the host's own
/// addresses, configured entries) are never enforced here, whoever made
/// them: a gateway may ban a local client, the firewall must not.
struct Enforcer {
    firewall: Arc<dyn Firewall>,
    metrics: Arc<Metrics>,
    whitelist: Whitelist,
    bans: Vec<(IpNet, DateTime<Utc>)>,
    unbans: Vec<IpNet>,
    failures: u32,
    /// Where carried-out operations are recorded as actions (and the node's name).
    actions: Option<(Arc<dyn Store>, String)>,
}

impl Enforcer {
    fn new(firewall: Arc<dyn Firewall>, metrics: Arc<Metrics>, whitelist: Whitelist) -> Self {
        Self {
            firewall,
            metrics,
            whitelist,
            bans: Vec::new(),
            unbans: Vec::new(),
            failures: 0,
            actions: None,
        }
    }

    /// Records each operation carried out (or failing for the first time)
    /// in the store's actions table, as node `node`.
    fn recording(mut self, store: Arc<dyn Store>, node: String) -> Self {
        self.actions = Some((store, node));
        self
    }

    async fn record(&self, op: &str, targets: &[IpNet], ok: bool, detail: &str) {
        let Some((store, node)) = &self.actions else {
            return;
        };
        let now = Utc::now();
        for target in targets {
            let action = rampart_store::ActionRecord {
                time: now,
                node: node.clone(),
                decision_id: None,
                action: op.to_owned(),
                target: rampart_core::addr::display_net(target),
                ok,
                detail: detail.to_owned(),
            };
            if let Err(e) = store.insert_action(&action).await {
                self.metrics.store_errors.inc();
                tracing::warn!(error = %e, "cannot record a firewall action");
                return;
            }
        }
    }

    fn queue_bans(&mut self, decisions: &[Decision], now: DateTime<Utc>) {
        for d in decisions {
            if self.whitelist.overlaps(&d.target) {
                tracing::info!(
                    ip = %rampart_core::addr::display_net(&d.target),
                    "ban not enforced in the firewall: whitelisted"
                );
                continue;
            }
            if let Some(until) = d.until
                && until > now
            {
                self.unbans.retain(|u| *u != d.target);
                self.bans.push((d.target, until));
            }
        }
    }

    fn queue_unban(&mut self, target: IpNet) {
        self.bans.retain(|(t, _)| *t != target);
        self.unbans.push(target);
    }

    /// Carries out what is queued; what fails stays queued for the next call.
    async fn flush(&mut self) {
        let now = Utc::now();
        self.bans.retain(|(_, until)| *until > now);
        if !self.unbans.is_empty() {
            let nets = self.unbans.clone();
            let fw = Arc::clone(&self.firewall);
            let result = tokio::task::spawn_blocking(move || fw.unban(&nets)).await;
            let (ok, detail) = self.outcome("unban", result, self.unbans.len());
            if ok || self.failures == 1 {
                self.record("unban", &self.unbans.clone(), ok, &detail)
                    .await;
            }
            if ok {
                self.unbans.clear();
            }
        }
        if !self.bans.is_empty() {
            let items: Vec<(IpNet, Option<Duration>)> = self
                .bans
                .iter()
                .map(|(net, until)| (*net, (*until - now).to_std().ok()))
                .collect();
            let fw = Arc::clone(&self.firewall);
            let n = items.len();
            let result = tokio::task::spawn_blocking(move || fw.ban(&items)).await;
            let (ok, detail) = self.outcome("ban", result, n);
            if ok || self.failures == 1 {
                let targets: Vec<IpNet> = self.bans.iter().map(|(t, _)| *t).collect();
                self.record("ban", &targets, ok, &detail).await;
            }
            if ok {
                self.bans.clear();
            }
        }
    }

    fn outcome(
        &mut self,
        op: &str,
        result: Result<Result<(), rampart_act::FirewallError>, tokio::task::JoinError>,
        n: usize,
    ) -> (bool, String) {
        let label = OpLabel {
            backend: self.firewall.name().to_owned(),
            op: op.to_owned(),
        };
        let error = match result {
            Ok(Ok(())) => {
                self.metrics
                    .firewall_ops
                    .get_or_create(&label)
                    .inc_by(n as u64);
                self.failures = 0;
                return (true, self.firewall.name().to_owned());
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("firewall task failed: {e}"),
        };
        self.failures += 1;
        self.metrics.firewall_failures.get_or_create(&label).inc();
        tracing::error!(%error, op, elements = n, attempt = self.failures, "firewall operation failed; will retry");
        (false, format!("{}: {error}", self.firewall.name()))
    }

    async fn refresh_gauge(&self) {
        let fw = Arc::clone(&self.firewall);
        if let Ok(Ok(entries)) = tokio::task::spawn_blocking(move || fw.list()).await {
            self.metrics
                .active_bans
                .set(i64::try_from(entries.len()).unwrap_or(i64::MAX));
        }
    }
}

/// The host's name, for ids when none is configured.
pub(crate) fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rampart".to_owned())
}
