//! The store test suite on SQLite (a temporary file and `sqlite::memory:`),
//! and what only SQLite has: WAL, reopening, two handles on one file.

use rampart_store::sqlite::SqliteStore;
use rampart_store::testing::{Fixture, ban, finding, t};
use rampart_store::{ChangeKind, DecisionQuery, StoreError};
use rampart_store::{DecisionStore, FindingStore};
use tempfile::TempDir;

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// `sqlite:///abs/path` of a database in a subdirectory that does not exist yet.
fn file_url(dir: &TempDir) -> String {
    format!("sqlite://{}/state/rampart.db", dir.path().display())
}

async fn temp_file_store() -> Fixture {
    let dir = temp_dir();
    let store = SqliteStore::open(&file_url(&dir))
        .await
        .expect("open file store");
    Fixture::new(store).with_guard(dir)
}

async fn memory_store() -> Fixture {
    Fixture::new(
        SqliteStore::open("sqlite::memory:")
            .await
            .expect("open memory store"),
    )
}

mod file {
    use super::*;
    rampart_store::store_test_suite!(temp_file_store());
}

mod memory {
    use super::*;
    rampart_store::store_test_suite!(memory_store());
}

#[tokio::test]
async fn file_database_is_in_wal_mode_with_its_pragmas() {
    let dir = temp_dir();
    let store = SqliteStore::open(&file_url(&dir)).await.expect("open");
    assert!(dir.path().join("state/rampart.db").is_file());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .expect("synchronous");
    assert_eq!(synchronous, 1, "NORMAL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .expect("foreign_keys");
    assert_eq!(foreign_keys, 1);
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(store.pool())
        .await
        .expect("busy_timeout");
    assert_eq!(busy_timeout, 5000);
    for (pragma, expected) in [
        ("PRAGMA cache_size", -65536),
        ("PRAGMA temp_store", 2),
        ("PRAGMA wal_autocheckpoint", 16384),
    ] {
        let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(pragma))
            .fetch_one(store.pool())
            .await
            .expect(pragma);
        assert_eq!(value, expected, "{pragma}");
    }
}

#[tokio::test]
async fn relative_url_is_relative_to_the_working_directory() {
    // A path relative to the working directory that leads into a temporary
    // directory, without changing the working directory (tests share it).
    let dir = temp_dir();
    let cwd = std::env::current_dir().expect("cwd");
    let mut relative = std::path::PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.push(dir.path().strip_prefix("/").expect("absolute temp dir"));
    relative.push("sub/rel.db");
    let url = format!("sqlite://{}", relative.display());
    assert!(!url.starts_with("sqlite:///"));
    let store = SqliteStore::open(&url).await.expect("open");
    store.close().await;
    assert!(dir.path().join("sub/rel.db").is_file());
}

#[tokio::test]
async fn reopening_a_file_keeps_data_and_migrations_are_idempotent() {
    let dir = temp_dir();
    let url = file_url(&dir);
    let mut decision = ban("192.0.2.7/32", t(0));
    decision.findings = vec![finding("192.0.2.7/32", "ssh-bruteforce", t(0))];
    let id = {
        let store = SqliteStore::open(&url).await.expect("open");
        let id = store.insert_decision(&decision).await.expect("insert");
        store.close().await;
        id
    };
    for _ in 0..2 {
        let store = SqliteStore::open(&url).await.expect("reopen");
        let stored = store.get_decision(id).await.expect("get").expect("kept");
        decision.id = Some(id);
        assert_eq!(stored.decision, decision);
        assert_eq!(store.latest_cursor().await.expect("cursor"), 1);
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .expect("migrations table");
        let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .expect("migrations dir")
            .count();
        assert_eq!(applied, i64::try_from(shipped).expect("count"));
        store.close().await;
    }
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_others_writes() {
    let dir = temp_dir();
    let url = file_url(&dir);
    // Like the agent and the CLI: separate pools, so separate connections.
    let agent = SqliteStore::open(&url).await.expect("open agent");
    let cli = SqliteStore::open(&url).await.expect("open cli");

    let cursor = agent.latest_cursor().await.expect("cursor");
    let id = agent
        .insert_decision(&ban("192.0.2.7/32", t(0)))
        .await
        .expect("insert");
    let seen = cli
        .query_decisions(&DecisionQuery {
            active_at: Some(t(1)),
            ..DecisionQuery::default()
        })
        .await
        .expect("query");
    assert_eq!(seen.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);

    let lifted = cli
        .revoke(Some(&"192.0.2.0/24".parse().expect("net")), "cli", t(2))
        .await
        .expect("revoke");
    assert_eq!(lifted, vec![id]);

    let changes = agent.changes_since(cursor, 10).await.expect("changes");
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ChangeKind::Added, ChangeKind::Revoked]);
    assert_eq!(changes[1].decision.revoked_by.as_deref(), Some("cli"));

    // Both write at once: every change lands in one log.
    let (a, b) = tokio::join!(
        async {
            for i in 0..20 {
                agent
                    .insert_decision(&ban(&format!("10.0.0.{i}/32"), t(3)))
                    .await
                    .expect("agent insert");
            }
        },
        async {
            for i in 0..20 {
                cli.insert_decision(&ban(&format!("10.0.1.{i}/32"), t(3)))
                    .await
                    .expect("cli insert");
            }
        }
    );
    let ((), ()) = (a, b);
    let all = cli.changes_since(0, 1000).await.expect("changes");
    assert_eq!(all.len(), 42);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn memory_databases_are_separate_and_shared_within_a_store() {
    let one = SqliteStore::open("sqlite::memory:").await.expect("open");
    let two = SqliteStore::open("sqlite::memory:").await.expect("open");
    one.insert_decision(&ban("192.0.2.7/32", t(0)))
        .await
        .expect("insert");
    assert_eq!(one.latest_cursor().await.expect("cursor"), 1);
    assert_eq!(two.latest_cursor().await.expect("cursor"), 0);
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    for (sql, table) in [
        ("UPDATE decisions SET target = 'not-a-net'", "decisions"),
        ("UPDATE decisions SET action = 'explode'", "decisions"),
        ("UPDATE decisions SET findings_json = '{'", "decisions"),
        ("UPDATE decisions SET at = 'yesterday'", "decisions"),
        ("UPDATE decisions SET origin_kind = 'oracle'", "decisions"),
        ("UPDATE decisions SET escalation = -1", "decisions"),
        (
            "UPDATE decisions SET until = 9223372036854775807",
            "decisions",
        ),
        (
            "UPDATE decision_changes SET kind = 'moved'",
            "decision_changes",
        ),
    ] {
        let store = SqliteStore::open("sqlite::memory:").await.expect("open");
        let id = store
            .insert_decision(&ban("192.0.2.7/32", t(0)))
            .await
            .expect("insert");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(store.pool())
            .await
            .expect("corrupt the row");
        let result = if table == "decision_changes" {
            store.changes_since(0, 10).await.map(drop)
        } else {
            store.get_decision(id).await.map(drop)
        };
        match result {
            Err(StoreError::Corrupt {
                table: found,
                reason,
            }) => {
                assert_eq!(found, table, "{sql}: {reason}");
            }
            other => panic!("{sql}: expected a corrupt row, got {other:?}"),
        }
    }

    let store = SqliteStore::open("sqlite::memory:").await.expect("open");
    sqlx::query(
        "INSERT INTO findings (time, subject_json, label, score, level, evidence_json) \
         VALUES (0, '{}', 'x', 0.5, 'SEVERE', '{}')",
    )
    .execute(store.pool())
    .await
    .expect("insert a bad finding");
    assert!(matches!(
        store.recent_findings(10).await,
        Err(StoreError::Corrupt {
            table: "findings",
            ..
        })
    ));
}

#[tokio::test]
async fn unsupported_and_bad_urls_are_errors() {
    assert!(matches!(
        SqliteStore::open("postgres://localhost/rampart").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
    assert!(matches!(
        SqliteStore::open("sqlite://x.db?mode=bogus").await,
        Err(StoreError::Open { .. })
    ));
    let boxed = rampart_store::open("sqlite::memory:").await.expect("open");
    assert_eq!(boxed.latest_cursor().await.expect("cursor"), 0);
}
