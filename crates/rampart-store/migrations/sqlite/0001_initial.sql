-- rampart store, schema version 1.
--
-- Every time is INTEGER milliseconds since the Unix epoch, UTC: sortable and
-- exact. Enumerations are stored as their snake_case / upper-case names and
-- checked when read back (a bad value is reported as a corrupt row), so a
-- newer version can add a value without rebuilding a table.

-- Decisions: what policy made of findings, with the findings that justify it.
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    -- ban | unban | log
    action        TEXT    NOT NULL,
    -- The target as written by ipnet (`192.0.2.7/32`, `2001:db8::/64`).
    target        TEXT    NOT NULL,
    -- 4 or 6.
    net_family    INTEGER NOT NULL,
    -- First and last address of the target's range, big-endian bytes (4 for
    -- IPv4, 16 for IPv6). BLOBs compare bytewise, so "lies inside N" is
    -- `net_family = N.family AND range_start >= N.first AND range_end <= N.last`.
    range_start   BLOB    NOT NULL,
    range_end     BLOB    NOT NULL,
    at            INTEGER NOT NULL,
    -- NULL: no end.
    until         INTEGER,
    reason        TEXT    NOT NULL,
    -- scenario | operator | model
    origin_kind   TEXT    NOT NULL,
    origin_name   TEXT    NOT NULL,
    dry_run       INTEGER NOT NULL,
    escalation    INTEGER NOT NULL DEFAULT 0,
    -- The decision's findings exactly as given (JSON array of Finding); they
    -- are also copied into `findings`, linked by decision_id.
    findings_json TEXT    NOT NULL DEFAULT '[]',
    revoked_at    INTEGER,
    revoked_by    TEXT
);

-- Active bans: revoked_at IS NULL AND (until IS NULL OR until > now).
CREATE INDEX decisions_active ON decisions (revoked_at, until);
-- Target filters and revocations by address or prefix.
CREATE INDEX decisions_target ON decisions (net_family, range_start, range_end);
-- Scenario filter.
CREATE INDEX decisions_origin ON decisions (origin_name);
-- Newest-first listings and the ban history window.
CREATE INDEX decisions_at ON decisions (at);

-- The decision change log that enforcement points follow by cursor (seq).
-- AUTOINCREMENT: a seq is never reused, even after rows are deleted.
-- Lookups by seq use the primary key.
CREATE TABLE decision_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id INTEGER NOT NULL REFERENCES decisions (id),
    -- added | revoked
    kind        TEXT    NOT NULL,
    -- The decision's `at` for added, its `revoked_at` for revoked.
    at          INTEGER NOT NULL
);

CREATE INDEX decision_changes_decision ON decision_changes (decision_id);

-- Findings: those that led to a decision (decision_id set, note NULL) and
-- those that did not (decision_id NULL, note says why).
CREATE TABLE findings (
    id            INTEGER PRIMARY KEY,
    time          INTEGER NOT NULL,
    -- JSON of rampart_core::Subject.
    subject_json  TEXT    NOT NULL,
    label         TEXT    NOT NULL,
    score         REAL    NOT NULL,
    -- LOW | MEDIUM | HIGH | CRITICAL
    level         TEXT    NOT NULL,
    -- JSON of rampart_core::Evidence.
    evidence_json TEXT    NOT NULL,
    decision_id   INTEGER REFERENCES decisions (id),
    note          TEXT
);

CREATE INDEX findings_time ON findings (time);
CREATE INDEX findings_decision ON findings (decision_id);

-- Where each followed file (or journal) was left.
-- dev, inode, offset and fingerprint are u64 stored as the i64 with the same
-- bits (values above 2^63 - 1 read as negative in the sqlite3 shell).
CREATE TABLE positions (
    source      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    dev         INTEGER NOT NULL,
    inode       INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    fingerprint INTEGER,
    cursor      TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (source, path)
);
