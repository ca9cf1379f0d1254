//! One simulated client: a source address in 127.0.0.0/8, one HTTP/1.1
//! keep-alive connection at a time (hyper's `client::conn::http1` over a
//! socket bound to that source), and what happened to each of its requests.
//!
//! Counting contract: a request counts as sent once it was handed to the
//! connection (or its connection attempt failed). A request hyper gives back
//! unsent (the connection closed under it) is retried on a new connection
//! and counted once. Requests are never sent after the run's end, beyond
//! the total budget, or faster than the scenario's pacer allows.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderName, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until, timeout_at};

use super::Run;
use super::target::Target;

/// Response bodies are read (to keep the connection usable) up to this;
/// beyond it the connection is dropped.
const MAX_BODY: usize = 1 << 20;
/// Attempts to get a request onto a connection that closes under it.
const SEND_ATTEMPTS: usize = 3;

/// A request to send: method, path (origin-form, before the target's base
/// path), headers besides `Host`, body.
#[derive(Debug, Clone)]
pub struct Req {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, String)>,
    body: Bytes,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post(path: impl Into<String>, content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            headers: Vec::new(),
            body: body.into(),
        }
        .header(http::header::CONTENT_TYPE, content_type)
    }

    #[cfg(test)]
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The hyper request, or `None` if a path or header value is not valid
    /// (a bug in a traffic shape: nothing is sent or counted).
    fn build(&self, target: &Target) -> Option<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(target.path(&self.path))
            .header(HOST, HeaderValue::from_str(&target.authority).ok()?);
        for (name, value) in &self.headers {
            builder = builder.header(name, HeaderValue::from_str(value).ok()?);
        }
        let built = builder.body(Full::new(self.body.clone())).ok();
        debug_assert!(built.is_some(), "invalid request {self:?}");
        built
    }
}

/// What the caller learns about a request it sent.
#[derive(Debug, Default)]
pub struct Reply {
    /// The status, if the server answered.
    pub status: Option<u16>,
    /// `name=value` of each `Set-Cookie` (attributes dropped).
    pub set_cookies: Vec<String>,
}

/// How one request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Answered {
        status: u16,
        retry_after: bool,
        latency: Duration,
    },
    /// Connection refused, or reset/closed before any answer on a
    /// connection opened for this request.
    Refused,
    /// No connection within the request timeout (e.g. a firewall dropping
    /// the handshake).
    ConnectTimeout,
    /// No answer within the request timeout.
    Timeout,
    /// Anything else (e.g. a keep-alive connection closed mid-request).
    Failed,
}

/// Counts for one client.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub requests: u64,
    pub blocked: u64,
    pub status_403: u64,
    pub status_429: u64,
    pub refused: u64,
    pub passed: u64,
    pub timeouts: u64,
    /// Of the timeouts, those where the connection was never established.
    pub connect_timeouts: u64,
    pub errors: u64,
    /// 429 answers without `Retry-After`.
    pub missing_retry_after: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// When the first request was sent.
    pub first_request: Option<Instant>,
    /// From the first request to the end of the first blocked one.
    pub first_block: Option<Duration>,
    /// Requests sent after the first blocked one, and how many were blocked.
    pub after_block_requests: u64,
    pub after_block_blocked: u64,
    /// Latency (µs) of passed requests sent before the attack phase.
    pub latency_baseline_us: Vec<u32>,
    /// Latency (µs) of passed requests sent during the attack phase.
    pub latency_attack_us: Vec<u32>,
}

impl ClientStats {
    fn record(
        &mut self,
        sent_at: Instant,
        done_at: Instant,
        outcome: Outcome,
        attack_start: Instant,
    ) {
        let first = *self.first_request.get_or_insert(sent_at);
        self.requests += 1;
        let blocked = match outcome {
            Outcome::Answered {
                status,
                retry_after,
                latency,
            } => {
                *self.statuses.entry(status).or_default() += 1;
                match status {
                    403 => {
                        self.status_403 += 1;
                        true
                    }
                    429 => {
                        self.status_429 += 1;
                        if !retry_after {
                            self.missing_retry_after += 1;
                        }
                        true
                    }
                    _ => {
                        self.passed += 1;
                        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                        if sent_at < attack_start {
                            self.latency_baseline_us.push(us);
                        } else {
                            self.latency_attack_us.push(us);
                        }
                        false
                    }
                }
            }
            Outcome::Refused => {
                self.refused += 1;
                true
            }
            Outcome::ConnectTimeout => {
                self.timeouts += 1;
                self.connect_timeouts += 1;
                false
            }
            Outcome::Timeout => {
                self.timeouts += 1;
                false
            }
            Outcome::Failed => {
                self.errors += 1;
                false
            }
        };
        if blocked {
            self.blocked += 1;
        }
        if self.first_block.is_some() {
            self.after_block_requests += 1;
            self.after_block_blocked += u64::from(blocked);
        } else if blocked {
            self.first_block = Some(done_at.saturating_duration_since(first));
        }
    }
}

/// Hands out send slots no faster than a scenario's `--max-rps`, whatever
/// its clients ask for.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(max_rps: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / max_rps.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot; false (at once) when it would fall at or
    /// after `end`.
    pub async fn wait(&self, end: Instant) -> bool {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = (*next).max(Instant::now());
            if slot >= end {
                return false;
            }
            *next = slot + self.interval;
            slot
        };
        sleep_until(slot).await;
        true
    }
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Whether any request on it was answered.
    answered: bool,
}

/// A simulated client; see the module docs for what it counts.
pub struct Client {
    run: Arc<Run>,
    pacer: Arc<Pacer>,
    pub source: IpAddr,
    conn: Option<Conn>,
    /// Held while the client may have a connection open (`--max-connections`).
    permit: Option<OwnedSemaphorePermit>,
    pub stats: ClientStats,
}

impl Client {
    pub fn new(run: Arc<Run>, pacer: Arc<Pacer>, source: IpAddr) -> Self {
        Self {
            run,
            pacer,
            source,
            conn: None,
            permit: None,
            stats: ClientStats::default(),
        }
    }

    /// Sends `req` and records the outcome. `None` when nothing was sent:
    /// the run is over or the request budget is spent (the client stops).
    pub async fn send(&mut self, req: &Req) -> Option<Reply> {
        if self.permit.is_none() {
            let wait = self.run.connections.clone().acquire_owned();
            self.permit = Some(timeout_at(self.run.end, wait).await.ok()?.ok()?);
        }
        if !self.pacer.wait(self.run.end).await || Instant::now() >= self.run.end {
            return None;
        }
        let request = req.build(&self.run.target)?;
        if !self.run.take_budget() {
            return None;
        }
        let sent_at = Instant::now();
        let (outcome, reply) = self.exchange(request).await;
        self.stats
            .record(sent_at, Instant::now(), outcome, self.run.attack_start);
        Some(reply)
    }

    async fn exchange(&mut self, mut request: Request<Full<Bytes>>) -> (Outcome, Reply) {
        let started = Instant::now();
        let deadline = started + self.run.request_timeout;
        for _ in 0..SEND_ATTEMPTS {
            if self.conn.as_ref().is_none_or(|c| c.sender.is_closed()) {
                self.conn = None;
                match timeout_at(deadline, connect(self.source, &self.run.target)).await {
                    Err(_) => return (Outcome::ConnectTimeout, Reply::default()),
                    Ok(Err(e)) => {
                        tracing::debug!(source = %self.source, error = %e, "connect failed");
                        let outcome = if is_refusal(&e) {
                            Outcome::Refused
                        } else {
                            Outcome::Failed
                        };
                        return (outcome, Reply::default());
                    }
                    Ok(Ok(sender)) => {
                        self.conn = Some(Conn {
                            sender,
                            answered: false,
                        });
                    }
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            match timeout_at(deadline, conn.sender.ready()).await {
                Err(_) => {
                    self.conn = None;
                    return (Outcome::Timeout, Reply::default());
                }
                Ok(Err(_)) => {
                    self.conn = None;
                    continue;
                }
                Ok(Ok(())) => {}
            }
            let fresh = !conn.answered;
            let response = match timeout_at(deadline, conn.sender.try_send_request(request)).await {
                Err(_) => {
                    self.conn = None;
                    return (Outcome::Timeout, Reply::default());
                }
                Ok(Err(mut e)) => {
                    self.conn = None;
                    if let Some(unsent) = e.take_message() {
                        request = unsent;
                        continue;
                    }
                    let error = e.into_error();
                    tracing::debug!(source = %self.source, %error, "request failed");
                    let outcome = if fresh && is_reset(&error) {
                        Outcome::Refused
                    } else {
                        Outcome::Failed
                    };
                    return (outcome, Reply::default());
                }
                Ok(Ok(response)) => response,
            };
            conn.answered = true;
            let status = response.status().as_u16();
            let headers = response.headers();
            let close = headers
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let retry_after = headers.contains_key(RETRY_AFTER);
            let set_cookies = headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .map(str::trim)
                .filter(|c| c.contains('=') && c.len() <= 256)
                .take(8)
                .map(str::to_owned)
                .collect();
            let body = Limited::new(response.into_body(), MAX_BODY).collect();
            let body_read = matches!(timeout_at(deadline, body).await, Ok(Ok(_)));
            if close || !body_read {
                self.conn = None;
            }
            let outcome = Outcome::Answered {
                status,
                retry_after,
                latency: started.elapsed(),
            };
            let reply = Reply {
                status: Some(status),
                set_cookies,
            };
            return (outcome, reply);
        }
        (Outcome::Failed, Reply::default())
    }

    /// Ends the client (its connection closes) and gives its counts.
    pub fn finish(self) -> (IpAddr, ClientStats) {
        (self.source, self.stats)
    }
}

/// A TCP connection from `source` (port chosen by the kernel) to the target.
pub async fn connect_tcp(source: IpAddr, target: &Target) -> io::Result<TcpStream> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect(source: IpAddr, target: &Target) -> io::Result<SendRequest<Full<Bytes>>> {
    let stream = connect_tcp(source, target).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::trace!(%error, "connection ended");
        }
    });
    Ok(sender)
}

/// The server would not have us: refused, or reset while connecting.
fn is_refusal(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// The connection was closed or reset before an answer.
fn is_reset(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            );
        }
        source = s.source();
    }
    false
}

/// One `GET /` from `source` before the run: the status and latency, or why
/// the target did not answer.
pub async fn probe(
    source: IpAddr,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<(u16, Duration)> {
    let started = Instant::now();
    let deadline = started + timeout;
    let exchange = async {
        let mut sender = connect(source, target).await?;
        let request = Req::get("/")
            .header(http::header::USER_AGENT, "rampart-simulate (probe)")
            .build(target)
            .ok_or_else(|| anyhow::anyhow!("cannot build the probe request"))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let _ = Limited::new(response.into_body(), MAX_BODY).collect().await;
        anyhow::Ok(status)
    };
    match timeout_at(deadline, exchange).await {
        Ok(Ok(status)) => Ok((status, started.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}")),
    }
}
