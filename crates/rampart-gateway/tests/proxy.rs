//! The gateway as a proxy: forwarding, headers, streaming, upgrades,
//! HTTP/2, TLS, balancing, health checks, failover, retries and timeouts.
//! Real backends (hyper servers) and a real gateway on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::BalanceStrategy;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn forwards_with_forwarding_headers_and_without_hop_by_hop_ones() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let c = client();
    let req = Request::get(gw.url("/echo?x=1"))
        .header("connection", "x-secret")
        .header("x-secret", "must not pass")
        .header("x-forwarded-for", "6.6.6.6")
        .header("user-agent", "test/1")
        .body(empty())
        .expect("request");
    let a = send(&c, req).await;
    assert_eq!(a.status, StatusCode::OK);
    let seen = a.json();
    assert_eq!(seen["path"], "/echo");
    assert_eq!(seen["query"], "x=1");
    // The peer is not a trusted proxy: its X-Forwarded-For is replaced.
    assert_eq!(
        a.seen_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(a.seen_header("x-forwarded-proto").as_deref(), Some("http"));
    let forwarded = a.seen_header("forwarded").expect("forwarded");
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http;host="),
        "{forwarded}"
    );
    assert_eq!(a.seen_header("x-secret"), None);
    assert_eq!(a.seen_header("user-agent").as_deref(), Some("test/1"));
    let id = a.header("x-request-id");
    assert_eq!(id.len(), 16, "request id {id:?}");
    assert_eq!(a.seen_header("x-request-id").as_deref(), Some(id));
    gw.stop().await;

    // Every request is in the request log, with backend and bytes.
    let log = gw_log(&b, 1).await;
    assert_eq!(log.len(), 1);
}

/// Runs one request through a fresh gateway and returns the request log.
async fn gw_log(b: &Backend, n: usize) -> Vec<rampart_core::RequestRecord> {
    let gw = gateway(config(&[b])).await;
    let c = client();
    for _ in 0..n {
        let a = get(&c, &gw.url("/missing/page")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
    }
    let store = Arc::clone(&gw.store);
    gw.stop().await;
    let log = store.recent_requests(None, 100).await.expect("log");
    for r in &log {
        assert_eq!(r.status, 404);
        assert_eq!(r.path, "/missing/page");
        assert_eq!(r.method, "GET");
        assert_eq!(r.gateway, "gw-test");
        assert_eq!(r.response_bytes, "not found".len() as u64);
        assert_eq!(r.backend.as_deref(), Some(b.addr.to_string().as_str()));
        assert!(!r.blocked);
    }
    log
}

#[tokio::test]
async fn trusted_proxies_headers_are_believed_and_extended() {
    let b = backend("a").await;
    let mut cfg = config(&[&b]);
    cfg.trusted_proxies = vec!["127.0.0.0/8".into()];
    let gw = gateway(cfg).await;
    let c = client();
    let req = Request::get(gw.url("/echo"))
        .header("x-forwarded-for", "203.0.113.5")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .expect("request");
    let a = send(&c, req).await;
    assert_eq!(
        a.seen_header("x-forwarded-for").as_deref(),
        Some("203.0.113.5, 127.0.0.1")
    );
    assert_eq!(a.seen_header("x-forwarded-proto").as_deref(), Some("https"));

    // A ban on the forwarded client applies to it and only to it.
    let blocked = post(&c, &gw.admin_url("/block/203.0.113.5?minutes=5")).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    let from_banned = Request::get(gw.url("/echo"))
        .header("x-forwarded-for", "203.0.113.5")
        .body(empty())
        .expect("request");
    let a = send(&c, from_banned).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains(a.header("x-request-id")), "{}", a.body);
    let from_other = Request::get(gw.url("/echo"))
        .header("x-forwarded-for", "203.0.113.6")
        .body(empty())
        .expect("request");
    assert_eq!(send(&c, from_other).await.status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn untrusted_peers_cannot_escape_a_ban_with_forwarding_headers() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let c = client();
    let blocked = post(&c, &gw.admin_url("/block/127.0.0.1")).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    let req = Request::get(gw.url("/echo"))
        .header("x-forwarded-for", "198.51.100.1")
        .header("forwarded", "for=198.51.100.1")
        .body(empty())
        .expect("request");
    assert_eq!(send(&c, req).await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.seen.load(Ordering::SeqCst), 0, "never forwarded");
    gw.stop().await;
}

#[tokio::test]
async fn large_bodies_stream_both_ways_without_buffering() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;

    // Upload: the backend echoes each chunk as it arrives. The client waits
    // for the echo of chunk n before sending chunk n+1: if the gateway
    // buffered the request (or the response), this would deadlock.
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<
        Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>,
    >(1);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync();
    let req = Request::post("/stream")
        .header("host", "x")
        .body(body)
        .expect("request");
    let chunk = Bytes::from(vec![b'z'; 256 * 1024]);
    tx.send(Ok(Frame::data(chunk.clone())))
        .await
        .expect("first chunk");
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("response head before the upload ends")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0usize;
    let rounds = 64; // 16 MiB in total
    for round in 0..rounds {
        // Read back what was sent so far.
        while received < (round + 1) * chunk.len() {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("echo arrives while the upload is still open")
                .expect("frame")
                .expect("ok");
            received += frame.into_data().map(|d| d.len()).unwrap_or(0);
        }
        if round + 1 < rounds {
            tx.send(Ok(Frame::data(chunk.clone())))
                .await
                .expect("next chunk");
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        received += frame.expect("ok").into_data().map(|d| d.len()).unwrap_or(0);
    }
    assert_eq!(received, rounds * chunk.len());

    // Download: 64 MiB from the backend arrive whole.
    let c = client();
    let response = c
        .request(
            Request::get(gw.url("/big?mb=64"))
                .body(empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let mut body = response.into_body();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let data = frame.expect("ok").into_data().unwrap_or_default();
        assert!(data.iter().all(|&b| b == 7));
        total += data.len();
    }
    assert_eq!(total, 64 << 20);
    let store = Arc::clone(&gw.store);
    gw.stop().await;
    let log = store.recent_requests(None, 10).await.expect("log");
    let upload = log.iter().find(|r| r.path == "/stream").expect("logged");
    assert_eq!(upload.request_bytes, (rounds * chunk.len()) as u64);
    assert_eq!(upload.response_bytes, (rounds * chunk.len()) as u64);
    let download = log.iter().find(|r| r.path == "/big").expect("logged");
    assert_eq!(download.response_bytes, 64 << 20);
}

#[tokio::test]
async fn websocket_upgrades_become_a_tunnel() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&buf, b"echo:hello");
    gw.stop().await;
}

#[tokio::test]
async fn http2_clients_are_served() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake (prior knowledge)");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/echo", gw.addr))
        .body(empty())
        .expect("request");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
    // The backend gets HTTP/1.1 with a Host made from :authority.
    let host = seen["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|p| p[0] == "host")
        .map(|p| p[1].clone());
    assert_eq!(host, Some(serde_json::Value::String(gw.addr.to_string())));
    gw.stop().await;
}

#[tokio::test]
async fn round_robin_shares_requests_equally() {
    let a = backend("a").await;
    let b = backend("b").await;
    let gw = gateway(config(&[&a, &b])).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
    }
    assert_eq!(a.seen.load(Ordering::SeqCst), 5);
    assert_eq!(b.seen.load(Ordering::SeqCst), 5);
    let stats = get(&c, &gw.admin_url("/stats")).await.json();
    assert_eq!(stats["requests"]["forwarded"], 10);
    let shares: Vec<f64> = stats["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| b["share"].as_f64().expect("share"))
        .collect();
    assert_eq!(shares, [0.5, 0.5]);
    gw.stop().await;
}

#[tokio::test]
async fn least_connections_sends_new_requests_to_the_idle_backend() {
    let a = backend("a").await;
    let b = backend("b").await;
    let mut cfg = config(&[&a, &b]);
    cfg.balance = BalanceStrategy::LeastConnections;
    let gw = gateway(cfg).await;
    // Occupy one backend with a long request.
    let c = client();
    let url = gw.url("/slow?ms=2000");
    let busy = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await.header("x-backend").to_owned() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut quick = Vec::new();
    for _ in 0..6 {
        quick.push(get(&c, &gw.url("/")).await.header("x-backend").to_owned());
    }
    let busy = busy.await.expect("busy");
    assert!(
        quick.iter().all(|n| *n != busy),
        "busy backend {busy} got {quick:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn health_checks_fail_over_and_bring_a_backend_back() {
    let a = backend("a").await;
    let b = backend("b").await;
    let gw = gateway(config(&[&a, &b])).await;
    let c = client();
    let a_addr = a.stop().await;
    // Three failed checks at 100 ms: a is down within a second or so.
    assert!(
        eventually(5, || async {
            let h = get(&c, &gw.admin_url("/health")).await.json();
            h["status"] == "degraded" && h["backends"][0]["healthy"] == false
        })
        .await,
        "a is marked down"
    );
    for _ in 0..10 {
        let r = get(&c, &gw.url("/")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-backend"), "b");
    }
    // a comes back on the same address: two good checks bring it back.
    let a = backend_on("a", a_addr).await;
    assert!(
        eventually(5, || async {
            get(&c, &gw.admin_url("/health")).await.json()["status"] == "ok"
        })
        .await,
        "a is back"
    );
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(get(&c, &gw.url("/")).await.header("x-backend").to_owned());
    }
    assert!(names.contains(&"a".to_owned()), "{names:?}");
    let metrics = get(&c, &gw.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains("rampart_gateway_backend_up{backend=\""),
        "{metrics}"
    );
    drop(a);
    gw.stop().await;
}

#[tokio::test]
async fn every_backend_down_is_503_and_unreachable_is_502() {
    let a = backend("a").await;
    let gw = gateway(config(&[&a])).await;
    let c = client();
    a.stop().await;
    // Before health checks notice: the connection fails, 502.
    let first = get(&c, &gw.url("/")).await;
    assert!(
        first.status == StatusCode::BAD_GATEWAY || first.status == StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.status
    );
    assert!(
        eventually(5, || async {
            get(&c, &gw.url("/")).await.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await
    );
    let health = get(&c, &gw.admin_url("/health")).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["status"], "down");
    gw.stop().await;
}

#[tokio::test]
async fn idempotent_requests_are_retried_on_another_backend_and_others_are_not() {
    let a = backend("a").await;
    let b = backend("b").await;
    let mut cfg = config(&[&a, &b]);
    cfg.health.enabled = false;
    cfg.health.unhealthy_threshold = 100;
    let gw = gateway(cfg).await;
    a.stop().await;
    let c = client();
    // Round robin alternates; every GET lands on b in the end.
    for _ in 0..4 {
        let r = get(&c, &gw.url("/")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-backend"), "b");
    }
    // A POST that picks the dead backend is not retried: 502.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(&c, &gw.url("/")).await.status);
    }
    assert!(statuses.contains(&StatusCode::BAD_GATEWAY), "{statuses:?}");
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_backend_is_a_504() {
    let a = backend("a").await;
    let mut cfg = config(&[&a]);
    cfg.timeouts.backend_response = "300ms".parse().expect("duration");
    let gw = gateway(cfg).await;
    let c = client();
    let r = get(&c, &gw.url("/slow?ms=3000")).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.body.contains("did not answer in time"), "{}", r.body);
    gw.stop().await;
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let a = backend("a").await;
    let mut cfg = config(&[&a]);
    cfg.timeouts.header_read = "300ms".parse().expect("duration");
    let gw = gateway(cfg).await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway closed the connection");
    // Closed by the header-read timeout, not served.
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(a.seen.load(Ordering::SeqCst), 0);
    gw.stop().await;
}

#[tokio::test]
async fn tls_is_terminated_with_http2_and_http1() {
    let a = backend("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let mut cfg = config(&[&a]);
    cfg.tls = Some(rampart_config::TlsConfig {
        cert: cert_path,
        key: key_path,
    });
    let gw = gateway(cfg).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    for alpn in [b"h2".to_vec(), b"http/1.1".to_vec()] {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.clone()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = TcpStream::connect(gw.addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let stream = connector.connect(name, tcp).await.expect("tls handshake");
        let body = if alpn == b"h2" {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .expect("h2");
            tokio::spawn(conn);
            let req = Request::get("https://localhost/echo")
                .body(empty())
                .expect("req");
            let resp = sender.send_request(req).await.expect("response");
            assert_eq!(resp.version(), http::Version::HTTP_2);
            resp.into_body().collect().await.expect("body").to_bytes()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("h1");
            tokio::spawn(conn);
            let req = Request::get("/echo")
                .header("host", "localhost")
                .body(empty())
                .expect("req");
            let resp = sender.send_request(req).await.expect("response");
            resp.into_body().collect().await.expect("body").to_bytes()
        };
        let seen: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let proto = seen["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|p| p[0] == "x-forwarded-proto")
            .map(|p| p[1].clone());
        assert_eq!(proto, Some(serde_json::Value::String("https".into())));
    }
    // Plain HTTP on the TLS port is refused.
    let plain = raw(gw.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!plain.contains("200 OK"));
    gw.stop().await;
}
