package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Account is one row of the accounts table.
type Account struct {
	UserID       string
	PasswordHash string // bcrypt; empty: password login disabled
	Admin        bool
	Deactivated  bool
	CreatedTS    int64 // ms since the Unix epoch
}

// Device is one row of the devices table.
type Device struct {
	UserID      string
	DeviceID    string
	DisplayName *string
	TokenHash   string // SHA-256 of the access token, lower-case hex
	CreatedTS   int64
	LastSeenTS  int64
	LastSeenIP  string
}

func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "PRIMARY KEY")
}

// CreateAccount inserts a new account; ErrExists if the user ID is taken.
func (s *Store) CreateAccount(a Account) error {
	_, err := s.DB.Exec(`INSERT INTO accounts (user_id, password_hash, admin, deactivated, created_ts)
		VALUES (?, ?, ?, ?, ?)`, a.UserID, a.PasswordHash, a.Admin, a.Deactivated, a.CreatedTS)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("store: create account %s: %w", a.UserID, ErrExists)
		}
		return fmt.Errorf("store: create account %s: %w", a.UserID, describe(err))
	}
	return nil
}

// Account returns the account for userID, or ErrNotFound.
func (s *Store) Account(userID string) (Account, error) {
	a := Account{UserID: userID}
	err := s.DB.QueryRow(`SELECT password_hash, admin, deactivated, created_ts FROM accounts WHERE user_id = ?`,
		userID).Scan(&a.PasswordHash, &a.Admin, &a.Deactivated, &a.CreatedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("store: account %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("store: account %s: %w", userID, describe(err))
	}
	return a, nil
}

// SetPassword replaces an account's password hash.
func (s *Store) SetPassword(userID, hash string) error {
	res, err := s.DB.Exec(`UPDATE accounts SET password_hash = ? WHERE user_id = ?`, hash, userID)
	return checkOne(res, err, "set password "+userID)
}

func checkOne(res sql.Result, err error, op string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, describe(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return nil
}

// PutDevice creates a device or, if (user, device) exists, gives it a new
// access token (a re-login with the same device ID). The display name is
// kept on update unless d.DisplayName is set.
func (s *Store) PutDevice(d Device) error {
	_, err := s.DB.Exec(`INSERT INTO devices
		(user_id, device_id, display_name, token_hash, created_ts, last_seen_ts, last_seen_ip)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id, device_id) DO UPDATE SET
			token_hash = excluded.token_hash,
			display_name = COALESCE(excluded.display_name, devices.display_name),
			last_seen_ts = excluded.last_seen_ts,
			last_seen_ip = excluded.last_seen_ip`,
		d.UserID, d.DeviceID, d.DisplayName, d.TokenHash, d.CreatedTS, d.LastSeenTS, d.LastSeenIP)
	if err != nil {
		return fmt.Errorf("store: put device %s/%s: %w", d.UserID, d.DeviceID, describe(err))
	}
	return nil
}

const deviceCols = `user_id, device_id, display_name, token_hash, created_ts, last_seen_ts, last_seen_ip`

func scanDevice(sc interface{ Scan(...any) error }) (Device, error) {
	var d Device
	var name sql.NullString
	err := sc.Scan(&d.UserID, &d.DeviceID, &name, &d.TokenHash, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP)
	if name.Valid {
		d.DisplayName = &name.String
	}
	return d, err
}

// DeviceByToken finds the device holding an access token hash.
func (s *Store) DeviceByToken(tokenHash string) (Device, error) {
	d, err := scanDevice(s.DB.QueryRow(`SELECT `+deviceCols+` FROM devices WHERE token_hash = ?`, tokenHash))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("store: device by token: %w", ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("store: device by token: %w", describe(err))
	}
	return d, nil
}

// Device returns one device of a user.
func (s *Store) Device(userID, deviceID string) (Device, error) {
	d, err := scanDevice(s.DB.QueryRow(`SELECT `+deviceCols+` FROM devices WHERE user_id = ? AND device_id = ?`,
		userID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("store: device %s/%s: %w", userID, deviceID, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("store: device %s/%s: %w", userID, deviceID, describe(err))
	}
	return d, nil
}

// Devices lists a user's devices ordered by device ID.
func (s *Store) Devices(userID string) ([]Device, error) {
	rows, err := s.DB.Query(`SELECT `+deviceCols+` FROM devices WHERE user_id = ? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: devices %s: %w", userID, describe(err))
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("store: devices %s: %w", userID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: devices %s: %w", userID, err)
	}
	return out, nil
}

// SetDeviceName sets a device's display name.
func (s *Store) SetDeviceName(userID, deviceID, name string) error {
	res, err := s.DB.Exec(`UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?`,
		name, userID, deviceID)
	return checkOne(res, err, "set device name "+userID+"/"+deviceID)
}

// TouchDevice records when and from where a device was last seen.
func (s *Store) TouchDevice(userID, deviceID string, ts int64, ip string) error {
	_, err := s.DB.Exec(`UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? WHERE user_id = ? AND device_id = ?`,
		ts, ip, userID, deviceID)
	if err != nil {
		return fmt.Errorf("store: touch device %s/%s: %w", userID, deviceID, describe(err))
	}
	return nil
}

// DeleteDevices removes the listed devices of a user (and so their access
// tokens) and returns the token hashes that were revoked. Unknown device
// IDs are ignored.
func (s *Store) DeleteDevices(userID string, deviceIDs []string) ([]string, error) {
	var hashes []string
	err := s.Tx(func(tx *sql.Tx) error {
		for _, id := range deviceIDs {
			var h string
			err := tx.QueryRow(`SELECT token_hash FROM devices WHERE user_id = ? AND device_id = ?`, userID, id).Scan(&h)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, id); err != nil {
				return err
			}
			hashes = append(hashes, h)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: delete devices of %s: %w", userID, describe(err))
	}
	return hashes, nil
}

// Deactivate marks an account deactivated. The password hash is kept so a
// login with the right password can be told M_USER_DEACTIVATED.
func (s *Store) Deactivate(userID string) error {
	res, err := s.DB.Exec(`UPDATE accounts SET deactivated = TRUE WHERE user_id = ?`, userID)
	return checkOne(res, err, "deactivate "+userID)
}
