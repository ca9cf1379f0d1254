//! The SQLite store: one file (or one in-memory database) in WAL mode.
//!
//! Times are INTEGER milliseconds since the epoch; targets are stored as
//! text plus their address range as big-endian BLOBs so that "lies inside"
//! filters run in SQL on an index. Every write that touches more than one
//! row runs in a `BEGIN IMMEDIATE` transaction: it takes the write lock up
//! front (waiting up to the busy timeout), so two processes writing at once
//! queue instead of failing with `SQLITE_BUSY` on a lock upgrade. The schema
//! is in `migrations/sqlite/` and described in `docs/store.md`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::columns::*;
use crate::{
    Change, ChangeKind, DecisionQuery, Position, Prediction, RequestRecord, Role, Store,
    StoreError, StoredDecision, StoredFinding, Token, User,
};

/// How long a statement waits for another connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of a file database's pool. WAL lets readers run beside the
/// one writer; more than a few buys nothing on a small host.
const FILE_MAX_CONNECTIONS: u32 = 4;

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
}

impl SqliteStore {
    /// Opens (creating if missing, with its parent directory) and migrates
    /// the database at `url`: `sqlite:///abs/path.db`, `sqlite://relative.db`
    /// or `sqlite::memory:`. Files run in WAL mode with `synchronous=NORMAL`;
    /// every connection has a 5 s busy timeout and foreign keys on.
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
            .foreign_keys(true);

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
                .synchronous(SqliteSynchronous::Normal);
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
        Ok(Self { pool })
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
        tx.commit().await?;
        Ok(())
    }

    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT time, gateway, request_id, client, method, path, user_agent, status, \
             request_bytes, response_bytes, latency_ms, score, prediction, blocked, reason, \
             backend FROM request_log",
        );
        if let Some(client) = client {
            sql.push(" WHERE client = ").push_bind(client.to_string());
        }
        sql.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(request_from_row).collect()
    }

    async fn purge_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM request_log WHERE time < ?")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?;
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
        .bind(change_kind_name(kind))
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
