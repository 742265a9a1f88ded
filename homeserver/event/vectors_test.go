package event

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

// Spec: appendices.md "Cryptographic Test Vectors".
const (
	specSeed   = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
	specServer = "domain"
	specKeyID  = "ed25519:1"
)

func specKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	seed, err := DecodeBase64(specSeed)
	if err != nil {
		t.Fatalf("decode seed: %v", err)
	}
	if len(seed) != ed25519.SeedSize {
		t.Fatalf("seed is %d bytes", len(seed))
	}
	return KeyFromSeed(seed)
}

func TestSpecVectorSignJSON(t *testing.T) {
	key := specKey(t)
	pub := key.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"minimal object", `{}`,
			`{"signatures":{"domain":{"ed25519:1":"K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}}`},
		{"object with data", `{"one": 1, "two": "Two"}`,
			`{"one":1,"signatures":{"domain":{"ed25519:1":"KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},"two":"Two"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SignJSON([]byte(tc.in), specServer, specKeyID, key)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("SignJSON:\n got %s\nwant %s", got, tc.want)
			}
			if err := VerifyJSON(got, specServer, specKeyID, pub); err != nil {
				t.Fatalf("VerifyJSON: %v", err)
			}
		})
	}
}

func TestSpecVectorSignEvent(t *testing.T) {
	key := specKey(t)
	pub := key.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name, in, wantHash, want string
	}{
		{
			name: "minimally-sized event",
			in: `{
				"room_id": "!x:domain",
				"sender": "@a:domain",
				"origin": "domain",
				"origin_server_ts": 1000000,
				"signatures": {},
				"hashes": {},
				"type": "X",
				"content": {},
				"prev_events": [],
				"auth_events": [],
				"depth": 3,
				"unsigned": {"age_ts": 1000000}
			}`,
			wantHash: "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos",
			want: `{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},` +
				`"origin":"domain","origin_server_ts":1000000,"prev_events":[],"room_id":"!x:domain","sender":"@a:domain",` +
				`"signatures":{"domain":{"ed25519:1":"KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},` +
				`"type":"X","unsigned":{"age_ts":1000000}}`,
		},
		{
			name: "event containing redactable content",
			in: `{
				"content": {"body": "Here is the message content"},
				"event_id": "$0:domain",
				"origin": "domain",
				"origin_server_ts": 1000000,
				"type": "m.room.message",
				"room_id": "!r:domain",
				"sender": "@u:domain",
				"signatures": {},
				"unsigned": {"age_ts": 1000000}
			}`,
			wantHash: "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g",
			want: `{"content":{"body":"Here is the message content"},"event_id":"$0:domain",` +
				`"hashes":{"sha256":"onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},"origin":"domain","origin_server_ts":1000000,` +
				`"room_id":"!r:domain","sender":"@u:domain",` +
				`"signatures":{"domain":{"ed25519:1":"Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"}},` +
				`"type":"m.room.message","unsigned":{"age_ts":1000000}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ContentHash([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodeBase64(h); got != tc.wantHash {
				t.Fatalf("content hash %s, want %s", got, tc.wantHash)
			}
			hashed, err := AddContentHash([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckContentHash(hashed); err != nil {
				t.Fatalf("CheckContentHash: %v", err)
			}
			// The vectors predate room version 11 and keep the top-level
			// "origin", so they are signed with version 10's redaction.
			got, err := SignEvent(hashed, V10, specServer, specKeyID, key)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("SignEvent:\n got %s\nwant %s", got, tc.want)
			}
			if err := VerifyEventSignature(got, V10, specServer, specKeyID, pub); err != nil {
				t.Fatalf("VerifyEventSignature: %v", err)
			}
			// A redacted copy still verifies; a changed one does not.
			red, err := Redact(got, V10)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyEventSignature(red, V10, specServer, specKeyID, pub); err != nil {
				t.Fatalf("redacted copy: %v", err)
			}
			// Changing a signed key breaks the signature.
			obj, err := parseObject(got)
			if err != nil {
				t.Fatal(err)
			}
			obj["sender"] = "@mallory:domain"
			tampered, err := MarshalCanonical(obj)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyEventSignature(tampered, V10, specServer, specKeyID, pub); !errors.Is(err, ErrSignature) {
				t.Fatalf("tampered event: got %v, want ErrSignature", err)
			}
		})
	}
}
