package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

type pushAnswer struct {
	status int
	body   []byte
	err    error
}

// pushOnce sends one notification through c and returns the answer that
// was posted into the (stand-in) loop.
func pushOnce(t *testing.T, c *PushClient, posted chan func(), url string, body []byte) pushAnswer {
	t.Helper()
	var got pushAnswer
	c.Notify(url, body, func(status int, resp []byte, err error) { got = pushAnswer{status, resp, err} })
	(<-posted)()
	return got
}

func TestPushClient(t *testing.T) {
	var seen [][]byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, b)
		switch {
		case r.URL.Path == "/big/_matrix/push/v1/notify":
			w.Write(bytes.Repeat([]byte("x"), 1<<20))
		case r.URL.Path == "/moved/_matrix/push/v1/notify":
			http.Redirect(w, r, "/_matrix/push/v1/notify", http.StatusFound)
		case r.Method != "POST" || r.Header.Get("Content-Type") != "application/json":
			w.WriteHeader(http.StatusBadRequest)
		case r.URL.Path == "/fail/_matrix/push/v1/notify":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Write([]byte(`{"rejected":["k2"]}`))
		}
	}))
	defer srv.Close()
	posted := make(chan func(), 1)
	post := func(f func()) error { posted <- f; return nil }
	// The test gateway is on loopback, which only AllowPrivate reaches.
	c, err := NewPushClient(PushClientConfig{Post: post, HTTPClient: srv.Client(), AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := []byte(`{"notification":{"event_id":"$e","devices":[{"app_id":"a","pushkey":"k2"}]}}`)

	a := pushOnce(t, c, posted, srv.URL+"/_matrix/push/v1/notify", body)
	var r struct{ Rejected []string }
	if a.err != nil || a.status != 200 || json.Unmarshal(a.body, &r) != nil || len(r.Rejected) != 1 || r.Rejected[0] != "k2" {
		t.Fatalf("answer %d %s %v", a.status, a.body, a.err)
	}
	if len(seen) != 1 || !bytes.Equal(seen[0], body) {
		t.Fatalf("gateway received %q", seen)
	}
	if a := pushOnce(t, c, posted, srv.URL+"/fail/_matrix/push/v1/notify", body); a.err != nil || a.status != 502 {
		t.Fatalf("5xx: %d %v", a.status, a.err)
	}
	if a := pushOnce(t, c, posted, srv.URL+"/big/_matrix/push/v1/notify", body); a.err != nil || len(a.body) != pushMaxResponse {
		t.Fatalf("big answer: %d bytes read, %v", len(a.body), a.err)
	}
	// Redirects are not followed.
	n := len(seen)
	if a := pushOnce(t, c, posted, srv.URL+"/moved/_matrix/push/v1/notify", body); a.err != nil || a.status != http.StatusFound || len(seen) != n+1 {
		t.Fatalf("redirect: %d %v, %d requests", a.status, a.err, len(seen)-n)
	}

	// By default a gateway at a loopback address is refused when
	// connecting (its name or address is chosen by users), and nothing
	// reaches it.
	guarded, err := NewPushClient(PushClientConfig{Post: post, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	defer guarded.Close()
	n = len(seen)
	if a := pushOnce(t, guarded, posted, srv.URL+"/_matrix/push/v1/notify", body); !errors.Is(a.err, errPushAddress) || len(seen) != n {
		t.Fatalf("loopback gateway: %d %v, %d requests", a.status, a.err, len(seen)-n)
	}
	localhost := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if a := pushOnce(t, guarded, posted, localhost+"/_matrix/push/v1/notify", body); !errors.Is(a.err, errPushAddress) {
		t.Fatalf("a name resolving to loopback: %d %v", a.status, a.err)
	}
	// Without the test server's root the certificate is not trusted.
	strict, err := NewPushClient(PushClientConfig{Post: post, AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if a := pushOnce(t, strict, posted, srv.URL+"/_matrix/push/v1/notify", body); a.err == nil || !strings.Contains(a.err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %d %v", a.status, a.err)
	}
	// A closed client fails at once.
	c.Close()
	if a := pushOnce(t, c, posted, srv.URL+"/_matrix/push/v1/notify", body); a.err == nil {
		t.Fatal("closed client sent")
	}
	if _, err := NewPushClient(PushClientConfig{}); err == nil {
		t.Fatal("client without Post")
	}
}

func TestPushPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450::1": true, "93.184.216.34": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fc00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false,
		"224.0.0.1": false, "240.0.0.1": false, "198.18.0.1": false,
	} {
		if got := publicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", s, got, want)
		}
	}
}
