package store

// The tables of migration 0004: rejected PDUs, each room's current state
// group, and invites of local users to rooms this server is not in; plus
// the outlier bookkeeping on events (negative stream positions).

import (
	"database/sql"
	"errors"
	"fmt"
)

// MinStreamPos is the smallest stream position in use by an event (0 when
// there is none below zero): outliers count down from it.
func (s *Store) MinStreamPos() (int64, error) {
	var p int64
	if err := s.DB.QueryRow(`SELECT COALESCE(MIN(stream_pos), 0) FROM events`).Scan(&p); err != nil {
		return 0, fmt.Errorf("store: min stream position: %w", describe(err))
	}
	return min(p, 0), nil
}

// Rejected is one row of rejected_events.
type Rejected struct {
	EventID, RoomID, Origin, Reason string
	ReceivedTS                      int64
	JSON                            []byte
}

// InsertRejected records a rejected PDU; a PDU rejected before keeps its
// first reason.
func (t *RoomTx) InsertRejected(r Rejected) error {
	_, err := t.tx.Exec(`INSERT INTO rejected_events (event_id, room_id, origin, reason, received_ts, json)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
		r.EventID, r.RoomID, r.Origin, r.Reason, r.ReceivedTS, r.JSON)
	if err != nil {
		return fmt.Errorf("store: insert rejected %s: %w", r.EventID, describe(err))
	}
	return nil
}

// RejectedReason returns why an event was rejected, or ErrNotFound.
func (s *Store) RejectedReason(eventID string) (string, error) {
	var reason string
	err := s.DB.QueryRow(`SELECT reason FROM rejected_events WHERE event_id = ?`, eventID).Scan(&reason)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: rejected %s: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: rejected %s: %w", eventID, describe(err))
	}
	return reason, nil
}

// RejectedEvents lists a room's rejected PDUs, oldest first.
func (s *Store) RejectedEvents(roomID string) ([]Rejected, error) {
	rows, err := s.DB.Query(`SELECT event_id, room_id, origin, reason, received_ts, json FROM rejected_events
		WHERE room_id = ? ORDER BY received_ts, event_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("store: rejected events %s: %w", roomID, describe(err))
	}
	defer rows.Close()
	var out []Rejected
	for rows.Next() {
		var r Rejected
		if err := rows.Scan(&r.EventID, &r.RoomID, &r.Origin, &r.Reason, &r.ReceivedTS, &r.JSON); err != nil {
			return nil, fmt.Errorf("store: rejected events %s: %w", roomID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetCurrentState records the state group of a room's current state.
func (t *RoomTx) SetCurrentState(roomID string, group int64) error {
	_, err := t.tx.Exec(`INSERT INTO room_current_state (room_id, state_group) VALUES (?, ?)
		ON CONFLICT (room_id) DO UPDATE SET state_group = excluded.state_group`, roomID, group)
	if err != nil {
		return fmt.Errorf("store: set current state %s: %w", roomID, describe(err))
	}
	return nil
}

// CurrentStateGroup returns the recorded current state group of a room, or
// ErrNotFound when none was recorded (the room's newest event's state_after
// is then its current state).
func (s *Store) CurrentStateGroup(roomID string) (int64, error) {
	var g int64
	err := s.DB.QueryRow(`SELECT state_group FROM room_current_state WHERE room_id = ?`, roomID).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: current state %s: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("store: current state %s: %w", roomID, describe(err))
	}
	return g, nil
}

// RemoteInvite is one row of remote_invites.
type RemoteInvite struct {
	RoomID, UserID, RoomVersion, EventID string
	JSON                                 []byte // the invite event, signed by both servers
	InviteState                          []byte // JSON array of stripped state events
}

// PutRemoteInvite records (or replaces) an invite to a room this server is
// not in.
func (t *RoomTx) PutRemoteInvite(r RemoteInvite) error {
	_, err := t.tx.Exec(`INSERT INTO remote_invites (room_id, user_id, room_version, event_id, json, invite_state)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO UPDATE SET room_version = excluded.room_version,
		event_id = excluded.event_id, json = excluded.json, invite_state = excluded.invite_state`,
		r.RoomID, r.UserID, r.RoomVersion, r.EventID, r.JSON, r.InviteState)
	if err != nil {
		return fmt.Errorf("store: put remote invite %s: %w", r.RoomID, describe(err))
	}
	return nil
}

// RemoteInvite returns a user's invite to a room this server is not in.
func (s *Store) RemoteInvite(roomID, userID string) (RemoteInvite, error) {
	r := RemoteInvite{RoomID: roomID, UserID: userID}
	err := s.DB.QueryRow(`SELECT room_version, event_id, json, invite_state FROM remote_invites
		WHERE room_id = ? AND user_id = ?`, roomID, userID).Scan(&r.RoomVersion, &r.EventID, &r.JSON, &r.InviteState)
	if errors.Is(err, sql.ErrNoRows) {
		return RemoteInvite{}, fmt.Errorf("store: remote invite %s: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return RemoteInvite{}, fmt.Errorf("store: remote invite %s: %w", roomID, describe(err))
	}
	return r, nil
}

// DeleteRemoteInvite forgets a user's invite to a remote room.
func (t *RoomTx) DeleteRemoteInvite(roomID, userID string) error {
	if _, err := t.tx.Exec(`DELETE FROM remote_invites WHERE room_id = ? AND user_id = ?`, roomID, userID); err != nil {
		return fmt.Errorf("store: delete remote invite %s: %w", roomID, describe(err))
	}
	return nil
}

// Successors lists the stored events that name eventID in prev_events.
func (s *Store) Successors(eventID string) ([]string, error) {
	return s.queryStrings("successors of "+eventID, `SELECT event_id FROM event_edges WHERE prev_event_id = ? ORDER BY event_id`, eventID)
}

// OldestRoomEvent returns a room's timeline event with the smallest stream
// position, or ErrNotFound.
func (s *Store) OldestRoomEvent(roomID string) (EventRow, error) {
	r, err := scanEvent(s.DB.QueryRow(`SELECT `+eventCols+` FROM events WHERE room_id = ? AND outlier = FALSE
		ORDER BY stream_pos LIMIT 1`, roomID))
	if errors.Is(err, sql.ErrNoRows) {
		return EventRow{}, fmt.Errorf("store: oldest event %s: %w", roomID, ErrNotFound)
	}
	if err != nil {
		return EventRow{}, fmt.Errorf("store: oldest event %s: %w", roomID, describe(err))
	}
	return r, nil
}

// PromoteOutlier moves an outlier into the timeline at stream position pos
// with its state groups before and after (an event first fetched as part
// of a state or auth chain, or checked as backfilled history).
func (t *RoomTx) PromoteOutlier(eventID string, pos, stateBefore, stateAfter int64) error {
	_, err := t.tx.Exec(`UPDATE events SET outlier = FALSE, stream_pos = ?, state_before = ?, state_after = ?
		WHERE event_id = ? AND outlier = TRUE`, pos, stateBefore, stateAfter, eventID)
	if err != nil {
		return fmt.Errorf("store: promote %s: %w", eventID, describe(err))
	}
	return nil
}
