package xmatrix

import (
	"crypto/ed25519"
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	r := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1700000000000", Origin: "a.example", Destination: "b.example",
		Content: []byte(`{"origin":"a.example","origin_server_ts":1700000000000,"pdus":[],"edus":[{"edu_type":"m.typing","content":{"room_id":"!r:a.example","user_id":"@u:a.example","typing":true}}]}`)}
	b.ReportAllocs()
	for b.Loop() {
		h, err := Sign(r, "ed25519:k1", testKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Format(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	body := []byte(`{"origin":"a.example","origin_server_ts":1700000000000,"pdus":[],"edus":[{"edu_type":"m.typing","content":{"room_id":"!r:a.example","user_id":"@u:a.example","typing":true}}]}`)
	r := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1700000000000", Origin: "a.example", Destination: "b.example", Content: body}
	h, _ := Sign(r, "ed25519:k1", testKey)
	hdr, _ := h.Format()
	pub := testKey.Public().(ed25519.PublicKey)
	lookup := func(string, string, time.Time) (ed25519.PublicKey, error) { return pub, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(r.Method, r.URI, body, hdr, "b.example", testNow, lookup); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	h, _ := Sign(Request{Method: "GET", URI: "/_matrix/federation/v1/version", Origin: "a.example", Destination: "b.example"}, "ed25519:k1", testKey)
	hdr, _ := h.Format()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(hdr); err != nil {
			b.Fatal(err)
		}
	}
}
