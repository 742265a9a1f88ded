package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzCanonicalJSON checks that parse → canonical → parse is stable: the
// canonical form parses to the same value (numbers compared by value),
// canonicalising it again changes nothing, and what ParseJSON accepts is
// valid JSON to encoding/json as well.
func FuzzCanonicalJSON(f *testing.F) {
	for _, tc := range specCanonicalExamples {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(synapseCreateEvent))
	// Common strings (looked up without allocating), also escaped, and
	// nested arrays (built on a shared stack).
	f.Add([]byte(`{"type":"m.room.member","typ\u0065":"join","content":{"membership":"jo\u0069n"}}`))
	f.Add([]byte(`[["auth_events",[1,[2,3],[]],"x"],[],["m.text"]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, perr := ParseJSON(b)
		c, cerr := CanonicalJSON(b)
		if perr != nil {
			if cerr == nil {
				t.Fatalf("CanonicalJSON accepted what ParseJSON refused (%v)", perr)
			}
			if !errors.Is(perr, ErrBadJSON) {
				t.Fatalf("ParseJSON error %v does not wrap ErrBadJSON", perr)
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("ParseJSON accepted invalid JSON %q", b)
		}
		// Input ParseJSON accepts has no duplicate keys, bad UTF-8 or lone
		// surrogates, so encoding/json must read the same value from it.
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("encoding/json refused %q: %v", b, err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("ParseJSON(%q) = %#v, encoding/json reads %#v", b, v, want)
		}
		if obj, ok := v.(map[string]any); ok {
			for _, rv := range SupportedVersions() {
				slow, serr := referenceFormSlow(obj, rv)
				fast, ferr := appendReferenceForm(nil, obj, rv)
				if (serr == nil) != (ferr == nil) || !bytes.Equal(slow, fast) {
					t.Fatalf("v%s reference form of %q: %q (%v), redacting a copy gives %q (%v)", rv.ID, b, fast, ferr, slow, serr)
				}
			}
		}
		if cerr != nil {
			if !errors.Is(cerr, ErrBadJSON) {
				t.Fatalf("CanonicalJSON error %v does not wrap ErrBadJSON", cerr)
			}
			if CheckNoFloats(v) == nil {
				t.Fatalf("CanonicalJSON refused (%v) what CheckNoFloats accepts", cerr)
			}
			return
		}
		v2, err := ParseJSON(c)
		if err != nil {
			t.Fatalf("canonical output %q does not parse: %v", c, err)
		}
		if err := CheckNoFloats(v2); err != nil {
			t.Fatalf("canonical output %q has non-integers: %v", c, err)
		}
		if !reflect.DeepEqual(normalizeNumbers(t, v), v2) {
			t.Fatalf("value changed:\n in  %q\n out %q", b, c)
		}
		c2, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("canonical form not a fixed point: %q → %q (%v)", c, c2, err)
		}
		m, err := MarshalCanonical(v)
		if err != nil || !bytes.Equal(m, c) {
			t.Fatalf("MarshalCanonical(ParseJSON(x)) = %q (%v), CanonicalJSON(x) = %q", m, err, c)
		}
	})
}

// normalizeNumbers replaces every json.Number with its canonical integer
// spelling, which is what parsing the canonical form yields.
func normalizeNumbers(t *testing.T, v any) any {
	switch x := v.(type) {
	case json.Number:
		n, err := canonicalInt(string(x))
		if err != nil {
			t.Fatalf("number %s: %v", x, err)
		}
		return json.Number(json.Number(itoa(n)))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeNumbers(t, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeNumbers(t, e)
		}
		return out
	}
	return v
}

func itoa(n int64) string {
	b, _ := appendInt(nil, n)
	return string(b)
}

// FuzzParseEvent feeds arbitrary bytes to Parse under every version: it
// must never panic, and an accepted event must keep its bytes, have the ID
// EventID computes, redact cleanly, and keep its ID when re-encoded
// canonically.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(synapseCreateEvent))
	for _, tc := range redactionCases {
		f.Add([]byte(tc.in))
	}
	key := specKey(f)
	e, err := Build(Proto{RoomID: "!r:d", Sender: "@a:d", Type: "m.room.member", StateKey: ptr("@a:d"),
		Content: map[string]any{"membership": "join"}, PrevEvents: []string{"$p"}, Depth: 2}, V12, "d", "ed25519:k", key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(e.JSON())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range SupportedVersions() {
			e, err := Parse(b, v)
			if err != nil {
				if !errors.Is(err, ErrBadEvent) {
					t.Fatalf("v%s: error %v does not wrap ErrBadEvent", v.ID, err)
				}
				continue
			}
			if !bytes.Equal(e.JSON(), b) {
				t.Fatalf("v%s: JSON() differs from input", v.ID)
			}
			id, err := EventID(b, v)
			if err != nil || id != e.ID() {
				t.Fatalf("v%s: EventID = %q, %v; Parse gave %q", v.ID, id, err, e.ID())
			}
			red, err := Redact(b, v)
			if err != nil {
				t.Fatalf("v%s: Redact: %v", v.ID, err)
			}
			rid, err := EventID(red, v)
			if err != nil || rid != id {
				t.Fatalf("v%s: redacted event ID %q (%v), want %q", v.ID, rid, err, id)
			}
			c, err := CanonicalJSON(b)
			if err != nil {
				t.Fatalf("v%s: CanonicalJSON of a parsed event: %v", v.ID, err)
			}
			e2, err := Parse(c, v)
			if err != nil || e2.ID() != id || e2.RoomID() != e.RoomID() || e2.Type() != e.Type() {
				t.Fatalf("v%s: canonical re-encoding changed the event: %v", v.ID, err)
			}
			_ = e.Redacts()
			_ = e.Membership()
			_ = e.String()
		}
	})
}
