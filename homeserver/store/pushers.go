package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// ErrPusherLimit is returned when a new pusher would take a user past the
// caller's limit.
var ErrPusherLimit = errors.New("store: too many pushers")

// Pusher is one row of the pushers table: where the node sends push
// notifications for one of a user's devices (client-server-api "Push
// Notifications"). Data is the pusher's data object as JSON.
type Pusher struct {
	UserID            string
	AppID             string
	PushKey           string
	DeviceID          string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              []byte
	PushKeyTS         int64 // milliseconds since the epoch
}

const pusherCols = `user_id, app_id, pushkey, device_id, kind, app_display_name, device_display_name,
	profile_tag, lang, data, pushkey_ts`

// SetPusher creates or replaces the pusher (p.UserID, p.AppID, p.PushKey).
// Unless appendOthers, pushers with the same app ID and pushkey under other
// users are deleted in the same transaction (POST /pushers/set "append").
// The device p.DeviceID must exist. A new pusher that would give the user
// more than maxPerUser fails with ErrPusherLimit; replacing one does not.
func (s *Store) SetPusher(p Pusher, appendOthers bool, maxPerUser int) error {
	err := s.Tx(func(tx *sql.Tx) error {
		var have, exists int
		if err := tx.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE app_id = ? AND pushkey = ?)
			FROM pushers WHERE user_id = ?`, p.AppID, p.PushKey, p.UserID).Scan(&have, &exists); err != nil {
			return err
		}
		if exists == 0 && have >= maxPerUser {
			return ErrPusherLimit
		}
		if !appendOthers {
			if _, err := tx.Exec(`DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?`,
				p.AppID, p.PushKey, p.UserID); err != nil {
				return err
			}
		}
		_, err := tx.Exec(`INSERT INTO pushers (`+pusherCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
				device_id = excluded.device_id, kind = excluded.kind,
				app_display_name = excluded.app_display_name,
				device_display_name = excluded.device_display_name,
				profile_tag = excluded.profile_tag, lang = excluded.lang,
				data = excluded.data, pushkey_ts = excluded.pushkey_ts`,
			p.UserID, p.AppID, p.PushKey, p.DeviceID, p.Kind, p.AppDisplayName, p.DeviceDisplayName,
			p.ProfileTag, p.Lang, string(p.Data), p.PushKeyTS)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set pusher %s %s: %w", p.UserID, p.AppID, describe(err))
	}
	return nil
}

// DeletePusher deletes one pusher of a user; it reports whether there was
// one.
func (s *Store) DeletePusher(userID, appID, pushKey string) (bool, error) {
	res, err := s.DB.Exec(`DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?`,
		userID, appID, pushKey)
	if err != nil {
		return false, fmt.Errorf("store: delete pusher %s %s: %w", userID, appID, describe(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: delete pusher %s %s: %w", userID, appID, err)
	}
	return n > 0, nil
}

// Pusher returns one pusher of a user, or ErrNotFound.
func (s *Store) Pusher(userID, appID, pushKey string) (Pusher, error) {
	var p Pusher
	var data string
	err := s.DB.QueryRow(`SELECT `+pusherCols+` FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?`,
		userID, appID, pushKey).Scan(&p.UserID, &p.AppID, &p.PushKey, &p.DeviceID, &p.Kind, &p.AppDisplayName,
		&p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushKeyTS)
	if errors.Is(err, sql.ErrNoRows) {
		return Pusher{}, fmt.Errorf("store: pusher %s %s: %w", userID, appID, ErrNotFound)
	}
	if err != nil {
		return Pusher{}, fmt.Errorf("store: pusher %s %s: %w", userID, appID, describe(err))
	}
	p.Data = []byte(data)
	return p, nil
}

// Pushers lists a user's pushers ordered by app ID and pushkey.
func (s *Store) Pushers(userID string) ([]Pusher, error) {
	rows, err := s.DB.Query(`SELECT `+pusherCols+` FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: pushers of %s: %w", userID, describe(err))
	}
	defer rows.Close()
	out := []Pusher{}
	for rows.Next() {
		var p Pusher
		var data string
		if err := rows.Scan(&p.UserID, &p.AppID, &p.PushKey, &p.DeviceID, &p.Kind, &p.AppDisplayName,
			&p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushKeyTS); err != nil {
			return nil, fmt.Errorf("store: pushers of %s: %w", userID, err)
		}
		p.Data = []byte(data)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pushers of %s: %w", userID, err)
	}
	return out, nil
}

// PusherUsers lists the users that have at least one pusher.
func (s *Store) PusherUsers() ([]string, error) {
	rows, err := s.DB.Query(`SELECT DISTINCT user_id FROM pushers ORDER BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("store: pusher users: %w", describe(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: pusher users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pusher users: %w", err)
	}
	return out, nil
}
