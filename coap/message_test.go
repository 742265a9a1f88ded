package coap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func opt(id message.OptionID, v string) message.Option {
	return message.Option{ID: id, Value: []byte(v)}
}

var goldenMessages = []struct {
	name string
	m    Wire
	hex  string
}{
	{"CON POST 2-byte path, no token",
		Wire{Type: CON, Code: codes.POST, MessageID: 0x1234, Options: message.Options{opt(message.URIPath, "ab")}},
		"40 02 1234 b2 6162"},
	{"empty ACK", Wire{Type: ACK, Code: codes.Empty, MessageID: 0x1234}, "60 00 1234"},
	{"RST", Wire{Type: RST, Code: codes.Empty, MessageID: 0xbeef}, "70 00 beef"},
	{"CON ping", Wire{Type: CON, Code: codes.Empty, MessageID: 1}, "40 00 0001"},
	{"GET observe /.well-known/core, 1-byte token",
		Wire{Type: CON, Code: codes.GET, MessageID: 2, Token: []byte{0x7a},
			Options: message.Options{{ID: message.Observe}, opt(message.URIPath, ".well-known"), opt(message.URIPath, "core")}},
		"41 01 0002 7a 60 5b 2e77656c6c2d6b6e6f776e 04 636f7265"},
	{"piggy-backed 2.05 link-format",
		Wire{Type: ACK, Code: codes.Content, MessageID: 2, Token: []byte{0x7a},
			Options: message.Options{{ID: message.ContentFormat, Value: []byte{40}}}, Payload: []byte("</a>")},
		"61 45 0002 7a c1 28 ff 3c2f613e"},
	{"NON 2.05 Block2 3/M/1024, 2-byte token",
		Wire{Type: NON, Code: codes.Content, MessageID: 0xffff, Token: []byte{1, 2},
			Options: message.Options{{ID: message.Block2, Value: []byte{0x3e}}}, Payload: []byte{0}},
		"52 45 ffff 0102 d1 0a 3e ff 00"},
	{"2.31 Continue with Block1 0/M/64",
		Wire{Type: ACK, Code: codes.Continue, MessageID: 9,
			Options: message.Options{{ID: message.Block1, Value: []byte{0x0a}}}},
		"60 5f 0009 d1 0e 0a"},
}

func TestGoldenEncode(t *testing.T) {
	for _, g := range goldenMessages {
		t.Run(g.name, func(t *testing.T) {
			got, err := Encode(nil, &g.m)
			if err != nil {
				t.Fatal(err)
			}
			want := mustHex(t, g.hex)
			if !bytes.Equal(got, want) {
				t.Fatalf("encode = % x, want % x", got, want)
			}
			var m Wire
			if err := Decode(want, &m); err != nil {
				t.Fatalf("decode: %v", err)
			}
			assertSameWire(t, &m, &g.m)
		})
	}
}

// TestBudgets asserts issue 6's byte budgets for CoAP framing.
func TestBudgets(t *testing.T) {
	post, _ := Encode(nil, &goldenMessages[0].m)
	if len(post) > 9 {
		t.Errorf("CON POST with a 2-byte path and no token is %d B, budget 9 B", len(post))
	}
	ack, _ := Encode(nil, &goldenMessages[1].m)
	if len(ack) > 4 {
		t.Errorf("empty ACK is %d B, budget 4 B", len(ack))
	}
}

func assertSameWire(t testing.TB, got, want *Wire) {
	t.Helper()
	if got.Type != want.Type || got.Code != want.Code || got.MessageID != want.MessageID ||
		!bytes.Equal(got.Token, want.Token) || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if len(got.Options) != len(want.Options) {
		t.Fatalf("got %d options, want %d", len(got.Options), len(want.Options))
	}
	for i := range got.Options {
		if got.Options[i].ID != want.Options[i].ID || !bytes.Equal(got.Options[i].Value, want.Options[i].Value) {
			t.Fatalf("option %d: got %v=%x, want %v=%x", i, got.Options[i].ID, got.Options[i].Value,
				want.Options[i].ID, want.Options[i].Value)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ name, hex string }{
		{"truncated header", "4001"},
		{"version 2", "80010000"},
		{"token length 9", "49010000 000102030405060708"},
		{"token truncated", "42010000 01"},
		{"empty with token", "41000001 aa"},
		{"reset with code", "70450001"},
		{"ack carrying request", "60010001"},
		{"empty NON", "50000001"},
		{"payload marker without payload", "40010001 ff"},
		{"code class 1", "40200001"},
		{"code class 7", "40e00001"},
		{"option delta 15", "40010001 f0"},
		{"option value truncated", "40010001 b361"},
		{"extended delta truncated", "40010001 d0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m Wire
			err := Decode(mustHex(t, c.hex), &m)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Decode(%s) = %v, want ErrFormat", c.hex, err)
			}
		})
	}
}

func TestBlockOption(t *testing.T) {
	for _, b := range []Block{{0, false, 0}, {1, true, 6}, {maxBlockNum, true, 2}, {300, false, 5}} {
		got, err := ParseBlock(b.Uint32())
		if err != nil || got != b {
			t.Fatalf("ParseBlock(%#x) = %+v, %v; want %+v", b.Uint32(), got, err, b)
		}
	}
	if _, err := ParseBlock(7); !errors.Is(err, ErrFormat) {
		t.Fatalf("SZX 7 accepted: %v", err)
	}
	if _, err := ParseBlock((maxBlockNum + 1) << 4); !errors.Is(err, ErrFormat) {
		t.Fatalf("block number 2^20 accepted: %v", err)
	}
	if got := (Block{SZX: 6}).Size(); got != 1024 {
		t.Fatalf("SZX 6 size %d", got)
	}
}

func TestEncodeAllocs(t *testing.T) {
	m := goldenMessages[0].m
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() { buf, _ = Encode(buf[:0], &m) })
	if allocs > 1 {
		t.Fatalf("Encode into a large enough buffer allocates %.0f times", allocs)
	}
	data := mustHex(t, goldenMessages[4].hex)
	var w Wire
	_ = Decode(data, &w)
	allocs = testing.AllocsPerRun(100, func() { _ = Decode(data, &w) })
	if allocs != 0 {
		t.Fatalf("Decode reusing a message allocates %.0f times", allocs)
	}
}

// FuzzDecode checks that anything Decode accepts re-encodes to a message
// that decodes to the same thing (decode∘encode is the identity).
func FuzzDecode(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(mustHex(f, g.hex))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Wire
		if err := Decode(data, &m); err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		enc, err := Encode(nil, &m)
		if err != nil {
			t.Fatalf("re-encode of %x: %v", data, err)
		}
		var m2 Wire
		if err := Decode(enc, &m2); err != nil {
			t.Fatalf("decode of re-encoding %x: %v", enc, err)
		}
		assertSameWire(t, &m2, &m)
	})
}

// TestFuzzCorpusPresent keeps the checked-in corpus in step with the golden
// table (run with MXMESH_WRITE_CORPUS=1 to regenerate).
func TestFuzzCorpusPresent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if os.Getenv("MXMESH_WRITE_CORPUS") != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, g := range goldenMessages {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", mustHex(t, g.hex))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("golden-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) < len(goldenMessages) {
		t.Fatalf("fuzz corpus %s: %d files, %v", dir, len(ents), err)
	}
}
