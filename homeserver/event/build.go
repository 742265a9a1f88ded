package event

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
)

// Proto is an event not yet hashed or signed: what a server fills in before
// Build adds hashes and its signature (server-server-api.md "PDUs").
type Proto struct {
	RoomID   string // ignored for a room version 12 create event, which has none
	Sender   string
	Type     string
	StateKey *string // nil for a non-state event
	// Content must encode to a JSON object: map[string]any,
	// json.RawMessage, or anything MarshalCanonical accepts. nil means {}.
	Content        any
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
	// Redacts is the event an m.room.redaction redacts. Room version 10
	// carries it at the top level; from version 11 Build puts it in
	// content.redacts.
	Redacts  string
	Unsigned any // optional; neither hashed nor signed
}

// Build turns p into a signed PDU for room version v: it assembles the
// top-level keys (no room_id for a version 12 create event), adds the
// content hash under hashes.sha256, signs the redacted form as serverName's
// keyID, and parses the result.
func Build(p Proto, v *RoomVersion, serverName, keyID string, key ed25519.PrivateKey) (*Event, error) {
	if v == nil {
		return nil, fmt.Errorf("build event: no room version")
	}
	content := map[string]any{}
	if p.Content != nil {
		b, err := MarshalCanonical(p.Content)
		if err != nil {
			return nil, fmt.Errorf("build event: content: %w", err)
		}
		cv, err := ParseJSON(b)
		if err != nil {
			return nil, fmt.Errorf("build event: content: %w", err)
		}
		m, ok := cv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("build event: content is not a JSON object")
		}
		content = m
	}
	obj := map[string]any{
		"type":             p.Type,
		"sender":           p.Sender,
		"content":          content,
		"prev_events":      stringsToAny(p.PrevEvents),
		"auth_events":      stringsToAny(p.AuthEvents),
		"depth":            json.Number(fmt.Sprint(p.Depth)),
		"origin_server_ts": json.Number(fmt.Sprint(p.OriginServerTS)),
	}
	if p.StateKey != nil {
		obj["state_key"] = *p.StateKey
	}
	isCreate := p.Type == "m.room.create" && p.StateKey != nil && *p.StateKey == ""
	if !(v.RoomIDFromCreate && isCreate) {
		obj["room_id"] = p.RoomID
	}
	if p.Redacts != "" {
		if v.RedactsInContent {
			if old, present := content["redacts"]; present && old != p.Redacts {
				return nil, fmt.Errorf("build event: Redacts %q conflicts with content.redacts", p.Redacts)
			}
			content["redacts"] = p.Redacts
		} else {
			obj["redacts"] = p.Redacts
		}
	}
	if err := addContentHashValue(obj); err != nil {
		return nil, fmt.Errorf("build event: %w", err)
	}
	if err := signValue(redactValue(obj, v), obj, serverName, keyID, key); err != nil {
		return nil, fmt.Errorf("build event: sign: %w", err)
	}
	if p.Unsigned != nil {
		obj["unsigned"] = p.Unsigned
	}
	raw, err := MarshalCanonical(obj)
	if err != nil {
		return nil, fmt.Errorf("build event: %w", err)
	}
	e, err := Parse(raw, v)
	if err != nil {
		return nil, fmt.Errorf("build event: %w", err)
	}
	return e, nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
