package store

// Server-side key backups. Spec: client-server-api "End-to-End
// Encryption" → "Server-side key backups".
//
// A user's backups are versions numbered 1, 2, … in creation order; the
// current one, the only one keys may be written to, is the newest that is
// not deleted. A deleted version keeps its row, marked deleted, so that
// its number is never handed out again and deleting it twice succeeds;
// its keys go with it. Each version counts its keys (key_count) and the
// changes to them (etag): every write that adds, replaces or deletes at
// least one key moves the etag on, so a client can tell whether another
// device touched the backup since its own last write.
//
// Deleted versions are pruned: their auth_data is cleared at once, and
// only the newest deleted row is kept (it holds the highest number handed
// out). A version with no row below that number was deleted before.

import (
	"database/sql"
	"errors"
	"fmt"
)

// ErrNotCurrentBackup is returned when keys are written to a backup
// version that exists but is not the user's current one (or does not
// exist while another one is current).
var ErrNotCurrentBackup = errors.New("store: not the current key backup version")

// ErrBackupLimit is returned when a write would take a user past the
// caller's limit on live backup versions, or a version past its limit
// on keys.
var ErrBackupLimit = errors.New("store: key backup limit reached")

// KeyBackup is one of a user's backup versions.
type KeyBackup struct {
	Version   int64
	Algorithm string
	AuthData  []byte // the algorithm's auth_data object, JSON
	ETag      int64  // moves on with every change to the version's keys
	Count     int64  // number of keys in the version
}

// BackupKey is one megolm session key in a backup (client-server-api
// "KeyBackupData"). SessionData is the encrypted key, an opaque JSON
// object.
type BackupKey struct {
	RoomID, SessionID string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       []byte
}

// Replaces reports whether k should replace old, the key stored for the
// same session. Spec: client-server-api "Server-side key backups": keep
// the key with is_verified set; with equal is_verified, the one with the
// lower first_message_index; with both equal, the one with the lower
// forwarded_count. A key equal to the stored one in all three keeps the
// stored one.
func (k BackupKey) Replaces(old BackupKey) bool {
	switch {
	case k.IsVerified != old.IsVerified:
		return k.IsVerified
	case k.FirstMessageIndex != old.FirstMessageIndex:
		return k.FirstMessageIndex < old.FirstMessageIndex
	default:
		return k.ForwardedCount < old.ForwardedCount
	}
}

// CreateKeyBackup creates a new backup version for userID, which becomes
// the current one, and returns its number. ErrBackupLimit when the user
// already has maxLive versions that are not deleted.
func (s *Store) CreateKeyBackup(userID, algorithm string, authData []byte, maxLive int) (int64, error) {
	var version int64
	err := s.Tx(func(tx *sql.Tx) error {
		var live int
		if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) + 1, COUNT(*) FILTER (WHERE NOT deleted)
			FROM key_backup_versions WHERE user_id = ?`, userID).Scan(&version, &live); err != nil {
			return err
		}
		if live >= maxLive {
			return ErrBackupLimit
		}
		if _, err := tx.Exec(`INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, key_count, deleted)
			VALUES (?, ?, ?, ?, 0, 0, ?)`, userID, version, algorithm, string(authData), false); err != nil {
			return err
		}
		return pruneDeletedBackups(tx, userID)
	})
	if err != nil {
		return 0, fmt.Errorf("store: create key backup %s: %w", userID, describe(err))
	}
	return version, nil
}

// KeyBackup returns userID's backup version (0: the current one), or
// ErrNotFound when it does not exist or was deleted.
func (s *Store) KeyBackup(userID string, version int64) (KeyBackup, error) {
	if version == 0 {
		cur, err := currentBackup(s.DB, userID)
		if err != nil {
			return KeyBackup{}, fmt.Errorf("store: current key backup %s: %w", userID, err)
		}
		version = cur
	}
	b := KeyBackup{Version: version}
	var auth string
	err := s.DB.QueryRow(`SELECT algorithm, auth_data, etag, key_count FROM key_backup_versions
		WHERE user_id = ? AND version = ? AND deleted = ?`, userID, version, false).Scan(&b.Algorithm, &auth, &b.ETag, &b.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return KeyBackup{}, fmt.Errorf("store: key backup %s %d: %w", userID, version, ErrNotFound)
	}
	if err != nil {
		return KeyBackup{}, fmt.Errorf("store: key backup %s %d: %w", userID, version, describe(err))
	}
	b.AuthData = []byte(auth)
	return b, nil
}

// UpdateKeyBackup replaces the auth_data of a backup version; ErrNotFound
// when it does not exist or was deleted.
func (s *Store) UpdateKeyBackup(userID string, version int64, authData []byte) error {
	res, err := s.DB.Exec(`UPDATE key_backup_versions SET auth_data = ? WHERE user_id = ? AND version = ? AND deleted = ?`,
		string(authData), userID, version, false)
	if err != nil {
		return fmt.Errorf("store: update key backup %s %d: %w", userID, version, describe(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: update key backup %s %d: %w", userID, version, describe(err))
	} else if n == 0 {
		return fmt.Errorf("store: update key backup %s %d: %w", userID, version, ErrNotFound)
	}
	return nil
}

// DeleteKeyBackup deletes a backup version and all its keys. Deleting a
// version that was deleted before succeeds; one that never existed is
// ErrNotFound.
func (s *Store) DeleteKeyBackup(userID string, version int64) error {
	err := s.Tx(func(tx *sql.Tx) error {
		var deleted bool
		err := tx.QueryRow(`SELECT deleted FROM key_backup_versions WHERE user_id = ? AND version = ?`,
			userID, version).Scan(&deleted)
		if errors.Is(err, sql.ErrNoRows) {
			// Numbers are handed out in order: one below the highest
			// was deleted and pruned.
			var highest int64
			if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM key_backup_versions WHERE user_id = ?`,
				userID).Scan(&highest); err != nil {
				return err
			}
			if version < highest {
				return nil
			}
			return ErrNotFound
		}
		if err != nil || deleted {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM key_backup_keys WHERE user_id = ? AND version = ?`, userID, version); err != nil {
			return err
		}
		if _, err = tx.Exec(`UPDATE key_backup_versions SET deleted = ?, key_count = 0, etag = etag + 1, auth_data = '{}'
			WHERE user_id = ? AND version = ?`, true, userID, version); err != nil {
			return err
		}
		return pruneDeletedBackups(tx, userID)
	})
	if err != nil {
		return fmt.Errorf("store: delete key backup %s %d: %w", userID, version, describe(err))
	}
	return nil
}

// PutBackupKeys stores keys in userID's backup version, which must be the
// current one (ErrNotCurrentBackup; ErrNotFound when the user has no
// backup at all). ErrBackupLimit, and nothing stored, when the version
// would hold more than maxKeys keys. A key for a session the version already holds replaces
// the stored one only as BackupKey.Replaces says. All keys are written or
// none. It returns the version's etag and key count afterwards; the etag
// moves on only when at least one key was added or replaced.
func (s *Store) PutBackupKeys(userID string, version int64, keys []BackupKey, maxKeys int64) (etag, count int64, err error) {
	err = s.Tx(func(tx *sql.Tx) error {
		cur, err := currentBackup(tx, userID)
		if err != nil {
			return err
		}
		if cur != version {
			return ErrNotCurrentBackup
		}
		var added, changed int64
		for _, k := range keys {
			old := BackupKey{RoomID: k.RoomID, SessionID: k.SessionID}
			err := tx.QueryRow(`SELECT first_message_index, forwarded_count, is_verified FROM key_backup_keys
				WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`, userID, version, k.RoomID, k.SessionID).
				Scan(&old.FirstMessageIndex, &old.ForwardedCount, &old.IsVerified)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := tx.Exec(`INSERT INTO key_backup_keys (user_id, version, room_id, session_id,
					first_message_index, forwarded_count, is_verified, session_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
					userID, version, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified,
					string(k.SessionData)); err != nil {
					return err
				}
				added++
			case err != nil:
				return err
			case k.Replaces(old):
				if _, err := tx.Exec(`UPDATE key_backup_keys SET first_message_index = ?, forwarded_count = ?,
					is_verified = ?, session_data = ? WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`,
					k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, string(k.SessionData),
					userID, version, k.RoomID, k.SessionID); err != nil {
					return err
				}
				changed++
			}
		}
		if added+changed > 0 {
			if _, err := tx.Exec(`UPDATE key_backup_versions SET etag = etag + 1, key_count = key_count + ?
				WHERE user_id = ? AND version = ?`, added, userID, version); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(`SELECT etag, key_count FROM key_backup_versions WHERE user_id = ? AND version = ?`,
			userID, version).Scan(&etag, &count); err != nil {
			return err
		}
		if added > 0 && count > maxKeys {
			return ErrBackupLimit // rolls the keys back
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: put backup keys %s %d: %w", userID, version, describe(err))
	}
	return etag, count, nil
}

// BackupKeys returns the keys of userID's backup version, all of them
// (roomID ""), a room's (sessionID ""), or one session's, ordered by room
// and session. ErrNotFound when the version does not exist or was
// deleted; a version without matching keys gives none and no error.
func (s *Store) BackupKeys(userID string, version int64, roomID, sessionID string) ([]BackupKey, error) {
	if err := liveBackup(s.DB, userID, version); err != nil {
		return nil, fmt.Errorf("store: backup keys %s %d: %w", userID, version, err)
	}
	where, args := backupKeysWhere(userID, version, roomID, sessionID)
	rows, err := s.DB.Query(`SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM key_backup_keys WHERE `+where+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: backup keys %s %d: %w", userID, version, describe(err))
	}
	defer rows.Close()
	var out []BackupKey
	for rows.Next() {
		var k BackupKey
		var data string
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, fmt.Errorf("store: backup keys %s %d: %w", userID, version, describe(err))
		}
		k.SessionData = []byte(data)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: backup keys %s %d: %w", userID, version, describe(err))
	}
	return out, nil
}

// DeleteBackupKeys deletes keys from userID's backup version (any
// version that is not deleted, not only the current one): all of them
// (roomID ""), a room's (sessionID ""), or one session's. It returns the
// version's etag and key count afterwards; the etag moves on only when a
// key was deleted. ErrNotFound when the version does not exist or was
// deleted.
func (s *Store) DeleteBackupKeys(userID string, version int64, roomID, sessionID string) (etag, count int64, err error) {
	err = s.Tx(func(tx *sql.Tx) error {
		if err := liveBackup(tx, userID, version); err != nil {
			return err
		}
		where, args := backupKeysWhere(userID, version, roomID, sessionID)
		res, err := tx.Exec(`DELETE FROM key_backup_keys WHERE `+where, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 {
			if _, err := tx.Exec(`UPDATE key_backup_versions SET etag = etag + 1, key_count = key_count - ?
				WHERE user_id = ? AND version = ?`, n, userID, version); err != nil {
				return err
			}
		}
		return tx.QueryRow(`SELECT etag, key_count FROM key_backup_versions WHERE user_id = ? AND version = ?`,
			userID, version).Scan(&etag, &count)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: delete backup keys %s %d: %w", userID, version, describe(err))
	}
	return etag, count, nil
}

// pruneDeletedBackups removes userID's deleted versions but the newest
// row, which keeps the highest number handed out.
func pruneDeletedBackups(tx *sql.Tx, userID string) error {
	_, err := tx.Exec(`DELETE FROM key_backup_versions WHERE user_id = ? AND deleted = ?
		AND version < (SELECT MAX(version) FROM key_backup_versions WHERE user_id = ?)`, userID, true, userID)
	return err
}

// queryRower is what currentBackup and liveBackup need: a *sql.DB or a
// *sql.Tx.
type queryRower interface {
	QueryRow(query string, args ...any) *sql.Row
}

// currentBackup is the number of userID's current backup version: the
// newest one not deleted. ErrNotFound when there is none.
func currentBackup(q queryRower, userID string) (int64, error) {
	var v sql.NullInt64
	if err := q.QueryRow(`SELECT MAX(version) FROM key_backup_versions WHERE user_id = ? AND deleted = ?`,
		userID, false).Scan(&v); err != nil {
		return 0, describe(err)
	}
	if !v.Valid {
		return 0, ErrNotFound
	}
	return v.Int64, nil
}

// liveBackup checks that userID's backup version exists and is not
// deleted (ErrNotFound otherwise).
func liveBackup(q queryRower, userID string, version int64) error {
	var one int
	err := q.QueryRow(`SELECT 1 FROM key_backup_versions WHERE user_id = ? AND version = ? AND deleted = ?`,
		userID, version, false).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return describe(err)
	}
	return nil
}

// backupKeysWhere selects a version's keys: all, a room's (sessionID ""),
// or one session's.
func backupKeysWhere(userID string, version int64, roomID, sessionID string) (string, []any) {
	where, args := `user_id = ? AND version = ?`, []any{userID, version}
	if roomID != "" {
		where, args = where+` AND room_id = ?`, append(args, roomID)
		if sessionID != "" {
			where, args = where+` AND session_id = ?`, append(args, sessionID)
		}
	}
	return where, args
}
