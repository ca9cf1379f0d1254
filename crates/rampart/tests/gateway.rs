//! `rampart gateway` as a process, attacked by `rampart simulate`: every
//! flooding client is blocked and stays blocked, no normal client is,
//! attack requests are refused, slowloris connections are cut; the request
//! log is in the store after a clean shutdown. Also: the quick-start flags
//! alone, and a clear error without a backend.

mod common;
use common::*;

use std::convert::Infallible;
use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// A backend answering 200 on known paths and 404 elsewhere.
fn start_backend() -> (tokio::runtime::Runtime, u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let known = [
                        "/",
                        "/about",
                        "/products",
                        "/blog",
                        "/contact",
                        "/search",
                        "/login",
                        "/health",
                    ]
                    .contains(&req.uri().path())
                        || req.uri().path().starts_with("/static/")
                        || req.uri().path().starts_with("/api/")
                        || req.uri().path().starts_with("/products/")
                        || req.uri().path().starts_with("/blog/");
                    let mut r = Response::new(Full::new(Bytes::from_static(b"<html>ok</html>")));
                    if !known {
                        *r.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (runtime, port)
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `GET http://addr/health` answers (any status).
fn wait_for(addr: &str) {
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            use std::io::Write;
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never answered");
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn simulated_attacks_are_stopped_and_normal_clients_pass() {
    let (_backend, backend_port) = start_backend();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rampart.db");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "sqlite://{db}"

[gateway]
id = "gw-e2e"
listen = ["127.0.0.1:{listen}"]
admin = "127.0.0.1:{admin}"

[[gateway.backend]]
url = "http://127.0.0.1:{backend_port}"

[gateway.health]
path = "/health"
interval = "1s"

[gateway.timeouts]
header_read = "2s"
"#,
            db = db.display()
        ),
    )
    .expect("config");
    let child = rampart()
        .args(["--log", "warn", "gateway", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway starts");
    let mut gateway = Gateway(child);
    wait_for(&format!("127.0.0.1:{admin}"));

    let out = rampart()
        .args([
            "--log",
            "warn",
            "simulate",
            "--target",
            &format!("http://127.0.0.1:{listen}"),
            "--duration",
            "10s",
            "--baseline",
            "3s",
            "--seed",
            "7",
            "--json",
        ])
        .output()
        .expect("simulate runs");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");

    for flood in ["extreme-flood", "sustained-flood", "distributed-flood"] {
        let s = scenario(&report, flood);
        assert!(count(&s["requests"]) > 0, "{flood} sent nothing");
        assert_eq!(
            count(&s["first_block"]["clients_never_blocked"]),
            0,
            "{flood}: every flooding client is blocked: {s}"
        );
        let after = s["after_first_block"]["rate"].as_f64().expect("rate");
        assert!(after >= 0.99, "{flood}: {after} of later requests refused");
        assert_eq!(count(&s["missing_retry_after"]), 0, "{flood}");
    }
    for attack in ["scanner", "injection"] {
        let s = scenario(&report, attack);
        assert!(count(&s["blocked"]) > 0, "{attack} never blocked: {s}");
    }
    let injection = scenario(&report, "injection");
    assert_eq!(
        count(&injection["blocked"]),
        count(&injection["requests"]),
        "every injection request refused: {injection}"
    );
    let normal = &report["normal"];
    assert!(count(&normal["requests"]) > 0);
    assert_eq!(
        count(&normal["false_positive_clients"]),
        0,
        "no normal client is blocked: {normal}"
    );
    let slowloris = &scenario(&report, "slowloris")["slowloris"];
    assert!(count(&slowloris["opened"]) > 0);
    assert_eq!(
        slowloris["closed_by_server"], slowloris["opened"],
        "every slowloris connection is cut: {slowloris}"
    );

    // A clean shutdown writes the request log; bans are in the store.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(gateway.0.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let status = gateway.0.wait().expect("exit");
    let mut stderr = String::new();
    if let Some(mut e) = gateway.0.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "gateway exit {status}: {stderr}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = rampart_store::open(&format!("sqlite://{}", db.display()))
            .await
            .expect("store");
        let log = store.recent_requests(None, 1_000_000).await.expect("log");
        let sent: u64 = report["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .map(|s| count(&s["requests"]))
            .sum::<u64>()
            + 1;
        assert!(!log.is_empty());
        assert!(
            log.len() as u64 <= sent,
            "{} logged, {sent} sent",
            log.len()
        );
        assert!(log.iter().all(|r| r.gateway == "gw-e2e"));
        let bans = store
            .query_decisions(&rampart_store::DecisionQuery::default())
            .await
            .expect("decisions");
        assert!(
            bans.iter()
                .any(|d| d.decision.scenario() == Some("gateway-flood")),
            "flood bans stored"
        );
    });
}

#[test]
fn quick_start_flags_alone_serve() {
    let (_backend, backend_port) = start_backend();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let child = rampart()
        .current_dir(dir.path())
        .args([
            "--log",
            "warn",
            "gateway",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--backend",
            &format!("http://127.0.0.1:{backend_port}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway starts");
    let _gateway = Gateway(child);
    wait_for(&format!("127.0.0.1:{listen}"));
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{listen}")).expect("connect");
    use std::io::Write;
    s.write_all(b"GET /about HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.to_lowercase().contains("x-request-id:"), "{out}");
    // The default store is rampart.db in the working directory.
    assert!(dir.path().join("rampart.db").exists());
}

#[test]
fn without_a_backend_the_gateway_refuses_to_start() {
    let out = rampart()
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite::memory:",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no backend configured"), "{err}");
    let out = rampart()
        .args([
            "gateway",
            "--backend",
            "ftp://nope",
            "--database",
            "sqlite::memory:",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.backend[0].url"), "{err}");
}

/// `GET /` from `source` on a fresh connection; the status code.
fn status_from(source: &str, port: u16) -> u16 {
    use std::io::Write;
    let socket = socket2_connect(source, port);
    let mut s = socket;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"))
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address `source`.
fn socket2_connect(source: &str, port: u16) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("source"))
            .expect("bind");
        let stream = socket
            .connect(format!("127.0.0.1:{port}").parse().expect("addr"))
            .await
            .expect("connect");
        let stream = stream.into_std().expect("std stream");
        stream.set_nonblocking(false).expect("blocking");
        stream
    })
}

#[test]
fn run_serves_the_gateway_beside_the_agent_and_cli_bans_reach_it() {
    let (_backend, backend_port) = start_backend();
    let (listen, admin, metrics) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rampart.db");
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
url = "sqlite://{db}"

[firewall]
backend = "none"

[metrics]
listen = "127.0.0.1:{metrics}"

[gateway]
listen = ["127.0.0.1:{listen}"]
admin = "127.0.0.1:{admin}"

[[gateway.backend]]
url = "http://127.0.0.1:{backend_port}"
"#,
            db = db.display()
        ),
    )
    .expect("config");
    let child = rampart()
        .args(["--log", "warn", "run", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rampart run starts");
    let _running = Gateway(child);
    wait_for(&format!("127.0.0.1:{admin}"));
    wait_for(&format!("127.0.0.1:{metrics}"));
    let port = listen;
    assert_eq!(status_from("127.0.0.44", port), 200);

    // An operator bans through the CLI, on the same store.
    let out = rampart()
        .args(["decisions", "-c"])
        .arg(&config)
        .args(["ban", "127.0.0.44", "--for", "10m", "--force"])
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut refused = false;
    for _ in 0..40 {
        if status_from("127.0.0.44", port) == 403 {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused, "the CLI ban reaches the gateway");
    assert_eq!(status_from("127.0.0.45", port), 200);
}
