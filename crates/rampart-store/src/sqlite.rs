//! The SQLite store: one file (or one in-memory database) in WAL mode.
//!
//! Times are INTEGER milliseconds since the epoch; targets are stored as
//! text plus their address range as big-endian BLOBs so that "lies inside"
//! filters run in SQL on an index. Every write that touches more than one
//! row runs in a `BEGIN IMMEDIATE` transaction: it takes the write lock up
//! front (waiting up to the busy timeout), so two processes writing at once
//! queue instead of failing with `SQLITE_BUSY` on a lock upgrade. The schema
//! is in `migrations/sqlite/` and described in `docs/store.md`.
//!
//! Request-log statistics and query totals read rollups (per minute, per
//! hour and client or path) that `insert_requests` updates in the batch's
//! own transaction and `purge_requests` trims in its own; see
//! `crate::rollup` and `migrations/sqlite/0004_server.sql`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::columns::*;
use crate::rollup::*;
use crate::{
    ActionRecord, AgentRecord, BlockedIp, Change, ChangeKind, DecisionQuery, EventRecord,
    HourCount, IpCount, PathCount, Position, Prediction, RequestFilter, RequestPage, RequestRecord,
    RequestStats, Role, Store, StoreError, StoredDecision, StoredFinding, StoredRequest, Token,
    UploadBatch, User, WhitelistEntry,
};

/// How long a statement waits for another connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database's pool. WAL lets readers run beside the
/// one writer; more than a few buys nothing on a small host.
const FILE_MAX_CONNECTIONS: u32 = 4;

/// Page cache of each connection: 64 MiB (negative: KiB), filled only as
/// pages are used. A batch of request-log records touches a leaf page of
/// the client index per distinct client; with SQLite's default 2 MiB those
/// pages are evicted and re-read every batch, and dirty pages spill into
/// the WAL before the commit.
const CACHE_SIZE: &str = "-65536";

/// WAL pages (4 KiB) after which a commit checkpoints: 64 MiB. A batch of
/// request-log records dirties thousands of pages; at SQLite's default
/// (1000) nearly every batch would checkpoint, writing the same index pages
/// to the database again each time.
const WAL_AUTOCHECKPOINT: &str = "16384";
/// The WAL file is truncated back to this many bytes after a checkpoint
/// that resets it (128 MiB).
const JOURNAL_SIZE_LIMIT: &str = "134217728";

/// Opens a write transaction that holds the database's write lock from the start.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

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

/// [`Store`] on SQLite through an sqlx pool.
///
/// Several handles, in one process or several (the agent and the CLI), may
/// use one file at once: each sees the others' committed writes and change
/// log. A `sqlite::memory:` database lives in exactly one connection that is
/// never closed while the store lives, so every call sees the same data.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Request-log batches are written one at a time: SQLite serialises
    /// writers anyway, and writers queued inside the database keep the WAL
    /// from being reset by checkpoints, so it grows without bound under
    /// concurrent uploads.
    request_writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) and migrates
    /// the database at `url`: `sqlite:///abs/path.db`, `sqlite://relative.db`
    /// or `sqlite::memory:`. Files run in WAL mode with `synchronous=NORMAL`
    /// and a 64 MiB checkpoint interval; every connection has a 5 s busy
    /// timeout, foreign keys on, a page cache of up to 64 MiB and temporary
    /// tables (sorts, statement journals) in memory.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let open_error = |source: sqlx::Error| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", CACHE_SIZE)
            .pragma("temp_store", "memory");

        let pool = if is_memory_url(url) {
            // One connection that never idles out or expires: an in-memory
            // database disappears with its last connection.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(open_error)?
        } else {
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT)
                .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT);
            if let Some(parent) = options.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| open_error(sqlx::Error::Io(e)))?;
            }
            SqlitePoolOptions::new()
                .max_connections(FILE_MAX_CONNECTIONS)
                .connect_with(options)
                .await
                .map_err(open_error)?
        };

        let migrator = sqlx::migrate!("./migrations/sqlite");
        if let Err(first) = migrator.run(&pool).await {
            // Two processes opening a new file at once can race to apply the
            // same migration; the loser fails, and on a second look finds it
            // applied. Any other failure fails again and is reported.
            tracing::debug!(error = %first, "migration failed, retrying once");
            migrator
                .run(&pool)
                .await
                .map_err(|e| open_error(sqlx::Error::from(e)))?;
        }
        Ok(Self {
            pool,
            request_writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The connection pool, for maintenance (`VACUUM INTO` backups, checks)
    /// and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection, checkpointing the WAL. Calls after this fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_decision(&self, decision: &Decision) -> Result<i64, StoreError> {
        let row = TargetColumns::of(&decision.target);
        let findings_json = to_json(&decision.findings)?;
        let at = to_ms(decision.at);

        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO decisions (action, target, net_family, range_start, range_end, at, \
             until, reason, origin_kind, origin_name, dry_run, escalation, findings_json) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(decision.action.as_str())
        .bind(decision.target.to_string())
        .bind(i64::from(row.family))
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
        append_change(&mut tx, id, ChangeKind::Added, at).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions d WHERE 1 = 1"
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
            " FROM decisions d WHERE d.id = ?"
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
        let mut sql: QueryBuilder<Sqlite> =
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
        sql.push(" RETURNING id");

        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let mut ids: Vec<i64> = sql.build_query_scalar().fetch_all(&mut *tx).await?;
        ids.sort_unstable();
        for &id in &ids {
            append_change(&mut tx, id, ChangeKind::Revoked, at_ms).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn revoke_id(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let at_ms = to_ms(at);
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let lifted = sqlx::query(
            "UPDATE decisions SET revoked_at = ?, revoked_by = ? \
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(at_ms)
        .bind(by)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if lifted {
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
             WHERE c.seq > ? ORDER BY c.seq LIMIT ?"
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
             WHERE action = 'ban' AND at >= ? ORDER BY at, id",
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
            " FROM findings ORDER BY time DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn save_position(&self, position: &Position) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO positions (source, path, dev, inode, \"offset\", fingerprint, cursor, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
        let rows = sqlx::query(
            "SELECT source, path, dev, inode, \"offset\", fingerprint, cursor \
             FROM positions WHERE source = ? ORDER BY path",
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
        let _one_writer = self.request_writer.lock().await;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
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
        write_rollup(&mut tx, &Rollup::of(records)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        purge_rollups(&mut tx, before).await?;
        let done = sqlx::query("DELETE FROM request_log WHERE time < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn purge_findings(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM findings WHERE time < ? AND decision_id IS NULL")
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
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
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
            "UPDATE users SET role = COALESCE(?, role), password_hash = COALESCE(?, password_hash), updated_at = ? WHERE name = ?",
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
            "SELECT id, name, role, password_hash, created_at, updated_at FROM users WHERE name = ?",
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
            "INSERT INTO tokens (name, role, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
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
            "SELECT id, name, role, secret_hash, created_by, created_at, revoked_at FROM tokens WHERE secret_hash = ?",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (time, node, kind, source_ip, label, payload_json) \
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
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
             WHERE id > ? ORDER BY id LIMIT ?",
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
             blocked) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
             FROM agents ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn insert_action(&self, action: &ActionRecord) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO actions (time, node, decision_id, action, target, ok, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
             ORDER BY time DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn insert_upload(&self, batch: &UploadBatch) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO upload_batches (time, principal, kind, accepted, rejected, errors_json) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
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
             FROM upload_batches ORDER BY time DESC, id DESC LIMIT ?",
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
             created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(target.to_string())
        .bind(i64::from(range.family))
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
        let done = sqlx::query("DELETE FROM whitelist WHERE id = ?")
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
        // One read transaction: the total and the page see one snapshot.
        let mut tx = self.pool.begin().await?;
        let total = count_requests(&mut tx, filter).await?;

        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT id, ",
            request_columns!(),
            " FROM request_log WHERE 1 = 1"
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
            " FROM request_log WHERE id > ? ORDER BY id LIMIT ?"
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
        // One read transaction: every part sees one snapshot.
        let mut tx = self.pool.begin().await?;

        // Whole minutes from the rollup, the partial first one from the log.
        let mut sums = sqlx::query(
            "SELECT prediction, blocked, SUM(requests) AS requests, SUM(score_sum) AS score_sum \
             FROM request_rollup_minute WHERE minute >= ? GROUP BY prediction, blocked",
        )
        .bind(whole_from)
        .fetch_all(&mut *tx)
        .await?;
        if whole_from > since_ms {
            sums.extend(
                sqlx::query(
                    "SELECT prediction, blocked, COUNT(*) AS requests, SUM(score) AS score_sum \
                     FROM request_log WHERE time >= ? AND time < ? GROUP BY prediction, blocked",
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
             SUM(requests) AS requests, \
             SUM(CASE WHEN blocked THEN requests ELSE 0 END) AS blocked \
             FROM request_rollup_minute WHERE minute >= ? GROUP BY 1 ORDER BY 1",
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
                     ORDER BY requests DESC, client LIMIT ?",
                    )
                    .bind(top)
                    .fetch_all(&mut *tx)
                    .await?
                }
                TopSource::TotalsLessBefore(first) => sqlx::query(
                    "SELECT t.client AS client, t.requests - COALESCE(o.requests, 0) AS requests, \
                     t.score_sum - COALESCE(o.score_sum, 0) AS score_sum \
                     FROM request_rollup_ip_total t LEFT JOIN (SELECT client, \
                     SUM(requests) AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour < ? GROUP BY client) o \
                     ON o.client = t.client \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?,
                TopSource::Window(first) => {
                    sqlx::query(
                        "SELECT client, SUM(requests) AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour >= ? GROUP BY client \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                    )
                    .bind(first)
                    .bind(top)
                    .fetch_all(&mut *tx)
                    .await?
                }
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
        let top_paths = match TopSource::choose(since_ms, oldest, newest) {
            TopSource::Nothing => Vec::new(),
            TopSource::Totals => {
                sqlx::query(
                    "SELECT path, requests FROM request_rollup_path_total \
                     ORDER BY requests DESC, path LIMIT ?",
                )
                .bind(top)
                .fetch_all(&mut *tx)
                .await?
            }
            TopSource::TotalsLessBefore(first) => {
                sqlx::query(
                    "SELECT t.path AS path, t.requests - COALESCE(o.requests, 0) AS requests \
                     FROM request_rollup_path_total t LEFT JOIN (SELECT path, \
                     SUM(requests) AS requests FROM request_rollup_path_hour \
                     WHERE hour < ? GROUP BY path) o ON o.path = t.path \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?
            }
            TopSource::Window(first) => {
                sqlx::query(
                    "SELECT path, SUM(requests) AS requests FROM request_rollup_path_hour \
                     WHERE hour >= ? GROUP BY path ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all(&mut *tx)
                .await?
            }
        }
        .iter()
        .map(path_count_from_row)
        .collect::<Result<Vec<_>, _>>()?;

        let by_scenario = sqlx::query_as::<_, (String, i64)>(
            "SELECT label, COUNT(*) FROM findings WHERE time >= ? \
             GROUP BY label ORDER BY 2 DESC, 1",
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
            " FROM findings WHERE id > ? ORDER BY id LIMIT ?"
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
             MAX(d.revoked_at IS NULL AND (d.until IS NULL OR d.until > ?)) AS active \
             FROM decisions d LEFT JOIN findings f ON f.decision_id = d.id \
             WHERE d.action = 'ban' AND d.dry_run = 0 \
             GROUP BY d.target ORDER BY last_blocked DESC, MAX(d.id) DESC LIMIT ?",
        )
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(blocked_ip_from_row).collect()
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_ms(before);
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let mut purged = 0;
        for sql in [
            "DELETE FROM events WHERE time < ?",
            "DELETE FROM actions WHERE time < ?",
            "DELETE FROM upload_batches WHERE time < ?",
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
    conn: &mut SqliteConnection,
    rows: &[RequestRecord],
) -> Result<(), StoreError> {
    let mut sql = QueryBuilder::<Sqlite>::new(
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
            .push_bind(i64::from(r.status))
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

/// Appends ` AND …` for each field of `filter` (on `request_log`).
///
/// With a client, its index serves best: the other indexed columns are
/// written `+column`, which SQLite never reads through an index. Without
/// one, a non-NORMAL prediction and a status other than 200 repeat the
/// condition of their partial index, which SQLite uses only then.
fn push_request_filter(sql: &mut QueryBuilder<Sqlite>, filter: &RequestFilter) {
    let by_client = filter.client.is_some();
    let plus = if by_client { "+" } else { "" };
    if let Some(since) = filter.since {
        sql.push(" AND time >= ").push_bind(to_ms(since));
    }
    if let Some(client) = filter.client {
        sql.push(" AND client = ").push_bind(client.to_string());
    }
    if let Some(prefix) = &filter.path_prefix {
        // substr counts characters, as chars() does: an exact prefix test
        // with no pattern characters to escape.
        let chars = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
        sql.push(" AND substr(path, 1, ")
            .push_bind(chars)
            .push(") = ")
            .push_bind(prefix.clone());
    }
    if let Some(prediction) = filter.prediction {
        sql.push(" AND ")
            .push(plus)
            .push("prediction = ")
            .push_bind(prediction.as_str());
        if !by_client && prediction != Prediction::Normal {
            sql.push(" AND prediction <> 'NORMAL'");
        }
    }
    if let Some(blocked) = filter.blocked {
        sql.push(" AND ")
            .push(plus)
            .push("blocked = ")
            .push_bind(blocked);
    }
    if let Some(status) = filter.status {
        sql.push(" AND ")
            .push(plus)
            .push("status = ")
            .push_bind(i64::from(status));
        if !by_client && status != 200 {
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
    conn: &mut SqliteConnection,
    filter: &RequestFilter,
) -> Result<u64, StoreError> {
    let from = CountFrom::of(filter);
    if from == CountFrom::Log {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM request_log WHERE 1 = 1");
        push_request_filter(&mut sql, filter);
        return Ok(count(sql.build_query_scalar().fetch_one(&mut *conn).await?));
    }
    let whole_from = filter.since.map(|s| ceil_to(to_ms(s), MINUTE_MS));
    let mut sql = QueryBuilder::<Sqlite>::new(if from == CountFrom::Detail {
        "SELECT COALESCE(SUM(requests), 0) FROM request_rollup_minute_detail WHERE 1 = 1"
    } else {
        "SELECT COALESCE(SUM(requests), 0) FROM request_rollup_minute WHERE 1 = 1"
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
        sql.push(" AND status = ").push_bind(i64::from(status));
    }
    if let Some(gateway) = &filter.gateway {
        sql.push(" AND gateway = ").push_bind(gateway.clone());
    }
    let whole: i64 = sql.build_query_scalar().fetch_one(&mut *conn).await?;
    let Some(from) = whole_from else {
        return Ok(count(whole));
    };
    let mut sql = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM request_log WHERE time < ");
    sql.push_bind(from);
    push_request_filter(&mut sql, filter);
    let edge: i64 = sql.build_query_scalar().fetch_one(&mut *conn).await?;
    Ok(count(whole) + count(edge))
}

/// Inserts `rows` with `head` (`INSERT INTO t (cols) `) and `tail` (the
/// `ON CONFLICT` clause), a few fixed statement sizes at a time.
async fn upsert<T>(
    conn: &mut SqliteConnection,
    head: &'static str,
    tail: &'static str,
    rows: &[T],
    mut push: impl FnMut(Separated<'_, Sqlite, &'static str>, &T),
) -> Result<(), StoreError> {
    let mut rest = rows;
    for size in ROLLUP_ROWS_PER_STATEMENT {
        while rest.len() >= size {
            let (chunk, others) = rest.split_at(size);
            let mut sql = QueryBuilder::<Sqlite>::new(head);
            sql.push_values(chunk, &mut push).push(tail);
            sql.build().execute(&mut *conn).await?;
            rest = others;
        }
    }
    Ok(())
}

/// Adds a batch's sums to the rollups (in the batch's transaction).
async fn write_rollup(conn: &mut SqliteConnection, rollup: &Rollup<'_>) -> Result<(), StoreError> {
    upsert(
        conn,
        "INSERT INTO request_rollup_minute (minute, prediction, blocked, requests, score_sum) ",
        " ON CONFLICT (minute, prediction, blocked) DO UPDATE SET \
         requests = requests + excluded.requests, score_sum = score_sum + excluded.score_sum",
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
         requests = requests + excluded.requests",
        &rollup.details,
        |mut row, ((minute, prediction, blocked, status, gateway), requests)| {
            row.push_bind(*minute)
                .push_bind(*prediction)
                .push_bind(*blocked)
                .push_bind(i64::from(*status))
                .push_bind(*gateway)
                .push_bind(*requests);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_ip_hour (hour, client, requests, score_sum) ",
        " ON CONFLICT (hour, client) DO UPDATE SET \
         requests = requests + excluded.requests, score_sum = score_sum + excluded.score_sum",
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
         requests = requests + excluded.requests, score_sum = score_sum + excluded.score_sum",
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
        " ON CONFLICT (hour, path) DO UPDATE SET requests = requests + excluded.requests",
        &rollup.path_hours,
        |mut row, ((hour, path), requests)| {
            row.push_bind(*hour).push_bind(*path).push_bind(*requests);
        },
    )
    .await?;
    upsert(
        conn,
        "INSERT INTO request_rollup_path_total (path, requests) ",
        " ON CONFLICT (path) DO UPDATE SET requests = requests + excluded.requests",
        &rollup.paths,
        |mut row, (path, requests)| {
            row.push_bind(*path).push_bind(*requests);
        },
    )
    .await?;
    Ok(())
}

/// Takes the records before `before` out of the rollups, before they are
/// deleted (in the same transaction): whole minutes and hours before it go,
/// the minute it cuts through loses the records it deletes (so that the
/// minute rollup stays equal to the log), and the hour it cuts through stays
/// whole.
async fn purge_rollups(conn: &mut SqliteConnection, before: i64) -> Result<(), StoreError> {
    let minute = floor_to(before, MINUTE_MS);
    if minute < before {
        sqlx::query(
            "UPDATE request_rollup_minute AS m SET requests = m.requests - c.requests, \
             score_sum = m.score_sum - c.score_sum FROM (SELECT prediction, blocked, \
             COUNT(*) AS requests, SUM(score) AS score_sum FROM request_log \
             WHERE time >= ?1 AND time < ?2 GROUP BY prediction, blocked) AS c \
             WHERE m.minute = ?1 AND m.prediction = c.prediction AND m.blocked = c.blocked",
        )
        .bind(minute)
        .bind(before)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE request_rollup_minute_detail AS m SET requests = m.requests - c.requests \
             FROM (SELECT prediction, blocked, status, gateway, COUNT(*) AS requests \
             FROM request_log WHERE time >= ?1 AND time < ?2 \
             GROUP BY prediction, blocked, status, gateway) AS c \
             WHERE m.minute = ?1 AND m.prediction = c.prediction AND m.blocked = c.blocked \
             AND m.status = c.status AND m.gateway = c.gateway",
        )
        .bind(minute)
        .bind(before)
        .execute(&mut *conn)
        .await?;
        for sql in [
            "DELETE FROM request_rollup_minute WHERE minute = ? AND requests <= 0",
            "DELETE FROM request_rollup_minute_detail WHERE minute = ? AND requests <= 0",
        ] {
            sqlx::query(sql).bind(minute).execute(&mut *conn).await?;
        }
    }
    for sql in [
        "DELETE FROM request_rollup_minute WHERE minute < ?",
        "DELETE FROM request_rollup_minute_detail WHERE minute < ?",
    ] {
        sqlx::query(sql).bind(minute).execute(&mut *conn).await?;
    }

    let hour = floor_to(before, HOUR_MS);
    for sql in [
        "UPDATE request_rollup_ip_total AS t SET requests = t.requests - o.requests, \
         score_sum = t.score_sum - o.score_sum FROM (SELECT client, SUM(requests) AS requests, \
         SUM(score_sum) AS score_sum FROM request_rollup_ip_hour WHERE hour < ? \
         GROUP BY client) AS o WHERE t.client = o.client",
        "UPDATE request_rollup_path_total AS t SET requests = t.requests - o.requests \
         FROM (SELECT path, SUM(requests) AS requests FROM request_rollup_path_hour \
         WHERE hour < ? GROUP BY path) AS o WHERE t.path = o.path",
        "DELETE FROM request_rollup_ip_hour WHERE hour < ?",
        "DELETE FROM request_rollup_path_hour WHERE hour < ?",
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

fn stored_request_from_row(row: &SqliteRow) -> Result<StoredRequest, StoreError> {
    Ok(StoredRequest {
        id: get(row, REQUEST_LOG, "id")?,
        record: request_from_row(row)?,
    })
}

fn request_from_row(row: &SqliteRow) -> Result<RequestRecord, StoreError> {
    let client: String = get(row, REQUEST_LOG, "client")?;
    let prediction: String = get(row, REQUEST_LOG, "prediction")?;
    let status: i64 = get(row, REQUEST_LOG, "status")?;
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

/// Whether a URL names an in-memory database (`sqlite::memory:`,
/// `sqlite://:memory:`, `…?mode=memory`).
fn is_memory_url(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Appends `AND` the target of `d` lies inside `net` (or is it).
fn push_inside(sql: &mut QueryBuilder<Sqlite>, net: &IpNet) {
    let range = TargetColumns::of(net);
    sql.push(" AND d.net_family = ")
        .push_bind(i64::from(range.family))
        .push(" AND d.range_start >= ")
        .push_bind(range.start)
        .push(" AND d.range_end <= ")
        .push_bind(range.end);
}

async fn append_change(
    conn: &mut SqliteConnection,
    decision_id: i64,
    kind: ChangeKind,
    at_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO decision_changes (decision_id, kind, at) VALUES (?, ?, ?)")
        .bind(decision_id)
        .bind(kind.as_str())
        .bind(at_ms)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_finding_row(
    conn: &mut SqliteConnection,
    finding: &Finding,
    decision_id: Option<i64>,
    note: Option<&str>,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar(
        "INSERT INTO findings (time, subject_json, label, score, level, evidence_json, \
         decision_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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

row_readers!(SqliteRow, Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_memory_url("sqlite::memory:"));
        assert!(is_memory_url("sqlite://:memory:"));
        assert!(is_memory_url("sqlite://x.db?mode=memory"));
        assert!(!is_memory_url("sqlite:///var/lib/rampart/rampart.db"));
        assert!(!is_memory_url("sqlite://rampart.db"));
    }

    #[test]
    fn ranges_sort_like_addresses() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        let cols = TargetColumns::of(&net);
        assert_eq!(cols.family, 4);
        assert_eq!(cols.start, vec![192, 0, 2, 0]);
        assert_eq!(cols.end, vec![192, 0, 2, 255]);
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        let cols = TargetColumns::of(&v6);
        assert_eq!(cols.family, 6);
        assert_eq!(cols.start.len(), 16);
        assert!(cols.start < cols.end);
    }

    #[test]
    fn u64_round_trips_through_i64() {
        for v in [0, 1, u64::from(u32::MAX), i64::MAX.unsigned_abs(), u64::MAX] {
            assert_eq!(sql_to_u64(u64_to_sql(v)), v);
        }
    }
}
