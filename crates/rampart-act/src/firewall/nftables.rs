//! The nftables backend: rampart's own `inet` table with two interval sets
//! with per-element timeouts and two base chains that drop their members.
//!
//! ```text
//! table inet <table> {
//!     set banned4 { type ipv4_addr; flags interval, timeout; }
//!     set banned6 { type ipv6_addr; flags interval, timeout; }
//!     chain input   { type filter hook input   priority filter - 10; policy accept;
//!                     ip saddr @banned4 counter drop
//!                     ip6 saddr @banned6 counter drop }
//!     chain forward { type filter hook forward priority filter - 10; policy accept;
//!                     (same two rules) }
//! }
//! ```
//!
//! Every change is one `nft -f -` transaction with a script built here from
//! validated [`IpNet`] and [`Duration`] values; reads use `nft -j` and
//! serde_json.
//!
//! An interval set cannot hold overlapping elements, so a ban is planned
//! against the set's current content:
//! - a ban of exactly an element already present deletes and re-adds it in
//!   the same transaction (nft's `add element` does not reliably replace a
//!   timeout), so the new timeout wins, shorter or longer;
//! - a ban of an address or prefix already covered by a wider banned prefix
//!   is a no-op: the wider ban and its timeout stay;
//! - a ban of a prefix that covers narrower banned elements replaces them;
//! - an element that only partly overlaps (a range written by someone else)
//!   is replaced by the new ban plus what is left of it, with the time it
//!   had left.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use rampart_config::FirewallConfig;
use serde_json::Value;

use super::{
    BanEntry, Firewall, FirewallError, ToolRunner, check_table_name, net_text, timeout_secs,
};

/// Elements per `add element`/`delete element` line (all lines go in one
/// transaction; this only keeps lines of a large batch readable to nft).
const ELEMENTS_PER_LINE: usize = 256;

/// How often a ban or unban transaction is planned and tried. A retry only
/// helps when an element listed for deletion expired before the commit.
const ATTEMPTS: usize = 3;

/// The base chains rampart creates, named after their hooks.
const CHAINS: [&str; 2] = ["input", "forward"];

/// Bans enforced with an nftables table of rampart's own.
#[derive(Debug)]
pub struct Nftables {
    nft: PathBuf,
    table: String,
    runner: ToolRunner,
    /// Serialises this process's list-then-commit sequences.
    lock: Mutex<()>,
    /// Whether this nft understands `destroy element` (nft 1.0.8+), probed once.
    destroy: OnceLock<bool>,
    /// Set when a transaction using `destroy` failed: the kernel may lack it
    /// (it needs Linux 6.3+), so `delete` is used from then on.
    destroy_failed: AtomicBool,
}

impl Nftables {
    /// A backend for the table `inet <config.table>`, run through
    /// `config.nft`, inside `config.netns` when set. Nothing runs until a
    /// method is called.
    pub fn new(config: &FirewallConfig) -> Self {
        Self {
            nft: config.nft.clone(),
            table: config.table.clone(),
            runner: ToolRunner::new(config.netns.as_deref()),
            lock: Mutex::new(()),
            destroy: OnceLock::new(),
            destroy_failed: AtomicBool::new(false),
        }
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it broken.
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check(&self) -> Result<(), FirewallError> {
        check_table_name(&self.table, &self.nft)
    }

    fn apply(&self, script: &str) -> Result<(), FirewallError> {
        tracing::debug!(table = %self.table, script, "nft transaction");
        self.runner
            .run(&self.nft, &["-f", "-"], Some(script))
            .map(drop)
    }

    /// The verb that deletes an element: `destroy` where nft has it (no error
    /// when the element is already gone), `delete` otherwise.
    fn delete_verb(&self) -> &'static str {
        if self.destroy_failed.load(Ordering::Relaxed) {
            return "delete";
        }
        let destroy =
            *self
                .destroy
                .get_or_init(|| match self.runner.run(&self.nft, &["--version"], None) {
                    Ok(text) => parse_version(&text).is_some_and(|v| v >= (1, 0, 8)),
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the nft version, using delete element");
                        false
                    }
                });
        if destroy { "destroy" } else { "delete" }
    }

    fn list_set(&self, family: Family) -> Result<Vec<Element>, FirewallError> {
        let json = self.runner.run(
            &self.nft,
            &["-j", "list", "set", "inet", &self.table, family.set()],
            None,
        )?;
        parse_set(&json, family).map_err(|reason| self.output_error(reason))
    }

    fn output_error(&self, reason: String) -> FirewallError {
        FirewallError::Output {
            program: self.nft.display().to_string(),
            reason,
        }
    }

    /// Lists the sets `families` needs, plans with `plan`, and commits; on a
    /// failed commit, lists again and retries (see [`ATTEMPTS`]), with
    /// `delete` instead of `destroy` if `destroy` was used.
    fn commit_planned(
        &self,
        families: &[Family],
        plan: impl Fn(Family, &[Element]) -> SetChanges,
    ) -> Result<(), FirewallError> {
        let mut attempt = 1;
        loop {
            let verb = self.delete_verb();
            let mut script = String::new();
            for &family in families {
                let existing = self.list_set(family)?;
                plan(family, &existing).write(&mut script, &self.table, family, verb);
            }
            if script.is_empty() {
                return Ok(());
            }
            match self.apply(&script) {
                Err(error @ FirewallError::Command { .. }) if attempt < ATTEMPTS => {
                    tracing::warn!(%error, attempt, "nft transaction failed, planning again");
                    if verb == "destroy" {
                        self.destroy_failed.store(true, Ordering::Relaxed);
                    }
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

impl Firewall for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn setup(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.apply(&setup_script(&self.table))?;
        let mut rules = String::new();
        for chain in CHAINS {
            let json = self.runner.run(
                &self.nft,
                &["-j", "list", "chain", "inet", &self.table, chain],
                None,
            )?;
            let count = count_rules(&json).map_err(|reason| self.output_error(reason))?;
            if count == 0 {
                rules.push_str(&rules_script(&self.table, chain));
            }
        }
        if !rules.is_empty() {
            self.apply(&rules)?;
        }
        Ok(())
    }

    fn ban(&self, items: &[(IpNet, Option<Duration>)]) -> Result<(), FirewallError> {
        self.check()?;
        let wanted = normalize(items);
        let families = families_of(wanted.iter().map(|(span, _)| span.family));
        if families.is_empty() {
            return Ok(());
        }
        let _guard = self.guard();
        self.commit_planned(&families, |family, existing| {
            let items: Vec<_> = wanted
                .iter()
                .filter(|(span, _)| span.family == family)
                .copied()
                .collect();
            plan_ban(existing, &items)
        })
    }

    fn unban(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        self.check()?;
        let spans: Vec<Span> = nets.iter().map(Span::of_net).collect();
        let families = families_of(spans.iter().map(|span| span.family));
        if families.is_empty() {
            return Ok(());
        }
        let _guard = self.guard();
        self.commit_planned(&families, |family, existing| {
            plan_unban(existing, spans.iter().filter(|span| span.family == family))
        })
    }

    fn flush(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.apply(&flush_script(&self.table))
    }

    fn list(&self) -> Result<Vec<BanEntry>, FirewallError> {
        self.check()?;
        let mut entries = Vec::new();
        for family in [Family::V4, Family::V6] {
            for element in self.list_set(family)? {
                entries.extend(element.entries());
            }
        }
        Ok(entries)
    }

    fn teardown(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.apply(&teardown_script(&self.table))
    }
}

/// An address family and the set that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn set(self) -> &'static str {
        match self {
            Family::V4 => "banned4",
            Family::V6 => "banned6",
        }
    }
}

/// The distinct families in `families`, IPv4 first.
fn families_of(families: impl Iterator<Item = Family>) -> Vec<Family> {
    let mut out: Vec<Family> = families.collect();
    out.sort();
    out.dedup();
    out
}

/// A closed interval of addresses of one family: what an interval set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Span {
    family: Family,
    first: u128,
    last: u128,
}

impl Span {
    fn of_net(net: &IpNet) -> Self {
        match net.trunc() {
            IpNet::V4(net) => Span {
                family: Family::V4,
                first: u32::from(net.network()).into(),
                last: u32::from(net.broadcast()).into(),
            },
            IpNet::V6(net) => Span {
                family: Family::V6,
                first: u128::from(net.network()),
                last: u128::from(net.broadcast()),
            },
        }
    }

    fn of_range(first: IpAddr, last: IpAddr) -> Option<Self> {
        let span = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Span {
                family: Family::V4,
                first: u32::from(a).into(),
                last: u32::from(b).into(),
            },
            (IpAddr::V6(a), IpAddr::V6(b)) => Span {
                family: Family::V6,
                first: u128::from(a),
                last: u128::from(b),
            },
            _ => return None,
        };
        (span.first <= span.last).then_some(span)
    }

    fn contains(&self, other: &Span) -> bool {
        self.family == other.family && self.first <= other.first && other.last <= self.last
    }

    fn overlaps(&self, other: &Span) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    fn addr(&self, value: u128) -> IpAddr {
        match self.family {
            Family::V4 => {
                debug_assert!(value <= u128::from(u32::MAX));
                IpAddr::V4(u32::try_from(value).map_or(Ipv4Addr::BROADCAST, Ipv4Addr::from))
            }
            Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    /// The smallest list of prefixes covering exactly this span.
    fn nets(&self) -> Vec<IpNet> {
        match (self.addr(self.first), self.addr(self.last)) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
            (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
            _ => Vec::new(),
        }
    }

    /// As nft writes an element: address, `addr/len` or `first-last`.
    fn nft_text(&self) -> String {
        match self.nets().as_slice() {
            [net] => net_text(net),
            _ => format!("{}-{}", self.addr(self.first), self.addr(self.last)),
        }
    }
}

/// One element of a set as listed: its interval, its timeout and the time it
/// has left (whole seconds, as `nft -j` reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    span: Span,
    timeout: Option<u64>,
    expires: Option<u64>,
}

impl Element {
    /// Seconds to give this element when it is re-added: what it had left.
    fn remaining(&self) -> Option<u64> {
        self.timeout
            .map(|timeout| self.expires.unwrap_or(timeout).max(1))
    }

    fn entries(&self) -> impl Iterator<Item = BanEntry> + '_ {
        let expires_in = self
            .timeout
            .map(|timeout| Duration::from_secs(self.expires.unwrap_or(timeout)));
        self.span
            .nets()
            .into_iter()
            .map(move |net| BanEntry { net, expires_in })
    }
}

/// What one transaction does to one set: deletions first, then additions.
#[derive(Debug, Default, PartialEq, Eq)]
struct SetChanges {
    deletes: Vec<Span>,
    adds: Vec<(Span, Option<u64>)>,
}

impl SetChanges {
    fn write(&self, script: &mut String, table: &str, family: Family, delete_verb: &str) {
        let set = family.set();
        for chunk in self.deletes.chunks(ELEMENTS_PER_LINE) {
            let elements: Vec<String> = chunk.iter().map(Span::nft_text).collect();
            script.push_str(&format!(
                "{delete_verb} element inet {table} {set} {{ {} }}\n",
                elements.join(", ")
            ));
        }
        for chunk in self.adds.chunks(ELEMENTS_PER_LINE) {
            let elements: Vec<String> = chunk
                .iter()
                .map(|(span, timeout)| match timeout {
                    Some(secs) => format!("{} timeout {secs}s", span.nft_text()),
                    None => span.nft_text(),
                })
                .collect();
            script.push_str(&format!(
                "add element inet {table} {set} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
}

/// The requested bans as disjoint spans sorted by family and address: the
/// last request for the same net wins, and a request inside a wider one of
/// the same batch is dropped (the wider one covers it).
fn normalize(items: &[(IpNet, Option<Duration>)]) -> Vec<(Span, Option<u64>)> {
    let mut latest = std::collections::HashMap::new();
    for (net, ttl) in items {
        latest.insert(Span::of_net(net), ttl.map(timeout_secs));
    }
    let mut spans: Vec<(Span, Option<u64>)> = latest.into_iter().collect();
    // Wider first among equal starts, so a covering prefix precedes what it covers.
    spans.sort_by(|(a, _), (b, _)| {
        (a.family, a.first, std::cmp::Reverse(a.last)).cmp(&(
            b.family,
            b.first,
            std::cmp::Reverse(b.last),
        ))
    });
    let mut out: Vec<(Span, Option<u64>)> = Vec::with_capacity(spans.len());
    for (span, ttl) in spans {
        // Prefixes are nested or disjoint, so only the last kept one can cover this one.
        if out.last().is_some_and(|(kept, _)| kept.contains(&span)) {
            continue;
        }
        out.push((span, ttl));
    }
    out
}

/// Plans bans of `items` (from [`normalize`], one family) into a set that
/// holds `existing`. See the module docs for the overlap rules.
fn plan_ban(existing: &[Element], items: &[(Span, Option<u64>)]) -> SetChanges {
    let mut existing: Vec<&Element> = existing.iter().collect();
    existing.sort_by_key(|element| element.span.first);
    let overlapping = |span: Span| {
        let start = existing.partition_point(|element| element.span.last < span.first);
        existing[start..]
            .iter()
            .copied()
            .take_while(move |element| element.span.first <= span.last)
            .filter(move |element| element.span.overlaps(&span))
    };

    let mut changes = SetChanges::default();
    let mut replaced: Vec<&Element> = Vec::new();
    for &(span, ttl) in items {
        if let Some(wider) = overlapping(span).find(|e| e.span.contains(&span) && e.span != span) {
            tracing::debug!(
                element = %span.nft_text(),
                covered_by = %wider.span.nft_text(),
                "ban already covered by a wider element"
            );
            continue;
        }
        replaced.extend(overlapping(span));
        changes.adds.push((span, ttl));
    }
    replaced.sort_by_key(|element| element.span.first);
    replaced.dedup_by_key(|element| element.span);

    let added: Vec<Span> = changes.adds.iter().map(|(span, _)| *span).collect();
    for element in replaced {
        changes.deletes.push(element.span);
        for rest in subtract(&element.span, &added) {
            changes.adds.push((rest, element.remaining()));
        }
    }
    changes
}

/// What is left of `span` once the sorted, disjoint `cut` spans are removed.
fn subtract(span: &Span, cut: &[Span]) -> Vec<Span> {
    let mut rest = Vec::new();
    let mut from = span.first;
    for piece in cut.iter().filter(|piece| piece.overlaps(span)) {
        if piece.first > from {
            rest.push(Span {
                first: from,
                last: piece.first - 1,
                ..*span
            });
        }
        match piece.last.checked_add(1) {
            Some(next) => from = from.max(next),
            None => return rest,
        }
    }
    if from <= span.last {
        rest.push(Span {
            first: from,
            ..*span
        });
    }
    rest
}

/// Plans the removal of exactly these spans; spans not in the set are skipped.
fn plan_unban<'a>(existing: &[Element], spans: impl Iterator<Item = &'a Span>) -> SetChanges {
    let mut deletes: Vec<Span> = spans
        .filter(|span| existing.iter().any(|element| element.span == **span))
        .copied()
        .collect();
    deletes.sort();
    deletes.dedup();
    SetChanges {
        deletes,
        adds: Vec::new(),
    }
}

/// Creates what is missing; `add` leaves existing objects and elements alone.
fn setup_script(table: &str) -> String {
    let mut script = format!("add table inet {table}\n");
    for (family, kind) in [(Family::V4, "ipv4_addr"), (Family::V6, "ipv6_addr")] {
        script.push_str(&format!(
            "add set inet {table} {} {{ type {kind}; flags interval, timeout; }}\n",
            family.set()
        ));
    }
    for chain in CHAINS {
        script.push_str(&format!(
            "add chain inet {table} {chain} {{ type filter hook {chain} priority filter - 10; policy accept; }}\n"
        ));
    }
    script
}

/// The drop rules of one chain (added only to an empty chain).
fn rules_script(table: &str, chain: &str) -> String {
    format!(
        "add rule inet {table} {chain} ip saddr @{} counter drop\n\
         add rule inet {table} {chain} ip6 saddr @{} counter drop\n",
        Family::V4.set(),
        Family::V6.set()
    )
}

fn flush_script(table: &str) -> String {
    format!(
        "flush set inet {table} {}\nflush set inet {table} {}\n",
        Family::V4.set(),
        Family::V6.set()
    )
}

/// Deletes the table whether or not it exists (the `add` makes sure it does,
/// in the same transaction).
fn teardown_script(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

/// `(major, minor, patch)` from `nftables v1.0.6 (Lester Gooch #5)`.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))?;
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// The objects of an `nft -j` listing.
fn nft_objects(json: &str) -> Result<Vec<Value>, String> {
    let mut doc: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    match doc.get_mut("nftables").map(Value::take) {
        Some(Value::Array(objects)) => Ok(objects),
        _ => Err("no \"nftables\" array".to_owned()),
    }
}

/// How many rules an `nft -j list chain` listing holds.
fn count_rules(json: &str) -> Result<usize, String> {
    Ok(nft_objects(json)?
        .iter()
        .filter(|object| object.get("rule").is_some())
        .count())
}

/// The elements of an `nft -j list set` listing of a `family` set.
fn parse_set(json: &str, family: Family) -> Result<Vec<Element>, String> {
    let objects = nft_objects(json)?;
    let set = objects
        .iter()
        .find_map(|object| object.get("set"))
        .ok_or("no set in the listing")?;
    let Some(elements) = set.get("elem") else {
        return Ok(Vec::new());
    };
    let elements = elements.as_array().ok_or("\"elem\" is not an array")?;
    elements
        .iter()
        .map(|value| parse_element(value, family))
        .collect()
}

/// `"10.0.0.5"`, `{"prefix":…}`, `{"range":[…]}`, or any of those as `val`
/// of `{"elem":{"val":…,"timeout":…,"expires":…}}`.
fn parse_element(value: &Value, family: Family) -> Result<Element, String> {
    let (val, timeout, expires) = match value.get("elem") {
        Some(elem) => (
            elem.get("val").ok_or("element without \"val\"")?,
            elem.get("timeout").and_then(Value::as_u64),
            elem.get("expires").and_then(Value::as_u64),
        ),
        None => (value, None, None),
    };
    let span = parse_value(val).ok_or_else(|| format!("unexpected set element {val}"))?;
    if span.family != family {
        return Err(format!("element {val} in the {} set", family.set()));
    }
    Ok(Element {
        span,
        timeout,
        expires,
    })
}

fn parse_value(val: &Value) -> Option<Span> {
    let addr = |v: &Value| v.as_str()?.parse::<IpAddr>().ok();
    if let Some(ip) = addr(val) {
        return Some(Span::of_net(&IpNet::from(ip)));
    }
    if let Some(prefix) = val.get("prefix") {
        let ip = addr(prefix.get("addr")?)?;
        let len = u8::try_from(prefix.get("len")?.as_u64()?).ok()?;
        return IpNet::new(ip, len).ok().map(|net| Span::of_net(&net));
    }
    match val.get("range")?.as_array()?.as_slice() {
        [first, last] => Span::of_range(addr(first)?, addr(last)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `nft 1.0.6` output, captured in a network namespace.
    const SET4: &str = include_str!("../../tests/fixtures/nft-set4.json");
    const SET6: &str = include_str!("../../tests/fixtures/nft-set6.json");
    const SET_EMPTY: &str = include_str!("../../tests/fixtures/nft-set-empty.json");
    const CHAIN_RULES: &str = include_str!("../../tests/fixtures/nft-chain-with-rules.json");
    const CHAIN_EMPTY: &str = include_str!("../../tests/fixtures/nft-chain-empty.json");
    const VERSION: &str = include_str!("../../tests/fixtures/nft-version.txt");

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn span(text: &str) -> Span {
        match text.split_once('-') {
            Some((a, b)) => Span::of_range(a.parse().unwrap(), b.parse().unwrap()).unwrap(),
            None if text.contains('/') => Span::of_net(&net(text)),
            None => Span::of_net(&IpNet::from(text.parse::<IpAddr>().unwrap())),
        }
    }

    fn element(text: &str, timeout: Option<u64>, expires: Option<u64>) -> Element {
        Element {
            span: span(text),
            timeout,
            expires,
        }
    }

    fn script(changes: &SetChanges, verb: &str) -> String {
        let mut out = String::new();
        changes.write(&mut out, "rampart", Family::V4, verb);
        out
    }

    #[test]
    fn parses_ipv4_set_listing() {
        let elements = parse_set(SET4, Family::V4).unwrap();
        assert_eq!(
            elements,
            vec![
                element("10.0.0.5", Some(60), Some(59)),
                element("10.0.1.0/24", Some(3600), Some(3599)),
                element("10.0.2.1-10.0.2.6", None, None),
                element("192.168.0.0/16", None, None),
            ]
        );
    }

    #[test]
    fn parses_ipv6_set_listing() {
        let elements = parse_set(SET6, Family::V6).unwrap();
        assert_eq!(
            elements,
            vec![
                element("fd00::1", Some(90), Some(89)),
                element("fd00:1::/64", Some(120), Some(119)),
                element("fd00:2::1-fd00:2::5", None, None),
                element("fd00:3::7", None, None),
            ]
        );
    }

    #[test]
    fn empty_set_has_no_elem_key() {
        assert_eq!(parse_set(SET_EMPTY, Family::V4).unwrap(), vec![]);
    }

    #[test]
    fn wrong_family_and_garbage_are_errors() {
        assert!(parse_set(SET4, Family::V6).is_err());
        assert!(parse_set("not json", Family::V4).is_err());
        assert!(parse_set(r#"{"nftables": []}"#, Family::V4).is_err());
        let weird = r#"{"nftables": [{"set": {"elem": [{"set": ["x"]}]}}]}"#;
        assert!(parse_set(weird, Family::V4).is_err());
    }

    #[test]
    fn listing_becomes_ban_entries_with_ranges_split_into_prefixes() {
        let entries: Vec<BanEntry> = parse_set(SET4, Family::V4)
            .unwrap()
            .iter()
            .flat_map(|e| e.entries().collect::<Vec<_>>())
            .collect();
        let expect = |n: &str, secs: Option<u64>| BanEntry {
            net: net(n),
            expires_in: secs.map(Duration::from_secs),
        };
        assert_eq!(
            entries,
            vec![
                expect("10.0.0.5/32", Some(59)),
                expect("10.0.1.0/24", Some(3599)),
                expect("10.0.2.1/32", None),
                expect("10.0.2.2/31", None),
                expect("10.0.2.4/31", None),
                expect("10.0.2.6/32", None),
                expect("192.168.0.0/16", None),
            ]
        );
    }

    #[test]
    fn counts_rules_in_chain_listing() {
        assert_eq!(count_rules(CHAIN_RULES).unwrap(), 2);
        assert_eq!(count_rules(CHAIN_EMPTY).unwrap(), 0);
    }

    #[test]
    fn reads_nft_version() {
        assert_eq!(parse_version(VERSION), Some((1, 0, 6)));
        assert_eq!(
            parse_version("nftables v1.1.1 (Commodore Bullmoose #2)"),
            Some((1, 1, 1))
        );
        assert!(parse_version("nftables v1.0.8 (Old Doc Yak #2)").unwrap() >= (1, 0, 8));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn setup_script_creates_table_sets_and_chains() {
        assert_eq!(
            setup_script("rampart"),
            "add table inet rampart\n\
             add set inet rampart banned4 { type ipv4_addr; flags interval, timeout; }\n\
             add set inet rampart banned6 { type ipv6_addr; flags interval, timeout; }\n\
             add chain inet rampart input { type filter hook input priority filter - 10; policy accept; }\n\
             add chain inet rampart forward { type filter hook forward priority filter - 10; policy accept; }\n"
        );
        assert_eq!(
            rules_script("rampart", "input"),
            "add rule inet rampart input ip saddr @banned4 counter drop\n\
             add rule inet rampart input ip6 saddr @banned6 counter drop\n"
        );
        assert_eq!(
            teardown_script("rampart"),
            "add table inet rampart\ndelete table inet rampart\n"
        );
        assert_eq!(
            flush_script("rampart"),
            "flush set inet rampart banned4\nflush set inet rampart banned6\n"
        );
    }

    #[test]
    fn new_bans_are_added_with_timeouts() {
        let items = normalize(&[
            (net("10.0.0.5/32"), Some(Duration::from_millis(1500))),
            (net("10.0.9.0/24"), None),
        ]);
        let changes = plan_ban(&[], &items);
        assert_eq!(
            script(&changes, "delete"),
            "add element inet rampart banned4 { 10.0.0.5 timeout 2s, 10.0.9.0/24 }\n"
        );
    }

    #[test]
    fn rebanning_an_element_deletes_and_adds_it() {
        let existing = [element("10.0.0.5", Some(60), Some(10))];
        let items = normalize(&[(net("10.0.0.5/32"), Some(Duration::from_secs(600)))]);
        let changes = plan_ban(&existing, &items);
        assert_eq!(
            script(&changes, "delete"),
            "delete element inet rampart banned4 { 10.0.0.5 }\n\
             add element inet rampart banned4 { 10.0.0.5 timeout 600s }\n"
        );
        assert_eq!(
            script(&changes, "destroy"),
            "destroy element inet rampart banned4 { 10.0.0.5 }\n\
             add element inet rampart banned4 { 10.0.0.5 timeout 600s }\n"
        );
    }

    #[test]
    fn ban_inside_a_wider_element_is_a_no_op() {
        let existing = [element("10.0.0.0/24", Some(60), Some(50))];
        let items = normalize(&[(net("10.0.0.5/32"), Some(Duration::from_secs(600)))]);
        assert_eq!(plan_ban(&existing, &items), SetChanges::default());
    }

    #[test]
    fn wider_ban_replaces_the_narrower_elements_it_covers() {
        let existing = [
            element("10.0.0.5", Some(60), Some(50)),
            element("10.0.0.9", None, None),
            element("10.0.1.1", None, None),
        ];
        let items = normalize(&[(net("10.0.0.0/24"), Some(Duration::from_secs(30)))]);
        let changes = plan_ban(&existing, &items);
        assert_eq!(
            script(&changes, "delete"),
            "delete element inet rampart banned4 { 10.0.0.5, 10.0.0.9 }\n\
             add element inet rampart banned4 { 10.0.0.0/24 timeout 30s }\n"
        );
    }

    #[test]
    fn partly_overlapping_range_keeps_its_rest_and_time_left() {
        let existing = [element("10.0.0.250-10.0.1.5", Some(100), Some(40))];
        let items = normalize(&[(net("10.0.1.0/24"), Some(Duration::from_secs(30)))]);
        let changes = plan_ban(&existing, &items);
        assert_eq!(
            script(&changes, "delete"),
            "delete element inet rampart banned4 { 10.0.0.250-10.0.1.5 }\n\
             add element inet rampart banned4 { 10.0.1.0/24 timeout 30s, 10.0.0.250-10.0.0.255 timeout 40s }\n"
        );
    }

    #[test]
    fn range_split_by_two_bans_keeps_the_pieces_around_them() {
        let existing = [element("10.0.0.0-10.0.0.255", None, None)];
        let items = normalize(&[
            (net("10.0.0.16/28"), None),
            (net("10.0.0.64/32"), None),
            (net("10.0.0.0/25"), None),
        ]);
        // 10.0.0.0/25 swallows the other two in the batch, then is inside the range: no-op.
        assert_eq!(plan_ban(&existing, &items), SetChanges::default());

        let existing = [element("10.0.0.10-10.0.0.100", None, None)];
        let items = normalize(&[(net("10.0.0.0/28"), None), (net("10.0.0.64/26"), None)]);
        let changes = plan_ban(&existing, &items);
        assert_eq!(changes.deletes, vec![span("10.0.0.10-10.0.0.100")]);
        assert_eq!(
            changes.adds,
            vec![
                (span("10.0.0.0/28"), None),
                (span("10.0.0.64/26"), None),
                (span("10.0.0.16-10.0.0.63"), None),
            ]
        );
    }

    #[test]
    fn batch_is_deduplicated_last_wins_and_covered_items_dropped() {
        let items = normalize(&[
            (net("10.0.0.5/32"), Some(Duration::from_secs(10))),
            (net("fd00::/64"), None),
            (net("10.0.0.5/32"), Some(Duration::from_secs(20))),
            (net("fd00::1/128"), Some(Duration::from_secs(5))),
            (net("10.0.1.7/24"), None),
            (net("10.0.1.9/32"), None),
        ]);
        assert_eq!(
            items,
            vec![
                (span("10.0.0.5"), Some(20)),
                (span("10.0.1.0/24"), None),
                (span("fd00::/64"), None),
            ]
        );
    }

    #[test]
    fn ipv6_edges_do_not_overflow() {
        let all = Span::of_net(&net("::/0"));
        assert_eq!(all.nft_text(), "::/0");
        assert_eq!(subtract(&all, &[all]), vec![]);
        let top = span("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(subtract(&all, &[top]).len(), 1);
        assert_eq!(subtract(&all, &[top])[0].last, u128::MAX - 1);
    }

    #[test]
    fn unban_deletes_only_exact_elements() {
        let existing = [
            element("10.0.0.0/24", Some(60), Some(50)),
            element("10.0.1.1", None, None),
        ];
        let wanted = [
            span("10.0.0.5"),
            span("10.0.1.1"),
            span("10.0.1.1"),
            span("10.0.0.0/24"),
        ];
        let changes = plan_unban(&existing, wanted.iter());
        assert_eq!(
            script(&changes, "delete"),
            "delete element inet rampart banned4 { 10.0.0.0/24, 10.0.1.1 }\n"
        );
        assert_eq!(
            plan_unban(&existing, [span("10.9.9.9")].iter()),
            SetChanges::default()
        );
    }

    #[test]
    fn large_batches_are_split_into_lines_of_one_transaction() {
        let items: Vec<(IpNet, Option<Duration>)> = (0..600u32)
            .map(|i| {
                (
                    IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))),
                    None,
                )
            })
            .collect();
        let changes = plan_ban(&[], &normalize(&items));
        let text = script(&changes, "delete");
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| l.starts_with("add element inet rampart banned4 { "))
        );
    }
}
