package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver"
)

// TestServeFederationPrivateAddresses: `mxmesh serve` passes the
// federation section to the federation client. A server name at a
// loopback address (here asked for through the unauthenticated key
// notary endpoint) is not connected to by default, and is with
// federation.allow_private_addresses or an allowed_ranges entry covering
// it.
func TestServeFederationPrivateAddresses(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		io.WriteString(w, "{}")
	}))
	target.Config.ErrorLog = log.New(io.Discard, "", 0)
	target.StartTLS()
	defer target.Close()
	for _, tc := range []struct {
		name    string
		fed     homeserver.FederationConfig
		reached bool
	}{
		{"default", homeserver.FederationConfig{}, false},
		{"allowed range", homeserver.FederationConfig{AllowedRanges: []string{"127.0.0.0/8"}}, true},
		{"other range only", homeserver.FederationConfig{AllowedRanges: []string{"10.0.0.0/8"}}, false},
		{"private allowed", homeserver.FederationConfig{AllowPrivateAddresses: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initTestDir(t, "--federation-tls-insecure")
			cfg, err := homeserver.LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Federation = tc.fed
			text, err := cfg.MarshalCommented()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, homeserver.ConfigFile), text, 0o600); err != nil {
				t.Fatal(err)
			}
			plain, _, logs, stop := startServe(t, dir)
			before := hits.Load()
			resp, err := http.Get(plain + "/_matrix/key/v2/query/" + target.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			stop()
			if got := hits.Load() > before; got != tc.reached {
				t.Fatalf("server at %s reached: %v, want %v\n%s", target.Listener.Addr(), got, tc.reached, logs.String())
			}
		})
	}
}
