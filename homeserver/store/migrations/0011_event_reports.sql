-- 0011: content reports (client-server-api "Reporting content": POST
-- /rooms/{roomId}/report/{eventId} and /rooms/{roomId}/report), kept for
-- the server's admins (GET /_synapse/admin/v1/event_reports).

-- One row per report. event_id is NULL for a report of a whole room;
-- score is NULL when the reporter gave none; received_ts is milliseconds
-- since the Unix epoch on the node's clock.
CREATE TABLE event_reports (
    id          INTEGER PRIMARY KEY,
    received_ts BIGINT NOT NULL,
    room_id     TEXT NOT NULL,
    event_id    TEXT,
    user_id     TEXT NOT NULL,
    reason      TEXT,
    score       BIGINT
);
