package store

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// ServerKeys is the keys.Store of other servers' signing keys, in the
// server_keys and server_key_responses tables.
type ServerKeys struct{ s *Store }

// ServerKeys returns the store's keys.Store.
func (s *Store) ServerKeys() ServerKeys { return ServerKeys{s} }

var _ keys.Store = ServerKeys{}

// Key implements keys.Store.
func (k ServerKeys) Key(server, keyID string) (keys.Record, bool, error) {
	var pub string
	var until int64
	var old bool
	err := k.s.DB.QueryRow(`SELECT public_key, valid_until_ts, old FROM server_keys WHERE server_name = ? AND key_id = ?`,
		server, keyID).Scan(&pub, &until, &old)
	if errors.Is(err, sql.ErrNoRows) {
		return keys.Record{}, false, nil
	}
	if err != nil {
		return keys.Record{}, false, fmt.Errorf("store: server key %s %s: %w", server, keyID, describe(err))
	}
	b, err := event.DecodeBase64(pub)
	if err != nil {
		return keys.Record{}, false, fmt.Errorf("store: server key %s %s: %w", server, keyID, err)
	}
	return keys.Record{Server: server, KeyID: keyID, Key: b, ValidUntil: time.UnixMilli(until).UTC(), Old: old}, true, nil
}

// PutKey implements keys.Store.
func (k ServerKeys) PutKey(r keys.Record) error {
	_, err := k.s.DB.Exec(`DELETE FROM server_keys WHERE server_name = ? AND key_id = ?`, r.Server, r.KeyID)
	if err == nil {
		_, err = k.s.DB.Exec(`INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, old) VALUES (?, ?, ?, ?, ?)`,
			r.Server, r.KeyID, event.EncodeBase64(r.Key), r.ValidUntil.UnixMilli(), r.Old)
	}
	if err != nil {
		return fmt.Errorf("store: put server key %s %s: %w", r.Server, r.KeyID, describe(err))
	}
	return nil
}

// Response implements keys.Store.
func (k ServerKeys) Response(server string) ([]byte, bool, error) {
	var raw string
	err := k.s.DB.QueryRow(`SELECT json FROM server_key_responses WHERE server_name = ?`, server).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: server key response %s: %w", server, describe(err))
	}
	return []byte(raw), true, nil
}

// PutResponse implements keys.Store.
func (k ServerKeys) PutResponse(server string, raw []byte) error {
	_, err := k.s.DB.Exec(`DELETE FROM server_key_responses WHERE server_name = ?`, server)
	if err == nil {
		_, err = k.s.DB.Exec(`INSERT INTO server_key_responses (server_name, json) VALUES (?, ?)`, server, string(raw))
	}
	if err != nil {
		return fmt.Errorf("store: put server key response %s: %w", server, describe(err))
	}
	return nil
}
