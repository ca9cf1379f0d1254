//! What a run found, as one serialisable value, and its table form.
//! Field names are stable: docs/simulate.md documents each.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::client::ClientStats;
use super::slowloris::SlowlorisStats;
use super::traffic::{Outcome, Scenario};

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub duration_secs: f64,
    pub baseline_secs: f64,
    pub elapsed_secs: f64,
    pub limits: Limits,
    /// Whether `--max-requests` stopped clients early.
    pub budget_exhausted: bool,
    pub probe: Probe,
    pub scenarios: Vec<ScenarioReport>,
    /// Present when `normal` ran.
    pub normal: Option<NormalSummary>,
    /// All attack scenarios together.
    pub attacks: AttackSummary,
}

#[derive(Debug, Serialize)]
pub struct Limits {
    pub max_rps: u32,
    pub max_connections: u32,
    pub max_requests: u64,
    pub request_timeout_secs: f64,
}

/// The one request sent before the run to check the target answers.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub source: String,
    pub status: u16,
    pub latency_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub attack: bool,
    pub source_range: String,
    pub sources: Vec<String>,
    pub clients: usize,
    pub requests: u64,
    pub blocked: u64,
    pub status_403: u64,
    pub status_429: u64,
    pub refused: u64,
    pub passed: u64,
    pub timeouts: u64,
    pub connect_timeouts: u64,
    pub errors: u64,
    pub missing_retry_after: u64,
    pub statuses: BTreeMap<String, u64>,
    pub block_rate: Option<f64>,
    pub first_block: FirstBlock,
    pub after_first_block: AfterFirstBlock,
    pub latency: Latency,
    pub per_client: Vec<ClientReport>,
    pub slowloris: Option<SlowlorisReport>,
}

#[derive(Debug, Serialize)]
pub struct FirstBlock {
    pub clients_blocked: usize,
    pub clients_never_blocked: usize,
    pub min_secs: Option<f64>,
    pub median_secs: Option<f64>,
    pub max_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AfterFirstBlock {
    pub requests: u64,
    pub blocked: u64,
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ClientReport {
    pub address: String,
    pub requests: u64,
    pub blocked: u64,
    pub status_403: u64,
    pub status_429: u64,
    pub refused: u64,
    pub passed: u64,
    pub timeouts: u64,
    pub connect_timeouts: u64,
    pub errors: u64,
    pub first_block_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SlowlorisReport {
    #[serde(flatten)]
    pub stats: SlowlorisStats,
    pub close_min_secs: Option<f64>,
    pub close_median_secs: Option<f64>,
    pub close_max_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct NormalSummary {
    pub clients: usize,
    pub requests: u64,
    pub false_positive_requests: u64,
    pub false_positive_clients: usize,
    pub false_positive_rate: Option<f64>,
    pub baseline: Latency,
    pub under_attack: Latency,
    /// p99 under attack divided by p99 in the baseline.
    pub p99_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AttackSummary {
    pub requests: u64,
    pub blocked: u64,
    pub block_rate: Option<f64>,
}

/// Rounds to microseconds' worth of decimals so the JSON stays readable.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 1e6).round() / 1e6)
}

/// Nearest-rank percentile of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
}

fn latency(mut us: Vec<u32>) -> Latency {
    us.sort_unstable();
    let ms = |v: u32| f64::from(v) / 1e3;
    Latency {
        count: us.len(),
        p50_ms: percentile(&us, 0.5).map(ms),
        p99_ms: percentile(&us, 0.99).map(ms),
    }
}

impl ScenarioReport {
    pub fn new(outcome: Outcome) -> Self {
        let Outcome {
            scenario,
            clients,
            slowloris,
        } = outcome;
        let mut total = ClientStats::default();
        let mut first_blocks: Vec<Duration> = Vec::new();
        let mut latencies: Vec<u32> = Vec::new();
        let mut per_client = Vec::with_capacity(clients.len());
        for (address, c) in &clients {
            total.requests += c.requests;
            total.blocked += c.blocked;
            total.status_403 += c.status_403;
            total.status_429 += c.status_429;
            total.refused += c.refused;
            total.passed += c.passed;
            total.timeouts += c.timeouts;
            total.connect_timeouts += c.connect_timeouts;
            total.errors += c.errors;
            total.missing_retry_after += c.missing_retry_after;
            total.after_block_requests += c.after_block_requests;
            total.after_block_blocked += c.after_block_blocked;
            for (status, n) in &c.statuses {
                *total.statuses.entry(*status).or_default() += n;
            }
            first_blocks.extend(c.first_block);
            latencies.extend(&c.latency_baseline_us);
            latencies.extend(&c.latency_attack_us);
            per_client.push(ClientReport {
                address: address.to_string(),
                requests: c.requests,
                blocked: c.blocked,
                status_403: c.status_403,
                status_429: c.status_429,
                refused: c.refused,
                passed: c.passed,
                timeouts: c.timeouts,
                connect_timeouts: c.connect_timeouts,
                errors: c.errors,
                first_block_secs: c.first_block.map(secs),
            });
        }
        first_blocks.sort();
        // Slowloris sends no whole requests: its clients are judged by the
        // connections instead.
        let judged = if scenario == Scenario::Slowloris {
            0
        } else {
            clients.iter().filter(|(_, c)| c.requests > 0).count()
        };
        Self {
            name: scenario.name(),
            attack: scenario.is_attack(),
            source_range: scenario.range(),
            sources: clients.iter().map(|(a, _)| a.to_string()).collect(),
            clients: clients.len(),
            requests: total.requests,
            blocked: total.blocked,
            status_403: total.status_403,
            status_429: total.status_429,
            refused: total.refused,
            passed: total.passed,
            timeouts: total.timeouts,
            connect_timeouts: total.connect_timeouts,
            errors: total.errors,
            missing_retry_after: total.missing_retry_after,
            statuses: total
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            block_rate: ratio(total.blocked, total.requests),
            first_block: FirstBlock {
                clients_blocked: first_blocks.len(),
                clients_never_blocked: judged.saturating_sub(first_blocks.len()),
                min_secs: first_blocks.first().copied().map(secs),
                median_secs: percentile(&first_blocks, 0.5).map(secs),
                max_secs: first_blocks.last().copied().map(secs),
            },
            after_first_block: AfterFirstBlock {
                requests: total.after_block_requests,
                blocked: total.after_block_blocked,
                rate: ratio(total.after_block_blocked, total.after_block_requests),
            },
            latency: latency(latencies),
            per_client,
            slowloris: slowloris.map(|stats| SlowlorisReport {
                close_min_secs: stats.close_after.first().copied().map(secs),
                close_median_secs: percentile(&stats.close_after, 0.5).map(secs),
                close_max_secs: stats.close_after.last().copied().map(secs),
                stats,
            }),
        }
    }
}

/// The normal clients' view: false positives and latency before and during
/// the attacks.
pub fn normal_summary(clients: &[(std::net::IpAddr, ClientStats)]) -> NormalSummary {
    let requests = clients.iter().map(|(_, c)| c.requests).sum();
    let blocked = clients.iter().map(|(_, c)| c.blocked).sum();
    let baseline = latency(
        clients
            .iter()
            .flat_map(|(_, c)| c.latency_baseline_us.iter().copied())
            .collect(),
    );
    let under_attack = latency(
        clients
            .iter()
            .flat_map(|(_, c)| c.latency_attack_us.iter().copied())
            .collect(),
    );
    let p99_ratio = match (baseline.p99_ms, under_attack.p99_ms) {
        (Some(b), Some(a)) if b > 0.0 => Some((a / b * 1e3).round() / 1e3),
        _ => None,
    };
    NormalSummary {
        clients: clients.len(),
        requests,
        false_positive_requests: blocked,
        false_positive_clients: clients.iter().filter(|(_, c)| c.blocked > 0).count(),
        false_positive_rate: ratio(blocked, requests),
        baseline,
        under_attack,
        p99_ratio,
    }
}

pub fn attack_summary(scenarios: &[ScenarioReport]) -> AttackSummary {
    let attacks = scenarios.iter().filter(|s| s.attack);
    let requests = attacks.clone().map(|s| s.requests).sum();
    let blocked = attacks.map(|s| s.blocked).sum();
    AttackSummary {
        requests,
        blocked,
        block_rate: ratio(blocked, requests),
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

impl Report {
    /// The human form: a header, one row per scenario, summary lines.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rampart simulate: {}  seed {}  {:.1} s (baseline {:.1} s), took {:.1} s",
            self.target, self.seed, self.duration_secs, self.baseline_secs, self.elapsed_secs
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<17} {:<15} {:>7} {:>8} {:>8} {:>7} {:>8} {:>5} {:>5} {:>7}  {:<23} {:>5} {:>9} {:>7} {:>7}",
            "scenario",
            "sources",
            "clients",
            "sent",
            "blocked",
            "refused",
            "passed",
            "t/o",
            "err",
            "rate",
            "1st block s min/med/max",
            "never",
            "after 1st",
            "p50 ms",
            "p99 ms"
        );
        for s in &self.scenarios {
            if let Some(sl) = &s.slowloris {
                let _ = writeln!(
                    out,
                    "{:<17} {:<15} {:>7} {:>8}  {} of {} connections closed by the server, median {} s after opening (min {}, max {}), {} still open, {} refused",
                    s.name,
                    s.source_range,
                    s.clients,
                    "-",
                    sl.stats.closed_by_server,
                    sl.stats.opened,
                    opt(sl.close_median_secs, 1),
                    opt(sl.close_min_secs, 1),
                    opt(sl.close_max_secs, 1),
                    sl.stats.still_open,
                    sl.stats.connect_failures,
                );
                continue;
            }
            let first = if s.first_block.clients_blocked == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{}/{}/{}",
                    opt(s.first_block.min_secs, 2),
                    opt(s.first_block.median_secs, 2),
                    opt(s.first_block.max_secs, 2)
                )
            };
            let _ = writeln!(
                out,
                "{:<17} {:<15} {:>7} {:>8} {:>8} {:>7} {:>8} {:>5} {:>5} {:>7}  {:<23} {:>5} {:>9} {:>7} {:>7}",
                s.name,
                s.source_range,
                s.clients,
                s.requests,
                s.blocked,
                s.refused,
                s.passed,
                s.timeouts,
                s.errors,
                pct(s.block_rate),
                first,
                s.first_block.clients_never_blocked,
                pct(s.after_first_block.rate),
                opt(s.latency.p50_ms, 1),
                opt(s.latency.p99_ms, 1),
            );
        }
        let _ = writeln!(out);
        if let Some(n) = &self.normal {
            let _ = writeln!(
                out,
                "normal traffic: {} of {} requests blocked (false positives {}), {} of {} clients ever blocked",
                n.false_positive_requests,
                n.requests,
                pct(n.false_positive_rate),
                n.false_positive_clients,
                n.clients
            );
            let _ = writeln!(
                out,
                "normal p99 latency: baseline {} ms, under attack {} ms (ratio {})",
                opt(n.baseline.p99_ms, 1),
                opt(n.under_attack.p99_ms, 1),
                opt(n.p99_ratio, 2)
            );
        }
        if self.scenarios.iter().any(|s| s.attack) {
            let _ = writeln!(
                out,
                "attacks: {} of {} requests blocked ({})",
                self.attacks.blocked,
                self.attacks.requests,
                pct(self.attacks.block_rate)
            );
        }
        let connect_timeouts: u64 = self.scenarios.iter().map(|s| s.connect_timeouts).sum();
        if connect_timeouts > 0 {
            let _ = writeln!(
                out,
                "connections never established (timed out; a firewall dropping them looks like this): {connect_timeouts}"
            );
        }
        let missing: u64 = self.scenarios.iter().map(|s| s.missing_retry_after).sum();
        if missing > 0 {
            let _ = writeln!(out, "429 answers without Retry-After: {missing}");
        }
        if self.budget_exhausted {
            let _ = writeln!(
                out,
                "stopped early: --max-requests {} reached",
                self.limits.max_requests
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }
}
