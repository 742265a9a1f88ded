package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Cross-signing key usages. Spec: client-server-api "Cross-signing".
const (
	UsageMaster      = "master"
	UsageSelfSigning = "self_signing"
	UsageUserSigning = "user_signing"
)

// CrossSigningKey is one of a local user's cross-signing keys.
type CrossSigningKey struct {
	Usage string // UsageMaster, UsageSelfSigning or UsageUserSigning
	KeyID string // "ed25519:" + the unpadded base64 public key
	JSON  []byte // the key object as uploaded, canonical JSON
}

// CrossSigningKeys returns a local user's cross-signing keys by usage
// (an empty map when there are none).
func (s *Store) CrossSigningKeys(userID string) (map[string]CrossSigningKey, error) {
	rows, err := s.DB.Query(`SELECT usage, key_id, json FROM cross_signing_keys WHERE user_id = ?`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: cross-signing keys %s: %w", userID, describe(err))
	}
	defer rows.Close()
	out := map[string]CrossSigningKey{}
	for rows.Next() {
		var k CrossSigningKey
		var js string
		if err := rows.Scan(&k.Usage, &k.KeyID, &js); err != nil {
			return nil, fmt.Errorf("store: cross-signing keys %s: %w", userID, describe(err))
		}
		k.JSON = []byte(js)
		out[k.Usage] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cross-signing keys %s: %w", userID, describe(err))
	}
	return out, nil
}

// PutCrossSigningKeys stores a local user's new cross-signing keys, all or
// none, replacing those of the same usages. Signatures made with a
// replaced key, and signatures of a replaced master key, are deleted: they
// no longer prove anything.
func (s *Store) PutCrossSigningKeys(userID string, keys []CrossSigningKey) error {
	err := s.Tx(func(tx *sql.Tx) error {
		for _, k := range keys {
			var old string
			err := tx.QueryRow(`SELECT key_id FROM cross_signing_keys WHERE user_id = ? AND usage = ?`, userID, k.Usage).Scan(&old)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return err
			case old != k.KeyID:
				if _, err := tx.Exec(`DELETE FROM cross_signing_sigs WHERE signer_id = ? AND signer_key = ?`, userID, old); err != nil {
					return err
				}
				if k.Usage == UsageMaster {
					if _, err := tx.Exec(`DELETE FROM cross_signing_sigs WHERE target_user = ? AND target_key = ?`,
						userID, strings.TrimPrefix(old, "ed25519:")); err != nil {
						return err
					}
				}
			}
			if _, err := tx.Exec(`INSERT INTO cross_signing_keys (user_id, usage, key_id, json) VALUES (?, ?, ?, ?)
				ON CONFLICT (user_id, usage) DO UPDATE SET key_id = excluded.key_id, json = excluded.json`,
				userID, k.Usage, k.KeyID, string(k.JSON)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put cross-signing keys %s: %w", userID, describe(err))
	}
	return nil
}

// CrossSigningSig is one uploaded signature: SignerID's key SignerKey
// ("ed25519:…") over TargetUser's key TargetKey (a device ID or a master
// public key), whose ed25519 public key was TargetPub when signed.
type CrossSigningSig struct {
	TargetUser, TargetKey, SignerID, SignerKey, TargetPub, Signature string
}

// PutCrossSigningSigs stores signatures, all or none, replacing earlier
// ones by the same signer key over the same target key.
func (s *Store) PutCrossSigningSigs(sigs []CrossSigningSig) error {
	err := s.Tx(func(tx *sql.Tx) error {
		for _, g := range sigs {
			if _, err := tx.Exec(`INSERT INTO cross_signing_sigs (target_user, target_key, signer_id, signer_key, target_pub, signature)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target_user, target_key, signer_id, signer_key)
				DO UPDATE SET target_pub = excluded.target_pub, signature = excluded.signature`,
				g.TargetUser, g.TargetKey, g.SignerID, g.SignerKey, g.TargetPub, g.Signature); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put cross-signing signatures: %w", describe(err))
	}
	return nil
}

// CrossSigningSigsOn returns the signatures over targetUser's keys made by
// targetUser or by viewer (viewer may be "" or targetUser), ordered by
// target key, signer and signer key.
func (s *Store) CrossSigningSigsOn(targetUser, viewer string) ([]CrossSigningSig, error) {
	rows, err := s.DB.Query(`SELECT target_key, signer_id, signer_key, target_pub, signature FROM cross_signing_sigs
		WHERE target_user = ? AND (signer_id = ? OR signer_id = ?) ORDER BY target_key, signer_id, signer_key`,
		targetUser, targetUser, viewer)
	if err != nil {
		return nil, fmt.Errorf("store: cross-signing signatures on %s: %w", targetUser, describe(err))
	}
	defer rows.Close()
	var out []CrossSigningSig
	for rows.Next() {
		g := CrossSigningSig{TargetUser: targetUser}
		if err := rows.Scan(&g.TargetKey, &g.SignerID, &g.SignerKey, &g.TargetPub, &g.Signature); err != nil {
			return nil, fmt.Errorf("store: cross-signing signatures on %s: %w", targetUser, describe(err))
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cross-signing signatures on %s: %w", targetUser, describe(err))
	}
	return out, nil
}

// KeysChanged records, at stream position pos, that a local user's
// cross-signing keys or signatures changed, so that device_lists.changed
// reports the user. Unlike DeviceListChanged it leaves the user's
// federation device list stream_id alone: cross-signing changes travel in
// m.signing_key_update, which has no stream_id.
func (s *Store) KeysChanged(userID string, pos int64) error {
	_, err := s.DB.Exec(`INSERT INTO device_lists (user_id, stream_pos, stream_id, remote_keys) VALUES (?, ?, 0, NULL)
		ON CONFLICT (user_id) DO UPDATE SET stream_pos = excluded.stream_pos`, userID, pos)
	if err != nil {
		return fmt.Errorf("store: keys changed %s: %w", userID, describe(err))
	}
	return nil
}

// RemoteCrossSigningKeys returns a remote user's cached master and
// self-signing keys (nil when the user has none), or ErrNotFound when
// there is no cache entry fresh together with the user's cached device
// keys (see RemoteDeviceKeys).
func (s *Store) RemoteCrossSigningKeys(userID string) (master, selfSigning []byte, err error) {
	var m, ss sql.NullString
	err = s.DB.QueryRow(`SELECT r.master, r.self_signing FROM remote_cross_signing r
		JOIN device_lists d ON d.user_id = r.user_id AND d.remote_keys IS NOT NULL AND d.fetched_pos = r.fetched_pos
		WHERE r.user_id = ?`, userID).Scan(&m, &ss)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("store: remote cross-signing keys %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: remote cross-signing keys %s: %w", userID, describe(err))
	}
	if m.Valid {
		master = []byte(m.String)
	}
	if ss.Valid {
		selfSigning = []byte(ss.String)
	}
	return master, selfSigning, nil
}

// PutRemoteCrossSigningKeys caches a remote user's master and self-signing
// keys (nil: none) fetched at stream position pos, the position their
// device keys were cached at with PutRemoteDeviceKeys.
func (s *Store) PutRemoteCrossSigningKeys(userID string, master, selfSigning []byte, pos int64) error {
	_, err := s.DB.Exec(`INSERT INTO remote_cross_signing (user_id, master, self_signing, fetched_pos) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET master = excluded.master, self_signing = excluded.self_signing,
		fetched_pos = excluded.fetched_pos`, userID, nullText(master), nullText(selfSigning), pos)
	if err != nil {
		return fmt.Errorf("store: cache remote cross-signing keys %s: %w", userID, describe(err))
	}
	return nil
}

// nullText is b as a TEXT value, NULL when b is nil.
func nullText(b []byte) sql.NullString {
	return sql.NullString{String: string(b), Valid: b != nil}
}
