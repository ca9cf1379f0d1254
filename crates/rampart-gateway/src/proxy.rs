//! The request path. Every request goes through these phases, in order,
//! with one [`RequestCtx`]:
//!
//! 1. `request_filter` and `request_body_filter` of every
//!    [`Hooks`](crate::hooks::Hooks) in
//!    turn, after the client address is resolved (trusted proxies). The
//!    gateway's detection is the first hook ([`crate::hooks::GuardHook`]:
//!    whitelist, ban table, request signatures, the client's behaviour
//!    verdict); it may answer at once (403, 429) and ban.
//! 2. `upstream_peer` — a healthy backend by the balancing strategy; 503
//!    when there is none.
//! 3. `upstream_request` — the request as the backend sees it: hop-by-hop
//!    headers stripped, `X-Forwarded-*` / `Forwarded` / `X-Request-Id`
//!    added, body streamed.
//! 4. `response_filter` — hop-by-hop headers stripped from the answer,
//!    `X-Request-Id` added; a 101 answer becomes a tunnel (WebSocket).
//! 5. `logging` — when the response body ends (or the client goes away):
//!    the request-log record and the client's response statistics.
//!
//! Failures are [`Failure`]s, answered in one place (`fail`): a hook's
//! answer, else the one mapping to a status; always an outcome and a
//! culprit. Requests whose framing is
//! ambiguous never reach this path: the connection's framing guard
//! (`rampart_http::framing`) refuses them with 400.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use rampart_core::{Prediction, RequestRecord};

use crate::backend::Transition;
pub use crate::context::{Body, BoxError, RequestCtx, local_response};
use crate::failure::Failure;
use crate::hooks::Stop;
use crate::metrics::Outcome;
use crate::shared::Shared;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Serves one request (hyper's service function).
pub async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Result<Response<Body>, Infallible> {
    let peer_trusted = shared.trusted.contains(peer.ip());
    let client = shared.trusted.client(peer.ip(), req.headers());
    let mut ctx = RequestCtx {
        id: shared.next_request_id(),
        time: Utc::now(),
        start: Instant::now(),
        now_ms: shared.now_ms(),
        peer,
        client,
        peer_trusted,
        tls,
        score: 0.0,
        prediction: Prediction::Normal,
        blocked: false,
        reason: None,
        backend: None,
        key: None,
        outcome: Outcome::forwarded,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        request_bytes: Arc::new(AtomicU64::new(0)),
    };
    let bytes = Arc::clone(&ctx.request_bytes);
    let req = req.map(|inner| Counted { inner, bytes }.boxed_unsync());
    let response = match filters(&shared, req, &mut ctx).await {
        Err(Stop::Answer(answer)) => {
            if ctx.outcome == Outcome::forwarded {
                ctx.outcome = Outcome::refused;
            }
            *answer
        }
        Err(Stop::Fail(failure)) => fail(&shared, &mut ctx, failure),
        Ok(req) => {
            let total = shared.config.timeouts.total.0;
            match tokio::time::timeout(total, forward(&shared, req, &mut ctx)).await {
                Ok(response) => response,
                Err(_) => fail(&shared, &mut ctx, Failure::Timeout),
            }
        }
    };
    Ok(logging(shared, ctx, response))
}

/// Phase 1 and 1b: every hook's request filter, then every hook's body filter.
async fn filters(
    shared: &Shared,
    mut req: Request<Body>,
    ctx: &mut RequestCtx,
) -> Result<Request<Body>, Stop> {
    for hook in &shared.hooks {
        hook.request_filter(&req, ctx)?;
    }
    for hook in &shared.hooks {
        req = hook.request_body_filter(req, ctx).await?;
    }
    Ok(req)
}

/// Answers a failure: its outcome and culprit recorded, then the first
/// hook's answer for it, else the one default mapping ([`Failure`]).
fn fail(shared: &Shared, ctx: &mut RequestCtx, failure: Failure) -> Response<Body> {
    ctx.outcome = failure.outcome();
    shared.metrics.error(failure.culprit());
    shared
        .hooks
        .iter()
        .find_map(|h| h.failure(failure, ctx))
        .unwrap_or_else(|| local_response(failure.status(), ctx, failure.message()))
}

/// Phases 2–4: pick a backend, send the request, filter the answer.
async fn forward(
    shared: &Arc<Shared>,
    mut req: Request<Body>,
    ctx: &mut RequestCtx,
) -> Response<Body> {
    let upgrade = wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let no_body = body.is_end_stream();
    let retryable = no_body && is_idempotent(&parts.method) && !upgrade;
    let mut body: Option<Body> = Some(body);
    let mut tried: Vec<usize> = Vec::new();
    let attempts = 1 + if retryable {
        shared.config.retries as usize
    } else {
        0
    };

    loop {
        // Phase 2: upstream_peer (a hook's choice, else the balancing strategy).
        let chosen = shared
            .hooks
            .iter()
            .find_map(|h| h.upstream_peer(ctx, &tried));
        let lease = match chosen {
            Some(index) => shared
                .pool
                .lease(index, &tried)
                .or_else(|| shared.pool.pick(&tried)),
            None => shared.pool.pick(&tried),
        };
        let Some(lease) = lease else {
            let failure = if tried.is_empty() {
                Failure::NoHealthyBackend
            } else {
                Failure::Unreachable
            };
            return fail(shared, ctx, failure);
        };
        tried.push(lease.index());
        let backend = lease.backend();
        ctx.backend = Some(backend.authority.clone());
        shared
            .metrics
            .backend_requests
            .get_or_create(&crate::metrics::BackendLabel {
                backend: backend.url.clone(),
            })
            .inc();

        // Phase 3: upstream_request.
        let this_body = body
            .take()
            .unwrap_or_else(|| Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync());
        let outgoing = match upstream_request(&parts, this_body, backend, ctx, upgrade) {
            Ok(r) => r,
            Err(error) => {
                tracing::debug!(%error, "cannot build the upstream request");
                return fail(shared, ctx, Failure::Unforwardable);
            }
        };
        let wait = shared.config.timeouts.backend_response.0;
        let result = tokio::time::timeout(wait, shared.client.request(outgoing)).await;
        let mut response = match result {
            Ok(Ok(response)) => {
                if shared.pool.report_success(lease.index()) == Transition::Up {
                    shared.backend_changed(lease.index(), true);
                }
                response
            }
            Ok(Err(error)) => {
                shared.backend_failed(lease.index());
                let connect = error.is_connect();
                tracing::debug!(%error, backend = %backend.url, connect, "backend request failed");
                if connect && tried.len() < attempts {
                    continue;
                }
                return fail(shared, ctx, Failure::Unreachable);
            }
            Err(_) => {
                shared.backend_failed(lease.index());
                return fail(shared, ctx, Failure::Timeout);
            }
        };

        // Phase 4: response_filter.
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let backend_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(tunnel(client_upgrade, backend_upgrade));
            }
        } else {
            strip_hop_by_hop(response.headers_mut());
        }
        if let Ok(value) = HeaderValue::from_str(&ctx.id) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
        drop(lease);
        let mut response = response.map(|b| b.map_err(BoxError::from).boxed_unsync());
        for hook in &shared.hooks {
            hook.response_filter(&mut response, ctx);
        }
        return response;
    }
}

/// Copies bytes both ways between an upgraded client and backend.
async fn tunnel(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%error, "tunnel ended");
    }
}

/// The request the backend receives.
fn upstream_request(
    parts: &http::request::Parts,
    body: Body,
    backend: &crate::backend::Backend,
    ctx: &RequestCtx,
    upgrade: bool,
) -> Result<Request<Body>, http::Error> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let uri = backend.uri(path_and_query)?;
    let mut headers = parts.headers.clone();
    let upgrade_value = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(&mut headers);
    if let Some(value) = upgrade_value {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    if let Some(host) = &host {
        headers.insert(header::HOST, host.clone());
    }
    let proto = if ctx.tls { "https" } else { "http" };
    let peer = ctx.peer.ip();
    // X-Forwarded-For: a trusted proxy's list is extended; anyone else's is replaced.
    let xff = match (ctx.peer_trusted, joined(&parts.headers, &X_FORWARDED_FOR)) {
        (true, Some(list)) => format!("{list}, {peer}"),
        _ => peer.to_string(),
    };
    headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(&xff)?);
    if !(ctx.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(ctx.peer_trusted && headers.contains_key(&X_FORWARDED_HOST))
        && let Some(host) = &host
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    let node = match peer {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto={proto}");
    if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok())
        && !host.contains(['"', '\\'])
    {
        element.push_str(&format!(";host=\"{host}\""));
    }
    let forwarded = match (ctx.peer_trusted, joined(&parts.headers, &header::FORWARDED)) {
        (true, Some(list)) => format!("{list}, {element}"),
        _ => element,
    };
    headers.insert(header::FORWARDED, HeaderValue::from_str(&forwarded)?);
    headers.insert(X_REQUEST_ID, HeaderValue::from_str(&ctx.id)?);

    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(Version::HTTP_11)
        .body(body)?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Every value of a header joined by `, `, if present and readable.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Removes hop-by-hop headers and the headers `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Whether the request asks for a protocol upgrade (WebSocket).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Phase 5: the response's body is wrapped so that the request is logged
/// when it ends, with the bytes actually sent.
fn logging(shared: Arc<Shared>, ctx: RequestCtx, response: Response<Body>) -> Response<Body> {
    let latency = ctx.start.elapsed();
    shared.metrics.latency.observe(latency.as_secs_f64());
    shared.metrics.request(ctx.outcome);
    let status = response.status().as_u16();
    for hook in &shared.hooks {
        hook.logging(&ctx, status);
    }
    let record = RequestRecord {
        time: ctx.time,
        gateway: shared.id.clone(),
        request_id: ctx.id,
        client: ctx.client,
        method: ctx.method,
        path: ctx.path,
        user_agent: ctx.user_agent,
        status,
        request_bytes: 0,
        response_bytes: 0,
        latency_ms: latency.as_secs_f64() * 1000.0,
        score: ctx.score,
        prediction: ctx.prediction,
        blocked: ctx.blocked,
        reason: ctx.reason,
        backend: ctx.backend,
    };
    let pending = Pending {
        shared,
        record: Some(record),
        request_bytes: ctx.request_bytes,
        response_bytes: 0,
    };
    response.map(|inner| Logged { inner, pending }.boxed_unsync())
}

/// A request-log record waiting for its response body to end.
struct Pending {
    shared: Arc<Shared>,
    record: Option<RequestRecord>,
    request_bytes: Arc<AtomicU64>,
    response_bytes: u64,
}

impl Pending {
    fn finish(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.request_bytes = self.request_bytes.load(Ordering::Relaxed);
            record.response_bytes = self.response_bytes;
            self.shared.log.record(record, &self.shared.metrics);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A response body that counts its bytes and logs the request when it ends.
struct Logged {
    inner: Body,
    pending: Pending,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.pending.response_bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.pending.finish(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that counts the bytes streamed through it.
struct Counted {
    inner: Incoming,
    bytes: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
    }
}
