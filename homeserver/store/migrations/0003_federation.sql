-- 0003: federation: other servers' signing keys, the per-destination
-- outbound transaction queues, and inbound transactions already answered.
--
-- Portable SQL (BIGINT, TEXT, BOOLEAN). Times are milliseconds since the
-- Unix epoch.

-- One row per (server, key ID) the key cache knows (homeserver/keys.Record):
-- public_key is unpadded base64; valid_until_ts is, for a current key, the
-- lesser of the server's valid_until_ts and fetch time + 7 days, and for an
-- old key its expired_ts.
CREATE TABLE server_keys (
    server_name    TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    public_key     TEXT    NOT NULL,
    valid_until_ts BIGINT  NOT NULL,
    old            BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (server_name, key_id)
);

-- The last signed /_matrix/key/v2/server response of each server, exactly
-- as verified, for notary answers (/_matrix/key/v2/query).
CREATE TABLE server_key_responses (
    server_name TEXT NOT NULL PRIMARY KEY,
    json        TEXT NOT NULL
);

-- Items waiting to be sent to a destination: kind 'pdu' (the event JSON)
-- or 'edu' ({"edu_type": …, "content": …}). seq comes from
-- federation_counters('outbound_seq') and is never reused, so a
-- transaction ID made of the seqs it carries is unique.
CREATE TABLE federation_outbound (
    seq         BIGINT NOT NULL PRIMARY KEY,
    destination TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    json        TEXT   NOT NULL
);
CREATE INDEX federation_outbound_by_dest ON federation_outbound (destination, kind, seq);

-- Backoff state of destinations that failed: consecutive failures and the
-- earliest time of the next attempt. A row is deleted on success.
CREATE TABLE federation_destinations (
    destination TEXT   NOT NULL PRIMARY KEY,
    failures    BIGINT NOT NULL,
    retry_at_ts BIGINT NOT NULL
);

-- Named counters (outbound_seq).
CREATE TABLE federation_counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Inbound transactions already processed, with the answer sent, so that a
-- retried transaction is answered again instead of applied twice.
CREATE TABLE federation_inbound_txns (
    origin      TEXT   NOT NULL,
    txn_id      TEXT   NOT NULL,
    response    TEXT   NOT NULL,
    received_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_inbound_txns_by_ts ON federation_inbound_txns (received_ts);
