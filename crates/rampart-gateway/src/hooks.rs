//! The gateway's extension points. A request passes each phase of every
//! hook in order, with one [`RequestCtx`]; the first hook to stop it
//! answers. Every method has a default that does nothing, so a hook
//! implements only the phases it cares about. The gateway's own detection
//! is one hook ([`GuardHook`], over `rampart-guard`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};

use crate::context::{Body, RequestCtx, local_response};
use crate::failure::Failure;
use crate::metrics::Outcome;
use rampart_guard::inspect::RequestFacts;
use rampart_guard::{Guard, Refusal, Request as GuardRequest, Screening};

/// Why a hook stops a request.
pub enum Stop {
    /// Send this answer (a refusal: 403, 429…).
    Answer(Box<Response<Body>>),
    /// The request failed: answered by the one [`Failure`] mapping.
    Fail(Failure),
}

/// One set of phase hooks.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync {
    /// Phase 1, the request head. `Err` stops the request.
    fn request_filter(&self, _req: &Request<Body>, _ctx: &mut RequestCtx) -> Result<(), Stop> {
        Ok(())
    }

    /// Phase 1b, the request with its body (which the hook may read and
    /// put back). `Err` stops the request.
    async fn request_body_filter(
        &self,
        req: Request<Body>,
        _ctx: &mut RequestCtx,
    ) -> Result<Request<Body>, Stop> {
        Ok(req)
    }

    /// Phase 2: the backend to try (an index into the pool); `None`
    /// leaves the choice to the balancing strategy. `tried` failed already.
    fn upstream_peer(&self, _ctx: &RequestCtx, _tried: &[usize]) -> Option<usize> {
        None
    }

    /// Phase 4: the backend's answer, before it is sent.
    fn response_filter(&self, _response: &mut Response<Body>, _ctx: &RequestCtx) {}

    /// Phase 5: the answer's head is final; `ctx.outcome` says how the
    /// request ended. Called for every request, answered locally or not.
    fn logging(&self, _ctx: &RequestCtx, _status: u16) {}

    /// A failure on the way: `Some` replaces the default answer (the
    /// failure is counted either way).
    fn failure(&self, _failure: Failure, _ctx: &RequestCtx) -> Option<Response<Body>> {
        None
    }
}

/// The gateway's detection as a hook: the guard screens the head and a
/// small form body, and learns from what backends answer.
pub struct GuardHook {
    guard: Arc<Guard>,
    /// How long a form body may take to arrive.
    body_timeout: Duration,
}

impl GuardHook {
    /// A hook over `guard`.
    pub fn new(guard: Arc<Guard>, body_timeout: Duration) -> Self {
        Self {
            guard,
            body_timeout,
        }
    }
}

#[async_trait::async_trait]
impl Hooks for GuardHook {
    fn request_filter(&self, req: &Request<Body>, ctx: &mut RequestCtx) -> Result<(), Stop> {
        let headers = req.headers();
        let facts = RequestFacts {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
            user_agent: ctx.user_agent.as_deref(),
            header_count: headers.len(),
            has_cookie: headers.contains_key(header::COOKIE),
            has_referer: headers.contains_key(header::REFERER),
            has_accept_language: headers.contains_key(header::ACCEPT_LANGUAGE),
            body_len: content_length(headers),
        };
        let screening = self.guard.screen(&GuardRequest {
            client: ctx.client,
            time: ctx.time,
            now_ms: ctx.now_ms,
            id: &ctx.id,
            facts: &facts,
        });
        match refuse(ctx, screening) {
            Some(answer) => Err(Stop::Answer(Box::new(answer))),
            None => Ok(()),
        }
    }

    /// A small `application/x-www-form-urlencoded` body (declared length
    /// within `max_body_bytes`) is read whole and screened before anything
    /// is forwarded; other bodies stream untouched.
    async fn request_body_filter(
        &self,
        req: Request<Body>,
        ctx: &mut RequestCtx,
    ) -> Result<Request<Body>, Stop> {
        let limit = self.guard.max_body_bytes();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        let declared = content_length(req.headers()).and_then(|n| usize::try_from(n).ok());
        let Some(length) = declared.filter(|&n| is_form && n > 0 && n <= limit) else {
            return Ok(req);
        };
        let (parts, body) = req.into_parts();
        let read = tokio::time::timeout(self.body_timeout, read_body(body, length)).await;
        let Ok(Some(bytes)) = read else {
            return Err(Stop::Fail(Failure::IncompleteBody));
        };
        let facts = RequestFacts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            ..RequestFacts::default()
        };
        let screening = self.guard.screen_form(
            &GuardRequest {
                client: ctx.client,
                time: ctx.time,
                now_ms: ctx.now_ms,
                id: &ctx.id,
                facts: &facts,
            },
            ctx.key,
            &bytes,
        );
        if let Some(screening) = screening
            && let Some(answer) = refuse(ctx, screening)
        {
            return Err(Stop::Answer(Box::new(answer)));
        }
        Ok(Request::from_parts(
            parts,
            Full::new(bytes).map_err(|e| match e {}).boxed_unsync(),
        ))
    }

    fn logging(&self, ctx: &RequestCtx, status: u16) {
        // Only what a backend answered tells about the client (not our own refusals).
        if let Some(key) = ctx.key
            && ctx.outcome == Outcome::forwarded
        {
            self.guard.response(key, status, ctx.now_ms);
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Records what the guard made of the request in `ctx`; the refusal to
/// send, if it calls for one.
fn refuse(ctx: &mut RequestCtx, screening: Screening) -> Option<Response<Body>> {
    if screening.key.is_some() {
        ctx.key = screening.key;
        ctx.score = screening.score;
    }
    ctx.prediction = screening.prediction;
    ctx.reason = screening.reason;
    let refusal = screening.refusal?;
    ctx.blocked = true;
    let forbidden = |ctx: &RequestCtx, text| local_response(http::StatusCode::FORBIDDEN, ctx, text);
    Some(match refusal {
        Refusal::Banned { flood, until } => {
            ctx.outcome = Outcome::banned;
            if flood {
                too_many_requests(ctx, until)
            } else {
                forbidden(ctx, "your address is banned")
            }
        }
        Refusal::Flood { until } => {
            ctx.outcome = Outcome::flood;
            too_many_requests(ctx, until)
        }
        Refusal::Attack => {
            ctx.outcome = Outcome::attack;
            forbidden(ctx, "request refused")
        }
        Refusal::Anomaly => {
            ctx.outcome = Outcome::anomaly;
            forbidden(ctx, "request refused")
        }
    })
}

/// 429 with `Retry-After`: the seconds left of the ban (at least 1).
fn too_many_requests(
    ctx: &RequestCtx,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Response<Body> {
    let mut response = local_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        ctx,
        "too many requests",
    );
    let seconds = until
        .map(|u| (u - ctx.time).num_seconds().max(1))
        .unwrap_or(60);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
    response
}

/// Reads a whole body of at most `limit` bytes; `None` when it fails or is longer.
async fn read_body(mut body: Body, limit: usize) -> Option<Bytes> {
    let mut buf = bytes::BytesMut::with_capacity(limit);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if buf.len() + data.len() > limit {
                return None;
            }
            buf.extend_from_slice(&data);
        }
    }
    Some(buf.freeze())
}
