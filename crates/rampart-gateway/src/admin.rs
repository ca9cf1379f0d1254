//! The admin listener: health, statistics, metrics and ban management.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | backends and their state; 200 when one is healthy, else 503 |
//! | `GET /stats` | totals, per-backend distribution and health, clients, bans, request log |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /blocked-ips` | bans in force at the gateway |
//! | `POST /unblock/{ip}` | lifts every ban on the address or prefix (404 when none) |
//! | `POST /block/{ip}?minutes=N` | bans it (default `gateway.ban_for`); 409 for a whitelisted address |
//!
//! Errors are `{"error": {"code": "...", "message": "..."}}`, mapped to
//! statuses in [`AdminError`]'s one `IntoResponse`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::metrics::Outcome;
use crate::shared::Shared;

/// What can go wrong on the admin listener.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The path's address is not an address or CIDR.
    #[error("{0}")]
    BadAddress(String),
    /// A query parameter is out of range.
    #[error("{0}")]
    BadParameter(String),
    /// Nothing to unblock.
    #[error("{0} is not blocked")]
    NotBlocked(String),
    /// The address is whitelisted.
    #[error("{0} is whitelisted and cannot be blocked")]
    Whitelisted(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] rampart_store::StoreError),
}

impl AdminError {
    fn code(&self) -> (&'static str, StatusCode) {
        match self {
            AdminError::BadAddress(_) => ("bad_address", StatusCode::BAD_REQUEST),
            AdminError::BadParameter(_) => ("bad_parameter", StatusCode::BAD_REQUEST),
            AdminError::NotBlocked(_) => ("not_blocked", StatusCode::NOT_FOUND),
            AdminError::Whitelisted(_) => ("whitelisted", StatusCode::CONFLICT),
            AdminError::Store(_) => ("store_error", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (code, status) = self.code();
        (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response()
    }
}

/// The admin routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/blocked-ips", get(blocked_ips))
        .route("/unblock/{ip}", post(unblock))
        .route("/block/{ip}", post(block))
        .with_state(shared)
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let mut backends = Vec::new();
    for b in shared.pool.backends() {
        backends.push(b.status().await);
    }
    let healthy = backends.iter().filter(|b| b.healthy).count();
    let status = if healthy == backends.len() {
        "ok"
    } else if healthy > 0 {
        "degraded"
    } else {
        "down"
    };
    let code = if healthy > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": status,
            "gateway": shared.id,
            "healthy_backends": healthy,
            "backends": backends,
        })),
    )
        .into_response()
}

#[derive(Serialize)]
struct BackendShare {
    url: String,
    healthy: bool,
    requests: u64,
    share: f64,
    failures: u64,
    in_flight: usize,
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let m = &shared.metrics;
    let count = |o| m.requests_with(o);
    let forwarded = count(Outcome::forwarded);
    let refused = [
        ("banned", count(Outcome::banned)),
        ("flood", count(Outcome::flood)),
        ("attack", count(Outcome::attack)),
        ("anomaly", count(Outcome::anomaly)),
    ];
    let errors = [
        ("bad_gateway", count(Outcome::bad_gateway)),
        ("unavailable", count(Outcome::unavailable)),
        ("timeout", count(Outcome::timeout)),
    ];
    let blocked: u64 = refused.iter().map(|(_, n)| n).sum();
    let failed: u64 = errors.iter().map(|(_, n)| n).sum();
    let total = forwarded + blocked + failed;
    let mut backends = Vec::new();
    let sent: u64 = shared
        .pool
        .backends()
        .iter()
        .map(|b| b.status_requests())
        .sum();
    for b in shared.pool.backends() {
        let s = b.status().await;
        backends.push(BackendShare {
            share: if sent == 0 {
                0.0
            } else {
                s.requests as f64 / sent as f64
            },
            url: s.url,
            healthy: s.healthy,
            requests: s.requests,
            failures: s.failures,
            in_flight: s.in_flight,
        });
    }
    let now = Utc::now();
    Json(json!({
        "gateway": shared.id,
        "mode": shared.config.mode,
        "started_at": shared.started_at.to_rfc3339(),
        "uptime_seconds": (now - shared.started_at).num_seconds(),
        "requests": {
            "total": total,
            "forwarded": forwarded,
            "blocked": blocked,
            "refused": refused.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "errors": errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "blocking_rate": if total == 0 { 0.0 } else { blocked as f64 / total as f64 },
        },
        "backends": backends,
        "tracked_clients": shared.guard.tracked(),
        "banned": shared.guard.bans().list(now).len(),
        "request_log": {
            "written": m.log_written.get(),
            "dropped": m.log_dropped.get(),
        },
        "connections": {
            "accepted": m.connections.get(),
            "open": m.open_connections.get(),
        },
    }))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn blocked_ips(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let now = Utc::now();
    let bans: Vec<serde_json::Value> = shared
        .guard
        .bans()
        .list(now)
        .into_iter()
        .map(|b| {
            json!({
                "ip": rampart_core::addr::display_net(&b.target),
                "target": b.target.to_string(),
                "blocked_at": b.at.to_rfc3339(),
                "until": b.until.map(|u| u.to_rfc3339()),
                "remaining_seconds": b.until.map(|u| (u - now).num_seconds().max(0)),
                "reason": b.reason,
                "origin": b.origin,
                "kind": b.kind,
                "decision_id": b.decision_id,
                "dry_run": b.dry_run,
            })
        })
        .collect();
    Json(json!({ "count": bans.len(), "blocked": bans }))
}

fn parse_target(text: &str) -> Result<ipnet::IpNet, AdminError> {
    rampart_core::parse_net(text).map_err(|e| AdminError::BadAddress(e.to_string()))
}

async fn unblock(
    State(shared): State<Arc<Shared>>,
    Path(ip): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let target = parse_target(&ip)?;
    let (ids, removed) = shared.guard.operator_unban(target, "gateway-admin").await?;
    if ids.is_empty() && removed == 0 {
        return Err(AdminError::NotBlocked(rampart_core::addr::display_net(
            &target,
        )));
    }
    Ok(Json(json!({
        "unblocked": rampart_core::addr::display_net(&target),
        "decisions": ids,
    })))
}

#[derive(Debug, Deserialize)]
struct BlockQuery {
    minutes: Option<u64>,
}

async fn block(
    State(shared): State<Arc<Shared>>,
    Path(ip): Path<String>,
    Query(query): Query<BlockQuery>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let target = parse_target(&ip)?;
    if let Some(m) = query.minutes
        && !(1..=525_600).contains(&m)
    {
        return Err(AdminError::BadParameter(
            "minutes: between 1 and 525600 (a year)".into(),
        ));
    }
    if shared.guard.whitelist().overlaps(&target) {
        return Err(AdminError::Whitelisted(rampart_core::addr::display_net(
            &target,
        )));
    }
    let minutes = query.minutes.map(|m| Duration::from_secs(m * 60));
    let ban = shared
        .guard
        .operator_ban(target, minutes, "gateway-admin")
        .await?;
    Ok(Json(json!({
        "blocked": rampart_core::addr::display_net(&target),
        "until": ban.until.map(|u| u.to_rfc3339()),
        "decision_id": ban.decision_id,
    })))
}
