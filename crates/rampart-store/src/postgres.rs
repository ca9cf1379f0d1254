//! The PostgreSQL store: one database shared by any number of rampart
//! processes (agents, gateways, the CLI) on any number of hosts, through
//! the [SQL layer](crate::sql).
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
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Column, Postgres, Row, Transaction, TypeInfo};

use crate::StoreError;
use crate::sql::SqlStore;
use crate::sql::dialect::{Arg, Begin, Dialect, Lock, SqlRow, Stmt, numbered_placeholders};

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

/// PostgreSQL through an sqlx pool.
///
/// Any number of handles, in one process or many, on one host or many, may
/// use one database at once: each sees the others' committed writes and one
/// change log, in commit order.
#[derive(Debug)]
pub struct PgDialect {
    pool: PgPool,
}

/// The store on PostgreSQL.
pub type PgStore = SqlStore<PgDialect>;

impl SqlStore<PgDialect> {
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
        Ok(SqlStore {
            db: PgDialect { pool },
        })
    }

    /// The connection pool, for maintenance and tests.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Closes every connection. Calls after this fail.
    pub async fn close(&self) {
        self.db.pool.close().await;
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

fn query(stmt: Stmt<'_>) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    let mut q = sqlx::query(AssertSqlSafe(numbered_placeholders(&stmt.sql)));
    for arg in stmt.args {
        q = match arg {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::Text(v) => q.bind(v.map(std::borrow::Cow::into_owned)),
            Arg::Blob(v) => q.bind(v.into_owned()),
        };
    }
    q
}

impl SqlRow for PgRow {
    fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        // Narrow columns (SMALLINT families, INTEGER statuses) widen here.
        match self.try_column(column)?.type_info().name() {
            "INT2" => Ok(self.try_get::<Option<i16>, _>(column)?.map(i64::from)),
            "INT4" => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            _ => self.try_get(column),
        }
    }
    fn real(&self, column: &str) -> Result<Option<f64>, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> Result<Option<bool>, sqlx::Error> {
        self.try_get(column)
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type Row = PgRow;
    type Tx = Transaction<'static, Postgres>;

    /// Text in byte order, whatever the database's locale.
    const BYTEWISE: &'static str = " COLLATE \"C\"";
    const UNINDEXED: &'static str = "";
    const PARTIAL_INDEX_WITH_CLIENT: bool = true;

    async fn fetch_all(&self, stmt: Stmt<'_>) -> Result<Vec<PgRow>, sqlx::Error> {
        query(stmt).fetch_all(&self.pool).await
    }

    async fn execute(&self, stmt: Stmt<'_>) -> Result<u64, sqlx::Error> {
        Ok(query(stmt).execute(&self.pool).await?.rows_affected())
    }

    async fn begin(&self, how: Begin) -> Result<Self::Tx, sqlx::Error> {
        match how {
            Begin::Write => self.pool.begin().await,
            Begin::Snapshot => self.pool.begin_with(READ_SNAPSHOT).await,
        }
    }

    async fn fetch_all_in(tx: &mut Self::Tx, stmt: Stmt<'_>) -> Result<Vec<PgRow>, sqlx::Error> {
        query(stmt).fetch_all(&mut **tx).await
    }

    async fn execute_in(tx: &mut Self::Tx, stmt: Stmt<'_>) -> Result<u64, sqlx::Error> {
        Ok(query(stmt).execute(&mut **tx).await?.rows_affected())
    }

    async fn lock(tx: &mut Self::Tx, lock: Lock) -> Result<(), sqlx::Error> {
        let key = match lock {
            Lock::ChangeLog => CHANGE_LOG_LOCK,
            Lock::Rollups => ROLLUP_LOCK,
        };
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn request_batch_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

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

#[cfg(test)]
mod tests {
    use ipnet::IpNet;

    use super::*;
    use crate::columns::{TargetColumns, sql_to_u64, u64_to_sql};

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
