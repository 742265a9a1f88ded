package keys

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Source gives a notary the signed key responses it knows for a server
// (cached, or fetched by the implementation). Cache is a Source.
type Source interface {
	Responses(server string) ([][]byte, error)
}

// Criteria is a notary query: server name → key ID → the time until which
// the keys must be valid to be useful (minimum_valid_until_ts; zero means
// "now"). An empty inner map asks for all keys of the server.
type Criteria map[string]map[string]time.Time

// ParseQueryRequest parses the body of POST /_matrix/key/v2/query
// (keys_query.yaml, bulkPerspectivesKeyQuery):
// {"server_keys": {"server": {"ed25519:k": {"minimum_valid_until_ts": ms}}}}.
func ParseQueryRequest(body []byte) (Criteria, error) {
	v, err := event.ParseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("parse key query: %w", err)
	}
	obj, _ := v.(map[string]any)
	sks, ok := obj["server_keys"].(map[string]any)
	if !ok {
		return nil, errors.New("parse key query: server_keys is missing or not an object")
	}
	c := Criteria{}
	for server, kv := range sks {
		km, ok := kv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parse key query: server_keys[%q] is not an object", server)
		}
		c[server] = map[string]time.Time{}
		for id, qv := range km {
			q, ok := qv.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("parse key query: server_keys[%q][%q] is not an object", server, id)
			}
			var minValid time.Time
			if _, present := q["minimum_valid_until_ts"]; present {
				if minValid, err = millis(q, "minimum_valid_until_ts"); err != nil {
					return nil, fmt.Errorf("parse key query: server_keys[%q][%q]: %w", server, id, err)
				}
			}
			c[server][id] = minValid
		}
	}
	return c, nil
}

// QueryResponse assembles a notary's answer to c at time now
// (keys_query.yaml): for each server, the responses from src whose
// valid_until_ts reaches the largest minimum_valid_until_ts asked for that
// server (now when none is given), each re-signed by the notary's keys. If
// no response reaches it, the freshest known one is returned, so the
// requester can still check events signed in the past; a server with no
// known response is left out. Responses that do not verify as the named
// server's are skipped. The result is canonical JSON
// {"server_keys": [...]}.
func QueryResponse(c Criteria, src Source, notary string, notaryKeys []SigningKey, now time.Time) ([]byte, error) {
	if notary == "" || len(notaryKeys) == 0 {
		return nil, errors.New("key query response: notary name and keys are required")
	}
	out := []any{}
	for _, server := range sortedKeys(c) {
		need := now
		for _, t := range c[server] {
			if t.After(need) {
				need = t
			}
		}
		raws, err := src.Responses(server)
		if err != nil {
			return nil, fmt.Errorf("key query response: %w", err)
		}
		var fresh []*ServerKeys
		var best *ServerKeys
		for _, raw := range raws {
			sk, err := Parse(raw, server)
			if err != nil {
				continue
			}
			if !sk.ValidUntil.Before(need) {
				fresh = append(fresh, sk)
			}
			if best == nil || sk.ValidUntil.After(best.ValidUntil) {
				best = sk
			}
		}
		if len(fresh) == 0 && best != nil {
			fresh = []*ServerKeys{best}
		}
		sort.Slice(fresh, func(i, j int) bool { return fresh[i].ValidUntil.Before(fresh[j].ValidUntil) })
		for _, sk := range fresh {
			signed := sk.Raw
			for _, k := range notaryKeys {
				if signed, err = event.SignJSON(signed, notary, k.ID, k.Key); err != nil {
					return nil, fmt.Errorf("key query response: %w", err)
				}
			}
			out = append(out, json.RawMessage(signed))
		}
	}
	body, err := event.MarshalCanonical(map[string]any{"server_keys": out})
	if err != nil {
		return nil, fmt.Errorf("key query response: %w", err)
	}
	return body, nil
}

// ParseQueryResponse checks a notary's answer: every entry must be signed
// by the notary with a key notaryKey returns (at time now) and be a valid
// response of the server it names (Parse). Entries for servers that were
// not asked about are errors. It returns the entries by server.
func ParseQueryResponse(body []byte, notary string, asked Criteria, notaryKey func(keyID string) (ed25519.PublicKey, bool)) (map[string][]*ServerKeys, error) {
	v, err := event.ParseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("parse key query response: %w: %w", ErrBadResponse, err)
	}
	obj, _ := v.(map[string]any)
	list, ok := obj["server_keys"].([]any)
	if !ok {
		return nil, fmt.Errorf("parse key query response: %w: server_keys is missing or not an array", ErrBadResponse)
	}
	out := map[string][]*ServerKeys{}
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parse key query response: %w: entry %d is not an object", ErrBadResponse, i)
		}
		server, _ := m["server_name"].(string)
		if _, ok := asked[server]; !ok {
			return nil, fmt.Errorf("parse key query response: %w: entry %d is for %q, which was not asked for", ErrBadResponse, i, server)
		}
		raw, err := event.MarshalCanonical(m)
		if err != nil {
			return nil, fmt.Errorf("parse key query response: %w: %w", ErrBadResponse, err)
		}
		sigs, _ := m["signatures"].(map[string]any)
		ns, _ := sigs[notary].(map[string]any)
		verified := false
		for _, id := range sortedKeys(ns) {
			pub, ok := notaryKey(id)
			if !ok {
				continue
			}
			if err := event.VerifyJSON(raw, notary, id, pub); err != nil {
				return nil, fmt.Errorf("parse key query response: %w: entry %d: notary signature: %w", ErrBadResponse, i, err)
			}
			verified = true
		}
		if !verified {
			return nil, fmt.Errorf("parse key query response: %w: entry %d has no signature by a known key of notary %s", ErrBadResponse, i, notary)
		}
		sk, err := Parse(raw, server)
		if err != nil {
			return nil, fmt.Errorf("parse key query response: entry %d: %w", i, err)
		}
		out[server] = append(out[server], sk)
	}
	return out, nil
}
