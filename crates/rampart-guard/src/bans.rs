//! The gateway's ban table: which clients and prefixes are refused now.
//!
//! It holds bans from every origin: the gateway's own decisions (inserted
//! at once, then stored), and whatever the store's decision change log
//! brings (bans decided from logs by an agent, operators' bans through the
//! CLI or the admin endpoints, unbans). Lookups take a read lock and one
//! hash probe per distinct prefix length present, so a table of a million
//! host bans costs the same per request as a table of ten.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::addr::normalize_addr;
use serde::Serialize;

/// Why a ban was made, as far as the gateway's answer is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BanKind {
    /// A flood: answered 429 with `Retry-After`.
    Flood,
    /// Anything else (attack, operator, logs): answered 403.
    Other,
}

/// One ban in the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BanEntry {
    /// The banned address or prefix.
    pub target: IpNet,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// When it ends; `None`: until lifted.
    pub until: Option<DateTime<Utc>>,
    /// One line of why.
    pub reason: String,
    /// Who made it (`scenario:NAME`, `operator:NAME`, `model:NAME`).
    pub origin: String,
    /// How it is answered.
    pub kind: BanKind,
    /// The store's id once stored.
    pub decision_id: Option<i64>,
    /// Recorded but not enforced (dry-run or monitor mode).
    pub dry_run: bool,
}

impl BanEntry {
    fn active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<IpNet, BanEntry>,
    /// Prefix lengths present, per family, to probe on lookup.
    v4_lens: BTreeSet<u8>,
    v6_lens: BTreeSet<u8>,
}

impl Inner {
    fn recount_lengths(&mut self) {
        self.v4_lens.clear();
        self.v6_lens.clear();
        for net in self.entries.keys() {
            match net {
                IpNet::V4(n) => self.v4_lens.insert(n.prefix_len()),
                IpNet::V6(n) => self.v6_lens.insert(n.prefix_len()),
            };
        }
    }
}

/// Bans in force at the gateway.
#[derive(Debug, Default)]
pub struct BanTable {
    inner: RwLock<Inner>,
}

impl BanTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ban covering `addr` at `now` (the longest one if several do).
    pub fn lookup(&self, addr: IpAddr, now: DateTime<Utc>) -> Option<BanEntry> {
        let addr = normalize_addr(addr);
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if inner.entries.is_empty() {
            return None;
        }
        let lens = match addr {
            IpAddr::V4(_) => &inner.v4_lens,
            IpAddr::V6(_) => &inner.v6_lens,
        };
        let mut best: Option<&BanEntry> = None;
        for &len in lens.iter().rev() {
            let Ok(net) = IpNet::new(addr, len) else {
                continue;
            };
            if let Some(entry) = inner.entries.get(&net.trunc())
                && entry.active(now)
                && best.is_none_or(|b| outlasts(entry, b))
            {
                best = Some(entry);
            }
        }
        best.cloned()
    }

    /// Adds or replaces the ban on `entry.target` (a longer one is kept
    /// when the new one would end sooner, unless `replace`).
    pub fn insert(&self, entry: BanEntry) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let target = entry.target.trunc();
        match &target {
            IpNet::V4(n) => inner.v4_lens.insert(n.prefix_len()),
            IpNet::V6(n) => inner.v6_lens.insert(n.prefix_len()),
        };
        match inner.entries.get_mut(&target) {
            Some(existing) if outlasts(existing, &entry) && existing.dry_run == entry.dry_run => {
                if existing.decision_id.is_none() {
                    existing.decision_id = entry.decision_id;
                }
            }
            _ => {
                inner.entries.insert(target, entry);
            }
        }
    }

    /// Lifts bans on `target` and inside it, or only the one with
    /// `decision_id` when given. Returns how many were lifted.
    pub fn remove(&self, target: &IpNet, decision_id: Option<i64>) -> usize {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let before = inner.entries.len();
        inner.entries.retain(|net, entry| {
            let covered = target == net || target.contains(net);
            let same = decision_id.is_none_or(|id| entry.decision_id.is_none_or(|e| e == id));
            !(covered && same)
        });
        let removed = before - inner.entries.len();
        if removed > 0 {
            inner.recount_lengths();
        }
        removed
    }

    /// Drops expired bans; returns how many remain.
    pub fn expire(&self, now: DateTime<Utc>) -> usize {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let before = inner.entries.len();
        inner.entries.retain(|_, e| e.active(now));
        if inner.entries.len() != before {
            inner.recount_lengths();
        }
        inner.entries.len()
    }

    /// Bans active at `now`, longest first.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<BanEntry> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<BanEntry> = inner
            .entries
            .values()
            .filter(|e| e.active(now))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.until
                .is_none()
                .cmp(&a.until.is_none())
                .then(b.until.cmp(&a.until))
        });
        out
    }

    /// Entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `a` ends no sooner than `b`.
fn outlasts(a: &BanEntry, b: &BanEntry) -> bool {
    match (a.until, b.until) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => x >= y,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn entry(target: &str, minutes: i64, now: DateTime<Utc>) -> BanEntry {
        BanEntry {
            target: target.parse().expect("net"),
            at: now,
            until: Some(now + Duration::minutes(minutes)),
            reason: "test".into(),
            origin: "operator:test".into(),
            kind: BanKind::Other,
            decision_id: None,
            dry_run: false,
        }
    }

    #[test]
    fn hosts_and_prefixes_are_found_and_expire() {
        let now = Utc::now();
        let t = BanTable::new();
        t.insert(entry("192.0.2.7/32", 10, now));
        t.insert(entry("2001:db8:1::/48", 60, now));
        assert!(t.lookup("192.0.2.7".parse().expect("ip"), now).is_some());
        assert!(
            t.lookup("::ffff:192.0.2.7".parse().expect("ip"), now)
                .is_some()
        );
        assert!(t.lookup("192.0.2.8".parse().expect("ip"), now).is_none());
        assert!(
            t.lookup("2001:db8:1:5::9".parse().expect("ip"), now)
                .is_some()
        );
        assert!(
            t.lookup("2001:db8:2::9".parse().expect("ip"), now)
                .is_none()
        );
        let later = now + Duration::minutes(11);
        assert!(t.lookup("192.0.2.7".parse().expect("ip"), later).is_none());
        assert_eq!(t.expire(later), 1);
    }

    #[test]
    fn the_longest_covering_ban_wins_and_remove_lifts_covered_ones() {
        let now = Utc::now();
        let t = BanTable::new();
        t.insert(entry("10.0.0.0/8", 5, now));
        t.insert(entry("10.1.2.3/32", 50, now));
        let hit = t
            .lookup("10.1.2.3".parse().expect("ip"), now)
            .expect("banned");
        assert_eq!(hit.target.to_string(), "10.1.2.3/32");
        // A shorter ban does not replace a longer one on the same target.
        t.insert(entry("10.1.2.3/32", 1, now));
        let hit = t
            .lookup("10.1.2.3".parse().expect("ip"), now)
            .expect("banned");
        assert_eq!(hit.until, Some(now + Duration::minutes(50)));
        assert_eq!(t.remove(&"10.0.0.0/8".parse().expect("net"), None), 2);
        assert!(t.is_empty());
        assert!(t.lookup("10.1.2.3".parse().expect("ip"), now).is_none());
    }

    #[test]
    fn remove_by_decision_id_keeps_other_decisions() {
        let now = Utc::now();
        let t = BanTable::new();
        let mut e = entry("192.0.2.1/32", 10, now);
        e.decision_id = Some(7);
        t.insert(e);
        assert_eq!(t.remove(&"192.0.2.1/32".parse().expect("net"), Some(8)), 0);
        assert_eq!(t.remove(&"192.0.2.1/32".parse().expect("net"), Some(7)), 1);
    }
}
