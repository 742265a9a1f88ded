-- 0012: events of a room by origin_server_ts, for jump to date
-- (timestamp_to_event: the closest event before or after a time).
CREATE INDEX events_by_room_ts ON events (room_id, origin_server_ts, stream_pos);
