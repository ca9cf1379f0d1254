//! The PostgreSQL store: one database shared by any number of rampart
//! processes (agents, gateways, the CLI) on any number of hosts.
//!
//! The schema is the SQLite one with PostgreSQL types (`migrations/postgres/`):
//! times are BIGINT milliseconds since the epoch, flags BOOLEAN, targets text
//! plus their address range as big-endian BYTEA (bytea compares bytewise, so
//! "lies inside" filters run in SQL on an index), u64 values BIGINT with the
//! same bits. Every write that touches more than one row runs in one
//! transaction at the default READ COMMITTED isolation.
//!
//! Request-log statistics and query totals read rollups (per minute, per
//! hour and client or path) that `insert_requests` updates in the batch's
//! own transaction, holding [`ROLLUP_LOCK`], and `purge_requests` trims in
//! its own; see `crate::rollup` and `migrations/postgres/0004_server.sql`.
//!
//! # The change log never lets a follower skip a change
//!
//! `decision_changes.seq` comes from a sequence, and sequence values are
//! handed out when a row is inserted, not when its transaction commits. Two
//! transactions appending at once could commit seq 8 after seq 9; a follower
//! that read 9 in between would move its cursor past 8 and never see it.
//! So every transaction that appends to the change log first takes the
//! transaction-level advisory lock [`CHANGE_LOG_LOCK`]
//! (`pg_advisory_xact_lock`), right before it inserts its change rows, and
//! holds it until it commits or rolls back. Appends are serialised: a seq is
//! taken only by the lock holder, and PostgreSQL makes a commit visible
//! before it releases the transaction's locks, so when a follower sees a seq,
//! every smaller seq is committed and visible too. Only the change-log
//! appends queue on the lock (after the decision rows are written, and
//! nothing waits on a row lock while holding it), so it cannot deadlock.
//!
//! # Migrations with several openers
//!
//! Several servers opening one database at once each run the migrations.
//! sqlx's PostgreSQL migrator takes a session-level advisory lock (keyed by
//! the database name) before it even creates its `_sqlx_migrations` table, so
//! openers queue and the later ones find everything applied. The migrator
//! runs on a connection of its own, closed afterwards: a session lock left
//! behind by a failed run dies with that connection instead of lingering on a
//! pooled one. A failed run is retried once on a new connection.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query_builder::Separated;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::columns::*;
use crate::rollup::*;
use crate::{
    ActionRecord, AgentRecord, BlockedIp, Change, ChangeKind, DecisionQuery, EventRecord,
    HourCount, IpCount, PathCount, Position, Prediction, RequestFilter, RequestPage, RequestRecord,
    RequestStats, Role, Store, StoreError, StoredDecision, StoredFinding, StoredRequest, Token,
    UploadBatch, User, WhitelistEntry,
};

/// The advisory lock every transaction appending to `decision_changes`
/// holds from just before its first change row until it ends: the bytes of
/// `"rampart"` followed by 1 (change log). See the module docs.
pub const CHANGE_LOG_LOCK: i64 = 0x7261_6d70_6172_7401;

/// The advisory lock every transaction writing request-log rollups holds
/// from its first rollup row until it ends: `"rampart"` followed by 2.
/// Concurrent batches update the same rollup rows (this minute's, a busy
/// client's) and would wait on each other's row locks anyway; taking the
/// lock first makes them queue instead of deadlocking with each other or
/// with a purge. Request-log rows themselves are inserted before it.
pub const ROLLUP_LOCK: i64 = 0x7261_6d70_6172_7402;

/// How the statistics and request-log queries read: one snapshot for
/// every statement of the call.
const READ_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Connections of the pool. A handful covers an agent's or a gateway's
/// concurrent calls; many servers share one PostgreSQL whose default limit
/// is 100 connections.
const MAX_CONNECTIONS: u32 = 8;

/// How long a call waits for a free pooled connection (or a new one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The columns of `decisions` (aliased `d`) that [`decision_from_row`] reads.
macro_rules! decision_columns {
    () => {
        "d.id, d.action, d.target, d.at, d.until, d.reason, d.origin_kind, d.origin_name, \
         d.dry_run, d.escalation, d.findings_json, d.revoked_at, d.revoked_by"
    };
}

/// The columns of `findings` that [`finding_from_row`] reads.
macro_rules! finding_columns {
    () => {
        "id, time, subject_json, label, score, level, evidence_json, decision_id, note"
    };
}

/// The columns of `request_log` that [`request_from_row`] reads.
macro_rules! request_columns {
    () => {
        "time, gateway, request_id, client, method, path, user_agent, status, request_bytes, \
         response_bytes, latency_ms, score, prediction, blocked, reason, backend"
    };
}

/// The condition on `d` for a ban active at a time: push the time bound
/// next, then `)`. Mirrors [`StoredDecision::is_active`].
const ACTIVE_BAN: &str =
    "d.revoked_at IS NULL AND d.action = 'ban' AND (d.until IS NULL OR d.until > ";

/// [`Store`] on PostgreSQL through an sqlx pool.
///
/// Any number of handles, in one process or many, on one host or many, may
/// use one database at once: each sees the others' committed writes and one
/// change log, in commit order.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `postgres://…` (or `postgresql://…`) and runs the
    /// migrations. Concurrent openers are safe: several servers share one
    /// database, and the migrator serialises them with an advisory lock.
    /// The database itself must exist.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        }
        let open_error = |source: sqlx::Error| StoreError::Open {
            url: redact(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(open_error)?;

        // Connecting waits up to ACQUIRE_TIMEOUT for a server that refuses
        // connections or is starting up; any other failure (authentication,
        // no such database) is reported at once.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;

        if let Err(first) = migrate(&options).await {
            // A dropped connection or a server restarting while we migrate:
            // a second run on a new connection finds what the first applied.
            // Any lasting failure fails again and is reported.
            tracing::debug!(error = %first, "migration failed, retrying once");
            if let Err(second) = migrate(&options).await {
                pool.close().await;
                return Err(open_error(second));
            }
        }
        Ok(Self { pool })
    }

    /// The connection pool, for maintenance and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection. Calls after this fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Runs the migrations on a connection of their own (a pool of one, as
/// `Migrator::run` on a pool keeps the future `Send`), closed afterwards
/// whether or not they succeeded, so the migrator's session lock never
/// outlives the run.
async fn migrate(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let result = sqlx::migrate!("./migrations/postgres").run(&pool).await;
    pool.close().await;
    result.map_err(sqlx::Error::from)
}

#[async_trait]
impl Store for PgStore {
    async fn insert_decision(&self, decision: &Decision) -> Result<i64, StoreError> {
        let row = TargetColumns::of(&decision.target);
        let findings_json = to_json(&decision.findings)?;
        let at = to_ms(decision.at);

        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO decisions (action, target, net_family, range_start, range_end, at, \
             until, reason, origin_kind, origin_name, dry_run, escalation, findings_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(decision.action.as_str())
        .bind(decision.target.to_string())
        .bind(i16::from(row.family))
        .bind(row.start)
        .bind(row.end)
        .bind(at)
        .bind(decision.until.map(to_ms))
        .bind(&decision.reason)
        .bind(decision.origin.kind())
        .bind(decision.origin.name())
        .bind(decision.dry_run)
        .bind(i64::from(decision.escalation))
        .bind(findings_json)
        .fetch_one(&mut *tx)
        .await?;

        for finding in &decision.findings {
            insert_finding_row(&mut tx, finding, Some(id), None).await?;
        }
        lock_change_log(&mut tx).await?;
        append_change(&mut tx, id, ChangeKind::Added, at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions d WHERE TRUE"
        ));
        if let Some(at) = query.active_at {
            sql.push(" AND ")
                .push(ACTIVE_BAN)
                .push_bind(to_ms(at))
                .push(")");
        }
        if let Some(target) = &query.target {
            push_inside(&mut sql, target);
        }
        if let Some(scenario) = &query.scenario {
            sql.push(" AND d.origin_kind = 'scenario' AND d.origin_name = ")
                .push_bind(scenario.clone());
        }
        if let Some(dry_run) = query.dry_run {
            sql.push(" AND d.dry_run = ").push_bind(dry_run);
        }
        sql.push(" ORDER BY d.at DESC, d.id DESC");
        if let Some(limit) = query.limit {
            sql.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(decision_from_row).collect()
    }

    async fn get_decision(&self, id: i64) -> Result<Option<StoredDecision>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions d WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decision_from_row).transpose()
    }

    async fn revoke(
        &self,
        target: Option<&IpNet>,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let at_ms = to_ms(at);
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new("UPDATE decisions AS d SET revoked_at = ");
        sql.push_bind(at_ms)
            .push(", revoked_by = ")
            .push_bind(by.to_owned())
            .push(" WHERE ")
            .push(ACTIVE_BAN)
            .push_bind(at_ms)
            .push(")");
        if let Some(target) = target {
            push_inside(&mut sql, target);
        }
        sql.push(" RETURNING d.id");

        // A concurrent revocation of the same rows waits for our row locks,
        // then re-checks `revoked_at IS NULL` and skips them: each ban is
        // lifted, and logged, once.
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<i64> = sql.build_query_scalar().fetch_all(&mut *tx).await?;
        ids.sort_unstable();
        if !ids.is_empty() {
            lock_change_log(&mut tx).await?;
        }
        for &id in &ids {
            append_change(&mut tx, id, ChangeKind::Revoked, at_ms).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn revoke_id(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let at_ms = to_ms(at);
        let mut tx = self.pool.begin().await?;
        let lifted = sqlx::query(
            "UPDATE decisions SET revoked_at = $1, revoked_by = $2 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(at_ms)
        .bind(by)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if lifted {
            lock_change_log(&mut tx).await?;
            append_change(&mut tx, id, ChangeKind::Revoked, at_ms).await?;
        }
        tx.commit().await?;
        Ok(lifted)
    }

    async fn changes_since(&self, cursor: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT c.seq, c.kind, ",
            decision_columns!(),
            " FROM decision_changes c JOIN decisions d ON d.id = c.decision_id \
             WHERE c.seq > $1 ORDER BY c.seq LIMIT $2"
        ))
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from_row).collect()
    }

    async fn latest_cursor(&self) -> Result<i64, StoreError> {
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM decision_changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    async fn ban_history(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(IpNet, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT target, at FROM decisions \
             WHERE action = 'ban' AND at >= $1 ORDER BY at, id",
        )
        .bind(to_ms(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let target = parse_target(&get::<String>(row, DECISIONS, "target")?)?;
                let at = from_ms(DECISIONS, "at", get(row, DECISIONS, "at")?)?;
                Ok((target, at))
            })
            .collect()
    }

    async fn insert_finding(&self, finding: &Finding, note: &str) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_finding_row(&mut conn, finding, None, Some(note)).await
    }

    async fn recent_findings(&self, limit: u32) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings ORDER BY time DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn save_position(&self, position: &Position) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO positions (source, path, dev, inode, \"offset\", fingerprint, cursor, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (source, path) DO UPDATE SET dev = excluded.dev, \
             inode = excluded.inode, \"offset\" = excluded.\"offset\", \
             fingerprint = excluded.fingerprint, cursor = excluded.cursor, \
             updated_at = excluded.updated_at",
        )
        .bind(&position.source)
        .bind(&position.path)
        .bind(u64_to_sql(position.dev))
        .bind(u64_to_sql(position.inode))
        .bind(u64_to_sql(position.offset))
        .bind(position.fingerprint.map(u64_to_sql))
        .bind(&position.cursor)
        .bind(to_ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_positions(&self, source: &str) -> Result<Vec<Position>, StoreError> {
        // `COLLATE "C"`: paths in byte order, whatever the database's locale.
        let rows = sqlx::query(
            "SELECT source, path, dev, inode, \"offset\", fingerprint, cursor \
             FROM positions WHERE source = $1 ORDER BY path COLLATE \"C\"",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Position {
                    source: get(row, POSITIONS, "source")?,
                    path: get(row, POSITIONS, "path")?,
                    dev: sql_to_u64(get(row, POSITIONS, "dev")?),
                    inode: sql_to_u64(get(row, POSITIONS, "inode")?),
                    offset: sql_to_u64(get(row, POSITIONS, "offset")?),
                    fingerprint: get::<Option<i64>>(row, POSITIONS, "fingerprint")?.map(sql_to_u64),
                    cursor: get(row, POSITIONS, "cursor")?,
                })
            })
            .collect()
    }

    async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        {
            // Statements of a few fixed sizes only, so that the prepared
            // statement cache hits (one cached statement per distinct SQL).
            let mut rest = records;
            for size in REQUEST_ROWS_PER_STATEMENT {
                while rest.len() >= size {
                    let (chunk, tail) = rest.split_at(size);
                    insert_request_rows(&mut tx, chunk).await?;
                    rest = tail;
                }
            }
        }
        lock_rollups(&mut tx).await?;
        write_rollup(&mut tx, &Rollup::of(records)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            request_columns!(),
            " FROM request_log"
        ));
        if let Some(client) = client {
            sql.push(" WHERE client = ").push_bind(client.to_string());
        }
        sql.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(request_from_row).collect()
    }

    async fn purge_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_ms(before);
        let mut tx = self.pool.begin().await?;
        lock_rollups(&mut tx).await?;
        purge_rollups(&mut tx, before).await?;
        let done = sqlx::query("DELETE FROM request_log WHERE time < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn purge_findings(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM findings WHERE time < $1 AND decision_id IS NULL")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(to_ms(at))
        .bind(to_ms(at))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or_query(e, &format!("user {name:?}")))
    }

    async fn update_user(
        &self,
        name: &str,
        role: Option<Role>,
        password_hash: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET role = COALESCE($1, role), password_hash = COALESCE($2, password_hash), updated_at = $3 WHERE name = $4",
        )
        .bind(role.map(Role::as_str))
        .bind(password_hash)
        .bind(to_ms(at))
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, password_hash, created_at, updated_at FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, password_hash, created_at, updated_at FROM users ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn create_token(
        &self,
        name: &str,
        role: Role,
        secret_hash: &str,
        created_by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO tokens (name, role, secret_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(secret_hash)
        .bind(created_by)
        .bind(to_ms(at))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or_query(e, &format!("token {name:?}")))
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, secret_hash, created_by, created_at, revoked_at FROM tokens WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(to_ms(at))
                .bind(name)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, secret_hash, created_by, created_at, revoked_at FROM tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    // ---- the central server's tables ----

    async fn insert_events(&self, events: &[EventRecord]) -> Result<Vec<i64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (time, node, kind, source_ip, label, payload_json) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(to_ms(event.time))
            .bind(&event.node)
            .bind(&event.kind)
            .bind(event.source_ip.map(|ip| ip.to_string()))
            .bind(&event.label)
            .bind(to_json(&event.payload)?)
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, node, kind, source_ip, label, payload_json FROM events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn upsert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, kind, address, version, started_at, last_seen, processed, \
             blocked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, address = excluded.address, \
             version = excluded.version, started_at = excluded.started_at, \
             last_seen = excluded.last_seen, processed = excluded.processed, \
             blocked = excluded.blocked",
        )
        .bind(&agent.id)
        .bind(&agent.kind)
        .bind(&agent.address)
        .bind(&agent.version)
        .bind(to_ms(agent.started_at))
        .bind(to_ms(agent.last_seen))
        .bind(u64_to_sql(agent.processed))
        .bind(u64_to_sql(agent.blocked))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, address, version, started_at, last_seen, processed, blocked \
             FROM agents ORDER BY id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn insert_action(&self, action: &ActionRecord) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO actions (time, node, decision_id, action, target, ok, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(to_ms(action.time))
        .bind(&action.node)
        .bind(action.decision_id)
        .bind(&action.action)
        .bind(&action.target)
        .bind(action.ok)
        .bind(&action.detail)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn recent_actions(&self, limit: u32) -> Result<Vec<(i64, ActionRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, node, decision_id, action, target, ok, detail FROM actions \
             ORDER BY time DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn insert_upload(&self, batch: &UploadBatch) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO upload_batches (time, principal, kind, accepted, rejected, errors_json) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(to_ms(batch.time))
        .bind(&batch.principal)
        .bind(&batch.kind)
        .bind(u64_to_sql(batch.accepted))
        .bind(u64_to_sql(batch.rejected))
        .bind(to_json(&batch.errors)?)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn recent_uploads(&self, limit: u32) -> Result<Vec<(i64, UploadBatch)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, time, principal, kind, accepted, rejected, errors_json \
             FROM upload_batches ORDER BY time DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn add_whitelist(
        &self,
        target: &IpNet,
        comment: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let range = TargetColumns::of(target);
        sqlx::query_scalar(
            "INSERT INTO whitelist (target, net_family, range_start, range_end, comment, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(target.to_string())
        .bind(i16::from(range.family))
        .bind(range.start)
        .bind(range.end)
        .bind(comment)
        .bind(by)
        .bind(to_ms(at))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or_query(e, &format!("whitelist entry {}", target.trunc())))
    }

    async fn list_whitelist(&self) -> Result<Vec<WhitelistEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, target, comment, created_by, created_at FROM whitelist ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(whitelist_from_row).collect()
    }

    async fn delete_whitelist(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM whitelist WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn query_requests(
        &self,
        filter: &RequestFilter,
        offset: u64,
        limit: u32,
    ) -> Result<RequestPage, StoreError> {
        // One snapshot for the total and the page.
        let mut tx = self.pool.begin_with(READ_SNAPSHOT).await?;
        let total = count_requests(&mut tx, filter).await?;

        let mut sql = QueryBuilder::<Postgres>::new(concat!(
            "SELECT id, ",
            request_columns!(),
            " FROM request_log WHERE TRUE"
        ));
        push_request_filter(&mut sql, filter);
        sql.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let requests = rows
            .iter()
            .map(stored_request_from_row)
            .collect::<Result<_, _>>()?;
        Ok(RequestPage { total, requests })
    }

    async fn requests_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredRequest>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT id, ",
            request_columns!(),
            " FROM request_log WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_request_from_row).collect()
    }

    async fn request_stats(
        &self,
        since: DateTime<Utc>,
        top: u32,
    ) -> Result<RequestStats, StoreError> {
        let since_ms = to_ms(since);
        let whole_from = ceil_to(since_ms, MINUTE_MS);
        let top = i64::from(top);
        // One snapshot for every part.
        let mut tx = self.pool.begin_with(READ_SNAPSHOT).await?;

        // Whole minutes from the rollup, the partial first one from the log.
        let mut sums = sqlx::query(
            "SELECT prediction, blocked, SUM(requests)::BIGINT AS requests, \
             SUM(score_sum) AS score_sum \
             FROM request_rollup_minute WHERE minute >= $1 GROUP BY prediction, blocked",
        )
        .bind(whole_from)
        .fetch_all(&mut *tx)
        .await?;
        if whole_from > since_ms {
            sums.extend(
                sqlx::query(
                    "SELECT prediction, blocked, COUNT(*) AS requests, SUM(score) AS score_sum \
                     FROM request_log WHERE time >= $1 AND time < $2 GROUP BY prediction, blocked",
                )
                .bind(since_ms)
                .bind(whole_from)
                .fetch_all(&mut *tx)
                .await?,
            );
        }
        let totals = Totals::of(
            sums.iter()
                .map(prediction_sum_from_row)
                .collect::<Result<Vec<_>, _>>()?,
        )?;

        let by_hour = sqlx::query(
            "SELECT minute - (minute % 3600000 + 3600000) % 3600000 AS hour, \
             SUM(requests)::BIGINT AS requests, \
             SUM(CASE WHEN blocked THEN requests ELSE 0 END)::BIGINT AS blocked \
             FROM request_rollup_minute WHERE minute >= $1 GROUP BY 1 ORDER BY 1",
        )
        .bind(floor_to(since_ms, HOUR_MS))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(hour_count_from_row)
        .collect::<Result<Vec<_>, _>>()?;

        let (oldest, newest): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(hour) FROM request_rollup_ip_hour), \
             (SELECT MAX(hour) FROM request_rollup_ip_hour)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let top_ips =
            match TopSource::choose(since_ms, oldest, newest) {
                TopSource::Nothing => Vec::new(),
                TopSource::Totals => {
                    sqlx::query(
                        "SELECT client, requests, score_sum FROM request_rollup_ip_total \
                     ORDER BY requests DESC, client LIMIT $1",
                    )
                    .bind(top)
                    .fetch_all(&mut *tx)
                    .await?
                }
                TopSource::TotalsLessBefore(first) => sqlx::query(
                    "SELECT t.client AS client, t.requests - COALESCE(o.requests, 0) AS requests, \
                     t.score_sum - COALESCE(o.score_sum, 0) AS score_sum \
                     FROM request_rollup_ip_total t LEFT JOIN (SELECT client, \
                     SUM(requests)::BIGINT AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour < $1 GROUP BY client) o \
                     ON o.client = t.client \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT $2",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?,
                TopSource::Window(first) => sqlx::query(
                    "SELECT client, SUM(requests)::BIGINT AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour >= $1 GROUP BY client \
                     ORDER BY 2 DESC, 1 LIMIT $2",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?,
            }
            .iter()
            .map(ip_count_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let (oldest, newest): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT MIN(hour) FROM request_rollup_path_hour), \
             (SELECT MAX(hour) FROM request_rollup_path_hour)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let top_paths =
            match TopSource::choose(since_ms, oldest, newest) {
                TopSource::Nothing => Vec::new(),
                TopSource::Totals => {
                    sqlx::query(
                        "SELECT path, requests FROM request_rollup_path_total \
                     ORDER BY requests DESC, path LIMIT $1",
                    )
                    .bind(top)
                    .fetch_all(&mut *tx)
                    .await?
                }
                TopSource::TotalsLessBefore(first) => {
                    sqlx::query(
                        "SELECT t.path AS path, t.requests - COALESCE(o.requests, 0) AS requests \
                     FROM request_rollup_path_total t LEFT JOIN (SELECT path, \
                     SUM(requests)::BIGINT AS requests FROM request_rollup_path_hour \
                     WHERE hour < $1 GROUP BY path) o ON o.path = t.path \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT $2",
                    )
                    .bind(first)
                    .bind(top)
                    .fetch_all(&mut *tx)
                    .await?
                }
                TopSource::Window(first) => sqlx::query(
                    "SELECT path, SUM(requests)::BIGINT AS requests FROM request_rollup_path_hour \
                     WHERE hour >= $1 GROUP BY path ORDER BY 2 DESC, 1 LIMIT $2",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?,
            }
            .iter()
            .map(path_count_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let by_scenario = sqlx::query_as::<_, (String, i64)>(
            "SELECT label, COUNT(*) FROM findings WHERE time >= $1 \
             GROUP BY label ORDER BY 2 DESC, label COLLATE \"C\"",
        )
        .bind(since_ms)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(label, n)| (label, count(n)))
        .collect();
        tx.commit().await?;

        Ok(RequestStats {
            total: totals.total,
            blocked: totals.blocked,
            score_sum: totals.score_sum,
            by_prediction: totals.by_prediction,
            by_hour,
            top_ips,
            top_paths,
            by_scenario,
        })
    }

    async fn findings_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn blocked_ips(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BlockedIp>, StoreError> {
        // A decision with several findings joins once per finding: bans are
        // counted by distinct id; MIN, MAX and AVG are unaffected.
        let rows = sqlx::query(
            "SELECT d.target AS target, MIN(d.at) AS first_seen, MAX(d.at) AS last_blocked, \
             COUNT(DISTINCT d.id) AS bans, COALESCE(AVG(f.score), 0.0) AS avg_score, \
             BOOL_OR(d.revoked_at IS NULL AND (d.until IS NULL OR d.until > $1)) AS active \
             FROM decisions d LEFT JOIN findings f ON f.decision_id = d.id \
             WHERE d.action = 'ban' AND NOT d.dry_run \
             GROUP BY d.target ORDER BY MAX(d.at) DESC, MAX(d.id) DESC LIMIT $2",
        )
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(blocked_ip_from_row).collect()
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_ms(before);
        let mut tx = self.pool.begin().await?;
        let mut purged = 0;
        for sql in [
            "DELETE FROM events WHERE time < $1",
            "DELETE FROM actions WHERE time < $1",
            "DELETE FROM upload_batches WHERE time < $1",
        ] {
            purged += sqlx::query(sql)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(purged)
    }
}

async fn insert_request_rows(
    conn: &mut PgConnection,
    rows: &[RequestRecord],
) -> Result<(), StoreError> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "INSERT INTO request_log (time, gateway, request_id, client, method, path, \
         user_agent, status, request_bytes, response_bytes, latency_ms, score, \
         prediction, blocked, reason, backend) ",
    );
    sql.push_values(rows, |mut row, r| {
        row.push_bind(to_ms(r.time))
            .push_bind(&r.gateway)
            .push_bind(&r.request_id)
            .push_bind(r.client.to_string())
            .push_bind(&r.method)
            .push_bind(&r.path)
            .push_bind(&r.user_agent)
            .push_bind(i32::from(r.status))
            .push_bind(u64_to_sql(r.request_bytes))
            .push_bind(u64_to_sql(r.response_bytes))
            .push_bind(r.latency_ms)
            .push_bind(r.score)
            .push_bind(r.prediction.as_str())
            .push_bind(r.blocked)
            .push_bind(&r.reason)
            .push_bind(&r.backend);
    });
    sql.build().execute(conn).await?;
    Ok(())
}

/// Appends ` AND …` for each field of `filter` (on `request_log`). A
/// non-NORMAL prediction and a status other than 200 repeat the condition
/// of their partial index, so that a generic plan may use it.
fn push_request_filter(sql: &mut QueryBuilder<Postgres>, filter: &RequestFilter) {
    if let Some(since) = filter.since {
        sql.push(" AND time >= ").push_bind(to_ms(since));
    }
    if let Some(client) = filter.client {
        sql.push(" AND client = ").push_bind(client.to_string());
    }
    if let Some(prefix) = &filter.path_prefix {
        // An exact prefix test with no pattern characters to escape.
        sql.push(" AND starts_with(path, ")
            .push_bind(prefix.clone())
            .push(")");
    }
    if let Some(prediction) = filter.prediction {
        sql.push(" AND prediction = ")
            .push_bind(prediction.as_str());
        if prediction != Prediction::Normal {
            sql.push(" AND prediction <> 'NORMAL'");
        }
    }
    if let Some(blocked) = filter.blocked {
        sql.push(" AND blocked = ").push_bind(blocked);
    }
    if let Some(status) = filter.status {
        sql.push(" AND status = ").push_bind(i32::from(status));
        if status != 200 {
            sql.push(" AND status <> 200");
        }
    }
    if let Some(gateway) = &filter.gateway {
        sql.push(" AND gateway = ").push_bind(gateway.clone());
    }
}

/// The number of request-log records matching `filter`: from a minute
/// rollup and the partial first minute when the filter allows (see
/// [`CountFrom`]), else counted in the log.
async fn count_requests(
    conn: &mut PgConnection,
    filter: &RequestFilter,
) -> Result<u64, StoreError> {
    let from = CountFrom::of(filter);
    if from == CountFrom::Log {
        let mut sql = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM request_log WHERE 1 = 1");
        push_request_filter(&mut sql, filter);
        return Ok(count(sql.build_query_scalar().fetch_one(&mut *conn).await?));
    }
    let whole_from = filter.since.map(|s| ceil_to(to_ms(s), MINUTE_MS));
    let mut sql = QueryBuilder::<Postgres>::new(if from == CountFrom::Detail {
        "SELECT COALESCE(SUM(requests), 0)::BIGINT FROM request_rollup_minute_detail WHERE 1 = 1"
    } else {
        "SELECT COALESCE(SUM(requests), 0)::BIGINT FROM request_rollup_minute WHERE 1 = 1"
    });
    if let Some(from) = whole_from {
        sql.push(" AND minute >= ").push_bind(from);
    }
    if let Some(prediction) = filter.prediction {
        sql.push(" AND prediction = ")
            .push_bind(prediction.as_str());
    }
    if let Some(blocked) = filter.blocked {
        sql.push(" AND blocked = ").push_bind(blocked);
    }
    if let Some(status) = filter.status {
        sql.push(" AND status = ").push_bind(i32::from(status));
    }
    if let Some(gateway) = &filter.gateway {
        sql.push(" AND gateway = ").push_bind(gateway.clone());
    }
    let whole: i64 = sql.build_query_scalar().fetch_one(&mut *conn).await?;
    let Some(from) = whole_from else {
        return Ok(count(whole));
    };
    let mut sql = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM request_log WHERE time < ");
    sql.push_bind(from);
    push_request_filter(&mut sql, filter);
    let edge: i64 = sql.build_query_scalar().fetch_one(&mut *conn).await?;
    Ok(count(whole) + count(edge))
}

/// Takes [`ROLLUP_LOCK`] for the rest of the transaction.
async fn lock_rollups(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ROLLUP_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts `rows` with `head` (`INSERT INTO t (cols) `) and `tail` (the
/// `ON CONFLICT` clause), a few fixed statement sizes at a time.
async fn upsert<T>(
    conn: &mut PgConnection,
    head: &'static str,
    tail: &'static str,
    rows: &[T],
    mut push: impl FnMut(Separated<'_, Postgres, &'static str>, &T),
) -> Result<(), StoreError> {
    let mut rest = rows;
    for size in ROLLUP_ROWS_PER_STATEMENT {
        while rest.len() >= size {
            let (chunk, others) = rest.split_at(size);
            let mut sql = QueryBuilder::<Postgres>::new(head);
            sql.push_values(chunk, &mut push).push(tail);
            sql.build().execute(&mut *conn).await?;
            rest = others;
        }
    }
    Ok(())
}

/// Adds a batch's sums to the rollups (in the batch's transaction, holding
/// [`ROLLUP_LOCK`]).
async fn write_rollup(conn: &mut PgConnection, rollup: &Rollup<'_>) -> Result<(), StoreError> {
    upsert(
        conn,
        "INSERT INTO request_rollup_minute (minute, prediction, blocked, requests, score_sum) ",
        " ON CONFLICT (minute, prediction, blocked) DO UPDATE SET \
         requests = request_rollup_minute.requests + excluded.requests, \
         score_sum = request_rollup_minute.score_sum + excluded.score_sum",
        &rollup.minutes,
        |mut row, ((minute, prediction, blocked), (requests, score_sum))| {
            row.push_bind(*minute)
                .push_bind(*prediction)
                .push_bind(*blocked)
                .push_bind(*requests)
                .push_bind(*score_sum);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_minute_detail (minute, prediction, blocked, status, \
         gateway, requests) ",
        " ON CONFLICT (minute, prediction, blocked, status, gateway) DO UPDATE SET \
         requests = request_rollup_minute_detail.requests + excluded.requests",
        &rollup.details,
        |mut row, ((minute, prediction, blocked, status, gateway), requests)| {
            row.push_bind(*minute)
                .push_bind(*prediction)
                .push_bind(*blocked)
                .push_bind(i32::from(*status))
                .push_bind(*gateway)
                .push_bind(*requests);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_ip_hour (hour, client, requests, score_sum) ",
        " ON CONFLICT (hour, client) DO UPDATE SET \
         requests = request_rollup_ip_hour.requests + excluded.requests, \
         score_sum = request_rollup_ip_hour.score_sum + excluded.score_sum",
        &rollup.client_hours,
        |mut row, ((hour, client), (requests, score_sum))| {
            row.push_bind(*hour)
                .push_bind(client.as_str())
                .push_bind(*requests)
                .push_bind(*score_sum);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_ip_total (client, requests, score_sum) ",
        " ON CONFLICT (client) DO UPDATE SET \
         requests = request_rollup_ip_total.requests + excluded.requests, \
         score_sum = request_rollup_ip_total.score_sum + excluded.score_sum",
        &rollup.clients,
        |mut row, (client, (requests, score_sum))| {
            row.push_bind(client.as_str())
                .push_bind(*requests)
                .push_bind(*score_sum);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_path_hour (hour, path, requests) ",
        " ON CONFLICT (hour, path) DO UPDATE SET \
         requests = request_rollup_path_hour.requests + excluded.requests",
        &rollup.path_hours,
        |mut row, ((hour, path), requests)| {
            row.push_bind(*hour).push_bind(*path).push_bind(*requests);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_path_total (path, requests) ",
        " ON CONFLICT (path) DO UPDATE SET \
         requests = request_rollup_path_total.requests + excluded.requests",
        &rollup.paths,
        |mut row, (path, requests)| {
            row.push_bind(*path).push_bind(*requests);
        },
    )
    .await?;
    Ok(())
}

/// Takes the records before `before` out of the rollups, before they are
/// deleted (in the same transaction, holding [`ROLLUP_LOCK`]): whole minutes
/// and hours before it go, the minute it cuts through loses the records it
/// deletes (so that the minute rollup stays equal to the log), and the hour
/// it cuts through stays whole.
async fn purge_rollups(conn: &mut PgConnection, before: i64) -> Result<(), StoreError> {
    let minute = floor_to(before, MINUTE_MS);
    if minute < before {
        sqlx::query(
            "UPDATE request_rollup_minute AS m SET requests = m.requests - c.requests, \
             score_sum = m.score_sum - c.score_sum FROM (SELECT prediction, blocked, \
             COUNT(*) AS requests, SUM(score) AS score_sum FROM request_log \
             WHERE time >= $1 AND time < $2 GROUP BY prediction, blocked) AS c \
             WHERE m.minute = $1 AND m.prediction = c.prediction AND m.blocked = c.blocked",
        )
        .bind(minute)
        .bind(before)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE request_rollup_minute_detail AS m SET requests = m.requests - c.requests \
             FROM (SELECT prediction, blocked, status, gateway, COUNT(*) AS requests \
             FROM request_log WHERE time >= $1 AND time < $2 \
             GROUP BY prediction, blocked, status, gateway) AS c \
             WHERE m.minute = $1 AND m.prediction = c.prediction AND m.blocked = c.blocked \
             AND m.status = c.status AND m.gateway = c.gateway",
        )
        .bind(minute)
        .bind(before)
        .execute(&mut *conn)
        .await?;
        for sql in [
            "DELETE FROM request_rollup_minute WHERE minute = $1 AND requests <= 0",
            "DELETE FROM request_rollup_minute_detail WHERE minute = $1 AND requests <= 0",
        ] {
            sqlx::query(sql).bind(minute).execute(&mut *conn).await?;
        }
    }
    for sql in [
        "DELETE FROM request_rollup_minute WHERE minute < $1",
        "DELETE FROM request_rollup_minute_detail WHERE minute < $1",
    ] {
        sqlx::query(sql).bind(minute).execute(&mut *conn).await?;
    }

    let hour = floor_to(before, HOUR_MS);
    for sql in [
        "UPDATE request_rollup_ip_total AS t SET requests = t.requests - o.requests, \
         score_sum = t.score_sum - o.score_sum FROM (SELECT client, \
         SUM(requests)::BIGINT AS requests, SUM(score_sum) AS score_sum \
         FROM request_rollup_ip_hour WHERE hour < $1 GROUP BY client) AS o \
         WHERE t.client = o.client",
        "UPDATE request_rollup_path_total AS t SET requests = t.requests - o.requests \
         FROM (SELECT path, SUM(requests)::BIGINT AS requests FROM request_rollup_path_hour \
         WHERE hour < $1 GROUP BY path) AS o WHERE t.path = o.path",
        "DELETE FROM request_rollup_ip_hour WHERE hour < $1",
        "DELETE FROM request_rollup_path_hour WHERE hour < $1",
    ] {
        sqlx::query(sql).bind(hour).execute(&mut *conn).await?;
    }
    for sql in [
        "DELETE FROM request_rollup_ip_total WHERE requests <= 0",
        "DELETE FROM request_rollup_path_total WHERE requests <= 0",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

fn stored_request_from_row(row: &PgRow) -> Result<StoredRequest, StoreError> {
    Ok(StoredRequest {
        id: get(row, REQUEST_LOG, "id")?,
        record: request_from_row(row)?,
    })
}

fn request_from_row(row: &PgRow) -> Result<RequestRecord, StoreError> {
    let client: String = get(row, REQUEST_LOG, "client")?;
    let prediction: String = get(row, REQUEST_LOG, "prediction")?;
    let status: i32 = get(row, REQUEST_LOG, "status")?;
    Ok(RequestRecord {
        time: from_ms(REQUEST_LOG, "time", get(row, REQUEST_LOG, "time")?)?,
        gateway: get(row, REQUEST_LOG, "gateway")?,
        request_id: get(row, REQUEST_LOG, "request_id")?,
        client: client
            .parse()
            .map_err(|_| corrupt(REQUEST_LOG, format!("client {client:?}")))?,
        method: get(row, REQUEST_LOG, "method")?,
        path: get(row, REQUEST_LOG, "path")?,
        user_agent: get(row, REQUEST_LOG, "user_agent")?,
        status: u16::try_from(status)
            .map_err(|_| corrupt(REQUEST_LOG, format!("status {status}")))?,
        request_bytes: sql_to_u64(get(row, REQUEST_LOG, "request_bytes")?),
        response_bytes: sql_to_u64(get(row, REQUEST_LOG, "response_bytes")?),
        latency_ms: get(row, REQUEST_LOG, "latency_ms")?,
        score: get(row, REQUEST_LOG, "score")?,
        prediction: Prediction::from_name(&prediction)
            .ok_or_else(|| corrupt(REQUEST_LOG, format!("prediction {prediction:?}")))?,
        blocked: get(row, REQUEST_LOG, "blocked")?,
        reason: get(row, REQUEST_LOG, "reason")?,
        backend: get(row, REQUEST_LOG, "backend")?,
    })
}

/// A URL fit for errors and logs: the password, in the user info or as a
/// `password=` parameter, replaced by `***`.
fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{user}:***@{host}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<&str> = query
            .split('&')
            .map(|p| {
                if p.starts_with("password=") {
                    "password=***"
                } else {
                    p
                }
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Appends `AND` the target of `d` lies inside `net` (or is it).
fn push_inside(sql: &mut QueryBuilder<Postgres>, net: &IpNet) {
    let range = TargetColumns::of(net);
    sql.push(" AND d.net_family = ")
        .push_bind(i16::from(range.family))
        .push(" AND d.range_start >= ")
        .push_bind(range.start)
        .push(" AND d.range_end <= ")
        .push_bind(range.end);
}

/// Takes [`CHANGE_LOG_LOCK`] for the rest of the transaction: call it in
/// every transaction that appends to the change log, before the first
/// [`append_change`], and hold no other lock another appender may wait on
/// after it.
async fn lock_change_log(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_LOG_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends one change; the caller holds [`CHANGE_LOG_LOCK`].
async fn append_change(
    conn: &mut PgConnection,
    decision_id: i64,
    kind: ChangeKind,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO decision_changes (decision_id, kind, at) VALUES ($1, $2, $3)")
        .bind(decision_id)
        .bind(kind.as_str())
        .bind(at_ms)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_finding_row(
    conn: &mut PgConnection,
    finding: &Finding,
    decision_id: Option<i64>,
    note: Option<&str>,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO findings (time, subject_json, label, score, level, evidence_json, \
         decision_id, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(to_ms(finding.time))
    .bind(to_json(&finding.subject)?)
    .bind(&finding.label)
    .bind(finding.score)
    .bind(finding.level.as_str())
    .bind(to_json(&finding.evidence)?)
    .bind(decision_id)
    .bind(note)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

row_readers!(PgRow, Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://rampart:s3cret@db.example:5432/rampart?sslmode=require"),
            "postgres://rampart:***@db.example:5432/rampart?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://rampart@db/rampart?password=s3cret&sslmode=disable"),
            "postgresql://rampart@db/rampart?password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://localhost/rampart"),
            "postgres://localhost/rampart"
        );
        assert_eq!(redact("postgres://u:p@host"), "postgres://u:***@host");
    }

    #[test]
    fn ranges_sort_like_addresses() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let cols = TargetColumns::of(&net);
        assert_eq!(cols.family, 4);
        assert_eq!(cols.start, vec![192, 0, 2, 0]);
        assert_eq!(cols.end, vec![192, 0, 2, 255]);
    }

    #[test]
    fn u64_round_trips_through_i64() {
        for v in [0, 1, u64::from(u32::MAX), i64::MAX.unsigned_abs(), u64::MAX] {
            assert_eq!(sql_to_u64(u64_to_sql(v)), v);
        }
    }
}
