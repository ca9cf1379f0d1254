//! What the central server keeps besides decisions: pushed events, the
//! fleet's members, enforcement actions, upload batches, whitelist entries,
//! and the shapes of request-log queries and statistics.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Prediction, RequestRecord};

/// Something an agent or gateway reported (a finding, a log event, a
/// server login failure), kept as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Who reported it (agent or gateway id, or `server`).
    pub node: String,
    /// What it is (`finding`, `event`, `login_failure`…).
    pub kind: String,
    /// The address it concerns, if any.
    pub source_ip: Option<std::net::IpAddr>,
    /// A scenario or label, if any.
    pub label: Option<String>,
    /// The whole item as JSON.
    pub payload: serde_json::Value,
}

/// A member of the fleet, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its id (unique; the node's configured name).
    pub id: String,
    /// `agent` or `gateway`.
    pub kind: String,
    /// The address it connected from.
    pub address: String,
    /// rampart version it runs.
    pub version: String,
    /// When the node started (uptime = last_seen - started_at).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// Requests (gateway) or log lines (agent) processed since it started.
    pub processed: u64,
    /// Requests blocked or bans made since it started.
    pub blocked: u64,
}

/// Something an actuator did (or failed to do) about a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// When.
    pub time: DateTime<Utc>,
    /// Which node did it.
    pub node: String,
    /// The decision acted on, if known.
    pub decision_id: Option<i64>,
    /// `ban`, `unban`, `alert`…
    pub action: String,
    /// The target.
    pub target: String,
    /// Whether it worked.
    pub ok: bool,
    /// What happened (backend, error).
    pub detail: String,
}

/// One `POST /logs` or `POST /events` upload, as accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadBatch {
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// Who sent it (token or user name).
    pub principal: String,
    /// `logs` or `events`.
    pub kind: String,
    /// Items stored.
    pub accepted: u64,
    /// Items refused (invalid).
    pub rejected: u64,
    /// Why items were refused: `[{index, field, message}]`.
    pub errors: serde_json::Value,
}

/// A whitelist entry kept in the store (besides those in configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhitelistEntry {
    /// Row id.
    pub id: i64,
    /// The network never banned.
    pub target: IpNet,
    /// Why.
    pub comment: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Which request-log records to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFilter {
    /// Only records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this client.
    pub client: Option<std::net::IpAddr>,
    /// Only paths starting with this.
    pub path_prefix: Option<String>,
    /// Only this prediction.
    pub prediction: Option<Prediction>,
    /// Only blocked (`Some(true)`) or only forwarded (`Some(false)`).
    pub blocked: Option<bool>,
    /// Only this status.
    pub status: Option<u16>,
    /// Only this gateway.
    pub gateway: Option<String>,
}

/// A request-log record with its row id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    /// Row id (increasing with insertion).
    pub id: i64,
    /// The record.
    pub record: RequestRecord,
}

/// One page of a request-log query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPage {
    /// Records matching the filter, all pages together.
    pub total: u64,
    /// This page, newest first.
    pub requests: Vec<StoredRequest>,
}

/// Requests of one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourCount {
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Requests in it.
    pub requests: u64,
    /// Blocked among them.
    pub blocked: u64,
}

/// A client that drew non-normal predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpCount {
    /// The client.
    pub ip: std::net::IpAddr,
    /// Its non-normal requests.
    pub count: u64,
    /// Their mean score (0..1).
    pub avg_confidence: f64,
}

/// A path targeted by non-normal requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathCount {
    /// The path.
    pub path: String,
    /// Non-normal requests for it.
    pub count: u64,
}

/// Request-log statistics over a window.
///
/// Totals and `by_prediction` are exact to the millisecond; `by_hour`,
/// `top_ips` and `top_paths` are kept per whole hour, so they cover the
/// hours the window touches.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RequestStats {
    /// All requests.
    pub total: u64,
    /// Blocked requests.
    pub blocked: u64,
    /// Sum of scores (mean = score_sum / total).
    pub score_sum: f64,
    /// Requests per prediction: those with any, in the order NORMAL, DDoS,
    /// ATTACK, BLOCKED.
    pub by_prediction: Vec<(Prediction, u64)>,
    /// Requests per hour, oldest first.
    pub by_hour: Vec<HourCount>,
    /// Clients with most non-normal requests, most first (ties by address
    /// text, bytewise).
    pub top_ips: Vec<IpCount>,
    /// Paths with most non-normal requests, most first (ties by path, bytewise).
    pub top_paths: Vec<PathCount>,
    /// Findings per scenario (label) in the window, most first (ties by label).
    pub by_scenario: Vec<(String, u64)>,
}

/// An address that was banned, summed over its decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockedIp {
    /// The banned network.
    pub target: IpNet,
    /// Its first ban.
    pub first_seen: DateTime<Utc>,
    /// Its latest ban.
    pub last_blocked: DateTime<Utc>,
    /// How many bans (dry-run excluded).
    pub count: u64,
    /// Mean score of the findings behind them (0 when none).
    pub avg_score: f64,
    /// Whether a ban is in force now.
    pub active: bool,
}
