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
use sqlx::{Postgres, QueryBuilder, Row};

use crate::columns::*;
use crate::{
    Change, ChangeKind, DecisionQuery, Position, Prediction, RequestRecord, Role, Store,
    StoreError, StoredDecision, StoredFinding, Token, User,
};

/// The advisory lock every transaction appending to `decision_changes`
/// holds from just before its first change row until it ends: the bytes of
/// `"rampart"` followed by 1 (change log). See the module docs.
pub const CHANGE_LOG_LOCK: i64 = 0x7261_6d70_6172_7401;

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
        tx.commit().await?;
        Ok(())
    }

    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut sql = QueryBuilder::<Postgres>::new(
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
        let done = sqlx::query("DELETE FROM request_log WHERE time < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?;
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
        .bind(change_kind_name(kind))
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
