//! Scratch PostgreSQL databases for tests, on the server named by
//! `RAMPART_TEST_POSTGRES_URL` (an admin URL, e.g.
//! `postgres://rampart@127.0.0.1:55432/postgres`; `.ci/postgres` starts a
//! private cluster and prints it).

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The admin URL; `None` (skip, with a message) when it is not set,
/// unless `CI` is set: then a missing server fails the test.
pub fn admin_url() -> Option<String> {
    match std::env::var("RAMPART_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must provide RAMPART_TEST_POSTGRES_URL (run .ci/postgres)")
        }
        _ => {
            eprintln!(
                "skipped: RAMPART_TEST_POSTGRES_URL is not set (start one with .ci/postgres)"
            );
            None
        }
    }
}

/// Drops its database when dropped.
pub struct ScratchDatabase {
    admin: String,
    name: String,
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A fresh, empty database named `PREFIX_PID_N` on the server of `admin`:
/// its URL, and the guard that drops it.
pub async fn scratch(admin: &str, prefix: &str) -> (String, ScratchDatabase) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to the admin database");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("prepare the scratch database");
    }
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    let guard = ScratchDatabase {
        admin: admin.to_owned(),
        name: name.clone(),
    };
    (format!("{base}/{name}"), guard)
}
