package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// Interop with Dendrite v0.13.8, a federation peer nobody here wrote
// (DESIGN.md "Testing"). .ci/dendrite.sh installs it and prints its bin
// directory, which the tests find in MXMESH_DENDRITE_BIN.

// dendriteEnv is the env var naming the directory holding the dendrite and
// generate-keys binaries.
const dendriteEnv = "MXMESH_DENDRITE_BIN"

// dendriteBinDir returns the binary directory, skipping the test when it
// is not configured outside CI and failing it inside CI.
func dendriteBinDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(dendriteEnv)
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set in CI: run .ci/dendrite.sh and export its output", dendriteEnv)
		}
		t.Skipf("Dendrite interop: %s is not set (run .ci/dendrite.sh and export %s=<its output>)", dendriteEnv, dendriteEnv)
	}
	for _, b := range []string{"dendrite", "generate-keys"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("Dendrite interop: %s: %v", dendriteEnv, err)
		}
	}
	return dir
}

// dendrite is a running Dendrite monolith on loopback.
type dendrite struct {
	// Name is the server name, "127.0.0.1:<https port>".
	Name string
	// ClientURL is the plain-HTTP client API base URL.
	ClientURL string
	// CertPool trusts the TLS certificate Dendrite serves.
	CertPool *x509.CertPool
	dir      string
}

// fedFreePort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func fedFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dendriteConfig is Dendrite's YAML config (config version 2) for a test
// server: SQLite per component under dir, loopback only, no notaries,
// TLS checks of peers off, open registration, no rate limits, cheap
// bcrypt. PEERS.md explains each setting.
func dendriteConfig(serverName, dir string) string {
	db := func(name string) string {
		return fmt.Sprintf("\n    connection_string: %q", "file:"+filepath.Join(dir, "dendrite_"+name+".db"))
	}
	return `version: 2
global:
  server_name: "` + serverName + `"
  private_key: "` + filepath.Join(dir, "matrix_key.pem") + `"
  key_validity_period: 168h0m0s
  trusted_third_party_id_servers: []
  disable_federation: false
  presence:
    enable_inbound: true
    enable_outbound: true
  report_stats:
    enabled: false
  jetstream:
    storage_path: "` + filepath.Join(dir, "jetstream") + `"
    topic_prefix: Dendrite
  metrics:
    enabled: false
  dns_cache:
    enabled: false
app_service_api:
  config_files: []
client_api:
  registration_disabled: false
  guests_disabled: true
  enable_registration_captcha: false
  rate_limiting:
    enabled: false
federation_api:
  database:` + db("federationapi") + `
  send_max_retries: 16
  disable_tls_validation: true
  disable_http_keepalives: false
  key_perspectives: []
  prefer_direct_fetch: true
key_server:
  database:` + db("keyserver") + `
media_api:
  database:` + db("mediaapi") + `
  base_path: "` + filepath.Join(dir, "media") + `"
room_server:
  database:` + db("roomserver") + `
relay_api:
  database:` + db("relayapi") + `
sync_api:
  database:` + db("syncapi") + `
  search:
    enabled: false
user_api:
  account_database:` + db("userapi") + `
  bcrypt_cost: 4
mscs:
  database:` + db("mscs") + `
  mscs: []
tracing:
  enabled: false
logging:
  - type: std
    level: info
`
}

// startDendrite writes keys, a certificate and a config into a temporary
// directory, starts Dendrite, waits until its client API answers, and
// stops it when the test ends (printing its log if the test failed).
func startDendrite(t *testing.T) *dendrite {
	t.Helper()
	return startRestartableDendrite(t).dendrite
}

func fedTail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// register creates a user on Dendrite with the m.login.dummy flow
// (client-server-api "Account registration"; two steps: get a session,
// then complete the dummy stage).
func (d *dendrite) register(t *testing.T, user, password string) {
	t.Helper()
	post := func(body map[string]any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(d.ClientURL+"/_matrix/client/v3/register", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	req := map[string]any{"username": user, "password": password, "inhibit_login": true}
	status, out := post(req)
	if status == http.StatusUnauthorized {
		session, _ := out["session"].(string)
		req["auth"] = map[string]any{"type": "m.login.dummy", "session": session}
		status, out = post(req)
	}
	if status != http.StatusOK {
		t.Fatalf("register %s on dendrite: HTTP %d %v", user, status, out)
	}
}

func TestDendriteServerKeys(t *testing.T) {
	d := startDendrite(t)
	ourKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{11}, 32))
	// Dendrite's certificate is verified (trusted through the pool), not
	// skipped.
	c, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: "mxmesh.test", KeyID: "ed25519:m", Key: ourKey, RootCAs: d.CertPool})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.GetServerKeys(context.Background(), d.Name)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.Verify(raw, d.Name, time.Now())
	if err != nil {
		t.Fatalf("verify Dendrite's key response: %v\n%s", err, raw)
	}
	pem, err := os.ReadFile(filepath.Join(d.dir, "matrix_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for id := range sk.VerifyKeys {
		if strings.Contains(string(pem), "Key-ID: "+id) {
			found = true
		}
	}
	if !found {
		t.Fatalf("Dendrite's verify keys %v do not include the key ID in its key file", sk.VerifyKeys)
	}
	cache := &keys.Cache{Store: &keys.MemoryStore{}}
	if err := cache.Add(sk, time.Now()); err != nil {
		t.Fatal(err)
	}
	for id := range sk.VerifyKeys {
		if _, err := cache.RequestKey(d.Name, id, time.Now()); err != nil {
			t.Fatalf("cached Dendrite key: %v", err)
		}
	}
}

// ourKeyServer is a loopback TLS server named "127.0.0.1:PORT" that
// publishes our signed key response, as our federation listener will.
type ourKeyServer struct {
	name    string
	mu      sync.Mutex
	fetches int
}

func startOurKeyServer(t *testing.T, key keys.SigningKey) *ourKeyServer {
	t.Helper()
	ks := &ourKeyServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/key/v2/server" && !strings.HasPrefix(r.URL.Path, "/_matrix/key/v2/server/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errcode":"M_UNRECOGNIZED","error":"not here"}`)
			return
		}
		ks.mu.Lock()
		ks.fetches++
		ks.mu.Unlock()
		raw, err := keys.ServerResponse(keys.Own{ServerName: ks.name, Keys: []keys.SigningKey{key},
			NoiseKey: bytes.Repeat([]byte{4}, keys.NoiseKeySize)}, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(raw)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	ks.name = ln.Addr().String()
	certPEM, keyPEM, err := SelfSignedCert(ks.name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return ks
}

func TestDendriteAcceptsOurSignature(t *testing.T) {
	d := startDendrite(t)
	d.register(t, "alice", "interop-password-1")

	ourKey := keys.SigningKey{ID: "ed25519:mx1", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{12}, 32))}
	ks := startOurKeyServer(t, ourKey)
	ctx := context.Background()
	c, err := NewFederationClient(FederationClientConfig{AllowPrivateAddresses: true, ServerName: ks.name, KeyID: ourKey.ID, Key: ourKey.Key, RootCAs: d.CertPool})
	if err != nil {
		t.Fatal(err)
	}
	uri := "/_matrix/federation/v1/query/profile?user_id=" + url.QueryEscape("@alice:"+d.Name)
	resp, err := c.Do(ctx, d.Name, http.MethodGet, uri, nil)
	if err != nil {
		t.Fatalf("signed profile query: %v", err)
	}
	var profile map[string]any
	if err := json.Unmarshal(resp.Body, &profile); err != nil {
		t.Fatalf("profile: %v: %s", err, resp.Body)
	}
	if profile["displayname"] != "alice" {
		t.Fatalf("profile = %s, want displayname alice", resp.Body)
	}
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("spoke %s to Dendrite, want HTTP/2.0 (it offers h2)", resp.Proto)
	}
	ks.mu.Lock()
	fetches := ks.fetches
	ks.mu.Unlock()
	if fetches == 0 {
		t.Fatal("Dendrite accepted the request without fetching our keys")
	}

	// The same key ID with another key: Dendrite has our real key and
	// must reject the signature.
	forged := []struct {
		name string
		cfg  FederationClientConfig
	}{
		{"another key under our key ID", FederationClientConfig{AllowPrivateAddresses: true, ServerName: ks.name, KeyID: ourKey.ID,
			Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{13}, 32)), RootCAs: d.CertPool}},
		{"a key ID we never published", FederationClientConfig{AllowPrivateAddresses: true, ServerName: ks.name, KeyID: "ed25519:nope",
			Key: ourKey.Key, RootCAs: d.CertPool}},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			fc, err := NewFederationClient(f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := fc.Do(ctx, d.Name, http.MethodGet, uri, nil)
			var fe *FederationError
			if !errors.As(err, &fe) || (fe.Status != http.StatusUnauthorized && fe.Status != http.StatusForbidden) {
				t.Fatalf("forged request: %v, want HTTP 401 or 403", err)
			}
			t.Logf("Dendrite rejected it: HTTP %d %s", fe.Status, resp.Body)
		})
	}
}

// registerAndLogin registers a user and returns an access token.
func (d *dendrite) registerAndLogin(t *testing.T, user, password string) string {
	t.Helper()
	d.register(t, user, password)
	b, _ := json.Marshal(map[string]any{"type": "m.login.password", "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user}})
	resp, err := http.Post(d.ClientURL+"/_matrix/client/v3/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.AccessToken == "" {
		t.Fatalf("login %s on dendrite: HTTP %d %v", user, resp.StatusCode, err)
	}
	return out.AccessToken
}
