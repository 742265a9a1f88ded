package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// MaxStreamPos is the largest stream position in use: the node resumes its
// counter from it at start-up so sync tokens survive a restart.
func (s *Store) MaxStreamPos() (int64, error) {
	var pos int64
	for _, q := range []string{
		`SELECT COALESCE(MAX(stream_pos), 0) FROM events`,
		`SELECT COALESCE(MAX(stream_pos), 0) FROM receipts`,
		`SELECT COALESCE(MAX(stream_pos), 0) FROM account_data`,
		`SELECT COALESCE(MAX(stream_pos), 0) FROM room_members`,
	} {
		var p int64
		if err := s.DB.QueryRow(q).Scan(&p); err != nil {
			return 0, fmt.Errorf("store: max stream position: %w", describe(err))
		}
		pos = max(pos, p)
	}
	return pos, nil
}

// Receipt is one row of receipts: the latest receipt of a user in a room
// for one receipt type and thread.
type Receipt struct {
	RoomID, Type, UserID, ThreadID string
	EventID                        string
	TS                             int64 // ms since the Unix epoch
	Pos                            int64
}

// PutReceipt replaces the user's receipt of that type and thread.
func (s *Store) PutReceipt(r Receipt) error {
	_, err := s.DB.Exec(`INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_pos)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET event_id = excluded.event_id,
			ts = excluded.ts, stream_pos = excluded.stream_pos`,
		r.RoomID, r.Type, r.UserID, r.ThreadID, r.EventID, r.TS, r.Pos)
	if err != nil {
		return fmt.Errorf("store: put receipt %s in %s: %w", r.UserID, r.RoomID, describe(err))
	}
	return nil
}

// Receipts returns a room's receipts with after < pos ≤ upTo.
func (s *Store) Receipts(roomID string, after, upTo int64) ([]Receipt, error) {
	rows, err := s.DB.Query(`SELECT receipt_type, user_id, thread_id, event_id, ts, stream_pos FROM receipts
		WHERE room_id = ? AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos`, roomID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: receipts %s: %w", roomID, describe(err))
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		r := Receipt{RoomID: roomID}
		if err := rows.Scan(&r.Type, &r.UserID, &r.ThreadID, &r.EventID, &r.TS, &r.Pos); err != nil {
			return nil, fmt.Errorf("store: receipts %s: %w", roomID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UserReadPos returns the stream position of the newest event the user's
// m.read or m.read.private receipts (main timeline or unthreaded) point
// at in the room; 0 when there is none.
func (s *Store) UserReadPos(roomID, userID string) (int64, error) {
	var pos int64
	err := s.DB.QueryRow(`SELECT COALESCE(MAX(e.stream_pos), 0) FROM receipts r JOIN events e ON e.event_id = r.event_id
		WHERE r.room_id = ? AND r.user_id = ? AND r.receipt_type IN ('m.read', 'm.read.private')
		AND r.thread_id IN ('', 'main')`, roomID, userID).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("store: read position %s in %s: %w", userID, roomID, describe(err))
	}
	return pos, nil
}

// AccountData is one row of account_data; RoomID is "" for global data.
type AccountData struct {
	UserID, RoomID, Type string
	Content              []byte
	Pos                  int64
}

// PutAccountData replaces one account data entry.
func (s *Store) PutAccountData(a AccountData) error {
	_, err := s.DB.Exec(`INSERT INTO account_data (user_id, room_id, type, content, stream_pos) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
		a.UserID, a.RoomID, a.Type, a.Content, a.Pos)
	if err != nil {
		return fmt.Errorf("store: put account data %s %s: %w", a.UserID, a.Type, describe(err))
	}
	return nil
}

// GetAccountData returns one entry, or ErrNotFound.
func (s *Store) GetAccountData(userID, roomID, typ string) (AccountData, error) {
	a := AccountData{UserID: userID, RoomID: roomID, Type: typ}
	err := s.DB.QueryRow(`SELECT content, stream_pos FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?`,
		userID, roomID, typ).Scan(&a.Content, &a.Pos)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountData{}, fmt.Errorf("store: account data %s %s: %w", userID, typ, ErrNotFound)
	}
	if err != nil {
		return AccountData{}, fmt.Errorf("store: account data %s %s: %w", userID, typ, describe(err))
	}
	return a, nil
}

// AccountDataSince returns a user's account data (global and per room)
// with after < pos ≤ upTo.
func (s *Store) AccountDataSince(userID string, after, upTo int64) ([]AccountData, error) {
	rows, err := s.DB.Query(`SELECT room_id, type, content, stream_pos FROM account_data
		WHERE user_id = ? AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos`, userID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: account data %s: %w", userID, describe(err))
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		a := AccountData{UserID: userID}
		if err := rows.Scan(&a.RoomID, &a.Type, &a.Content, &a.Pos); err != nil {
			return nil, fmt.Errorf("store: account data %s: %w", userID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// InsertFilter stores a filter under the next free ID of the user.
func (s *Store) InsertFilter(userID string, filter []byte) (int64, error) {
	var id int64
	err := s.Tx(func(tx *sql.Tx) error {
		if err := tx.QueryRow(`SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?`, userID).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)`, userID, id, filter)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: insert filter for %s: %w", userID, describe(err))
	}
	return id, nil
}

// Filter returns a stored filter, or ErrNotFound.
func (s *Store) Filter(userID string, id int64) ([]byte, error) {
	var b []byte
	err := s.DB.QueryRow(`SELECT json FROM filters WHERE user_id = ? AND filter_id = ?`, userID, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: filter %d of %s: %w", id, userID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: filter %d of %s: %w", id, userID, describe(err))
	}
	return b, nil
}

// Profile is a user's global profile; nil fields are unset.
type Profile struct {
	DisplayName *string
	AvatarURL   *string
}

// Profile returns a user's profile (empty when none was ever set).
func (s *Store) Profile(userID string) (Profile, error) {
	var p Profile
	var dn, av sql.NullString
	err := s.DB.QueryRow(`SELECT displayname, avatar_url FROM profiles WHERE user_id = ?`, userID).Scan(&dn, &av)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("store: profile %s: %w", userID, describe(err))
	}
	if dn.Valid {
		p.DisplayName = &dn.String
	}
	if av.Valid {
		p.AvatarURL = &av.String
	}
	return p, nil
}

// SetProfile replaces a user's profile.
func (s *Store) SetProfile(userID string, p Profile) error {
	toNull := func(s *string) sql.NullString {
		if s == nil {
			return sql.NullString{}
		}
		return sql.NullString{String: *s, Valid: true}
	}
	_, err := s.DB.Exec(`INSERT INTO profiles (user_id, displayname, avatar_url) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET displayname = excluded.displayname, avatar_url = excluded.avatar_url`,
		userID, toNull(p.DisplayName), toNull(p.AvatarURL))
	if err != nil {
		return fmt.Errorf("store: set profile %s: %w", userID, describe(err))
	}
	return nil
}

// LastReceiptPos is the stream position of a room's newest receipt (0 if
// none).
func (s *Store) LastReceiptPos(roomID string) (int64, error) {
	var pos int64
	if err := s.DB.QueryRow(`SELECT COALESCE(MAX(stream_pos), 0) FROM receipts WHERE room_id = ?`, roomID).Scan(&pos); err != nil {
		return 0, fmt.Errorf("store: last receipt %s: %w", roomID, describe(err))
	}
	return pos, nil
}
