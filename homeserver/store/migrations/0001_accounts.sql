-- Accounts and their devices. Portable SQL: no SQLite-only syntax.

CREATE TABLE accounts (
    user_id       TEXT PRIMARY KEY,          -- full Matrix user ID, @local:server
    password_hash TEXT NOT NULL DEFAULT '',  -- bcrypt; '' means no password login
    admin         BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated   BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts    BIGINT NOT NULL            -- milliseconds since the Unix epoch
);

-- One row per device; each device holds exactly one access token, stored
-- as its SHA-256 (hex) so a copy of the database does not leak sessions.
CREATE TABLE devices (
    user_id      TEXT NOT NULL REFERENCES accounts (user_id),
    device_id    TEXT NOT NULL,
    display_name TEXT,
    token_hash   TEXT NOT NULL UNIQUE,
    created_ts   BIGINT NOT NULL,
    last_seen_ts BIGINT NOT NULL,
    last_seen_ip TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, device_id)
);
