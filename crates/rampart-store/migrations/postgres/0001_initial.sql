-- rampart store, schema version 1, PostgreSQL.
--
-- The same tables, columns and meaning as migrations/sqlite/0001_initial.sql,
-- with PostgreSQL types. Every time is BIGINT milliseconds since the Unix
-- epoch, UTC: sortable and exact, and the same representation as SQLite.
-- Enumerations are stored as their snake_case / upper-case names and checked
-- when read back (a bad value is reported as a corrupt row), so a newer
-- version can add a value without rebuilding a table. JSON columns are TEXT,
-- read back exactly as written.

-- Decisions: what policy made of findings, with the findings that justify it.
CREATE TABLE decisions (
    id            BIGINT           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- ban | unban | log
    action        TEXT             NOT NULL,
    -- The target as written by ipnet (`192.0.2.7/32`, `2001:db8::/64`).
    target        TEXT             NOT NULL,
    -- 4 or 6.
    net_family    SMALLINT         NOT NULL,
    -- First and last address of the target's range, big-endian bytes (4 for
    -- IPv4, 16 for IPv6). bytea compares bytewise, so "lies inside N" is
    -- `net_family = N.family AND range_start >= N.first AND range_end <= N.last`.
    range_start   BYTEA            NOT NULL,
    range_end     BYTEA            NOT NULL,
    at            BIGINT           NOT NULL,
    -- NULL: no end.
    until         BIGINT,
    reason        TEXT             NOT NULL,
    -- scenario | operator | model
    origin_kind   TEXT             NOT NULL,
    origin_name   TEXT             NOT NULL,
    dry_run       BOOLEAN          NOT NULL,
    -- A u32; BIGINT holds all of it.
    escalation    BIGINT           NOT NULL DEFAULT 0,
    -- The decision's findings exactly as given (JSON array of Finding); they
    -- are also copied into `findings`, linked by decision_id.
    findings_json TEXT             NOT NULL DEFAULT '[]',
    revoked_at    BIGINT,
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
-- An identity's sequence never hands out a value twice, even after rows are
-- deleted or transactions roll back. Every transaction that appends here
-- first takes a transaction-level advisory lock (see src/postgres.rs), so
-- seqs commit in increasing order and a follower reading `seq > cursor`
-- never skips one. Lookups by seq use the primary key.
CREATE TABLE decision_changes (
    seq         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id BIGINT  NOT NULL REFERENCES decisions (id),
    -- added | revoked
    kind        TEXT    NOT NULL,
    -- The decision's `at` for added, its `revoked_at` for revoked.
    at          BIGINT  NOT NULL
);

CREATE INDEX decision_changes_decision ON decision_changes (decision_id);

-- Findings: those that led to a decision (decision_id set, note NULL) and
-- those that did not (decision_id NULL, note says why).
CREATE TABLE findings (
    id            BIGINT           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time          BIGINT           NOT NULL,
    -- JSON of rampart_core::Subject.
    subject_json  TEXT             NOT NULL,
    label         TEXT             NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    -- LOW | MEDIUM | HIGH | CRITICAL
    level         TEXT             NOT NULL,
    -- JSON of rampart_core::Evidence.
    evidence_json TEXT             NOT NULL,
    decision_id   BIGINT           REFERENCES decisions (id),
    note          TEXT
);

CREATE INDEX findings_time ON findings (time);
CREATE INDEX findings_decision ON findings (decision_id);

-- Where each followed file (or journal) was left.
-- dev, inode, offset and fingerprint are u64 stored as the BIGINT with the
-- same bits (values above 2^63 - 1 read as negative in psql).
CREATE TABLE positions (
    source      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    dev         BIGINT  NOT NULL,
    inode       BIGINT  NOT NULL,
    "offset"    BIGINT  NOT NULL,
    fingerprint BIGINT,
    cursor      TEXT,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (source, path)
);
