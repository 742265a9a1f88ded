package xmatrix

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/event"
)

var (
	testNow  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	testSeed = []byte("0123456789abcdef0123456789abcdef")
	testKey  = ed25519.NewKeyFromSeed(testSeed)
)

func lookupFor(server, keyID string, pub ed25519.PublicKey) KeyLookup {
	return func(s, k string, at time.Time) (ed25519.PublicKey, error) {
		if s == server && k == keyID {
			return pub, nil
		}
		return nil, fmt.Errorf("no key %s for %s", k, s)
	}
}

func TestSigningBytesGolden(t *testing.T) {
	r := Request{Method: "PUT", URI: "/_matrix/federation/v1/send/1?x=%20y", Origin: "origin.example", Destination: "dest.example:8448",
		Content: []byte(`{ "pdus": [], "origin": "origin.example", "b": 1 }`)}
	got, err := r.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"content":{"b":1,"origin":"origin.example","pdus":[]},"destination":"dest.example:8448","method":"PUT","origin":"origin.example","uri":"/_matrix/federation/v1/send/1?x=%20y"}`
	if string(got) != want {
		t.Fatalf("signing bytes\n got %s\nwant %s", got, want)
	}
	r.Content = nil
	got, err = r.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	want = `{"destination":"dest.example:8448","method":"PUT","origin":"origin.example","uri":"/_matrix/federation/v1/send/1?x=%20y"}`
	if string(got) != want {
		t.Fatalf("signing bytes without body\n got %s\nwant %s", got, want)
	}
}

func TestSignGolden(t *testing.T) {
	h, err := Sign(Request{Method: "GET", URI: "/_matrix/federation/v1/version", Origin: "a.example", Destination: "b.example"}, "ed25519:k1", testKey)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	// The signature is deterministic (RFC 8032): a change here means the
	// signed bytes changed.
	msg := `{"destination":"b.example","method":"GET","origin":"a.example","uri":"/_matrix/federation/v1/version"}`
	wantSig := event.EncodeBase64(ed25519.Sign(testKey, []byte(msg)))
	want := `X-Matrix origin="a.example",destination="b.example",key="ed25519:k1",sig="` + wantSig + `"`
	if s != want {
		t.Fatalf("header\n got %s\nwant %s", s, want)
	}
}

func TestVerify(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	otherKey := ed25519.NewKeyFromSeed([]byte("fedcba9876543210fedcba9876543210"))
	body := []byte(`{"pdus":[],"edus":[]}`)
	uri := "/_matrix/federation/v1/send/txn1"
	sign := func(r Request, key ed25519.PrivateKey) string {
		t.Helper()
		h, err := Sign(r, "ed25519:k1", key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := Request{Method: "PUT", URI: uri, Origin: "a.example", Destination: "b.example", Content: body}
	goodHdr := sign(good, testKey)
	noDest := strings.Replace(goodHdr, `destination="b.example",`, "", 1)
	sigOf := goodHdr[strings.Index(goodHdr, `sig="`)+5 : len(goodHdr)-1]

	tests := []struct {
		name    string
		method  string
		uri     string
		body    []byte
		hdr     string
		wantErr error
		code    string
	}{
		{"valid", "PUT", uri, body, goodHdr, nil, ""},
		{"valid without destination", "PUT", uri, body, noDest, nil, ""},
		{"valid, params reordered, names upper case, unquoted token values", "PUT", uri, body,
			`x-matrix SIG="` + sigOf + `", Key=ed25519:k1 ,Origin=a.example,DESTINATION=b.example,extra=1`, nil, ""},
		{"body differs", "PUT", uri, []byte(`{"pdus":[],"edus":[1]}`), goodHdr, ErrForbidden, "M_FORBIDDEN"},
		{"body whitespace only differs", "PUT", uri, []byte("{ \"edus\": [], \"pdus\": [] }"), goodHdr, nil, ""},
		{"method differs", "POST", uri, body, goodHdr, ErrForbidden, "M_FORBIDDEN"},
		{"uri differs", "PUT", uri + "x", body, goodHdr, ErrForbidden, "M_FORBIDDEN"},
		{"forged signature", "PUT", uri, body, sign(good, otherKey), ErrForbidden, "M_FORBIDDEN"},
		{"origin claims another server", "PUT", uri, body, strings.Replace(goodHdr, `origin="a.example"`, `origin="c.example"`, 1), ErrForbidden, "M_FORBIDDEN"},
		{"wrong destination", "PUT", uri, body, sign(Request{Method: "PUT", URI: uri, Origin: "a.example", Destination: "c.example", Content: body}, testKey), ErrUnauthorized, "M_UNAUTHORIZED"},
		{"signed for another destination, parameter dropped", "PUT", uri, body,
			strings.Replace(sign(Request{Method: "PUT", URI: uri, Origin: "a.example", Destination: "c.example", Content: body}, testKey), `destination="c.example",`, "", 1),
			ErrForbidden, "M_FORBIDDEN"},
		{"unknown key", "PUT", uri, body, strings.Replace(goodHdr, "ed25519:k1", "ed25519:k2", 1), ErrForbidden, "M_FORBIDDEN"},
		{"unsupported algorithm", "PUT", uri, body, strings.Replace(goodHdr, "ed25519:k1", "curve25519:k1", 1), ErrUnauthorized, "M_UNAUTHORIZED"},
		{"missing header", "PUT", uri, body, "", ErrUnauthorized, "M_UNAUTHORIZED"},
		{"bearer scheme", "PUT", uri, body, "Bearer abc", ErrUnauthorized, "M_UNAUTHORIZED"},
		{"missing sig", "PUT", uri, body, `X-Matrix origin="a.example",destination="b.example",key="ed25519:k1"`, ErrUnauthorized, "M_UNAUTHORIZED"},
		{"sig not base64", "PUT", uri, body, `X-Matrix origin="a.example",key="ed25519:k1",sig="!!!"`, ErrUnauthorized, "M_UNAUTHORIZED"},
		{"sig too short", "PUT", uri, body, `X-Matrix origin="a.example",key="ed25519:k1",sig="AAAA"`, ErrUnauthorized, "M_UNAUTHORIZED"},
		{"body not JSON", "PUT", uri, []byte("not json"), goodHdr, ErrUnauthorized, "M_UNAUTHORIZED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Verify(tc.method, tc.uri, tc.body, tc.hdr, "b.example", testNow, lookupFor("a.example", "ed25519:k1", pub))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if h.Origin != "a.example" || h.KeyID != "ed25519:k1" {
					t.Fatalf("header %+v", h)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tc.wantErr)
			}
			status, code, ok := Status(err)
			if !ok || status != 401 || code != tc.code {
				t.Fatalf("Status = %d %q %v, want 401 %q", status, code, ok, tc.code)
			}
		})
	}
}

func TestVerifyPassesTimeToLookup(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	r := Request{Method: "GET", URI: "/_matrix/federation/v1/version", Origin: "a.example", Destination: "b.example"}
	h, err := Sign(r, "ed25519:k1", testKey)
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := h.Format()
	expires := testNow.Add(time.Hour)
	lookup := func(s, k string, at time.Time) (ed25519.PublicKey, error) {
		if at.After(expires) {
			return nil, errors.New("key expired")
		}
		return pub, nil
	}
	if _, err := Verify(r.Method, r.URI, nil, hdr, "b.example", testNow, lookup); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if _, err := Verify(r.Method, r.URI, nil, hdr, "b.example", expires.Add(time.Millisecond), lookup); !errors.Is(err, ErrForbidden) {
		t.Fatalf("after expiry: %v, want ErrForbidden", err)
	}
}

func TestParseHeader(t *testing.T) {
	ok := []struct {
		in   string
		want Header
	}{
		{`X-Matrix origin="o",destination="d",key="ed25519:1",sig="s"`, Header{"o", "d", "ed25519:1", "s"}},
		{`X-Matrix origin=o,key=ed25519:1,sig=s`, Header{"o", "", "ed25519:1", "s"}},
		{"  x-MATRIX   origin = \"o\" ,\t key=\"ed25519:1\",,sig=\"s\", ", Header{"o", "", "ed25519:1", "s"}},
		{`X-Matrix origin="o\"q\\",key="ed25519:1",sig="s",foo="b,a=r"`, Header{`o"q\`, "", "ed25519:1", "s"}},
		{`X-Matrix origin="[::1]:8448",key="ed25519:1",sig="a+b/c"`, Header{"[::1]:8448", "", "ed25519:1", "a+b/c"}},
	}
	for _, tc := range ok {
		got, err := ParseHeader(tc.in)
		if err != nil {
			t.Errorf("ParseHeader(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseHeader(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	bad := []string{
		``,
		`X-Matrix`,
		`X-Matrix `,
		`X-Matrixorigin="o",key="k",sig="s"`,
		`Basic dXNlcjpwYXNz`,
		`X-Matrix origin="o",key="k"`,
		`X-Matrix origin="o",key="k",sig=""`,
		`X-Matrix origin="o,key="k",sig="s"`,
		`X-Matrix origin="o",key="k",sig="s\`,
		`X-Matrix origin="o",origin="p",key="k",sig="s"`,
		`X-Matrix origin="o",ORIGIN="p",key="k",sig="s"`,
		`X-Matrix origin="o" key="k",sig="s"`,
		`X-Matrix origin,key="k",sig="s"`,
		`X-Matrix origin=,key="k",sig="s"`,
		`X-Matrix origin=a/b,key="k",sig="s"`,
		`X-Matrix =o,key="k",sig="s"`,
		"X-Matrix origin=\"o\x01\",key=\"k\",sig=\"s\"",
		`X-Matrix origin="o",destination="",key="k",sig="s"`,
		`X-Matrix origin="o",key="k",sig="` + strings.Repeat("A", MaxHeaderLen) + `"`,
	}
	for _, in := range bad {
		h, err := ParseHeader(in)
		if err == nil {
			t.Errorf("ParseHeader(%q) = %+v, want error", in, h)
			continue
		}
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("ParseHeader(%q) error %v does not wrap ErrUnauthorized", in, err)
		}
	}
}

func TestFormatRejectsControlBytes(t *testing.T) {
	if _, err := (Header{Origin: "o\n", KeyID: "ed25519:1", Sig: "s"}).Format(); err == nil {
		t.Fatal("Format accepted a newline")
	}
	if _, err := (Header{Origin: "o", KeyID: "ed25519:1"}).Format(); err == nil {
		t.Fatal("Format accepted an empty sig")
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(`X-Matrix origin="o",destination="d",key="ed25519:1",sig="s"`)
	f.Add(`x-matrix ORIGIN=o:1 , key=ed25519:a,sig="a\"b",z=1,,`)
	f.Add(`X-Matrix origin="\\",key="ed25519:x",sig="\` + "\x80" + `"`)
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseHeader(in)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			return
		}
		// Whatever parses must format and parse back to the same header.
		s, err := h.Format()
		if err != nil {
			t.Fatalf("Format(%+v) of a parsed header: %v", h, err)
		}
		h2, err := ParseHeader(s)
		if err != nil {
			t.Fatalf("ParseHeader(Format(%+v)) = %q: %v", h, s, err)
		}
		if h2 != h {
			t.Fatalf("round trip: %+v → %q → %+v", h, s, h2)
		}
	})
}
