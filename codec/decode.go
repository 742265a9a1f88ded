package codec

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// MaxDepth is the deepest nesting of maps and arrays Encode and Decode
// accept: the same bound the event package puts on JSON.
const MaxDepth = event.MaxJSONDepth

// Errors Decode wraps; callers branch on them with errors.Is.
var (
	// ErrMalformed: not well-formed CBOR, or CBOR outside the subset this
	// codec speaks (indefinite lengths, floats, unknown tags, undefined and
	// other simple values, non-text non-integer map keys, duplicate keys,
	// invalid UTF-8, nesting deeper than MaxDepth, integers beyond ±(2^53−1),
	// trailing bytes).
	ErrMalformed = errors.New("malformed CBOR")
	// ErrUnknownKey: an integer map key the table does not define (the peer
	// speaks a newer table than negotiated).
	ErrUnknownKey = errors.New("unknown integer key")
	// ErrUnknownEnum: an enumerated value the table does not define.
	ErrUnknownEnum = errors.New("unknown enumerated value")
)

var decMode = func() cbor.DecMode {
	sv, err := cbor.NewSimpleValueRegistryFromDefaults(cbor.WithRejectedSimpleValue(cbor.SimpleValue(23)))
	if err != nil {
		panic(err) // static options; cannot fail
	}
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  MaxDepth + 2, // + a tagLiteral around the innermost value
		UTF8:             cbor.UTF8RejectInvalid,
		DefaultMapType:   reflect.TypeOf(map[any]any(nil)),
		IntDec:           cbor.IntDecConvertNone,
		BignumTag:        cbor.BignumTagForbidden,
		SimpleValues:     sv,
		MapKeyByteString: cbor.MapKeyByteStringForbidden,
		NaN:              cbor.NaNDecodeForbidden,
		Inf:              cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return m
}()

// Decode appends to dst the canonical JSON (appendices.md "Canonical JSON")
// of the CBOR data item in c, read under table t. For CBOR made by Encode
// from canonical JSON, the output is byte-identical to that JSON. The output
// size is linear in len(c): the longest expansion is an enumerated value.
func Decode(dst, c []byte, t Table) ([]byte, error) {
	v, err := DecodeValue(c, t)
	if err != nil {
		return dst, err
	}
	out, err := event.MarshalCanonical(v)
	if err != nil {
		return dst, fmt.Errorf("codec: decode: %w: %w", ErrMalformed, err)
	}
	return append(dst, out...), nil
}

// DecodeValue decodes c into the value tree event.ParseJSON would give for
// the JSON it stands for, except that numbers are int64.
func DecodeValue(c []byte, t Table) (any, error) {
	if !t.valid() {
		return nil, fmt.Errorf("codec: decode: unknown table %d", t)
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("codec: decode: %w: empty input", ErrMalformed)
	}
	var raw any
	if err := decMode.Unmarshal(c, &raw); err != nil {
		return nil, fmt.Errorf("codec: decode: %w: %w", ErrMalformed, err)
	}
	d := decoder{t: t, keys: t.keys()}
	v, err := d.value(raw, "", 0)
	if err != nil {
		return nil, fmt.Errorf("codec: decode: %w", err)
	}
	return v, nil
}

type decoder struct {
	t    Table
	keys *keyTable
}

func (d *decoder) value(v any, parent string, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
	}
	mesh := d.t >= TableMesh1
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case uint64:
		if mesh && enumKeys[parent] {
			if x >= uint64(len(enumValues)) {
				return nil, fmt.Errorf("%w: %d under %q", ErrUnknownEnum, x, parent)
			}
			return enumValues[x], nil
		}
		return safeInt(x, false)
	case int64:
		if mesh && enumKeys[parent] {
			return nil, fmt.Errorf("%w: untagged integer under enum key %q", ErrMalformed, parent)
		}
		return safeInt(uint64(-1-x), true)
	case []byte:
		if !mesh {
			// RFC 8949 §6.1: byte strings become unpadded base64url.
			return base64.RawURLEncoding.EncodeToString(x), nil
		}
		if len(x) == 0 {
			return nil, fmt.Errorf("%w: empty byte string under %q", ErrMalformed, parent)
		}
		return fromBinary(binaryKind(parent), x), nil
	case cbor.Tag:
		if !mesh || x.Number != tagLiteral || !enumKeys[parent] {
			return nil, fmt.Errorf("%w: unexpected tag %d under %q", ErrMalformed, x.Number, parent)
		}
		switch n := x.Content.(type) {
		case uint64:
			return safeInt(n, false)
		case int64:
			return safeInt(uint64(-1-n), true)
		}
		return nil, fmt.Errorf("%w: tag %d must hold an integer", ErrMalformed, x.Number)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			c, err := d.value(el, parent, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[any]any:
		return d.object(x, depth)
	}
	return nil, fmt.Errorf("%w: unsupported CBOR item %T under %q", ErrMalformed, v, parent)
}

// safeInt turns a CBOR integer (u, or −1−u when neg) into an int64 within
// canonical JSON's range.
func safeInt(u uint64, neg bool) (any, error) {
	if neg {
		if u >= event.MaxSafeInteger {
			return nil, fmt.Errorf("%w: integer -1-%d beyond -(2^53-1)", ErrMalformed, u)
		}
		return -1 - int64(u), nil
	}
	if u > event.MaxSafeInteger {
		return nil, fmt.Errorf("%w: integer %d beyond 2^53-1", ErrMalformed, u)
	}
	return int64(u), nil
}

func (d *decoder) object(m map[any]any, depth int) (any, error) {
	out := make(map[string]any, len(m))
	// String keys first: MSC3079 says a string key beats an integer key
	// that names the same string.
	for k, el := range m {
		if s, ok := k.(string); ok {
			c, err := d.value(el, s, depth+1)
			if err != nil {
				return nil, err
			}
			out[s] = c
		}
	}
	fromNum := map[string]bool{}
	for k, el := range m {
		var n int64
		switch x := k.(type) {
		case string:
			continue
		case uint64:
			if x > 1<<62 {
				return nil, fmt.Errorf("%w: %d", ErrUnknownKey, x)
			}
			n = int64(x)
		case int64:
			n = x
		default:
			return nil, fmt.Errorf("%w: map key of type %T", ErrMalformed, k)
		}
		name, ok := "", false
		if d.keys != nil {
			name, ok = d.keys.byNum[n]
		}
		if !ok {
			return nil, fmt.Errorf("%w: %d (table %s)", ErrUnknownKey, n, d.t)
		}
		if fromNum[name] {
			return nil, fmt.Errorf("%w: key %q given twice by number", ErrMalformed, name)
		}
		fromNum[name] = true
		if _, has := out[name]; has {
			continue // the string key wins (MSC3079 "JSON -> CBOR")
		}
		c, err := d.value(el, name, depth+1)
		if err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, nil
}
