//! The engine: every scenario's buckets, fed one event at a time.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Event, Evidence, Finding, Subject, key_prefix};
use rustc_hash::FxHashMap;

use crate::bucket::{Bucket, BucketKind};
use crate::rules::{Ruleset, Scenario, Selection};

/// How many events pass between sweeps of idle buckets.
const SWEEP_EVERY: u64 = 16_384;

/// Most keys one scenario tracks at once; past this the least recently
/// seen are forgotten (and counted in [`Engine::evicted`]).
pub const MAX_KEYS_PER_SCENARIO: usize = 200_000;

struct ScenarioState {
    scenario: Arc<Scenario>,
    buckets: FxHashMap<IpNet, Bucket>,
    /// Keys that overflowed recently, ignored until the time given.
    blackholed: FxHashMap<IpNet, DateTime<Utc>>,
}

/// Runs scenarios over events. Deterministic: the same events in the same
/// order give the same findings.
pub struct Engine {
    rules: Ruleset,
    states: Vec<ScenarioState>,
    seen: u64,
    newest: Option<DateTime<Utc>>,
    evicted: u64,
}

impl Engine {
    /// An engine with empty buckets for every scenario of `rules`.
    pub fn new(rules: &Ruleset) -> Self {
        let states = rules
            .scenarios
            .iter()
            .map(|s| ScenarioState {
                scenario: Arc::clone(s),
                buckets: FxHashMap::default(),
                blackholed: FxHashMap::default(),
            })
            .collect();
        Self {
            rules: rules.clone(),
            states,
            seen: 0,
            newest: None,
            evicted: 0,
        }
    }

    /// Feeds one event; findings it completes are appended to `out`.
    pub fn process(&mut self, event: &Event, out: &mut Vec<Finding>) {
        let selection = self.rules.select(event);
        self.process_selected(event, selection, out);
    }

    /// Feeds one event whose [`Selection`] was computed already (by
    /// [`Ruleset::select`] on the same rules, possibly on another thread).
    pub fn process_selected(
        &mut self,
        event: &Event,
        selection: Selection,
        out: &mut Vec<Finding>,
    ) {
        self.seen += 1;
        if self.newest.is_none_or(|n| event.time > n) {
            self.newest = Some(event.time);
        }
        if self.seen.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        let Some(addr) = event.addr else { return };
        for &i in self.rules.for_kind(event.kind) {
            let selected = if i < Selection::CAPACITY {
                selection.contains(i)
            } else {
                self.states[i].scenario.selects(event)
            };
            if !selected {
                continue;
            }
            let state = &mut self.states[i];
            let scenario = &state.scenario;
            let key = key_prefix(addr, scenario.key.v4_len, scenario.key.v6_len);
            if let Some(until) = state.blackholed.get(&key) {
                if event.time < *until {
                    continue;
                }
                state.blackholed.remove(&key);
            }
            let value = match &scenario.bucket {
                BucketKind::Distinct { field, .. } => event.field(field),
                _ => None,
            };
            let bucket = state
                .buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(&scenario.bucket, event.time, None));
            if !bucket.add(
                &scenario.bucket,
                event.time,
                value.as_deref(),
                event.raw.as_ref(),
            ) {
                continue;
            }
            let Some(bucket) = state.buckets.remove(&key) else {
                continue;
            };
            state
                .blackholed
                .insert(key, event.time + scenario.blackhole);
            out.push(finding(scenario, key, &bucket, event));
        }
    }

    /// Forgets idle buckets and spent blackholes; enforces the key cap.
    pub fn sweep(&mut self) {
        let Some(now) = self.newest else { return };
        for state in &mut self.states {
            let kind = &state.scenario.bucket;
            state.buckets.retain(|_, b| !b.is_idle(kind, now));
            state.blackholed.retain(|_, until| *until > now);
            if state.buckets.len() > MAX_KEYS_PER_SCENARIO {
                let mut ages: Vec<(DateTime<Utc>, IpNet)> = state
                    .buckets
                    .iter()
                    .map(|(k, b)| (b.last_seen, *k))
                    .collect();
                ages.sort_unstable();
                let excess = state.buckets.len() - MAX_KEYS_PER_SCENARIO * 9 / 10;
                for (_, key) in ages.into_iter().take(excess) {
                    state.buckets.remove(&key);
                    self.evicted += 1;
                }
            }
        }
    }

    /// Keys forgotten because a scenario hit [`MAX_KEYS_PER_SCENARIO`].
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn finding(scenario: &Scenario, key: IpNet, bucket: &Bucket, event: &Event) -> Finding {
    let span = bucket.last_seen - bucket.first_seen;
    let what = scenario
        .kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let rule = match &scenario.bucket {
        BucketKind::Window { threshold, window } => {
            format!("threshold {threshold} in {}", human(*window))
        }
        BucketKind::Leaky { threshold, leak } => {
            format!(
                "leaky bucket of {threshold}, one drains every {}",
                human(*leak)
            )
        }
        BucketKind::Distinct {
            threshold,
            window,
            field,
        } => {
            format!("{threshold} distinct {field} in {}", human(*window))
        }
        BucketKind::Trigger => "a single match".to_owned(),
    };
    let distinct = bucket.distinct_values();
    let counted = match bucket.window_span() {
        // The window's own count and span; the episode may be longer.
        Some((n, oldest)) => {
            let mut text = format!("{n} {what} within {}", human(event.time - oldest));
            if bucket.count > n as u64 {
                text.push_str(&format!(
                    ", {} since {}",
                    bucket.count,
                    bucket.first_seen.format("%Y-%m-%dT%H:%M:%SZ")
                ));
            }
            text
        }
        None if distinct.is_empty() => format!("{} {what} in {}", bucket.count, human(span)),
        None => format!(
            "{} {what} with {} distinct values in {}",
            bucket.count,
            distinct.len(),
            human(span)
        ),
    };
    Finding {
        time: event.time,
        subject: Subject::Net(key),
        label: scenario.name.clone(),
        score: scenario.confidence,
        level: scenario.level,
        evidence: Evidence {
            count: bucket.count,
            first_seen: Some(bucket.first_seen),
            last_seen: Some(event.time),
            first_line: bucket.first_line.as_deref().map(str::to_owned),
            last_line: event.raw.as_deref().map(str::to_owned),
            distinct,
            summary: format!("{counted} ({rule})"),
        },
    }
}

fn human(d: chrono::Duration) -> String {
    rampart_core::HumanDuration(d.to_std().unwrap_or_default()).to_string()
}
