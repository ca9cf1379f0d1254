-- People who use the API and dashboard, and machine tokens (agents,
-- gateways, scripts). Passwords are argon2 PHC strings; tokens are stored
-- only as the hex SHA-256 of their secret.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    -- viewer | operator | admin
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    -- agent | viewer | operator | admin
    role         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL UNIQUE,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
