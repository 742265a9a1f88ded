package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// object decodes a JSON object into its raw members. A null or absent
// content decodes as an empty object.
func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]json.RawMessage{}, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// str decodes a JSON string member; ok is false when raw is absent or not a
// string.
func str(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// integer decodes a JSON integer literal (no fraction, no exponent, no
// string form). Room versions 10–12 only allow integers in power levels.
// Spec: rooms/v10.md "Values in m.room.power_levels events must be integers".
func integer(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	for i, c := range raw {
		if (c < '0' || c > '9') && !(i == 0 && c == '-') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// intMap decodes an object whose values are all integers.
func intMap(raw json.RawMessage) (map[string]int64, error) {
	m, err := object(raw)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, ok := integer(v)
		if !ok {
			return nil, fmt.Errorf("value of %q is not an integer", k)
		}
		out[k] = n
	}
	return out, nil
}
