package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/keys"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// fedTestServer is a loopback TLS server named "127.0.0.1:PORT" that
// publishes its keys and answers one authenticated endpoint, checking the
// X-Matrix signature against the origin's keys it was given.
type fedTestServer struct {
	name    string
	srv     *httptest.Server
	origins *keys.Cache
	gotHost string
	gotURI  string
	gotSNI  string
}

func newFedTestServer(t *testing.T, key keys.SigningKey) (*fedTestServer, *tls.Config) {
	t.Helper()
	cert, pool := fedTestCert(t)
	s := &fedTestServer{origins: &keys.Cache{Store: &keys.MemoryStore{}}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_matrix/key/v2/server":
			raw, err := keys.ServerResponse(keys.Own{ServerName: s.name, Keys: []keys.SigningKey{key}}, time.Now())
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(raw)
		case "/_matrix/federation/v1/echo":
			s.gotHost, s.gotURI, s.gotSNI = r.Host, r.RequestURI, r.TLS.ServerName
			body, _ := io.ReadAll(r.Body)
			h, err := xmatrix.Verify(r.Method, r.RequestURI, body, r.Header.Get("Authorization"), s.name, time.Now(), s.origins.RequestKey)
			if err != nil {
				status, code, _ := xmatrix.Status(err)
				w.WriteHeader(status)
				json.NewEncoder(w).Encode(map[string]string{"errcode": code, "error": err.Error()})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"origin": h.Origin, "body": json.RawMessage(body)})
		default:
			http.NotFound(w, r)
		}
	}))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.name = s.srv.Listener.Addr().String()
	return s, &tls.Config{RootCAs: pool}
}

func TestFederationClientSignsAndVerifiesTLS(t *testing.T) {
	serverKey := keys.SigningKey{ID: "ed25519:srv", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))}
	s, trust := newFedTestServer(t, serverKey)
	ourKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, 32))
	const ourName = "origin.test"
	// The test server knows our key as if it had fetched it.
	raw, err := keys.ServerResponse(keys.Own{ServerName: ourName, Keys: []keys.SigningKey{{ID: "ed25519:o", Key: ourKey}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.Verify(raw, ourName, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.origins.Add(sk, time.Now()); err != nil {
		t.Fatal(err)
	}

	c, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: ourName, KeyID: "ed25519:o", Key: ourKey, RootCAs: trust.RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Keys over verified TLS, checked with package keys.
	kraw, err := c.GetServerKeys(ctx, s.name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Verify(kraw, s.name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !got.VerifyKeys["ed25519:srv"].Equal(serverKey.Key.Public().(ed25519.PublicKey)) {
		t.Fatal("fetched key differs")
	}

	// A signed PUT with a body and an escaped query is accepted, and the
	// target and Host arrive as signed.
	uri := "/_matrix/federation/v1/echo?user_id=%40alice%3Aexample.org&x=1"
	resp, err := c.Do(ctx, s.name, http.MethodPut, uri, []byte(`{"hello":"world"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.gotURI != uri || s.gotHost != s.name || s.gotSNI != "" {
		t.Fatalf("server saw target %q host %q SNI %q, want %q %q and no SNI (IP literal)", s.gotURI, s.gotHost, s.gotSNI, uri, s.name)
	}
	if want := `{"body":{"hello":"world"},"origin":"origin.test"}`; strings.TrimSpace(string(resp.Body)) != want {
		t.Fatalf("response %s, want %s", resp.Body, want)
	}

	// Another key under the same key ID is a forgery: 401 M_FORBIDDEN.
	forger, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: ourName, KeyID: "ed25519:o",
		Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), RootCAs: trust.RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	_, err = forger.Do(ctx, s.name, http.MethodGet, "/_matrix/federation/v1/echo", nil)
	var fe *FederationError
	if !errors.As(err, &fe) || fe.Status != 401 || fe.ErrCode != "M_FORBIDDEN" {
		t.Fatalf("forged request: %v, want 401 M_FORBIDDEN", err)
	}
}

func TestFederationClientTLSVerification(t *testing.T) {
	serverKey := keys.SigningKey{ID: "ed25519:srv", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))}
	s, _ := newFedTestServer(t, serverKey)
	ourKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, 32))

	// Not trusting the server's certificate: the connection fails.
	strict, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: "o.test", KeyID: "ed25519:o", Key: ourKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.GetServerKeys(context.Background(), s.name); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v, want a certificate error", err)
	}

	// InsecureSkipVerify connects, and says so loudly at construction.
	var logs bytes.Buffer
	insecure, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: "o.test", KeyID: "ed25519:o", Key: ourKey,
		InsecureSkipVerify: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "VERIFICATION IS OFF") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
	if _, err := insecure.GetServerKeys(context.Background(), s.name); err != nil {
		t.Fatalf("insecure client: %v", err)
	}
}

// TestFederationClientDelegation follows a .well-known delegation: the
// request goes to the delegated host, with its name as SNI and Host
// header, while the X-Matrix signature names the server before delegation
// (server-server-api "Request Authentication").
func TestFederationClientDelegation(t *testing.T) {
	cert, pool := fedTestCert(t, "localhost", "example.org")
	ourKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	origins := &keys.Cache{Store: &keys.MemoryStore{}}
	raw, err := keys.ServerResponse(keys.Own{ServerName: "origin.test", Keys: []keys.SigningKey{{ID: "ed25519:o", Key: ourKey}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.Verify(raw, "origin.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := origins.Add(sk, time.Now()); err != nil {
		t.Fatal(err)
	}
	var sni, host string
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni, host = r.TLS.ServerName, r.Host
		body, _ := io.ReadAll(r.Body)
		if _, err := xmatrix.Verify(r.Method, r.RequestURI, body, r.Header.Get("Authorization"), "example.org", time.Now(), origins.RequestKey); err != nil {
			w.WriteHeader(401)
			io.WriteString(w, `{"errcode":"M_UNAUTHORIZED"}`)
			return
		}
		io.WriteString(w, `{"server":{"name":"test"}}`)
	}))
	target.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	target.StartTLS()
	t.Cleanup(target.Close)
	_, port, _ := strings.Cut(target.Listener.Addr().String(), ":")

	wk := newFedWellKnownServer(t)
	wk.set("example.org", fedJSONAnswer(`{"m.server":"localhost:`+port+`"}`))
	disc, err := NewDiscovery(DiscoveryConfig{Client: wk.client, Resolver: &fedFakeResolver{hosts: map[string][]string{"localhost": {"127.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: "origin.test", KeyID: "ed25519:o", Key: ourKey, RootCAs: pool, Discovery: disc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "example.org", http.MethodGet, "/_matrix/federation/v1/version", nil); err != nil {
		t.Fatal(err)
	}
	if sni != "localhost" || host != "localhost:"+port {
		t.Fatalf("SNI %q Host %q, want localhost and localhost:%s", sni, host, port)
	}
}
