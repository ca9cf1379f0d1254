//! Reading: the request log, statistics, fleet members, actions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rampart_core::{Prediction, RequestRecord};
use serde::{Deserialize, Serialize};

/// A request-log record as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestOut {
    /// Row id.
    pub id: i64,
    /// When.
    #[schema(value_type = String)]
    pub timestamp: DateTime<Utc>,
    /// Client address.
    pub source_ip: String,
    /// Path.
    pub request_path: String,
    /// Method.
    pub request_method: String,
    /// User agent.
    pub user_agent: Option<String>,
    /// NORMAL, DDoS, ATTACK or BLOCKED.
    pub prediction: Prediction,
    /// The client's score at this request, 0..1.
    pub confidence_score: f64,
    /// 1 when refused.
    pub is_blocked: u8,
    /// Status answered.
    pub response_status_code: u16,
    /// Time to answer, ms.
    pub response_time_ms: f64,
    /// Request body bytes.
    pub request_size_bytes: u64,
    /// The gateway.
    pub gateway_id: String,
    /// The gateway's request id.
    pub request_id: String,
    /// Why refused or flagged.
    pub reason: Option<String>,
}

impl RequestOut {
    /// The API form of request-log record `id`.
    pub fn new(id: i64, r: RequestRecord) -> Self {
        Self {
            id,
            timestamp: r.time,
            source_ip: r.client.to_string(),
            request_path: r.path,
            request_method: r.method,
            user_agent: r.user_agent,
            prediction: r.prediction,
            confidence_score: r.score,
            is_blocked: u8::from(r.blocked),
            response_status_code: r.status,
            response_time_ms: r.latency_ms,
            request_size_bytes: r.request_bytes,
            gateway_id: r.gateway,
            request_id: r.request_id,
            reason: r.reason,
        }
    }
}

/// One page of the request log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestPageOut {
    /// Records matching, all pages.
    pub total: u64,
    /// This page (from 1).
    pub page: u64,
    /// Records per page.
    pub limit: u32,
    /// Number of pages.
    pub pages: u64,
    /// The records, newest first.
    pub requests: Vec<RequestOut>,
}

/// A client among the top attackers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopIp {
    /// Address.
    pub ip: String,
    /// Non-normal requests.
    pub count: u64,
    /// Their mean score.
    pub avg_confidence: f64,
}

/// A path among the most targeted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopPath {
    /// Path.
    pub path: String,
    /// Non-normal requests for it.
    pub count: u64,
}

/// Requests of one hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HourOut {
    /// Start of the hour.
    #[schema(value_type = String)]
    pub hour: DateTime<Utc>,
    /// Requests.
    pub requests: u64,
    /// Blocked among them.
    pub blocked: u64,
}

/// Count and share of one prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Share {
    /// Requests.
    pub count: u64,
    /// Percent of all requests.
    pub percentage: f64,
}

/// Statistics over the last `hours`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatsOut {
    /// `last N hours`.
    pub time_range: String,
    /// Requests.
    pub total_requests: u64,
    /// Blocked requests.
    pub blocked_requests: u64,
    /// NORMAL requests.
    pub normal_requests: u64,
    /// blocked / total (0..1).
    pub blocking_rate: f64,
    /// Mean score.
    pub avg_confidence: f64,
    /// total / window seconds.
    pub requests_per_second: f64,
    /// Clients with most non-normal requests.
    pub top_attacking_ips: Vec<TopIp>,
    /// Paths with most non-normal requests.
    pub top_targeted_paths: Vec<TopPath>,
    /// Per hour, oldest first.
    pub by_hour: Vec<HourOut>,
    /// Per prediction.
    pub by_prediction: BTreeMap<String, Share>,
    /// Findings per scenario.
    pub by_scenario: BTreeMap<String, u64>,
}

/// A fleet member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentOut {
    /// Its id.
    pub id: String,
    /// `agent` or `gateway`.
    pub kind: String,
    /// Address it reports from.
    pub ip: String,
    /// rampart version.
    pub version: String,
    /// healthy, stale or down (by the age of its last heartbeat).
    pub status: String,
    /// Seconds since it started, as of its last heartbeat.
    pub uptime_seconds: i64,
    /// Log lines or requests processed.
    pub requests_processed: u64,
    /// Bans made or requests blocked.
    pub blocked_count: u64,
    /// Last heartbeat.
    #[schema(value_type = String)]
    pub last_seen: DateTime<Utc>,
}

/// What an actuator did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionOut {
    /// Row id.
    pub id: i64,
    /// When.
    #[schema(value_type = String)]
    pub time: DateTime<Utc>,
    /// The node that did it.
    pub node: String,
    /// ban, unban…
    pub action: String,
    /// Address or prefix.
    pub target: String,
    /// Whether it worked.
    pub ok: bool,
    /// Backend, or the error.
    pub detail: String,
}
