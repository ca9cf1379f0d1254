//! [`ClientTable`]: every client's behaviour, shared by the proxy's threads.
//!
//! # Contract
//!
//! - Every method takes `&self`; the table is `Send + Sync` and meant to be
//!   shared (`Arc`) by all request handlers. Clients are spread over up to
//!   32 shards by a hash of their key, each behind its own mutex, held only
//!   for the few hundred nanoseconds of one update.
//! - Time is the caller's: milliseconds on a monotonic clock. A time older
//!   than the client's newest is taken as the newest, never a panic.
//! - Bounded: at most `max_clients` clients. A full shard first drops its
//!   idle clients, then the least recently seen sixteenth of its clients
//!   (the cap is split evenly over the shards, so eviction order is per
//!   shard). A client idle for `idle_after` is forgotten: each shard sweeps
//!   itself every half `idle_after` when requests arrive, and
//!   [`ClientTable::sweep`] does all shards (the gateway may call it from a
//!   timer); a client found idle when it comes back starts afresh.
//! - Verdicts are not sticky: each [`ClientTable::observe`] judges anew. The
//!   gateway bans on the first `Block`; after an operator unban it calls
//!   [`ClientTable::forget`] so the client starts clean.
//! - [`ClientTable::observe_response`] should get the status the backend
//!   gave. Statuses the gateway makes itself (its own 403 for a block, 502
//!   or 504 when a backend fails) say nothing about the client and are best
//!   not fed.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;
use rampart_config::HttpDetectionConfig;
use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;

use super::features::ClientState;
use super::score::{Reason, Reasons, Scorer, Verdict, WeightedScorer};
use super::{Features, RequestInfo, client_key};

/// Most shards; fewer when `max_clients` is smaller.
const MAX_SHARDS: usize = 32;

/// How a client was judged on one request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assessment {
    /// The behaviour score, 0..=1.
    pub score: f64,
    /// What to do with the client.
    pub verdict: Verdict,
    /// Whether the hard flood rule fired (then the verdict is `Block`).
    pub flood: bool,
    /// The signals behind the score, and `flood` / `persistent`.
    pub reasons: Reasons,
    /// The features the score was computed from.
    pub features: Features,
}

/// The running limits, read once from config.
#[derive(Debug, Clone, Copy)]
struct Limits {
    idle_ms: u64,
    sweep_every_ms: u64,
    monitor: f64,
    block: f64,
    min_requests: u64,
    min_rate_10s: u32,
    min_seen_ms: u64,
    escalate_ms: Option<u64>,
    flood_rps: u32,
    flood_10s: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

#[derive(Debug)]
struct Shard {
    clients: FxHashMap<IpNet, ClientState>,
    cap: usize,
    next_sweep: u64,
}

impl Shard {
    fn sweep(&mut self, now_ms: u64, idle_ms: u64) -> usize {
        let before = self.clients.len();
        self.clients.retain(|_, c| !c.is_idle(now_ms, idle_ms));
        before - self.clients.len()
    }

    /// Makes room for one more client: idle ones first, then the least
    /// recently seen sixteenth.
    fn make_room(&mut self, now_ms: u64, idle_ms: u64) {
        self.sweep(now_ms, idle_ms);
        if self.clients.len() < self.cap {
            return;
        }
        let evict = (self.cap / 16).max(1);
        let mut ages: Vec<(u64, IpNet)> = self
            .clients
            .iter()
            .map(|(k, c)| (c.last_seen, *k))
            .collect();
        if evict < ages.len() {
            ages.select_nth_unstable(evict - 1);
        }
        for (_, key) in ages.iter().take(evict) {
            self.clients.remove(key);
        }
    }

    /// The client's state, made (and room made for it) if new, restarted if idle.
    fn entry(&mut self, key: IpNet, now_ms: u64, idle_ms: u64) -> &mut ClientState {
        if !self.clients.contains_key(&key) && self.clients.len() >= self.cap {
            self.make_room(now_ms, idle_ms);
        }
        let state = self
            .clients
            .entry(key)
            .or_insert_with(|| ClientState::new(now_ms));
        if state.is_idle(now_ms, idle_ms) {
            *state = ClientState::new(now_ms);
        }
        state
    }
}

/// Per-client behaviour, its score and verdict. See the module docs for
/// the contract.
#[derive(Debug)]
pub struct ClientTable<S: Scorer = WeightedScorer> {
    shards: Box<[Mutex<Shard>]>,
    scorer: S,
    limits: Limits,
}

impl ClientTable<WeightedScorer> {
    /// A table with the default scorer, weighted from `cfg`.
    pub fn new(cfg: &HttpDetectionConfig) -> Self {
        Self::with_scorer(cfg, WeightedScorer::new(cfg))
    }
}

impl<S: Scorer> ClientTable<S> {
    /// A table judging with another scorer (a learned model); thresholds,
    /// limits and hard rules still come from `cfg`.
    pub fn with_scorer(cfg: &HttpDetectionConfig, scorer: S) -> Self {
        let max_clients = cfg.max_clients.max(1);
        // The largest power of two ≤ min(MAX_SHARDS, max_clients): every
        // shard gets a cap of at least 1 and the caps add up to max_clients.
        let n = 1usize << (usize::BITS - 1 - max_clients.min(MAX_SHARDS).leading_zeros());
        let shards = (0..n)
            .map(|i| {
                let cap = max_clients / n + usize::from(i < max_clients % n);
                Mutex::new(Shard {
                    clients: FxHashMap::default(),
                    cap,
                    next_sweep: 0,
                })
            })
            .collect();
        let idle_ms = millis(cfg.idle_after.0).max(1);
        let escalate_ms = millis(cfg.escalate_after.0);
        Self {
            shards,
            scorer,
            limits: Limits {
                idle_ms,
                sweep_every_ms: (idle_ms / 2).max(1000),
                monitor: cfg.monitor_threshold,
                block: cfg.block_threshold,
                min_requests: u64::from(cfg.min_requests),
                min_rate_10s: cfg.min_rate_10s,
                min_seen_ms: millis(cfg.min_seen.0),
                escalate_ms: (escalate_ms > 0).then_some(escalate_ms),
                flood_rps: cfg.flood_rps,
                flood_10s: cfg.flood_10s,
                ipv4_prefix: cfg.ipv4_prefix,
                ipv6_prefix: cfg.ipv6_prefix,
            },
        }
    }

    /// The client an address belongs to, with the configured prefixes
    /// (IPv4 /32 and IPv6 /64 by default).
    pub fn client_key(&self, ip: IpAddr) -> IpNet {
        client_key(ip, self.limits.ipv4_prefix, self.limits.ipv6_prefix)
    }

    fn shard(&self, key: &IpNet) -> MutexGuard<'_, Shard> {
        let mut h = FxHasher::default();
        key.hash(&mut h);
        let x = h.finish().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits are the well-mixed ones; the length is a power of two ≤ 32.
        let i = (x >> 32) as usize & (self.shards.len() - 1);
        // A panic while holding the lock cannot leave a shard inconsistent
        // in a way that matters more than losing the table: keep going.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the request and judges the client: features snapshot,
    /// score, verdict.
    pub fn observe(&self, client: IpNet, req: &RequestInfo<'_>, now_ms: u64) -> Assessment {
        let l = &self.limits;
        let mut shard = self.shard(&client);
        if now_ms >= shard.next_sweep {
            shard.sweep(now_ms, l.idle_ms);
            shard.next_sweep = now_ms.saturating_add(l.sweep_every_ms);
        }
        let state = shard.entry(client, now_ms, l.idle_ms);
        state.record(req, now_ms);
        let features = state.features(now_ms);
        let (score, mut reasons) = self.scorer.score(&features);
        let score = score.clamp(0.0, 1.0);

        let enough = features.requests >= l.min_requests
            && features.rate_10s >= l.min_rate_10s
            && features.seen_ms >= l.min_seen_ms;
        let mut verdict = if score >= l.block && enough {
            Verdict::Block
        } else if score >= l.monitor {
            Verdict::Monitor
        } else {
            Verdict::Allow
        };
        if score >= l.monitor {
            let since = *state.monitor_since.get_or_insert(now_ms);
            if let Some(after) = l.escalate_ms
                && verdict == Verdict::Monitor
                && enough
                && now_ms.saturating_sub(since) >= after
            {
                verdict = Verdict::Block;
                reasons.insert(Reason::Persistent);
            }
        } else {
            state.monitor_since = None;
        }
        let flood = features.rate_1s >= l.flood_rps || features.rate_10s >= l.flood_10s;
        if flood {
            verdict = Verdict::Block;
            reasons.insert(Reason::Flood);
        }
        Assessment {
            score,
            verdict,
            flood,
            reasons,
            features,
        }
    }

    /// Records the status the backend answered one of the client's
    /// requests with. A client not in the table is not added.
    pub fn observe_response(&self, client: IpNet, status: u16, now_ms: u64) {
        let mut shard = self.shard(&client);
        if let Some(state) = shard.clients.get_mut(&client) {
            state.record_response(status, now_ms);
        }
    }

    /// The client's current features, if it is tracked.
    pub fn features(&self, client: &IpNet, now_ms: u64) -> Option<Features> {
        let mut shard = self.shard(client);
        shard.clients.get_mut(client).map(|s| s.features(now_ms))
    }

    /// Forgets a client (after an operator unban): it starts clean.
    pub fn forget(&self, client: &IpNet) {
        self.shard(client).clients.remove(client);
    }

    /// Forgets every client idle for `idle_after`; returns how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let idle_ms = self.limits.idle_ms;
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .sweep(now_ms, idle_ms)
            })
            .sum()
    }

    /// Clients tracked (idle ones included until swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clients.len())
            .sum()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
