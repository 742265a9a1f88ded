package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth is the deepest nesting of objects and arrays ParseJSON
// accepts.
//
// NOTSPEC: the spec sets no limit; this one bounds the parser's recursion.
// Real events nest a handful of levels.
const MaxJSONDepth = 128

// MaxSafeInteger is the largest magnitude a number may have in canonical
// JSON: 2^53−1. Spec: appendices.md "Canonical JSON".
const MaxSafeInteger = 1<<53 - 1

// ErrBadJSON is wrapped by every error ParseJSON, CanonicalJSON,
// MarshalCanonical and CheckNoFloats return for input they refuse.
var ErrBadJSON = errors.New("invalid JSON")

// ParseJSON parses one JSON value strictly (RFC 8259 grammar, plus the
// Matrix requirements of appendices.md "Canonical JSON"): objects become
// map[string]any, arrays []any, numbers json.Number, and strings, booleans
// and null the usual Go values. It rejects duplicate object keys (compared
// after unescaping), invalid UTF-8, escaped lone surrogates, unescaped
// control characters, nesting deeper than MaxJSONDepth, and anything but
// whitespace after the value. Numbers are checked for JSON syntax only; use
// CheckNoFloats for the integer rules.
func ParseJSON(b []byte) (any, error) {
	p := parser{b: b}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	p.skipSpace()
	if p.i != len(p.b) {
		return nil, fmt.Errorf("parse JSON: %w: trailing data at offset %d", ErrBadJSON, p.i)
	}
	return v, nil
}

type parser struct {
	b []byte
	i int
	// elems holds the elements of the arrays being parsed, innermost last,
	// so that each array is allocated once at its final length.
	elems []any
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrBadJSON, fmt.Sprintf(format, args...), p.i)
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= MaxJSONDepth {
			return nil, p.errorf("nesting deeper than %d", MaxJSONDepth)
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= MaxJSONDepth {
			return nil, p.errorf("nesting deeper than %d", MaxJSONDepth)
		}
		return p.array(depth + 1)
	case c == '"':
		if v, ok := p.common(); ok {
			return v, nil
		}
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *parser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.errorf("invalid literal, want %s", lit)
	}
	p.i += len(lit)
	return nil
}

func (p *parser) object(depth int) (any, error) {
	p.i++ // '{'
	m := map[string]any{}
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	var err error
	for {
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.errorf("expected string key")
		}
		start := p.i
		var k string
		if v, ok := p.common(); ok {
			k = v.(string)
		} else if k, err = p.str(); err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			p.i = start
			return nil, p.errorf("duplicate key %q", k)
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.errorf("expected ':' after key")
		}
		p.i++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.skipSpace()
		if p.i >= len(p.b) {
			return nil, p.errorf("unterminated object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
}

func (p *parser) array(depth int) (any, error) {
	p.i++ // '['
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return []any{}, nil
	}
	if p.elems == nil {
		p.elems = make([]any, 0, 16)
	}
	base := len(p.elems)
	for {
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		p.skipSpace()
		if p.i >= len(p.b) {
			return nil, p.errorf("unterminated array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			a := make([]any, len(p.elems)-base)
			copy(a, p.elems[base:])
			clear(p.elems[base:])
			p.elems = p.elems[:base]
			return a, nil
		default:
			return nil, p.errorf("expected ',' or ']' in array")
		}
	}
}

// number scans an RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() (any, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
		if p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			return nil, p.errorf("number with leading zero")
		}
	} else if digits() == 0 {
		return nil, p.errorf("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("invalid number: no digits after '.'")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number: no digits in exponent")
		}
	}
	return json.Number(p.b[start:p.i]), nil
}

// commonStrings are the strings events are made of: the PDU keys, the keys
// and enumerated values of the event types the server reads, boxed once so
// that parsing them allocates nothing. Only their exact, escape-free
// spelling is looked up; every entry is valid UTF-8 without control
// characters, so returning one is what str would return.
var commonStrings = func() map[string]any {
	m := map[string]any{}
	for _, s := range []string{
		// PDU keys (server-server-api.md "PDUs") and their sub-keys.
		"auth_events", "content", "depth", "event_id", "hashes", "membership",
		"origin", "origin_server_ts", "prev_events", "prev_state", "redacts",
		"room_id", "sender", "signatures", "state_key", "type", "unsigned",
		"age", "age_ts", "sha256", "prev_content", "replaces_state",
		// Event types.
		"m.room.create", "m.room.member", "m.room.join_rules",
		"m.room.power_levels", "m.room.third_party_invite", "m.room.redaction",
		"m.room.message", "m.room.topic", "m.room.name", "m.room.avatar",
		"m.room.history_visibility", "m.room.guest_access", "m.room.encryption",
		"m.room.encrypted", "m.room.canonical_alias", "m.room.server_acl",
		"m.room.pinned_events", "m.room.tombstone", "m.reaction",
		// Content keys and values of those types.
		"room_version", "creator", "additional_creators", "m.federate",
		"predecessor", "join", "invite", "leave", "ban", "knock",
		"displayname", "avatar_url", "reason", "is_direct",
		"join_authorised_via_users_server", "third_party_invite", "signed",
		"mxid", "token", "public_key", "public_keys", "key_validity_url",
		"join_rule", "allow", "public", "restricted", "knock_restricted",
		"users", "users_default", "events", "events_default",
		"state_default", "kick", "redact", "notifications",
		"history_visibility", "shared", "joined", "world_readable",
		"body", "msgtype", "format", "formatted_body", "m.mentions",
		"m.relates_to", "rel_type", "m.text", "m.notice", "m.emote",
		"org.matrix.custom.html", "topic", "name", "url", "algorithm",
	} {
		m[s] = s
	}
	return m
}()

// maxCommonString is the length of the longest commonString; longer
// strings are not looked up.
const maxCommonString = len("join_authorised_via_users_server")

// common returns the boxed commonStrings entry for the string at p.i
// ('"'), advancing past it, if the string is one of them spelled without
// escapes; otherwise it leaves p.i alone.
func (p *parser) common() (any, bool) {
	start := p.i + 1
	end := start
	for end < len(p.b) && end-start <= maxCommonString {
		switch p.b[end] {
		case '"':
			v, ok := commonStrings[string(p.b[start:end])]
			if ok {
				p.i = end + 1
			}
			return v, ok
		case '\\':
			return nil, false
		}
		end++
	}
	return nil, false
}

func (p *parser) str() (string, error) {
	p.i++ // opening quote
	// Fast path: no escapes.
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			if !utf8.Valid(s) {
				return "", p.badUTF8(start)
			}
			p.i++
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.errorf("unescaped control character 0x%02x in string", c)
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				return "", p.badUTF8(start)
			}
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("unescaped control character 0x%02x in string", c)
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 {
					return "", p.errorf("lone low surrogate \\u%04x", r)
				}
				if p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return "", p.errorf("lone high surrogate \\u%04x", r)
				}
				p.i += 2
				r2, ok := p.hex4()
				if !ok {
					return "", p.errorf("invalid \\u escape")
				}
				if r2 < 0xdc00 || r2 > 0xdfff {
					return "", p.errorf("high surrogate \\u%04x not followed by a low surrogate", r)
				}
				r = utf16.DecodeRune(r, r2)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.i--
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

func (p *parser) badUTF8(start int) error {
	off := start
	for off < len(p.b) {
		r, n := utf8.DecodeRune(p.b[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	p.i = off
	return p.errorf("invalid UTF-8 in string")
}

// CanonicalJSON re-encodes the JSON value in b as canonical JSON
// (appendices.md "Canonical JSON"): no insignificant whitespace, object keys
// sorted by Unicode code point, strings as UTF-8 with only the escapes the
// grammar allows, numbers as integers in ±(2^53−1). b is parsed with
// ParseJSON. Numbers written with a fraction or exponent are accepted when
// their value is an integer and emitted in plain form (the appendix's
// example turns 1e10 into 10000000000 and -0 into 0); non-integers and
// out-of-range integers are errors.
func CanonicalJSON(b []byte) ([]byte, error) {
	v, err := ParseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	out, err := appendCanonical(make([]byte, 0, len(b)), v, 0)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return out, nil
}

// MarshalCanonical encodes an in-memory value as canonical JSON. It accepts
// what ParseJSON produces (map[string]any, []any, string, bool, nil,
// json.Number), Go integers, integral float64s, json.RawMessage (parsed
// strictly), map[string]string, []string and
// map[string]map[string]string; any other type goes through encoding/json
// first.
func MarshalCanonical(v any) ([]byte, error) {
	out, err := appendCanonical(make([]byte, 0, 512), v, 0)
	if err != nil {
		return nil, fmt.Errorf("marshal canonical JSON: %w", err)
	}
	return out, nil
}

// appendCanonical appends the canonical encoding of v to buf.
func appendCanonical(buf []byte, v any, depth int) ([]byte, error) {
	if depth > MaxJSONDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrBadJSON, MaxJSONDepth)
	}
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case bool:
		if x {
			return append(buf, "true"...), nil
		}
		return append(buf, "false"...), nil
	case string:
		return appendString(buf, x)
	case json.Number:
		n, err := canonicalInt(string(x))
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(buf, n, 10), nil
	case int:
		return appendInt(buf, int64(x))
	case int64:
		return appendInt(buf, x)
	case int32:
		return appendInt(buf, int64(x))
	case uint32:
		return appendInt(buf, int64(x))
	case uint64:
		if x > MaxSafeInteger {
			return nil, fmt.Errorf("%w: integer %d out of range ±(2^53-1)", ErrBadJSON, x)
		}
		return appendInt(buf, int64(x))
	case float64:
		if math.Trunc(x) != x || math.Abs(x) > MaxSafeInteger {
			return nil, fmt.Errorf("%w: number %v is not an integer in ±(2^53-1)", ErrBadJSON, x)
		}
		return appendInt(buf, int64(x))
	case json.RawMessage:
		pv, err := ParseJSON(x)
		if err != nil {
			return nil, err
		}
		return appendCanonical(buf, pv, depth)
	case map[string]any:
		var stack [16]string // most objects are small: sort keys without allocating
		keys := stack[:0]
		for k := range x {
			keys = append(keys, k)
		}
		// Byte order of valid UTF-8 is Unicode code point order.
		slices.Sort(keys)
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
			if buf, err = appendCanonical(buf, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case []any:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendCanonical(buf, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case []string:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendString(buf, e); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendCanonical(buf, m, depth)
	case map[string]map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendCanonical(buf, m, depth)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadJSON, err)
		}
		pv, err := ParseJSON(b)
		if err != nil {
			return nil, err
		}
		return appendCanonical(buf, pv, depth)
	}
}

func appendInt(buf []byte, n int64) ([]byte, error) {
	if n > MaxSafeInteger || n < -MaxSafeInteger {
		return nil, fmt.Errorf("%w: integer %d out of range ±(2^53-1)", ErrBadJSON, n)
	}
	return strconv.AppendInt(buf, n, 10), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a canonical JSON string: '"' and '\\' escaped,
// U+0008/09/0A/0C/0D as \b \t \n \f \r, other controls below U+0020 as
// lowercase \u00XX, everything else as literal UTF-8.
func appendString(buf []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: invalid UTF-8 in string", ErrBadJSON)
	}
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"'), nil
}

// canonicalInt returns the integer value of a JSON number token. It accepts
// any RFC 8259 spelling whose value is an integer within ±(2^53−1) (so
// "-0", "1e10" and "2.50e1" are 0, 10000000000 and 25).
func canonicalInt(tok string) (int64, error) {
	mant, exp, neg, err := splitNumber(tok)
	if err != nil {
		return 0, err
	}
	// Drop trailing zeros of the mantissa into the exponent.
	for len(mant) > 1 && mant[len(mant)-1] == '0' {
		mant = mant[:len(mant)-1]
		exp++
	}
	if mant == "0" {
		return 0, nil
	}
	if exp < 0 {
		return 0, fmt.Errorf("%w: number %s is not an integer", ErrBadJSON, tok)
	}
	if len(mant)+exp > 16 {
		return 0, fmt.Errorf("%w: integer %s out of range ±(2^53-1)", ErrBadJSON, tok)
	}
	n, err := strconv.ParseInt(mant, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: number %s: %w", ErrBadJSON, tok, err)
	}
	for range exp {
		n *= 10
	}
	if n > MaxSafeInteger {
		return 0, fmt.Errorf("%w: integer %s out of range ±(2^53-1)", ErrBadJSON, tok)
	}
	if neg {
		n = -n
	}
	return n, nil
}

// splitNumber splits a JSON number into its significant digits (no leading
// zeros, "0" for zero), a decimal exponent and the sign. Exponents too large
// to matter are clamped so that huge ones cannot overflow.
func splitNumber(tok string) (mant string, exp int, neg bool, err error) {
	bad := func() (string, int, bool, error) {
		return "", 0, false, fmt.Errorf("%w: invalid number %q", ErrBadJSON, tok)
	}
	s := tok
	if s != "" && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') {
		return bad()
	}
	digits := s[:i]
	s = s[i:]
	if s != "" && s[0] == '.' {
		j := 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == 1 {
			return bad()
		}
		digits += s[1:j]
		exp -= j - 1
		s = s[j:]
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		eneg := false
		if s != "" && (s[0] == '+' || s[0] == '-') {
			eneg = s[0] == '-'
			s = s[1:]
		}
		if s == "" {
			return bad()
		}
		e := 0
		for _, c := range []byte(s) {
			if c < '0' || c > '9' {
				return bad()
			}
			if e < 1_000_000 {
				e = e*10 + int(c-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
		s = ""
	}
	if s != "" {
		return bad()
	}
	// Strip leading zeros of the combined digits.
	k := 0
	for k < len(digits)-1 && digits[k] == '0' {
		k++
	}
	digits = digits[k:]
	return digits, exp, neg, nil
}

// CheckNoFloats reports an error unless every number in v is written as a
// plain JSON integer (no fraction, no exponent) within ±(2^53−1), which is
// what room versions 6 and later require of every event (rooms/v6.md
// "Canonical JSON"). v is a value from ParseJSON; Go integer and float64
// values are checked too.
//
// NOTSPEC: the spec constrains values, so 1e3 or 2.0 could be read as
// integers; Synapse parses them as floats and rejects the event, and so do
// we, so that every server agrees on which events are valid. "-0" is an
// integer token and passes (its canonical form is 0).
func CheckNoFloats(v any) error {
	if err := checkNoFloats(v, 0); err != nil {
		return fmt.Errorf("check numbers: %w", err)
	}
	return nil
}

func checkNoFloats(v any, depth int) error {
	if depth > MaxJSONDepth {
		return fmt.Errorf("%w: nesting deeper than %d", ErrBadJSON, MaxJSONDepth)
	}
	switch x := v.(type) {
	case json.Number:
		return checkIntToken(string(x))
	case float64:
		if math.Trunc(x) != x || math.Abs(x) > MaxSafeInteger {
			return fmt.Errorf("%w: number %v is not an integer in ±(2^53-1)", ErrBadJSON, x)
		}
	case int:
		return checkRange(int64(x))
	case int64:
		return checkRange(x)
	case map[string]any:
		for k, e := range x {
			if err := checkNoFloats(e, depth+1); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
	case []any:
		for i, e := range x {
			if err := checkNoFloats(e, depth+1); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	}
	return nil
}

func checkRange(n int64) error {
	if n > MaxSafeInteger || n < -MaxSafeInteger {
		return fmt.Errorf("%w: integer %d out of range ±(2^53-1)", ErrBadJSON, n)
	}
	return nil
}

// checkIntToken accepts -?(0|[1-9][0-9]*) within ±(2^53−1).
func checkIntToken(tok string) error {
	s := tok
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return fmt.Errorf("%w: invalid number %q", ErrBadJSON, tok)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: number %s is not an integer (floats are not allowed)", ErrBadJSON, tok)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return fmt.Errorf("%w: invalid number %q", ErrBadJSON, tok)
	}
	if len(s) > 16 {
		return fmt.Errorf("%w: integer %s out of range ±(2^53-1)", ErrBadJSON, tok)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxSafeInteger {
		return fmt.Errorf("%w: integer %s out of range ±(2^53-1)", ErrBadJSON, tok)
	}
	return nil
}
