package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/fxamacker/cbor/v2"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

// Table selects how JSON maps onto CBOR. Its number is what the frame header
// carries and what peers negotiate (see the package doc).
type Table uint8

const (
	// TablePlain is RFC 8949 §6.2 "Converting from JSON to CBOR" with string
	// keys only.
	TablePlain Table = 0
	// TableMSC3079 adds MSC3079's integer keys 1–104 (its
	// "cbor_enum_version": 1). Nothing else changes, so MSC3079 peers read it.
	TableMSC3079 Table = 1
	// TableMesh1 is the mesh table, version 1: MSC3079's keys, the mesh key
	// extension, well-known values as small integers and binary fields.
	TableMesh1 Table = 2

	// TableLatest is the newest table this package speaks.
	TableLatest = TableMesh1
)

func (t Table) String() string {
	switch t {
	case TablePlain:
		return "plain"
	case TableMSC3079:
		return "msc3079"
	case TableMesh1:
		return "mesh1"
	}
	return "table(" + strconv.Itoa(int(t)) + ")"
}

func (t Table) keys() *keyTable {
	switch t {
	case TableMSC3079:
		return msc3079Table
	case TableMesh1:
		return meshTable
	}
	return nil
}

func (t Table) valid() bool { return t <= TableLatest }

// ErrBadJSON is wrapped by Encode when its input is not JSON it can carry:
// invalid JSON, or numbers that canonical JSON refuses (non-integers,
// integers outside ±(2^53−1)), as appendices.md "Canonical JSON" requires.
var ErrBadJSON = errors.New("unusable JSON")

// Info describes one Encode call.
type Info struct {
	// Canonicalised is true when the input was not canonical JSON: the
	// CBOR carries its canonical form, which is what Decode returns.
	Canonicalised bool
}

var encMode = func() cbor.EncMode {
	// RFC 8949 §4.2.1 core deterministic encoding: shortest heads, definite
	// lengths, map keys sorted by their encoded bytes.
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options; cannot fail
	}
	return m
}()

// Encode appends to dst the CBOR form of the JSON value in j under table t.
// The input is canonicalised first (Info says whether that changed it).
// Encode never fails on valid JSON whose numbers are canonical-JSON integers.
func Encode(dst, j []byte, t Table) ([]byte, Info, error) {
	if !t.valid() {
		return dst, Info{}, fmt.Errorf("codec: encode: unknown table %d", t)
	}
	canon, err := event.CanonicalJSON(j)
	if err != nil {
		return dst, Info{}, fmt.Errorf("codec: encode: %w: %w", ErrBadJSON, err)
	}
	v, err := event.ParseJSON(canon)
	if err != nil {
		return dst, Info{}, fmt.Errorf("codec: encode: %w: %w", ErrBadJSON, err)
	}
	info := Info{Canonicalised: !bytes.Equal(canon, j)}
	out, err := EncodeValue(dst, v, t)
	return out, info, err
}

// EncodeValue appends the CBOR form of v, a value as event.ParseJSON returns
// it (map[string]any, []any, string, bool, nil, json.Number) or a Go integer.
// Maps are written in canonical order, so the result is deterministic.
func EncodeValue(dst []byte, v any, t Table) ([]byte, error) {
	if !t.valid() {
		return dst, fmt.Errorf("codec: encode: unknown table %d", t)
	}
	e := encoder{t: t, keys: t.keys()}
	tree, err := e.value(v, "", 0)
	if err != nil {
		return dst, fmt.Errorf("codec: encode: %w", err)
	}
	out, err := encMode.Marshal(tree)
	if err != nil {
		return dst, fmt.Errorf("codec: encode: %w", err)
	}
	return append(dst, out...), nil
}

type encoder struct {
	t    Table
	keys *keyTable
}

// value converts a JSON value found under object key parent into the Go value
// the CBOR encoder writes.
func (e *encoder) value(v any, parent string, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrBadJSON, MaxDepth)
	}
	mesh := e.t >= TableMesh1
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		if mesh {
			if enumKeys[parent] {
				if n, ok := enumByName[x]; ok {
					return n, nil
				}
			}
			if k := binaryKind(parent); k != 0 {
				if b := toBinary(k, x); b != nil {
					return b, nil
				}
			}
		}
		return x, nil
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %s is not a canonical integer", ErrBadJSON, x)
		}
		return e.integer(n, parent)
	case int:
		return e.integer(int64(x), parent)
	case int64:
		return e.integer(x, parent)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			c, err := e.value(el, parent, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[any]any, len(x))
		for k, el := range x {
			c, err := e.value(el, k, depth+1)
			if err != nil {
				return nil, err
			}
			if n, ok := e.keyNumber(k); ok {
				out[n] = c
			} else {
				out[k] = c
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unsupported Go type %T", ErrBadJSON, v)
}

func (e *encoder) integer(n int64, parent string) (any, error) {
	if n > event.MaxSafeInteger || n < -event.MaxSafeInteger {
		return nil, fmt.Errorf("%w: integer %d outside ±(2^53-1)", ErrBadJSON, n)
	}
	if e.t >= TableMesh1 && enumKeys[parent] {
		return cbor.Tag{Number: tagLiteral, Content: n}, nil
	}
	return n, nil
}

func (e *encoder) keyNumber(k string) (int64, bool) {
	if e.keys == nil {
		return 0, false
	}
	n, ok := e.keys.byName[k]
	return n, ok
}
