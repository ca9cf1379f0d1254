//! The store test suite on PostgreSQL: each case gets a fresh database on
//! the server named by `RAMPART_TEST_POSTGRES_URL` (an admin URL, e.g.
//! `postgres://rampart@127.0.0.1:55432/postgres`; `.ci/postgres` starts a
//! private cluster and prints it). Without the variable the cases are
//! skipped with a message, unless `CI` is set: then they fail.
//! Also: two handles on one database (two servers sharing PostgreSQL).

use rampart_store::ChangeKind;
use rampart_store::DecisionStore;
use rampart_store::postgres::PgStore;
use rampart_store::testing::postgres::{admin_url, scratch};
use rampart_store::testing::{Fixture, ban, t};

async fn pg_store() -> Option<Fixture> {
    let admin = admin_url()?;
    let (url, guard) = scratch(&admin, "rampart_test").await;
    let store = PgStore::open(&url).await.expect("open postgres store");
    Some(Fixture::new(store).with_guard(guard))
}

rampart_store::store_test_suite!(pg_store());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_the_change_log() {
    let Some(admin) = admin_url() else { return };
    let (url, _guard) = scratch(&admin, "rampart_test").await;
    // Two handles opening (and migrating) at once.
    let (a, b) = tokio::join!(PgStore::open(&url), PgStore::open(&url));
    let (a, b) = (a.expect("first opens"), b.expect("second opens"));
    let id = a
        .insert_decision(&ban("192.0.2.1/32", t(0)))
        .await
        .expect("insert");
    let changes = b.changes_since(0, 10).await.expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].decision.id, id);
    assert!(b.revoke_id(id, "other server", t(1)).await.expect("revoke"));
    let changes = a.changes_since(changes[0].seq, 10).await.expect("changes");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Revoked);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_sees_every_change_while_servers_write_concurrently() {
    let Some(admin) = admin_url() else { return };
    let (url, _guard) = scratch(&admin, "rampart_test").await;
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = url.clone();
        opens.spawn(async move { PgStore::open(&url).await.expect("open") });
    }
    let mut stores = Vec::new();
    while let Some(s) = opens.join_next().await {
        stores.push(s.expect("ok"));
    }
    // Followers read while writers write through separate pools.
    let follower = stores.pop().expect("ok");
    let mut writers = tokio::task::JoinSet::new();
    for (w, store) in stores.into_iter().enumerate() {
        writers.spawn(async move {
            for i in 0..40 {
                let id = store
                    .insert_decision(&ban(&format!("10.{w}.0.{i}/32"), t(0)))
                    .await
                    .expect("ok");
                if i % 3 == 0 {
                    store.revoke_id(id, "x", t(1)).await.expect("ok");
                }
                if i % 10 == 0 {
                    store
                        .revoke(
                            Some(&format!("10.{w}.0.0/24").parse().expect("ok")),
                            "y",
                            t(2),
                        )
                        .await
                        .expect("ok");
                }
            }
        });
    }
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let done = writers.is_empty();
        let changes = follower.changes_since(cursor, 7).await.expect("ok");
        for c in &changes {
            assert!(c.seq > cursor);
            cursor = c.seq;
            seen.push(c.seq);
        }
        if changes.is_empty() {
            if done {
                break;
            }
            if let Some(r) = writers.try_join_next() {
                r.expect("ok");
            }
            tokio::task::yield_now().await;
        }
    }
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM decision_changes")
        .fetch_one(follower.pool())
        .await
        .expect("ok");
    assert_eq!(seen.len() as i64, total, "follower saw every change");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(follower.pool())
        .await
        .expect("ok");
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations dir")
        .count();
    assert_eq!(applied, i64::try_from(shipped).expect("count"));
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    use rampart_store::StoreError;
    let Some(admin) = admin_url() else { return };
    for (sql, table) in [
        ("UPDATE decisions SET target = 'not-a-net'", "decisions"),
        ("UPDATE decisions SET action = 'explode'", "decisions"),
        ("UPDATE decisions SET findings_json = '{'", "decisions"),
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
        let (url, _guard) = scratch(&admin, "rampart_test").await;
        let store = PgStore::open(&url).await.expect("open");
        let id = store
            .insert_decision(&ban("192.0.2.7/32", t(0)))
            .await
            .expect("ok");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(store.pool())
            .await
            .expect("ok");
        let result = if table == "decision_changes" {
            store.changes_since(0, 10).await.map(drop)
        } else {
            store.get_decision(id).await.map(drop)
        };
        match result {
            Err(StoreError::Corrupt { table: found, .. }) => assert_eq!(found, table, "{sql}"),
            other => panic!("{sql}: expected a corrupt row, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn only_postgres_urls_open() {
    assert!(matches!(
        PgStore::open("sqlite::memory:").await,
        Err(rampart_store::StoreError::UnsupportedUrl(_))
    ));
}
