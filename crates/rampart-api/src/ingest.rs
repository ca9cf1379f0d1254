//! What agents and gateways push: request-log records, events (findings,
//! decisions, log events, actions) and heartbeats, and what became of a
//! batch.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use rampart_core::{Decision, Event, Finding, Prediction, RequestRecord};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Most records in one batch.
pub const MAX_BATCH: usize = 50_000;

/// One request-log record as pushed (`POST /api/v1/logs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogRecordIn {
    /// When: RFC 3339 (`2025-11-25T10:31:02Z`), or without offset (UTC assumed).
    #[serde(deserialize_with = "flexible_time")]
    #[schema(value_type = String, example = "2025-11-25T10:31:02Z")]
    pub timestamp: DateTime<Utc>,
    /// Client address.
    #[schema(value_type = String, example = "203.0.113.50")]
    pub source_ip: IpAddr,
    /// Path requested.
    pub request_path: String,
    /// Method. Default GET.
    #[serde(default = "get_method")]
    pub request_method: String,
    /// User agent.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// NORMAL, DDoS, ATTACK or BLOCKED.
    #[schema(value_type = String, example = "DDoS")]
    pub prediction: Prediction,
    /// 0..1.
    pub confidence_score: f64,
    /// 0 or 1 (or false/true).
    #[serde(deserialize_with = "zero_one")]
    #[schema(value_type = u8)]
    pub is_blocked: bool,
    /// Status answered.
    pub response_status_code: u16,
    /// Time to answer, ms.
    #[serde(default)]
    pub response_time_ms: f64,
    /// Request body bytes.
    #[serde(default)]
    pub request_size_bytes: u64,
    /// The gateway that saw it. Default: the pushing token's name.
    #[serde(default)]
    pub gateway_id: Option<String>,
    /// The gateway's request id. Default: made up from the batch.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Response body bytes.
    #[serde(default)]
    pub response_size_bytes: u64,
    /// Why it was blocked or flagged.
    #[serde(default)]
    pub reason: Option<String>,
}

fn get_method() -> String {
    "GET".to_owned()
}

fn flexible_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    parse_time(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a time (RFC 3339, e.g. 2025-11-25T10:31:02Z)"
        ))
    })
}

/// Parses RFC 3339, or a time without offset as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|t| t.and_utc())
        })
}

fn zero_one<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        other => Err(serde::de::Error::custom(format!("{other} is not 0 or 1"))),
    }
}

impl LogRecordIn {
    /// Checks what deserialising cannot: ranges, path and method shape;
    /// the error names the field at fault.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_owned(), m));
        if !(0.0..=1.0).contains(&self.confidence_score) {
            return bad(
                "confidence_score",
                format!("{} is not within 0..1", self.confidence_score),
            );
        }
        if !(100..=599).contains(&self.response_status_code) {
            return bad(
                "response_status_code",
                format!("{} is not an HTTP status", self.response_status_code),
            );
        }
        if !self.request_path.starts_with('/') && self.request_path != "*" {
            return bad("request_path", "must start with /".to_owned());
        }
        if self.request_path.len() > 8192 {
            return bad("request_path", "longer than 8192 bytes".to_owned());
        }
        if self.request_method.is_empty()
            || self.request_method.len() > 16
            || !self.request_method.bytes().all(|b| b.is_ascii_alphabetic())
        {
            return bad(
                "request_method",
                format!("{:?} is not a method", self.request_method),
            );
        }
        if !self.response_time_ms.is_finite() || self.response_time_ms < 0.0 {
            return bad("response_time_ms", "must be a number ≥ 0".to_owned());
        }
        Ok(())
    }

    /// The record to store: the gateway defaults to the pushing
    /// principal, the request id to `{batch_tag}-{index}`.
    pub fn into_record(self, principal: &str, batch_tag: &str, index: usize) -> RequestRecord {
        RequestRecord {
            time: self.timestamp,
            gateway: self.gateway_id.unwrap_or_else(|| principal.to_owned()),
            request_id: self
                .request_id
                .unwrap_or_else(|| format!("{batch_tag}-{index}")),
            client: self.source_ip,
            method: self.request_method.to_ascii_uppercase(),
            path: self.request_path,
            user_agent: self.user_agent,
            status: self.response_status_code,
            request_bytes: self.request_size_bytes,
            response_bytes: self.response_size_bytes,
            latency_ms: self.response_time_ms,
            score: self.confidence_score,
            prediction: self.prediction,
            blocked: self.is_blocked,
            reason: self.reason,
            backend: None,
        }
    }
}

/// A record refused, by its index in the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejected {
    /// 0-based position in the array.
    pub index: usize,
    /// The field at fault (`.` for the record itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// The upload's id (in `upload_batches`).
    pub batch_id: i64,
    /// Records stored.
    pub accepted: u64,
    /// Records refused.
    pub rejected: u64,
    /// Why, by index (at most 100 listed).
    pub errors: Vec<Rejected>,
}

/// One pushed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventIn {
    /// A finding that led to no decision (with why).
    Finding {
        /// The finding.
        #[schema(value_type = Object)]
        finding: Finding,
        /// Why no decision followed.
        #[serde(default)]
        note: Option<String>,
    },
    /// A decision made by the node (a ban it enforces already): stored and
    /// streamed to the rest of the fleet.
    Decision {
        /// The decision, with its findings.
        #[schema(value_type = Object)]
        decision: Decision,
    },
    /// A parsed log event.
    Event {
        /// The event.
        #[schema(value_type = Object)]
        event: Event,
    },
    /// What an actuator did.
    Action {
        /// When.
        #[schema(value_type = String)]
        time: DateTime<Utc>,
        /// The decision acted on, when known.
        #[serde(default)]
        decision_id: Option<i64>,
        /// ban, unban, alert…
        action: String,
        /// The target.
        target: String,
        /// Whether it worked.
        ok: bool,
        /// Details.
        #[serde(default)]
        detail: String,
    },
}

/// A heartbeat (`POST /api/v1/heartbeat`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatIn {
    /// The node's id. Default: the token's name.
    #[serde(default)]
    pub id: Option<String>,
    /// `agent` or `gateway`.
    pub kind: String,
    /// rampart version.
    pub version: String,
    /// When the node started.
    #[schema(value_type = String)]
    pub started_at: DateTime<Utc>,
    /// Log lines or requests processed since it started.
    #[serde(default)]
    pub processed: u64,
    /// Bans made or requests blocked since it started.
    #[serde(default)]
    pub blocked: u64,
}

impl LogRecordIn {
    /// A request-log record as a gateway pushes it (values kept within the
    /// ranges [`LogRecordIn::check`] accepts).
    pub fn of(r: &RequestRecord) -> Self {
        Self {
            timestamp: r.time,
            source_ip: r.client,
            request_path: r.path.clone(),
            request_method: r.method.clone(),
            user_agent: r.user_agent.clone(),
            prediction: r.prediction,
            confidence_score: r.score.clamp(0.0, 1.0),
            is_blocked: r.blocked,
            response_status_code: r.status.clamp(100, 599),
            response_time_ms: if r.latency_ms.is_finite() {
                r.latency_ms.max(0.0)
            } else {
                0.0
            },
            request_size_bytes: r.request_bytes,
            gateway_id: Some(r.gateway.clone()),
            request_id: Some(r.request_id.clone()),
            response_size_bytes: r.response_bytes,
            reason: r.reason.clone(),
        }
    }
}
