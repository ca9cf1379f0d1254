//! Decisions: list, ban, unban, the decision stream the fleet follows,
//! the whitelist, and banned addresses summed up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use rampart_core::Decision;
use rampart_core::addr::display_net;
use rampart_store::{ChangeKind, DecisionQuery, Role, StoredDecision};

use rampart_api::{
    BanRequest, BlockedIpOut, DecisionOut, StreamChange, StreamOut, Unbanned, WhitelistIn,
    WhitelistOut,
};

use crate::access::Principal;
use crate::error::{ApiError, ApiJson};
use crate::metrics::ActionLabel;
use crate::query::Params;
use crate::state::AppState;

/// The API form of a stored decision, `active` as of `now`.
pub fn decision_out(s: &StoredDecision, now: DateTime<Utc>) -> DecisionOut {
    DecisionOut::new(
        s.id,
        &s.decision,
        s.is_active(now),
        s.revoked_at,
        s.revoked_by.clone(),
    )
}

/// An address or CIDR.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

/// Whether the store has this very decision already (a push retried after
/// its answer was lost).
pub async fn already_known(state: &AppState, decision: &Decision) -> Result<bool, ApiError> {
    let same = state
        .store
        .query_decisions(&DecisionQuery {
            target: Some(decision.target),
            limit: Some(50),
            ..DecisionQuery::default()
        })
        .await?;
    // The store keeps times to the millisecond; a pushed `at` has the
    // node's clock precision.
    Ok(same.iter().any(|s| {
        s.decision.target == decision.target
            && s.decision.at.timestamp_millis() == decision.at.timestamp_millis()
            && s.decision.origin == decision.origin
    }))
}

/// Decisions, newest first.
#[utoipa::path(get, path = "/api/v1/decisions", tag = "decisions",
    params(("active" = Option<bool>, Query, description = "only bans in force"),
           ("ip" = Option<String>, Query, description = "address or CIDR: decisions on it or inside it"),
           ("scenario" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1..10000, default 100")),
    responses((status = 200, body = Vec<DecisionOut>), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Vec<DecisionOut>>, ApiError> {
    principal.require_machine(Role::Viewer)?;
    let p = Params::new(raw);
    let now = Utc::now();
    let query = DecisionQuery {
        active_at: p.flag("active")?.filter(|a| *a).map(|_| now),
        target: p.get("ip", "an IP address or CIDR", |v| parse_net(v).ok())?,
        scenario: p.text("scenario"),
        dry_run: p.flag("dry_run")?,
        limit: Some(p.int("limit", 1, 10_000)?.unwrap_or(100) as u32),
    };
    let rows = state.store.query_decisions(&query).await?;
    Ok(Json(rows.iter().map(|s| decision_out(s, now)).collect()))
}

/// Ban an address or prefix (operator); prefixes wider than /8 (IPv4) or
/// /16 (IPv6) are refused.
#[utoipa::path(post, path = "/api/v1/decisions", tag = "decisions", request_body = BanRequest,
    responses((status = 201, body = DecisionOut), (status = 400, body = rampart_api::ErrorBody),
              (status = 403, body = rampart_api::ErrorBody), (status = 409, body = rampart_api::ErrorBody)))]
pub async fn ban(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<BanRequest>,
) -> Result<(StatusCode, Json<DecisionOut>), ApiError> {
    principal.require(Role::Operator)?;
    let target = parse_net(body.ip.trim()).map_err(|m| ApiError::field("ip", m))?;
    let widest = if target.addr().is_ipv4() { 8 } else { 16 };
    if target.prefix_len() < widest {
        return Err(ApiError::field(
            "ip",
            format!(
                "{} is wider than /{widest}: refusing to ban that many addresses",
                display_net(&target)
            ),
        ));
    }
    let minutes = body.duration_minutes.unwrap_or(240);
    if !(1..=525_600).contains(&minutes) {
        return Err(ApiError::field(
            "duration_minutes",
            format!("{minutes} is not within 1..525600"),
        ));
    }
    if !body.force
        && let Some(entry) =
            state.store.list_whitelist().await?.into_iter().find(|w| {
                w.target.contains(&target.network()) || target.contains(&w.target.network())
            })
    {
        return Err(ApiError::Conflict(format!(
            "{} is whitelisted ({}: {}); send \"force\": true to ban anyway",
            display_net(&target),
            display_net(&entry.target),
            entry.comment
        )));
    }
    let now = Utc::now();
    let decision = Decision::operator_ban(
        target,
        &principal.name,
        now,
        Duration::minutes(minutes),
        body.reason,
        false,
    );
    let id = state.store.insert_decision(&decision).await?;
    state
        .metrics
        .decisions
        .get_or_create(&ActionLabel { action: "ban" })
        .inc();
    state.live.wake();
    tracing::info!(ip = %display_net(&target), minutes, by = %principal.name, "ban through the API");
    let stored = state
        .store
        .get_decision(id)
        .await?
        .ok_or_else(|| ApiError::Internal("decision vanished".into()))?;
    Ok((StatusCode::CREATED, Json(decision_out(&stored, now))))
}

/// Unban one decision by id (operator).
#[utoipa::path(delete, path = "/api/v1/decisions/{id}", tag = "decisions",
    params(("id" = i64, Path)),
    responses((status = 200, body = Unbanned), (status = 403, body = rampart_api::ErrorBody), (status = 404, body = rampart_api::ErrorBody)))]
pub async fn unban_id(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Unbanned>, ApiError> {
    principal.require(Role::Operator)?;
    let id = path_id(&id, "a decision id")?;
    if !state
        .store
        .revoke_id(id, &principal.name, Utc::now())
        .await?
    {
        return Err(ApiError::NotFound(format!("no decision {id} in force")));
    }
    state
        .metrics
        .decisions
        .get_or_create(&ActionLabel { action: "unban" })
        .inc();
    state.live.wake();
    Ok(Json(Unbanned { revoked: vec![id] }))
}

/// A row id from the path (an error in the API's form, naming `id`).
fn path_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::field("id", format!("{text:?} is not {what}")))
}

/// Unban every decision on an address or inside a prefix (operator).
#[utoipa::path(delete, path = "/api/v1/decisions", tag = "decisions",
    params(("ip" = String, Query, description = "address or CIDR")),
    responses((status = 200, body = Unbanned), (status = 403, body = rampart_api::ErrorBody), (status = 404, body = rampart_api::ErrorBody)))]
pub async fn unban_ip(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Unbanned>, ApiError> {
    principal.require(Role::Operator)?;
    let p = Params::new(raw);
    let target = p
        .get("ip", "an IP address or CIDR", |v| parse_net(v).ok())?
        .ok_or_else(|| ApiError::field("ip", "required (DELETE /api/v1/decisions?ip=ADDR)"))?;
    let revoked = state
        .store
        .revoke(Some(&target), &principal.name, Utc::now())
        .await?;
    if revoked.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{} is not banned",
            display_net(&target)
        )));
    }
    state
        .metrics
        .decisions
        .get_or_create(&ActionLabel { action: "unban" })
        .inc_by(revoked.len() as u64);
    state.live.wake();
    tracing::info!(ip = %display_net(&target), by = %principal.name, count = revoked.len(), "unban through the API");
    Ok(Json(Unbanned { revoked }))
}

/// The decision stream: changes after a cursor (fleet members follow it).
///
/// Without `since`, answers every ban in force and the current cursor (a
/// follower's start). With `wait=N` (≤ 30 s), waits up to N seconds for a
/// change before answering an empty list. Expiry is not a change: each
/// follower lets a ban end at its `until` (nftables element timeouts).
#[utoipa::path(get, path = "/api/v1/decisions/stream", tag = "decisions",
    params(("since" = Option<i64>, Query), ("wait" = Option<u32>, Query, description = "seconds to wait for a change, 0..30"),
           ("limit" = Option<u32>, Query, description = "1..5000, default 1000")),
    responses((status = 200, body = StreamOut), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<StreamOut>, ApiError> {
    principal.require_machine(Role::Viewer)?;
    let p = Params::new(raw);
    let wait = p.int("wait", 0, 30)?.unwrap_or(0);
    let limit = p.int("limit", 1, 5000)?.unwrap_or(1000) as u32;
    let now = Utc::now();
    let latest = state.store.latest_cursor().await?;
    // A cursor ahead of the log (the server's database was replaced): the
    // follower starts over from the bans in force.
    let since = p.int("since", 0, i64::MAX)?.filter(|s| *s <= latest);
    let Some(since) = since else {
        let cursor = latest;
        let active = state
            .store
            .query_decisions(&DecisionQuery {
                active_at: Some(now),
                ..DecisionQuery::default()
            })
            .await?;
        let changes = active
            .iter()
            .map(|s| StreamChange {
                seq: cursor,
                kind: ChangeKind::Added,
                decision: decision_out(s, now),
            })
            .collect();
        return Ok(Json(StreamOut { cursor, changes }));
    };
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(wait as u64);
    loop {
        // Subscribe before reading so a change stored in between wakes us.
        let woken = state.live.changed();
        let changes = state.store.changes_since(since, limit).await?;
        if !changes.is_empty() || tokio::time::Instant::now() >= deadline {
            let now = Utc::now();
            let cursor = changes.last().map_or(since, |c| c.seq);
            let changes = changes
                .iter()
                .map(|c| StreamChange {
                    seq: c.seq,
                    kind: c.kind,
                    decision: decision_out(&c.decision, now),
                })
                .collect();
            return Ok(Json(StreamOut { cursor, changes }));
        }
        let _ = tokio::time::timeout_at(deadline, woken).await;
    }
}

fn whitelist_out(w: rampart_store::WhitelistEntry) -> WhitelistOut {
    WhitelistOut {
        id: w.id,
        ip: display_net(&w.target),
        comment: w.comment,
        created_by: w.created_by,
        created_at: w.created_at,
    }
}

/// The stored whitelist (API bans refuse these unless forced).
#[utoipa::path(get, path = "/api/v1/whitelist", tag = "decisions", responses((status = 200, body = Vec<WhitelistOut>)))]
pub async fn whitelist(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<WhitelistOut>>, ApiError> {
    principal.require(Role::Viewer)?;
    let list = state.store.list_whitelist().await?;
    Ok(Json(list.into_iter().map(whitelist_out).collect()))
}

/// Add a whitelist entry (operator).
#[utoipa::path(post, path = "/api/v1/whitelist", tag = "decisions", request_body = WhitelistIn,
    responses((status = 201, body = WhitelistOut), (status = 409, body = rampart_api::ErrorBody)))]
pub async fn whitelist_add(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<WhitelistIn>,
) -> Result<(StatusCode, Json<WhitelistOut>), ApiError> {
    principal.require(Role::Operator)?;
    let entry = add_entry(&state, &principal, &body).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

async fn add_entry(
    state: &AppState,
    principal: &Principal,
    body: &WhitelistIn,
) -> Result<WhitelistOut, ApiError> {
    let target = parse_net(body.ip.trim()).map_err(|m| ApiError::field("ip", m))?;
    let id = state
        .store
        .add_whitelist(&target, &body.comment, &principal.name, Utc::now())
        .await?;
    state
        .store
        .list_whitelist()
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .map(whitelist_out)
        .ok_or_else(|| ApiError::Internal("whitelist entry vanished".into()))
}

/// Replace a whitelist entry (operator).
#[utoipa::path(put, path = "/api/v1/whitelist/{id}", tag = "decisions", request_body = WhitelistIn, params(("id" = i64, Path)),
    responses((status = 200, body = WhitelistOut), (status = 404, body = rampart_api::ErrorBody),
              (status = 409, body = rampart_api::ErrorBody)))]
pub async fn whitelist_put(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WhitelistIn>,
) -> Result<Json<WhitelistOut>, ApiError> {
    principal.require(Role::Operator)?;
    let id = path_id(&id, "a whitelist entry id")?;
    let target = parse_net(body.ip.trim()).map_err(|m| ApiError::field("ip", m))?;
    // Refuse a twin of another entry before deleting this one: the PUT is
    // a delete and an insert, and a refused insert must not lose the entry.
    let list = state.store.list_whitelist().await?;
    if let Some(twin) = list
        .iter()
        .find(|w| w.id != id && w.target.trunc() == target.trunc())
    {
        return Err(ApiError::Conflict(format!(
            "whitelist entry {} already covers {}",
            twin.id,
            display_net(&twin.target)
        )));
    }
    if !state.store.delete_whitelist(id).await? {
        return Err(ApiError::NotFound(format!("no whitelist entry {id}")));
    }
    Ok(Json(add_entry(&state, &principal, &body).await?))
}

/// Delete a whitelist entry (operator).
#[utoipa::path(delete, path = "/api/v1/whitelist/{id}", tag = "decisions", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = rampart_api::ErrorBody)))]
pub async fn whitelist_delete(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Operator)?;
    let id = path_id(&id, "a whitelist entry id")?;
    if state.store.delete_whitelist(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no whitelist entry {id}")))
    }
}

/// Banned addresses, latest first.
#[utoipa::path(get, path = "/api/v1/blocked-ips", tag = "decisions",
    params(("limit" = Option<u32>, Query, description = "1..10000, default 500")),
    responses((status = 200, body = Vec<BlockedIpOut>)))]
pub async fn blocked_ips(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Vec<BlockedIpOut>>, ApiError> {
    principal.require(Role::Viewer)?;
    let limit = Params::new(raw).int("limit", 1, 10_000)?.unwrap_or(500) as u32;
    let list = state.store.blocked_ips(Utc::now(), limit).await?;
    Ok(Json(
        list.into_iter()
            .map(|b| BlockedIpOut {
                ip: display_net(&b.target),
                first_seen: b.first_seen,
                last_blocked: b.last_blocked,
                block_count: b.count,
                avg_confidence: b.avg_score,
                status: if b.active { "active" } else { "expired" }.to_owned(),
            })
            .collect(),
    ))
}
