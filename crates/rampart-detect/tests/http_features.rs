//! Behaviour tests of the client table: synthetic traffic with
//! deterministic times (no wall clock) for each kind of client the gateway
//! must tell apart, with the default `[gateway.detection]`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use rampart_config::HttpDetectionConfig;
use rampart_detect::http::{ClientTable, Reason, RequestInfo, Verdict};

const T0: u64 = 5_000_000;
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// splitmix64: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A request as the simulator makes it (owned; lent as a `RequestInfo`).
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    user_agent: Option<&'static str>,
    header_count: usize,
    cookie: bool,
    referer: bool,
    accept_language: bool,
    body_len: Option<u64>,
}

impl Req {
    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: self.method,
            path: &self.path,
            query: None,
            user_agent: self.user_agent,
            header_count: self.header_count,
            has_cookie: self.cookie,
            has_referer: self.referer,
            has_accept_language: self.accept_language,
            body_len: self.body_len,
        }
    }

    fn bot(path: &str, user_agent: &'static str) -> Self {
        Req {
            method: "GET",
            path: path.to_owned(),
            user_agent: Some(user_agent),
            header_count: 4,
            cookie: false,
            referer: false,
            accept_language: false,
            body_len: None,
        }
    }
}

enum Ev {
    Request(Req),
    Response(u16),
}

/// Every event of a simulation: (time, client, event).
#[derive(Default)]
struct Traffic(Vec<(u64, IpNet, Ev)>);

impl Traffic {
    fn request(&mut self, t: u64, client: IpNet, req: Req, status: u16, rng: &mut Rng) {
        self.0.push((t, client, Ev::Request(req)));
        self.0
            .push((t + rng.range(2, 40), client, Ev::Response(status)));
    }
}

/// What happened to each client.
#[derive(Debug, Default, Clone)]
struct Outcome {
    first: u64,
    requests: u64,
    first_block: Option<u64>,
    first_monitor: Option<u64>,
    max_score: f64,
    block_reasons: String,
}

impl Outcome {
    fn time_to_block(&self) -> Option<u64> {
        self.first_block.map(|t| t - self.first)
    }
}

fn run(table: &ClientTable, mut traffic: Traffic) -> BTreeMap<IpNet, Outcome> {
    // Stable: requests before their responses at equal times.
    traffic.0.sort_by_key(|(t, _, _)| *t);
    let mut out: BTreeMap<IpNet, Outcome> = BTreeMap::new();
    for (t, client, ev) in &traffic.0 {
        match ev {
            Ev::Request(req) => {
                let a = table.observe(*client, &req.info(), *t);
                let o = out.entry(*client).or_insert_with(|| Outcome {
                    first: *t,
                    ..Outcome::default()
                });
                o.requests += 1;
                o.max_score = o.max_score.max(a.score);
                if a.verdict == Verdict::Block && o.first_block.is_none() {
                    o.first_block = Some(*t);
                    o.block_reasons = a.reasons.to_string();
                }
                if a.verdict >= Verdict::Monitor && o.first_monitor.is_none() {
                    o.first_monitor = Some(*t);
                }
            }
            Ev::Response(status) => table.observe_response(*client, *status, *t),
        }
    }
    out
}

fn ip(s: &str) -> IpNet {
    IpNet::from(s.parse::<IpAddr>().unwrap())
}

fn table() -> ClientTable {
    ClientTable::new(&HttpDetectionConfig::default())
}

/// A person browsing: a page and up to `max_assets` assets fetched in
/// parallel, then think time; cookies after the first request,
/// `Accept-Language` always, referers after the landing page, some 404s
/// and form posts.
fn browse(
    traffic: &mut Traffic,
    client: IpNet,
    rng: &mut Rng,
    duration_ms: u64,
    think_ms: (u64, u64),
    max_assets: u64,
    cookies: bool,
) {
    let ua = if rng.chance(50) { FIREFOX } else { CHROME };
    let mut t = T0 + rng.range(0, 3000);
    let end = t + duration_ms;
    let mut first = true;
    while t < end {
        let page = rng.range(0, 60);
        let post = rng.chance(5);
        let page_req = Req {
            method: if post { "POST" } else { "GET" },
            path: if post {
                "/account/settings".to_owned()
            } else {
                format!("/shop/item/{page}")
            },
            user_agent: Some(ua),
            header_count: rng.range(8, 13) as usize,
            cookie: cookies && !first,
            referer: !first,
            accept_language: true,
            body_len: post.then(|| rng.range(40, 400)),
        };
        let status = if rng.chance(6) { 404 } else { 200 };
        traffic.request(t, client, page_req, status, rng);
        first = false;
        let page_done = t + rng.range(20, 120);
        for _ in 0..rng.range(0, max_assets) {
            let asset = rng.range(0, 24);
            let req = Req {
                method: "GET",
                path: format!(
                    "/static/asset{asset}.{}",
                    ["css", "js", "png", "woff2"][(asset % 4) as usize]
                ),
                user_agent: Some(ua),
                header_count: rng.range(7, 11) as usize,
                cookie: cookies,
                referer: true,
                accept_language: true,
                body_len: None,
            };
            let status = if rng.chance(2) { 404 } else { 200 };
            traffic.request(page_done + rng.range(0, 60), client, req, status, rng);
        }
        t = page_done + 60 + rng.range(think_ms.0, think_ms.1);
    }
}

/// A bot sending `rps` requests a second (±10 % jitter) for `duration_ms`.
fn steady_bot(
    traffic: &mut Traffic,
    client: IpNet,
    rng: &mut Rng,
    rps: u64,
    duration_ms: u64,
    req: &Req,
) {
    let gap = 1000 / rps;
    let mut t = T0 + rng.range(0, 1000);
    let end = t + duration_ms;
    while t < end {
        traffic.request(t, client, req.clone(), 200, rng);
        t += rng.range(gap - gap / 10, gap + gap / 10).max(1);
    }
}

#[test]
fn normal_browsing_is_never_blocked() {
    let table = table();
    let mut rng = Rng(1);
    let mut traffic = Traffic::default();
    for i in 0..200u32 {
        let client = ip(&format!("198.51.{}.{}", i / 250, i % 250 + 1));
        browse(
            &mut traffic,
            client,
            &mut rng,
            10 * 60_000,
            (500, 5000),
            10,
            true,
        );
    }
    let out = run(&table, traffic);
    let requests: u64 = out.values().map(|o| o.requests).sum();
    let max = out.values().map(|o| o.max_score).fold(0.0, f64::max);
    let monitored = out.values().filter(|o| o.first_monitor.is_some()).count();
    eprintln!(
        "normal: {} clients, {requests} requests over 10 min, highest score {max:.3}, {monitored} ever monitored",
        out.len()
    );
    for (client, o) in &out {
        assert!(o.first_block.is_none(), "{client} blocked: {o:?}");
    }
    assert!(max < 0.5, "a normal client reached monitor: {max}");
}

#[test]
fn browsing_a_site_without_cookies_is_not_blocked() {
    let table = table();
    let mut rng = Rng(3);
    let mut traffic = Traffic::default();
    for i in 0..50u32 {
        let client = ip(&format!("198.51.100.{}", i + 1));
        browse(
            &mut traffic,
            client,
            &mut rng,
            5 * 60_000,
            (500, 5000),
            10,
            false,
        );
    }
    let out = run(&table, traffic);
    let max = out.values().map(|o| o.max_score).fold(0.0, f64::max);
    eprintln!("no cookies: highest score {max:.3}");
    for (client, o) in &out {
        assert!(o.first_block.is_none(), "{client} blocked: {o:?}");
    }
    assert!(max < 0.5, "a normal client reached monitor: {max}");
}

#[test]
fn hurried_browsing_with_heavy_pages_is_not_blocked() {
    // The worst a person does: every page with 10 assets, 0.5–1 s apart.
    let table = table();
    let mut rng = Rng(2);
    let mut traffic = Traffic::default();
    for i in 0..50u32 {
        browse(
            &mut traffic,
            ip(&format!("198.51.100.{}", i + 1)),
            &mut rng,
            3 * 60_000,
            (500, 1000),
            10,
            true,
        );
    }
    let out = run(&table, traffic);
    let max = out.values().map(|o| o.max_score).fold(0.0, f64::max);
    eprintln!("hurried: highest score {max:.3}");
    for (client, o) in &out {
        assert!(o.first_block.is_none(), "{client} blocked: {o:?}");
    }
}

#[test]
fn extreme_flood_is_blocked_within_a_second() {
    for (rps, ua) in [
        (200, "python-requests/2.31.0"),
        (500, CHROME),
        (1000, "Go-http-client/1.1"),
    ] {
        let table = table();
        let mut rng = Rng(rps);
        let mut traffic = Traffic::default();
        let client = ip("203.0.113.1");
        steady_bot(
            &mut traffic,
            client,
            &mut rng,
            rps,
            5000,
            &Req::bot("/", ua),
        );
        let o = &run(&table, traffic)[&client];
        let ttb = o.time_to_block().expect("never blocked");
        eprintln!(
            "extreme flood {rps}/s: blocked after {ttb} ms ({})",
            o.block_reasons
        );
        assert!(ttb <= 1000, "{rps}/s: blocked after {ttb} ms");
    }
}

#[test]
fn a_flood_that_imitates_a_browser_meets_the_hard_rule() {
    let table = table();
    let client = ip("203.0.113.3");
    let mut first_block = None;
    for i in 0..1000u64 {
        let req = Req {
            cookie: true,
            referer: true,
            accept_language: true,
            header_count: 10,
            ..Req::bot(&format!("/shop/item/{}", i % 40), CHROME)
        };
        let t = T0 + i * 4; // 250/s
        let a = table.observe(client, &req.info(), t);
        if a.verdict == Verdict::Block {
            assert!(a.flood && a.reasons.contains(Reason::Flood), "{a:?}");
            first_block = Some(t - T0);
            break;
        }
    }
    let ttb = first_block.expect("never blocked");
    eprintln!("browser-like flood 250/s: blocked after {ttb} ms (flood)");
    assert!(ttb <= 200);
}

#[test]
fn sustained_flood_is_blocked_within_a_second() {
    // A browser user agent: the behaviour has to carry it below flood_rps.
    for rps in [20, 25, 30, 40, 50] {
        let table = table();
        let mut rng = Rng(rps);
        let mut traffic = Traffic::default();
        let client = ip("203.0.113.2");
        steady_bot(
            &mut traffic,
            client,
            &mut rng,
            rps,
            60_000,
            &Req::bot("/api/search", CHROME),
        );
        let o = &run(&table, traffic)[&client];
        let ttb = o.time_to_block().expect("never blocked");
        eprintln!(
            "sustained flood {rps}/s: blocked after {ttb} ms ({})",
            o.block_reasons
        );
        assert!(ttb <= 1000, "{rps}/s: blocked after {ttb} ms");
    }
}

#[test]
fn distributed_flood_is_blocked_per_client() {
    let table = table();
    let mut rng = Rng(7);
    let mut traffic = Traffic::default();
    let mut bots = Vec::new();
    for i in 0..50u32 {
        let client = ip(&format!("192.0.2.{}", i + 1));
        bots.push(client);
        let rps = rng.range(10, 20);
        let ua = if i % 2 == 0 {
            CHROME
        } else {
            "python-requests/2.31.0"
        };
        steady_bot(
            &mut traffic,
            client,
            &mut rng,
            rps,
            30_000,
            &Req::bot("/", ua),
        );
    }
    // Normal clients in the same run are untouched.
    for i in 0..50u32 {
        browse(
            &mut traffic,
            ip(&format!("198.51.100.{}", i + 1)),
            &mut rng,
            60_000,
            (500, 5000),
            10,
            true,
        );
    }
    let out = run(&table, traffic);
    let mut worst = 0;
    for client in &bots {
        let o = &out[client];
        let ttb = o
            .time_to_block()
            .unwrap_or_else(|| panic!("{client} never blocked: {o:?}"));
        worst = worst.max(ttb);
    }
    eprintln!("distributed flood: 50 clients at 10–20/s, all blocked, the last after {worst} ms");
    assert!(worst <= 2000, "slowest block after {worst} ms");
    for (client, o) in out.iter().filter(|(c, _)| !bots.contains(c)) {
        assert!(o.first_block.is_none(), "normal {client} blocked: {o:?}");
    }
}

#[test]
fn low_and_slow_bots_end_blocked_and_leave_normal_clients_alone() {
    let table = table();
    let mut rng = Rng(11);
    let mut traffic = Traffic::default();
    let mut bots = Vec::new();
    for i in 0..20u32 {
        let client = ip(&format!("192.0.2.{}", i + 100));
        bots.push(client);
        let ua = if i % 2 == 0 { CHROME } else { "curl/8.5.0" };
        let mut t = T0 + rng.range(0, 2000);
        while t < T0 + 5 * 60_000 {
            // One path, or a few.
            let path = if i % 4 < 2 {
                "/login".to_owned()
            } else {
                format!("/p/{}", rng.range(0, 2))
            };
            traffic.request(t, client, Req::bot(&path, ua), 200, &mut rng);
            t += rng.range(500, 2000);
        }
    }
    for i in 0..100u32 {
        browse(
            &mut traffic,
            ip(&format!("198.51.100.{}", i + 1)),
            &mut rng,
            5 * 60_000,
            (500, 5000),
            10,
            true,
        );
    }
    let out = run(&table, traffic);
    let mut worst = 0;
    for client in &bots {
        let o = &out[client];
        let ttb = o
            .time_to_block()
            .unwrap_or_else(|| panic!("{client} never blocked: {o:?}"));
        worst = worst.max(ttb);
    }
    let mut reasons: Vec<&str> = bots.iter().map(|c| out[c].block_reasons.as_str()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    eprintln!(
        "low and slow: 20 bots at 0.5–2 s, all blocked, the last after {worst} ms; reasons: {reasons:?}"
    );
    assert!(worst <= 60_000, "slowest block after {worst} ms");
    for (client, o) in out.iter().filter(|(c, _)| !bots.contains(c)) {
        assert!(o.first_block.is_none(), "normal {client} blocked: {o:?}");
    }
}

#[test]
fn a_scanner_ends_blocked_by_behaviour_alone() {
    // A browser user agent (no signature), many distinct paths, mostly 404.
    for rps in [2, 10] {
        let table = table();
        let mut rng = Rng(13);
        let mut traffic = Traffic::default();
        let client = ip("203.0.113.50");
        let mut t = T0;
        for i in 0..600 {
            let status = if rng.chance(90) { 404 } else { 200 };
            traffic.request(
                t,
                client,
                Req::bot(&format!("/probe/{i}.php"), FIREFOX),
                status,
                &mut rng,
            );
            t += rng.range(1000 / rps / 2, 1500 / rps);
        }
        let o = &run(&table, traffic)[&client];
        let ttb = o.time_to_block().expect("never blocked");
        eprintln!(
            "scanner {rps}/s: blocked after {ttb} ms ({})",
            o.block_reasons
        );
        assert!(ttb <= 30_000);
    }
}

#[test]
fn error_responses_raise_the_score() {
    let mut scores = Vec::new();
    for status in [200, 404] {
        let table = table();
        let client = ip("203.0.113.60");
        let mut last = 0.0;
        for i in 0..20u64 {
            let t = T0 + i * 700;
            let req = Req {
                cookie: true,
                accept_language: true,
                header_count: 9,
                ..Req::bot(&format!("/docs/{i}"), FIREFOX)
            };
            last = table.observe(client, &req.info(), t).score;
            table.observe_response(client, status, t + 20);
        }
        let f = table.features(&client, T0 + 20_000).unwrap();
        scores.push((last, f.client_error_share));
    }
    eprintln!(
        "same traffic answered 200: {:?}, answered 404: {:?}",
        scores[0], scores[1]
    );
    assert_eq!(scores[0].1, 0.0);
    assert_eq!(scores[1].1, 1.0);
    assert!(scores[1].0 > scores[0].0 + 0.05);
}

#[test]
fn one_odd_request_never_blocks() {
    let cfg = HttpDetectionConfig::default();
    let table = ClientTable::new(&cfg);
    let req = Req {
        method: "PROPFIND",
        ..Req::bot("/", "x")
    };
    let mut req = req;
    req.user_agent = None;
    req.header_count = 1;
    for i in 0..u64::from(cfg.min_requests) - 1 {
        let a = table.observe(ip("203.0.113.70"), &req.info(), T0 + i * 3000);
        assert_ne!(a.verdict, Verdict::Block, "request {i}: {a:?}");
    }
}

#[test]
fn eviction_holds_the_cap_and_keeps_the_active_client() {
    let cfg = HttpDetectionConfig {
        max_clients: 1000,
        ..HttpDetectionConfig::default()
    };
    let table = ClientTable::new(&cfg);
    let hot = ip("10.0.0.1");
    let req = Req::bot("/", FIREFOX);
    for i in 0..20_000u32 {
        let t = T0 + u64::from(i);
        let client = IpNet::from(IpAddr::from([172, 16, (i >> 8) as u8, i as u8]));
        table.observe(client, &req.info(), t);
        table.observe(hot, &req.info(), t);
        assert!(table.len() <= 1000, "{} clients after {i}", table.len());
    }
    assert!(table.len() > 900, "{}", table.len());
    let f = table.features(&hot, T0 + 20_000).unwrap();
    assert_eq!(f.requests, 20_000, "the active client was evicted");
    table.forget(&hot);
    assert!(table.features(&hot, T0 + 20_000).is_none());
}

#[test]
fn tiny_caps_hold() {
    for max_clients in [1, 2, 3, 31, 33] {
        let cfg = HttpDetectionConfig {
            max_clients,
            ..HttpDetectionConfig::default()
        };
        let table = ClientTable::new(&cfg);
        for i in 0..500u32 {
            let client = IpNet::from(IpAddr::from([172, 16, (i >> 8) as u8, i as u8]));
            table.observe(client, &Req::bot("/", FIREFOX).info(), T0 + u64::from(i));
            assert!(table.len() <= max_clients);
        }
        assert_eq!(table.len(), max_clients);
    }
}

#[test]
fn idle_clients_are_forgotten() {
    let cfg = HttpDetectionConfig::default();
    let idle = u64::try_from(cfg.idle_after.0.as_millis()).unwrap();
    let table = ClientTable::new(&cfg);
    let req = Req::bot("/", FIREFOX);
    for i in 0..100u8 {
        table.observe(ip(&format!("10.1.0.{i}")), &req.info(), T0);
    }
    let regular = ip("10.2.0.1");
    for k in 0..5 {
        table.observe(regular, &req.info(), T0 + k * idle / 5);
    }
    assert_eq!(table.len(), 101);
    assert_eq!(table.sweep(T0 + idle - 1), 0);
    assert_eq!(table.sweep(T0 + idle), 100);
    assert_eq!(table.len(), 1);
    assert_eq!(table.features(&regular, T0 + idle).unwrap().requests, 5);
    // Coming back after an idle spell starts afresh.
    let a = table.observe(regular, &req.info(), T0 + 10 * idle);
    assert_eq!(a.features.requests, 1);
    // Shards also sweep themselves as requests arrive.
    let table = ClientTable::new(&cfg);
    for i in 0..100u8 {
        table.observe(ip(&format!("10.1.0.{i}")), &req.info(), T0);
    }
    for i in 0..100u8 {
        table.observe(ip(&format!("10.3.0.{i}")), &req.info(), T0 + idle + 1);
    }
    // Only shards no new client went to still hold old ones.
    assert!(table.len() < 120, "{}", table.len());
    table.sweep(T0 + idle + 1);
    assert_eq!(table.len(), 100);
}

#[test]
fn an_ipv6_64_is_one_client() {
    let table = table();
    let req = Req::bot("/", FIREFOX);
    let mut last = None;
    for i in 0..10u64 {
        let addr: IpAddr = format!("2001:db8:5:6:{i:x}::{i:x}").parse().unwrap();
        let key = table.client_key(addr);
        last = Some(table.observe(key, &req.info(), T0 + i * 100));
    }
    assert_eq!(last.unwrap().features.requests, 10);
    assert_eq!(table.len(), 1);
    let other = table.client_key("2001:db8:5:7::1".parse().unwrap());
    assert_eq!(table.observe(other, &req.info(), T0).features.requests, 1);
    let mapped = table.client_key("::ffff:192.0.2.9".parse().unwrap());
    assert_eq!(mapped, ip("192.0.2.9"));
}

#[test]
fn floods_say_so_and_the_table_is_shared_across_threads() {
    let table = std::sync::Arc::new(table());
    let threads: Vec<_> = (0..4u8)
        .map(|n| {
            let table = table.clone();
            std::thread::spawn(move || {
                let req = Req::bot("/", CHROME);
                let client = IpNet::from(IpAddr::from([203, 0, 113, n]));
                let mut last = None;
                for i in 0..100 {
                    last = Some(table.observe(client, &req.info(), T0 + i * 5));
                }
                last.unwrap()
            })
        })
        .collect();
    for t in threads {
        let a = t.join().unwrap();
        assert!(a.flood && a.verdict == Verdict::Block);
        assert!(a.reasons.contains(Reason::Flood));
    }
    assert_eq!(table.len(), 4);
}

#[test]
fn slow_pollers_and_monitors_are_flagged_at_most() {
    let table = table();
    let mut rng = Rng(11);
    let mut traffic = Traffic::default();
    // A health monitor every 30 s and an API poller every 5 s, for an hour,
    // both bare scripts on one path: they look like bots but never reach
    // the volume that lets behaviour alone block.
    let monitor = ip("192.0.2.200");
    let poller = ip("192.0.2.201");
    for (client, gap) in [(monitor, 30_000), (poller, 5_000)] {
        let mut t = T0;
        while t < T0 + 3_600_000 {
            traffic.request(t, client, Req::bot("/status", "curl/8.5.0"), 200, &mut rng);
            t += gap;
        }
    }
    let out = run(&table, traffic);
    for client in [monitor, poller] {
        let o = &out[&client];
        assert!(o.first_block.is_none(), "{client} blocked: {o:?}");
        assert!(
            o.max_score >= 0.5,
            "{client} still looks like a script: {o:?}"
        );
    }
}

#[test]
fn one_short_scripted_burst_is_not_banned() {
    let table = table();
    let mut rng = Rng(12);
    let mut traffic = Traffic::default();
    let client = ip("192.0.2.210");
    // 15 bare requests within 150 ms, then nothing: below the flood rule,
    // over before `min_seen`.
    for i in 0..15 {
        let mut req = Req::bot("/", "curl/8.5.0");
        req.user_agent = None;
        traffic.request(T0 + i * 10, client, req, 200, &mut rng);
    }
    let o = &run(&table, traffic)[&client];
    assert!(o.first_block.is_none(), "{o:?}");
}
