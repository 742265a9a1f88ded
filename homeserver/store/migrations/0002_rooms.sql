-- 0002: rooms, events with their exact bytes, the room DAG, state groups,
-- and the streams /sync reads (events, receipts, account data).
--
-- Portable SQL (BIGINT, TEXT, BOOLEAN): event JSON is UTF-8 text, stored
-- byte for byte.
--
-- Stream positions: one counter shared by events.stream_pos,
-- receipts.stream_pos and account_data.stream_pos. The node hands out the
-- next value; at start-up it resumes from the largest value in the three
-- tables, so sync tokens stay valid across restarts.

CREATE TABLE rooms (
    room_id      TEXT    NOT NULL PRIMARY KEY,
    room_version TEXT    NOT NULL,
    creator      TEXT    NOT NULL,
    published    BOOLEAN NOT NULL DEFAULT FALSE
);

-- Every event of every room, as the exact bytes it was built or received
-- with (json). The other columns are copies of fields for indexing.
-- state_before / state_after name state groups: the room state just before
-- and just after the event; replaces_state is the state event a state event
-- replaced (for unsigned.prev_content); redacted_by the redaction applied.
CREATE TABLE events (
    stream_pos       BIGINT  NOT NULL PRIMARY KEY,
    event_id         TEXT    NOT NULL UNIQUE,
    room_id          TEXT    NOT NULL,
    type             TEXT    NOT NULL,
    state_key        TEXT,
    sender           TEXT    NOT NULL,
    depth            BIGINT  NOT NULL,
    origin_server_ts BIGINT  NOT NULL,
    state_before     BIGINT  NOT NULL,
    state_after      BIGINT  NOT NULL,
    replaces_state   TEXT,
    redacted_by      TEXT,
    txn_device       TEXT,
    txn_id           TEXT,
    json             TEXT    NOT NULL
);
CREATE INDEX events_by_room ON events (room_id, stream_pos);

-- prev_events edges of the room DAG.
CREATE TABLE event_edges (
    event_id      TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_by_prev ON event_edges (prev_event_id);

-- The room's forward extremities: events with no known successor.
CREATE TABLE forward_extremities (
    room_id  TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- A state group is a full room state map, stored as a delta against
-- prev_group (NULL for a full snapshot); chain_len counts the deltas back
-- to the snapshot so lookups stay short.
CREATE TABLE state_groups (
    group_id   BIGINT  NOT NULL PRIMARY KEY,
    room_id    TEXT    NOT NULL,
    prev_group BIGINT ,
    chain_len  BIGINT  NOT NULL
);
CREATE TABLE state_group_entries (
    group_id  BIGINT  NOT NULL,
    type      TEXT    NOT NULL,
    state_key TEXT    NOT NULL,
    event_id  TEXT    NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

-- Current membership of every user the server knows in every room.
CREATE TABLE room_members (
    room_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    membership TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    stream_pos BIGINT  NOT NULL,
    forgotten  BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id);

-- Transaction IDs of PUT /send and /state, scoped to the device.
CREATE TABLE txn_ids (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id    TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias   TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- Latest receipt of each (room, type, user, thread).
CREATE TABLE receipts (
    room_id      TEXT    NOT NULL,
    receipt_type TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    thread_id    TEXT    NOT NULL DEFAULT '',
    event_id     TEXT    NOT NULL,
    ts           BIGINT  NOT NULL,
    stream_pos   BIGINT  NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_pos ON receipts (stream_pos);

-- Global (room_id = '') and per-room account data.
CREATE TABLE account_data (
    user_id    TEXT    NOT NULL,
    room_id    TEXT    NOT NULL DEFAULT '',
    type       TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    stream_pos BIGINT  NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_pos ON account_data (user_id, stream_pos);

CREATE TABLE filters (
    user_id   TEXT    NOT NULL,
    filter_id BIGINT  NOT NULL,
    json      TEXT    NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE profiles (
    user_id     TEXT NOT NULL PRIMARY KEY,
    displayname TEXT,
    avatar_url  TEXT
);
