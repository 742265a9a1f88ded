package store

import (
	"database/sql"
	"fmt"
)

// ToDevice is one queued send-to-device message for one device.
type ToDevice struct {
	Pos              int64
	UserID, DeviceID string
	Sender, Type     string
	Content          []byte // JSON object
}

// PutToDevice stores msgs and records (scope, txnID) as handled, in one
// transaction. It reports false, storing nothing, when the transaction was
// already handled. An empty txnID is not recorded.
func (s *Store) PutToDevice(scope, txnID string, ts int64, msgs []ToDevice) (bool, error) {
	fresh := true
	err := s.Tx(func(tx *sql.Tx) error {
		if txnID != "" {
			res, err := tx.Exec(`INSERT INTO to_device_txns (scope, txn_id, ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				scope, txnID, ts)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				fresh = false
				return nil
			}
		}
		for _, m := range msgs {
			if _, err := tx.Exec(`INSERT INTO to_device (stream_pos, user_id, device_id, sender, type, content)
				VALUES (?, ?, ?, ?, ?, ?)`, m.Pos, m.UserID, m.DeviceID, m.Sender, m.Type, string(m.Content)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: put to-device messages: %w", describe(err))
	}
	return fresh, nil
}

// ToDeviceSince returns a device's messages with after < pos ≤ upTo, oldest
// first.
func (s *Store) ToDeviceSince(userID, deviceID string, after, upTo int64) ([]ToDevice, error) {
	rows, err := s.DB.Query(`SELECT stream_pos, sender, type, content FROM to_device
		WHERE user_id = ? AND device_id = ? AND stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos`,
		userID, deviceID, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: to-device for %s/%s: %w", userID, deviceID, describe(err))
	}
	defer rows.Close()
	var out []ToDevice
	for rows.Next() {
		m := ToDevice{UserID: userID, DeviceID: deviceID}
		var content string
		if err := rows.Scan(&m.Pos, &m.Sender, &m.Type, &content); err != nil {
			return nil, fmt.Errorf("store: to-device for %s/%s: %w", userID, deviceID, err)
		}
		m.Content = []byte(content)
		out = append(out, m)
	}
	return out, rows.Err()
}

// AckToDevice deletes a device's messages at or before upTo: the device
// has synced past them.
func (s *Store) AckToDevice(userID, deviceID string, upTo int64) error {
	if _, err := s.DB.Exec(`DELETE FROM to_device WHERE user_id = ? AND device_id = ? AND stream_pos <= ?`,
		userID, deviceID, upTo); err != nil {
		return fmt.Errorf("store: ack to-device for %s/%s: %w", userID, deviceID, describe(err))
	}
	return nil
}

// PruneToDeviceTxns forgets handled transaction IDs recorded before ts.
func (s *Store) PruneToDeviceTxns(before int64) error {
	if _, err := s.DB.Exec(`DELETE FROM to_device_txns WHERE ts < ?`, before); err != nil {
		return fmt.Errorf("store: prune to-device transactions: %w", describe(err))
	}
	return nil
}
