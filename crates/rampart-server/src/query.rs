//! Reading: the request log, statistics, findings, fleet members.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use rampart_core::Prediction;
use rampart_store::{AgentRecord, RequestFilter, Role, StoredFinding};

use crate::access::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use rampart_api::RequestOut;
use rampart_api::{ActionOut, AgentOut, HourOut, RequestPageOut, Share, StatsOut, TopIp, TopPath};

/// Query parameters, parsed one by one so an error names its parameter.
pub struct Params(HashMap<String, String>);

impl Params {
    /// Wraps the raw parameters.
    pub fn new(raw: HashMap<String, String>) -> Self {
        Self(raw)
    }

    /// A parameter parsed with `parse`, or `None` when absent or empty.
    pub fn get<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("{v:?} is not {what}"))),
        }
    }

    /// An integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        self.get(name, &format!("an integer from {min} to {max}"), |v| {
            v.parse::<i64>().ok().filter(|n| (min..=max).contains(n))
        })
    }

    /// A boolean parameter (`1`/`0`, `true`/`false`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name, "0, 1, true or false", |v| match v {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => None,
        })
    }

    /// An address parameter.
    pub fn ip(&self, name: &str) -> Result<Option<IpAddr>, ApiError> {
        self.get(name, "an IP address", |v| v.parse().ok())
    }

    /// A text parameter.
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// `hours` (1..=8760, default 24) as the window's start.
    pub fn since(&self, now: DateTime<Utc>) -> Result<(i64, DateTime<Utc>), ApiError> {
        let hours = self.int("hours", 1, 8760)?.unwrap_or(24);
        Ok((hours, now - Duration::hours(hours)))
    }
}

async fn page_of(
    state: &AppState,
    params: &Params,
    blocked_only: bool,
) -> Result<RequestPageOut, ApiError> {
    let (_, since) = params.since(Utc::now())?;
    let page = params.int("page", 1, 1_000_000)?.unwrap_or(1);
    let limit = params.int("limit", 1, 1000)?.unwrap_or(100);
    let filter = RequestFilter {
        since: Some(since),
        client: params.ip("source_ip")?,
        path_prefix: params.text("path"),
        prediction: params.get(
            "prediction",
            "NORMAL, DDoS, ATTACK or BLOCKED",
            Prediction::from_name,
        )?,
        blocked: if blocked_only {
            Some(true)
        } else {
            params.flag("is_blocked")?
        },
        status: params
            .int("status", 100, 599)?
            .map(|s| u16::try_from(s).unwrap_or_default()),
        gateway: params.text("gateway_id"),
    };
    let (page, limit) = (page as u64, limit as u32);
    let result = state
        .store
        .query_requests(&filter, (page - 1) * u64::from(limit), limit)
        .await?;
    Ok(RequestPageOut {
        total: result.total,
        page,
        limit,
        pages: result.total.div_ceil(u64::from(limit)),
        requests: result
            .requests
            .into_iter()
            .map(|s| RequestOut::new(s.id, s.record))
            .collect(),
    })
}

/// The request log, filtered and paginated.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests",
    params(("hours" = Option<i64>, Query, description = "window, 1..8760 hours (default 24)"),
           ("source_ip" = Option<String>, Query), ("path" = Option<String>, Query, description = "path prefix"),
           ("prediction" = Option<String>, Query), ("is_blocked" = Option<u8>, Query),
           ("status" = Option<u16>, Query), ("gateway_id" = Option<String>, Query),
           ("page" = Option<u64>, Query, description = "from 1"), ("limit" = Option<u32>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = RequestPageOut), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn requests(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<RequestPageOut>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(page_of(&state, &Params::new(raw), false).await?))
}

/// Blocked requests only (same parameters as `/requests`).
#[utoipa::path(get, path = "/api/v1/blocked", tag = "requests",
    params(("hours" = Option<i64>, Query), ("source_ip" = Option<String>, Query), ("page" = Option<u64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = RequestPageOut), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn blocked(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<RequestPageOut>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(page_of(&state, &Params::new(raw), true).await?))
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Statistics of the request log (and findings per scenario).
#[utoipa::path(get, path = "/api/v1/stats", tag = "requests",
    params(("hours" = Option<i64>, Query, description = "window, 1..8760 hours (default 24)"),
           ("top" = Option<u32>, Query, description = "length of the top lists, 1..100 (default 10)")),
    responses((status = 200, body = StatsOut), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<StatsOut>, ApiError> {
    principal.require(Role::Viewer)?;
    let params = Params::new(raw);
    let (hours, since) = params.since(Utc::now())?;
    let top = params.int("top", 1, 100)?.unwrap_or(10);
    let s = state.store.request_stats(since, top as u32).await?;
    let total = s.total;
    let pct = |n: u64| {
        if total == 0 {
            0.0
        } else {
            round(n as f64 * 100.0 / total as f64, 2)
        }
    };
    let count_of = |p: Prediction| {
        s.by_prediction
            .iter()
            .find(|(q, _)| *q == p)
            .map_or(0, |(_, n)| *n)
    };
    Ok(Json(StatsOut {
        time_range: format!("last {hours} hours"),
        total_requests: total,
        blocked_requests: s.blocked,
        normal_requests: count_of(Prediction::Normal),
        blocking_rate: if total == 0 {
            0.0
        } else {
            round(s.blocked as f64 / total as f64, 4)
        },
        avg_confidence: if total == 0 {
            0.0
        } else {
            round(s.score_sum / total as f64, 4)
        },
        requests_per_second: round(total as f64 / (hours as f64 * 3600.0), 2),
        top_attacking_ips: s
            .top_ips
            .iter()
            .map(|t| TopIp {
                ip: t.ip.to_string(),
                count: t.count,
                avg_confidence: round(t.avg_confidence, 4),
            })
            .collect(),
        top_targeted_paths: s
            .top_paths
            .iter()
            .map(|t| TopPath {
                path: t.path.clone(),
                count: t.count,
            })
            .collect(),
        by_hour: s
            .by_hour
            .iter()
            .map(|h| HourOut {
                hour: h.hour,
                requests: h.requests,
                blocked: h.blocked,
            })
            .collect(),
        by_prediction: s
            .by_prediction
            .iter()
            .map(|(p, n)| {
                (
                    p.as_str().to_owned(),
                    Share {
                        count: *n,
                        percentage: pct(*n),
                    },
                )
            })
            .collect(),
        by_scenario: s.by_scenario.iter().cloned().collect(),
    }))
}

/// The status of a member whose last heartbeat was at `last_seen`.
pub fn member_status(
    state: &AppState,
    last_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> &'static str {
    let age = (now - last_seen).to_std().unwrap_or_default();
    if age >= state.config.down_after.0 {
        "down"
    } else if age >= state.config.stale_after.0 {
        "stale"
    } else {
        "healthy"
    }
}

/// A member as the API shows it.
pub fn agent_out(state: &AppState, a: AgentRecord, now: DateTime<Utc>) -> AgentOut {
    AgentOut {
        status: member_status(state, a.last_seen, now).to_owned(),
        uptime_seconds: (a.last_seen - a.started_at).num_seconds().max(0),
        id: a.id,
        kind: a.kind,
        ip: a.address,
        version: a.version,
        requests_processed: a.processed,
        blocked_count: a.blocked,
        last_seen: a.last_seen,
    }
}

/// The fleet: agents and gateways.
#[utoipa::path(get, path = "/api/v1/agents", tag = "fleet", responses((status = 200, body = Vec<AgentOut>)))]
pub async fn agents(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<AgentOut>>, ApiError> {
    principal.require(Role::Viewer)?;
    let now = Utc::now();
    let list = state.store.list_agents().await?;
    Ok(Json(
        list.into_iter()
            .map(|a| agent_out(&state, a, now))
            .collect(),
    ))
}

/// Recent findings.
#[utoipa::path(get, path = "/api/v1/findings", tag = "decisions",
    params(("limit" = Option<u32>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = Vec<Object>)))]
pub async fn findings(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Vec<StoredFinding>>, ApiError> {
    principal.require(Role::Viewer)?;
    let limit = Params::new(raw).int("limit", 1, 1000)?.unwrap_or(100);
    Ok(Json(state.store.recent_findings(limit as u32).await?))
}

/// Recent enforcement actions (firewall bans and unbans) across the fleet.
#[utoipa::path(get, path = "/api/v1/actions", tag = "fleet",
    params(("limit" = Option<u32>, Query, description = "1..1000, default 100")),
    responses((status = 200, body = Vec<ActionOut>)))]
pub async fn actions(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ActionOut>>, ApiError> {
    principal.require(Role::Viewer)?;
    let limit = Params::new(raw).int("limit", 1, 1000)?.unwrap_or(100);
    let list = state.store.recent_actions(limit as u32).await?;
    Ok(Json(
        list.into_iter()
            .map(|(id, a)| ActionOut {
                id,
                time: a.time,
                node: a.node,
                action: a.action,
                target: a.target,
                ok: a.ok,
                detail: a.detail,
            })
            .collect(),
    ))
}
