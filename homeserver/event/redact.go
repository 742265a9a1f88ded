package event

import "fmt"

// Top-level keys the redaction algorithm keeps. Spec: rooms/fragments
// v9-redactions.md (room version 10) and v11-redactions.md (11 and 12).
var (
	redactKeepTopV10 = keySet("event_id", "type", "room_id", "sender", "state_key",
		"content", "hashes", "signatures", "depth", "prev_events", "prev_state",
		"auth_events", "origin", "origin_server_ts", "membership")
	redactKeepTopV11 = keySet("event_id", "type", "room_id", "sender", "state_key",
		"content", "hashes", "signatures", "depth", "prev_events", "auth_events",
		"origin_server_ts")
)

// Content keys kept per event type. nil for a type means "all keys".
var (
	redactKeepContentV10 = map[string]map[string]bool{
		"m.room.member":             keySet("membership", "join_authorised_via_users_server"),
		"m.room.create":             keySet("creator"),
		"m.room.join_rules":         keySet("join_rule", "allow"),
		"m.room.power_levels":       keySet("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": keySet("history_visibility"),
	}
	redactKeepContentV11 = map[string]map[string]bool{
		"m.room.member":             keySet("membership", "join_authorised_via_users_server"),
		"m.room.create":             nil,
		"m.room.join_rules":         keySet("join_rule", "allow"),
		"m.room.power_levels":       keySet("ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default"),
		"m.room.history_visibility": keySet("history_visibility"),
		"m.room.redaction":          keySet("redacts"),
	}
)

func keySet(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Redact returns the canonical JSON of the event raw as the redaction
// algorithm of room version v leaves it. raw must be a JSON object; if its
// content is not an object, the redacted content is empty.
func Redact(raw []byte, v *RoomVersion) ([]byte, error) {
	if v == nil {
		return nil, fmt.Errorf("redact: no room version")
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("redact: %w", err)
	}
	out, err := MarshalCanonical(redactValue(obj, v))
	if err != nil {
		return nil, fmt.Errorf("redact: %w", err)
	}
	return out, nil
}

// redactValue applies the redaction algorithm to a parsed event without
// modifying it; the result shares unmodified sub-values with obj.
func redactValue(obj map[string]any, v *RoomVersion) map[string]any {
	keepTop := redactKeepTop(v)
	out := make(map[string]any, len(keepTop))
	for k, val := range obj {
		if keepTop[k] {
			out[k] = val
		}
	}
	newContent := redactContent(obj, v)
	if newContent == nil {
		newContent = map[string]any{}
	}
	out["content"] = newContent
	return out
}

// redactKeepTop is the set of top-level keys redaction keeps in room
// version v.
func redactKeepTop(v *RoomVersion) map[string]bool {
	if v.RedactionV11 {
		return redactKeepTopV11
	}
	return redactKeepTopV10
}

// redactContent returns the content redaction leaves of the event obj: a new
// map sharing values with obj, or nil when nothing is left.
func redactContent(obj map[string]any, v *RoomVersion) map[string]any {
	keepContent := redactKeepContentV10
	if v.RedactionV11 {
		keepContent = redactKeepContentV11
	}
	typ, _ := obj["type"].(string)
	content, _ := obj["content"].(map[string]any)
	keep, special := keepContent[typ]
	if !special || content == nil {
		return nil
	}
	newContent := map[string]any{}
	for k, val := range content {
		if keep == nil || keep[k] {
			newContent[k] = val
		}
	}
	// v11: m.room.member also keeps third_party_invite.signed.
	//
	// NOTSPEC (interop): the spec does not say what is left of a
	// third_party_invite object without "signed". Synapse (prune_event_dict)
	// keeps it as {}, Ruma drops the key; the two give different event IDs.
	// We follow Synapse, the server most rooms are shared with.
	if v.RedactionV11 && typ == "m.room.member" {
		if tpi, ok := content["third_party_invite"].(map[string]any); ok {
			kept := map[string]any{}
			if signed, ok := tpi["signed"]; ok {
				kept["signed"] = signed
			}
			newContent["third_party_invite"] = kept
		}
	}
	return newContent
}

// parseObject parses raw strictly and requires a JSON object.
func parseObject(raw []byte) (map[string]any, error) {
	val, err := ParseJSON(raw)
	if err != nil {
		return nil, err
	}
	obj, ok := val.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrBadJSON)
	}
	return obj, nil
}
