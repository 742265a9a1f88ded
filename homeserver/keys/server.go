package keys

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/noise"
)

// NoiseKeyField is the top-level field of our key response that carries
// the Noise static public key.
//
// NOTSPEC: an mxmesh extension in our own namespace (DESIGN.md "Identity
// and discovery"); other servers ignore unknown fields.
const NoiseKeyField = "net.mxmesh.noise_key"

// NoiseKeySize is the size of an X25519 public key (RFC 7748 §5).
const NoiseKeySize = 32

// DefaultValidity is how long our published keys are valid when Own leaves
// Validity zero: one day, so peers refresh daily.
const DefaultValidity = 24 * time.Hour

// MaxValidity caps how far ahead a receiver trusts valid_until_ts: "Servers
// MUST use the lesser of this field and 7 days into the future"
// (definitions/keys.yaml, valid_until_ts).
const MaxValidity = 7 * 24 * time.Hour

// ErrBadResponse is wrapped by errors for a key response that is malformed,
// names another server, or carries a signature that does not verify.
var ErrBadResponse = errors.New("bad server key response")

// ErrExpired is wrapped by errors for keys whose validity ended before the
// time asked about.
var ErrExpired = errors.New("server key expired")

// OldKey is a key a server no longer uses, published in old_verify_keys.
type OldKey struct {
	Key ed25519.PublicKey
	// Expired is when the server stopped using the key (expired_ts).
	Expired time.Time
}

// Own describes the key response a server publishes about itself.
type Own struct {
	ServerName string
	// Keys are the current signing keys: each is listed in verify_keys and
	// signs the response. At least one is required.
	Keys []SigningKey
	// Old are retired keys by key ID.
	Old map[string]OldKey
	// NoiseKey is the Noise static public key (32 B); nil leaves the
	// NoiseKeyField out.
	NoiseKey []byte
	// Validity is how long after now the response is valid;
	// DefaultValidity when zero.
	Validity time.Duration
}

// ServerResponse builds and signs the /_matrix/key/v2/server response for
// o at time now, as canonical JSON (spec: "Publishing Keys").
func ServerResponse(o Own, now time.Time) ([]byte, error) {
	if o.ServerName == "" {
		return nil, errors.New("server key response: empty server name")
	}
	if len(o.Keys) == 0 {
		return nil, errors.New("server key response: no signing keys")
	}
	validity := o.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	verify := map[string]any{}
	for _, k := range o.Keys {
		if err := checkKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("server key response: %w", err)
		}
		if len(k.Key) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("server key response: key %s is %d bytes, want %d", k.ID, len(k.Key), ed25519.PrivateKeySize)
		}
		verify[k.ID] = map[string]any{"key": event.EncodeBase64(k.Key.Public().(ed25519.PublicKey))}
	}
	old := map[string]any{}
	for id, k := range o.Old {
		if err := checkKeyID(id); err != nil {
			return nil, fmt.Errorf("server key response: old key: %w", err)
		}
		if _, dup := verify[id]; dup {
			return nil, fmt.Errorf("server key response: key %s is both current and old", id)
		}
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("server key response: old key %s is %d bytes, want %d", id, len(k.Key), ed25519.PublicKeySize)
		}
		old[id] = map[string]any{"key": event.EncodeBase64(k.Key), "expired_ts": k.Expired.UnixMilli()}
	}
	obj := map[string]any{
		"server_name":     o.ServerName,
		"valid_until_ts":  now.Add(validity).UnixMilli(),
		"verify_keys":     verify,
		"old_verify_keys": old,
	}
	if o.NoiseKey != nil {
		if len(o.NoiseKey) != NoiseKeySize {
			return nil, fmt.Errorf("server key response: Noise key is %d bytes, want %d", len(o.NoiseKey), NoiseKeySize)
		}
		sigs := map[string]any{}
		for _, k := range o.Keys {
			sigs[k.ID] = event.EncodeBase64(noise.SignBinding(o.ServerName, o.NoiseKey, k.Key))
		}
		obj[NoiseKeyField] = map[string]any{"key": event.EncodeBase64(o.NoiseKey), "signatures": sigs}
	}
	out, err := event.MarshalCanonical(obj)
	if err != nil {
		return nil, fmt.Errorf("server key response: %w", err)
	}
	for _, k := range o.Keys {
		if out, err = event.SignJSON(out, o.ServerName, k.ID, k.Key); err != nil {
			return nil, fmt.Errorf("server key response: %w", err)
		}
	}
	return out, nil
}

// ServerKeys is a verified key response.
type ServerKeys struct {
	ServerName string
	// ValidUntil is valid_until_ts as published (not capped; see
	// ValidUntilFor).
	ValidUntil    time.Time
	VerifyKeys    map[string]ed25519.PublicKey
	OldVerifyKeys map[string]OldKey
	// NoiseKey is the Noise static public key from NoiseKeyField, nil when
	// the response has none.
	NoiseKey []byte
	// Raw is the response as received (re-encoded as canonical JSON), kept
	// for notary answers.
	Raw []byte
}

// ValidUntilFor is the end of the keys' validity for a receiver that
// fetched them at fetchedAt: the lesser of valid_until_ts and fetchedAt +
// MaxValidity.
func (k *ServerKeys) ValidUntilFor(fetchedAt time.Time) time.Time {
	if limit := fetchedAt.Add(MaxValidity); limit.Before(k.ValidUntil) {
		return limit
	}
	return k.ValidUntil
}

// CheckFresh returns an error wrapping ErrExpired if the response's
// valid_until_ts is not after now; a directly fetched response must be
// fresh to be useful for requests.
func (k *ServerKeys) CheckFresh(now time.Time) error {
	if !k.ValidUntil.After(now) {
		return fmt.Errorf("server keys of %s: %w: valid_until_ts %s is not after %s",
			k.ServerName, ErrExpired, k.ValidUntil.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Parse checks a key response: it must be a JSON object for serverName,
// carry valid_until_ts, list at least one ed25519 verify key, and be
// signed by every listed verify key; a NoiseKeyField, if present, must be
// bound by every signature it lists, made by current keys, and by at least
// one. Keys of other algorithms are ignored. It does not look at time;
// see Verify. Errors wrap ErrBadResponse.
func Parse(raw []byte, serverName string) (*ServerKeys, error) {
	v, err := event.ParseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadResponse)
	}
	name, _ := obj["server_name"].(string)
	if name != serverName {
		return nil, fmt.Errorf("%w: server_name %q, want %q", ErrBadResponse, name, serverName)
	}
	until, err := millis(obj, "valid_until_ts")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	canon, err := event.MarshalCanonical(obj)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	sk := &ServerKeys{
		ServerName:    name,
		ValidUntil:    until,
		VerifyKeys:    map[string]ed25519.PublicKey{},
		OldVerifyKeys: map[string]OldKey{},
		Raw:           canon,
	}
	vks, ok := obj["verify_keys"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: verify_keys is missing or not an object", ErrBadResponse)
	}
	for id, e := range vks {
		if !strings.HasPrefix(id, "ed25519:") {
			continue
		}
		pub, err := keyField(id, e)
		if err != nil {
			return nil, fmt.Errorf("%w: verify_keys: %w", ErrBadResponse, err)
		}
		if err := event.VerifyJSON(canon, name, id, pub); err != nil {
			return nil, fmt.Errorf("%w: not signed by its key %s: %w", ErrBadResponse, id, err)
		}
		sk.VerifyKeys[id] = pub
	}
	if len(sk.VerifyKeys) == 0 {
		return nil, fmt.Errorf("%w: no ed25519 verify keys", ErrBadResponse)
	}
	if o, present := obj["old_verify_keys"]; present {
		oks, ok := o.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: old_verify_keys is not an object", ErrBadResponse)
		}
		for id, e := range oks {
			if !strings.HasPrefix(id, "ed25519:") {
				continue
			}
			pub, err := keyField(id, e)
			if err != nil {
				return nil, fmt.Errorf("%w: old_verify_keys: %w", ErrBadResponse, err)
			}
			exp, err := millis(e.(map[string]any), "expired_ts")
			if err != nil {
				return nil, fmt.Errorf("%w: old_verify_keys %s: %w", ErrBadResponse, id, err)
			}
			sk.OldVerifyKeys[id] = OldKey{Key: pub, Expired: exp}
		}
	}
	if nk, present := obj[NoiseKeyField]; present {
		if sk.NoiseKey, err = parseNoiseKey(nk, name, sk.VerifyKeys); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadResponse, NoiseKeyField, err)
		}
	}
	return sk, nil
}

// Verify is Parse followed by CheckFresh: the checks for a response
// fetched directly from serverName at time now.
func Verify(raw []byte, serverName string, now time.Time) (*ServerKeys, error) {
	sk, err := Parse(raw, serverName)
	if err != nil {
		return nil, fmt.Errorf("verify server keys: %w", err)
	}
	if err := sk.CheckFresh(now); err != nil {
		return nil, fmt.Errorf("verify server keys: %w", err)
	}
	return sk, nil
}

func parseNoiseKey(v any, serverName string, current map[string]ed25519.PublicKey) ([]byte, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	s, _ := m["key"].(string)
	key, err := event.DecodeBase64(s)
	if err != nil || len(key) != NoiseKeySize {
		return nil, fmt.Errorf("key is not %d bytes of base64", NoiseKeySize)
	}
	sigs, ok := m["signatures"].(map[string]any)
	if !ok || len(sigs) == 0 {
		return nil, errors.New("no binding signatures")
	}
	for id, sv := range sigs {
		pub, ok := current[id]
		if !ok {
			return nil, fmt.Errorf("binding signed by %s, which is not a current verify key", id)
		}
		str, _ := sv.(string)
		sig, err := event.DecodeBase64(str)
		if err != nil || !noise.VerifyBinding(serverName, key, pub, sig) {
			return nil, fmt.Errorf("binding signature by %s does not verify", id)
		}
	}
	return key, nil
}

// keyField reads {"key": "<base64>"} for key ID id.
func keyField(id string, v any) (ed25519.PublicKey, error) {
	if err := checkKeyID(id); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", id)
	}
	s, _ := m["key"].(string)
	b, err := event.DecodeBase64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s: key is not %d bytes of base64", id, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// millis reads a non-negative integer millisecond timestamp field.
func millis(m map[string]any, field string) (time.Time, error) {
	n, ok := m[field].(json.Number)
	if !ok {
		return time.Time{}, fmt.Errorf("%s is missing or not a number", field)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i < 0 || i > event.MaxSafeInteger {
		return time.Time{}, fmt.Errorf("%s %s is not a timestamp in milliseconds", field, n)
	}
	return time.UnixMilli(i).UTC(), nil
}

// checkKeyID requires "ed25519:" and a version of [a-zA-Z0-9_]
// (definitions/keys.yaml, verify_keys).
func checkKeyID(id string) error {
	version, ok := strings.CutPrefix(id, "ed25519:")
	if !ok || version == "" {
		return fmt.Errorf("key ID %q is not ed25519:VERSION", id)
	}
	for _, c := range version {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("key ID %q: version has %q, want [a-zA-Z0-9_]", id, c)
		}
	}
	return nil
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
