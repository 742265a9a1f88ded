package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// Presence is a user's latest presence (client-server-api "Presence").
type Presence struct {
	UserID          string
	Presence        string // online, unavailable, offline
	StatusMsg       *string
	LastActiveTS    int64 // ms since the Unix epoch
	CurrentlyActive bool
	Pos             int64
}

// PutPresence replaces a user's presence.
func (s *Store) PutPresence(p Presence) error {
	var msg sql.NullString
	if p.StatusMsg != nil {
		msg = sql.NullString{String: *p.StatusMsg, Valid: true}
	}
	_, err := s.DB.Exec(`INSERT INTO presence (user_id, presence, status_msg, last_active_ts, currently_active, stream_pos)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence,
		status_msg = excluded.status_msg, last_active_ts = excluded.last_active_ts,
		currently_active = excluded.currently_active, stream_pos = excluded.stream_pos`,
		p.UserID, p.Presence, msg, p.LastActiveTS, p.CurrentlyActive, p.Pos)
	if err != nil {
		return fmt.Errorf("store: put presence %s: %w", p.UserID, describe(err))
	}
	return nil
}

const presenceCols = `user_id, presence, status_msg, last_active_ts, currently_active, stream_pos`

func scanPresence(sc interface{ Scan(...any) error }) (Presence, error) {
	var p Presence
	var msg sql.NullString
	if err := sc.Scan(&p.UserID, &p.Presence, &msg, &p.LastActiveTS, &p.CurrentlyActive, &p.Pos); err != nil {
		return Presence{}, err
	}
	if msg.Valid {
		p.StatusMsg = &msg.String
	}
	return p, nil
}

// GetPresence returns a user's presence, or ErrNotFound.
func (s *Store) GetPresence(userID string) (Presence, error) {
	p, err := scanPresence(s.DB.QueryRow(`SELECT `+presenceCols+` FROM presence WHERE user_id = ?`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, fmt.Errorf("store: presence %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return Presence{}, fmt.Errorf("store: presence %s: %w", userID, describe(err))
	}
	return p, nil
}

// PresenceSince returns the presence rows with after < pos ≤ upTo.
func (s *Store) PresenceSince(after, upTo int64) ([]Presence, error) {
	rows, err := s.DB.Query(`SELECT `+presenceCols+` FROM presence WHERE stream_pos > ? AND stream_pos <= ?
		ORDER BY stream_pos`, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: presence since %d: %w", after, describe(err))
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		p, err := scanPresence(rows)
		if err != nil {
			return nil, fmt.Errorf("store: presence since %d: %w", after, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
