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
