package homeserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// session is what an access token stands for.
type session struct {
	UserID, DeviceID string
	Admin            bool
	seen             time.Time // last time last_seen_ts was written
}

// lastSeenInterval is how often a device's last_seen_ts/ip is written
// back: often enough for the device list, rarely enough to cost nothing.
const lastSeenInterval = 5 * time.Minute

// maxSessionCache bounds the in-memory token cache; past it the cache is
// emptied and refilled from the database on demand.
const maxSessionCache = 10000

// tokenHash is the form access tokens are stored in: SHA-256, lower-case hex.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// newToken returns an access token of 256 random bits from the node RNG,
// prefixed so that leaked tokens are recognisable ("mxm_").
func (n *Node) newToken() string {
	var b [32]byte
	_, _ = n.rng.Read(b[:]) // ChaCha8.Read never fails
	return "mxm_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// newDeviceID returns a random device ID of 10 upper-case letters.
func (n *Node) newDeviceID() string {
	var b [10]byte
	for i := range b {
		b[i] = 'A' + byte(n.rng.Uint64()%26)
	}
	return string(b[:])
}

// authenticate resolves the call's access token. Spec: client-server-api
// "Using access tokens": 401 M_MISSING_TOKEN without one, 401
// M_UNKNOWN_TOKEN (soft_logout false) for one that is not valid.
func (n *Node) authenticate(c *Call, mode AuthMode) error {
	tok := c.Req.AccessToken
	if tok == "" {
		if mode == AuthOptional {
			return nil
		}
		return Errorf(401, ErrCodeMissingToken, "missing access token")
	}
	s, ok := n.sessions[tok]
	if !ok {
		d, err := n.store.DeviceByToken(tokenHash(tok))
		if errors.Is(err, store.ErrNotFound) {
			return Errorf(401, ErrCodeUnknownToken, "unknown access token").With("soft_logout", false)
		}
		if err != nil {
			return err
		}
		a, err := n.store.Account(d.UserID)
		if err != nil {
			return err
		}
		if a.Deactivated {
			return Errorf(401, ErrCodeUnknownToken, "account deactivated").With("soft_logout", false)
		}
		s = session{UserID: d.UserID, DeviceID: d.DeviceID, Admin: a.Admin, seen: time.UnixMilli(d.LastSeenTS)}
		if len(n.sessions) >= maxSessionCache {
			clear(n.sessions)
		}
		n.sessions[tok] = s
	}
	if now := n.Now(); now.Sub(s.seen) >= lastSeenInterval {
		if err := n.store.TouchDevice(s.UserID, s.DeviceID, now.UnixMilli(), c.Req.RemoteIP); err != nil {
			n.log.Warn("recording device last seen", "err", err)
		}
		s.seen = now
		n.sessions[tok] = s
	}
	c.UserID, c.DeviceID, c.Admin, c.AccessToken = s.UserID, s.DeviceID, s.Admin, tok
	return nil
}

// forgetTokens drops revoked tokens (by hash) from the cache.
func (n *Node) forgetTokens(hashes []string) {
	if len(hashes) == 0 {
		return
	}
	revoked := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		revoked[h] = true
	}
	for tok := range n.sessions {
		if revoked[tokenHash(tok)] {
			delete(n.sessions, tok)
		}
	}
}
