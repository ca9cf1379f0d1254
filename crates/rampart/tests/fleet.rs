//! The fleet end to end, every part a real child process: one `rampart
//! server`, two `rampart agent`s (each with its own store and, as root, its
//! own nftables table in a network namespace this test creates) and one
//! `rampart gateway`, all reporting to the server.
//!
//! - a ban made through the server's API reaches both agents' firewalls and
//!   the gateway; the unban lifts it everywhere;
//! - a ban one agent decides from its own log reaches the other agent and
//!   the gateway through the server;
//! - the gateway's request log and the agents' heartbeats reach the server;
//! - while the server is down, an agent spools what it decides and pushes
//!   it when the server is back.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A child process killed on drop.
struct Proc(Child, &'static str);

impl Proc {
    fn start(what: &'static str, args: &[&str]) -> Self {
        let child = rampart()
            .args(["--log", "info"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Proc(child, what)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                assert!(status.success(), "{} exited with {status}", self.1);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not stop within 15 s of SIGTERM", self.1);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[allow(dead_code)]
mod server_support;

use server_support::{Auth, Client};

/// Runs a future of the shared test client to completion.
fn block<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// One request from the loopback address `from` (default 127.0.0.1);
/// status and body, or `None` when nothing answered.
fn http_from(
    from: Option<&str>,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let auth = token.map_or(Auth::None, |t| Auth::Bearer(t.to_owned()));
    let mut client = Client::at(SocketAddr::from(([127, 0, 0, 1], port)), auth);
    if let Some(from) = from {
        client = client.connecting_from(from.parse().ok()?);
    }
    let method = http::Method::from_bytes(method.as_bytes()).ok()?;
    let body = body.map(|b| bytes::Bytes::from(b.to_string()));
    let reply = block(client.try_send(method, path, body, &[])).ok()?;
    Some((reply.status.as_u16(), reply.text()))
}

fn api(port: u16, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, text) = http_from(None, port, method, path, Some(token), body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// A backend that answers 200 to everything.
fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

fn cli(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = rampart()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rampart {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn failures(ip: &str, n: usize) -> Vec<String> {
    let now = chrono::Utc::now();
    (0..n)
        .map(|i| {
            format!(
                "{} web1 sshd[{}]: Failed password for root from {ip} port {} ssh2",
                now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
                4000 + i,
                40000 + i
            )
        })
        .collect()
}

static NS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// One agent: its log, store, namespace and process.
struct AgentNode {
    log: PathBuf,
    db: String,
    ns: Option<Netns>,
    config: PathBuf,
}

impl AgentNode {
    fn new(dir: &Path, name: &str, server: u16, token: &str, nft: bool) -> Self {
        let log = dir.join(format!("{name}.log"));
        append(&log, &[]);
        let db = format!("sqlite://{}", dir.join(format!("{name}.db")).display());
        let ns = nft.then(|| {
            let ns = Netns(format!(
                "rf-{name}-{}-{}",
                std::process::id(),
                NS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            assert!(
                Command::new("ip")
                    .args(["netns", "add", &ns.0])
                    .status()
                    .unwrap()
                    .success()
            );
            ns
        });
        let firewall = match &ns {
            Some(ns) => format!(
                "backend = \"nftables\"\ntable = \"rampart_fleet\"\nnetns = \"{}\"",
                ns.0
            ),
            None => "backend = \"none\"".to_owned(),
        };
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
[agent]
name = "{name}"

[store]
url = "{db}"

[[source]]
name = "sshd"
format = "sshd"
paths = ["{log}"]
poll_interval = "100ms"

[firewall]
{firewall}

[fleet]
url = "http://127.0.0.1:{server}"
token = "{token}"
push_every = "200ms"
heartbeat_every = "1s"
"#,
                log = log.display()
            ),
        )
        .unwrap();
        Self {
            log,
            db,
            ns,
            config,
        }
    }

    fn start(&self) -> Proc {
        Proc::start("agent", &["agent", "-c", self.config.to_str().unwrap()])
    }

    /// Whether `ip` is banned here: in the nftables set, or (without
    /// nftables) among the active decisions of the agent's store.
    fn has_ban(&self, ip: &str) -> bool {
        match &self.ns {
            Some(ns) => {
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns.0, "nft", "list", "set", "inet"])
                    .args(["rampart_fleet", "banned4"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains(ip)
            }
            None => self.stored_ban(ip),
        }
    }

    fn stored_ban(&self, ip: &str) -> bool {
        let out = rampart()
            .args(["decisions", "--database", &self.db, "list", "--json"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|d| d.to_string().contains(&format!("\"{ip}")))
    }
}

#[test]
fn a_ban_made_anywhere_is_enforced_by_every_agent_and_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server_db = format!("sqlite://{}", dir.path().join("server.db").display());
    fleet(dir.path(), &server_db, false);
}

#[test]
fn two_servers_sharing_postgresql_serve_one_fleet() {
    let Some(db) = block(server_support::postgres_db()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path(), &db.url, true);
}

/// The whole fleet scenario on a server store at `server_db`; with
/// `shared`, agent B reports to a second server on the same database.
fn fleet(dir: &Path, server_db: &str, shared: bool) {
    let nft = firewall_tools("agents check their stores only");
    cli(
        &[
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            "--database",
            server_db,
        ],
        Some("fleet-admin-password\n"),
    );
    let admin = cli(
        &[
            "token",
            "create",
            "ops",
            "--role",
            "operator",
            "--database",
            server_db,
        ],
        None,
    );
    let token_a = cli(
        &[
            "token",
            "create",
            "agent-a",
            "--role",
            "agent",
            "--database",
            server_db,
        ],
        None,
    );
    let token_b = cli(
        &[
            "token",
            "create",
            "agent-b",
            "--role",
            "agent",
            "--database",
            server_db,
        ],
        None,
    );
    let token_g = cli(
        &[
            "token",
            "create",
            "gw-1",
            "--role",
            "agent",
            "--database",
            server_db,
        ],
        None,
    );
    // Server 1 serves the operator, agent A and the gateway; server 2
    // (the same one on SQLite, a second process on the same PostgreSQL
    // database) serves agent B.
    let port = free_port();
    let port_b = if shared { free_port() } else { port };
    let args_for = |p: u16| -> Vec<String> {
        [
            "server",
            "--listen",
            &format!("127.0.0.1:{p}"),
            "--database",
            server_db,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let start_server = |p: u16| {
        let args = args_for(p);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = Proc::start("server", &args);
        eventually(20, "server health", || {
            http_from(None, p, "GET", "/health", None, None).is_some_and(|(s, _)| s == 200)
        });
        proc
    };
    let _server = start_server(port);
    let mut server_b = shared.then(|| start_server(port_b));

    let a = AgentNode::new(dir, "agent-a", port, &token_a, nft);
    let b = AgentNode::new(dir, "agent-b", port_b, &token_b, nft);
    let _agent_a = a.start();
    let _agent_b = b.start();

    let gw_port = free_port();
    let gw_admin = free_port();
    let gw_config = dir.join("gw.toml");
    std::fs::write(
        &gw_config,
        format!(
            r#"
[store]
url = "sqlite://{db}"

[gateway]
id = "gw-1"
listen = ["127.0.0.1:{gw_port}"]
admin = "127.0.0.1:{gw_admin}"

[[gateway.backend]]
url = "http://127.0.0.1:{backend}"

[fleet]
url = "http://127.0.0.1:{port}"
token = "{token_g}"
push_every = "200ms"
heartbeat_every = "1s"
"#,
            db = dir.join("gw.db").display(),
            backend = backend(),
        ),
    )
    .unwrap();
    let _gateway = Proc::start("gateway", &["gateway", "-c", gw_config.to_str().unwrap()]);
    eventually(20, "gateway answering", || {
        http_from(None, gw_port, "GET", "/", None, None).is_some_and(|(s, _)| s == 200)
    });
    let gateway_refuses = |from: &str| {
        http_from(Some(from), gw_port, "GET", "/", None, None).is_some_and(|(s, _)| s == 403)
    };
    assert!(!gateway_refuses("127.0.0.2"), "nobody is banned yet");

    // Heartbeats: both agents and the gateway are listed, healthy.
    eventually(15, "three healthy fleet members", || {
        let (_, list) = api(port, "GET", "/api/v1/agents", &admin, None);
        let healthy: Vec<&str> = list
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|m| m["status"] == "healthy")
                    .filter_map(|m| m["id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        ["agent-a", "agent-b", "gw-1"]
            .iter()
            .all(|id| healthy.contains(id))
    });

    // 1. A ban through the API reaches both firewalls and the gateway.
    let (status, _) = api(
        port,
        "POST",
        "/api/v1/decisions",
        &admin,
        Some(&json!({"ip": "198.51.100.9", "duration_minutes": 30, "reason": "fleet test"})),
    );
    assert_eq!(status, 201);
    let (status, _) = api(
        port,
        "POST",
        "/api/v1/decisions",
        &admin,
        Some(&json!({"ip": "127.0.0.2", "duration_minutes": 30, "reason": "fleet test"})),
    );
    assert_eq!(status, 201);
    let took_a = eventually(10, "API ban in agent A", || a.has_ban("198.51.100.9"));
    let took_b = eventually(10, "API ban in agent B", || b.has_ban("198.51.100.9"));
    let took_g = eventually(10, "API ban at the gateway", || {
        gateway_refuses("127.0.0.2")
    });
    eprintln!("API ban reached: agent A {took_a:?}, agent B {took_b:?}, gateway {took_g:?}");
    assert!(
        !gateway_refuses("127.0.0.3"),
        "only the banned address is refused"
    );
    // The gateway's admin endpoint shows its fleet link beside its own metrics.
    let (status, metrics) =
        http_from(None, gw_admin, "GET", "/metrics", None, None).expect("gateway metrics");
    assert_eq!(status, 200);
    let applied = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rampart_fleet_applied_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        applied.is_some_and(|n| n >= 1.0),
        "fleet metrics: {metrics}"
    );
    assert!(
        metrics.contains("rampart_gateway_requests_total"),
        "{metrics}"
    );

    // 2. Agent A decides a ban from its own log; B and the gateway get it.
    append(&a.log, &failures("203.0.113.50", 6));
    eventually(10, "A's own ban in A", || a.has_ban("203.0.113.50"));
    let took = eventually(10, "A's ban in B", || b.has_ban("203.0.113.50"));
    eprintln!("agent A's ban reached agent B after {took:?}");
    let (_, list) = api(
        port,
        "GET",
        "/api/v1/decisions?ip=203.0.113.50",
        &admin,
        None,
    );
    let origins: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["origin_name"].as_str())
        .collect();
    assert_eq!(
        origins,
        ["ssh-bruteforce"],
        "stored once at the server: {list}"
    );

    // The agents' firewall actions reached the server.
    if nft {
        eventually(10, "firewall actions at the server", || {
            let (_, list) = api(port, "GET", "/api/v1/actions?limit=1000", &admin, None);
            let done = |node: &str| {
                list.as_array().is_some_and(|l| {
                    l.iter().any(|a| {
                        a["node"] == node
                            && a["action"] == "ban"
                            && a["target"] == "198.51.100.9"
                            && a["ok"] == true
                    })
                })
            };
            done("agent-a") && done("agent-b")
        });
    }

    // 3. Unban through the API lifts it everywhere.
    let (status, _) = api(
        port,
        "DELETE",
        "/api/v1/decisions?ip=198.51.100.9",
        &admin,
        None,
    );
    assert_eq!(status, 200);
    let (status, _) = api(
        port,
        "DELETE",
        "/api/v1/decisions?ip=127.0.0.2",
        &admin,
        None,
    );
    assert_eq!(status, 200);
    eventually(10, "unban in A", || !a.has_ban("198.51.100.9"));
    eventually(10, "unban in B", || !b.has_ban("198.51.100.9"));
    eventually(10, "unban at the gateway", || !gateway_refuses("127.0.0.2"));

    // 4. The gateway's request log reached the server.
    eventually(10, "gateway requests at the server", || {
        let (_, page) = api(
            port,
            "GET",
            "/api/v1/requests?gateway_id=gw-1&is_blocked=1",
            &admin,
            None,
        );
        page["total"].as_u64().unwrap_or(0) >= 1
    });

    // 5. Outage of B's server: agent B spools its decision and pushes it later.
    match server_b.take() {
        Some(s) => s.stop(),
        None => _server.stop(),
    }
    append(&b.log, &failures("203.0.113.60", 6));
    eventually(10, "B's ban in B while its server is down", || {
        b.has_ban("203.0.113.60")
    });
    std::thread::sleep(Duration::from_secs(1));
    let _server_again = start_server(port_b);
    eventually(20, "B's spooled ban at the server", || {
        let (_, list) = api(
            port,
            "GET",
            "/api/v1/decisions?ip=203.0.113.60",
            &admin,
            None,
        );
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    eventually(20, "B's spooled ban reaches A", || {
        a.has_ban("203.0.113.60")
    });
}
