//! The few things the SQL layer needs from a database, and nothing more:
//! how to run a statement (on the pool or in a transaction), how a
//! transaction begins, the locks some writes take, the handful of spellings
//! that differ, and how a row's columns are read.
//!
//! Statements are written once, with `?` placeholders, in the SQL both
//! SQLite and PostgreSQL understand; a dialect rewrites placeholders to its
//! own form when it runs one (see [`numbered_placeholders`]).

use std::borrow::Cow;

use async_trait::async_trait;

use crate::StoreError;
use crate::columns::corrupt;

/// One value bound to a statement. Integers are bound as 64-bit (the
/// columns are BIGINT, or narrower columns that take them by assignment).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg<'a> {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// A floating-point number.
    Real(f64),
    /// A flag (INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL).
    Bool(bool),
    /// Text, or NULL.
    Text(Option<Cow<'a, str>>),
    /// Bytes.
    Blob(Cow<'a, [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v.as_str())))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl From<Vec<u8>> for Arg<'_> {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(Cow::Owned(v))
    }
}

/// A statement and its arguments, in order. The text holds `?` for each
/// argument; only rampart's own fixed fragments ever go into it, every
/// value is bound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stmt<'a> {
    /// The SQL, with `?` placeholders.
    pub sql: Cow<'static, str>,
    /// One value per placeholder.
    pub args: Vec<Arg<'a>>,
}

impl<'a> Stmt<'a> {
    /// A statement with no arguments yet.
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder of a statement written whole.
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends a placeholder and binds it.
    pub fn push_bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.sql.to_mut().push('?');
        self.args.push(value.into());
        self
    }

    /// Appends `(?, ?, …), (…)`: one group of placeholders per row, filled
    /// by `row` (which must bind the same number of values for every row).
    pub fn push_values<T>(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Values<'_, 'a>, T),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, item) in rows.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            let mut values = Values {
                stmt: self,
                first: true,
            };
            row(&mut values, item);
            self.push(")");
        }
        self
    }
}

/// The values of one row of [`Stmt::push_values`].
pub(crate) struct Values<'s, 'a> {
    stmt: &'s mut Stmt<'a>,
    first: bool,
}

impl<'a> Values<'_, 'a> {
    /// The next value of the row.
    pub fn bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        if !self.first {
            self.stmt.push(", ");
        }
        self.first = false;
        self.stmt.push_bind(value);
        self
    }
}

/// `sql` with each `?` replaced by `$1`, `$2`, … (and `?N` by `$N`), for
/// databases that number their placeholders. Quoted text and identifiers
/// are left alone.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// How a transaction is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// It will write: on SQLite it takes the write lock at once.
    Write,
    /// Several reads that must see one snapshot.
    Snapshot,
}

/// A lock a writing transaction holds until it ends, where the database
/// needs one (PostgreSQL's advisory locks; SQLite has a single writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// Appending to the decision change log.
    ChangeLog,
    /// Writing request-log rollups.
    Rollups,
}

/// A row as the SQL layer reads it: by column name, NULL as `None`. A
/// wrong type is an error (the row is then reported as corrupt).
pub(crate) trait SqlRow: Send + Sync {
    /// An integer column (any width).
    fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A floating-point column.
    fn real(&self, column: &str) -> Result<Option<f64>, sqlx::Error>;
    /// A text column.
    fn text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A flag column.
    fn flag(&self, column: &str) -> Result<Option<bool>, sqlx::Error>;
}

/// A value read from a column.
pub(crate) trait FromColumn: Sized {
    /// Reads `column` of `row`; the error says what was wrong.
    fn read(row: &dyn SqlRow, column: &str) -> Result<Self, String>;
}

fn required<T>(value: Result<Option<T>, sqlx::Error>) -> Result<T, String> {
    value
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "unexpected NULL".to_owned())
}

macro_rules! from_column {
    ($($t:ty => $get:ident),* $(,)?) => {
        $(
            impl FromColumn for $t {
                fn read(row: &dyn SqlRow, column: &str) -> Result<Self, String> {
                    required(row.$get(column))
                }
            }
            impl FromColumn for Option<$t> {
                fn read(row: &dyn SqlRow, column: &str) -> Result<Self, String> {
                    row.$get(column).map_err(|e| e.to_string())
                }
            }
        )*
    };
}

from_column!(i64 => int, f64 => real, String => text, bool => flag);

/// One column of a row of `table`; a wrong type or an unexpected NULL is a
/// corrupt row.
pub(crate) fn get<T: FromColumn>(
    row: &dyn SqlRow,
    table: &'static str,
    column: &str,
) -> Result<T, StoreError> {
    T::read(row, column).map_err(|e| corrupt(table, format!("column {column}: {e}")))
}

/// A database the SQL layer runs on.
///
/// Contract: every method runs exactly the statement given, with its
/// arguments bound in order; a statement run in a transaction sees that
/// transaction's writes; a transaction dropped without [`Dialect::commit`]
/// rolls back. Methods may be called from many tasks at once.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + 'static {
    /// A row.
    type Row: SqlRow + 'static;
    /// An open transaction.
    type Tx: Send;

    /// How this database orders text byte by byte in `ORDER BY`
    /// (appended after the column).
    const BYTEWISE: &'static str;
    /// Prefix that keeps a column in a `WHERE` from being read through an
    /// index (SQLite's unary `+`), so that a better index is used; empty
    /// where the planner needs no hint.
    const UNINDEXED: &'static str;
    /// Whether a filter by client also repeats the conditions of the
    /// partial indexes (SQLite would then pick them over the client index).
    const PARTIAL_INDEX_WITH_CLIENT: bool;

    /// Rows of a statement run on the pool.
    async fn fetch_all(&self, stmt: Stmt<'_>) -> Result<Vec<Self::Row>, sqlx::Error>;
    /// Runs a statement on the pool; rows affected.
    async fn execute(&self, stmt: Stmt<'_>) -> Result<u64, sqlx::Error>;
    /// Opens a transaction.
    async fn begin(&self, how: Begin) -> Result<Self::Tx, sqlx::Error>;
    /// Rows of a statement run in `tx`.
    async fn fetch_all_in(tx: &mut Self::Tx, stmt: Stmt<'_>)
    -> Result<Vec<Self::Row>, sqlx::Error>;
    /// Runs a statement in `tx`; rows affected.
    async fn execute_in(tx: &mut Self::Tx, stmt: Stmt<'_>) -> Result<u64, sqlx::Error>;
    /// Takes `lock` for the rest of `tx` (nothing where not needed).
    async fn lock(tx: &mut Self::Tx, lock: Lock) -> Result<(), sqlx::Error>;
    /// Commits `tx`.
    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error>;
    /// Waits for the right to write a request-log batch, where batches must
    /// be written one at a time (`None`: no need).
    async fn request_batch_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered_placeholders("SELECT '?', \"a?\" FROM t WHERE a = ? AND b = ?"),
            "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b = $2"
        );
        assert_eq!(
            numbered_placeholders("WHERE m = ?1 AND t >= ?1 AND t < ?2"),
            "WHERE m = $1 AND t >= $1 AND t < $2"
        );
    }

    #[test]
    fn values_bind_one_group_per_row() {
        let mut s = Stmt::new("INSERT INTO t (a, b) ");
        s.push_values([1i64, 2], |row, n| {
            row.bind(n).bind(n * 10);
        });
        assert_eq!(s.sql, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(s.args.len(), 4);
        assert_eq!(s.args[3], Arg::Int(Some(20)));
    }
}
