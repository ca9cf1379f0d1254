//! `rampart simulate` against a small in-test server with its own blocking
//! rule, which counts what it answered per source address: the simulator's
//! report must agree with it exactly.
//!
//! The server's rule, per source address: more than 40 requests within one
//! second → 429 from then on (a browser page with its assets and a form
//! post is at most 12 requests and think time is at least 0.5 s, so normal
//! clients stay under it); a user agent containing `Nikto` or `sqlmap` → 403; a decoded query
//! containing `<script` or `'` → 403. Known paths → 200, others → 404. A
//! connection whose first request head is not complete within 2 s is closed
//! (slowloris).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::pin;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const FLOOD_LIMIT: usize = 40;
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
const KNOWN: &[&str] = &[
    "/about",
    "/products",
    "/blog",
    "/contact",
    "/search",
    "/login",
    "/api/",
    "/static/",
    "/favicon.ico",
];

/// What the server answered one source address.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    requests: u64,
    blocked: u64,
    status_403: u64,
    status_429: u64,
}

#[derive(Default)]
struct Server {
    counts: Mutex<HashMap<IpAddr, Counts>>,
    accepted: Mutex<HashMap<IpAddr, u64>>,
    /// Connections closed for an unfinished first request head.
    slow_closed: Mutex<HashMap<IpAddr, u64>>,
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    flooding: Mutex<HashSet<IpAddr>>,
}

impl Server {
    fn counts(&self) -> HashMap<IpAddr, Counts> {
        self.counts.lock().unwrap().clone()
    }

    fn accepted_total(&self) -> u64 {
        self.accepted.lock().unwrap().values().sum()
    }

    fn decide(&self, ip: IpAddr, req: &http::request::Parts) -> StatusCode {
        let now = Instant::now();
        let over = {
            let mut recent = self.recent.lock().unwrap();
            let window = recent.entry(ip).or_default();
            window.push_back(now);
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
            {
                window.pop_front();
            }
            window.len() > FLOOD_LIMIT
        };
        let mut flooding = self.flooding.lock().unwrap();
        if over {
            flooding.insert(ip);
        }
        if flooding.contains(&ip) {
            return StatusCode::TOO_MANY_REQUESTS;
        }
        let agent = req
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if agent.contains("Nikto") || agent.contains("sqlmap") {
            return StatusCode::FORBIDDEN;
        }
        let query = percent_decode(req.uri.query().unwrap_or("")).to_ascii_lowercase();
        if query.contains("<script") || query.contains('\'') {
            return StatusCode::FORBIDDEN;
        }
        let path = req.uri.path();
        if path == "/" || KNOWN.iter().any(|k| path.starts_with(k)) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        }
    }

    async fn answer(&self, ip: IpAddr, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let _ = body.collect().await;
        let status = self.decide(ip, &parts);
        {
            let mut counts = self.counts.lock().unwrap();
            let c = counts.entry(ip).or_default();
            c.requests += 1;
            match status {
                StatusCode::FORBIDDEN => {
                    c.blocked += 1;
                    c.status_403 += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    c.blocked += 1;
                    c.status_429 += 1;
                }
                _ => {}
            }
        }
        let mut response = Response::builder().status(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            response = response.header(http::header::RETRY_AFTER, "60");
        }
        response
            .body(Full::new(Bytes::from(format!(
                "{} request-id 42\n",
                status.as_u16()
            ))))
            .unwrap()
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, ip: IpAddr) {
        *self.accepted.lock().unwrap().entry(ip).or_default() += 1;
        let served = Arc::new(AtomicBool::new(false));
        let server = self.clone();
        let flag = served.clone();
        let service = service_fn(move |req| {
            flag.store(true, Ordering::SeqCst);
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.answer(ip, req).await) }
        });
        let mut conn = pin!(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
        );
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep(HEAD_DEADLINE) => {}
        }
        if served.load(Ordering::SeqCst) {
            let _ = conn.await;
        } else {
            *self.slow_closed.lock().unwrap().entry(ip).or_default() += 1;
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A runtime with the test server on a loopback port.
fn start_server() -> (tokio::runtime::Runtime, Arc<Server>, u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Arc::new(Server::default());
    let accepting = server.clone();
    runtime.spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(accepting.clone().connection(stream, peer.ip()));
        }
    });
    (runtime, server, port)
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["--log", "warn", "simulate"])
        .args(args)
        .output()
        .unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The second octet each scenario's sources must have.
fn octet(scenario: &str) -> u8 {
    match scenario {
        "normal" => 10,
        "extreme-flood" => 20,
        "sustained-flood" => 21,
        "low-and-slow" => 22,
        "slowloris" => 23,
        "distributed-flood" => 24,
        "scanner" => 25,
        "injection" => 26,
        other => panic!("unknown scenario {other}"),
    }
}

fn in_range(address: &str, second: u8) -> bool {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.octets()[..2] == [127, second],
        _ => false,
    }
}

#[test]
fn counts_agree_with_the_server() {
    let (_runtime, server, port) = start_server();
    let target = format!("http://127.0.0.1:{port}/");
    let out = simulate(&[
        "--target",
        &target,
        "--json",
        "--duration",
        "6s",
        "--baseline",
        "2s",
        "--seed",
        "7",
        "--max-rps",
        "400",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let served = server.counts();

    // What the simulator says it sent and had blocked, per source address.
    let mut reported: HashMap<IpAddr, Counts> = HashMap::new();
    let probe = &report["probe"];
    let probe_source: IpAddr = probe["source"].as_str().unwrap().parse().unwrap();
    assert!(in_range(&probe_source.to_string(), 9), "{probe}");
    assert_eq!(u(&probe["status"]), 200);
    reported.entry(probe_source).or_default().requests += 1;

    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "normal",
            "extreme-flood",
            "sustained-flood",
            "low-and-slow",
            "slowloris",
            "distributed-flood",
            "scanner",
            "injection"
        ]
    );
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        let second = octet(name);
        assert_eq!(
            s["source_range"].as_str().unwrap(),
            format!("127.{second}.0.0/16")
        );
        let clients = s["per_client"].as_array().unwrap();
        assert_eq!(clients.len() as u64, u(&s["clients"]), "{name}");
        let (mut sent, mut blocked, mut server_sent, mut server_blocked) = (0, 0, 0, 0);
        let mut seen = HashSet::new();
        for c in clients {
            let address = c["address"].as_str().unwrap();
            assert!(in_range(address, second), "{name}: source {address}");
            let ip: IpAddr = address.parse().unwrap();
            assert!(seen.insert(ip), "{name}: {ip} twice");
            let r = reported.entry(ip).or_default();
            r.requests += u(&c["requests"]);
            r.blocked += u(&c["blocked"]);
            r.status_403 += u(&c["status_403"]);
            r.status_429 += u(&c["status_429"]);
            // Against this server every request is answered.
            assert_eq!(u(&c["refused"]), 0, "{name} {ip}");
            assert_eq!(u(&c["timeouts"]) + u(&c["errors"]), 0, "{name} {ip}");
            sent += u(&c["requests"]);
            blocked += u(&c["blocked"]);
            let theirs = served.get(&ip).copied().unwrap_or_default();
            server_sent += theirs.requests;
            server_blocked += theirs.blocked;
            // A first block is reported exactly for the clients the server blocked.
            assert_eq!(
                c["first_block_secs"].is_number(),
                theirs.blocked > 0,
                "{name} {ip}: {c}"
            );
        }
        assert_eq!(u(&s["requests"]), sent, "{name}");
        assert_eq!(u(&s["blocked"]), blocked, "{name}");
        assert_eq!(
            (sent, blocked),
            (server_sent, server_blocked),
            "{name}: simulator vs server"
        );
        assert_eq!(
            u(&s["blocked"]),
            u(&s["status_403"]) + u(&s["status_429"]) + u(&s["refused"])
        );
        assert_eq!(
            u(&s["requests"]),
            u(&s["blocked"]) + u(&s["passed"]) + u(&s["timeouts"]) + u(&s["errors"])
        );
        assert_eq!(u(&s["missing_retry_after"]), 0, "{name}");
        if name != "slowloris" {
            assert!(sent > 0, "{name} sent nothing");
        }
    }

    // Exactly the same counts per address, and no address either side missed.
    let reported: BTreeMap<String, Counts> = reported
        .into_iter()
        .filter(|(_, c)| c.requests > 0)
        .map(|(ip, c)| (ip.to_string(), c))
        .collect();
    let served: BTreeMap<String, Counts> = served
        .into_iter()
        .map(|(ip, c)| (ip.to_string(), c))
        .collect();
    assert_eq!(reported, served);

    // Normal browsers stay under this server's rule: no false positives.
    let normal = &report["normal"];
    assert!(u(&normal["requests"]) > 0);
    assert_eq!(u(&normal["false_positive_requests"]), 0, "{normal}");
    assert_eq!(u(&normal["false_positive_clients"]), 0, "{normal}");
    assert!(u(&normal["baseline"]["count"]) > 0, "{normal}");
    assert!(normal["baseline"]["p99_ms"].is_number(), "{normal}");

    // The extreme flood trips the rule; when it was, and what followed, is reported.
    let flood = &scenarios[1];
    let first = &flood["first_block"];
    assert!(u(&first["clients_blocked"]) > 0, "{flood}");
    assert_eq!(
        u(&first["clients_blocked"]) + u(&first["clients_never_blocked"]),
        u(&flood["clients"])
    );
    assert!(
        first["min_secs"].is_number()
            && first["median_secs"].is_number()
            && first["max_secs"].is_number()
    );
    // This server blocks a flooding address for good.
    let after = &flood["after_first_block"];
    assert_eq!(u(&after["requests"]), u(&after["blocked"]), "{after}");
    assert!(flood["status_429"].as_u64().unwrap() > 0);

    // The scanner's user agent and the injection payloads meet 403s.
    assert!(u(&scenarios[6]["status_403"]) > 0, "{}", scenarios[6]);
    assert!(u(&scenarios[7]["status_403"]) > 0, "{}", scenarios[7]);

    // Slowloris connections are opened, and closed by the server's head deadline.
    let slow = &scenarios[4]["slowloris"];
    assert!(u(&slow["opened"]) > 0, "{slow}");
    assert_eq!(
        u(&slow["opened"]),
        u(&slow["closed_by_server"]) + u(&slow["still_open"])
    );
    let server_closed: u64 = server.slow_closed.lock().unwrap().values().sum();
    assert!(u(&slow["closed_by_server"]) <= server_closed, "{slow}");
    for (ip, n) in server.slow_closed.lock().unwrap().iter() {
        assert!(in_range(&ip.to_string(), 23), "{ip} closed {n} times");
    }
}

#[test]
fn refuses_targets_off_loopback() {
    let (_runtime, server, port) = start_server();
    // 0.0.0.0 would reach this server: it must be refused all the same.
    let wildcard = format!("http://0.0.0.0:{port}/");
    for target in [
        "http://192.0.2.1/",
        "http://example.com/",
        "http://[2001:db8::1]:8080/",
        wildcard.as_str(),
    ] {
        let out = simulate(&["--target", target, "--json", "--duration", "2s"]);
        assert_eq!(out.status.code(), Some(2), "{target}");
        assert!(out.stdout.is_empty(), "{target}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not a loopback address"),
            "{target}: {stderr}"
        );
    }
    assert_eq!(server.accepted_total(), 0);
    assert!(server.counts().is_empty());
}

#[test]
fn unreachable_target_fails() {
    // Bind a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = simulate(&[
        "--target",
        &format!("http://127.0.0.1:{port}/"),
        "--duration",
        "2s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(out.stdout.is_empty());
}
