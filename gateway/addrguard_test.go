package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "2a00:1450::1": true, "64:ff9b::808:808": true, "2002:808:808::1": true,
		"192.0.2.1": false, "198.51.100.7": false, "203.0.113.9": false, "192.88.99.1": false,
		"fec0::1": false, "100::1": false, "::7f00:1": false,
		"64:ff9b::a9fe:a9fe":     false, // NAT64 of 169.254.169.254
		"2002:a00:5::1":          false, // 6to4 of 10.0.0.5
		"::ffff:169.254.169.254": false,
	} {
		if got := publicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestAddrGuardControl(t *testing.T) {
	refused := errors.New("refused (test.setting)")
	g := &addrGuard{allowed: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}, refused: refused}
	for addr, ok := range map[string]bool{
		"8.8.8.8:443": true, "[2a00:1450::1]:8448": true,
		"10.1.2.3:8448": true, "[::ffff:10.1.2.3]:8448": true, "[fd00:1::5]:8448": true,
		"10.2.0.1:8448": false, "[fd00:2::5]:8448": false, "127.0.0.1:6379": false, "[::1]:80": false,
		"169.254.169.254:80": false, "[fe80::1%eth0]:80": false, "0.0.0.0:80": false,
		"not-an-address": false, "example.org:443": false,
	} {
		err := g.control("tcp", addr, nil)
		switch {
		case ok && err != nil:
			t.Errorf("%s refused: %v", addr, err)
		case !ok && !errors.Is(err, refused):
			t.Errorf("%s: %v, want the refusal", addr, err)
		case !ok && !strings.Contains(err.Error(), addr):
			t.Errorf("%s: error %q does not name the address", addr, err)
		}
	}
	var none *addrGuard
	if err := none.control("tcp", "127.0.0.1:80", nil); err != nil || none.dialer(0).Control != nil {
		t.Fatalf("a nil guard refuses: %v", err)
	}
}

// guardTestServer is a loopback HTTPS server with a certificate for names
// that answers every request with {} and counts them.
func guardTestServer(t *testing.T, names ...string) (port string, pool *x509.CertPool, hits *atomic.Int32) {
	t.Helper()
	cert, pool := fedTestCert(t, names...)
	hits = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		io.WriteString(w, "{}")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return port, pool, hits
}

// TestFederationClientRefusesPrivateAddresses: by default a server name
// whose address is loopback is refused before connecting, whether the
// name is an IP literal, resolves to it, or gets there by .well-known or
// SRV; the error names the setting. AllowPrivateAddresses reaches it, and
// AllowedRanges lets one private network through and not another.
func TestFederationClientRefusesPrivateAddresses(t *testing.T) {
	port, pool, hits := guardTestServer(t, "evil.test", "srv.example", "lan.test")
	wk := newFedWellKnownServer(t)
	wk.set("example.org", fedJSONAnswer(`{"m.server":"127.0.0.1:`+port+`"}`))
	res := &fedFakeResolver{
		hosts: map[string][]string{"evil.test": {"127.0.0.1"}, "inner.test": {"127.0.0.1"}, "lan.test": {"192.168.1.1"}},
		srv:   map[string][]*net.SRV{"_matrix-fed._tcp.srv.example": {{Target: "inner.test.", Port: mustPort(t, port)}}},
	}
	disc, err := NewDiscovery(DiscoveryConfig{Resolver: res, Client: wk.client})
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	client := func(allowPrivate bool, ranges ...string) *FederationClient {
		t.Helper()
		cfg := FederationClientConfig{ServerName: "origin.test", KeyID: "ed25519:o", Key: key, RootCAs: pool, Discovery: disc,
			AllowPrivateAddresses: allowPrivate}
		for _, r := range ranges {
			cfg.AllowedRanges = append(cfg.AllowedRanges, netip.MustParsePrefix(r))
		}
		c, err := NewFederationClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(c *FederationClient, dest string) error {
		_, err := c.Do(context.Background(), dest, http.MethodGet, "/_matrix/federation/v1/version", nil)
		return err
	}
	loopbackNames := []string{"127.0.0.1:" + port, "evil.test:" + port, "example.org", "srv.example"}

	guarded := client(false)
	for _, dest := range loopbackNames {
		err := get(guarded, dest)
		if !errors.Is(err, errFedAddress) || !strings.Contains(err.Error(), "federation.allow_private_addresses") {
			t.Errorf("%s: %v, want the private-address refusal naming the setting", dest, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the refused server", n)
	}

	open := client(true)
	for _, dest := range loopbackNames {
		if err := get(open, dest); err != nil {
			t.Errorf("%s with private addresses allowed: %v", dest, err)
		}
	}
	if n := hits.Load(); n != int32(len(loopbackNames)) {
		t.Fatalf("%d requests arrived, want %d", n, len(loopbackNames))
	}

	// 127.0.0.0/8 is let through; 192.168.1.1 is not even dialled.
	ranged := client(false, "127.0.0.0/8")
	if err := get(ranged, "evil.test:"+port); err != nil {
		t.Errorf("allowed range: %v", err)
	}
	if err := get(ranged, "lan.test:"+port); !errors.Is(err, errFedAddress) {
		t.Errorf("a private network outside the allowed range: %v", err)
	}
	if err := get(client(false, "10.0.0.0/8"), "evil.test:"+port); !errors.Is(err, errFedAddress) {
		t.Errorf("loopback with only 10/8 allowed: %v", err)
	}
}

// TestWellKnownClientGuard: the client NewFederationClient makes for
// .well-known refuses a private address unless the guard is off.
func TestWellKnownClientGuard(t *testing.T) {
	port, pool, hits := guardTestServer(t)
	u := "https://127.0.0.1:" + port + "/.well-known/matrix/server"
	guarded := wellKnownClient(&tls.Config{RootCAs: pool}, &addrGuard{refused: errFedAddress})
	if _, err := guarded.Get(u); !errors.Is(err, errFedAddress) || hits.Load() != 0 {
		t.Fatalf("guarded .well-known fetch: %v, %d requests", err, hits.Load())
	}
	resp, err := wellKnownClient(&tls.Config{RootCAs: pool}, nil).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("%d requests, want 1", hits.Load())
	}
}

func mustPort(t *testing.T, s string) uint16 {
	t.Helper()
	p, err := parsePort(s)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(p)
}
