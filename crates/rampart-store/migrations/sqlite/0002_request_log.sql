-- Every request a gateway handled.
CREATE TABLE request_log (
    id             INTEGER PRIMARY KEY,
    time           INTEGER NOT NULL,          -- ms since the epoch
    gateway        TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    client         TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    user_agent     TEXT,
    status         INTEGER NOT NULL,
    request_bytes  INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    latency_ms     REAL    NOT NULL,
    score          REAL    NOT NULL,
    prediction     TEXT    NOT NULL,          -- NORMAL, DDoS, ATTACK, BLOCKED
    blocked        INTEGER NOT NULL,          -- 0/1
    reason         TEXT,
    backend        TEXT
);
CREATE INDEX request_log_time ON request_log (time);
CREATE INDEX request_log_client_time ON request_log (client, time);
CREATE INDEX request_log_blocked_time ON request_log (blocked, time);
