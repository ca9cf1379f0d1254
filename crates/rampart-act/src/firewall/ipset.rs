//! The iptables + ipset backend, for hosts without nftables.
//!
//! Two sets, `<table>4` (`hash:net family inet timeout 0`) and `<table>6`
//! (`hash:net family inet6 timeout 0`), both with `maxelem 1048576`, and one
//! rule per chain and family inserted at the top of `INPUT` and `FORWARD`:
//! `-m set --match-set <set> src -j DROP`.
//!
//! Elements go in through `ipset restore -exist` with a script on stdin built
//! from validated [`IpNet`] values: `add <set> <net> timeout <secs>`, where
//! `-exist` replaces the timeout of an element already present and
//! `timeout 0` means no timeout. `hash:net` keeps overlapping entries apart,
//! so an address and a prefix containing it are separate bans with their own
//! timeouts. ipset caps a timeout at 2147483 s (about 24.8 days); longer bans
//! are clamped to that with a warning.
//!
//! `ipset restore` is not one transaction: it checks the whole script first
//! (syntax, set names), so a bad script changes nothing, but a kernel error
//! mid-way (in practice only "Hash is full") leaves the earlier lines
//! applied. Bans and unbans are idempotent, so the caller's retry converges.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use rampart_config::FirewallConfig;

use super::{
    BanEntry, Firewall, FirewallError, ToolRunner, check_table_name, net_text, timeout_secs,
};

/// The largest timeout ipset accepts, in seconds.
const MAX_TIMEOUT_SECS: u64 = 2_147_483;

/// The `maxelem` of rampart's sets (ipset's default, 65536, is too few for a
/// large blocklist).
const MAX_ELEMENTS: u32 = 1_048_576;

/// The iptables chains rampart inserts its rule into.
const CHAINS: [&str; 2] = ["INPUT", "FORWARD"];

/// Bans enforced with ipset sets matched by iptables and ip6tables rules.
#[derive(Debug)]
pub struct Ipset {
    ipset: PathBuf,
    iptables: PathBuf,
    ip6tables: PathBuf,
    table: String,
    runner: ToolRunner,
    /// Serialises this process's check-then-change sequences.
    lock: Mutex<()>,
}

impl Ipset {
    /// A backend with the sets `<config.table>4` and `<config.table>6`, run
    /// through `config.ipset`, `config.iptables` and `config.ip6tables`,
    /// inside `config.netns` when set. Nothing runs until a method is called.
    pub fn new(config: &FirewallConfig) -> Self {
        Self {
            ipset: config.ipset.clone(),
            iptables: config.iptables.clone(),
            ip6tables: config.ip6tables.clone(),
            table: config.table.clone(),
            runner: ToolRunner::new(config.netns.as_deref()),
            lock: Mutex::new(()),
        }
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it broken.
        self.lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check(&self) -> Result<(), FirewallError> {
        check_table_name(&self.table, &self.ipset)
    }

    /// The two sets, each with the tool whose rules match it.
    fn families(&self) -> [(String, &Path); 2] {
        [
            (set_name(&self.table, false), self.iptables.as_path()),
            (set_name(&self.table, true), self.ip6tables.as_path()),
        ]
    }

    fn restore(&self, script: &str) -> Result<(), FirewallError> {
        if script.is_empty() {
            return Ok(());
        }
        tracing::debug!(table = %self.table, script, "ipset restore");
        self.runner
            .run(&self.ipset, &["restore", "-exist"], Some(script))
            .map(drop)
    }

    /// Whether the drop rule for `set` is in `chain`.
    fn has_rule(&self, tool: &Path, chain: &str, set: &str) -> Result<bool, FirewallError> {
        let out = self.runner.exec(tool, &rule_args("-C", chain, set), None)?;
        match out.status.code() {
            Some(0) => Ok(true),
            // 1: no such rule (iptables also uses 1 for some other failures;
            // the insert that follows then reports them).
            Some(1) => Ok(false),
            _ => Err(out.into_error()),
        }
    }
}

impl Firewall for Ipset {
    fn name(&self) -> &'static str {
        "ipset"
    }

    fn setup(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.restore(&create_script(&self.table))?;
        for (set, tool) in self.families() {
            for chain in CHAINS {
                if !self.has_rule(tool, chain, &set)? {
                    self.runner.run(tool, &rule_args("-I", chain, &set), None)?;
                }
            }
        }
        Ok(())
    }

    fn ban(&self, items: &[(IpNet, Option<Duration>)]) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.restore(&ban_script(&self.table, items))
    }

    fn unban(&self, nets: &[IpNet]) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.restore(&unban_script(&self.table, nets))
    }

    fn flush(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        self.restore(&format!(
            "flush {}\nflush {}\n",
            set_name(&self.table, false),
            set_name(&self.table, true)
        ))
    }

    fn list(&self) -> Result<Vec<BanEntry>, FirewallError> {
        self.check()?;
        let mut entries = Vec::new();
        for (set, _) in self.families() {
            let text = self
                .runner
                .run(&self.ipset, &["list", &set, "-output", "save"], None)?;
            entries.extend(
                parse_save(&text, &set).map_err(|reason| FirewallError::Output {
                    program: self.ipset.display().to_string(),
                    reason,
                })?,
            );
        }
        Ok(entries)
    }

    fn teardown(&self) -> Result<(), FirewallError> {
        self.check()?;
        let _guard = self.guard();
        let names = self.runner.run(&self.ipset, &["list", "-n"], None)?;
        for (set, tool) in self.families() {
            if !names.lines().any(|name| name.trim() == set) {
                // No set, so no rule can reference it.
                continue;
            }
            for chain in CHAINS {
                // A rule inserted twice by hand is removed too; bounded in
                // case -D succeeds without removing anything.
                for _ in 0..16 {
                    if !self.has_rule(tool, chain, &set)? {
                        break;
                    }
                    self.runner.run(tool, &rule_args("-D", chain, &set), None)?;
                }
            }
            self.runner.run(&self.ipset, &["destroy", &set], None)?;
        }
        Ok(())
    }
}

/// `<table>4` or `<table>6`.
fn set_name(table: &str, v6: bool) -> String {
    format!("{table}{}", if v6 { '6' } else { '4' })
}

fn set_for(table: &str, net: &IpNet) -> String {
    set_name(table, matches!(net, IpNet::V6(_)))
}

/// `iptables -w <op> <chain> [1] -m set --match-set <set> src -j DROP`.
fn rule_args<'a>(op: &'a str, chain: &'a str, set: &'a str) -> Vec<&'a str> {
    let mut args = vec!["-w", op, chain];
    if op == "-I" {
        args.push("1");
    }
    args.extend(["-m", "set", "--match-set", set, "src", "-j", "DROP"]);
    args
}

fn create_script(table: &str) -> String {
    format!(
        "create {} hash:net family inet timeout 0 maxelem {MAX_ELEMENTS}\n\
         create {} hash:net family inet6 timeout 0 maxelem {MAX_ELEMENTS}\n",
        set_name(table, false),
        set_name(table, true)
    )
}

/// Seconds for ipset: `0` (no timeout) for `None`, otherwise rounded up,
/// at least 1, at most [`MAX_TIMEOUT_SECS`].
fn ipset_timeout(ttl: Option<Duration>) -> u64 {
    let Some(ttl) = ttl else { return 0 };
    let secs = timeout_secs(ttl);
    if secs > MAX_TIMEOUT_SECS {
        tracing::warn!(
            requested_secs = secs,
            max_secs = MAX_TIMEOUT_SECS,
            "ban longer than ipset allows, clamped"
        );
    }
    secs.min(MAX_TIMEOUT_SECS)
}

fn ban_script(table: &str, items: &[(IpNet, Option<Duration>)]) -> String {
    let mut script = String::new();
    for (net, ttl) in items {
        script.push_str(&format!(
            "add {} {} timeout {}\n",
            set_for(table, net),
            net_text(net),
            ipset_timeout(*ttl)
        ));
    }
    script
}

fn unban_script(table: &str, nets: &[IpNet]) -> String {
    let mut script = String::new();
    for net in nets {
        script.push_str(&format!("del {} {}\n", set_for(table, net), net_text(net)));
    }
    script
}

/// The elements of `set` in `ipset list <set> -output save` text: lines
/// `add <set> <addr>[/<len>] [timeout <secs>] …`; `timeout 0` is no timeout.
fn parse_save(text: &str, set: &str) -> Result<Vec<BanEntry>, String> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("add") || words.next() != Some(set) {
            continue;
        }
        let elem = words
            .next()
            .ok_or_else(|| format!("no element in {line:?}"))?;
        let net = elem
            .parse::<IpNet>()
            .or_else(|_| elem.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("bad element {elem:?} in {line:?}"))?;
        let mut expires_in = None;
        while let Some(word) = words.next() {
            if word == "timeout" {
                let secs: u64 = words
                    .next()
                    .and_then(|secs| secs.parse().ok())
                    .ok_or_else(|| format!("bad timeout in {line:?}"))?;
                expires_in = (secs > 0).then(|| Duration::from_secs(secs));
            }
        }
        entries.push(BanEntry { net, expires_in });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `ipset v7.17` output, captured in a network namespace.
    const SAVE4: &str = include_str!("../../tests/fixtures/ipset-save4.txt");
    const SAVE6: &str = include_str!("../../tests/fixtures/ipset-save6.txt");
    const SAVE_EMPTY: &str = include_str!("../../tests/fixtures/ipset-save-empty.txt");

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn entry(text: &str, secs: Option<u64>) -> BanEntry {
        BanEntry {
            net: net(text),
            expires_in: secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn parses_ipv4_save_output() {
        assert_eq!(
            parse_save(SAVE4, "rampart4").unwrap(),
            vec![
                entry("10.1.0.0/16", Some(3600)),
                entry("10.0.0.5/32", Some(60)),
                entry("10.0.0.0/24", None),
            ]
        );
    }

    #[test]
    fn parses_ipv6_save_output() {
        assert_eq!(
            parse_save(SAVE6, "rampart6").unwrap(),
            vec![
                entry("fd00:2::/48", Some(119)),
                entry("fd00::1/128", Some(29)),
                entry("fd00:1::/64", None),
            ]
        );
    }

    #[test]
    fn empty_set_and_other_sets_give_nothing() {
        assert_eq!(parse_save(SAVE_EMPTY, "rampart4").unwrap(), vec![]);
        assert_eq!(parse_save(SAVE4, "other4").unwrap(), vec![]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_save("add rampart4 not-an-ip timeout 5", "rampart4").is_err());
        assert!(parse_save("add rampart4 10.0.0.1 timeout x", "rampart4").is_err());
        assert!(parse_save("add rampart4", "rampart4").is_err());
    }

    #[test]
    fn create_script_makes_both_sets() {
        assert_eq!(
            create_script("rampart"),
            "create rampart4 hash:net family inet timeout 0 maxelem 1048576\n\
             create rampart6 hash:net family inet6 timeout 0 maxelem 1048576\n"
        );
    }

    #[test]
    fn ban_script_routes_by_family_and_writes_timeouts() {
        let script = ban_script(
            "rampart",
            &[
                (net("10.0.0.5/32"), Some(Duration::from_millis(2500))),
                (net("10.0.1.9/24"), None),
                (net("fd00::1/128"), Some(Duration::ZERO)),
                (net("fd00:1::/64"), Some(Duration::from_secs(u64::MAX))),
            ],
        );
        assert_eq!(
            script,
            "add rampart4 10.0.0.5 timeout 3\n\
             add rampart4 10.0.1.0/24 timeout 0\n\
             add rampart6 fd00::1 timeout 1\n\
             add rampart6 fd00:1::/64 timeout 2147483\n"
        );
    }

    #[test]
    fn unban_script_deletes_each_net() {
        assert_eq!(
            unban_script("rampart", &[net("10.0.0.5/32"), net("fd00::/64")]),
            "del rampart4 10.0.0.5\ndel rampart6 fd00::/64\n"
        );
        assert_eq!(unban_script("rampart", &[]), "");
    }

    #[test]
    fn rule_arguments() {
        assert_eq!(
            rule_args("-I", "INPUT", "rampart4").join(" "),
            "-w -I INPUT 1 -m set --match-set rampart4 src -j DROP"
        );
        assert_eq!(
            rule_args("-C", "FORWARD", "rampart6").join(" "),
            "-w -C FORWARD -m set --match-set rampart6 src -j DROP"
        );
    }
}
