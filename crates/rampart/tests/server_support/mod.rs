//! What the server's integration tests share: a database per test (a
//! SQLite file, or a scratch PostgreSQL database on the server named by
//! `RAMPART_TEST_POSTGRES_URL`), `rampart server` as a child process, a
//! small HTTP/1.1 client (plain or TLS, from a chosen loopback address)
//! that keeps status, headers and body, and a `/ws/live` client.
//!
//! Without `RAMPART_TEST_POSTGRES_URL` the PostgreSQL cases say they are
//! skipped, unless `CI` is set: then they fail.

use rampart_store::testing::postgres::{admin_url, scratch};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Longest any one HTTP exchange may take before the test fails (only
/// against hanging; long polls wait less).
const EXCHANGE_LIMIT: Duration = Duration::from_secs(60);

/// A database for one test, dropped with it.
pub struct Db {
    /// The store URL the server and the CLI are given.
    pub url: String,
    _keep: Box<dyn std::any::Any + Send>,
}

/// A fresh SQLite file in a temporary directory.
pub fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/rampart.db", dir.path().display());
    Db {
        url,
        _keep: Box::new(dir),
    }
}

/// A fresh PostgreSQL database, or `None` (skip) when no server is given
/// outside CI.
pub async fn postgres_db() -> Option<Db> {
    let admin = admin_url()?;
    let (url, guard) = scratch(&admin, "rampart_server_api").await;
    Some(Db {
        url,
        _keep: Box::new(guard),
    })
}

/// Runs `rampart ARGS --database DB` with `stdin`; stdout, or a panic with
/// everything it said.
pub async fn cli(db: &str, args: &[&str], stdin: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .args(["--database", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rampart runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("stdin");
    drop(input);
    let out = child.wait_with_output().await.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rampart {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `rampart user add NAME --role ROLE --password-stdin`.
pub async fn add_user(db: &str, name: &str, role: &str, password: &str) {
    cli(
        db,
        &["user", "add", name, "--role", role, "--password-stdin"],
        &format!("{password}\n"),
    )
    .await;
}

/// `rampart token create NAME --role ROLE`: the secret it prints.
pub async fn create_token(db: &str, name: &str, role: &str) -> String {
    let out = cli(db, &["token", "create", name, "--role", role], "").await;
    let token = out.trim().to_owned();
    assert!(
        token.starts_with("rpt_") && token.len() == 68 && !token.contains(char::is_whitespace),
        "token create prints the secret alone on stdout: {out:?}"
    );
    token
}

/// How a server is started.
#[derive(Default)]
pub struct Options {
    /// Config file text (`[server]` settings); the flags are added after it.
    pub config: Option<String>,
    /// `--public PATH` flags.
    pub public: Vec<String>,
    /// Serve HTTPS with a fresh self-signed certificate for `localhost`.
    pub tls: bool,
}

/// `rampart server` as a child process, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of the server on {} ---\n{}", self.addr, self.log());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    /// Starts a server on `db` and waits until `/health` answers 200.
    pub async fn start(db: &str, options: Options) -> Server {
        // A free port can be taken between the probe and the bind: retry.
        for _ in 0..3 {
            if let Some(server) = Self::try_start(db, &options).await {
                return server;
            }
        }
        panic!("the server could not bind a free port three times");
    }

    async fn try_start(db: &str, options: &Options) -> Option<Server> {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.path().join("server.log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"));
        cmd.args(["server", "--listen", &addr.to_string(), "--database", db]);
        if let Some(text) = &options.config {
            let path = dir.path().join("rampart.toml");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        for p in &options.public {
            cmd.args(["--public", p]);
        }
        let tls = options.tls.then(|| {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .expect("certificate");
            let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
            std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
            cmd.arg("--tls-cert").arg(cert_path);
            cmd.arg("--tls-key").arg(key_path);
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert.cert.der().clone()).expect("trust the cert");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        let child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("rampart server runs");
        let mut server = Server {
            child,
            addr,
            tls,
            log,
            _dir: dir,
        };
        for _ in 0..600 {
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = server.log();
                if log.contains("cannot listen") {
                    return None;
                }
                panic!("the server exited ({status}):\n{log}");
            }
            if let Ok(Ok(reply)) = tokio::time::timeout(
                Duration::from_secs(5),
                server
                    .client(Auth::None)
                    .try_send(Method::GET, "/health", None, &[]),
            )
            .await
                && reply.status == StatusCode::OK
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server never answered /health:\n{}", server.log());
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client with these credentials, from 127.0.0.1.
    pub fn client(&self, auth: Auth) -> Client {
        Client {
            tls: self.tls.clone(),
            ..Client::at(self.addr, auth)
        }
    }

    /// A client with a bearer token.
    pub fn bearer(&self, token: &str) -> Client {
        self.client(Auth::Bearer(token.to_owned()))
    }

    /// Logs in (from 127.0.0.1) and answers the reply.
    pub async fn login(&self, user: &str, password: &str) -> Reply {
        self.client(Auth::None)
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"username": user, "password": password}),
            )
            .await
    }

    /// Logs in and answers a bearer client with the session token.
    pub async fn login_bearer(&self, user: &str, password: &str) -> Client {
        let reply = self.login(user, password).await;
        assert_eq!(reply.status, StatusCode::OK, "login: {}", reply.text());
        let token = reply.json()["token"].as_str().expect("token").to_owned();
        self.bearer(&token)
    }

    /// Opens `/ws/live?QUERY` with these credentials (plain HTTP only).
    pub async fn live(
        &self,
        auth: &Auth,
        query: &str,
    ) -> Result<Live, tokio_tungstenite::tungstenite::Error> {
        assert!(self.tls.is_none(), "live() speaks plain HTTP");
        let mut request = format!("ws://{}/ws/live{query}", self.addr)
            .into_client_request()
            .expect("request");
        let header = match auth {
            Auth::None => None,
            Auth::Bearer(token) => Some((http::header::AUTHORIZATION, format!("Bearer {token}"))),
            Auth::Cookie { session, .. } => {
                Some((http::header::COOKIE, format!("rampart_session={session}")))
            }
        };
        if let Some((name, value)) = header {
            request
                .headers_mut()
                .insert(name, value.parse().expect("header"));
        }
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(request, tcp).await?;
        Ok(Live { ws })
    }

    /// The text of `/metrics` (as `client` sees it).
    pub async fn metrics(&self, client: &Client) -> String {
        let reply = client.get("/metrics").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.text()
    }
}

/// Credentials a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    /// None.
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// The session cookie, and the `X-CSRF-Token` header when given.
    Cookie {
        /// The session token.
        session: String,
        /// The CSRF value to send.
        csrf: Option<String>,
    },
}

/// An HTTP client for one server.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: Auth,
    from: IpAddr,
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (or a panic showing it).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {:?}", self.status, self.text()))
    }

    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// Checks the status and the error code of an error body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }
}

impl Client {
    /// A plain-HTTP client for a server at `addr` (started by the test
    /// itself), from 127.0.0.1.
    pub fn at(addr: SocketAddr, auth: Auth) -> Client {
        Client {
            addr,
            tls: None,
            auth,
            from: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// The same client with other credentials.
    pub fn with(&self, auth: Auth) -> Client {
        Client {
            auth,
            ..self.clone()
        }
    }

    /// The same client connecting from another loopback address
    /// (127.0.0.2, …).
    pub fn connecting_from(&self, from: IpAddr) -> Client {
        Client {
            from,
            ..self.clone()
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, Some(body.to_string().into()), &[])
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, Some(body.to_string().into()), &[])
            .await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PATCH, path, Some(body.to_string().into()), &[])
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Any request; panics when the server cannot be reached or hangs.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let what = format!("{method} {path}");
        match tokio::time::timeout(EXCHANGE_LIMIT, self.try_send(method, path, body, headers)).await
        {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: no answer in {EXCHANGE_LIMIT:?}"),
        }
    }

    /// Any request, one connection.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "localhost");
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            Auth::Cookie { session, csrf } => {
                request =
                    request.header(http::header::COOKIE, format!("rampart_session={session}"));
                if let Some(csrf) = csrf {
                    request = request.header("x-csrf-token", csrf);
                }
            }
        }
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::new(self.from, 0))
            .map_err(|e| e.to_string())?;
        let tcp = socket.connect(self.addr).await.map_err(|e| e.to_string())?;
        match &self.tls {
            None => exchange(tcp, request).await,
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                exchange(stream, request).await
            }
        }
    }
}

async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A `/ws/live` connection.
pub struct Live {
    ws: WebSocketStream<TcpStream>,
}

impl Live {
    /// Sends a JSON text frame.
    pub async fn send(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next JSON text frame, or `None` when none comes within `limit`
    /// (or the connection ends).
    pub async fn next(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match frame.expect("live frame") {
                Message::Text(text) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
                }
                Message::Close(frame) => panic!("the server closed the live stream: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Frames until one matches `want` (within `limit` overall); the
    /// match and every frame before it.
    pub async fn until(
        &mut self,
        limit: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.next(left).await else {
                panic!("no matching live frame within {limit:?}; got {before:?}");
            };
            if want(&frame) {
                return (frame, before);
            }
            before.push(frame);
        }
    }
}
