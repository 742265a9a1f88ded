package event

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Event is one PDU: the exact bytes it arrived (or was built) with, plus the
// common fields parsed out of them. Re-serialising an Event always yields
// those bytes, so signatures and hashes keep verifying.
//
// An Event is immutable after Parse and safe for concurrent readers.
type Event struct {
	raw     []byte
	version *RoomVersion
	id      string
	f       pduFields
}

// pduFields are the top-level PDU keys every room version 10–12 defines.
// Spec: server-server-api.md "PDUs" and rooms/v10.md … v12.md "Event format".
type pduFields struct {
	RoomID         string                       `json:"room_id"`
	Sender         string                       `json:"sender"`
	Type           string                       `json:"type"`
	StateKey       *string                      `json:"state_key"`
	Content        json.RawMessage              `json:"content"`
	PrevEvents     []string                     `json:"prev_events"`
	AuthEvents     []string                     `json:"auth_events"`
	Depth          int64                        `json:"depth"`
	OriginServerTS int64                        `json:"origin_server_ts"`
	Redacts        *string                      `json:"redacts"`
	Hashes         map[string]string            `json:"hashes"`
	Signatures     map[string]map[string]string `json:"signatures"`
	Unsigned       json.RawMessage              `json:"unsigned"`
}

// ErrBadEvent is wrapped by every error Parse returns for a malformed PDU.
var ErrBadEvent = errors.New("event: malformed PDU")

// Parse checks raw with the strict canonical-JSON parser, reads the common
// fields and computes the event ID for room version v. raw is kept as given
// (it is copied); it need not be canonical, since hashes are computed over the
// canonical form.
func Parse(raw []byte, v *RoomVersion) (*Event, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: no room version", ErrBadEvent)
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
	if err := json.Unmarshal(raw, &e.f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	if err := e.checkShape(obj); err != nil {
		return nil, err
	}
	id, err := EventID(raw, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	e.id = id
	return e, nil
}

// checkShape enforces the field types and presence the auth rules rely on.
func (e *Event) checkShape(obj map[string]any) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadEvent, fmt.Sprintf(format, args...))
	}
	if e.f.Type == "" {
		return bad("missing type")
	}
	if e.f.Sender == "" {
		return bad("missing sender")
	}
	if _, ok := obj["content"].(map[string]any); !ok {
		return bad("content must be an object")
	}
	isCreate := e.f.Type == "m.room.create" && e.f.StateKey != nil && *e.f.StateKey == ""
	if e.version.RoomIDFromCreate && isCreate {
		if _, has := obj["room_id"]; has {
			return bad("room version %s create event must not have room_id", e.version.ID)
		}
	} else if e.f.RoomID == "" {
		return bad("missing room_id")
	}
	if _, ok := obj["prev_events"].([]any); !ok {
		return bad("prev_events must be an array")
	}
	if _, ok := obj["auth_events"].([]any); !ok {
		return bad("auth_events must be an array")
	}
	if _, ok := obj["depth"]; !ok {
		return bad("missing depth")
	}
	return nil
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

// Content is the raw JSON of the content object. Callers must not modify it.
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

// Unsigned is the raw "unsigned" object, or nil.
func (e *Event) Unsigned() json.RawMessage { return e.f.Unsigned }

// Redacts is the event ID an m.room.redaction event redacts: the top-level
// key in room version 10, the content key from version 11 on.
func (e *Event) Redacts() string {
	if e.f.Type != "m.room.redaction" {
		return ""
	}
	if e.version.RedactsInContent {
		var c struct {
			Redacts string `json:"redacts"`
		}
		if json.Unmarshal(e.f.Content, &c) == nil && c.Redacts != "" {
			return c.Redacts
		}
		return ""
	}
	if e.f.Redacts != nil {
		return *e.f.Redacts
	}
	return ""
}

// Membership is content.membership for m.room.member events, "" otherwise.
func (e *Event) Membership() string {
	if e.f.Type != "m.room.member" {
		return ""
	}
	var c struct {
		Membership string `json:"membership"`
	}
	if json.Unmarshal(e.f.Content, &c) != nil {
		return ""
	}
	return c.Membership
}

// String is a short description for logs.
func (e *Event) String() string {
	if sk, ok := e.StateKey(); ok {
		return fmt.Sprintf("%s (%s %q by %s)", e.id, e.f.Type, sk, e.f.Sender)
	}
	return fmt.Sprintf("%s (%s by %s)", e.id, e.f.Type, e.f.Sender)
}
