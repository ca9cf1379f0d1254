//! The SQLite store: one file (or one in-memory database) in WAL mode,
//! through the [SQL layer](crate::sql).
//!
//! Every write that touches more than one row runs in a `BEGIN IMMEDIATE`
//! transaction: it takes the write lock up front (waiting up to the busy
//! timeout), so two processes writing at once queue instead of failing with
//! `SQLITE_BUSY` on a lock upgrade. The schema is in `migrations/sqlite/`
//! and described in `docs/store.md`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use crate::StoreError;
use crate::sql::SqlStore;
use crate::sql::dialect::{Arg, Begin, Dialect, Lock, SqlRow, Stmt};

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

/// SQLite through an sqlx pool.
///
/// Several handles, in one process or several (the agent and the CLI), may
/// use one file at once: each sees the others' committed writes and change
/// log. A `sqlite::memory:` database lives in exactly one connection that is
/// never closed while the store lives, so every call sees the same data.
#[derive(Debug)]
pub struct SqliteDialect {
    pool: SqlitePool,
    /// Request-log batches are written one at a time: SQLite serialises
    /// writers anyway, and writers queued inside the database keep the WAL
    /// from being reset by checkpoints, so it grows without bound under
    /// concurrent uploads.
    request_writer: tokio::sync::Mutex<()>,
}

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteDialect>;

impl SqlStore<SqliteDialect> {
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
        Ok(SqlStore {
            db: SqliteDialect {
                pool,
                request_writer: tokio::sync::Mutex::new(()),
            },
        })
    }

    /// The connection pool, for maintenance (`VACUUM INTO` backups, checks)
    /// and tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.db.pool
    }

    /// Closes every connection, checkpointing the WAL. Calls after this fail.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }
}

fn query(stmt: Stmt<'_>) -> sqlx::query::Query<'static, Sqlite, SqliteArguments> {
    let mut q = sqlx::query(AssertSqlSafe(stmt.sql));
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

impl SqlRow for SqliteRow {
    fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
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
impl Dialect for SqliteDialect {
    type Row = SqliteRow;
    type Tx = Transaction<'static, Sqlite>;

    const BYTEWISE: &'static str = "";
    const UNINDEXED: &'static str = "+";
    const PARTIAL_INDEX_WITH_CLIENT: bool = false;

    async fn fetch_all(&self, stmt: Stmt<'_>) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query(stmt).fetch_all(&self.pool).await
    }

    async fn execute(&self, stmt: Stmt<'_>) -> Result<u64, sqlx::Error> {
        Ok(query(stmt).execute(&self.pool).await?.rows_affected())
    }

    async fn begin(&self, how: Begin) -> Result<Self::Tx, sqlx::Error> {
        match how {
            Begin::Write => self.pool.begin_with(BEGIN_WRITE).await,
            // A read transaction in WAL mode sees one snapshot.
            Begin::Snapshot => self.pool.begin().await,
        }
    }

    async fn fetch_all_in(
        tx: &mut Self::Tx,
        stmt: Stmt<'_>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query(stmt).fetch_all(&mut **tx).await
    }

    async fn execute_in(tx: &mut Self::Tx, stmt: Stmt<'_>) -> Result<u64, sqlx::Error> {
        Ok(query(stmt).execute(&mut **tx).await?.rows_affected())
    }

    async fn lock(_tx: &mut Self::Tx, _lock: Lock) -> Result<(), sqlx::Error> {
        // BEGIN IMMEDIATE holds the database's only write lock already.
        Ok(())
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn request_batch_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.request_writer.lock().await)
    }
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

#[cfg(test)]
mod tests {
    use ipnet::IpNet;

    use super::*;
    use crate::columns::{TargetColumns, sql_to_u64, u64_to_sql};

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
