//! `GET /ws/live`: new items as they are stored, over a WebSocket.
//!
//! One poller follows the store (so items stored by another server on the
//! same PostgreSQL, or by a gateway writing to the same SQLite, are seen
//! too) every 250 ms, and fans each item out through a bounded broadcast
//! channel. Each client has its own place in that channel: a client that
//! falls more than [`QUEUE`] messages behind, or whose socket does not take
//! a message within [`SEND_TIMEOUT`], is closed with code 1008 and a
//! reason, and nobody else waits for it.
//!
//! Protocol (JSON text frames):
//! - client → server: `{"subscribe": ["requests", "decisions"]}`,
//!   `{"unsubscribe": [...]}`; channels may also be given at connect time
//!   as `?channels=requests,decisions`.
//! - server → client: `{"type": "item", "channel": "...", "data": {...}}`,
//!   `{"type": "heartbeat", "time": "..."}` every 30 s (`server.live_heartbeat`),
//!   `{"type": "subscribed", "channels": [...]}`, `{"type": "error", "message": "..."}`.
//!
//! Channels: `requests` (request-log records), `findings`, `decisions`
//! (added and revoked), `metrics` (a summary every 5 s), `agents` (heartbeats).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use rampart_store::{ChangeKind, RequestFilter, Role};
use serde_json::json;
use tokio::sync::broadcast;

use crate::access::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use rampart_api::RequestOut;

pub use crate::hub::QUEUE;
/// Longest a client's socket may take to accept one message.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the store is polled.
pub const POLL: Duration = Duration::from_millis(250);

/// The live channels.
pub const CHANNELS: [&str; 5] = ["requests", "findings", "decisions", "metrics", "agents"];

/// Follows the store and publishes what is new, until the process ends.
pub async fn poll(state: Arc<AppState>) {
    let mut cursor = loop {
        match state.store.latest_cursor().await {
            Ok(c) => break c,
            Err(e) => {
                state.metrics.store_errors.inc();
                tracing::error!(error = %e, "live: cannot read the decision cursor");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut request_id: Option<i64> = None;
    let mut finding_id: Option<i64> = None;
    let mut seen_agents: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick = 0u64;
    let mut window = Window::default();
    loop {
        ticker.tick().await;
        tick += 1;
        if let Err(e) = poll_once(
            &state,
            &mut cursor,
            &mut request_id,
            &mut finding_id,
            &mut window,
        )
        .await
        {
            state.metrics.store_errors.inc();
            tracing::warn!(error = %e, "live: store poll failed");
        }
        if tick.is_multiple_of(8) && state.live.subscribers() > 0 {
            match state.store.list_agents().await {
                Ok(list) => {
                    for a in list {
                        if seen_agents.get(&a.id) != Some(&a.last_seen) {
                            seen_agents.insert(a.id.clone(), a.last_seen);
                            state.live.publish_agent(&a);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "live: cannot list agents"),
            }
        }
        if tick.is_multiple_of(20) {
            let seconds = POLL.as_secs_f64() * 20.0;
            state.live.publish(
                "metrics",
                &json!({
                    "time": Utc::now(),
                    "interval_seconds": seconds,
                    "requests": window.requests,
                    "blocked": window.blocked,
                    "requests_per_second": window.requests as f64 / seconds,
                    "findings": window.findings,
                    "decisions": window.decisions,
                    "live_clients": state.live.subscribers(),
                }),
            );
            window = Window::default();
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    requests: u64,
    blocked: u64,
    findings: u64,
    decisions: u64,
}

async fn poll_once(
    state: &AppState,
    cursor: &mut i64,
    request_id: &mut Option<i64>,
    finding_id: &mut Option<i64>,
    window: &mut Window,
) -> Result<(), rampart_store::StoreError> {
    // Taken before the subscriber count is read: a client pins its start
    // after subscribing, so a pin taken while nobody listens is stale, and
    // one this tick misses is there the next.
    let pinned = state.live.take_start();
    let changes = state.store.changes_since(*cursor, 1000).await?;
    if !changes.is_empty() {
        let now = Utc::now();
        for c in &changes {
            *cursor = c.seq;
            window.decisions += 1;
            let mut data = serde_json::to_value(crate::decisions::decision_out(&c.decision, now))
                .unwrap_or_default();
            data["change"] = json!(match c.kind {
                ChangeKind::Added => "added",
                ChangeKind::Revoked => "revoked",
            });
            data["seq"] = json!(c.seq);
            state.live.publish("decisions", &data);
        }
        state.live.wake();
    }
    if state.live.subscribers() == 0 {
        // Nobody listens: start where the next client pins its start.
        *request_id = None;
        *finding_id = None;
        return Ok(());
    }
    let (after, findings_after) = match (*request_id, *finding_id, pinned) {
        (Some(r), Some(f), _) => (r, f),
        (_, _, Some(start)) => start,
        // A client is connecting; it pins its start by the next tick.
        _ => return Ok(()),
    };
    // Both at once, so a failed read below retries from here next tick.
    *request_id = Some(after);
    *finding_id = Some(findings_after);
    let rows = state.store.requests_after(after, 2000).await?;
    *request_id = Some(rows.last().map_or(after, |r| r.id));
    for r in rows {
        window.requests += 1;
        window.blocked += u64::from(r.record.blocked);
        let out = RequestOut::new(r.id, r.record);
        state
            .live
            .publish("requests", &serde_json::to_value(out).unwrap_or_default());
    }
    let found = state.store.findings_after(findings_after, 1000).await?;
    *finding_id = Some(found.last().map_or(findings_after, |f| f.id));
    for f in found {
        window.findings += 1;
        state
            .live
            .publish("findings", &serde_json::to_value(f).unwrap_or_default());
    }
    Ok(())
}

/// The newest request-log and finding ids.
async fn newest_ids(state: &AppState) -> Result<(i64, i64), rampart_store::StoreError> {
    let requests = state
        .store
        .query_requests(&RequestFilter::default(), 0, 1)
        .await?;
    let findings = state.store.recent_findings(1).await?;
    Ok((
        requests.requests.first().map_or(0, |r| r.id),
        findings.first().map_or(0, |f| f.id),
    ))
}

/// Open the live stream (viewer).
#[utoipa::path(get, path = "/ws/live", tag = "live",
    params(("channels" = Option<String>, Query, description = "comma-separated: requests, findings, decisions, metrics, agents")),
    responses((status = 101, description = "WebSocket; see the live stream docs")))]
pub async fn ws(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(raw): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    principal.require(Role::Viewer)?;
    let mut channels = HashSet::new();
    if let Some(list) = raw.get("channels") {
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            channels.insert(
                channel(name).ok_or_else(|| {
                    ApiError::field("channels", format!("unknown channel {name:?}"))
                })?,
            );
        }
    }
    let heartbeat = state.config.live_heartbeat.0;
    Ok(upgrade.on_upgrade(move |socket| client(state, socket, channels, heartbeat)))
}

fn channel(name: &str) -> Option<&'static str> {
    CHANNELS.iter().copied().find(|c| *c == name)
}

async fn client(
    state: Arc<AppState>,
    mut socket: WebSocket,
    mut channels: HashSet<&'static str>,
    heartbeat: Duration,
) {
    let mut rx = state.live.tx.subscribe();
    // What is stored from here on is this client's, even when nobody
    // listened before (the poller then starts from here at its next tick).
    match newest_ids(&state).await {
        Ok(ids) => state.live.pin_start(ids),
        Err(e) => {
            state.metrics.store_errors.inc();
            tracing::warn!(error = %e, "live: cannot read the newest ids");
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                socket.send(Message::Close(Some(CloseFrame {
                    code: close_code::ERROR,
                    reason: "the store does not answer".into(),
                }))),
            )
            .await;
            return;
        }
    }
    state.metrics.live_clients.inc();
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let hello = json!({"type": "subscribed", "channels": sorted(&channels)}).to_string();
    let mut close: Option<(u16, String)> = None;
    let stopping = state.live.stopped();
    tokio::pin!(stopping);
    if send(&mut socket, hello.into()).await.is_err() {
        close = Some((close_code::AWAY, String::new()));
    }
    while close.is_none() {
        tokio::select! {
            item = rx.recv() => match item {
                Ok(item) if channels.contains(item.channel) => {
                    if send(&mut socket, item.text.clone()).await.is_err() {
                        state.metrics.live_dropped.inc();
                        close = Some((close_code::POLICY, "client too slow: a message was not taken in 5 s".to_owned()));
                    } else {
                        state.metrics.live_sent.inc();
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    state.metrics.live_dropped.inc();
                    close = Some((close_code::POLICY, format!("client too slow: {n} messages behind")));
                }
                Err(broadcast::error::RecvError::Closed) => close = Some((close_code::AWAY, "server stopping".to_owned())),
            },
            () = &mut stopping => close = Some((close_code::AWAY, "server stopping".to_owned())),
            _ = beat.tick() => {
                let text = json!({"type": "heartbeat", "time": Utc::now()}).to_string();
                if send(&mut socket, text.into()).await.is_err() {
                    close = Some((close_code::POLICY, "client too slow".to_owned()));
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reply = control(&text, &mut channels);
                    if send(&mut socket, reply.into()).await.is_err() {
                        close = Some((close_code::POLICY, "client too slow".to_owned()));
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    if let Some((code, reason)) = close {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))),
        )
        .await;
    }
    state.metrics.live_clients.dec();
}

async fn send(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn sorted(channels: &HashSet<&'static str>) -> Vec<&'static str> {
    let mut v: Vec<_> = channels.iter().copied().collect();
    v.sort_unstable();
    v
}

/// Applies a client's message; the reply to send.
fn control(text: &str, channels: &mut HashSet<&'static str>) -> String {
    let error = |m: String| json!({"type": "error", "message": m}).to_string();
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return error("not JSON: send {\"subscribe\": [\"requests\", ...]}".to_owned());
    };
    let mut touched = false;
    for (key, add) in [("subscribe", true), ("unsubscribe", false)] {
        let Some(list) = value.get(key) else { continue };
        let Some(list) = list.as_array() else {
            return error(format!("{key} takes an array of channel names"));
        };
        for name in list {
            let Some(c) = name.as_str().and_then(channel) else {
                return error(format!(
                    "unknown channel {name}; channels: {}",
                    CHANNELS.join(", ")
                ));
            };
            if add {
                channels.insert(c);
            } else {
                channels.remove(c);
            }
            touched = true;
        }
    }
    if !touched {
        return error(
            "nothing to do: send {\"subscribe\": [...]} or {\"unsubscribe\": [...]}".to_owned(),
        );
    }
    json!({"type": "subscribed", "channels": sorted(channels)}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;

    #[test]
    fn control_messages_change_subscriptions_and_refuse_unknown_channels() {
        let mut ch = HashSet::new();
        let r = control(r#"{"subscribe": ["requests", "decisions"]}"#, &mut ch);
        assert!(r.contains(r#""channels":["decisions","requests"]"#), "{r}");
        let r = control(r#"{"unsubscribe": ["requests"]}"#, &mut ch);
        assert!(r.contains(r#""channels":["decisions"]"#), "{r}");
        let r = control(r#"{"subscribe": ["nope"]}"#, &mut ch);
        assert!(r.contains("unknown channel"), "{r}");
        assert_eq!(ch.len(), 1);
        assert!(control("garbage", &mut ch).contains("not JSON"));
    }

    #[tokio::test]
    async fn a_lagging_receiver_is_told_how_far_behind_it_is() {
        let hub = Hub::new();
        let mut rx = hub.tx.subscribe();
        for i in 0..(QUEUE + 10) {
            hub.publish("requests", &json!({"i": i}));
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
    }
}
