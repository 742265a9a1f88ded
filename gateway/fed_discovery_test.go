package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

// fedFakeResolver answers from tables and counts nothing: DNS is not cached by
// Discovery.
type fedFakeResolver struct {
	srv   map[string][]*net.SRV // "_service._tcp.name"
	hosts map[string][]string
}

func (f *fedFakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if s, ok := f.srv[key]; ok {
		return key, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

func (f *fedFakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// fedTestCert makes a self-signed certificate for the given DNS names and the
// loopback addresses, and a pool that trusts it.
func fedTestCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mxmesh test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// fedWellKnownServer serves /.well-known/matrix/server per Host header from a
// table, and counts requests per host.
type fedWellKnownServer struct {
	mu     sync.Mutex
	hits   map[string]int
	answer map[string]func(w http.ResponseWriter)
	srv    *httptest.Server
	client *http.Client
}

func newFedWellKnownServer(t *testing.T) *fedWellKnownServer {
	t.Helper()
	s := &fedWellKnownServer{hits: map[string]int{}, answer: map[string]func(http.ResponseWriter){}}
	cert, pool := fedTestCert(t, "example.org", "srv.example", "plain.example", "bad.example", "cc.example", "down.example", "redir.example")
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		s.hits[r.Host]++
		f := s.answer[r.Host]
		s.mu.Unlock()
		if f == nil {
			http.NotFound(w, r)
			return
		}
		f(w)
	}))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	addr := s.srv.Listener.Addr().String()
	s.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a == "down.example:443" {
				return nil, errors.New("connection refused (test)")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr) // every host is this server
		},
	}}
	return s
}

func (s *fedWellKnownServer) set(host string, f func(w http.ResponseWriter)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[host] = f
}

func (s *fedWellKnownServer) count(host string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[host]
}

func fedJSONAnswer(body string, headers ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		fmt.Fprint(w, body)
	}
}

func TestResolve(t *testing.T) {
	wk := newFedWellKnownServer(t)
	wk.set("example.org", fedJSONAnswer(`{"m.server":"delegated.example:9000"}`))
	wk.set("srv.example", fedJSONAnswer(`{"m.server":"fed.srv.example"}`))
	wk.set("cc.example", fedJSONAnswer(`{"m.server":"[2001:db8::1]"}`))
	wk.set("bad.example", fedJSONAnswer(`{"m.server":"bad name!"}`))
	wk.set("redir.example", func(w http.ResponseWriter) {
		w.Header().Set("Location", "https://example.org/.well-known/matrix/server")
		w.WriteHeader(http.StatusFound)
	})
	res := &fedFakeResolver{
		srv: map[string][]*net.SRV{
			"_matrix-fed._tcp.fed.srv.example": {{Target: "a.srv.example.", Port: 8001}, {Target: "b.srv.example.", Port: 8002}},
			"_matrix._tcp.plain.example":       {{Target: "old.plain.example.", Port: 7000}},
			"_matrix-fed._tcp.dot.example":     {{Target: ".", Port: 0}},
		},
		hosts: map[string][]string{
			"delegated.example": {"192.0.2.1", "2001:db8::2"},
			"a.srv.example":     {"192.0.2.10"},
			"b.srv.example":     {"192.0.2.11"},
			"old.plain.example": {"192.0.2.20"},
			"host.example":      {"192.0.2.30"},
			"bad.example":       {"192.0.2.40"},
			"dot.example":       {"192.0.2.50"},
			"nowk.example":      {"192.0.2.60"},
		},
	}
	d, err := NewDiscovery(DiscoveryConfig{Resolver: res, Client: wk.client, Clock: clock.NewFake(time.Unix(1e9, 0))})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, server string
		want         Destination
	}{
		{"IPv4 literal", "192.0.2.5", Destination{Addrs: []string{"192.0.2.5:8448"}, Host: "192.0.2.5", TLSName: "192.0.2.5"}},
		{"IPv4 literal with port", "127.0.0.1:8449", Destination{Addrs: []string{"127.0.0.1:8449"}, Host: "127.0.0.1:8449", TLSName: "127.0.0.1"}},
		{"IPv6 literal with port", "[::1]:8449", Destination{Addrs: []string{"[::1]:8449"}, Host: "[::1]:8449", TLSName: "::1"}},
		{"IPv6 literal", "[2001:db8::9]", Destination{Addrs: []string{"[2001:db8::9]:8448"}, Host: "[2001:db8::9]", TLSName: "2001:db8::9"}},
		{"hostname with port skips well-known", "host.example:1234", Destination{Addrs: []string{"192.0.2.30:1234"}, Host: "host.example:1234", TLSName: "host.example"}},
		{"well-known to host:port", "example.org", Destination{Addrs: []string{"192.0.2.1:9000", "[2001:db8::2]:9000"}, Host: "delegated.example:9000", TLSName: "delegated.example"}},
		{"well-known redirect followed", "redir.example", Destination{Addrs: []string{"192.0.2.1:9000", "[2001:db8::2]:9000"}, Host: "delegated.example:9000", TLSName: "delegated.example"}},
		{"well-known to IP literal", "cc.example", Destination{Addrs: []string{"[2001:db8::1]:8448"}, Host: "[2001:db8::1]", TLSName: "2001:db8::1"}},
		{"well-known to host, SRV matrix-fed", "srv.example", Destination{Addrs: []string{"192.0.2.10:8001", "192.0.2.11:8002"}, Host: "fed.srv.example", TLSName: "fed.srv.example"}},
		{"no well-known, deprecated SRV", "plain.example", Destination{Addrs: []string{"192.0.2.20:7000"}, Host: "plain.example", TLSName: "plain.example"}},
		{"invalid well-known, A record on 8448", "bad.example", Destination{Addrs: []string{"192.0.2.40:8448"}, Host: "bad.example", TLSName: "bad.example"}},
		{"SRV target '.' ignored", "dot.example", Destination{Addrs: []string{"192.0.2.50:8448"}, Host: "dot.example", TLSName: "dot.example"}},
		{"well-known unreachable, A record on 8448", "nowk.example", Destination{Addrs: []string{"192.0.2.60:8448"}, Host: "nowk.example", TLSName: "nowk.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Resolve(context.Background(), tc.server)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.ServerName = tc.server
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Resolve(%q)\n got %+v\nwant %+v", tc.server, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "no such.example", "[::1", "[::1]x", "host:0", "host:123456", "host:", "[1.2.3.4]:80", "unknown.example"} {
		if got, err := d.Resolve(context.Background(), bad); err == nil {
			t.Errorf("Resolve(%q) = %+v, want error", bad, got)
		}
	}
}

func TestWellKnownCaching(t *testing.T) {
	wk := newFedWellKnownServer(t)
	wk.set("example.org", fedJSONAnswer(`{"m.server":"delegated.example:9000"}`, "Cache-Control", "public, max-age=600"))
	wk.set("plain.example", fedJSONAnswer(`{"m.server":"delegated.example:9000"}`)) // no cache headers: 24 h
	wk.set("bad.example", fedJSONAnswer(`not json`))
	res := &fedFakeResolver{hosts: map[string][]string{
		"delegated.example": {"192.0.2.1"}, "bad.example": {"192.0.2.2"}, "down.example": {"192.0.2.3"},
	}}
	clk := clock.NewFake(time.Unix(1e9, 0))
	d, err := NewDiscovery(DiscoveryConfig{Resolver: res, Client: wk.client, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(name string) {
		t.Helper()
		if _, err := d.Resolve(context.Background(), name); err != nil {
			t.Fatalf("Resolve(%s): %v", name, err)
		}
	}
	for _, name := range []string{"example.org", "plain.example", "bad.example", "down.example"} {
		resolve(name)
		resolve(name)
	}
	want := map[string]int{"example.org": 1, "plain.example": 1, "bad.example": 1}
	check := func(when string) {
		t.Helper()
		for host, n := range want {
			if got := wk.count(host); got != n {
				t.Errorf("%s: %s fetched %d times, want %d", when, host, got, n)
			}
		}
	}
	check("start")

	clk.Advance(601 * time.Second) // max-age=600 expired
	for _, name := range []string{"example.org", "plain.example", "bad.example"} {
		resolve(name)
	}
	want["example.org"] = 2
	check("after 10 minutes")

	clk.Advance(time.Hour) // the invalid answer's hour is up
	for _, name := range []string{"plain.example", "bad.example"} {
		resolve(name)
	}
	want["bad.example"] = 2
	check("after 1 hour")

	clk.Advance(23 * time.Hour) // the default 24 h is up
	resolve("plain.example")
	want["plain.example"] = 2
	check("after 24 hours")

	// An unreachable .well-known is retried after 2, then 4 minutes.
	d.mu.Lock()
	e := d.wellKnown["down.example"]
	d.mu.Unlock()
	if e.failures == 0 {
		t.Fatalf("down.example: no failure recorded")
	}
	first := e.failures
	clk.Advance(wellKnownDownTTL << (first - 1))
	resolve("down.example")
	d.mu.Lock()
	e2 := d.wellKnown["down.example"]
	d.mu.Unlock()
	if e2.failures != first+1 || !e2.expires.Equal(clk.Now().Add(wellKnownDownTTL<<first)) {
		t.Fatalf("backoff: failures %d→%d, expires in %v", first, e2.failures, e2.expires.Sub(clk.Now()))
	}
}

func TestCacheTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		headers []string
		want    time.Duration
	}{
		{nil, 24 * time.Hour},
		{[]string{"Cache-Control", "max-age=60"}, time.Minute},
		{[]string{"Cache-Control", "public, MAX-AGE=\"120\""}, 2 * time.Minute},
		{[]string{"Cache-Control", "max-age=999999999"}, 48 * time.Hour},
		{[]string{"Cache-Control", "no-store"}, 0},
		{[]string{"Cache-Control", "no-cache, max-age=60"}, 0},
		{[]string{"Cache-Control", "max-age=x"}, 24 * time.Hour},
		{[]string{"Expires", now.Add(3 * time.Hour).Format(http.TimeFormat)}, 3 * time.Hour},
		{[]string{"Expires", now.Add(-time.Hour).Format(http.TimeFormat)}, 0},
		{[]string{"Expires", "0"}, 0},
		{[]string{"Expires", now.Add(100 * time.Hour).Format(http.TimeFormat)}, 48 * time.Hour},
		{[]string{"Expires", now.Add(3 * time.Hour).Format(http.TimeFormat), "Cache-Control", "max-age=60"}, time.Minute},
	}
	for _, tc := range tests {
		h := http.Header{}
		for i := 0; i+1 < len(tc.headers); i += 2 {
			h.Set(tc.headers[i], tc.headers[i+1])
		}
		if got := cacheTTL(h, now); got != tc.want {
			t.Errorf("cacheTTL(%v) = %v, want %v", tc.headers, got, tc.want)
		}
	}
}

func TestSplitServerName(t *testing.T) {
	ok := []struct {
		in   string
		host string
		port int
	}{
		{"example.org", "example.org", 0},
		{"example.org:8448", "example.org", 8448},
		{"1.2.3.4", "1.2.3.4", 0},
		{"1.2.3.4:1", "1.2.3.4", 1},
		{"[1234:5678::abcd]", "1234:5678::abcd", 0},
		{"[1234:5678::abcd]:5678", "1234:5678::abcd", 5678},
		{"localhost:65535", "localhost", 65535},
	}
	for _, tc := range ok {
		host, port, err := SplitServerName(tc.in)
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("SplitServerName(%q) = %q %d %v, want %q %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
	for _, bad := range []string{"", ":80", "a:b", "a:65536", "a:+80", "a:-1", "a b", "a_b.example", "[::1", "[::1]80", "[fe80::1%eth0]", "::1", "a:123456"} {
		if host, port, err := SplitServerName(bad); err == nil {
			t.Errorf("SplitServerName(%q) = %q %d, want error", bad, host, port)
		}
	}
}
