package store

import (
	"database/sql"
	"errors"
	"fmt"
)

// MaxE2EEPos is the largest stream position used by to-device messages,
// presence and device list changes (see MaxStreamPos for the rest).
func (s *Store) MaxE2EEPos() (int64, error) {
	var pos int64
	for _, q := range []string{
		`SELECT COALESCE(MAX(stream_pos), 0) FROM to_device`,
		`SELECT COALESCE(MAX(stream_pos), 0) FROM presence`,
		`SELECT COALESCE(MAX(stream_pos), 0) FROM device_lists`,
	} {
		var p int64
		if err := s.DB.QueryRow(q).Scan(&p); err != nil {
			return 0, fmt.Errorf("store: max e2ee stream position: %w", describe(err))
		}
		pos = max(pos, p)
	}
	return pos, nil
}

// DeviceKeys is the uploaded keys of one existing device.
type DeviceKeys struct {
	DeviceID    string
	DisplayName *string
	JSON        []byte
}

// PutDeviceKeys replaces a device's keys.
func (s *Store) PutDeviceKeys(userID, deviceID string, keys []byte) error {
	_, err := s.DB.Exec(`INSERT INTO device_keys (user_id, device_id, json) VALUES (?, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET json = excluded.json`, userID, deviceID, string(keys))
	if err != nil {
		return fmt.Errorf("store: put device keys %s/%s: %w", userID, deviceID, describe(err))
	}
	return nil
}

// UserDeviceKeys returns the keys of a user's devices that still exist
// (a logged-out device's keys are not served), ordered by device ID.
func (s *Store) UserDeviceKeys(userID string) ([]DeviceKeys, error) {
	rows, err := s.DB.Query(`SELECT k.device_id, d.display_name, k.json FROM device_keys k
		JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
		WHERE k.user_id = ? ORDER BY k.device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: device keys %s: %w", userID, describe(err))
	}
	defer rows.Close()
	var out []DeviceKeys
	for rows.Next() {
		var k DeviceKeys
		var name sql.NullString
		var js string
		if err := rows.Scan(&k.DeviceID, &name, &js); err != nil {
			return nil, fmt.Errorf("store: device keys %s: %w", userID, err)
		}
		if name.Valid {
			k.DisplayName = &name.String
		}
		k.JSON = []byte(js)
		out = append(out, k)
	}
	return out, rows.Err()
}

// OneTimeKey is a one-time or fallback key: KeyID is the part after
// "algorithm:".
type OneTimeKey struct {
	Algorithm, KeyID string
	JSON             []byte // the key: a JSON string or signed object
}

// AddOneTimeKeys stores new one-time keys of a device. Re-uploading a key
// with the same content is a no-op; different content under an existing
// ID fails with ErrExists and stores nothing.
func (s *Store) AddOneTimeKeys(userID, deviceID string, keys []OneTimeKey) error {
	err := s.Tx(func(tx *sql.Tx) error {
		for _, k := range keys {
			var old string
			err := tx.QueryRow(`SELECT json FROM one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?`,
				userID, deviceID, k.Algorithm, k.KeyID).Scan(&old)
			switch {
			case err == nil && old == string(k.JSON):
				continue
			case err == nil:
				return fmt.Errorf("one-time key %s:%s: %w", k.Algorithm, k.KeyID, ErrExists)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			if _, err := tx.Exec(`INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, json) VALUES (?, ?, ?, ?, ?)`,
				userID, deviceID, k.Algorithm, k.KeyID, string(k.JSON)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add one-time keys %s/%s: %w", userID, deviceID, describe(err))
	}
	return nil
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys by algorithm.
func (s *Store) OneTimeKeyCounts(userID, deviceID string) (map[string]int, error) {
	rows, err := s.DB.Query(`SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = ? AND device_id = ?
		GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("store: one-time key counts %s/%s: %w", userID, deviceID, describe(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, fmt.Errorf("store: one-time key counts %s/%s: %w", userID, deviceID, err)
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// PutFallbackKey replaces a device's fallback key of k.Algorithm, unused.
func (s *Store) PutFallbackKey(userID, deviceID string, k OneTimeKey) error {
	_, err := s.DB.Exec(`INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, json, used) VALUES (?, ?, ?, ?, ?, FALSE)
		ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, json = excluded.json, used = FALSE`,
		userID, deviceID, k.Algorithm, k.KeyID, string(k.JSON))
	if err != nil {
		return fmt.Errorf("store: put fallback key %s/%s: %w", userID, deviceID, describe(err))
	}
	return nil
}

// UnusedFallbackKeyTypes lists the algorithms of a device's unused
// fallback keys, sorted.
func (s *Store) UnusedFallbackKeyTypes(userID, deviceID string) ([]string, error) {
	rows, err := s.DB.Query(`SELECT algorithm FROM fallback_keys WHERE user_id = ? AND device_id = ? AND NOT used
		ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("store: fallback keys %s/%s: %w", userID, deviceID, describe(err))
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var alg string
		if err := rows.Scan(&alg); err != nil {
			return nil, fmt.Errorf("store: fallback keys %s/%s: %w", userID, deviceID, err)
		}
		out = append(out, alg)
	}
	return out, rows.Err()
}

// ClaimKey takes one key of the algorithm from a device: a one-time key
// (deleted), or else its fallback key (marked used, kept for reuse). It
// returns ErrNotFound when the device has neither.
func (s *Store) ClaimKey(userID, deviceID, algorithm string) (OneTimeKey, error) {
	k := OneTimeKey{Algorithm: algorithm}
	err := s.Tx(func(tx *sql.Tx) error {
		var js string
		err := tx.QueryRow(`SELECT key_id, json FROM one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?
			ORDER BY key_id LIMIT 1`, userID, deviceID, algorithm).Scan(&k.KeyID, &js)
		if err == nil {
			k.JSON = []byte(js)
			_, err = tx.Exec(`DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?`,
				userID, deviceID, algorithm, k.KeyID)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		err = tx.QueryRow(`SELECT key_id, json FROM fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?`,
			userID, deviceID, algorithm).Scan(&k.KeyID, &js)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		k.JSON = []byte(js)
		_, err = tx.Exec(`UPDATE fallback_keys SET used = TRUE WHERE user_id = ? AND device_id = ? AND algorithm = ?`,
			userID, deviceID, algorithm)
		return err
	})
	if err != nil {
		return OneTimeKey{}, fmt.Errorf("store: claim %s key of %s/%s: %w", algorithm, userID, deviceID, describe(err))
	}
	return k, nil
}

// DeviceListChanged records a change to a user's device list at stream
// position pos and returns the user's new federation stream_id. For a
// remote user it also drops the cached keys (the list is stale).
func (s *Store) DeviceListChanged(userID string, pos int64) (int64, error) {
	var id int64
	err := s.DB.QueryRow(`INSERT INTO device_lists (user_id, stream_pos, stream_id, remote_keys) VALUES (?, ?, 1, NULL)
		ON CONFLICT (user_id) DO UPDATE SET stream_pos = excluded.stream_pos, stream_id = device_lists.stream_id + 1,
		remote_keys = NULL RETURNING stream_id`, userID, pos).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: device list change %s: %w", userID, describe(err))
	}
	return id, nil
}

// DeviceListStreamID is a user's federation stream_id (0: never changed).
func (s *Store) DeviceListStreamID(userID string) (int64, error) {
	var id int64
	err := s.DB.QueryRow(`SELECT stream_id FROM device_lists WHERE user_id = ?`, userID).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("store: device list %s: %w", userID, describe(err))
	}
	return id, nil
}

// DeviceListsChangedSince lists the users whose device lists changed with
// after < pos ≤ upTo.
func (s *Store) DeviceListsChangedSince(after, upTo int64) ([]string, error) {
	rows, err := s.DB.Query(`SELECT user_id FROM device_lists WHERE stream_pos > ? AND stream_pos <= ? ORDER BY user_id`,
		after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: device list changes: %w", describe(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("store: device list changes: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// RemoteDeviceKeys returns the cached user/keys/query answer for a remote
// user and the stream position it was fetched at, or ErrNotFound when
// there is none or it is stale.
func (s *Store) RemoteDeviceKeys(userID string) ([]byte, int64, error) {
	var js sql.NullString
	var pos int64
	err := s.DB.QueryRow(`SELECT remote_keys, fetched_pos FROM device_lists WHERE user_id = ?`, userID).Scan(&js, &pos)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !js.Valid) {
		return nil, 0, fmt.Errorf("store: remote device keys %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: remote device keys %s: %w", userID, describe(err))
	}
	return []byte(js.String), pos, nil
}

// PutRemoteDeviceKeys caches a remote user's keys fetched at stream
// position pos.
func (s *Store) PutRemoteDeviceKeys(userID string, keys []byte, pos int64) error {
	_, err := s.DB.Exec(`INSERT INTO device_lists (user_id, stream_pos, stream_id, remote_keys, fetched_pos) VALUES (?, 0, 0, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET remote_keys = excluded.remote_keys, fetched_pos = excluded.fetched_pos`,
		userID, string(keys), pos)
	if err != nil {
		return fmt.Errorf("store: cache remote device keys %s: %w", userID, describe(err))
	}
	return nil
}

// DeleteDeviceE2EE removes what a deleted device left behind: its keys,
// one-time and fallback keys and pending to-device messages. It returns
// the devices among deviceIDs that had uploaded device keys.
func (s *Store) DeleteDeviceE2EE(userID string, deviceIDs []string) ([]string, error) {
	var had []string
	err := s.Tx(func(tx *sql.Tx) error {
		for _, d := range deviceIDs {
			res, err := tx.Exec(`DELETE FROM device_keys WHERE user_id = ? AND device_id = ?`, userID, d)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				had = append(had, d)
			}
			for _, q := range []string{`DELETE FROM one_time_keys WHERE user_id = ? AND device_id = ?`,
				`DELETE FROM fallback_keys WHERE user_id = ? AND device_id = ?`,
				`DELETE FROM to_device WHERE user_id = ? AND device_id = ?`} {
				if _, err := tx.Exec(q, userID, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: delete device keys of %s: %w", userID, describe(err))
	}
	return had, nil
}
