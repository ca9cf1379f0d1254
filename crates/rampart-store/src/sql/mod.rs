//! The SQL layer: every store method written once, over a [`Dialect`]
//! (SQLite or PostgreSQL), in SQL both understand.
//!
//! Times are INTEGER/BIGINT milliseconds since the epoch; targets are text
//! plus their address range as big-endian bytes so that "lies inside"
//! filters run in SQL on an index; u64 values are stored as the i64 with the
//! same bits (see [`crate::columns`]). Every write that touches more than
//! one row runs in one transaction; the change-log appends and rollup
//! writes take the dialect's [`Lock`]s. Request-log statistics and query
//! totals read rollups (per minute, per hour and client or path) that
//! `insert_requests` updates in the batch's own transaction and
//! `purge_requests` trims in its own (see [`crate::rollup`]).

pub(crate) mod dialect;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};

use crate::columns::*;
use crate::rollup::*;
use crate::{
    AccountStore, ActionLog, ActionRecord, AgentRecord, BlockedIp, Change, ChangeKind,
    DecisionQuery, DecisionStore, EventRecord, FindingStore, FleetRegistry, HourCount, IpCount,
    PathCount, Position, PositionStore, Prediction, RequestFilter, RequestLog, RequestPage,
    RequestRecord, RequestStats, Role, StoreError, StoredDecision, StoredFinding, StoredRequest,
    Token, UploadBatch, User, WhitelistEntry, WhitelistStore,
};
pub(crate) use dialect::{Begin, Dialect, Lock};
use dialect::{SqlRow, Stmt, Values, get};

/// The columns of `decisions` (aliased `d`) that [`decision_from_row`] reads.
macro_rules! decision_columns {
    () => {
        "d.id, d.action, d.target, d.at, d.until, d.reason, d.origin_kind, d.origin_name, \
         d.dry_run, d.escalation, d.findings_json, d.revoked_at, d.revoked_by, d.remote_id"
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

/// The store on a database: [`crate::sqlite::SqliteStore`] and
/// [`crate::postgres::PgStore`] are this over their dialects.
#[derive(Debug)]
pub struct SqlStore<D> {
    pub(crate) db: D,
}

/// Running statements.
impl Stmt<'_> {
    /// Appends SQL text (by value, for statements written in one chain).
    fn and(mut self, sql: &str) -> Self {
        self.push(sql);
        self
    }

    async fn fetch_all<D: Dialect>(self, db: &D) -> Result<Vec<D::Row>, sqlx::Error> {
        db.fetch_all(self).await
    }

    async fn fetch_optional<D: Dialect>(self, db: &D) -> Result<Option<D::Row>, sqlx::Error> {
        Ok(db.fetch_all(self).await?.into_iter().next())
    }

    async fn execute<D: Dialect>(self, db: &D) -> Result<u64, sqlx::Error> {
        db.execute(self).await
    }

    /// The `id` column of the first row (an `INSERT … RETURNING id`).
    async fn id<D: Dialect>(self, db: &D) -> Result<i64, sqlx::Error> {
        first_id(db.fetch_all(self).await?)
    }

    async fn fetch_all_in<D: Dialect>(self, tx: &mut D::Tx) -> Result<Vec<D::Row>, sqlx::Error> {
        D::fetch_all_in(tx, self).await
    }

    async fn execute_in<D: Dialect>(self, tx: &mut D::Tx) -> Result<u64, sqlx::Error> {
        D::execute_in(tx, self).await
    }

    /// [`Stmt::id`] in a transaction.
    async fn id_in<D: Dialect>(self, tx: &mut D::Tx) -> Result<i64, sqlx::Error> {
        first_id(D::fetch_all_in(tx, self).await?)
    }

    /// An integer `column` of the first row, in a transaction.
    async fn int_in<D: Dialect>(self, tx: &mut D::Tx, column: &str) -> Result<i64, StoreError> {
        let rows = D::fetch_all_in(tx, self).await?;
        let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        get(row, "query", column)
    }
}

fn first_id<R: SqlRow>(rows: Vec<R>) -> Result<i64, sqlx::Error> {
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    row.int("id")?
        .ok_or_else(|| sqlx::Error::Protocol("RETURNING id gave NULL".to_owned()))
}

#[async_trait]
impl<D: Dialect> DecisionStore for SqlStore<D> {
    async fn insert_decision(&self, decision: &Decision) -> Result<i64, StoreError> {
        store_decision(&self.db, decision, None).await
    }

    async fn import_decision(
        &self,
        decision: &Decision,
        remote_id: i64,
    ) -> Result<i64, StoreError> {
        store_decision(&self.db, decision, Some(remote_id)).await
    }

    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let mut sql = Stmt::new(concat!(
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
        let rows = sql.fetch_all(&self.db).await?;
        rows.iter().map(decision_from_row).collect()
    }

    async fn get_decision(&self, id: i64) -> Result<Option<StoredDecision>, StoreError> {
        let row = Stmt::new(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM decisions d WHERE d.id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.db)
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
        let mut sql = Stmt::new("UPDATE decisions AS d SET revoked_at = ");
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

        let mut tx = self.db.begin(Begin::Write).await?;
        let mut ids = sql
            .fetch_all_in::<D>(&mut tx)
            .await?
            .iter()
            .map(|row| get::<i64>(row, DECISIONS, "id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        if !ids.is_empty() {
            D::lock(&mut tx, Lock::ChangeLog).await?;
        }
        for &id in &ids {
            append_change::<D>(&mut tx, id, ChangeKind::Revoked, at_ms).await?;
        }
        D::commit(tx).await?;
        Ok(ids)
    }

    async fn revoke_id(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let at_ms = to_ms(at);
        let mut tx = self.db.begin(Begin::Write).await?;
        let lifted = Stmt::new(
            "UPDATE decisions SET revoked_at = ?, revoked_by = ? \
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(at_ms)
        .bind(by)
        .bind(id)
        .execute_in::<D>(&mut tx)
        .await?
            > 0;
        if lifted {
            D::lock(&mut tx, Lock::ChangeLog).await?;
            append_change::<D>(&mut tx, id, ChangeKind::Revoked, at_ms).await?;
        }
        D::commit(tx).await?;
        Ok(lifted)
    }

    async fn changes_since(&self, cursor: i64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = Stmt::new(concat!(
            "SELECT c.seq, c.kind, ",
            decision_columns!(),
            " FROM decision_changes c JOIN decisions d ON d.id = c.decision_id \
             WHERE c.seq > ? ORDER BY c.seq LIMIT ?"
        ))
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(change_from_row).collect()
    }

    async fn latest_cursor(&self) -> Result<i64, StoreError> {
        let rows = Stmt::new("SELECT COALESCE(MAX(seq), 0) AS seq FROM decision_changes")
            .fetch_all(&self.db)
            .await?;
        rows.first()
            .map_or(Ok(0), |row| get(row, DECISION_CHANGES, "seq"))
    }

    async fn ban_history(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(IpNet, DateTime<Utc>)>, StoreError> {
        let rows = Stmt::new(
            "SELECT target, at FROM decisions \
             WHERE action = 'ban' AND at >= ? ORDER BY at, id",
        )
        .bind(to_ms(since))
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|row| {
                let target = parse_target(&get::<String>(row, DECISIONS, "target")?)?;
                let at = from_ms(DECISIONS, "at", get(row, DECISIONS, "at")?)?;
                Ok((target, at))
            })
            .collect()
    }

    async fn blocked_ips(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BlockedIp>, StoreError> {
        // A decision with several findings joins once per finding: bans are
        // counted by distinct id; MIN, MAX and AVG are unaffected.
        let rows = Stmt::new(
            "SELECT d.target AS target, MIN(d.at) AS first_seen, MAX(d.at) AS last_blocked, \
             COUNT(DISTINCT d.id) AS bans, COALESCE(AVG(f.score), 0.0) AS avg_score, \
             MAX(CASE WHEN d.revoked_at IS NULL AND (d.until IS NULL OR d.until > ?) \
             THEN 1 ELSE 0 END) = 1 AS active \
             FROM decisions d LEFT JOIN findings f ON f.decision_id = d.id \
             WHERE d.action = 'ban' AND NOT d.dry_run \
             GROUP BY d.target ORDER BY MAX(d.at) DESC, MAX(d.id) DESC LIMIT ?",
        )
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(blocked_ip_from_row).collect()
    }
}

#[async_trait]
impl<D: Dialect> FindingStore for SqlStore<D> {
    async fn insert_finding(&self, finding: &Finding, note: &str) -> Result<i64, StoreError> {
        Ok(finding_insert(finding, None, Some(note))?
            .id(&self.db)
            .await?)
    }

    async fn recent_findings(&self, limit: u32) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = Stmt::new(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings ORDER BY time DESC, id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn findings_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let rows = Stmt::new(concat!(
            "SELECT ",
            finding_columns!(),
            " FROM findings WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn purge_findings(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = Stmt::new("DELETE FROM findings WHERE time < ? AND decision_id IS NULL")
            .bind(to_ms(before))
            .execute(&self.db)
            .await?;
        Ok(done)
    }
}

#[async_trait]
impl<D: Dialect> PositionStore for SqlStore<D> {
    async fn save_position(&self, position: &Position) -> Result<(), StoreError> {
        Stmt::new(
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
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn load_positions(&self, source: &str) -> Result<Vec<Position>, StoreError> {
        let rows = Stmt::new(
            "SELECT source, path, dev, inode, \"offset\", fingerprint, cursor \
             FROM positions WHERE source = ? ORDER BY path",
        )
        .and(D::BYTEWISE)
        .bind(source)
        .fetch_all(&self.db)
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
}

#[async_trait]
impl<D: Dialect> RequestLog for SqlStore<D> {
    async fn insert_requests(&self, records: &[RequestRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let _turn = self.db.request_batch_turn().await;
        let mut tx = self.db.begin(Begin::Write).await?;
        {
            // Statements of a few fixed sizes only, so that the prepared
            // statement cache hits (one cached statement per distinct SQL).
            let mut rest = records;
            for size in REQUEST_ROWS_PER_STATEMENT {
                while rest.len() >= size {
                    let (chunk, tail) = rest.split_at(size);
                    insert_request_rows::<D>(&mut tx, chunk).await?;
                    rest = tail;
                }
            }
        }
        D::lock(&mut tx, Lock::Rollups).await?;
        write_rollup::<D>(&mut tx, &Rollup::of(records)).await?;
        D::commit(tx).await?;
        Ok(())
    }

    async fn recent_requests(
        &self,
        client: Option<std::net::IpAddr>,
        limit: u32,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let mut sql = Stmt::new(concat!("SELECT ", request_columns!(), " FROM request_log"));
        if let Some(client) = client {
            sql.push(" WHERE client = ").push_bind(client.to_string());
        }
        sql.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = sql.fetch_all(&self.db).await?;
        rows.iter().map(request_from_row).collect()
    }

    async fn query_requests(
        &self,
        filter: &RequestFilter,
        offset: u64,
        limit: u32,
    ) -> Result<RequestPage, StoreError> {
        // One read transaction: the total and the page see one snapshot.
        let mut tx = self.db.begin(Begin::Snapshot).await?;
        let total = count_requests::<D>(&mut tx, filter).await?;

        let mut sql = Stmt::new(concat!(
            "SELECT id, ",
            request_columns!(),
            " FROM request_log WHERE 1 = 1"
        ));
        push_request_filter::<D>(&mut sql, filter);
        sql.push(" ORDER BY time DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = sql.fetch_all_in::<D>(&mut tx).await?;
        D::commit(tx).await?;
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
        let rows = Stmt::new(concat!(
            "SELECT id, ",
            request_columns!(),
            " FROM request_log WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
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
        let mut tx = self.db.begin(Begin::Snapshot).await?;

        // Whole minutes from the rollup, the partial first one from the log.
        let mut sums = Stmt::new(
            "SELECT prediction, blocked, CAST(SUM(requests) AS BIGINT) AS requests, SUM(score_sum) AS score_sum \
             FROM request_rollup_minute WHERE minute >= ? GROUP BY prediction, blocked",
        )
        .bind(whole_from)
        .fetch_all_in::<D>(&mut tx)
        .await?;
        if whole_from > since_ms {
            sums.extend(
                Stmt::new(
                    "SELECT prediction, blocked, COUNT(*) AS requests, SUM(score) AS score_sum \
                     FROM request_log WHERE time >= ? AND time < ? GROUP BY prediction, blocked",
                )
                .bind(since_ms)
                .bind(whole_from)
                .fetch_all_in::<D>(&mut tx)
                .await?,
            );
        }
        let totals = Totals::of(
            sums.iter()
                .map(prediction_sum_from_row)
                .collect::<Result<Vec<_>, _>>()?,
        )?;

        let by_hour = Stmt::new(
            "SELECT minute - (minute % 3600000 + 3600000) % 3600000 AS hour, \
             CAST(SUM(requests) AS BIGINT) AS requests, \
             CAST(SUM(CASE WHEN blocked THEN requests ELSE 0 END) AS BIGINT) AS blocked \
             FROM request_rollup_minute WHERE minute >= ? GROUP BY 1 ORDER BY 1",
        )
        .bind(floor_to(since_ms, HOUR_MS))
        .fetch_all_in::<D>(&mut tx)
        .await?
        .iter()
        .map(hour_count_from_row)
        .collect::<Result<Vec<_>, _>>()?;

        let (oldest, newest) = hour_span::<D>(&mut tx, "request_rollup_ip_hour").await?;
        let top_ips =
            match TopSource::choose(since_ms, oldest, newest) {
                TopSource::Nothing => Vec::new(),
                TopSource::Totals => {
                    Stmt::new(
                        "SELECT client, requests, score_sum FROM request_rollup_ip_total \
                     ORDER BY requests DESC, client LIMIT ?",
                    )
                    .bind(top)
                    .fetch_all_in::<D>(&mut tx)
                    .await?
                }
                TopSource::TotalsLessBefore(first) => Stmt::new(
                    "SELECT t.client AS client, t.requests - COALESCE(o.requests, 0) AS requests, \
                     t.score_sum - COALESCE(o.score_sum, 0) AS score_sum \
                     FROM request_rollup_ip_total t LEFT JOIN (SELECT client, \
                     CAST(SUM(requests) AS BIGINT) AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour < ? GROUP BY client) o \
                     ON o.client = t.client \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all_in::<D>(&mut tx)
                .await?,
                TopSource::Window(first) => {
                    Stmt::new(
                        "SELECT client, CAST(SUM(requests) AS BIGINT) AS requests, SUM(score_sum) AS score_sum \
                     FROM request_rollup_ip_hour WHERE hour >= ? GROUP BY client \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                    )
                    .bind(first)
                    .bind(top)
                    .fetch_all_in::<D>(&mut tx)
                    .await?
                }
            }
            .iter()
            .map(ip_count_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let (oldest, newest) = hour_span::<D>(&mut tx, "request_rollup_path_hour").await?;
        let top_paths = match TopSource::choose(since_ms, oldest, newest) {
            TopSource::Nothing => Vec::new(),
            TopSource::Totals => {
                Stmt::new(
                    "SELECT path, requests FROM request_rollup_path_total \
                     ORDER BY requests DESC, path LIMIT ?",
                )
                .bind(top)
                .fetch_all_in::<D>(&mut tx)
                .await?
            }
            TopSource::TotalsLessBefore(first) => {
                Stmt::new(
                    "SELECT t.path AS path, t.requests - COALESCE(o.requests, 0) AS requests \
                     FROM request_rollup_path_total t LEFT JOIN (SELECT path, \
                     CAST(SUM(requests) AS BIGINT) AS requests FROM request_rollup_path_hour \
                     WHERE hour < ? GROUP BY path) o ON o.path = t.path \
                     WHERE t.requests - COALESCE(o.requests, 0) > 0 \
                     ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all_in::<D>(&mut tx)
                .await?
            }
            TopSource::Window(first) => {
                Stmt::new(
                    "SELECT path, CAST(SUM(requests) AS BIGINT) AS requests FROM request_rollup_path_hour \
                     WHERE hour >= ? GROUP BY path ORDER BY 2 DESC, 1 LIMIT ?",
                )
                .bind(first)
                .bind(top)
                .fetch_all_in::<D>(&mut tx)
                .await?
            }
        }
        .iter()
        .map(path_count_from_row)
        .collect::<Result<Vec<_>, _>>()?;

        let by_scenario = Stmt::new(
            "SELECT label, COUNT(*) AS n FROM findings WHERE time >= ? \
             GROUP BY label ORDER BY 2 DESC, label",
        )
        .and(D::BYTEWISE)
        .bind(since_ms)
        .fetch_all_in::<D>(&mut tx)
        .await?
        .iter()
        .map(|row| {
            Ok((
                get(row, FINDINGS, "label")?,
                count(get(row, FINDINGS, "n")?),
            ))
        })
        .collect::<Result<_, StoreError>>()?;
        D::commit(tx).await?;

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

    async fn purge_requests(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_ms(before);
        let mut tx = self.db.begin(Begin::Write).await?;
        D::lock(&mut tx, Lock::Rollups).await?;
        purge_rollups::<D>(&mut tx, before).await?;
        let done = Stmt::new("DELETE FROM request_log WHERE time < ?")
            .bind(before)
            .execute_in::<D>(&mut tx)
            .await?;
        D::commit(tx).await?;
        Ok(done)
    }
}

#[async_trait]
impl<D: Dialect> AccountStore for SqlStore<D> {
    async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Stmt::new(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(to_ms(at))
        .bind(to_ms(at))
        .id(&self.db)
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
        let done = Stmt::new(
            "UPDATE users SET role = COALESCE(?, role), password_hash = COALESCE(?, password_hash), updated_at = ? WHERE name = ?",
        )
        .bind(role.map(Role::as_str))
        .bind(password_hash)
        .bind(to_ms(at))
        .bind(name)
        .execute(&self.db)
        .await?;
        Ok(done > 0)
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let row = Stmt::new(
            "SELECT id, name, role, password_hash, created_at, updated_at FROM users WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, name, role, password_hash, created_at, updated_at FROM users ORDER BY name",
        )
        .fetch_all(&self.db)
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
        Stmt::new(
            "INSERT INTO tokens (name, role, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(secret_hash)
        .bind(created_by)
        .bind(to_ms(at))
        .id(&self.db)
        .await
        .map_err(|e| conflict_or_query(e, &format!("token {name:?}")))
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>, StoreError> {
        let row = Stmt::new(
            "SELECT id, name, role, secret_hash, created_by, created_at, revoked_at FROM tokens WHERE secret_hash = ?",
        )
        .bind(secret_hash)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn revoke_token(&self, name: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            Stmt::new("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL")
                .bind(to_ms(at))
                .bind(name)
                .execute(&self.db)
                .await?;
        Ok(done > 0)
    }

    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, name, role, secret_hash, created_by, created_at, revoked_at FROM tokens ORDER BY name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    // ---- the central server's tables ----
}

#[async_trait]
impl<D: Dialect> FleetRegistry for SqlStore<D> {
    async fn insert_events(&self, events: &[EventRecord]) -> Result<Vec<i64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin(Begin::Write).await?;
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            let id: i64 = Stmt::new(
                "INSERT INTO events (time, node, kind, source_ip, label, payload_json) \
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(to_ms(event.time))
            .bind(&event.node)
            .bind(&event.kind)
            .bind(event.source_ip.map(|ip| ip.to_string()))
            .bind(&event.label)
            .bind(to_json(&event.payload)?)
            .id_in::<D>(&mut tx)
            .await?;
            ids.push(id);
        }
        D::commit(tx).await?;
        Ok(ids)
    }

    async fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, EventRecord)>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, time, node, kind, source_ip, label, payload_json FROM events \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn upsert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        Stmt::new(
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
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn list_agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, kind, address, version, started_at, last_seen, processed, blocked \
             FROM agents ORDER BY id",
        )
        .and(D::BYTEWISE)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn insert_upload(&self, batch: &UploadBatch) -> Result<i64, StoreError> {
        let id = Stmt::new(
            "INSERT INTO upload_batches (time, principal, kind, accepted, rejected, errors_json) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_ms(batch.time))
        .bind(&batch.principal)
        .bind(&batch.kind)
        .bind(u64_to_sql(batch.accepted))
        .bind(u64_to_sql(batch.rejected))
        .bind(to_json(&batch.errors)?)
        .id(&self.db)
        .await?;
        Ok(id)
    }

    async fn recent_uploads(&self, limit: u32) -> Result<Vec<(i64, UploadBatch)>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, time, principal, kind, accepted, rejected, errors_json \
             FROM upload_batches ORDER BY time DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(upload_from_row).collect()
    }

    async fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = to_ms(before);
        let mut tx = self.db.begin(Begin::Write).await?;
        let mut purged = 0;
        for sql in [
            "DELETE FROM events WHERE time < ?",
            "DELETE FROM upload_batches WHERE time < ?",
        ] {
            purged += Stmt::new(sql).bind(before).execute_in::<D>(&mut tx).await?;
        }
        D::commit(tx).await?;
        Ok(purged)
    }
}

#[async_trait]
impl<D: Dialect> ActionLog for SqlStore<D> {
    async fn insert_action(&self, action: &ActionRecord) -> Result<i64, StoreError> {
        let id = Stmt::new(
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
        .id(&self.db)
        .await?;
        Ok(id)
    }

    async fn recent_actions(&self, limit: u32) -> Result<Vec<(i64, ActionRecord)>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, time, node, decision_id, action, target, ok, detail FROM actions \
             ORDER BY time DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn actions_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, ActionRecord)>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, time, node, decision_id, action, target, ok, detail FROM actions \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(action_from_row).collect()
    }

    async fn purge_actions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(Stmt::new("DELETE FROM actions WHERE time < ?")
            .bind(to_ms(before))
            .execute(&self.db)
            .await?)
    }
}

#[async_trait]
impl<D: Dialect> WhitelistStore for SqlStore<D> {
    async fn add_whitelist(
        &self,
        target: &IpNet,
        comment: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let range = TargetColumns::of(target);
        Stmt::new(
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
        .id(&self.db)
        .await
        .map_err(|e| conflict_or_query(e, &format!("whitelist entry {}", target.trunc())))
    }

    async fn list_whitelist(&self) -> Result<Vec<WhitelistEntry>, StoreError> {
        let rows = Stmt::new(
            "SELECT id, target, comment, created_by, created_at FROM whitelist ORDER BY id",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(whitelist_from_row).collect()
    }

    async fn delete_whitelist(&self, id: i64) -> Result<bool, StoreError> {
        let done = Stmt::new("DELETE FROM whitelist WHERE id = ?")
            .bind(id)
            .execute(&self.db)
            .await?;
        Ok(done > 0)
    }
}

/// Stores a decision (and its findings), `remote_id` when it was made
/// elsewhere in the fleet, with its `Added` change.
async fn store_decision<D: Dialect>(
    db: &D,
    decision: &Decision,
    remote_id: Option<i64>,
) -> Result<i64, StoreError> {
    let row = TargetColumns::of(&decision.target);
    let findings_json = to_json(&decision.findings)?;
    let at = to_ms(decision.at);

    let mut tx = db.begin(Begin::Write).await?;
    let id: i64 = Stmt::new(
        "INSERT INTO decisions (action, target, net_family, range_start, range_end, at, \
         until, reason, origin_kind, origin_name, dry_run, escalation, findings_json, \
         remote_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
    .bind(remote_id)
    .id_in::<D>(&mut tx)
    .await?;

    for finding in &decision.findings {
        finding_insert(finding, Some(id), None)?
            .id_in::<D>(&mut tx)
            .await?;
    }
    D::lock(&mut tx, Lock::ChangeLog).await?;
    append_change::<D>(&mut tx, id, ChangeKind::Added, at).await?;
    D::commit(tx).await?;
    Ok(id)
}

async fn insert_request_rows<D: Dialect>(
    tx: &mut D::Tx,
    rows: &[RequestRecord],
) -> Result<(), StoreError> {
    let mut sql = Stmt::new(
        "INSERT INTO request_log (time, gateway, request_id, client, method, path, \
         user_agent, status, request_bytes, response_bytes, latency_ms, score, \
         prediction, blocked, reason, backend) ",
    );
    sql.push_values(rows, |row, r| {
        row.bind(to_ms(r.time))
            .bind(&r.gateway)
            .bind(&r.request_id)
            .bind(r.client.to_string())
            .bind(&r.method)
            .bind(&r.path)
            .bind(&r.user_agent)
            .bind(i64::from(r.status))
            .bind(u64_to_sql(r.request_bytes))
            .bind(u64_to_sql(r.response_bytes))
            .bind(r.latency_ms)
            .bind(r.score)
            .bind(r.prediction.as_str())
            .bind(r.blocked)
            .bind(&r.reason)
            .bind(&r.backend);
    });
    sql.execute_in::<D>(tx).await?;
    Ok(())
}

/// Appends ` AND …` for each field of `filter` (on `request_log`).
///
/// With a client, its index serves best: the other indexed columns are
/// written `+column`, which SQLite never reads through an index. Without
/// one, a non-NORMAL prediction and a status other than 200 repeat the
/// condition of their partial index, which SQLite uses only then.
fn push_request_filter<D: Dialect>(sql: &mut Stmt<'_>, filter: &RequestFilter) {
    let by_client = filter.client.is_some();
    let plus = if by_client { D::UNINDEXED } else { "" };
    let partial = !by_client || D::PARTIAL_INDEX_WITH_CLIENT;
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
        sql.push(" AND substr(path, 1, CAST(")
            .push_bind(chars)
            .push(" AS INTEGER)) = ")
            .push_bind(prefix.clone());
    }
    if let Some(prediction) = filter.prediction {
        sql.push(" AND ")
            .push(plus)
            .push("prediction = ")
            .push_bind(prediction.as_str());
        if partial && prediction != Prediction::Normal {
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
        if partial && status != 200 {
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
async fn count_requests<D: Dialect>(
    tx: &mut D::Tx,
    filter: &RequestFilter,
) -> Result<u64, StoreError> {
    let from = CountFrom::of(filter);
    if from == CountFrom::Log {
        let mut sql = Stmt::new("SELECT COUNT(*) AS n FROM request_log WHERE 1 = 1");
        push_request_filter::<D>(&mut sql, filter);
        return Ok(count(sql.int_in::<D>(tx, "n").await?));
    }
    let whole_from = filter.since.map(|s| ceil_to(to_ms(s), MINUTE_MS));
    let mut sql = Stmt::new(if from == CountFrom::Detail {
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM request_rollup_minute_detail WHERE 1 = 1"
    } else {
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM request_rollup_minute WHERE 1 = 1"
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
    let whole = sql.int_in::<D>(tx, "n").await?;
    let Some(from) = whole_from else {
        return Ok(count(whole));
    };
    let mut sql = Stmt::new("SELECT COUNT(*) AS n FROM request_log WHERE time < ");
    sql.push_bind(from);
    push_request_filter::<D>(&mut sql, filter);
    let edge = sql.int_in::<D>(tx, "n").await?;
    Ok(count(whole) + count(edge))
}

/// Inserts `rows` with `head` (`INSERT INTO t (cols) `) and `tail` (the
/// `ON CONFLICT` clause), a few fixed statement sizes at a time.
async fn upsert<'a, D: Dialect, T: 'a>(
    tx: &mut D::Tx,
    head: &'static str,
    tail: &'static str,
    rows: &'a [T],
    mut push: impl FnMut(&mut Values<'_, 'a>, &'a T),
) -> Result<(), StoreError> {
    let mut rest = rows;
    for size in ROLLUP_ROWS_PER_STATEMENT {
        while rest.len() >= size {
            let (chunk, others) = rest.split_at(size);
            let mut sql = Stmt::new(head);
            sql.push_values(chunk, &mut push).push(tail);
            sql.execute_in::<D>(tx).await?;
            rest = others;
        }
    }
    Ok(())
}

/// Adds a batch's sums to the rollups (in the batch's transaction).
async fn write_rollup<D: Dialect>(tx: &mut D::Tx, rollup: &Rollup<'_>) -> Result<(), StoreError> {
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_minute (minute, prediction, blocked, requests, score_sum) ",
        " ON CONFLICT (minute, prediction, blocked) DO UPDATE SET \
         requests = request_rollup_minute.requests + excluded.requests, score_sum = request_rollup_minute.score_sum + excluded.score_sum",
        &rollup.minutes,
        |row, ((minute, prediction, blocked), (requests, score_sum))| {
            row.bind(*minute)
                .bind(*prediction)
                .bind(*blocked)
                .bind(*requests)
                .bind(*score_sum);
        },
    )
    .await?;
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_minute_detail (minute, prediction, blocked, status, \
         gateway, requests) ",
        " ON CONFLICT (minute, prediction, blocked, status, gateway) DO UPDATE SET \
         requests = request_rollup_minute_detail.requests + excluded.requests",
        &rollup.details,
        |row, ((minute, prediction, blocked, status, gateway), requests)| {
            row.bind(*minute)
                .bind(*prediction)
                .bind(*blocked)
                .bind(i64::from(*status))
                .bind(*gateway)
                .bind(*requests);
        },
    )
    .await?;
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_ip_hour (hour, client, requests, score_sum) ",
        " ON CONFLICT (hour, client) DO UPDATE SET \
         requests = request_rollup_ip_hour.requests + excluded.requests, score_sum = request_rollup_ip_hour.score_sum + excluded.score_sum",
        &rollup.client_hours,
        |row, ((hour, client), (requests, score_sum))| {
            row.bind(*hour)
                .bind(client.as_str())
                .bind(*requests)
                .bind(*score_sum);
        },
    )
    .await?;
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_ip_total (client, requests, score_sum) ",
        " ON CONFLICT (client) DO UPDATE SET \
         requests = request_rollup_ip_total.requests + excluded.requests, score_sum = request_rollup_ip_total.score_sum + excluded.score_sum",
        &rollup.clients,
        |row, (client, (requests, score_sum))| {
            row.bind(client.as_str())
                .bind(*requests)
                .bind(*score_sum);
        },
    )
    .await?;
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_path_hour (hour, path, requests) ",
        " ON CONFLICT (hour, path) DO UPDATE SET requests = request_rollup_path_hour.requests + excluded.requests",
        &rollup.path_hours,
        |row, ((hour, path), requests)| {
            row.bind(*hour).bind(*path).bind(*requests);
        },
    )
    .await?;
    upsert::<D, _>(
        tx,
        "INSERT INTO request_rollup_path_total (path, requests) ",
        " ON CONFLICT (path) DO UPDATE SET requests = request_rollup_path_total.requests + excluded.requests",
        &rollup.paths,
        |row, (path, requests)| {
            row.bind(*path).bind(*requests);
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
async fn purge_rollups<D: Dialect>(tx: &mut D::Tx, before: i64) -> Result<(), StoreError> {
    let minute = floor_to(before, MINUTE_MS);
    if minute < before {
        Stmt::new(
            "UPDATE request_rollup_minute AS m SET requests = m.requests - c.requests, \
             score_sum = m.score_sum - c.score_sum FROM (SELECT prediction, blocked, \
             COUNT(*) AS requests, SUM(score) AS score_sum FROM request_log \
             WHERE time >= ?1 AND time < ?2 GROUP BY prediction, blocked) AS c \
             WHERE m.minute = ?1 AND m.prediction = c.prediction AND m.blocked = c.blocked",
        )
        .bind(minute)
        .bind(before)
        .execute_in::<D>(tx)
        .await?;
        Stmt::new(
            "UPDATE request_rollup_minute_detail AS m SET requests = m.requests - c.requests \
             FROM (SELECT prediction, blocked, status, gateway, COUNT(*) AS requests \
             FROM request_log WHERE time >= ?1 AND time < ?2 \
             GROUP BY prediction, blocked, status, gateway) AS c \
             WHERE m.minute = ?1 AND m.prediction = c.prediction AND m.blocked = c.blocked \
             AND m.status = c.status AND m.gateway = c.gateway",
        )
        .bind(minute)
        .bind(before)
        .execute_in::<D>(tx)
        .await?;
        for sql in [
            "DELETE FROM request_rollup_minute WHERE minute = ? AND requests <= 0",
            "DELETE FROM request_rollup_minute_detail WHERE minute = ? AND requests <= 0",
        ] {
            Stmt::new(sql).bind(minute).execute_in::<D>(tx).await?;
        }
    }
    for sql in [
        "DELETE FROM request_rollup_minute WHERE minute < ?",
        "DELETE FROM request_rollup_minute_detail WHERE minute < ?",
    ] {
        Stmt::new(sql).bind(minute).execute_in::<D>(tx).await?;
    }

    let hour = floor_to(before, HOUR_MS);
    for sql in [
        "UPDATE request_rollup_ip_total AS t SET requests = t.requests - o.requests, \
         score_sum = t.score_sum - o.score_sum FROM (SELECT client, CAST(SUM(requests) AS BIGINT) AS requests, \
         SUM(score_sum) AS score_sum FROM request_rollup_ip_hour WHERE hour < ? \
         GROUP BY client) AS o WHERE t.client = o.client",
        "UPDATE request_rollup_path_total AS t SET requests = t.requests - o.requests \
         FROM (SELECT path, CAST(SUM(requests) AS BIGINT) AS requests FROM request_rollup_path_hour \
         WHERE hour < ? GROUP BY path) AS o WHERE t.path = o.path",
        "DELETE FROM request_rollup_ip_hour WHERE hour < ?",
        "DELETE FROM request_rollup_path_hour WHERE hour < ?",
    ] {
        Stmt::new(sql).bind(hour).execute_in::<D>(tx).await?;
    }
    for sql in [
        "DELETE FROM request_rollup_ip_total WHERE requests <= 0",
        "DELETE FROM request_rollup_path_total WHERE requests <= 0",
    ] {
        Stmt::new(sql).execute_in::<D>(tx).await?;
    }
    Ok(())
}

fn stored_request_from_row(row: &impl SqlRow) -> Result<StoredRequest, StoreError> {
    Ok(StoredRequest {
        id: get(row, REQUEST_LOG, "id")?,
        record: request_from_row(row)?,
    })
}

fn request_from_row(row: &impl SqlRow) -> Result<RequestRecord, StoreError> {
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

/// Appends `AND` the target of `d` lies inside `net` (or is it).
fn push_inside(sql: &mut Stmt<'_>, net: &IpNet) {
    let range = TargetColumns::of(net);
    sql.push(" AND d.net_family = ")
        .push_bind(i64::from(range.family))
        .push(" AND d.range_start >= ")
        .push_bind(range.start)
        .push(" AND d.range_end <= ")
        .push_bind(range.end);
}

async fn append_change<D: Dialect>(
    tx: &mut D::Tx,
    decision_id: i64,
    kind: ChangeKind,
    at_ms: i64,
) -> Result<(), StoreError> {
    Stmt::new("INSERT INTO decision_changes (decision_id, kind, at) VALUES (?, ?, ?)")
        .bind(decision_id)
        .bind(kind.as_str())
        .bind(at_ms)
        .execute_in::<D>(tx)
        .await?;
    Ok(())
}

/// The statement that stores a finding (`RETURNING id`).
fn finding_insert<'a>(
    finding: &'a Finding,
    decision_id: Option<i64>,
    note: Option<&'a str>,
) -> Result<Stmt<'a>, StoreError> {
    Ok(Stmt::new(
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
    .bind(note))
}

/// The first and last hour in an hourly rollup table (`None` when empty).
async fn hour_span<D: Dialect>(
    tx: &mut D::Tx,
    table: &'static str,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let sql = match table {
        "request_rollup_ip_hour" => {
            "SELECT MIN(hour) AS oldest, MAX(hour) AS newest FROM request_rollup_ip_hour"
        }
        _ => "SELECT MIN(hour) AS oldest, MAX(hour) AS newest FROM request_rollup_path_hour",
    };
    let rows = Stmt::new(sql).fetch_all_in::<D>(tx).await?;
    match rows.first() {
        Some(row) => Ok((get(row, table, "oldest")?, get(row, table, "newest")?)),
        None => Ok((None, None)),
    }
}

fn decision_from_row(row: &impl SqlRow) -> Result<StoredDecision, StoreError> {
    let id: i64 = get(row, DECISIONS, "id")?;
    let action_name: String = get(row, DECISIONS, "action")?;
    let action = Action::from_name(&action_name).ok_or_else(|| {
        corrupt(
            DECISIONS,
            format!("decision {id}: unknown action {action_name:?}"),
        )
    })?;
    let origin_kind: String = get(row, DECISIONS, "origin_kind")?;
    let origin_name: String = get(row, DECISIONS, "origin_name")?;
    let origin = Origin::from_parts(&origin_kind, &origin_name).ok_or_else(|| {
        corrupt(
            DECISIONS,
            format!("decision {id}: unknown origin kind {origin_kind:?}"),
        )
    })?;
    let escalation = u32::try_from(get::<i64>(row, DECISIONS, "escalation")?)
        .map_err(|e| corrupt(DECISIONS, format!("decision {id}: escalation: {e}")))?;
    let findings: Vec<Finding> = from_json(
        DECISIONS,
        "findings_json",
        &get::<String>(row, DECISIONS, "findings_json")?,
    )?;

    let decision = Decision {
        id: Some(id),
        action,
        target: parse_target(&get::<String>(row, DECISIONS, "target")?)?,
        at: from_ms(DECISIONS, "at", get(row, DECISIONS, "at")?)?,
        until: opt_from_ms(DECISIONS, "until", get(row, DECISIONS, "until")?)?,
        reason: get(row, DECISIONS, "reason")?,
        origin,
        dry_run: get(row, DECISIONS, "dry_run")?,
        escalation,
        findings,
    };
    Ok(StoredDecision {
        id,
        decision,
        revoked_at: opt_from_ms(DECISIONS, "revoked_at", get(row, DECISIONS, "revoked_at")?)?,
        revoked_by: get(row, DECISIONS, "revoked_by")?,
        remote_id: get(row, DECISIONS, "remote_id")?,
    })
}

/// A change and its decision as it was right after the change: decisions
/// change only by being revoked, once, so after `Added` it is the current
/// row without its revocation, and after `Revoked` the current row.
fn change_from_row(row: &impl SqlRow) -> Result<Change, StoreError> {
    let seq: i64 = get(row, DECISION_CHANGES, "seq")?;
    let kind_name: String = get(row, DECISION_CHANGES, "kind")?;
    let kind = ChangeKind::from_name(&kind_name).ok_or_else(|| {
        corrupt(
            DECISION_CHANGES,
            format!("change {seq}: unknown kind {kind_name:?}"),
        )
    })?;
    let mut decision = decision_from_row(row)?;
    if kind == ChangeKind::Added {
        decision.revoked_at = None;
        decision.revoked_by = None;
    }
    Ok(Change {
        seq,
        kind,
        decision,
    })
}

fn finding_from_row(row: &impl SqlRow) -> Result<StoredFinding, StoreError> {
    let id: i64 = get(row, FINDINGS, "id")?;
    let level_name: String = get(row, FINDINGS, "level")?;
    let level = Level::from_name(&level_name).ok_or_else(|| {
        corrupt(
            FINDINGS,
            format!("finding {id}: unknown level {level_name:?}"),
        )
    })?;
    let subject: Subject = from_json(
        FINDINGS,
        "subject_json",
        &get::<String>(row, FINDINGS, "subject_json")?,
    )?;
    let evidence: Evidence = from_json(
        FINDINGS,
        "evidence_json",
        &get::<String>(row, FINDINGS, "evidence_json")?,
    )?;
    Ok(StoredFinding {
        id,
        finding: Finding {
            time: from_ms(FINDINGS, "time", get(row, FINDINGS, "time")?)?,
            subject,
            label: get(row, FINDINGS, "label")?,
            score: get(row, FINDINGS, "score")?,
            level,
            evidence,
        },
        decision_id: get(row, FINDINGS, "decision_id")?,
        note: get(row, FINDINGS, "note")?,
    })
}

fn user_from_row(row: &impl SqlRow) -> Result<User, StoreError> {
    Ok(User {
        id: get(row, USERS, "id")?,
        name: get(row, USERS, "name")?,
        role: role(USERS, &get::<String>(row, USERS, "role")?)?,
        password_hash: get(row, USERS, "password_hash")?,
        created_at: from_ms(USERS, "created_at", get(row, USERS, "created_at")?)?,
        updated_at: from_ms(USERS, "updated_at", get(row, USERS, "updated_at")?)?,
    })
}

fn token_from_row(row: &impl SqlRow) -> Result<Token, StoreError> {
    Ok(Token {
        id: get(row, TOKENS, "id")?,
        name: get(row, TOKENS, "name")?,
        role: role(TOKENS, &get::<String>(row, TOKENS, "role")?)?,
        secret_hash: get(row, TOKENS, "secret_hash")?,
        created_by: get(row, TOKENS, "created_by")?,
        created_at: from_ms(TOKENS, "created_at", get(row, TOKENS, "created_at")?)?,
        revoked_at: opt_from_ms(TOKENS, "revoked_at", get(row, TOKENS, "revoked_at")?)?,
    })
}

fn event_from_row(row: &impl SqlRow) -> Result<(i64, EventRecord), StoreError> {
    let source_ip = get::<Option<String>>(row, EVENTS, "source_ip")?
        .map(|ip| {
            ip.parse()
                .map_err(|_| corrupt(EVENTS, format!("source_ip {ip:?}")))
        })
        .transpose()?;
    Ok((
        get(row, EVENTS, "id")?,
        EventRecord {
            time: from_ms(EVENTS, "time", get(row, EVENTS, "time")?)?,
            node: get(row, EVENTS, "node")?,
            kind: get(row, EVENTS, "kind")?,
            source_ip,
            label: get(row, EVENTS, "label")?,
            payload: from_json(
                EVENTS,
                "payload_json",
                &get::<String>(row, EVENTS, "payload_json")?,
            )?,
        },
    ))
}

fn agent_from_row(row: &impl SqlRow) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        id: get(row, AGENTS, "id")?,
        kind: get(row, AGENTS, "kind")?,
        address: get(row, AGENTS, "address")?,
        version: get(row, AGENTS, "version")?,
        started_at: from_ms(AGENTS, "started_at", get(row, AGENTS, "started_at")?)?,
        last_seen: from_ms(AGENTS, "last_seen", get(row, AGENTS, "last_seen")?)?,
        processed: sql_to_u64(get(row, AGENTS, "processed")?),
        blocked: sql_to_u64(get(row, AGENTS, "blocked")?),
    })
}

fn action_from_row(row: &impl SqlRow) -> Result<(i64, ActionRecord), StoreError> {
    Ok((
        get(row, ACTIONS, "id")?,
        ActionRecord {
            time: from_ms(ACTIONS, "time", get(row, ACTIONS, "time")?)?,
            node: get(row, ACTIONS, "node")?,
            decision_id: get(row, ACTIONS, "decision_id")?,
            action: get(row, ACTIONS, "action")?,
            target: get(row, ACTIONS, "target")?,
            ok: get(row, ACTIONS, "ok")?,
            detail: get(row, ACTIONS, "detail")?,
        },
    ))
}

fn upload_from_row(row: &impl SqlRow) -> Result<(i64, UploadBatch), StoreError> {
    Ok((
        get(row, UPLOAD_BATCHES, "id")?,
        UploadBatch {
            time: from_ms(UPLOAD_BATCHES, "time", get(row, UPLOAD_BATCHES, "time")?)?,
            principal: get(row, UPLOAD_BATCHES, "principal")?,
            kind: get(row, UPLOAD_BATCHES, "kind")?,
            accepted: sql_to_u64(get(row, UPLOAD_BATCHES, "accepted")?),
            rejected: sql_to_u64(get(row, UPLOAD_BATCHES, "rejected")?),
            errors: from_json(
                UPLOAD_BATCHES,
                "errors_json",
                &get::<String>(row, UPLOAD_BATCHES, "errors_json")?,
            )?,
        },
    ))
}

fn whitelist_from_row(row: &impl SqlRow) -> Result<WhitelistEntry, StoreError> {
    let target: String = get(row, WHITELIST, "target")?;
    Ok(WhitelistEntry {
        id: get(row, WHITELIST, "id")?,
        target: target
            .parse()
            .map_err(|_| corrupt(WHITELIST, format!("target {target:?} is not a network")))?,
        comment: get(row, WHITELIST, "comment")?,
        created_by: get(row, WHITELIST, "created_by")?,
        created_at: from_ms(WHITELIST, "created_at", get(row, WHITELIST, "created_at")?)?,
    })
}

/// A blocked_ips row: target, first_seen, last_blocked, bans, avg_score, active.
fn blocked_ip_from_row(row: &impl SqlRow) -> Result<BlockedIp, StoreError> {
    Ok(BlockedIp {
        target: parse_target(&get::<String>(row, DECISIONS, "target")?)?,
        first_seen: from_ms(DECISIONS, "first_seen", get(row, DECISIONS, "first_seen")?)?,
        last_blocked: from_ms(
            DECISIONS,
            "last_blocked",
            get(row, DECISIONS, "last_blocked")?,
        )?,
        count: count(get(row, DECISIONS, "bans")?),
        avg_score: get(row, DECISIONS, "avg_score")?,
        active: get(row, DECISIONS, "active")?,
    })
}

/// A top_ips row: client, requests, score_sum.
fn ip_count_from_row(row: &impl SqlRow) -> Result<IpCount, StoreError> {
    let client: String = get(row, ROLLUP_IP, "client")?;
    let requests: i64 = get(row, ROLLUP_IP, "requests")?;
    let score_sum: f64 = get(row, ROLLUP_IP, "score_sum")?;
    Ok(IpCount {
        ip: client
            .parse()
            .map_err(|_| corrupt(ROLLUP_IP, format!("client {client:?}")))?,
        count: count(requests),
        avg_confidence: if requests > 0 {
            score_sum / requests as f64
        } else {
            0.0
        },
    })
}

/// A top_paths row: path, requests.
fn path_count_from_row(row: &impl SqlRow) -> Result<PathCount, StoreError> {
    Ok(PathCount {
        path: get(row, ROLLUP_PATH, "path")?,
        count: count(get(row, ROLLUP_PATH, "requests")?),
    })
}

/// A per-(prediction, blocked) sum: prediction, blocked, requests, score_sum.
fn prediction_sum_from_row(row: &impl SqlRow) -> Result<(String, bool, i64, f64), StoreError> {
    Ok((
        get(row, ROLLUP_MINUTE, "prediction")?,
        get(row, ROLLUP_MINUTE, "blocked")?,
        get(row, ROLLUP_MINUTE, "requests")?,
        get::<Option<f64>>(row, ROLLUP_MINUTE, "score_sum")?.unwrap_or(0.0),
    ))
}

/// A by_hour row: hour, requests, blocked.
fn hour_count_from_row(row: &impl SqlRow) -> Result<HourCount, StoreError> {
    Ok(HourCount {
        hour: from_ms(ROLLUP_MINUTE, "hour", get(row, ROLLUP_MINUTE, "hour")?)?,
        requests: count(get(row, ROLLUP_MINUTE, "requests")?),
        blocked: count(get(row, ROLLUP_MINUTE, "blocked")?),
    })
}
