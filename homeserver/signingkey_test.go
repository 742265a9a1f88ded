package homeserver

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
)

func TestSigningKeyFile(t *testing.T) {
	k, err := GenerateSigningKey(clock.SeededRNG(7))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.ID, "ed25519:a_") {
		t.Fatalf("key ID %q", k.ID)
	}
	text, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSigningKey(text)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != k.ID || !back.Key.Equal(k.Key) {
		t.Fatal("round trip changed the key")
	}
	msg := []byte("hello")
	if !ed25519.Verify(back.Public(), msg, ed25519.Sign(k.Key, msg)) {
		t.Fatal("signature does not verify")
	}
}

// The RFC 8032 §7.1 TEST 1 seed, in the Synapse key-file format, must give
// that test's public key.
func TestSigningKeyVector(t *testing.T) {
	const file = "ed25519 a_test nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\n"
	const wantPub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	k, err := ParseSigningKey([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if got := hexString(k.Public()); got != wantPub {
		t.Fatalf("public key %s, want %s", got, wantPub)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestSigningKeyParseErrors(t *testing.T) {
	for _, bad := range []string{"", "ed25519 a_x", "rsa a_x AAAA", "ed25519 a-x AAAA", "ed25519 a_x !!!!", "ed25519 a_x AAAA"} {
		if _, err := ParseSigningKey([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
