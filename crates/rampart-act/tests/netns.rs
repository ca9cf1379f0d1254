//! The firewall backends against the real kernel: each test builds two
//! network namespaces joined by a veth pair (see `support`), puts rampart's
//! firewall in namespace B, and checks with real TCP connections from A that
//! bans drop traffic and that lifting or expiring them lets it through again.
//!
//! Needs root, `ip`, and `nft` (nftables tests) or `ipset`, `iptables` and
//! `ip6tables` (ipset tests). Without them the tests print a skip message,
//! or fail when `CI` is set.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::Duration;

use ipnet::IpNet;
use rampart_act::firewall::BanEntry;
use rampart_act::{Firewall, build_firewall};
use rampart_config::{FirewallBackend, FirewallConfig};
use support::{NetnsPair, Side};

const PORT: u16 = 7000;
const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

fn tools(backend: FirewallBackend) -> &'static [&'static str] {
    match backend {
        FirewallBackend::Nftables => &["ip", "nft"],
        FirewallBackend::Ipset => &["ip", "ipset", "iptables", "ip6tables"],
        FirewallBackend::None => &["ip"],
    }
}

/// A fresh pair of namespaces and the firewall of namespace B, or `None`
/// when the test is skipped.
fn start(test: &str, backend: FirewallBackend) -> Option<(NetnsPair, Box<dyn Firewall>)> {
    if !support::prerequisites(test, tools(backend)) {
        return None;
    }
    let pair = NetnsPair::new();
    let config = FirewallConfig {
        backend,
        netns: Some(pair.b.clone()),
        ..FirewallConfig::default()
    };
    let firewall = build_firewall(&config).expect("a backend was configured");
    firewall.setup().expect("setup");
    Some((pair, firewall))
}

fn host(v6: bool) -> IpNet {
    IpNet::from(NetnsPair::addr(Side::A, v6))
}

/// A's /24 or /64.
fn prefix(v6: bool) -> IpNet {
    let len = if v6 { 64 } else { 24 };
    IpNet::new(NetnsPair::addr(Side::A, v6), len)
        .unwrap()
        .trunc()
}

fn target(v6: bool) -> SocketAddr {
    SocketAddr::new(NetnsPair::addr(Side::B, v6), PORT)
}

fn find(entries: &[BanEntry], net: IpNet) -> Option<&BanEntry> {
    entries.iter().find(|entry| entry.net == net)
}

/// Panics unless `net` is listed with a timeout of at most `max` and more
/// than `max - 10 s` left.
fn assert_listed_with_timeout(firewall: &dyn Firewall, net: IpNet, max: Duration) {
    let entries = firewall.list().expect("list");
    let entry = find(&entries, net).unwrap_or_else(|| panic!("{net} not listed: {entries:?}"));
    let left = entry
        .expires_in
        .unwrap_or_else(|| panic!("{net} listed without a timeout: {entries:?}"));
    assert!(
        left <= max && left + Duration::from_secs(10) > max,
        "{net}: {left:?} left, expected just under {max:?}"
    );
}

/// Panics unless rampart left nothing in namespace B.
fn assert_nothing_left(pair: &NetnsPair, backend: FirewallBackend) {
    match backend {
        FirewallBackend::Nftables => {
            let tables = pair.exec(Side::B, "nft", &["list", "tables"]);
            assert_eq!(tables.trim(), "", "nft tables left after teardown");
        }
        FirewallBackend::Ipset => {
            let sets = pair.exec(Side::B, "ipset", &["list", "-n"]);
            assert_eq!(sets.trim(), "", "ipset sets left after teardown");
            for tool in ["iptables", "ip6tables"] {
                let rules = pair.exec(Side::B, tool, &["-S"]);
                assert!(!rules.contains("match-set"), "{tool} rules left: {rules}");
            }
        }
        FirewallBackend::None => {}
    }
}

/// The whole life of a ban, with traffic checked at every step.
fn ban_lifecycle(test: &str, backend: FirewallBackend, v6: bool) {
    let Some((pair, firewall)) = start(test, backend) else {
        return;
    };
    let firewall = firewall.as_ref();
    let (host, prefix, target) = (host(v6), prefix(v6), target(v6));
    let listener = pair.listen(target);

    pair.assert_connects(&listener, target, "before any ban");

    firewall.ban(&[(host, MINUTE)]).expect("ban");
    pair.assert_dropped(&listener, target, "banned for 60 s");
    assert_listed_with_timeout(firewall, host, Duration::from_secs(60));

    firewall.setup().expect("setup again");
    assert_listed_with_timeout(firewall, host, Duration::from_secs(60));
    pair.assert_dropped(&listener, target, "after a second setup");

    firewall.unban(&[host]).expect("unban");
    pair.assert_connects(&listener, target, "after unban");
    assert!(find(&firewall.list().unwrap(), host).is_none());
    firewall.unban(&[host]).expect("unban of an absent element");

    firewall
        .ban(&[(host, Some(Duration::from_secs(2)))])
        .expect("short ban");
    pair.assert_dropped(&listener, target, "banned for 2 s");
    pair.assert_connects_within(
        &listener,
        target,
        Duration::from_secs(6),
        "after the 2 s ban expired",
    );

    firewall.ban(&[(prefix, MINUTE)]).expect("prefix ban");
    pair.assert_dropped(&listener, target, "prefix banned");
    assert_listed_with_timeout(firewall, prefix, Duration::from_secs(60));
    firewall
        .unban(&[host])
        .expect("unban of the address inside");
    pair.assert_dropped(&listener, target, "address unbanned, prefix still banned");

    firewall.flush().expect("flush");
    pair.assert_connects(&listener, target, "after flush");
    assert_eq!(firewall.list().unwrap(), vec![]);

    firewall.ban(&[(host, None)]).expect("ban without timeout");
    pair.assert_dropped(&listener, target, "banned without timeout");
    let entries = firewall.list().unwrap();
    assert_eq!(
        find(&entries, host).map(|entry| entry.expires_in),
        Some(None),
        "{entries:?}"
    );

    firewall.teardown().expect("teardown");
    pair.assert_connects(&listener, target, "after teardown");
    assert_nothing_left(&pair, backend);
    firewall.teardown().expect("second teardown");
}

#[test]
fn nftables_ipv4_ban_lifecycle() {
    ban_lifecycle(
        "nftables_ipv4_ban_lifecycle",
        FirewallBackend::Nftables,
        false,
    );
}

#[test]
fn nftables_ipv6_ban_lifecycle() {
    ban_lifecycle(
        "nftables_ipv6_ban_lifecycle",
        FirewallBackend::Nftables,
        true,
    );
}

#[test]
fn ipset_ipv4_ban_lifecycle() {
    ban_lifecycle("ipset_ipv4_ban_lifecycle", FirewallBackend::Ipset, false);
}

#[test]
fn ipset_ipv6_ban_lifecycle() {
    ban_lifecycle("ipset_ipv6_ban_lifecycle", FirewallBackend::Ipset, true);
}

/// A ban of an element already present replaces its timeout, longer or
/// shorter; IPv4 and IPv6 go in one call.
fn timeouts_are_replaced(test: &str, backend: FirewallBackend) {
    let Some((pair, firewall)) = start(test, backend) else {
        return;
    };
    let firewall = firewall.as_ref();
    let listener4 = pair.listen(target(false));
    let listener6 = pair.listen(target(true));
    let short = Some(Duration::from_secs(2));

    firewall
        .ban(&[(host(false), short), (host(true), short)])
        .expect("mixed ban");
    firewall
        .ban(&[(host(false), MINUTE), (host(true), MINUTE)])
        .expect("longer ban");
    thread::sleep(Duration::from_secs(3));
    pair.assert_dropped(&listener4, target(false), "2 s ban extended to 60 s");
    pair.assert_dropped(&listener6, target(true), "2 s ban extended to 60 s");
    assert_listed_with_timeout(firewall, host(false), Duration::from_secs(60));
    assert_listed_with_timeout(firewall, host(true), Duration::from_secs(60));

    firewall
        .ban(&[(host(false), Some(Duration::from_secs(5)))])
        .expect("shorter ban");
    assert_listed_with_timeout(firewall, host(false), Duration::from_secs(5));
    assert_listed_with_timeout(firewall, host(true), Duration::from_secs(60));

    firewall.teardown().expect("teardown");
    assert_nothing_left(&pair, backend);
}

#[test]
fn nftables_timeouts_are_replaced() {
    timeouts_are_replaced("nftables_timeouts_are_replaced", FirewallBackend::Nftables);
}

#[test]
fn ipset_timeouts_are_replaced() {
    timeouts_are_replaced("ipset_timeouts_are_replaced", FirewallBackend::Ipset);
}

/// nftables interval sets hold no overlapping elements: an address inside a
/// banned prefix is a no-op, a prefix over banned addresses replaces them.
#[test]
fn nftables_overlapping_bans() {
    let Some((pair, firewall)) = start("nftables_overlapping_bans", FirewallBackend::Nftables)
    else {
        return;
    };
    let firewall = firewall.as_ref();
    let listener = pair.listen(target(false));
    let nets = |entries: Vec<BanEntry>| entries.into_iter().map(|e| e.net).collect::<Vec<_>>();
    let other: IpNet = "10.231.0.77/32".parse().unwrap();

    firewall.ban(&[(prefix(false), MINUTE)]).expect("prefix");
    firewall
        .ban(&[(host(false), Some(Duration::from_secs(5)))])
        .expect("address inside the banned prefix");
    assert_eq!(nets(firewall.list().unwrap()), vec![prefix(false)]);
    assert_listed_with_timeout(firewall, prefix(false), Duration::from_secs(60));

    firewall.unban(&[prefix(false)]).expect("unban prefix");
    pair.assert_connects(&listener, target(false), "prefix unbanned");

    firewall
        .ban(&[(host(false), None), (other, MINUTE)])
        .expect("two addresses");
    firewall
        .ban(&[(prefix(false), Some(Duration::from_secs(30)))])
        .expect("prefix over banned addresses");
    assert_eq!(nets(firewall.list().unwrap()), vec![prefix(false)]);
    assert_listed_with_timeout(firewall, prefix(false), Duration::from_secs(30));
    pair.assert_dropped(&listener, target(false), "prefix replaced the addresses");

    firewall.flush().expect("flush");
    firewall
        .ban(&[
            (host(false), MINUTE),
            (prefix(false), MINUTE),
            (host(true), MINUTE),
        ])
        .expect("batch with an address inside a prefix of the same batch");
    assert_eq!(
        nets(firewall.list().unwrap()),
        vec![prefix(false), host(true)]
    );
    pair.assert_dropped(&listener, target(false), "batch ban");

    firewall.teardown().expect("teardown");
    assert_nothing_left(&pair, FirewallBackend::Nftables);
}

/// ipset `hash:net` keeps an address and a prefix containing it apart, each
/// with its own timeout.
#[test]
fn ipset_overlapping_bans_are_separate_entries() {
    let Some((pair, firewall)) = start(
        "ipset_overlapping_bans_are_separate_entries",
        FirewallBackend::Ipset,
    ) else {
        return;
    };
    let firewall = firewall.as_ref();
    let listener = pair.listen(target(false));

    firewall.ban(&[(prefix(false), MINUTE)]).expect("prefix");
    firewall
        .ban(&[(host(false), Some(Duration::from_secs(30)))])
        .expect("address inside the prefix");
    assert_listed_with_timeout(firewall, prefix(false), Duration::from_secs(60));
    assert_listed_with_timeout(firewall, host(false), Duration::from_secs(30));

    firewall.unban(&[prefix(false)]).expect("unban prefix");
    pair.assert_dropped(&listener, target(false), "address still banned");
    firewall.unban(&[host(false)]).expect("unban address");
    pair.assert_connects(&listener, target(false), "both unbanned");

    firewall.teardown().expect("teardown");
    assert_nothing_left(&pair, FirewallBackend::Ipset);
}

/// Setup run again adds no second copy of the drop rules.
#[test]
fn nftables_setup_adds_rules_once() {
    let Some((pair, firewall)) = start("nftables_setup_adds_rules_once", FirewallBackend::Nftables)
    else {
        return;
    };
    firewall.setup().expect("second setup");
    firewall.setup().expect("third setup");
    let ruleset = pair.exec(Side::B, "nft", &["list", "table", "inet", "rampart"]);
    assert_eq!(ruleset.matches("ip saddr @banned4").count(), 2, "{ruleset}");
    assert_eq!(
        ruleset.matches("ip6 saddr @banned6").count(),
        2,
        "{ruleset}"
    );
    assert_eq!(
        ruleset.matches("priority filter - 10").count(),
        2,
        "{ruleset}"
    );
    assert_eq!(
        ruleset.matches("flags interval,timeout").count(),
        2,
        "{ruleset}"
    );
}

/// Setup run again inserts no second copy of the iptables rules.
#[test]
fn ipset_setup_adds_rules_once() {
    let Some((pair, firewall)) = start("ipset_setup_adds_rules_once", FirewallBackend::Ipset)
    else {
        return;
    };
    firewall.setup().expect("second setup");
    firewall.setup().expect("third setup");
    for (tool, set) in [("iptables", "rampart4"), ("ip6tables", "rampart6")] {
        let rules = pair.exec(Side::B, tool, &["-S"]);
        for chain in ["INPUT", "FORWARD"] {
            let rule = format!("-A {chain} -m set --match-set {set} src -j DROP");
            assert_eq!(rules.matches(&rule).count(), 1, "{tool}: {rules}");
        }
    }
    let sets = pair.exec(Side::B, "ipset", &["list", "-n"]);
    assert_eq!(
        sets.split_whitespace().collect::<Vec<_>>(),
        ["rampart4", "rampart6"]
    );
}

/// A table name that could smuggle commands into a script is refused before
/// any tool runs.
#[test]
fn bad_table_name_is_refused() {
    for backend in [FirewallBackend::Nftables, FirewallBackend::Ipset] {
        let config = FirewallConfig {
            backend,
            table: "x; flush ruleset".to_owned(),
            netns: Some("rampart-no-such-netns".to_owned()),
            ..FirewallConfig::default()
        };
        let firewall = build_firewall(&config).unwrap();
        let error = firewall.setup().unwrap_err().to_string();
        assert!(error.contains("table name"), "{error}");
        let error = firewall
            .ban(&[(IpAddr::from([10, 0, 0, 1]).into(), None)])
            .unwrap_err();
        assert!(error.to_string().contains("table name"), "{error}");
    }
}
