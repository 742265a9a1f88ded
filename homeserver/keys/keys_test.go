package keys

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/noise"
)

var (
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	keyA     = SigningKey{ID: "ed25519:a", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))}
	keyB     = SigningKey{ID: "ed25519:b", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))}
	keyOld   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	noiseKey = bytes.Repeat([]byte{9}, 32)
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func ownResponse(t *testing.T, o Own) []byte {
	t.Helper()
	raw, err := ServerResponse(o, t0)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestServerResponseGolden(t *testing.T) {
	raw := ownResponse(t, Own{ServerName: "hs.example", Keys: []SigningKey{keyA}, Validity: time.Hour})
	// Signatures are deterministic (RFC 8032), so the whole response is.
	body := `{"old_verify_keys":{},"server_name":"hs.example","valid_until_ts":1772370000000,"verify_keys":{"ed25519:a":{"key":"` +
		event.EncodeBase64(pubOf(keyA.Key)) + `"}}}`
	sig := event.EncodeBase64(ed25519.Sign(keyA.Key, []byte(body)))
	want := body[:len(body)-1] + `,"signatures":{"hs.example":{"ed25519:a":"` + sig + `"}}}`
	// Canonical order puts "signatures" between "server_name" and
	// "valid_until_ts"; rebuild want canonically.
	want2, err := event.CanonicalJSON([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != string(want2) {
		t.Fatalf("response\n got %s\nwant %s", raw, want2)
	}
}

func TestServerResponseRoundTrip(t *testing.T) {
	o := Own{
		ServerName: "hs.example:8448",
		Keys:       []SigningKey{keyA, keyB},
		Old:        map[string]OldKey{"ed25519:old": {Key: pubOf(keyOld), Expired: t0.Add(-time.Hour)}},
		NoiseKey:   noiseKey,
	}
	raw := ownResponse(t, o)
	sk, err := Verify(raw, "hs.example:8448", t0)
	if err != nil {
		t.Fatal(err)
	}
	if !sk.ValidUntil.Equal(t0.Add(DefaultValidity)) {
		t.Errorf("ValidUntil = %v", sk.ValidUntil)
	}
	if len(sk.VerifyKeys) != 2 || !sk.VerifyKeys["ed25519:a"].Equal(pubOf(keyA.Key)) || !sk.VerifyKeys["ed25519:b"].Equal(pubOf(keyB.Key)) {
		t.Errorf("VerifyKeys = %v", sk.VerifyKeys)
	}
	if old := sk.OldVerifyKeys["ed25519:old"]; !old.Key.Equal(pubOf(keyOld)) || !old.Expired.Equal(t0.Add(-time.Hour)) {
		t.Errorf("OldVerifyKeys = %v", sk.OldVerifyKeys)
	}
	if !bytes.Equal(sk.NoiseKey, noiseKey) {
		t.Errorf("NoiseKey = %x", sk.NoiseKey)
	}
	// The published binding is the noise package's binding signature.
	v, _ := event.ParseJSON(raw)
	sigB64 := v.(map[string]any)[NoiseKeyField].(map[string]any)["signatures"].(map[string]any)["ed25519:b"].(string)
	sig, _ := event.DecodeBase64(sigB64)
	if !noise.VerifyBinding("hs.example:8448", noiseKey, pubOf(keyB.Key), sig) {
		t.Error("binding signature does not verify with noise.VerifyBinding")
	}
}

// resign replaces a response's signatures by signatures of the given keys,
// after edit changed the object, so tests can build responses that are
// validly signed but wrong in one way.
func resign(t *testing.T, raw []byte, server string, edit func(m map[string]any), signers ...SigningKey) []byte {
	t.Helper()
	v, err := event.ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	delete(m, "signatures")
	edit(m)
	out, err := event.MarshalCanonical(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range signers {
		if out, err = event.SignJSON(out, server, k.ID, k.Key); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestParseRejects(t *testing.T) {
	good := ownResponse(t, Own{ServerName: "hs.example", Keys: []SigningKey{keyA, keyB}, NoiseKey: noiseKey})
	noop := func(map[string]any) {}
	cases := []struct {
		name string
		raw  []byte
	}{
		{"not JSON", []byte("{")},
		{"array", []byte("[]")},
		{"signed by only one of two verify keys", resign(t, good, "hs.example", noop, keyA)},
		{"signed under another server name", resign(t, good, "evil.example", noop, keyA, keyB)},
		{"forged signature", bytes.Replace(good, []byte(`"ed25519:a":"`), []byte(`"ed25519:a":"A`), 1)},
		{"content changed after signing", bytes.Replace(good, []byte(`"valid_until_ts":`), []byte(`"valid_until_ts":9`), 1)},
		{"no valid_until_ts", resign(t, good, "hs.example", func(m map[string]any) { delete(m, "valid_until_ts") }, keyA, keyB)},
		{"valid_until_ts a string", resign(t, good, "hs.example", func(m map[string]any) { m["valid_until_ts"] = "1" }, keyA, keyB)},
		{"no verify keys", resign(t, good, "hs.example", func(m map[string]any) { m["verify_keys"] = map[string]any{} }, keyA, keyB)},
		{"short key", resign(t, good, "hs.example", func(m map[string]any) {
			m["verify_keys"].(map[string]any)["ed25519:a"] = map[string]any{"key": "AAAA"}
		}, keyA, keyB)},
		{"bad key ID", resign(t, good, "hs.example", func(m map[string]any) {
			vk := m["verify_keys"].(map[string]any)
			vk["ed25519:a-b"] = vk["ed25519:a"]
		}, keyA, keyB, SigningKey{ID: "ed25519:a-b", Key: keyA.Key})},
		{"old key without expired_ts", resign(t, good, "hs.example", func(m map[string]any) {
			m["old_verify_keys"] = map[string]any{"ed25519:o": map[string]any{"key": event.EncodeBase64(pubOf(keyOld))}}
		}, keyA, keyB)},
		{"noise key bound to another key", resign(t, good, "hs.example", func(m map[string]any) {
			nk := m[NoiseKeyField].(map[string]any)
			nk["key"] = event.EncodeBase64(bytes.Repeat([]byte{8}, 32))
		}, keyA, keyB)},
		{"noise binding by a non-current key", resign(t, good, "hs.example", func(m map[string]any) {
			sigs := m[NoiseKeyField].(map[string]any)["signatures"].(map[string]any)
			sigs["ed25519:zz"] = sigs["ed25519:a"]
		}, keyA, keyB)},
		{"noise key without signatures", resign(t, good, "hs.example", func(m map[string]any) {
			m[NoiseKeyField].(map[string]any)["signatures"] = map[string]any{}
		}, keyA, keyB)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.raw, "hs.example"); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("Parse error = %v, want ErrBadResponse", err)
			}
		})
	}
	if _, err := Parse(good, "other.example"); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("Parse for another server name: %v", err)
	}
	// Keys of unknown algorithms are ignored, not fatal.
	other := resign(t, good, "hs.example", func(m map[string]any) {
		m["verify_keys"].(map[string]any)["curve448:x"] = map[string]any{"key": "AAAA"}
	}, keyA, keyB)
	if _, err := Parse(other, "hs.example"); err != nil {
		t.Fatalf("unknown algorithm: %v", err)
	}
}

func TestVerifyFreshness(t *testing.T) {
	raw := ownResponse(t, Own{ServerName: "hs.example", Keys: []SigningKey{keyA}, Validity: time.Hour})
	if _, err := Verify(raw, "hs.example", t0.Add(time.Hour-time.Millisecond)); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	if _, err := Verify(raw, "hs.example", t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
}

func TestValidUntilCappedAtSevenDays(t *testing.T) {
	raw := ownResponse(t, Own{ServerName: "hs.example", Keys: []SigningKey{keyA}, Validity: 30 * 24 * time.Hour})
	sk, err := Parse(raw, "hs.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := sk.ValidUntilFor(t0); !got.Equal(t0.Add(MaxValidity)) {
		t.Fatalf("ValidUntilFor = %v, want fetch time + 7 days", got)
	}
}

func TestCache(t *testing.T) {
	c := &Cache{Store: &MemoryStore{}}
	if _, err := c.RequestKey("hs.example", "ed25519:a", t0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("empty cache: %v", err)
	}
	first := ownResponse(t, Own{ServerName: "hs.example", Keys: []SigningKey{keyA}, Validity: 2 * time.Hour})
	sk, err := Verify(first, "hs.example", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(sk, t0); err != nil {
		t.Fatal(err)
	}
	if k, err := c.RequestKey("hs.example", "ed25519:a", t0.Add(time.Hour)); err != nil || !k.Equal(pubOf(keyA.Key)) {
		t.Fatalf("RequestKey within validity: %v", err)
	}
	if _, err := c.RequestKey("hs.example", "ed25519:a", t0.Add(3*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("RequestKey after validity: %v, want ErrExpired", err)
	}
	if _, err := c.EventKey("hs.example", "ed25519:a", t0.Add(time.Hour)); err != nil {
		t.Fatalf("EventKey within validity: %v", err)
	}

	// The server rotates: a is retired at t0+1h30, b is current. The new
	// response arrives at t0+1h.
	rot, err := ServerResponse(Own{ServerName: "hs.example", Keys: []SigningKey{keyB}, Validity: 24 * time.Hour,
		Old: map[string]OldKey{"ed25519:a": {Key: pubOf(keyA.Key), Expired: t0.Add(90 * time.Minute)}}}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sk2, err := Verify(rot, "hs.example", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(sk2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestKey("hs.example", "ed25519:a", t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("retired key signing a request: %v, want ErrExpired", err)
	}
	if _, err := c.EventKey("hs.example", "ed25519:a", t0.Add(80*time.Minute)); err != nil {
		t.Fatalf("retired key, event before expired_ts: %v", err)
	}
	if _, err := c.EventKey("hs.example", "ed25519:a", t0.Add(90*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("retired key, event at expired_ts: %v, want ErrExpired", err)
	}
	if _, err := c.RequestKey("hs.example", "ed25519:b", t0.Add(20*time.Hour)); err != nil {
		t.Fatalf("new key: %v", err)
	}

	// The first response replayed late (say, from a notary) changes
	// nothing: a stays retired, and the stored response stays the newer.
	if err := c.Add(sk, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestKey("hs.example", "ed25519:a", t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("replayed old response revived a retired key: %v", err)
	}
	rs, _ := c.Responses("hs.example")
	if len(rs) != 1 || !bytes.Equal(rs[0], sk2.Raw) {
		t.Fatalf("stored response is not the newest")
	}
}

func TestNotary(t *testing.T) {
	c := &Cache{Store: &MemoryStore{}}
	raw := ownResponse(t, Own{ServerName: "remote.example", Keys: []SigningKey{keyA}, Validity: 10 * time.Hour})
	sk, err := Verify(raw, "remote.example", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add(sk, t0); err != nil {
		t.Fatal(err)
	}
	req := []byte(`{"server_keys":{"remote.example":{"ed25519:a":{"minimum_valid_until_ts":` +
		itoa(t0.Add(5*time.Hour).UnixMilli()) + `}},"unknown.example":{}}}`)
	crit, err := ParseQueryRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	notaryKey := SigningKey{ID: "ed25519:n", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))}
	body, err := QueryResponse(crit, c, "notary.example", []SigningKey{notaryKey}, t0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(id string) (ed25519.PublicKey, bool) {
		if id == "ed25519:n" {
			return pubOf(notaryKey.Key), true
		}
		return nil, false
	}
	got, err := ParseQueryResponse(body, "notary.example", crit, lookup)
	if err != nil {
		t.Fatalf("ParseQueryResponse: %v\n%s", err, body)
	}
	if len(got["remote.example"]) != 1 || len(got) != 1 {
		t.Fatalf("entries = %v", got)
	}
	if !got["remote.example"][0].VerifyKeys["ed25519:a"].Equal(pubOf(keyA.Key)) {
		t.Fatal("wrong key in notary answer")
	}

	// A minimum past every known response still returns the freshest.
	crit["remote.example"]["ed25519:a"] = t0.Add(100 * time.Hour)
	body, err = QueryResponse(crit, c, "notary.example", []SigningKey{notaryKey}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseQueryResponse(body, "notary.example", crit, lookup); err != nil || len(got["remote.example"]) != 1 {
		t.Fatalf("stale answer: %v %v", got, err)
	}

	// A notary answer without the notary's signature, or for a server not
	// asked about, is rejected.
	if _, err := ParseQueryResponse(body, "other-notary.example", crit, lookup); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("wrong notary: %v", err)
	}
	if _, err := ParseQueryResponse(body, "notary.example", Criteria{"x.example": nil}, lookup); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("unasked server: %v", err)
	}
	tampered := bytes.Replace(body, []byte(`"server_name":"remote.example"`), []byte(`"server_name":"remote.example","x":1`), 1)
	if _, err := ParseQueryResponse(tampered, "notary.example", crit, lookup); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestParseQueryRequestRejects(t *testing.T) {
	for _, in := range []string{`{}`, `[]`, `{"server_keys":[]}`, `{"server_keys":{"a":1}}`,
		`{"server_keys":{"a":{"k":1}}}`, `{"server_keys":{"a":{"k":{"minimum_valid_until_ts":"x"}}}}`,
		`{"server_keys":{"a":{"k":{"minimum_valid_until_ts":-1}}}}`} {
		if _, err := ParseQueryRequest([]byte(in)); err == nil {
			t.Errorf("ParseQueryRequest(%s) accepted", in)
		}
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
