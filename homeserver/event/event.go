package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
)

// Event is one PDU: the exact bytes it arrived (or was built) with, plus the
// common fields parsed out of them. Re-serialising an Event always yields
// those bytes, so signatures and hashes keep verifying.
//
// An Event is immutable after Parse and safe for concurrent readers. Values
// derived from it can be stored on it with a Memo.
type Event struct {
	raw     []byte
	version *RoomVersion
	id      string
	f       pduFields
	memo    atomic.Pointer[memoEntry] // Memo values, see Memo.Get
}

// pduFields are the top-level PDU keys every room version 10–12 defines.
// Spec: server-server-api.md "PDUs" and rooms/v10.md … v12.md "Event format".
type pduFields struct {
	RoomID         string
	Sender         string
	Type           string
	StateKey       *string
	Content        json.RawMessage
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
	Redacts        *string
	// From content, read once at Parse: membership of m.room.member and,
	// from version 11, redacts of m.room.redaction ("" when absent or not a
	// string).
	Membership     string
	ContentRedacts string
	Hashes         map[string]string
	Signatures     map[string]map[string]string
	Unsigned       json.RawMessage
}

// ErrBadEvent is wrapped by every error Parse returns for a malformed PDU.
var ErrBadEvent = errors.New("event: malformed PDU")

// Size limits of client-server-api "Size limits", which
// server-server-api.md "Checks performed on receipt of a PDU" applies to
// every PDU.
const (
	// MaxPDUSize is the largest a PDU may be, in bytes of canonical JSON.
	MaxPDUSize = 65536
	// MaxIDSize caps sender, room_id, type and state_key, in bytes.
	MaxIDSize = 255

	// maxRawPDUSize bounds the input Parse will read at all.
	//
	// NOTSPEC: the spec limits the canonical form only. Canonical JSON of a
	// version 10–12 event is never longer than its input, so input beyond
	// this many bytes could only be whitespace padding; refusing it before
	// parsing keeps a hostile peer from making us parse megabytes.
	maxRawPDUSize = 4 * MaxPDUSize
)

// Parse checks raw with the strict canonical-JSON parser, reads the common
// fields and computes the event ID for room version v. raw is kept as given
// (it is copied); it need not be canonical, since hashes are computed over
// the canonical form.
//
// Parse enforces the field types and presence that the auth rules and state
// resolution rely on (server-server-api.md "PDUs", rooms/v10.md … v12.md
// "Event format"), so an *Event always has:
//   - type and sender: non-empty strings; room_id: a non-empty string,
//     except that a version 12 create event must not have one (RoomID
//     derives it);
//   - state_key, if present: a string (null is refused, so IsState is exact);
//   - content: an object; prev_events and auth_events: arrays of strings;
//   - depth (≥ 0) and origin_server_ts: integers;
//   - hashes, signatures, unsigned: objects of the right shape, if present;
//   - redacts, if present at the top level: a string; from version 11,
//     content.redacts of an m.room.redaction, if present: a string;
//   - sender, room_id, type and state_key of at most MaxIDSize bytes, and
//     at most MaxPDUSize bytes of canonical JSON in all;
//   - for versions 10–12, only integer numbers in ±(2^53−1) (CheckNoFloats).
//
// Keys match exactly (encoding/json would match them case-insensitively,
// letting "Type" stand in for "type"). Parse does not check the content
// hash or signatures: a hash mismatch calls for redaction, not rejection,
// so that is the caller's decision (CheckContentHash,
// VerifyEventSignature).
func Parse(raw []byte, v *RoomVersion) (*Event, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: no room version", ErrBadEvent)
	}
	if len(raw) > maxRawPDUSize {
		return nil, fmt.Errorf("%w: %d bytes of input, more than %d", ErrBadEvent, len(raw), maxRawPDUSize)
	}
	val, err := ParseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	obj, ok := val.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadEvent)
	}
	if v.NoFloats {
		if err := CheckNoFloats(obj); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
		}
	}
	e := &Event{raw: append([]byte(nil), raw...), version: v}
	if err := e.readFields(obj); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	if len(raw) > MaxPDUSize {
		// Whitespace may make raw longer than its canonical form.
		c, err := MarshalCanonical(obj)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
		}
		if len(c) > MaxPDUSize {
			return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadEvent, len(c), MaxPDUSize)
		}
	}
	h, err := referenceHashValue(obj, v, len(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: event ID: %w", ErrBadEvent, err)
	}
	e.id = eventIDFromHash(h)
	return e, nil
}

// readFields fills e.f from the parsed PDU, enforcing the rules listed on
// Parse.
func (e *Event) readFields(obj map[string]any) error {
	var err error
	str := func(key string, required bool) (string, bool) {
		val, present := obj[key]
		if !present {
			if required && err == nil {
				err = fmt.Errorf("missing %s", key)
			}
			return "", false
		}
		s, ok := val.(string)
		if !ok && err == nil {
			err = fmt.Errorf("%s must be a string", key)
		}
		if len(s) > MaxIDSize && key != "redacts" && err == nil {
			err = fmt.Errorf("%s is %d bytes, more than %d", key, len(s), MaxIDSize)
		}
		return s, ok
	}
	f := &e.f
	f.Type, _ = str("type", true)
	f.Sender, _ = str("sender", true)
	// Copies taken only when present keep the pointers from costing an
	// allocation on every event.
	if sk, ok := str("state_key", false); ok {
		p := sk
		f.StateKey = &p
	}
	if r, ok := str("redacts", false); ok {
		p := r
		f.Redacts = &p
	}
	if err != nil {
		return err
	}
	if f.Type == "" {
		return errors.New("empty type")
	}
	if f.Sender == "" {
		return errors.New("empty sender")
	}
	if e.version.RoomIDFromCreate && e.IsCreate() {
		if _, has := obj["room_id"]; has {
			return fmt.Errorf("room version %s create event must not have room_id", e.version.ID)
		}
	} else {
		f.RoomID, _ = str("room_id", true)
		if err != nil {
			return err
		}
		if f.RoomID == "" {
			return errors.New("empty room_id")
		}
	}

	content, ok := obj["content"].(map[string]any)
	if !ok {
		return errors.New("content must be an object")
	}
	if f.Content, err = MarshalCanonical(content); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	if e.version.RedactsInContent && f.Type == "m.room.redaction" {
		if r, present := content["redacts"]; present {
			s, ok := r.(string)
			if !ok {
				return errors.New("content.redacts must be a string")
			}
			f.ContentRedacts = s
		}
	}
	if f.Type == "m.room.member" {
		// A missing or non-string membership is the auth rules' to reject
		// (rule 5.1 / "the membership is unknown").
		f.Membership, _ = content["membership"].(string)
	}

	if f.PrevEvents, err = stringArray(obj, "prev_events"); err != nil {
		return err
	}
	if f.AuthEvents, err = stringArray(obj, "auth_events"); err != nil {
		return err
	}
	if f.Depth, err = integer(obj, "depth"); err != nil {
		return err
	}
	if f.Depth < 0 {
		return fmt.Errorf("depth %d is negative", f.Depth)
	}
	if f.OriginServerTS, err = integer(obj, "origin_server_ts"); err != nil {
		return err
	}

	if h, present := obj["hashes"]; present {
		hm, ok := h.(map[string]any)
		if !ok {
			return errors.New("hashes must be an object")
		}
		f.Hashes = make(map[string]string, len(hm))
		for alg, v := range hm {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("hashes.%s must be a string", alg)
			}
			f.Hashes[alg] = s
		}
	}
	if s, present := obj["signatures"]; present {
		sm, ok := s.(map[string]any)
		if !ok {
			return errors.New("signatures must be an object")
		}
		f.Signatures = make(map[string]map[string]string, len(sm))
		for server, v := range sm {
			km, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("signatures.%s must be an object", server)
			}
			keys := make(map[string]string, len(km))
			for kid, sig := range km {
				s, ok := sig.(string)
				if !ok {
					return fmt.Errorf("signatures.%s.%s must be a string", server, kid)
				}
				keys[kid] = s
			}
			f.Signatures[server] = keys
		}
	}
	if u, present := obj["unsigned"]; present {
		um, ok := u.(map[string]any)
		if !ok {
			return errors.New("unsigned must be an object")
		}
		if f.Unsigned, err = MarshalCanonical(um); err != nil {
			return fmt.Errorf("unsigned: %w", err)
		}
	}
	return nil
}

func stringArray(obj map[string]any, key string) ([]string, error) {
	val, present := obj[key]
	if !present {
		return nil, fmt.Errorf("missing %s", key)
	}
	arr, ok := val.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be an array", key)
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a string", key, i)
		}
		out[i] = s
	}
	return out, nil
}

func integer(obj map[string]any, key string) (int64, error) {
	val, present := obj[key]
	if !present {
		return 0, fmt.Errorf("missing %s", key)
	}
	n, ok := val.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s must be an integer", key)
	}
	i, err := canonicalInt(string(n))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return i, nil
}

// ID is the event ID ("$" + unpadded URL-safe base64 reference hash).
func (e *Event) ID() string { return e.id }

// JSON returns the exact bytes the event was parsed from. Callers must not
// modify the slice.
func (e *Event) JSON() []byte { return e.raw }

// Version is the room version the event was parsed under.
func (e *Event) Version() *RoomVersion { return e.version }

// RoomID is the room the event belongs to. For a room version 12 create
// event, which carries no room_id, it is derived from the event ID.
func (e *Event) RoomID() string {
	if e.f.RoomID == "" && e.version.RoomIDFromCreate && e.IsCreate() {
		return RoomIDFromCreateEventID(e.id)
	}
	return e.f.RoomID
}

// Sender is the user ID that sent the event.
func (e *Event) Sender() string { return e.f.Sender }

// Type is the event type, e.g. "m.room.member".
func (e *Event) Type() string { return e.f.Type }

// StateKey returns the state key and whether the event is a state event.
func (e *Event) StateKey() (string, bool) {
	if e.f.StateKey == nil {
		return "", false
	}
	return *e.f.StateKey, true
}

// IsState reports whether the event has a state_key.
func (e *Event) IsState() bool { return e.f.StateKey != nil }

// IsCreate reports whether this is the room's m.room.create event.
func (e *Event) IsCreate() bool {
	return e.f.Type == "m.room.create" && e.f.StateKey != nil && *e.f.StateKey == ""
}

// Content is the canonical JSON of the content object. Callers must not
// modify it.
func (e *Event) Content() json.RawMessage { return e.f.Content }

// PrevEvents are the IDs of the events this one follows in the room DAG.
func (e *Event) PrevEvents() []string { return e.f.PrevEvents }

// AuthEvents are the IDs of the events that authorise this one.
func (e *Event) AuthEvents() []string { return e.f.AuthEvents }

// Depth is the event's depth in the room DAG.
func (e *Event) Depth() int64 { return e.f.Depth }

// OriginServerTS is the sender's timestamp in milliseconds since the epoch.
func (e *Event) OriginServerTS() int64 { return e.f.OriginServerTS }

// Hashes are the event's hashes (the "sha256" content hash).
func (e *Event) Hashes() map[string]string { return e.f.Hashes }

// Signatures maps server name → key ID → unpadded base64 signature.
func (e *Event) Signatures() map[string]map[string]string { return e.f.Signatures }

// Unsigned is the canonical JSON of the "unsigned" object, or nil.
func (e *Event) Unsigned() json.RawMessage { return e.f.Unsigned }

// Redacts is the event ID an m.room.redaction event redacts: the top-level
// key in room version 10, the content key from version 11 on.
func (e *Event) Redacts() string {
	if e.f.Type != "m.room.redaction" {
		return ""
	}
	if e.version.RedactsInContent {
		return e.f.ContentRedacts
	}
	if e.f.Redacts != nil {
		return *e.f.Redacts
	}
	return ""
}

// Membership is content.membership for m.room.member events, "" otherwise.
func (e *Event) Membership() string {
	return e.f.Membership
}

// Redact returns the event as the redaction algorithm of its room version
// leaves it (canonical JSON, same event ID), e.g. to store after an
// m.room.redaction is applied or when the content hash does not match.
func (e *Event) Redact() (*Event, error) {
	red, err := Redact(e.raw, e.version)
	if err != nil {
		return nil, fmt.Errorf("redact %s: %w", e.id, err)
	}
	r, err := Parse(red, e.version)
	if err != nil {
		return nil, fmt.Errorf("redact %s: %w", e.id, err)
	}
	return r, nil
}

// ContentMap parses the content object afresh; the caller owns the result.
// Numbers are json.Number, as from ParseJSON.
func (e *Event) ContentMap() map[string]any {
	v, err := ParseJSON(e.f.Content)
	if err != nil {
		return map[string]any{} // unreachable: Parse stored canonical JSON of an object
	}
	m, _ := v.(map[string]any)
	return m
}

// String is a short description for logs.
func (e *Event) String() string {
	if sk, ok := e.StateKey(); ok {
		return fmt.Sprintf("%s (%s %q by %s)", e.id, e.f.Type, sk, e.f.Sender)
	}
	return fmt.Sprintf("%s (%s by %s)", e.id, e.f.Type, e.f.Sender)
}
