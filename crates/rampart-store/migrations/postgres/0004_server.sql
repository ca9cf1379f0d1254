-- The central server's tables, and request-log rollups, PostgreSQL.
--
-- The same tables, columns and meaning as migrations/sqlite/0004_server.sql,
-- with PostgreSQL types: times BIGINT milliseconds since the Unix epoch,
-- flags BOOLEAN, u64 counters BIGINT with the same bits, JSON as TEXT.

-- Items pushed by agents and gateways (findings, log events), and the
-- server's own (login failures), kept as received. Followers read them by id
-- (the primary key); retention deletes by time.
CREATE TABLE events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time         BIGINT  NOT NULL,
    -- The agent or gateway id that reported it, or `server`.
    node         TEXT    NOT NULL,
    -- finding | event | login_failure | …
    kind         TEXT    NOT NULL,
    -- The address it concerns, as written by std (`192.0.2.7`, `2001:db8::1`).
    source_ip    TEXT,
    -- A scenario or label.
    label        TEXT,
    -- The whole item, JSON.
    payload_json TEXT    NOT NULL
);

CREATE INDEX events_time ON events (time);

-- The fleet: one row per node, replaced by each heartbeat.
CREATE TABLE agents (
    id         TEXT    PRIMARY KEY,
    -- agent | gateway
    kind       TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    started_at BIGINT  NOT NULL,
    last_seen  BIGINT  NOT NULL,
    -- u64 counters since the node started.
    processed  BIGINT  NOT NULL,
    blocked    BIGINT  NOT NULL
);

-- What actuators did (or failed to do) about decisions. decision_id is not
-- a foreign key: a node may report an action on a decision this database
-- does not hold.
CREATE TABLE actions (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        BIGINT  NOT NULL,
    node        TEXT    NOT NULL,
    decision_id BIGINT,
    -- ban | unban | alert | …
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    ok          BOOLEAN NOT NULL,
    detail      TEXT    NOT NULL
);

-- Newest-first listings and retention.
CREATE INDEX actions_time ON actions (time);

-- Accepted `POST /logs` and `POST /events` uploads.
CREATE TABLE upload_batches (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        BIGINT  NOT NULL,
    -- The token or user name that sent it.
    principal   TEXT    NOT NULL,
    -- logs | events
    kind        TEXT    NOT NULL,
    accepted    BIGINT  NOT NULL,
    rejected    BIGINT  NOT NULL,
    -- JSON array of {index, field, message}.
    errors_json TEXT    NOT NULL
);

CREATE INDEX upload_batches_time ON upload_batches (time);

-- Networks never banned (besides those in configuration). The target is
-- text as written by ipnet plus its range, like decisions; a network is
-- listed once (the unique range: `192.0.2.0/24` and `192.0.2.9/24` are the
-- same network).
CREATE TABLE whitelist (
    id          BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target      TEXT     NOT NULL,
    net_family  SMALLINT NOT NULL,
    range_start BYTEA    NOT NULL,
    range_end   BYTEA    NOT NULL,
    comment     TEXT     NOT NULL,
    created_by  TEXT     NOT NULL,
    created_at  BIGINT   NOT NULL
);

CREATE UNIQUE INDEX whitelist_range ON whitelist (net_family, range_start, range_end);

-- Request-log filters that page newest first (`ORDER BY time DESC, id DESC`:
-- the index gives time order, an incremental sort breaks ties by id). Every
-- index slows ingest, so these two are partial: NORMAL records and status
-- 200, most of the log, are paged through the time index (their filters
-- match most records), and queries repeat the index's condition
-- (`AND prediction <> 'NORMAL'`, `AND status <> 200`) so that a generic
-- plan can use it. Gateways are few, each with a large share: paged through
-- the time index. (client, time) and (blocked, time) exist since 0002.
CREATE INDEX request_log_flagged_time ON request_log (prediction, time)
    WHERE prediction <> 'NORMAL';
CREATE INDEX request_log_status_time ON request_log (status, time) WHERE status <> 200;

-- Rollups of request_log, written in the same transaction as its rows (see
-- insert_requests) so that statistics over a day of requests read a few
-- thousand rows instead of millions. Buckets are named by their first
-- millisecond. Writers of rollups take an advisory lock (see
-- src/postgres.rs), so concurrent batches never deadlock on their rows.
-- Text keys are COLLATE "C": ties rank in byte order, as on SQLite.
--
-- Every request, per minute, prediction and blocked flag. Always equal to
-- request_log summed per minute: purge_requests deletes whole minutes and
-- subtracts the records it deletes from the minute it cuts through.
-- Totals, by_prediction and by_hour are read here, and request-log query
-- totals filtered only by time, prediction and blocked.
CREATE TABLE request_rollup_minute (
    minute     BIGINT           NOT NULL,
    -- NORMAL, DDoS, ATTACK, BLOCKED
    prediction TEXT             NOT NULL,
    blocked    BOOLEAN          NOT NULL,
    requests   BIGINT           NOT NULL,
    score_sum  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (minute, prediction, blocked)
);

-- Every request, per minute and every query filter but client and path:
-- request-log query totals filtered by status or gateway (a few dozen rows
-- a minute). Kept like request_rollup_minute.
CREATE TABLE request_rollup_minute_detail (
    minute     BIGINT  NOT NULL,
    prediction TEXT    NOT NULL,
    blocked    BOOLEAN NOT NULL,
    status     INTEGER NOT NULL,
    gateway    TEXT    NOT NULL,
    requests   BIGINT  NOT NULL,
    PRIMARY KEY (minute, prediction, blocked, status, gateway)
);

-- Non-NORMAL requests per hour and client (what top_ips ranks). Hours are
-- kept whole: purge_requests deletes the hours entirely before its cut-off.
CREATE TABLE request_rollup_ip_hour (
    hour      BIGINT           NOT NULL,
    client    TEXT COLLATE "C" NOT NULL,
    requests  BIGINT           NOT NULL,
    score_sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour, client)
);

-- request_rollup_ip_hour summed over all its hours, ranked by the index:
-- the top clients of a window that holds every stored hour are its first
-- rows. purge_requests subtracts the hours it deletes.
CREATE TABLE request_rollup_ip_total (
    client    TEXT COLLATE "C" PRIMARY KEY,
    requests  BIGINT           NOT NULL,
    score_sum DOUBLE PRECISION NOT NULL
);

CREATE INDEX request_rollup_ip_total_rank ON request_rollup_ip_total (requests DESC, client);

-- Non-NORMAL requests per hour and path (what top_paths ranks), and summed
-- over all hours, kept like the client rollups.
CREATE TABLE request_rollup_path_hour (
    hour     BIGINT           NOT NULL,
    path     TEXT COLLATE "C" NOT NULL,
    requests BIGINT           NOT NULL,
    PRIMARY KEY (hour, path)
);

CREATE TABLE request_rollup_path_total (
    path     TEXT COLLATE "C" PRIMARY KEY,
    requests BIGINT           NOT NULL
);

CREATE INDEX request_rollup_path_total_rank ON request_rollup_path_total (requests DESC, path);

-- The rollups of records stored before this version. A bucket's first
-- millisecond is `time - (time % size + size) % size` (floor, also for
-- negative times).
INSERT INTO request_rollup_minute (minute, prediction, blocked, requests, score_sum)
SELECT time - (time % 60000 + 60000) % 60000, prediction, blocked, COUNT(*), SUM(score)
FROM request_log GROUP BY 1, 2, 3;

INSERT INTO request_rollup_minute_detail (minute, prediction, blocked, status, gateway, requests)
SELECT time - (time % 60000 + 60000) % 60000, prediction, blocked, status, gateway, COUNT(*)
FROM request_log GROUP BY 1, 2, 3, 4, 5;

INSERT INTO request_rollup_ip_hour (hour, client, requests, score_sum)
SELECT time - (time % 3600000 + 3600000) % 3600000, client, COUNT(*), SUM(score)
FROM request_log WHERE prediction <> 'NORMAL' GROUP BY 1, 2;

INSERT INTO request_rollup_ip_total (client, requests, score_sum)
SELECT client, SUM(requests), SUM(score_sum) FROM request_rollup_ip_hour GROUP BY client;

INSERT INTO request_rollup_path_hour (hour, path, requests)
SELECT time - (time % 3600000 + 3600000) % 3600000, path, COUNT(*)
FROM request_log WHERE prediction <> 'NORMAL' GROUP BY 1, 2;

INSERT INTO request_rollup_path_total (path, requests)
SELECT path, SUM(requests) FROM request_rollup_path_hour GROUP BY path;
