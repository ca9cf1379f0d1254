//! The scenarios: who sends what, how fast, from which addresses.
//!
//! Every scenario owns a /16 of 127.0.0.0/8 (second octet fixed, see
//! [`Scenario::octet`]); the seed picks a third (or, for the distributed
//! flood, fourth) octet, so a rerun with another seed uses fresh addresses
//! that a gateway has not banned yet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, COOKIE, HeaderName, ORIGIN, REFERER, USER_AGENT,
};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Run;
use super::client::{Client, ClientStats, Pacer, Req};
use super::rng::Rng;
use super::slowloris::{self, SlowlorisStats};

/// A kind of traffic, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Scenario {
    /// Browsers: pages, asset bursts, cookies, think time.
    Normal,
    /// A few clients as fast as allowed, same path, minimal headers.
    ExtremeFlood,
    /// Clients at a steady ~30 req/s.
    SustainedFlood,
    /// Bot-like clients at one request every 0.5–2 s.
    LowAndSlow,
    /// Connections that send a request head one line every few seconds.
    Slowloris,
    /// Many addresses at ~15 req/s each, same path.
    DistributedFlood,
    /// One client walking common probe paths with a scanner user agent.
    Scanner,
    /// SQL injection, XSS and path traversal payloads.
    Injection,
}

/// Browsers simulated by `normal` (and borrowed by attackers that pretend).
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
const LANGUAGES: &[&str] = &[
    "en-US,en;q=0.9",
    "en-GB,en;q=0.9,en-US;q=0.8",
    "de-DE,de;q=0.9,en;q=0.8",
    "fr-FR,fr;q=0.9,en-US;q=0.7,en;q=0.6",
];
const HTML_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const SEARCH_WORDS: &[&str] = &["shoes", "blue+jacket", "gift+card", "return+policy", "sale"];
/// Pages that exist on a typical site (`{n}` becomes a number).
const PAGES: &[&str] = &[
    "/",
    "/",
    "/about",
    "/products",
    "/products/{n}",
    "/products/{n}",
    "/blog",
    "/blog/post-{n}",
    "/contact",
    "/search?q={word}",
    "/login",
];
/// Pages that usually do not (stale links).
const MISSING_PAGES: &[&str] = &[
    "/old-page.html",
    "/promo/spring-sale",
    "/careers",
    "/news/2019/{n}",
];
const ASSETS: &[&str] = &[
    "/static/css/main.css",
    "/static/css/theme.css",
    "/static/js/app.js",
    "/static/js/vendor.js",
    "/static/img/logo.png",
    "/static/img/hero.png",
    "/static/img/p{n}.png",
    "/static/img/p{n}.png",
    "/static/fonts/inter.woff2",
    "/favicon.ico",
];
const BOT_AGENTS: &[&str] = &[
    "python-requests/2.31.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "curl/8.5.0",
];
const FLOOD_AGENTS: &[&str] = &["curl/8.5.0", "python-aiohttp/3.9.1", "Go-http-client/1.1"];
/// What a scanner asks for first under each prefix.
const PROBES: &[&str] = &[
    "/.env",
    "/.git/config",
    "/.git/HEAD",
    "/.svn/entries",
    "/.htaccess",
    "/.htpasswd",
    "/.DS_Store",
    "/.aws/credentials",
    "/wp-login.php",
    "/wp-admin/",
    "/wp-config.php.bak",
    "/xmlrpc.php",
    "/phpmyadmin/",
    "/pma/",
    "/admin.php",
    "/admin/",
    "/administrator/",
    "/login.php",
    "/backup.sql",
    "/backup.zip",
    "/db.sql",
    "/dump.sql",
    "/config.php",
    "/config.json",
    "/server-status",
    "/phpinfo.php",
    "/info.php",
    "/shell.php",
    "/cgi-bin/test.cgi",
    "/actuator/env",
    "/console",
    "/debug/pprof/",
    "/manager/html",
    "/solr/admin/",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/robots.txt",
];
const PROBE_PREFIXES: &[&str] = &["", "/old", "/backup", "/test", "/wordpress", "/site"];
/// `(path, parameter, raw value)`: the value is percent-encoded into the query.
const INJECTIONS: &[(&str, &str, &str)] = &[
    ("/products", "id", "1' OR '1'='1"),
    (
        "/products",
        "id",
        "1 UNION SELECT username, password FROM users--",
    ),
    ("/products", "id", "1; DROP TABLE users--"),
    ("/products", "id", "1 AND SLEEP(5)"),
    ("/login", "user", "admin'--"),
    ("/search", "q", "<script>alert(1)</script>"),
    (
        "/search",
        "q",
        "\"><img src=x onerror=alert(document.cookie)>",
    ),
    ("/search", "q", "<svg/onload=alert(1)>"),
    ("/download", "file", "../../../../etc/passwd"),
    ("/download", "file", "..\\..\\..\\windows\\win.ini"),
    ("/page", "name", "{{7*7}}"),
    ("/api/exec", "cmd", "; cat /etc/passwd"),
    ("/redirect", "url", "javascript:alert(1)"),
    ("/fetch", "url", "http://169.254.169.254/latest/meta-data/"),
];
/// Traversal in the path itself (already valid in a URI).
const TRAVERSALS: &[&str] = &[
    "/static/../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/cgi-bin/.%2e/.%2e/.%2e/bin/sh",
];

const EXTREME_CLIENTS: usize = 4;
const EXTREME_RPS: f64 = 250.0;
const SUSTAINED_CLIENTS: usize = 4;
const SUSTAINED_RPS: f64 = 30.0;
const LOW_SLOW_CLIENTS: usize = 4;
const DISTRIBUTED_CLIENTS: usize = 50;
const DISTRIBUTED_RPS: f64 = 15.0;
const SCANNER_RPS: f64 = 10.0;
const INJECTION_CLIENTS: usize = 2;
const INJECTION_RPS: f64 = 4.0;
const NORMAL_CLIENTS: usize = 8;
/// Slowloris: addresses, and connections from each.
pub const SLOWLORIS_SOURCES: usize = 5;
pub const SLOWLORIS_PER_SOURCE: usize = 10;

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::Normal,
        Scenario::ExtremeFlood,
        Scenario::SustainedFlood,
        Scenario::LowAndSlow,
        Scenario::Slowloris,
        Scenario::DistributedFlood,
        Scenario::Scanner,
        Scenario::Injection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::ExtremeFlood => "extreme-flood",
            Scenario::SustainedFlood => "sustained-flood",
            Scenario::LowAndSlow => "low-and-slow",
            Scenario::Slowloris => "slowloris",
            Scenario::DistributedFlood => "distributed-flood",
            Scenario::Scanner => "scanner",
            Scenario::Injection => "injection",
        }
    }

    pub fn is_attack(self) -> bool {
        self != Scenario::Normal
    }

    /// Second octet of the scenario's source addresses.
    pub fn octet(self) -> u8 {
        match self {
            Scenario::Normal => 10,
            Scenario::ExtremeFlood => 20,
            Scenario::SustainedFlood => 21,
            Scenario::LowAndSlow => 22,
            Scenario::Slowloris => 23,
            Scenario::DistributedFlood => 24,
            Scenario::Scanner => 25,
            Scenario::Injection => 26,
        }
    }

    /// The /16 all of the scenario's sources are in.
    pub fn range(self) -> String {
        format!("127.{}.0.0/16", self.octet())
    }

    fn clients(self) -> usize {
        match self {
            Scenario::Normal => NORMAL_CLIENTS,
            Scenario::ExtremeFlood => EXTREME_CLIENTS,
            Scenario::SustainedFlood => SUSTAINED_CLIENTS,
            Scenario::LowAndSlow => LOW_SLOW_CLIENTS,
            Scenario::Slowloris => SLOWLORIS_SOURCES,
            Scenario::DistributedFlood => DISTRIBUTED_CLIENTS,
            Scenario::Scanner => 1,
            Scenario::Injection => INJECTION_CLIENTS,
        }
    }

    /// Source address of client `i` (0-based): 127.OCTET.SALT.(i+1), or
    /// 127.24.(i+1).SALT for the distributed flood (one address per /24).
    /// Over IPv6 every client is `::1`.
    pub fn source(self, i: usize, salt: u8, v4: bool) -> IpAddr {
        if !v4 {
            return IpAddr::V6(Ipv6Addr::LOCALHOST);
        }
        let i = u8::try_from(i + 1).unwrap_or(u8::MAX);
        match self {
            Scenario::DistributedFlood => IpAddr::V4(Ipv4Addr::new(127, self.octet(), i, salt)),
            _ => IpAddr::V4(Ipv4Addr::new(127, self.octet(), salt, i)),
        }
    }
}

/// What a scenario's clients did.
#[derive(Debug)]
pub struct Outcome {
    pub scenario: Scenario,
    /// Per client, in client order.
    pub clients: Vec<(IpAddr, ClientStats)>,
    pub slowloris: Option<SlowlorisStats>,
}

/// Runs `scenario` to the end of the run.
pub async fn run(scenario: Scenario, run: Arc<Run>) -> Outcome {
    let pacer = Arc::new(Pacer::new(run.max_rps));
    let v4 = run.target.is_v4();
    let sources: Vec<IpAddr> = (0..scenario.clients())
        .map(|i| scenario.source(i, run.salt, v4))
        .collect();
    if scenario == Scenario::Slowloris {
        let rng = Rng::new(run.seed, stream_id(scenario, 0));
        let stats = slowloris::run(run.clone(), &sources, SLOWLORIS_PER_SOURCE, rng).await;
        return Outcome {
            scenario,
            clients: sources
                .into_iter()
                .map(|s| (s, ClientStats::default()))
                .collect(),
            slowloris: Some(stats),
        };
    }
    let mut tasks = JoinSet::new();
    for (i, source) in sources.iter().enumerate() {
        let client = Client::new(run.clone(), pacer.clone(), *source);
        let rng = Rng::new(run.seed, stream_id(scenario, i));
        let run = run.clone();
        tasks.spawn(async move { (i, drive(scenario, client, rng, run).await) });
    }
    let mut clients: Vec<Option<(IpAddr, ClientStats)>> = vec![None; sources.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => {
                if let Some(slot) = clients.get_mut(i) {
                    *slot = Some(result);
                }
            }
            Err(error) => tracing::warn!(scenario = scenario.name(), %error, "client task failed"),
        }
    }
    Outcome {
        scenario,
        clients: clients
            .into_iter()
            .zip(sources)
            .map(|(c, s)| c.unwrap_or((s, ClientStats::default())))
            .collect(),
        slowloris: None,
    }
}

fn stream_id(scenario: Scenario, client: usize) -> u64 {
    (u64::from(scenario.octet()) << 32) | client as u64
}

async fn drive(
    scenario: Scenario,
    mut client: Client,
    mut rng: Rng,
    run: Arc<Run>,
) -> (IpAddr, ClientStats) {
    let begin = if scenario.is_attack() {
        run.attack_start + rng.duration(Duration::ZERO, Duration::from_millis(200))
    } else {
        Instant::now() + rng.duration(Duration::ZERO, Duration::from_secs(1))
    };
    if !run.pause_until(begin).await {
        return client.finish();
    }
    match scenario {
        Scenario::Normal => browse(&mut client, &mut rng, &run).await,
        Scenario::ExtremeFlood => {
            let req = Req::get("/");
            steady(&mut client, &mut rng, &run, EXTREME_RPS, 0.0, |_, _| {
                req.clone()
            })
            .await;
        }
        Scenario::SustainedFlood => {
            let agent = *rng.pick(FLOOD_AGENTS);
            let paths = ["/", "/products", "/search?q=sale"];
            steady(&mut client, &mut rng, &run, SUSTAINED_RPS, 0.1, |rng, _| {
                Req::get(*rng.pick(&paths))
                    .header(USER_AGENT, agent)
                    .header(ACCEPT, "*/*")
            })
            .await;
        }
        Scenario::LowAndSlow => low_and_slow(&mut client, &mut rng, &run).await,
        Scenario::DistributedFlood => {
            let agent = *rng.pick(BROWSERS);
            steady(&mut client, &mut rng, &run, DISTRIBUTED_RPS, 0.2, |_, _| {
                Req::get("/")
                    .header(USER_AGENT, agent)
                    .header(ACCEPT, "*/*")
            })
            .await;
        }
        Scenario::Scanner => {
            steady(&mut client, &mut rng, &run, SCANNER_RPS, 0.1, |_, n| {
                scanner_request(n)
            })
            .await;
        }
        Scenario::Injection => {
            let agent = *rng.pick(BROWSERS);
            steady(&mut client, &mut rng, &run, INJECTION_RPS, 0.2, |rng, _| {
                injection_request(rng)
                    .header(USER_AGENT, agent)
                    .header(ACCEPT, HTML_ACCEPT)
            })
            .await;
        }
        Scenario::Slowloris => {}
    }
    client.finish()
}

/// Sends `next(rng, n)` at `rps` (each gap varied by ±`jitter`), never
/// catching up on lost time in a burst.
async fn steady(
    client: &mut Client,
    rng: &mut Rng,
    run: &Run,
    rps: f64,
    jitter: f64,
    mut next: impl FnMut(&mut Rng, u64) -> Req,
) {
    let gap = Duration::from_secs_f64(1.0 / rps);
    let mut at = Instant::now();
    for n in 0u64.. {
        if !run.pause_until(at).await {
            return;
        }
        let req = next(rng, n);
        if client.send(&req).await.is_none() {
            return;
        }
        let factor = 1.0 + jitter * (2.0 * rng.unit() - 1.0);
        at += gap.mul_f64(factor);
        let now = Instant::now();
        if at + gap < now {
            at = now;
        }
    }
}

async fn low_and_slow(client: &mut Client, rng: &mut Rng, run: &Run) {
    let agent = *rng.pick(BOT_AGENTS);
    let paths = ["/", "/login", "/api/products", "/products"];
    loop {
        let req = Req::get(*rng.pick(&paths))
            .header(USER_AGENT, agent)
            .header(ACCEPT, "*/*")
            .header(ACCEPT_ENCODING, "gzip, deflate");
        if client.send(&req).await.is_none() {
            return;
        }
        let gap = rng.duration(Duration::from_millis(500), Duration::from_secs(2));
        if !run.pause_until(Instant::now() + gap).await {
            return;
        }
    }
}

fn scanner_request(n: u64) -> Req {
    let len = PROBES.len() as u64;
    let probe = PROBES[usize::try_from(n % len).unwrap_or(0)];
    let prefix =
        PROBE_PREFIXES[usize::try_from((n / len) % PROBE_PREFIXES.len() as u64).unwrap_or(0)];
    Req::get(format!("{prefix}{probe}"))
        .header(
            USER_AGENT,
            format!(
                "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:{:06})",
                n + 1
            ),
        )
        .header(ACCEPT, "*/*")
}

fn injection_request(rng: &mut Rng) -> Req {
    if rng.chance(0.2) {
        return Req::get(*rng.pick(TRAVERSALS));
    }
    let (path, param, value) = *rng.pick(INJECTIONS);
    Req::get(format!("{path}?{param}={}", percent_encode(value)))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{n}` → a small number, `{word}` → a search word.
fn fill(rng: &mut Rng, template: &str) -> String {
    let n = rng.between(1, 60).to_string();
    let word = *rng.pick(SEARCH_WORDS);
    template.replace("{n}", &n).replace("{word}", word)
}

const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
const UPGRADE_INSECURE: HeaderName = HeaderName::from_static("upgrade-insecure-requests");

/// A browser session: pages, each followed by a burst of its assets, an
/// occasional form post, think time between pages.
async fn browse(client: &mut Client, rng: &mut Rng, run: &Run) {
    let agent = *rng.pick(BROWSERS);
    let language = *rng.pick(LANGUAGES);
    let mut cookies: Vec<String> = Vec::new();
    let mut referer: Option<String> = rng
        .chance(0.3)
        .then(|| "https://www.google.com/".to_owned());
    loop {
        let template = if rng.chance(0.1) {
            *rng.pick(MISSING_PAGES)
        } else {
            *rng.pick(PAGES)
        };
        let page = fill(rng, template);
        let site = match referer.as_deref() {
            None => "none",
            Some(r) if r.starts_with("http://") => "same-origin",
            Some(_) => "cross-site",
        };
        let req = browser_headers(
            Req::get(page.clone()),
            agent,
            language,
            &cookies,
            referer.as_deref(),
        )
        .header(ACCEPT, HTML_ACCEPT)
        .header(SEC_FETCH_DEST, "document")
        .header(SEC_FETCH_MODE, "navigate")
        .header(SEC_FETCH_SITE, site)
        .header(UPGRADE_INSECURE, "1");
        let Some(reply) = client.send(&req).await else {
            return;
        };
        keep_cookies(&mut cookies, &reply.set_cookies, rng);
        let page_url = run.target.absolute(&page);
        if reply.status.is_some_and(|s| (200..400).contains(&s)) {
            for _ in 0..rng.between(3, 10) {
                let template = *rng.pick(ASSETS);
                let asset = fill(rng, template);
                let (accept, dest) = asset_kind(&asset);
                let req =
                    browser_headers(Req::get(asset), agent, language, &cookies, Some(&page_url))
                        .header(ACCEPT, accept)
                        .header(SEC_FETCH_DEST, dest)
                        .header(SEC_FETCH_MODE, "no-cors")
                        .header(SEC_FETCH_SITE, "same-origin");
                let Some(reply) = client.send(&req).await else {
                    return;
                };
                keep_cookies(&mut cookies, &reply.set_cookies, rng);
            }
        }
        if rng.chance(0.1) {
            let (path, body) = if rng.chance(0.5) {
                (
                    "/contact",
                    "name=Alex&email=alex%40example.org&message=Is+this+in+stock%3F",
                )
            } else {
                ("/login", "username=alex&password=correct+horse")
            };
            let req = browser_headers(
                Req::post(path, "application/x-www-form-urlencoded", body),
                agent,
                language,
                &cookies,
                Some(&page_url),
            )
            .header(ACCEPT, HTML_ACCEPT)
            .header(ORIGIN, format!("http://{}", run.target.authority));
            let Some(reply) = client.send(&req).await else {
                return;
            };
            keep_cookies(&mut cookies, &reply.set_cookies, rng);
        }
        referer = Some(page_url);
        let think = rng.duration(Duration::from_millis(500), Duration::from_secs(5));
        if !run.pause_until(Instant::now() + think).await {
            return;
        }
    }
}

fn browser_headers(
    req: Req,
    agent: &str,
    language: &str,
    cookies: &[String],
    referer: Option<&str>,
) -> Req {
    let mut req = req
        .header(USER_AGENT, agent)
        .header(ACCEPT_LANGUAGE, language)
        .header(ACCEPT_ENCODING, "gzip, deflate, br");
    if let Some(r) = referer {
        req = req.header(REFERER, r);
    }
    if !cookies.is_empty() {
        req = req.header(COOKIE, cookies.join("; "));
    }
    req
}

/// After the first response the browser has a `session` cookie; cookies the
/// server sets replace those of the same name.
fn keep_cookies(cookies: &mut Vec<String>, set: &[String], rng: &mut Rng) {
    for c in set {
        let name = c.split('=').next().unwrap_or("");
        cookies.retain(|old| old.split('=').next() != Some(name));
        if cookies.len() < 8 {
            cookies.push(c.clone());
        }
    }
    if !cookies.iter().any(|c| c.starts_with("session=")) {
        cookies.push(format!("session={}", rng.hex(32)));
    }
}

fn asset_kind(path: &str) -> (&'static str, &'static str) {
    if path.ends_with(".css") {
        ("text/css,*/*;q=0.1", "style")
    } else if path.ends_with(".js") {
        ("*/*", "script")
    } else if path.ends_with(".woff2") {
        (
            "application/font-woff2;q=1.0,application/font-woff;q=0.9,*/*;q=0.8",
            "font",
        )
    } else {
        (
            "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
            "image",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_payloads() {
        assert_eq!(percent_encode("1' OR '1'='1"), "1%27%20OR%20%271%27%3D%271");
        assert_eq!(
            percent_encode("<script>alert(1)</script>"),
            "%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
        );
        for (path, param, value) in INJECTIONS {
            let uri = format!("{path}?{param}={}", percent_encode(value));
            assert!(uri.parse::<http::Uri>().is_ok(), "{uri}");
        }
        for t in TRAVERSALS {
            assert!(t.parse::<http::Uri>().is_ok(), "{t}");
        }
    }

    #[test]
    fn sources_stay_in_their_ranges() {
        for s in Scenario::ALL {
            for i in 0..s.clients() {
                let IpAddr::V4(a) = s.source(i, 77, true) else {
                    panic!("v4");
                };
                assert_eq!(a.octets()[..2], [127, s.octet()]);
            }
        }
        assert_eq!(
            Scenario::DistributedFlood.source(2, 9, true),
            "127.24.3.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn scanner_walks_every_probe() {
        let paths: Vec<String> = (0..PROBES.len() as u64 + 1)
            .map(|n| scanner_request(n).path().to_owned())
            .collect();
        assert_eq!(paths[0], "/.env");
        assert_eq!(paths[PROBES.len()], "/old/.env");
    }
}
