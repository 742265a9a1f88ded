package event

import (
	"crypto/ed25519"
	"testing"
)

// benchPDU is a typical federation PDU: an m.room.message with a body,
// formatted_body, two prev_events and three auth_events, signed by one
// server, with an unsigned age.
func benchPDU(b testing.TB) ([]byte, ed25519.PublicKey, ed25519.PrivateKey) {
	b.Helper()
	key := specKey(b)
	e, err := Build(Proto{
		RoomID: "!hKbRzIXcpVXAwhXmxS:example.org", Sender: "@alice:example.org", Type: "m.room.message",
		Content: map[string]any{
			"msgtype": "m.text", "body": "Is the relay on the north ridge still up? Battery was at 40% this morning.",
			"format":         "org.matrix.custom.html",
			"formatted_body": "Is the relay on the <b>north ridge</b> still up? Battery was at 40% this morning.",
			"m.mentions":     map[string]any{},
		},
		PrevEvents:     []string{"$bXm4mA3-MWpmeOPgJKOeG1rIhyo5aPbE8ipnvAHA4lE", "$Z9DPhGjgb9F9Hkn3_PXljyW8LDbPkJkB0gHOk1hhvco"},
		AuthEvents:     []string{"$Xn7ABS7RBN3vYvGTJsx-J5qZMi3RfrmwESnRHwyUvlM", "$5ZZv1fxeMfqrCfHNfu-LD2XJCpJlJLupRkFHUMoBQ2Q", "$PaVNw-7uNFakUFWHz_1PNJrbhBrq0b-hIIojbdRF_bY"},
		Depth:          4821,
		OriginServerTS: 1764115200000,
		Unsigned:       map[string]any{"age": 1234},
	}, V11, "example.org", "ed25519:a_XyZw", key)
	if err != nil {
		b.Fatal(err)
	}
	return e.JSON(), key.Public().(ed25519.PublicKey), key
}

func BenchmarkCanonicalJSON(b *testing.B) {
	raw, _, _ := benchPDU(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalJSON(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw, _, _ := benchPDU(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(raw, V11); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventID(b *testing.B) {
	raw, _, _ := benchPDU(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EventID(raw, V11); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignEvent(b *testing.B) {
	raw, _, key := benchPDU(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignEvent(raw, V11, "example.org", "ed25519:a_XyZw", key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEventSignature(b *testing.B) {
	raw, pub, _ := benchPDU(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyEventSignature(raw, V11, "example.org", "ed25519:a_XyZw", pub); err != nil {
			b.Fatal(err)
		}
	}
}

// Parse's allocations are a fixed function of its input. The ceiling is
// what the typical PDU of BenchmarkParse costs (101 before common strings
// were shared, arrays built at their final size and the reference hash
// written without a redacted copy); more means a regression.
func TestParseAllocs(t *testing.T) {
	raw, _, _ := benchPDU(t)
	const ceiling = 66
	if n := testing.AllocsPerRun(20, func() {
		if _, err := Parse(raw, V11); err != nil {
			t.Fatal(err)
		}
	}); n > ceiling {
		t.Fatalf("Parse allocates %v times, want at most %d", n, ceiling)
	}
}
