//! The fleet side of the server: how an agent or gateway reports to it.
//!
//! [`FleetStore`] wraps the node's own store. Everything is still stored
//! locally (the node keeps working, and keeps enforcing its own bans, when
//! the server is away); in addition:
//!
//! - **push**: decisions and findings the node makes, and its request-log
//!   records, are queued in a bounded spool and pushed in batches
//!   (`POST /api/v1/events`, `POST /api/v1/logs`). A failed push is retried
//!   with backoff; nothing is lost while the spool has room, and what the
//!   spool cannot hold (oldest first) is dropped and counted.
//! - **follow**: the decision stream (`GET /api/v1/decisions/stream`, long
//!   polled) is applied to the local store: new bans are inserted (unless a
//!   local ban on that target already lasts as long), revocations lift the
//!   local bans of the target. The node's firewall enforcer and gateway
//!   follow the local change log as always, so a ban made anywhere is
//!   enforced here within a second or two. The stream's cursor is saved in
//!   the store (positions, source `fleet`), so a restart resumes.
//! - **heartbeat**: `POST /api/v1/heartbeat` every few seconds.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use rampart_config::FleetConfig;
use rampart_core::{Action, Decision, Finding, RequestRecord};
use rampart_store::*;
use serde_json::{Value, json};

use rampart_api::StreamOut;

/// What the node counts for its heartbeat: (processed, blocked).
pub type Counters = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

/// Push and follow statistics.
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Items pushed and accepted.
    pub pushed: AtomicU64,
    /// Items the server refused as invalid.
    pub rejected: AtomicU64,
    /// Items dropped because the spool was full.
    pub dropped: AtomicU64,
    /// Failed pushes (retried).
    pub push_failures: AtomicU64,
    /// Decisions applied from the stream.
    pub applied: AtomicU64,
    /// Failed stream polls.
    pub follow_failures: AtomicU64,
}

impl FleetStats {
    /// The counters: metric name (`fleet_…`, exported with a `_total` suffix), help, value.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 6] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "fleet_pushed",
                "Items pushed to the server and accepted",
                get(&self.pushed),
            ),
            (
                "fleet_rejected",
                "Pushed items the server refused as invalid",
                get(&self.rejected),
            ),
            (
                "fleet_spool_dropped",
                "Items dropped because the spool was full (server unreachable)",
                get(&self.dropped),
            ),
            (
                "fleet_push_failures",
                "Pushes that failed and were retried",
                get(&self.push_failures),
            ),
            (
                "fleet_applied",
                "Decisions from the server's stream applied locally",
                get(&self.applied),
            ),
            (
                "fleet_follow_failures",
                "Failed reads of the decision stream",
                get(&self.follow_failures),
            ),
        ]
    }
}

#[derive(Debug)]
enum Item {
    /// For `/api/v1/events`.
    Event(Value),
    /// For `/api/v1/logs`.
    Log(Value),
}

/// The link to the server: client, spool, counters.
pub struct Link {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    config: FleetConfig,
    spool: Mutex<VecDeque<Item>>,
    /// Statistics.
    pub stats: FleetStats,
    counters: Mutex<Option<Counters>>,
    node: String,
    kind: &'static str,
    started: DateTime<Utc>,
}

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Could not connect or send.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// The server answered an error.
    #[error("server answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
    },
}

impl Link {
    /// A link for `config` (which must have `url` and `token`), as node
    /// `node` of `kind` (`agent` or `gateway`).
    pub fn new(
        config: &FleetConfig,
        node: String,
        kind: &'static str,
    ) -> Result<Arc<Self>, String> {
        let url = config.url.clone().ok_or("fleet.url is not set")?;
        if !url.starts_with("http://") {
            return Err(format!(
                "fleet.url {url:?}: only http:// is supported by this build (put a TLS-terminating proxy on the path, or keep the server on a private network)"
            ));
        }
        let token = config.token.clone().ok_or("fleet.token is not set")?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Arc::new(Self {
            client,
            base: url.trim_end_matches('/').to_owned(),
            token,
            config: config.clone(),
            spool: Mutex::new(VecDeque::new()),
            stats: FleetStats::default(),
            counters: Mutex::new(None),
            node,
            kind,
            started: Utc::now(),
        }))
    }

    /// Sets what the heartbeat reports as processed and blocked.
    pub fn set_counters(&self, counters: Counters) {
        if let Ok(mut c) = self.counters.lock() {
            *c = Some(counters);
        }
    }

    /// Items waiting to be pushed.
    pub fn spooled(&self) -> usize {
        self.spool.lock().map_or(0, |s| s.len())
    }

    fn enqueue(&self, items: impl IntoIterator<Item = Item>) {
        let Ok(mut spool) = self.spool.lock() else {
            return;
        };
        let mut dropped = 0u64;
        for item in items {
            if spool.len() >= self.config.spool {
                spool.pop_front();
                dropped += 1;
            }
            spool.push_back(item);
        }
        if dropped > 0 {
            let total = self.stats.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            tracing::warn!(
                dropped,
                total,
                spool = self.config.spool,
                "fleet spool full: oldest items dropped"
            );
        }
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, LinkError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| LinkError::Transport(e.to_string()))?;
        let response = tokio::time::timeout(Duration::from_secs(40), self.client.request(req))
            .await
            .map_err(|_| LinkError::Transport("no answer in 40 s".to_owned()))?
            .map_err(|e| LinkError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| LinkError::Transport(e.to_string()))?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(LinkError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            })
        }
    }

    /// Pushes one batch from the spool; `Ok(n)` items done (0: spool empty).
    async fn push_once(&self) -> Result<usize, LinkError> {
        // Take a run of items of one kind from the front, without removing
        // them until the server has them.
        let (path, body, count) = {
            let Ok(spool) = self.spool.lock() else {
                return Ok(0);
            };
            let Some(first) = spool.front() else {
                return Ok(0);
            };
            let logs = matches!(first, Item::Log(_));
            let batch: Vec<&Value> = spool
                .iter()
                .take(self.config.batch)
                .map_while(|i| match (i, logs) {
                    (Item::Log(v), true) | (Item::Event(v), false) => Some(v),
                    _ => None,
                })
                .collect();
            let path = if logs {
                "/api/v1/logs"
            } else {
                "/api/v1/events"
            };
            (
                path,
                serde_json::to_vec(&batch).unwrap_or_default(),
                batch.len(),
            )
        };
        let rejected = match self.call(http::Method::POST, path, Some(body)).await {
            Ok(bytes) => rejected_count(&bytes),
            // Every record invalid, or the batch unreadable: the server
            // will never take them; drop them (counted) rather than block.
            Err(LinkError::Status { status: 422, body }) => {
                rejected_count(body.as_bytes()).max(count as u64)
            }
            Err(LinkError::Status {
                status: 400 | 413, ..
            }) => count as u64,
            Err(e) => return Err(e),
        };
        if let Ok(mut spool) = self.spool.lock() {
            // Items pushed out by a full spool meanwhile were counted as dropped.
            let done = count.min(spool.len());
            spool.drain(..done);
        }
        self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
        self.stats
            .pushed
            .fetch_add((count as u64).saturating_sub(rejected), Ordering::Relaxed);
        if rejected > 0 {
            tracing::warn!(rejected, path, "fleet: the server refused pushed records");
        }
        Ok(count)
    }

    /// Pushes until the spool is empty or the server fails, then waits; forever.
    pub async fn push_loop(self: Arc<Self>) {
        let mut backoff = self.config.push_every.0;
        loop {
            tokio::time::sleep(backoff).await;
            backoff = self.config.push_every.0;
            loop {
                match self.push_once().await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        let failures = self.stats.push_failures.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!(error = %e, spooled = self.spooled(), failures, "fleet: push failed; retrying");
                        backoff =
                            (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                        break;
                    }
                }
            }
        }
    }

    /// Pushes what is spooled now (at shutdown), within `limit`.
    pub async fn flush(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while let Ok(n) = self.push_once().await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Sends heartbeats forever.
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.config.heartbeat_every.0);
        loop {
            ticker.tick().await;
            let (processed, blocked) = self
                .counters
                .lock()
                .ok()
                .and_then(|c| c.as_ref().map(|f| f()))
                .unwrap_or_default();
            let body = json!({
                "id": self.node,
                "kind": self.kind,
                "version": env!("CARGO_PKG_VERSION"),
                "started_at": self.started,
                "processed": processed,
                "blocked": blocked,
            });
            if let Err(e) = self
                .call(
                    http::Method::POST,
                    "/api/v1/heartbeat",
                    Some(body.to_string().into_bytes()),
                )
                .await
            {
                tracing::debug!(error = %e, "fleet: heartbeat failed");
            }
        }
    }

    async fn poll_stream(&self, since: Option<i64>) -> Result<StreamOut, LinkError> {
        let path = match since {
            Some(c) => format!("/api/v1/decisions/stream?since={c}&wait=10"),
            None => "/api/v1/decisions/stream".to_owned(),
        };
        let bytes = self.call(http::Method::GET, &path, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| LinkError::Transport(format!("bad stream answer: {e}")))
    }

    /// Follows the decision stream into `local`, forever.
    pub async fn follow_loop(self: Arc<Self>, local: Arc<dyn Store>) {
        let key = format!("{}/api/v1/decisions/stream", self.base);
        let mut cursor = match local.load_positions(FLEET_SOURCE).await {
            Ok(saved) => saved
                .iter()
                .find(|p| p.path == key)
                .map(|p| p.offset as i64),
            Err(e) => {
                tracing::warn!(error = %e, "fleet: cannot read the saved stream cursor");
                None
            }
        };
        loop {
            match self.poll_stream(cursor).await {
                Ok(slice) => {
                    for change in &slice.changes {
                        if let Err(e) = self.apply(local.as_ref(), change).await {
                            tracing::error!(error = %e, "fleet: cannot apply a decision locally");
                        }
                    }
                    if cursor != Some(slice.cursor) {
                        cursor = Some(slice.cursor);
                        let saved = Position {
                            source: FLEET_SOURCE.to_owned(),
                            path: key.clone(),
                            dev: 0,
                            inode: 0,
                            offset: u64::try_from(slice.cursor).unwrap_or_default(),
                            fingerprint: None,
                            cursor: None,
                        };
                        if let Err(e) = local.save_position(&saved).await {
                            tracing::warn!(error = %e, "fleet: cannot save the stream cursor");
                        }
                    }
                    if slice.changes.is_empty() && cursor.is_none() {
                        tokio::time::sleep(self.config.follow_every.0).await;
                    }
                }
                Err(e) => {
                    self.stats.follow_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "fleet: cannot read the decision stream; retrying");
                    tokio::time::sleep(self.config.follow_every.0.max(Duration::from_secs(1)))
                        .await;
                }
            }
        }
    }

    async fn apply(
        &self,
        local: &dyn Store,
        change: &rampart_api::StreamChange,
    ) -> Result<(), StoreError> {
        let Some(mut decision) = change.decision.decision() else {
            tracing::warn!(
                id = change.decision.id,
                "fleet: unreadable decision in the stream"
            );
            return Ok(());
        };
        let now = Utc::now();
        match change.kind.as_str() {
            "added"
                if decision.action == Action::Ban
                    && !decision.dry_run
                    && decision.is_active(now)
                    && change.decision.revoked_at.is_none() =>
            {
                if covered(local, &decision, now).await? {
                    return Ok(());
                }
                decision.id = None;
                local.insert_decision(&decision).await?;
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                tracing::info!(ip = %rampart_core::addr::display_net(&decision.target), origin = %decision.origin, "fleet: ban from the server");
            }
            "revoked" => {
                let by = format!(
                    "server:{}",
                    change.decision.revoked_by.as_deref().unwrap_or("?")
                );
                let lifted = local.revoke(Some(&decision.target), &by, now).await?;
                if !lifted.is_empty() {
                    self.stats.applied.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(ip = %rampart_core::addr::display_net(&decision.target), "fleet: unban from the server");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The positions source under which the stream cursor is saved.
pub const FLEET_SOURCE: &str = "fleet";

/// Whether a local ban in force already covers `d`'s target at least as long.
async fn covered(local: &dyn Store, d: &Decision, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let active = local
        .query_decisions(&DecisionQuery {
            active_at: Some(now),
            target: Some(d.target),
            ..DecisionQuery::default()
        })
        .await?;
    Ok(active.iter().any(|s| {
        !s.decision.dry_run
            && s.decision.target == d.target
            && match (s.decision.until, d.until) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a >= b,
            }
    }))
}

fn rejected_count(bytes: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("rejected").and_then(Value::as_u64))
        .unwrap_or(0)
}

fn log_item(r: &RequestRecord) -> Item {
    Item::Log(json!({
        "timestamp": r.time,
        "source_ip": r.client,
        "request_path": r.path,
        "request_method": r.method,
        "user_agent": r.user_agent,
        "prediction": r.prediction,
        "confidence_score": r.score.clamp(0.0, 1.0),
        "is_blocked": u8::from(r.blocked),
        "response_status_code": r.status.clamp(100, 599),
        "response_time_ms": r.latency_ms.max(0.0),
        "request_size_bytes": r.request_bytes,
        "response_size_bytes": r.response_bytes,
        "gateway_id": r.gateway,
        "request_id": r.request_id,
        "reason": r.reason,
    }))
}

/// A node's store, reporting to the server (see the module docs).
pub struct FleetStore {
    local: Arc<dyn Store>,
    link: Arc<Link>,
}

impl FleetStore {
    /// Wraps `local`; the link's loops must be started with [`FleetStore::start`].
    pub fn new(local: Arc<dyn Store>, link: Arc<Link>) -> Self {
        Self { local, link }
    }

    /// Starts pushing, following and heartbeats; returns the tasks.
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(&self.link).push_loop()),
            tokio::spawn(Arc::clone(&self.link).follow_loop(Arc::clone(&self.local))),
            tokio::spawn(Arc::clone(&self.link).heartbeat_loop()),
        ]
    }

    /// The link.
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

#[async_trait]
impl Store for FleetStore {
    async fn insert_decision(&self, decision: &Decision) -> Result<i64, StoreError> {
        let id = self.local.insert_decision(decision).await?;
        if decision.action == Action::Ban {
            let mut pushed = decision.clone();
            pushed.id = None;
            self.link
                .enqueue([Item::Event(json!({"kind": "decision", "decision": pushed}))]);
        }
        Ok(id)
    }
    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        self.local.query_decisions(query).await
    }
    async fn get_decision(&self, id: i64) -> Result<Option<StoredDecision>, StoreError> {
        self.local.get_decision(id).await
    }
    async fn revoke(
        &self,
        target: Option<&IpNet>,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        self.local.revoke(target, by, at).await
    }
    async fn revoke_id(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.local.revoke_id(id, by, at).await
    }
    async fn changes_since(&self, cursor: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.local.changes_since(cursor, limit).await
    }
    async fn latest_cursor(&self) -> Result<i64, StoreError> {
        self.local.latest_cursor().await
    }
    async fn ban_history(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(IpNet, DateTime<Utc>)>, StoreError> {
        self.local.ban_history(since).await
    }
    async fn insert_finding(&self, finding: &Finding, note: &str) -> Result<i64, StoreError> {
        let id = self.local.insert_finding(finding, note).await?;
        self.link.enqueue([Item::Event(
            json!({"kind": "finding", "finding": finding, "note": note}),
        )]);
        Ok(id)
    }
    async fn recent_findings(&self, limit: u32) -> Result<Vec<StoredFinding>, StoreError> {
        self.local.recent_findings(limit).await
    }
    async fn save_position(&self, position: &Position) -> Result<(), StoreError> {
        self.local.save_position(position).await
    }
    async fn load_positions(&self, source: &str) -> Result<Vec<Position>, StoreError> {
        self.local.load_positions(source).await
    }
    async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        self.local.insert_requests(records).await?;
        self.link.enqueue(records.iter().map(log_item));
        Ok(())
    }
    async fn recent_requests(
        &self,
        client: Option<IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        self.local.recent_requests(client, limit).await
    }
    async fn purge_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.local.purge_requests(before).await
    }
    async fn purge_findings(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.local.purge_findings(before).await
    }
    async fn create_user(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.local.create_user(name, role, hash, at).await
    }
    async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        hash: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.local.update_user(name, role, hash, at).await
    }
    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.local.get_user(name).await
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.local.list_users().await
    }
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.local.create_token(name, role, hash, by, at).await
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError> {
        self.local.token_by_hash(hash).await
    }
    async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.local.revoke_token(name, at).await
    }
    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.local.list_tokens().await
    }
    async fn insert_events(&self, events: &[EventRecord]) -> Result<Vec<i64>, StoreError> {
        self.local.insert_events(events).await
    }
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        self.local.events_after(after, limit).await
    }
    async fn upsert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        self.local.upsert_agent(agent).await
    }
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.local.list_agents().await
    }
    async fn insert_action(&self, action: &ActionRecord) -> Result<i64, StoreError> {
        let id = self.local.insert_action(action).await?;
        self.link.enqueue([Item::Event(json!({
            "kind": "action", "time": action.time, "decision_id": action.decision_id,
            "action": action.action, "target": action.target, "ok": action.ok, "detail": action.detail,
        }))]);
        Ok(id)
    }
    async fn recent_actions(&self, limit: u32) -> Result<Vec<(i64, ActionRecord)>, StoreError> {
        self.local.recent_actions(limit).await
    }
    async fn insert_upload(&self, batch: &UploadBatch) -> Result<i64, StoreError> {
        self.local.insert_upload(batch).await
    }
    async fn recent_uploads(&self, limit: u32) -> Result<Vec<(i64, UploadBatch)>, StoreError> {
        self.local.recent_uploads(limit).await
    }
    async fn add_whitelist(
        &self,
        target: &IpNet,
        comment: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.local.add_whitelist(target, comment, by, at).await
    }
    async fn list_whitelist(&self) -> Result<Vec<WhitelistEntry>, StoreError> {
        self.local.list_whitelist().await
    }
    async fn delete_whitelist(&self, id: i64) -> Result<bool, StoreError> {
        self.local.delete_whitelist(id).await
    }
    async fn query_requests(
        &self,
        filter: &RequestFilter,
        offset: u64,
        limit: u32,
    ) -> Result<RequestPage, StoreError> {
        self.local.query_requests(filter, offset, limit).await
    }
    async fn requests_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredRequest>, StoreError> {
        self.local.requests_after(after, limit).await
    }
    async fn request_stats(
        &self,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<RequestStats, StoreError> {
        self.local.request_stats(since, top).await
    }
    async fn findings_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        self.local.findings_after(after, limit).await
    }
    async fn blocked_ips(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BlockedIp>, StoreError> {
        self.local.blocked_ips(now, limit).await
    }
    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.local.purge_events(before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(spool: usize, batch: usize) -> Arc<Link> {
        let config = FleetConfig {
            url: Some("http://127.0.0.1:9".to_owned()),
            token: Some("rpt_x".to_owned()),
            spool,
            batch,
            ..FleetConfig::default()
        };
        Link::new(&config, "n1".to_owned(), "agent").expect("link")
    }

    #[tokio::test]
    async fn a_full_spool_drops_the_oldest_and_counts_them() {
        let l = link(3, 2);
        l.enqueue((0..5).map(|i| Item::Event(json!(i))));
        assert_eq!(l.spooled(), 3);
        assert_eq!(l.stats.dropped.load(Ordering::Relaxed), 2);
        let front = l.spool.lock().unwrap().front().map(|i| format!("{i:?}"));
        assert_eq!(front.as_deref(), Some("Event(Number(2))"));
    }

    #[tokio::test]
    async fn an_unreachable_server_keeps_everything_spooled() {
        let l = link(10, 5);
        l.enqueue((0..4).map(|i| Item::Log(json!(i))));
        assert!(matches!(l.push_once().await, Err(LinkError::Transport(_))));
        assert_eq!(l.spooled(), 4);
        assert_eq!(l.stats.pushed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let config = FleetConfig {
            url: Some("https://server".to_owned()),
            token: Some("t".to_owned()),
            ..FleetConfig::default()
        };
        assert!(Link::new(&config, "n".into(), "agent").is_err());
    }
}

/// Exports a link's statistics as `rampart_fleet_*_total` counters and the
/// spool's length as `rampart_fleet_spooled`.
#[derive(Clone)]
pub struct FleetCollector(pub Arc<Link>);

impl std::fmt::Debug for FleetCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetCollector")
    }
}

impl prometheus_client::collector::Collector for FleetCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        for (name, help, value) in self.0.stats.counters() {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let gauge = ConstGauge::new(self.0.spooled() as i64);
        let metric = encoder.encode_descriptor(
            "fleet_spooled",
            "Items waiting to be pushed",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}
