package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// EventRow is one stored event: its exact bytes plus the indexed copies of
// its fields (migration 0002, table events).
type EventRow struct {
	Pos            int64 // stream position, unique across the node
	EventID        string
	RoomID         string
	Type           string
	StateKey       *string // nil for a non-state event
	Sender         string
	Depth          int64
	OriginServerTS int64
	StateBefore    int64  // state group just before the event
	StateAfter     int64  // state group just after it
	ReplacesState  string // for a state event: the event it replaced, or ""
	RedactedBy     string // the redaction event applied to it, or ""
	TxnDevice      string // device that sent it with a transaction ID, or ""
	TxnID          string
	JSON           []byte // the PDU exactly as built or received
	// Outlier marks an event outside the timeline (migration 0004): part
	// of a state or auth chain fetched from another server, or soft-failed.
	// Outliers have negative positions.
	Outlier bool
}

const eventCols = `stream_pos, event_id, room_id, type, state_key, sender, depth, origin_server_ts,
	state_before, state_after, replaces_state, redacted_by, txn_device, txn_id, json, outlier`

type scanner interface{ Scan(dest ...any) error }

func scanEvent(s scanner) (EventRow, error) {
	var r EventRow
	var sk, repl, red, dev, txn sql.NullString
	if err := s.Scan(&r.Pos, &r.EventID, &r.RoomID, &r.Type, &sk, &r.Sender, &r.Depth, &r.OriginServerTS,
		&r.StateBefore, &r.StateAfter, &repl, &red, &dev, &txn, &r.JSON, &r.Outlier); err != nil {
		return EventRow{}, err
	}
	if sk.Valid {
		k := sk.String
		r.StateKey = &k
	}
	r.ReplacesState, r.RedactedBy, r.TxnDevice, r.TxnID = repl.String, red.String, dev.String, txn.String
	return r, nil
}

func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// InsertEvent stores an event and its prev_events edges.
func (t *RoomTx) InsertEvent(r EventRow, prevEvents []string) error {
	var sk sql.NullString
	if r.StateKey != nil {
		sk = sql.NullString{String: *r.StateKey, Valid: true}
	}
	_, err := t.tx.Exec(`INSERT INTO events (`+eventCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.Pos, r.EventID, r.RoomID, r.Type, sk, r.Sender, r.Depth, r.OriginServerTS,
		r.StateBefore, r.StateAfter, nullStr(r.ReplacesState), nullStr(r.RedactedBy),
		nullStr(r.TxnDevice), nullStr(r.TxnID), r.JSON, r.Outlier)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: insert event %s: %w", r.EventID, ErrExists)
		}
		return fmt.Errorf("store: insert event %s: %w", r.EventID, describe(err))
	}
	for _, p := range prevEvents {
		if _, err := t.tx.Exec(`INSERT INTO event_edges (event_id, prev_event_id) VALUES (?, ?)`, r.EventID, p); err != nil {
			return fmt.Errorf("store: insert edge %s→%s: %w", r.EventID, p, describe(err))
		}
	}
	return t.indexEvent(r) // relations and search (relations.go, search.go)
}

// SetRedactedBy records that redaction redacts eventID.
func (t *RoomTx) SetRedactedBy(eventID, redaction string) error {
	_, err := t.tx.Exec(`UPDATE events SET redacted_by = ? WHERE event_id = ? AND redacted_by IS NULL`, redaction, eventID)
	if err != nil {
		return fmt.Errorf("store: redact %s: %w", eventID, describe(err))
	}
	return t.unindexEvent(eventID) // a redacted event relates to nothing and has no text
}

// SetForwardExtremities replaces a room's forward extremities.
func (t *RoomTx) SetForwardExtremities(roomID string, eventIDs []string) error {
	if _, err := t.tx.Exec(`DELETE FROM forward_extremities WHERE room_id = ?`, roomID); err != nil {
		return fmt.Errorf("store: set extremities %s: %w", roomID, describe(err))
	}
	for _, id := range eventIDs {
		if _, err := t.tx.Exec(`INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)`, roomID, id); err != nil {
			return fmt.Errorf("store: set extremities %s: %w", roomID, describe(err))
		}
	}
	return nil
}

// ForwardExtremities returns a room's forward extremities, sorted.
func (s *Store) ForwardExtremities(roomID string) ([]string, error) {
	return s.queryStrings("extremities "+roomID, `SELECT event_id FROM forward_extremities WHERE room_id = ? ORDER BY event_id`, roomID)
}

// Event returns the stored event with the given ID, or ErrNotFound.
func (s *Store) Event(eventID string) (EventRow, error) {
	r, err := scanEvent(s.DB.QueryRow(`SELECT `+eventCols+` FROM events WHERE event_id = ?`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return EventRow{}, fmt.Errorf("store: event %s: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return EventRow{}, fmt.Errorf("store: event %s: %w", eventID, describe(err))
	}
	return r, nil
}

// Events returns the stored events among ids, in stream order; unknown IDs
// are skipped.
func (s *Store) Events(ids []string) ([]EventRow, error) {
	var out []EventRow
	for len(ids) > 0 {
		batch := ids
		if len(batch) > 500 {
			batch = batch[:500]
		}
		ids = ids[len(batch):]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		q := `SELECT ` + eventCols + ` FROM events WHERE event_id IN (?` + strings.Repeat(",?", len(batch)-1) + `) ORDER BY stream_pos`
		rows, err := s.queryEvents(q, args...)
		if err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (s *Store) queryEvents(q string, args ...any) ([]EventRow, error) {
	rows, err := s.DB.Query(q, args...)
	if err != nil {
		return nil, describe(err)
	}
	defer rows.Close()
	var out []EventRow
	for rows.Next() {
		r, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RoomEventsRange returns up to limit events of a room with after < pos ≤
// upTo, oldest first when forward, newest first otherwise. limit ≤ 0 means
// no limit.
func (s *Store) RoomEventsRange(roomID string, after, upTo int64, forward bool, limit int) ([]EventRow, error) {
	order := "DESC"
	if forward {
		order = "ASC"
	}
	q := `SELECT ` + eventCols + ` FROM events WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ? AND outlier = FALSE ORDER BY stream_pos ` + order
	args := []any{roomID, after, upTo}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	out, err := s.queryEvents(q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: room events %s: %w", roomID, err)
	}
	return out, nil
}

// RoomStateEventsRange returns the state events of a room with after < pos
// ≤ upTo, oldest first.
func (s *Store) RoomStateEventsRange(roomID string, after, upTo int64) ([]EventRow, error) {
	out, err := s.queryEvents(`SELECT `+eventCols+` FROM events WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ?
		AND state_key IS NOT NULL AND outlier = FALSE ORDER BY stream_pos`, roomID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: room state events %s: %w", roomID, err)
	}
	return out, nil
}

// CountRoomEvents counts the events of a room with after < pos ≤ upTo that
// other senders than notSender sent, among the given types.
func (s *Store) CountRoomEvents(roomID string, after, upTo int64, notSender string, types []string) (int, error) {
	args := []any{roomID, after, upTo, notSender}
	q := `SELECT COUNT(*) FROM events WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ? AND sender <> ? AND redacted_by IS NULL AND outlier = FALSE`
	if len(types) > 0 {
		q += ` AND type IN (?` + strings.Repeat(",?", len(types)-1) + `)`
		for _, t := range types {
			args = append(args, t)
		}
	}
	var n int
	if err := s.DB.QueryRow(q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count events %s: %w", roomID, describe(err))
	}
	return n, nil
}

// LatestRoomEvent returns the newest event of a room (by stream position).
func (s *Store) LatestRoomEvent(roomID string) (EventRow, error) {
	r, err := scanEvent(s.DB.QueryRow(`SELECT `+eventCols+` FROM events WHERE room_id = ? AND outlier = FALSE ORDER BY stream_pos DESC LIMIT 1`, roomID))
	if errors.Is(err, sql.ErrNoRows) {
		return EventRow{}, fmt.Errorf("store: latest event %s: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return EventRow{}, fmt.Errorf("store: latest event %s: %w", roomID, describe(err))
	}
	return r, nil
}

// MaxDepth returns the largest depth among the given events.
func (s *Store) MaxDepth(ids []string) (int64, error) {
	rows, err := s.Events(ids)
	if err != nil {
		return 0, err
	}
	var d int64
	for _, r := range rows {
		d = max(d, r.Depth)
	}
	return d, nil
}

// Event is Store.Event inside the transaction.
func (t *RoomTx) Event(eventID string) (EventRow, error) {
	r, err := scanEvent(t.tx.QueryRow(`SELECT `+eventCols+` FROM events WHERE event_id = ?`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return EventRow{}, fmt.Errorf("store: event %s: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return EventRow{}, fmt.Errorf("store: event %s: %w", eventID, describe(err))
	}
	return r, nil
}
