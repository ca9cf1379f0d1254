//! `rampart simulate`: attack traffic on loopback, sent at a gateway, and a
//! report of what it blocked.
//!
//! Only loopback targets are accepted. Every simulated client binds its own
//! source address in 127.0.0.0/8 (each scenario in its own /16, see
//! `traffic`), so the gateway sees distinct clients. The run is bounded:
//! total duration, requests per second per scenario, open connections and
//! total requests all have hard caps, and every request has a timeout.
//!
//! Timeline: one probe request (the target must answer), then a baseline
//! phase of normal traffic alone, then the attack phase with normal traffic
//! going on. Clients send nothing after the end; requests in flight finish
//! or time out.

mod client;
mod report;
mod rng;
mod slowloris;
mod target;
mod traffic;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rampart_core::HumanDuration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::report::{Limits, Probe, Report, ScenarioReport};
use self::rng::Rng;
use self::target::Target;
use self::traffic::Scenario;

const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_RPS: u32 = 5_000;
const MAX_CONNECTIONS: u32 = 1_024;
const MAX_REQUESTS: u64 = 1_000_000;
/// Second octet of the probe's source address.
const PROBE_OCTET: u8 = 9;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The gateway to test, `http://HOST:PORT[/PREFIX]`. HOST must be
    /// loopback: 127.0.0.0/8, `[::1]` or `localhost` (taken as 127.0.0.1).
    #[arg(long)]
    target: String,
    /// The whole run, baseline included (e.g. `20s`, `1m`; at most 10m).
    #[arg(long, default_value = "20s")]
    duration: HumanDuration,
    /// Normal traffic alone at the start, before the attacks. Default: a
    /// quarter of --duration; none unless `normal` runs with attacks.
    #[arg(long)]
    baseline: Option<HumanDuration>,
    /// Scenarios to run, comma-separated. Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Seed for traffic shapes and source addresses (the same seed gives
    /// the same addresses). Default: from the clock; the report shows it.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object (the global `--json`).
    #[arg(skip)]
    pub json: bool,
    /// Most requests per second of one scenario, all its clients together (at most 5000).
    #[arg(long, default_value_t = 1_000)]
    max_rps: u32,
    /// Most connections open at once over all scenarios (at most 1024).
    #[arg(long, default_value_t = 256)]
    max_connections: u32,
    /// Most requests in the whole run (at most 1000000).
    #[arg(long, default_value_t = 100_000)]
    max_requests: u64,
    /// A request not fully answered within this counts as a timeout.
    #[arg(long, default_value = "5s")]
    timeout: HumanDuration,
}

/// What every client of a run shares: target, clock and caps.
#[derive(Debug)]
pub struct Run {
    pub target: Target,
    pub seed: u64,
    /// Third octet of most sources (fourth for the distributed flood), from the seed.
    pub salt: u8,
    pub attack_start: Instant,
    pub end: Instant,
    pub request_timeout: Duration,
    pub max_rps: u32,
    /// One permit per open connection.
    pub connections: Arc<Semaphore>,
    budget: AtomicU64,
    budget_exhausted: AtomicBool,
}

impl Run {
    /// Sleeps until `at` or the end of the run, whichever is first; false
    /// when the run is over.
    pub async fn pause_until(&self, at: Instant) -> bool {
        tokio::time::sleep_until(at.min(self.end)).await;
        Instant::now() < self.end
    }

    /// Takes one request from the total budget; false once it is spent.
    pub fn take_budget(&self) -> bool {
        let taken = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !taken {
            self.budget_exhausted.store(true, Ordering::Relaxed);
        }
        taken
    }
}

/// Checked options.
struct Plan {
    target: Target,
    scenarios: Vec<Scenario>,
    duration: Duration,
    baseline: Duration,
    seed: u64,
}

fn plan(args: &SimulateArgs) -> Result<Plan, String> {
    let target = Target::parse(&args.target).map_err(|e| e.to_string())?;
    let duration = args.duration.0;
    if duration < Duration::from_secs(1) || duration > MAX_DURATION {
        return Err(format!("--duration {}: between 1s and 10m", args.duration));
    }
    if !(1..=MAX_RPS).contains(&args.max_rps) {
        return Err(format!(
            "--max-rps {}: between 1 and {MAX_RPS}",
            args.max_rps
        ));
    }
    if !(1..=MAX_CONNECTIONS).contains(&args.max_connections) {
        return Err(format!(
            "--max-connections {}: between 1 and {MAX_CONNECTIONS}",
            args.max_connections
        ));
    }
    if !(1..=MAX_REQUESTS).contains(&args.max_requests) {
        return Err(format!(
            "--max-requests {}: between 1 and {MAX_REQUESTS}",
            args.max_requests
        ));
    }
    if args.timeout.0 < Duration::from_millis(100) || args.timeout.0 > Duration::from_secs(60) {
        return Err(format!("--timeout {}: between 100ms and 60s", args.timeout));
    }
    let mut scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    scenarios.sort();
    scenarios.dedup();
    let with_baseline =
        scenarios.contains(&Scenario::Normal) && scenarios.iter().any(|s| s.is_attack());
    let baseline = match args.baseline {
        Some(b) if b.0 >= duration => {
            return Err(format!(
                "--baseline {b}: must be shorter than --duration {}",
                args.duration
            ));
        }
        Some(b) if with_baseline => b.0,
        None if with_baseline => duration / 4,
        _ => Duration::ZERO,
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    Ok(Plan {
        target,
        scenarios,
        duration,
        baseline,
        seed,
    })
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(problem) => {
            eprintln!("rampart: {problem}");
            return Ok(ExitCode::from(crate::EXIT_CONFIG));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let json = args.json;
    let report = runtime.block_on(simulate(plan, &args))?;
    // Connection tasks still draining are dropped with the runtime.
    runtime.shutdown_background();
    if json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}

async fn simulate(plan: Plan, args: &SimulateArgs) -> anyhow::Result<Report> {
    let Plan {
        target,
        scenarios,
        duration,
        baseline,
        seed,
    } = plan;
    let salt = u8::try_from(Rng::new(seed, u64::MAX).between(1, 250)).unwrap_or(1);
    let probe_source = if target.is_v4() {
        IpAddr::V4(Ipv4Addr::new(127, PROBE_OCTET, salt, 1))
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    };
    let (status, probe_latency) = client::probe(probe_source, &target, args.timeout.0)
        .await
        .with_context(|| {
            format!(
                "target {} unreachable (probe from {probe_source})",
                target.url
            )
        })?;
    if !target.is_v4() {
        tracing::warn!("over IPv6 every client is ::1: the gateway sees one client");
    }
    let start = Instant::now();
    let end = start + duration;
    let any_attack = scenarios.iter().any(|s| s.is_attack());
    let attack_start = if any_attack { start + baseline } else { end };
    let run = Arc::new(Run {
        target: target.clone(),
        seed,
        salt,
        attack_start,
        end,
        request_timeout: args.timeout.0,
        max_rps: args.max_rps,
        connections: Arc::new(Semaphore::new(
            usize::try_from(args.max_connections).unwrap_or(256),
        )),
        budget: AtomicU64::new(args.max_requests),
        budget_exhausted: AtomicBool::new(false),
    });
    tracing::debug!(
        target = %target.url,
        seed,
        scenarios = ?scenarios.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "simulation started"
    );
    let mut tasks = JoinSet::new();
    for scenario in &scenarios {
        tasks.spawn(traffic::run(*scenario, run.clone()));
    }
    let mut outcomes = Vec::with_capacity(scenarios.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => tracing::warn!(%error, "scenario task failed"),
        }
    }
    let elapsed = start.elapsed();
    outcomes.sort_by_key(|o| o.scenario);
    let normal = outcomes
        .iter()
        .find(|o| o.scenario == Scenario::Normal)
        .map(|o| report::normal_summary(&o.clients));
    let scenario_reports: Vec<ScenarioReport> =
        outcomes.into_iter().map(ScenarioReport::new).collect();
    let attacks = report::attack_summary(&scenario_reports);
    Ok(Report {
        target: target.url.clone(),
        seed,
        duration_secs: duration.as_secs_f64(),
        baseline_secs: baseline.as_secs_f64(),
        elapsed_secs: (elapsed.as_secs_f64() * 1e3).round() / 1e3,
        limits: Limits {
            max_rps: args.max_rps,
            max_connections: args.max_connections,
            max_requests: args.max_requests,
            request_timeout_secs: args.timeout.0.as_secs_f64(),
        },
        budget_exhausted: run.budget_exhausted.load(Ordering::Relaxed),
        probe: Probe {
            source: probe_source.to_string(),
            status,
            latency_ms: probe_latency.as_secs_f64() * 1e3,
        },
        scenarios: scenario_reports,
        normal,
        attacks,
    })
}
