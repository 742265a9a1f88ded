package codec

import (
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestDecodeBadInput(t *testing.T) {
	deep := strings.Repeat("81", MaxDepth+5) + "f6"
	cases := []struct {
		name, hex string
		table     Table
		want      error
	}{
		{"empty", "", TableMesh1, ErrMalformed},
		{"truncated map", "a2286568656c", TableMesh1, ErrMalformed},
		{"truncated head", "1b0000", TableMesh1, ErrMalformed},
		{"trailing bytes", "f6f6", TableMesh1, ErrMalformed},
		{"unknown positive key", "a11903e7f6", TableMesh1, ErrUnknownKey},
		{"unknown negative key", "a13903e7f6", TableMesh1, ErrUnknownKey},
		{"mesh key under msc3079", "a120f6", TableMSC3079, ErrUnknownKey},
		{"integer key under plain", "a102f6", TablePlain, ErrUnknownKey},
		{"unknown enum", "a10218ff", TableMesh1, ErrUnknownEnum},
		{"untagged negative under enum key", "a10220", TableMesh1, ErrMalformed},
		{"array as map key", "a180f6", TableMesh1, ErrMalformed},
		{"byte string as map key", "a141aaf6", TableMesh1, ErrMalformed},
		{"float", "f93c00", TableMesh1, ErrMalformed},
		{"float in map", "a161 61fb3ff8000000000000", TableMesh1, ErrMalformed},
		{"indefinite map", "bf6161f6ff", TableMesh1, ErrMalformed},
		{"indefinite text", "7f616161ff", TableMesh1, ErrMalformed},
		{"too deep", deep, TableMesh1, ErrMalformed},
		{"huge byte string", "5bffffffffffffffff", TableMesh1, ErrMalformed},
		{"huge array", "9b00000000ffffffff", TableMesh1, ErrMalformed},
		{"huge map", "bb7fffffffffffffff", TableMesh1, ErrMalformed},
		{"duplicate key", "a202f602f6", TableMesh1, ErrMalformed},
		{"duplicate via alias", "a2181b6028 60", TableMesh1, ErrMalformed},
		{"invalid UTF-8", "62c328", TableMesh1, ErrMalformed},
		{"undefined", "f7", TableMesh1, ErrMalformed},
		{"simple value", "f0", TableMesh1, ErrMalformed},
		{"time tag", "c100", TableMesh1, ErrMalformed},
		{"bignum", "c249010000000000000000", TableMesh1, ErrMalformed},
		{"literal tag outside enum key", "a16161d9b0cb01", TableMesh1, ErrMalformed},
		{"literal tag with text", "a102d9b0cb6161", TableMesh1, ErrMalformed},
		{"integer beyond 2^53", "1b0020000000000000", TableMesh1, ErrMalformed},
		{"negative beyond -2^53", "3b001fffffffffffff", TableMesh1, ErrMalformed},
		{"empty byte string", "a120a10040", TableMesh1, ErrMalformed},
	}
	for _, c := range cases {
		in, err := hex.DecodeString(strings.ReplaceAll(c.hex, " ", ""))
		if err != nil {
			t.Fatalf("%s: bad test hex: %v", c.name, err)
		}
		_, err = Decode(nil, in, c.table)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Decode error = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestEncodeBadInput(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":1.5}`, `{"a":9007199254740992}`, `{"a":1,"a":2}`,
		"{\"a\":\"\xff\"}", `[1] x`, strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2)} {
		if _, _, err := Encode(nil, []byte(in), TableMesh1); !errors.Is(err, ErrBadJSON) {
			t.Errorf("Encode(%q) error = %v, want ErrBadJSON", in, err)
		}
	}
	if _, _, err := Encode(nil, []byte(`{}`), Table(9)); err == nil {
		t.Error("Encode with an unknown table succeeded")
	}
	// Non-canonical but valid input is canonicalised and reported.
	out, info, err := Encode(nil, []byte(`{ "b": 1e2, "a": "x" }`), TableMesh1)
	if err != nil || !info.Canonicalised {
		t.Fatalf("Encode non-canonical: %v, %+v", err, info)
	}
	if back, _ := Decode(nil, out, TableMesh1); string(back) != `{"a":"x","b":100}` {
		t.Errorf("canonicalised form decodes to %s", back)
	}
}

func TestFrameBadInput(t *testing.T) {
	good, _, err := EncodeFrame(nil, sampleSync(t), FrameOptions{Table: TableMesh1, Dict: DictLatest})
	if err != nil {
		t.Fatal(err)
	}
	if good[0]>>4 != DictLatest {
		t.Fatalf("sample sync frame not compressed: header %#x", good[0])
	}
	cases := []struct {
		name  string
		frame []byte
		max   Table
		want  error
	}{
		{"short", []byte{0x02}, TableMesh1, ErrMalformed},
		{"dictionary version mismatch", append([]byte{0x22}, good[1:]...), TableMesh1, ErrDictionary},
		{"garbage zstd body", []byte{0x12, 0xde, 0xad, 0xbe, 0xef}, TableMesh1, ErrMalformed},
		{"truncated zstd body", good[:len(good)/2], TableMesh1, ErrMalformed},
		{"table not negotiated", []byte{0x02, 0xf6}, TableMSC3079, ErrNotNegotiated},
		{"unknown table", []byte{0x0f, 0xf6}, TableMesh1, nil},
	}
	for _, c := range cases {
		_, _, err := DecodeFrame(nil, c.frame, c.max)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: DecodeFrame error = %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := EncodeFrame(nil, []byte(`{"a":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}`), FrameOptions{Table: TableMesh1, Dict: 3}); !errors.Is(err, ErrDictionary) {
		t.Errorf("EncodeFrame with unknown dictionary: %v", err)
	}
}

// TestDecodeAllocationBounded checks that hostile length fields cost no
// allocation proportional to what they declare.
func TestDecodeAllocationBounded(t *testing.T) {
	for _, h := range []string{"5bffffffffffffffff", "9b00000000ffffffff", "bb00000000ffffffff", "7a7fffffff"} {
		in, _ := hex.DecodeString(h)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			if _, err := Decode(nil, in, TableMesh1); err == nil {
				t.Fatalf("%s decoded", h)
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 16<<10 {
			t.Errorf("%s: %d bytes allocated per decode", h, per)
		}
	}
}

func TestEncodeValueRange(t *testing.T) {
	for _, v := range []any{int64(1 << 53), -int64(1 << 53), map[string]any{"a": int(1 << 60)}, 1.5} {
		if _, err := EncodeValue(nil, v, TableMesh1); !errors.Is(err, ErrBadJSON) {
			t.Errorf("EncodeValue(%v) error = %v, want ErrBadJSON", v, err)
		}
	}
	c, err := EncodeValue(nil, map[string]any{"depth": int64(12), "type": int64(3)}, TableMesh1)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := Decode(nil, c, TableMesh1); err != nil || string(j) != `{"depth":12,"type":3}` {
		t.Errorf("EncodeValue with Go integers decodes to %s, %v", j, err)
	}
}

// TestFrameInflateBound: a small frame that would inflate past MaxFrameBody
// is refused.
func TestFrameInflateBound(t *testing.T) {
	z, err := zstdFor(DictLatest)
	if err != nil {
		t.Fatal(err)
	}
	bomb := z.enc.EncodeAll(make([]byte, MaxFrameBody+1), nil)[len(zstdMagic):]
	if len(bomb) > 4096 {
		t.Fatalf("bomb is %d B", len(bomb))
	}
	frame := append([]byte{DictLatest<<hdrDictShift | byte(TableMesh1)}, bomb...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = DecodeFrame(nil, frame, TableMesh1)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeFrame of a %d B bomb: %v, want ErrMalformed", len(frame), err)
	}
	t.Logf("refusing a %d B frame allocated %d B", len(frame), after.TotalAlloc-before.TotalAlloc)
	if got := after.TotalAlloc - before.TotalAlloc; got > MaxFrameBody+1<<20 {
		t.Errorf("refusing the bomb allocated %d B", got)
	}
}
