-- 0005: send-to-device messages, presence and end-to-end encryption keys.
-- Every row that /sync reports carries a position in the node's one stream
-- (stream_pos), shared with events, receipts and account data.

-- To-device messages waiting for one device (client-server-api
-- "Send-to-Device messaging"); a row is deleted once the device syncs
-- with a token at or past its position.
CREATE TABLE to_device (
    stream_pos BIGINT NOT NULL PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    device_id  TEXT   NOT NULL,
    sender     TEXT   NOT NULL,
    type       TEXT   NOT NULL,
    content    TEXT   NOT NULL
);
CREATE INDEX to_device_by_device ON to_device (user_id, device_id, stream_pos);

-- Transaction IDs already handled: a client's ("c " user " " device) or a
-- remote server's message_id ("s " server), so retries are idempotent.
CREATE TABLE to_device_txns (
    scope  TEXT   NOT NULL,
    txn_id TEXT   NOT NULL,
    ts     BIGINT NOT NULL,
    PRIMARY KEY (scope, txn_id)
);
CREATE INDEX to_device_txns_by_ts ON to_device_txns (ts);

-- The latest presence of local and remote users (client-server-api
-- "Presence").
CREATE TABLE presence (
    user_id          TEXT    NOT NULL PRIMARY KEY,
    presence         TEXT    NOT NULL,
    status_msg       TEXT,
    last_active_ts   BIGINT  NOT NULL,
    currently_active BOOLEAN NOT NULL,
    stream_pos       BIGINT  NOT NULL
);
CREATE INDEX presence_by_pos ON presence (stream_pos);

-- Device keys uploaded by local devices (client-server-api "Key
-- management"), as the signed JSON object the device sent.
CREATE TABLE device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys ("algorithm:key_id") and fallback keys (one per algorithm)
-- of local devices.
CREATE TABLE one_time_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE TABLE fallback_keys (
    user_id   TEXT    NOT NULL,
    device_id TEXT    NOT NULL,
    algorithm TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    json      TEXT    NOT NULL,
    used      BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Device list changes, local and remote: the stream position of each
-- user's newest change (for device_lists.changed and /keys/changes), the
-- federation stream_id of local users, and for remote users the cached
-- answer of their server's user/keys/query (NULL when stale) with the
-- stream position at which it was fetched.
CREATE TABLE device_lists (
    user_id     TEXT   NOT NULL PRIMARY KEY,
    stream_pos  BIGINT NOT NULL,
    stream_id   BIGINT NOT NULL,
    remote_keys TEXT,
    fetched_pos BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX device_lists_by_pos ON device_lists (stream_pos);
