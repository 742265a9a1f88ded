package keys

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrUnknownKey is wrapped by Cache lookups for a key the cache has never
// seen: the caller should fetch the server's keys and try again.
var ErrUnknownKey = errors.New("server key unknown")

// Record is what the cache knows about one key of one server.
type Record struct {
	Server string
	KeyID  string
	Key    ed25519.PublicKey
	// ValidUntil is, for a current key, the lesser of the server's
	// valid_until_ts and the fetch time + MaxValidity; for an old key, its
	// expired_ts.
	ValidUntil time.Time
	// Old is true once the server has listed the key in old_verify_keys:
	// it then verifies events only, never requests.
	Old bool
}

// Store is the storage behind a Cache. Implementations need not
// order or validate anything; Cache does. The SQLite implementation lives
// with the homeserver's store.
type Store interface {
	// Key returns the record for (server, keyID); ok is false if none.
	Key(server, keyID string) (r Record, ok bool, err error)
	// PutKey inserts or replaces the record for (r.Server, r.KeyID).
	PutKey(r Record) error
	// Response returns the last stored signed key response of server.
	Response(server string) (raw []byte, ok bool, err error)
	// PutResponse replaces the stored key response of server.
	PutResponse(server string, raw []byte) error
}

// Cache answers key lookups with the spec's validity rules over a Store.
// It is safe for concurrent use if its Store is.
type Cache struct {
	Store Store
}

// Add records the keys of a verified response fetched (directly or through
// a notary) at fetchedAt, and keeps the response for notary answers if it
// is valid for longer than the one stored. Rules per key: a key seen in
// old_verify_keys stays old (the earliest expired_ts wins), and a current
// key's validity never moves backwards because an older response arrives
// late.
func (c *Cache) Add(sk *ServerKeys, fetchedAt time.Time) error {
	until := sk.ValidUntilFor(fetchedAt)
	for _, id := range sortedKeys(sk.VerifyKeys) {
		prev, ok, err := c.Store.Key(sk.ServerName, id)
		if err != nil {
			return fmt.Errorf("key cache add %s %s: %w", sk.ServerName, id, err)
		}
		if ok && (prev.Old || !until.After(prev.ValidUntil)) {
			continue
		}
		if err := c.Store.PutKey(Record{Server: sk.ServerName, KeyID: id, Key: sk.VerifyKeys[id], ValidUntil: until}); err != nil {
			return fmt.Errorf("key cache add %s %s: %w", sk.ServerName, id, err)
		}
	}
	for _, id := range sortedKeys(sk.OldVerifyKeys) {
		old := sk.OldVerifyKeys[id]
		prev, ok, err := c.Store.Key(sk.ServerName, id)
		if err != nil {
			return fmt.Errorf("key cache add %s %s: %w", sk.ServerName, id, err)
		}
		if ok && prev.Old && !old.Expired.Before(prev.ValidUntil) {
			continue
		}
		if err := c.Store.PutKey(Record{Server: sk.ServerName, KeyID: id, Key: old.Key, ValidUntil: old.Expired, Old: true}); err != nil {
			return fmt.Errorf("key cache add %s %s: %w", sk.ServerName, id, err)
		}
	}
	prevRaw, ok, err := c.Store.Response(sk.ServerName)
	if err != nil {
		return fmt.Errorf("key cache add %s: %w", sk.ServerName, err)
	}
	if ok {
		if prev, err := Parse(prevRaw, sk.ServerName); err == nil && !sk.ValidUntil.After(prev.ValidUntil) {
			return nil
		}
	}
	if err := c.Store.PutResponse(sk.ServerName, sk.Raw); err != nil {
		return fmt.Errorf("key cache add %s: %w", sk.ServerName, err)
	}
	return nil
}

// RequestKey returns the key that may verify a federation request from
// server signed with keyID at time at: a current key whose validity has not
// ended. It has the shape of xmatrix.KeyLookup. Errors wrap ErrUnknownKey
// or ErrExpired; on either, a fetcher should refresh the server's keys.
func (c *Cache) RequestKey(server, keyID string, at time.Time) (ed25519.PublicKey, error) {
	r, err := c.record(server, keyID)
	if err != nil {
		return nil, err
	}
	if r.Old {
		return nil, fmt.Errorf("key %s of %s: %w: retired at %s, cannot sign requests", keyID, server, ErrExpired, r.ValidUntil.UTC().Format(time.RFC3339))
	}
	if at.After(r.ValidUntil) {
		return nil, fmt.Errorf("key %s of %s: %w: valid until %s", keyID, server, ErrExpired, r.ValidUntil.UTC().Format(time.RFC3339))
	}
	return r.Key, nil
}

// EventKey returns the key that may verify an event from server signed
// with keyID whose origin_server_ts is at (room versions 5 and later,
// rooms/v5 "Signing key validity period"): a current key valid at that
// time, or an old key that had not yet expired then.
func (c *Cache) EventKey(server, keyID string, at time.Time) (ed25519.PublicKey, error) {
	r, err := c.record(server, keyID)
	if err != nil {
		return nil, err
	}
	if at.After(r.ValidUntil) || (r.Old && !at.Before(r.ValidUntil)) {
		return nil, fmt.Errorf("key %s of %s: %w: valid until %s, event at %s", keyID, server, ErrExpired,
			r.ValidUntil.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
	return r.Key, nil
}

func (c *Cache) record(server, keyID string) (Record, error) {
	r, ok, err := c.Store.Key(server, keyID)
	if err != nil {
		return Record{}, fmt.Errorf("key %s of %s: %w", keyID, server, err)
	}
	if !ok {
		return Record{}, fmt.Errorf("key %s of %s: %w", keyID, server, ErrUnknownKey)
	}
	return r, nil
}

// Responses returns the stored signed response of server, making Cache a
// Source for QueryResponse.
func (c *Cache) Responses(server string) ([][]byte, error) {
	raw, ok, err := c.Store.Response(server)
	if err != nil {
		return nil, fmt.Errorf("key cache responses of %s: %w", server, err)
	}
	if !ok {
		return nil, nil
	}
	return [][]byte{raw}, nil
}

// MemoryStore is a Store in memory, safe for concurrent use; its zero
// value is ready.
type MemoryStore struct {
	mu        sync.Mutex
	keys      map[[2]string]Record
	responses map[string][]byte
}

// Key implements Store.
func (m *MemoryStore) Key(server, keyID string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.keys[[2]string{server, keyID}]
	return r, ok, nil
}

// PutKey implements Store.
func (m *MemoryStore) PutKey(r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[[2]string]Record{}
	}
	m.keys[[2]string{r.Server, r.KeyID}] = r
	return nil
}

// Response implements Store.
func (m *MemoryStore) Response(server string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	raw, ok := m.responses[server]
	return raw, ok, nil
}

// PutResponse implements Store.
func (m *MemoryStore) PutResponse(server string, raw []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.responses == nil {
		m.responses = map[string][]byte{}
	}
	m.responses[server] = raw
	return nil
}
