package store

import "fmt"

// RoomEventsByTS returns up to limit timeline events (outliers left out)
// of a room ordered by origin_server_ts from ts on: forward, those with
// origin_server_ts ≥ ts, oldest first; backward, those with
// origin_server_ts ≤ ts, newest first. Ties are broken by stream
// position, in the same direction, and only events after (ts, afterPos)
// in that order are returned: the first call passes math.MinInt64
// (forward) or math.MaxInt64 (backward) as afterPos, the next ones the
// origin_server_ts and position of the last event returned. Index:
// events_by_room_ts (migration 0012).
func (s *Store) RoomEventsByTS(roomID string, ts, afterPos int64, forward bool, limit int) ([]EventRow, error) {
	var q string
	if forward {
		q = `SELECT ` + eventCols + ` FROM events WHERE room_id = ? AND outlier = FALSE
			AND (origin_server_ts > ? OR (origin_server_ts = ? AND stream_pos > ?))
			ORDER BY origin_server_ts ASC, stream_pos ASC LIMIT ?`
	} else {
		q = `SELECT ` + eventCols + ` FROM events WHERE room_id = ? AND outlier = FALSE
			AND (origin_server_ts < ? OR (origin_server_ts = ? AND stream_pos < ?))
			ORDER BY origin_server_ts DESC, stream_pos DESC LIMIT ?`
	}
	out, err := s.queryEvents(q, roomID, ts, ts, afterPos, limit)
	if err != nil {
		return nil, fmt.Errorf("store: room events by time %s: %w", roomID, err)
	}
	return out, nil
}
