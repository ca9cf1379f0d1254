//! rampart's store: decisions (with their findings as evidence), the
//! decision change log that enforcement points follow, findings, and the
//! positions of followed log files.
//!
//! One [`Store`] trait, implemented by [`sqlite::SqliteStore`] (embedded,
//! the default) and [`postgres::PgStore`] (fleets; several servers may
//! share one database); both pass the same [`test_suite`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
pub use rampart_core::{ChangeKind, Position};
use rampart_core::{Decision, Finding};
use rampart_core::{Prediction, RequestRecord};
use serde::{Deserialize, Serialize};

mod columns;
pub mod follow;
pub use follow::{ChangeSink, Follower};
pub mod postgres;
mod rollup;
mod server;
pub mod sql;
pub use server::{
    ActionRecord, AgentRecord, BlockedIp, EventRecord, HourCount, IpCount, PathCount,
    RequestFilter, RequestPage, RequestStats, StoredRequest, UploadBatch, WhitelistEntry,
};
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this build supports.
    #[error("unsupported database url {0:?}")]
    UnsupportedUrl(String),
    /// The database could not be opened or migrated.
    #[error("cannot open {url}: {source}")]
    Open {
        /// The URL (without secrets).
        url: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The name is taken (a user or token of that name exists).
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored row could not be read back (corrupt or from a newer version).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// A decision as stored, with its id and revocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    /// Row id (also in `decision.id`).
    pub id: i64,
    /// The decision.
    pub decision: Decision,
    /// When it was lifted by an unban, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who lifted it.
    pub revoked_by: Option<String>,
    /// The server's id of the decision, when it was made elsewhere in the
    /// fleet and applied here from the server's decision stream.
    pub remote_id: Option<i64>,
}

impl StoredDecision {
    /// A ban in force at `now`: not revoked and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.decision.is_active(now)
    }
}

/// One entry of the decision change log: what enforcement points follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the log; strictly increasing. A follower keeps the last
    /// one it applied as its cursor.
    pub seq: i64,
    /// What happened.
    pub kind: ChangeKind,
    /// The decision as it is after the change.
    pub decision: StoredDecision,
}

/// Which decisions to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionQuery {
    /// Only bans active at this time (not revoked, not expired).
    pub active_at: Option<DateTime<Utc>>,
    /// Only decisions whose target is this network or lies inside it.
    pub target: Option<IpNet>,
    /// Only decisions made by this scenario.
    pub scenario: Option<String>,
    /// Only dry-run (`Some(true)`) or only enforced (`Some(false)`) decisions.
    pub dry_run: Option<bool>,
    /// At most this many, newest first. `None`: all.
    pub limit: Option<u32>,
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    /// Row id.
    pub id: i64,
    /// The finding.
    pub finding: Finding,
    /// The decision it led to, if any.
    pub decision_id: Option<i64>,
    /// Why no decision followed, if none did (`whitelisted`, `already banned`, `dry run`…).
    pub note: Option<String>,
}

/// What a user or token may do. Each role can do what the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Machines (agents, gateways): push events and request logs, read decisions.
    Agent,
    /// People who read everything.
    Viewer,
    /// Viewers who also ban and unban.
    Operator,
    /// Operators who also manage users and tokens.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored (or typed) name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "agent" => Some(Role::Agent),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A person allowed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// What the user may do (never `Agent`).
    pub role: Role,
    /// argon2 PHC string.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When the role or password last changed.
    pub updated_at: DateTime<Utc>,
}

/// A machine (or script) token. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Row id.
    pub id: i64,
    /// Its name (`agent-web-1`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// Who created it.
    pub created_by: String,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When revoked; a revoked token lets nothing in.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Contract shared by every role trait: every method is atomic (a failed
/// call changes nothing); times are stored with at least millisecond
/// precision and returned in UTC; methods may be called concurrently from
/// many tasks and processes (SQLite runs in WAL mode with a busy timeout).
///
/// Decisions (with their findings as evidence) and the decision change log
/// that enforcement points follow.
///
/// Contract: `insert_decision`, `import_decision` and the revocations
/// append to the change log in the same transaction as their rows, so a
/// follower of [`DecisionStore::changes_since`] never misses a change and
/// never sees one whose decision is not readable.
#[async_trait]
pub trait DecisionStore: Send + Sync {
    /// Stores a decision (its findings go into the findings table too, linked
    /// to it) and appends an `Added` change. Returns the decision's id.
    async fn insert_decision(&self, decision: &Decision) -> Result<i64, StoreError>;

    /// Stores a decision made elsewhere in the fleet, as the server's
    /// decision `remote_id` (so that it is known not to be this node's own:
    /// the fleet outbox does not push it back), and appends an `Added`
    /// change. Returns the local id.
    async fn import_decision(&self, decision: &Decision, remote_id: i64)
    -> Result<i64, StoreError>;

    /// Decisions matching `query`, newest first.
    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<StoredDecision>, StoreError>;

    /// One decision by id.
    async fn get_decision(&self, id: i64) -> Result<Option<StoredDecision>, StoreError>;

    /// Lifts every ban active at `at` whose target equals `target` or lies
    /// inside it (`None`: every active ban), recording who did it, and
    /// appends a `Revoked` change for each. Returns the ids lifted.
    async fn revoke(
        &self,
        target: Option<&IpNet>,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError>;

    /// Lifts one decision by id if it is not already revoked; true when it was lifted.
    async fn revoke_id(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Changes after `cursor` (0 for all), oldest first, at most `limit`.
    async fn changes_since(&self, cursor: i64, limit: u32) -> Result<Vec<Change>, StoreError>;

    /// The newest change's seq (0 when there is none).
    async fn latest_cursor(&self) -> Result<i64, StoreError>;

    /// Targets and times of bans made at or after `since` (dry-run ones
    /// too, revoked ones too): what escalation counts.
    async fn ban_history(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(IpNet, DateTime<Utc>)>, StoreError>;

    /// Banned networks summed over their (non-dry-run) ban decisions,
    /// latest ban first, at most `limit`; `now` decides which are active.
    async fn blocked_ips(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BlockedIp>, StoreError>;
}

/// Findings: detectors' verdicts, those behind a decision and those that
/// led to none.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Stores a finding that led to no decision, with the reason why.
    async fn insert_finding(&self, finding: &Finding, note: &str) -> Result<i64, StoreError>;

    /// Findings, newest first, at most `limit`.
    async fn recent_findings(&self, limit: u32) -> Result<Vec<StoredFinding>, StoreError>;

    /// Findings with an id above `after`, oldest first, at most `limit`.
    async fn findings_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError>;

    /// Retention: deletes findings older than `before` that led to no
    /// decision (those behind a decision stay as its evidence); returns how many.
    async fn purge_findings(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Where followed sources (files, the journal, the fleet's stream and
/// outbox) were left.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait PositionStore: Send + Sync {
    /// Saves (replaces) the position of `position.source` / `position.path`.
    async fn save_position(&self, position: &Position) -> Result<(), StoreError>;

    /// Saved positions of a source.
    async fn load_positions(&self, source: &str) -> Result<Vec<Position>, StoreError>;
}

/// The request log of gateways, its queries, statistics and retention.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait RequestLog: Send + Sync {
    /// Appends request-log records, all in one transaction.
    async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError>;

    /// Request-log records, newest first, at most `limit`; only those of
    /// `client` when given.
    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError>;

    /// One page (`offset`, `limit`) of request-log records matching
    /// `filter`, newest first, with the number of all that match.
    async fn query_requests(
        &self,
        filter: &RequestFilter,
        offset: u64,
        limit: u32,
    ) -> Result<RequestPage, StoreError>;

    /// Request-log records with an id above `after`, oldest first, at most `limit`.
    async fn requests_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredRequest>, StoreError>;

    /// Statistics of the request log since `since` (and findings per
    /// scenario), with the `top` busiest clients and paths.
    async fn request_stats(
        &self,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<RequestStats, StoreError>;

    /// Retention: deletes request-log records older than `before`; returns how many.
    async fn purge_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The people and machine tokens allowed into the server.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Adds a user; [`StoreError::Conflict`] when the name is taken.
    async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// Changes a user's role and/or password hash; false when there is no such user.
    async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        password_hash: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// One user by name.
    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError>;

    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Adds a token (its secret's hash); [`StoreError::Conflict`] when the name is taken.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_hash: &str,
        created_by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// The token whose secret hashes to `secret_hash` (revoked ones too).
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>, StoreError>;

    /// Revokes a token by name; false when there is none not already revoked.
    async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Every token, by name.
    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError>;
}

/// What the central server keeps of its fleet: pushed events, members
/// and their heartbeats, upload batches.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait FleetRegistry: Send + Sync {
    /// Stores pushed events, all in one transaction; returns their ids in order.
    async fn insert_events(&self, events: &[EventRecord]) -> Result<Vec<i64>, StoreError>;

    /// Events with an id above `after`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, EventRecord)>, StoreError>;

    /// Records (replaces) a fleet member's heartbeat.
    async fn upsert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError>;

    /// Every fleet member, by id.
    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError>;

    /// Records an upload; returns its id.
    async fn insert_upload(&self, batch: &UploadBatch) -> Result<i64, StoreError>;

    /// Uploads, newest first, at most `limit`.
    async fn recent_uploads(&self, limit: u32) -> Result<Vec<(i64, UploadBatch)>, StoreError>;

    /// Retention: deletes events and uploads older than `before`; returns how many.
    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// What actuators did (or failed to do) about decisions: every attempt.
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait ActionLog: Send + Sync {
    /// Records what an actuator did.
    async fn insert_action(&self, action: &ActionRecord) -> Result<i64, StoreError>;

    /// Actions, newest first, at most `limit`.
    async fn recent_actions(&self, limit: u32) -> Result<Vec<(i64, ActionRecord)>, StoreError>;

    /// Actions with an id above `after`, oldest first, at most `limit`.
    async fn actions_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ActionRecord)>, StoreError>;

    /// Retention: deletes actions older than `before`; returns how many.
    async fn purge_actions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Whitelist entries kept in the store (besides those in configuration).
///
/// See [`DecisionStore`] for the contract every role trait shares.
#[async_trait]
pub trait WhitelistStore: Send + Sync {
    /// Adds a whitelist entry; [`StoreError::Conflict`] when that network is listed.
    async fn add_whitelist(
        &self,
        target: &IpNet,
        comment: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError>;

    /// Every stored whitelist entry, by id.
    async fn list_whitelist(&self) -> Result<Vec<WhitelistEntry>, StoreError>;

    /// Deletes a whitelist entry; false when there was none.
    async fn delete_whitelist(&self, id: i64) -> Result<bool, StoreError>;
}

/// rampart's persistent state: every role trait. Roles take the narrowest
/// trait they need (an `Arc<dyn Store>` coerces to any of them).
pub trait Store:
    DecisionStore
    + FindingStore
    + PositionStore
    + RequestLog
    + AccountStore
    + FleetRegistry
    + ActionLog
    + WhitelistStore
{
}

impl<T> Store for T where
    T: DecisionStore
        + FindingStore
        + PositionStore
        + RequestLog
        + AccountStore
        + FleetRegistry
        + ActionLog
        + WhitelistStore
        + ?Sized
{
}

/// Opens the store a URL names: `sqlite:///path/to/db` (created with its
/// directory if missing), `sqlite::memory:`, or `postgres://user@host/db`
/// (migrated on open).
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
