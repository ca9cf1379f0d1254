//! What one request carries through the gateway's phases, and the body
//! type of everything it sends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use rampart_core::Prediction;

use crate::metrics::Outcome;

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway sends and every request it forwards.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What one request carries through the phases.
#[derive(Debug)]
pub struct RequestCtx {
    /// The id in `X-Request-Id`, block pages and the request log.
    pub id: String,
    /// When the head arrived.
    pub time: DateTime<Utc>,
    /// Monotonic time of arrival.
    pub start: Instant,
    /// Milliseconds since the gateway started, at arrival (for rates).
    pub now_ms: u64,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client, after trusted-proxy resolution.
    pub client: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub peer_trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// Score given by detection.
    pub score: f64,
    /// What the gateway made of it.
    pub prediction: Prediction,
    /// Refused (not just flagged).
    pub blocked: bool,
    /// Why refused or flagged.
    pub reason: Option<String>,
    /// The backend that served it.
    pub backend: Option<String>,
    /// The client's key in the behaviour table.
    pub key: Option<ipnet::IpNet>,
    /// How the request ended, for metrics.
    pub outcome: Outcome,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) user_agent: Option<String>,
    pub(crate) request_bytes: Arc<AtomicU64>,
}

impl RequestCtx {
    /// The request's method, as sent.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request's path, as sent (no query).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A short text answer made by the gateway itself, with the request id.
pub fn local_response(status: StatusCode, ctx: &RequestCtx, message: &str) -> Response<Body> {
    let text = format!(
        "{} {}: {message} (request id {})\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        ctx.id
    );
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&ctx.id) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    response
}
