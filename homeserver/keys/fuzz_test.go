package keys

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and what
// it accepts must parse again from its canonical form to the same keys.
func FuzzParse(f *testing.F) {
	seed, err := ServerResponse(Own{ServerName: "hs.example", Keys: []SigningKey{keyA},
		Old: map[string]OldKey{"ed25519:o": {Key: pubOf(keyOld), Expired: t0}}, NoiseKey: noiseKey}, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"server_name":"hs.example","verify_keys":{},"valid_until_ts":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		sk, err := Parse(raw, "hs.example")
		if err != nil {
			return
		}
		again, err := Parse(sk.Raw, "hs.example")
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if !again.ValidUntil.Equal(sk.ValidUntil) || len(again.VerifyKeys) != len(sk.VerifyKeys) ||
			len(again.OldVerifyKeys) != len(sk.OldVerifyKeys) || !bytes.Equal(again.NoiseKey, sk.NoiseKey) {
			t.Fatalf("re-parse differs: %+v vs %+v", again, sk)
		}
	})
}

func BenchmarkVerifyResponse(b *testing.B) {
	raw, err := ServerResponse(Own{ServerName: "hs.example", Keys: []SigningKey{keyA}, NoiseKey: noiseKey}, t0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(raw, "hs.example", t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}
