-- Every request a gateway handled.
-- request_bytes and response_bytes are u64 stored as the BIGINT with the same bits.
CREATE TABLE request_log (
    id             BIGINT           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time           BIGINT           NOT NULL,  -- ms since the epoch
    gateway        TEXT             NOT NULL,
    request_id     TEXT             NOT NULL,
    client         TEXT             NOT NULL,
    method         TEXT             NOT NULL,
    path           TEXT             NOT NULL,
    user_agent     TEXT,
    status         INTEGER          NOT NULL,
    request_bytes  BIGINT           NOT NULL,
    response_bytes BIGINT           NOT NULL,
    latency_ms     DOUBLE PRECISION NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    prediction     TEXT             NOT NULL,  -- NORMAL, DDoS, ATTACK, BLOCKED
    blocked        BOOLEAN          NOT NULL,
    reason         TEXT,
    backend        TEXT
);
CREATE INDEX request_log_time ON request_log (time);
CREATE INDEX request_log_client_time ON request_log (client, time);
CREATE INDEX request_log_blocked_time ON request_log (blocked, time);
