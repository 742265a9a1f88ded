package event

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrContentHash is wrapped by CheckContentHash when the hash is missing or
// does not match.
var ErrContentHash = errors.New("content hash mismatch")

// ContentHash is the SHA-256 of the canonical JSON of the event without its
// "unsigned", "signatures" and "hashes" keys. Spec: server-server-api.md
// "Calculating the content hash for an event".
func ContentHash(raw []byte) ([]byte, error) {
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("content hash: %w", err)
	}
	h, err := contentHashValue(obj)
	if err != nil {
		return nil, fmt.Errorf("content hash: %w", err)
	}
	return h, nil
}

func contentHashValue(obj map[string]any) ([]byte, error) {
	b, err := MarshalCanonical(without(obj, "unsigned", "signatures", "hashes"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// AddContentHash computes the content hash of raw, stores it as
// hashes.sha256 (unpadded base64; other hash algorithms are kept) and
// returns the event as canonical JSON. Spec: server-server-api.md "Adding
// hashes and signatures to outgoing events".
func AddContentHash(raw []byte) ([]byte, error) {
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("add content hash: %w", err)
	}
	if err := addContentHashValue(obj); err != nil {
		return nil, fmt.Errorf("add content hash: %w", err)
	}
	out, err := MarshalCanonical(obj)
	if err != nil {
		return nil, fmt.Errorf("add content hash: %w", err)
	}
	return out, nil
}

func addContentHashValue(obj map[string]any) error {
	h, err := contentHashValue(obj)
	if err != nil {
		return err
	}
	hashes := map[string]any{}
	if old, present := obj["hashes"]; present {
		om, ok := old.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: \"hashes\" is not an object", ErrBadJSON)
		}
		for k, v := range om {
			hashes[k] = v
		}
	}
	hashes["sha256"] = EncodeBase64(h)
	obj["hashes"] = hashes
	return nil
}

// CheckContentHash recomputes the content hash of raw and compares it with
// hashes.sha256. A mismatch means the event must be redacted before use
// (server-server-api.md "Checks performed on receipt of a PDU", step 5).
func CheckContentHash(raw []byte) error {
	obj, err := parseObject(raw)
	if err != nil {
		return fmt.Errorf("check content hash: %w", err)
	}
	return checkContentHashValue(obj)
}

func checkContentHashValue(obj map[string]any) error {
	hashes, _ := obj["hashes"].(map[string]any)
	want, _ := hashes["sha256"].(string)
	if want == "" {
		return fmt.Errorf("check content hash: %w: no hashes.sha256", ErrContentHash)
	}
	wantB, err := DecodeBase64(want)
	if err != nil {
		return fmt.Errorf("check content hash: %w: %w", ErrContentHash, err)
	}
	got, err := contentHashValue(obj)
	if err != nil {
		return fmt.Errorf("check content hash: %w", err)
	}
	if subtle.ConstantTimeCompare(got, wantB) != 1 {
		return fmt.Errorf("check content hash: %w: have %s, computed %s", ErrContentHash, want, EncodeBase64(got))
	}
	return nil
}

// ReferenceHash is the SHA-256 of the canonical JSON of the event after the
// room version's redaction algorithm, without "signatures", "unsigned" and
// "age_ts". Spec: server-server-api.md "Calculating the reference hash for
// an event".
func ReferenceHash(raw []byte, v *RoomVersion) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("reference hash: no room version")
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("reference hash: %w", err)
	}
	h, err := referenceHashValue(obj, v, len(raw))
	if err != nil {
		return nil, fmt.Errorf("reference hash: %w", err)
	}
	return h, nil
}

// rawLen, the length of the JSON obj was parsed from, sizes the buffer: for
// an event the canonical redacted form is never longer (see maxRawPDUSize).
func referenceHashValue(obj map[string]any, v *RoomVersion, rawLen int) ([]byte, error) {
	b, err := appendReferenceForm(make([]byte, 0, rawLen), obj, v)
	if err != nil {
		return nil, fmt.Errorf("marshal canonical JSON: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// appendReferenceForm appends what the reference hash covers,
// canonical(redact(obj) − signatures − unsigned − age_ts), writing the kept
// keys of obj directly instead of building the redacted copy. It gives
// MarshalCanonical of that copy byte for byte (TestReferenceForm).
func appendReferenceForm(buf []byte, obj map[string]any, v *RoomVersion) ([]byte, error) {
	keepTop := redactKeepTop(v)
	var stack [16]string
	keys := append(stack[:0], "content") // redaction always leaves a content object
	for k := range obj {
		if keepTop[k] && k != "content" && k != "signatures" && k != "unsigned" && k != "age_ts" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var content any = map[string]any(nil) // encodes as {}
	if c := redactContent(obj, v); c != nil {
		content = c
	}
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if buf, err = appendString(buf, k); err != nil {
			return nil, err
		}
		buf = append(buf, ':')
		val := content
		if k != "content" {
			val = obj[k]
		}
		if buf, err = appendCanonical(buf, val, 1); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// EventID is "$" followed by the unpadded URL-safe base64 of the reference
// hash (rooms/v4.md "Event IDs", unchanged through version 12).
func EventID(raw []byte, v *RoomVersion) (string, error) {
	h, err := ReferenceHash(raw, v)
	if err != nil {
		return "", fmt.Errorf("event ID: %w", err)
	}
	return eventIDFromHash(h), nil
}

// eventIDFromHash is "$" + EncodeBase64URL(hash), built in one allocation.
func eventIDFromHash(hash []byte) string {
	var buf [1 + 43]byte // a SHA-256 hash is 43 characters of unpadded base64
	n := 1 + base64.RawURLEncoding.EncodedLen(len(hash))
	b := buf[:0]
	if n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, '$')
	b = base64.RawURLEncoding.AppendEncode(b, hash)
	return string(b)
}

// RoomIDFromCreateEventID derives a room version 12 room ID from its create
// event's ID: the sigil "$" becomes "!" and the reference hash stays
// (rooms/v12.md "Room IDs"). It returns "" when eventID is not an event ID.
func RoomIDFromCreateEventID(eventID string) string {
	hash, ok := strings.CutPrefix(eventID, "$")
	if !ok || hash == "" {
		return ""
	}
	return "!" + hash
}

// without returns a shallow copy of obj lacking the given keys.
func without(obj map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
