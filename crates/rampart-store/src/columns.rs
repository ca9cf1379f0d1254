//! What both backends store the same way: times as milliseconds, u64 as
//! i64 bits, JSON text, address ranges as big-endian bytes, enumeration
//! names, table names, and the corrupt-row error.

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::StoreError;

pub(crate) const REQUEST_LOG: &str = "request_log";
pub(crate) const DECISIONS: &str = "decisions";
pub(crate) const DECISION_CHANGES: &str = "decision_changes";
pub(crate) const FINDINGS: &str = "findings";
pub(crate) const POSITIONS: &str = "positions";
pub(crate) const EVENTS: &str = "events";
pub(crate) const AGENTS: &str = "agents";
pub(crate) const ACTIONS: &str = "actions";
pub(crate) const UPLOAD_BATCHES: &str = "upload_batches";
pub(crate) const WHITELIST: &str = "whitelist";

/// Request-log rows per INSERT statement, largest first. Few fixed sizes
/// keep the prepared-statement cache small and hit; the last must be 1.
/// (16 values a row: SQLite takes 32766 a statement, PostgreSQL 65535.)
pub(crate) const REQUEST_ROWS_PER_STATEMENT: [usize; 3] = [256, 16, 1];

/// A target's address family and range, as stored for "lies inside" filters.
pub(crate) struct TargetColumns {
    /// 4 or 6.
    pub family: u8,
    /// First address, big-endian bytes.
    pub start: Vec<u8>,
    /// Last address, big-endian bytes.
    pub end: Vec<u8>,
}

impl TargetColumns {
    pub(crate) fn of(net: &IpNet) -> Self {
        match net {
            IpNet::V4(n) => Self {
                family: 4,
                start: n.network().octets().to_vec(),
                end: n.broadcast().octets().to_vec(),
            },
            IpNet::V6(n) => Self {
                family: 6,
                start: n.network().octets().to_vec(),
                end: n.broadcast().octets().to_vec(),
            },
        }
    }
}

pub(crate) fn corrupt(table: &'static str, reason: String) -> StoreError {
    StoreError::Corrupt { table, reason }
}

pub(crate) fn parse_target(text: &str) -> Result<IpNet, StoreError> {
    text.parse::<IpNet>()
        .map_err(|_| corrupt(DECISIONS, format!("target {text:?} is not a network")))
}

pub(crate) fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn from_ms(
    table: &'static str,
    column: &str,
    ms: i64,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| corrupt(table, format!("column {column}: time {ms} ms out of range")))
}

pub(crate) fn opt_from_ms(
    table: &'static str,
    column: &str,
    ms: Option<i64>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(|ms| from_ms(table, column, ms)).transpose()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Query(sqlx::Error::Encode(Box::new(e))))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(table, format!("column {column}: {e}")))
}

/// A u64 as the i64 with the same bits (neither database has unsigned 64-bit integers).
pub(crate) fn u64_to_sql(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// The inverse of [`u64_to_sql`].
pub(crate) fn sql_to_u64(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// A unique-constraint violation as [`StoreError::Conflict`] naming `what`;
/// any other error as a query error.
pub(crate) fn conflict_or_query(error: sqlx::Error, what: &str) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what.to_owned()),
        _ => StoreError::Query(error),
    }
}

pub(crate) const USERS: &str = "users";
pub(crate) const TOKENS: &str = "tokens";

pub(crate) fn role(table: &'static str, name: &str) -> Result<crate::Role, StoreError> {
    crate::Role::from_name(name).ok_or_else(|| corrupt(table, format!("role {name:?}")))
}

/// The row readers, the same text for every backend: `$row` is the
/// backend's row type, `$db` its database type. Expanded once in each
/// backend module, which has the types, [`crate::columns`] and the store
/// types in scope.
macro_rules! row_readers {
    ($row:ty, $db:ty) => {
        fn decision_from_row(row: &$row) -> Result<StoredDecision, StoreError> {
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
                revoked_at: opt_from_ms(
                    DECISIONS,
                    "revoked_at",
                    get(row, DECISIONS, "revoked_at")?,
                )?,
                revoked_by: get(row, DECISIONS, "revoked_by")?,
            })
        }

        /// A change and its decision as it was right after the change: decisions
        /// change only by being revoked, once, so after `Added` it is the current
        /// row without its revocation, and after `Revoked` the current row.
        fn change_from_row(row: &$row) -> Result<Change, StoreError> {
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

        fn finding_from_row(row: &$row) -> Result<StoredFinding, StoreError> {
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

        /// One column, a wrong type or an unexpected NULL being a corrupt row.
        fn get<'r, T>(row: &'r $row, table: &'static str, column: &str) -> Result<T, StoreError>
        where
            T: sqlx::Decode<'r, $db> + sqlx::Type<$db>,
        {
            row.try_get(column)
                .map_err(|e| corrupt(table, format!("column {column}: {e}")))
        }

        fn user_from_row(row: &$row) -> Result<User, StoreError> {
            Ok(User {
                id: get(row, USERS, "id")?,
                name: get(row, USERS, "name")?,
                role: role(USERS, &get::<String>(row, USERS, "role")?)?,
                password_hash: get(row, USERS, "password_hash")?,
                created_at: from_ms(USERS, "created_at", get(row, USERS, "created_at")?)?,
                updated_at: from_ms(USERS, "updated_at", get(row, USERS, "updated_at")?)?,
            })
        }

        fn token_from_row(row: &$row) -> Result<Token, StoreError> {
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

        fn event_from_row(row: &$row) -> Result<(i64, EventRecord), StoreError> {
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

        fn agent_from_row(row: &$row) -> Result<AgentRecord, StoreError> {
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

        fn action_from_row(row: &$row) -> Result<(i64, ActionRecord), StoreError> {
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

        fn upload_from_row(row: &$row) -> Result<(i64, UploadBatch), StoreError> {
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

        fn whitelist_from_row(row: &$row) -> Result<WhitelistEntry, StoreError> {
            let target: String = get(row, WHITELIST, "target")?;
            Ok(WhitelistEntry {
                id: get(row, WHITELIST, "id")?,
                target: target.parse().map_err(|_| {
                    corrupt(WHITELIST, format!("target {target:?} is not a network"))
                })?,
                comment: get(row, WHITELIST, "comment")?,
                created_by: get(row, WHITELIST, "created_by")?,
                created_at: from_ms(WHITELIST, "created_at", get(row, WHITELIST, "created_at")?)?,
            })
        }

        /// A blocked_ips row: target, first_seen, last_blocked, bans, avg_score, active.
        fn blocked_ip_from_row(row: &$row) -> Result<BlockedIp, StoreError> {
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
        fn ip_count_from_row(row: &$row) -> Result<IpCount, StoreError> {
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
        fn path_count_from_row(row: &$row) -> Result<PathCount, StoreError> {
            Ok(PathCount {
                path: get(row, ROLLUP_PATH, "path")?,
                count: count(get(row, ROLLUP_PATH, "requests")?),
            })
        }

        /// A per-(prediction, blocked) sum: prediction, blocked, requests, score_sum.
        fn prediction_sum_from_row(row: &$row) -> Result<(String, bool, i64, f64), StoreError> {
            Ok((
                get(row, ROLLUP_MINUTE, "prediction")?,
                get(row, ROLLUP_MINUTE, "blocked")?,
                get(row, ROLLUP_MINUTE, "requests")?,
                get::<Option<f64>>(row, ROLLUP_MINUTE, "score_sum")?.unwrap_or(0.0),
            ))
        }

        /// A by_hour row: hour, requests, blocked.
        fn hour_count_from_row(row: &$row) -> Result<HourCount, StoreError> {
            Ok(HourCount {
                hour: from_ms(ROLLUP_MINUTE, "hour", get(row, ROLLUP_MINUTE, "hour")?)?,
                requests: count(get(row, ROLLUP_MINUTE, "requests")?),
                blocked: count(get(row, ROLLUP_MINUTE, "blocked")?),
            })
        }
    };
}
pub(crate) use row_readers;
