package event

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
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
	h, err := referenceHashValue(obj, v)
	if err != nil {
		return nil, fmt.Errorf("reference hash: %w", err)
	}
	return h, nil
}

func referenceHashValue(obj map[string]any, v *RoomVersion) ([]byte, error) {
	red := redactValue(obj, v)
	delete(red, "signatures")
	delete(red, "unsigned")
	delete(red, "age_ts")
	b, err := MarshalCanonical(red)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// EventID is "$" followed by the unpadded URL-safe base64 of the reference
// hash (rooms/v4.md "Event IDs", unchanged through version 12).
func EventID(raw []byte, v *RoomVersion) (string, error) {
	h, err := ReferenceHash(raw, v)
	if err != nil {
		return "", fmt.Errorf("event ID: %w", err)
	}
	return "$" + EncodeBase64URL(h), nil
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
