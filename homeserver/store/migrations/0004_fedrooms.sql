-- 0004: what receiving room events over federation needs.
--
-- Events outside the timeline (the state and auth chain a join returned,
-- events fetched to check others, soft-failed events) live in the events
-- table like every other event, with a negative stream position (so no
-- sync or pagination range ever reaches them) and outlier = TRUE.
-- Their state_before / state_after are -1 while the state around them is
-- unknown.
ALTER TABLE events ADD COLUMN outlier BOOLEAN NOT NULL DEFAULT FALSE;

-- PDUs that failed the checks on receipt (server-server-api "Checks
-- performed on receipt of a PDU"), with the reason, for operators and so
-- events citing them are rejected too.
CREATE TABLE rejected_events (
    event_id    TEXT   NOT NULL PRIMARY KEY,
    room_id     TEXT   NOT NULL,
    origin      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    received_ts BIGINT NOT NULL,
    json        TEXT   NOT NULL
);
CREATE INDEX rejected_events_by_room ON rejected_events (room_id);

-- The state group of a room's current state: the resolution of the states
-- after its forward extremities.
CREATE TABLE room_current_state (
    room_id     TEXT   NOT NULL PRIMARY KEY,
    state_group BIGINT NOT NULL
);

-- Invites of local users to rooms this server is not in (and their knocks
-- on such rooms): the invite event (signed by both servers) or the knock,
-- and the stripped state the other server sent with it.
CREATE TABLE remote_invites (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    room_version TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    json         TEXT NOT NULL,
    invite_state TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
