//! Real backends and an in-process gateway for the integration tests.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart_config::{BackendConfig, GatewayConfig, PolicyConfig};
use rampart_core::Whitelist;
use rampart_gateway::{Gateway, GatewayContext};
use rampart_store::Store;
use rampart_store::sqlite::SqliteStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

pub type TestBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A backend server: answers with what it saw, counts requests.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: &'static str,
    /// Requests seen, health checks not counted.
    pub seen: Arc<AtomicUsize>,
    /// Paths seen, in order.
    pub paths: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and closes the listener (open connections end).
    pub async fn stop(mut self) -> SocketAddr {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.addr
    }
}

/// Starts a backend named `name` on `addr` (port 0 for any).
///
/// Routes: `/echo` (JSON of method, path, query, headers, body length and
/// checksum), `/health` (200), `/slow?ms=N` (sleeps, then 200), `/stream`
/// (echoes the request body back as it arrives), `/big?mb=N` (N MiB of
/// response in 64 KiB chunks), `/ws` (upgrade to an echo tunnel), other
/// paths 200 `name` (404 for paths starting with `/missing`).
pub async fn backend_on(name: &'static str, addr: SocketAddr) -> Backend {
    let listener = TcpListener::bind(addr).await.expect("bind backend");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (seen2, paths2) = (Arc::clone(&seen), Arc::clone(&paths));
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = &mut stop_rx => break,
            };
            let (seen, paths) = (Arc::clone(&seen2), Arc::clone(&paths2));
            conns.spawn(async move {
                let service = service_fn(move |req| {
                    let (seen, paths) = (Arc::clone(&seen), Arc::clone(&paths));
                    async move { Ok::<_, Infallible>(answer(name, req, &seen, &paths).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
        conns.abort_all();
    });
    Backend {
        addr,
        name,
        seen,
        paths,
        stop: Some(stop_tx),
        task,
    }
}

pub async fn backend(name: &'static str) -> Backend {
    backend_on(name, "127.0.0.1:0".parse().expect("addr")).await
}

fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
    seen: &AtomicUsize,
    paths: &std::sync::Mutex<Vec<String>>,
) -> Response<TestBody> {
    if req.uri().path() != "/health" {
        seen.fetch_add(1, Ordering::SeqCst);
    }
    paths
        .lock()
        .expect("paths")
        .push(req.uri().path().to_owned());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut response = match path.as_str() {
        "/echo" => {
            let method = req.method().to_string();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect();
            let body = req.into_body().collect().await.map(|c| c.to_bytes());
            let body = body.unwrap_or_default();
            let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
            let json = serde_json::json!({
                "backend": name, "method": method, "path": path, "query": query,
                "headers": headers, "body_len": body.len(), "body_sum": sum,
            });
            Response::new(full(json.to_string()))
        }
        "/slow" => {
            let ms: u64 = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full(name))
        }
        "/stream" => {
            // Echo each request frame back as it arrives.
            let (tx, rx) =
                mpsc::channel::<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>(4);
            let mut body = req.into_body();
            tokio::spawn(async move {
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Ok(data) = frame.into_data()
                        && tx.send(Ok(Frame::data(data))).await.is_err()
                    {
                        break;
                    }
                }
            });
            let stream = tokio_stream_from(rx);
            Response::new(StreamBody::new(stream).boxed_unsync())
        }
        "/big" => {
            let mb: usize = query
                .strip_prefix("mb=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let (tx, rx) = mpsc::channel(2);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![7u8; 64 * 1024]);
                for _ in 0..mb * 16 {
                    if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                        break;
                    }
                }
            });
            Response::new(StreamBody::new(tokio_stream_from(rx)).boxed_unsync())
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut out = b"echo:".to_vec();
                            out.extend_from_slice(&buf[..n]);
                            if io.write_all(&out).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            let mut r = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert(http::header::UPGRADE, "websocket".parse().expect("value"));
            r.headers_mut()
                .insert(http::header::CONNECTION, "upgrade".parse().expect("value"));
            r
        }
        p if p.starts_with("/missing") => {
            let mut r = Response::new(full("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
        _ => Response::new(full(name)),
    };
    response
        .headers_mut()
        .insert("x-backend", name.parse().expect("value"));
    response
}

fn tokio_stream_from<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> tokio_stream::wrappers::ReceiverStream<T> {
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A gateway running in this process on an in-memory store.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub store: Arc<dyn Store>,
    pub shared: Arc<rampart_gateway::Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Shuts down gracefully and waits for the request log to flush.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("gateway task");
        }
    }
}

/// A config for `backends` with everything on loopback port 0 and short
/// timers (health every 100 ms).
pub fn config(backends: &[&Backend]) -> GatewayConfig {
    let mut c = GatewayConfig {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        admin: Some("127.0.0.1:0".parse().expect("addr")),
        backends: backends
            .iter()
            .map(|b| BackendConfig { url: b.url() })
            .collect(),
        ..GatewayConfig::default()
    };
    c.health.interval = "100ms".parse().expect("duration");
    c.health.timeout = "500ms".parse().expect("duration");
    c.health.path = "/health".into();
    c
}

pub async fn gateway(config: GatewayConfig) -> TestGateway {
    gateway_with(config, PolicyConfig::default(), Vec::new()).await
}

/// A gateway running `hooks` after its own detection.
pub async fn gateway_with_hooks(
    config: GatewayConfig,
    hooks: Vec<Arc<dyn rampart_gateway::hooks::Hooks>>,
) -> TestGateway {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
    start(config, PolicyConfig::default(), Vec::new(), store, hooks).await
}

pub async fn gateway_with(
    config: GatewayConfig,
    policy: PolicyConfig,
    whitelist: Vec<&str>,
) -> TestGateway {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
    start(config, policy, whitelist, store, Vec::new()).await
}

async fn start(
    config: GatewayConfig,
    policy: PolicyConfig,
    whitelist: Vec<&str>,
    store: Arc<dyn Store>,
    hooks: Vec<Arc<dyn rampart_gateway::hooks::Hooks>>,
) -> TestGateway {
    let ctx = GatewayContext {
        store: Arc::clone(&store),
        policy,
        whitelist: Whitelist::exactly(
            whitelist
                .iter()
                .map(|w| w.parse().expect("whitelist net"))
                .collect(),
        ),
        id: "gw-test".into(),
        more_metrics: None,
        hooks,
    };
    let gw = Gateway::build(&config, ctx).await.expect("gateway builds");
    let addr = gw.local_addrs()[0];
    let admin = gw.admin_addr().expect("admin");
    let shared = gw.shared();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        gw.run(async {
            let _ = rx.await;
        })
        .await
        .expect("gateway runs");
    });
    TestGateway {
        addr,
        admin,
        store,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    }
}

pub type HttpClient = Client<HttpConnector, TestBody>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A client whose connections come from `source` (any 127/8 address).
pub fn client_from(source: std::net::IpAddr) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(source));
    Client::builder(TokioExecutor::new()).build(connector)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// A header's value as text, "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The echo backend's view of one request header, all values joined.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        let json = self.json();
        let values: Vec<String> = json["headers"]
            .as_array()?
            .iter()
            .filter(|pair| pair[0] == name)
            .filter_map(|pair| pair[1].as_str().map(str::to_owned))
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

pub async fn send(client: &HttpClient, req: Request<TestBody>) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("answered in time")
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

pub fn text(body: &str) -> TestBody {
    full(body.to_owned())
}

pub async fn get(client: &HttpClient, url: &str) -> Answer {
    send(client, Request::get(url).body(empty()).expect("request")).await
}

pub async fn post(client: &HttpClient, url: &str) -> Answer {
    send(client, Request::post(url).body(empty()).expect("request")).await
}

/// Sends raw bytes on a fresh connection and reads until the server closes
/// (or 5 s pass); returns what came back.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `check` every 50 ms until it holds, for at most `secs`.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A gateway on a given store (to start with decisions already in it).
pub async fn gateway_on(config: GatewayConfig, store: Arc<dyn Store>) -> TestGateway {
    start(
        config,
        PolicyConfig::default(),
        Vec::new(),
        store,
        Vec::new(),
    )
    .await
}
