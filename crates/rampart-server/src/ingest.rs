//! What agents and gateways push: request logs, events (findings,
//! decisions, log events, actions) and heartbeats.
//!
//! A batch is a JSON array. Each record is checked on its own: the valid
//! ones are stored (in one transaction), the invalid ones are reported by
//! index with the field at fault, and the batch is recorded in
//! `upload_batches`. A batch in which nothing is valid answers 422.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::{Extension, Json};
use chrono::Utc;
use rampart_core::{Action, RequestRecord};
use rampart_store::{ActionRecord, AgentRecord, EventRecord, Role, UploadBatch};
use serde_json::Value;

use crate::access::Principal;
use crate::error::{ApiBody, ApiError, ApiJson, from_value, parse_json};
use crate::state::AppState;
use rampart_api::{BatchResult, EventIn, HeartbeatIn, LogRecordIn, MAX_BATCH, Rejected};

fn reject(index: usize, (field, message): (String, String)) -> Rejected {
    Rejected {
        index,
        field: if field.is_empty() {
            ".".to_owned()
        } else {
            field
        },
        message,
    }
}

fn check_batch_size(items: &[Value]) -> Result<(), ApiError> {
    if items.len() > MAX_BATCH {
        return Err(ApiError::BadRequest {
            field: None,
            message: format!("{} records in one batch; at most {MAX_BATCH}", items.len()),
        });
    }
    Ok(())
}

async fn finish_batch(
    state: &AppState,
    principal: &Principal,
    kind: &'static str,
    accepted: u64,
    mut errors: Vec<Rejected>,
) -> Result<Json<BatchResult>, ApiError> {
    let rejected = errors.len() as u64;
    state.metrics.ingest(kind, accepted, rejected);
    errors.truncate(100);
    let batch_id = state
        .store
        .insert_upload(&UploadBatch {
            time: Utc::now(),
            principal: principal.name.clone(),
            kind: kind.to_owned(),
            accepted,
            rejected,
            errors: serde_json::to_value(&errors).unwrap_or(Value::Null),
        })
        .await?;
    let result = BatchResult {
        batch_id,
        accepted,
        rejected,
        errors,
    };
    if accepted == 0 && rejected > 0 {
        tracing::info!(principal = %principal.name, kind, rejected, "batch refused");
        return Err(ApiError::NothingValid(Box::new(result)));
    }
    Ok(Json(result))
}

/// Push request-log records.
#[utoipa::path(post, path = "/api/v1/logs", tag = "ingest", request_body = Vec<LogRecordIn>,
    responses((status = 200, body = BatchResult), (status = 400, body = rampart_api::ErrorBody),
              (status = 413, body = rampart_api::ErrorBody), (status = 422, body = BatchResult)))]
pub async fn post_logs(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiBody(body): ApiBody,
) -> Result<Json<BatchResult>, ApiError> {
    principal.require_machine(Role::Operator)?;
    let tag = format!("{}-{}", principal.name, Utc::now().timestamp_millis());
    let mut errors = Vec::new();
    // The usual case, a batch of valid records, parses straight into
    // records; only a batch with a fault is read record by record to say
    // which ones are at fault.
    let fast = serde_json::from_slice::<Vec<LogRecordIn>>(&body)
        .ok()
        .filter(|list| list.len() <= MAX_BATCH && list.iter().all(|r| r.check().is_ok()));
    let records: Vec<RequestRecord> = match fast {
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(index, r)| r.into_record(&principal.name, &tag, index))
            .collect(),
        None => {
            let items: Vec<Value> = parse_json(&body)?;
            check_batch_size(&items)?;
            let mut records = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                match from_value::<LogRecordIn>(item).and_then(|r| r.check().map(|()| r)) {
                    Ok(r) => records.push(r.into_record(&principal.name, &tag, index)),
                    Err(e) => errors.push(reject(index, e)),
                }
            }
            records
        }
    };
    if !records.is_empty() {
        state.store.insert_requests(&records).await?;
    }
    finish_batch(&state, &principal, "logs", records.len() as u64, errors).await
}

/// Push events: findings, decisions, log events, actions.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest", request_body = Vec<EventIn>,
    responses((status = 200, body = BatchResult), (status = 400, body = rampart_api::ErrorBody),
              (status = 413, body = rampart_api::ErrorBody), (status = 422, body = BatchResult)))]
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(items): ApiJson<Vec<Value>>,
) -> Result<Json<BatchResult>, ApiError> {
    principal.require_machine(Role::Operator)?;
    check_batch_size(&items)?;
    let mut errors = Vec::new();
    let mut events = Vec::new();
    let mut accepted = 0u64;
    for (index, item) in items.into_iter().enumerate() {
        let parsed = match from_value::<EventIn>(&item) {
            Ok(p) => p,
            Err(e) => {
                errors.push(reject(index, e));
                continue;
            }
        };
        let node = principal.name.clone();
        let (kind, source_ip, label, time) = match &parsed {
            EventIn::Finding { finding, .. } => (
                "finding",
                subject_addr(&finding.subject),
                Some(finding.label.clone()),
                finding.time,
            ),
            EventIn::Decision { decision } => (
                "decision",
                Some(decision.target.network()),
                Some(decision.origin.to_string()),
                decision.at,
            ),
            EventIn::Event { event } => (
                "event",
                event.addr,
                Some(event.kind.as_str().to_owned()),
                event.time,
            ),
            EventIn::Action { time, .. } => ("action", None, None, *time),
        };
        match store_item(&state, &node, parsed).await {
            Ok(()) => {
                accepted += 1;
                events.push(EventRecord {
                    time,
                    node,
                    kind: kind.to_owned(),
                    source_ip,
                    label,
                    payload: item,
                });
            }
            Err(ApiError::BadRequest { field, message }) => errors.push(Rejected {
                index,
                field: field.unwrap_or_else(|| ".".to_owned()),
                message,
            }),
            Err(e) => return Err(e),
        }
    }
    if !events.is_empty() {
        state.store.insert_events(&events).await?;
    }
    finish_batch(&state, &principal, "events", accepted, errors).await
}

async fn store_item(state: &AppState, node: &str, item: EventIn) -> Result<(), ApiError> {
    match item {
        EventIn::Finding { finding, note } => {
            let note = note.unwrap_or_else(|| format!("reported by {node}"));
            state.store.insert_finding(&finding, &note).await?;
        }
        EventIn::Decision { mut decision } => {
            if decision.action != Action::Ban {
                return Err(ApiError::field(
                    "decision.action",
                    "only ban decisions are pushed; unban with DELETE /api/v1/decisions",
                ));
            }
            decision.id = None;
            if !crate::decisions::already_known(state, &decision).await? {
                state.store.insert_decision(&decision).await?;
                state
                    .metrics
                    .decisions
                    .get_or_create(&crate::metrics::ActionLabel { action: "ban" })
                    .inc();
            }
        }
        EventIn::Event { .. } => {}
        EventIn::Action {
            time,
            decision_id,
            action,
            target,
            ok,
            detail,
        } => {
            state
                .store
                .insert_action(&ActionRecord {
                    time,
                    node: node.to_owned(),
                    decision_id,
                    action,
                    target,
                    ok,
                    detail,
                })
                .await?;
        }
    }
    Ok(())
}

fn subject_addr(subject: &rampart_core::Subject) -> Option<IpAddr> {
    match subject {
        rampart_core::Subject::Net(net) => Some(net.network()),
        _ => None,
    }
}

/// Report that a node is alive.
#[utoipa::path(post, path = "/api/v1/heartbeat", tag = "ingest", request_body = HeartbeatIn,
    responses((status = 204), (status = 400, body = rampart_api::ErrorBody)))]
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(beat): ApiJson<HeartbeatIn>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require_machine(Role::Operator)?;
    if !matches!(beat.kind.as_str(), "agent" | "gateway") {
        return Err(ApiError::field(
            "kind",
            format!("{:?} is not agent or gateway", beat.kind),
        ));
    }
    let record = AgentRecord {
        id: beat.id.unwrap_or_else(|| principal.name.clone()),
        kind: beat.kind,
        address: peer.ip().to_string(),
        version: beat.version,
        started_at: beat.started_at,
        last_seen: Utc::now(),
        processed: beat.processed,
        blocked: beat.blocked,
    };
    state.store.upsert_agent(&record).await?;
    state.live.publish_agent(&record);
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_are_checked_field_by_field() {
        let good = serde_json::json!({
            "timestamp": "2025-11-25T10:31:02", "source_ip": "203.0.113.50",
            "request_path": "/api", "request_method": "POST", "user_agent": "curl",
            "prediction": "DDoS", "confidence_score": 0.9, "is_blocked": 1,
            "response_status_code": 429, "response_time_ms": 1.5, "request_size_bytes": 10,
            "gateway_id": "gw-1"
        });
        let r: LogRecordIn = from_value(good.clone()).expect("valid");
        r.check().expect("valid");
        assert!(r.is_blocked);
        assert_eq!(r.timestamp.to_rfc3339(), "2025-11-25T10:31:02+00:00");
        let with = |k: &str, v: Value| {
            let mut x = good.clone();
            x[k] = v;
            from_value::<LogRecordIn>(x).and_then(|r| r.check())
        };
        assert_eq!(with("source_ip", "nope".into()).unwrap_err().0, "source_ip");
        assert_eq!(
            with("prediction", "EVIL".into()).unwrap_err().0,
            "prediction"
        );
        assert_eq!(with("is_blocked", 2.into()).unwrap_err().0, "is_blocked");
        assert_eq!(
            with("confidence_score", 1.5.into()).unwrap_err().0,
            "confidence_score"
        );
        assert_eq!(
            with("response_status_code", 42.into()).unwrap_err().0,
            "response_status_code"
        );
        assert_eq!(
            with("timestamp", "yesterday".into()).unwrap_err().0,
            "timestamp"
        );
        assert!(
            with("extra", 1.into())
                .unwrap_err()
                .1
                .contains("unknown field")
        );
    }
}
