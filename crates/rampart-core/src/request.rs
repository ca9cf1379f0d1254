//! Requests as a gateway saw them: what it made of each one, for the
//! request log, the API and the dashboard.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a gateway made of a request, in the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub enum Prediction {
    /// Forwarded; nothing wrong seen.
    #[serde(rename = "NORMAL")]
    Normal,
    /// Part of a flood (rate or behaviour score).
    #[serde(rename = "DDoS")]
    Ddos,
    /// Matched a request signature (SQLi, XSS, traversal, scanner, probe).
    #[serde(rename = "ATTACK")]
    Attack,
    /// Refused because the client was already banned.
    #[serde(rename = "BLOCKED")]
    Blocked,
}

impl Prediction {
    /// The stored name (`NORMAL`, `DDoS`, `ATTACK`, `BLOCKED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Prediction::Normal => "NORMAL",
            Prediction::Ddos => "DDoS",
            Prediction::Attack => "ATTACK",
            Prediction::Blocked => "BLOCKED",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "NORMAL" => Some(Prediction::Normal),
            "DDoS" => Some(Prediction::Ddos),
            "ATTACK" => Some(Prediction::Attack),
            "BLOCKED" => Some(Prediction::Blocked),
            _ => None,
        }
    }
}

/// One request handled by a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When the request head arrived.
    pub time: DateTime<Utc>,
    /// The gateway that handled it.
    pub gateway: String,
    /// The id the gateway gave it (also in `X-Request-Id` and block pages).
    pub request_id: String,
    /// The client (after trusted-proxy resolution).
    pub client: std::net::IpAddr,
    /// Method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// User agent, if sent.
    pub user_agent: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Request body bytes received (Content-Length, or counted when streamed).
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
    /// From request head to response head, in milliseconds.
    pub latency_ms: f64,
    /// The client's anomaly score at this request, 0..1.
    pub score: f64,
    /// What the gateway made of it.
    pub prediction: Prediction,
    /// Whether the gateway refused it (in monitor mode: would have).
    pub blocked: bool,
    /// Why it was refused or flagged, if it was.
    pub reason: Option<String>,
    /// The backend that served it.
    pub backend: Option<String>,
}
