package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// countingKeyServer publishes one server's keys at /_matrix/key/v2/server
// and, when notary is set, answers GET /_matrix/key/v2/query/{server}
// from that cache, signed with the notary key.
type countingKeyServer struct {
	name string
	now  func() time.Time
	mu   sync.Mutex
	hits map[string]int
}

func (s *countingKeyServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func startCountingKeyServer(t *testing.T, key keys.SigningKey, notaryOf *keys.Cache, now func() time.Time) (*countingKeyServer, *tls.Config) {
	t.Helper()
	cert, pool := fedTestCert(t)
	s := &countingKeyServer{hits: map[string]int{}, now: now}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/_matrix/key/v2/server" && notaryOf == nil:
			raw, err := keys.ServerResponse(keys.Own{ServerName: s.name, Keys: []keys.SigningKey{key}, Validity: time.Hour}, s.now())
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Write(raw)
		case strings.HasPrefix(r.URL.Path, "/_matrix/key/v2/query/") && notaryOf != nil:
			server := strings.TrimPrefix(r.URL.Path, "/_matrix/key/v2/query/")
			ms, _ := strconv.ParseInt(r.URL.Query().Get("minimum_valid_until_ts"), 10, 64)
			body, err := keys.QueryResponse(keys.Criteria{server: {"": time.UnixMilli(ms)}}, notaryOf, s.name, []keys.SigningKey{key}, s.now())
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.name = srv.Listener.Addr().String()
	return s, &tls.Config{RootCAs: pool}
}

func newTestFedClient(t *testing.T, trust *tls.Config) *FederationClient {
	t.Helper()
	c, err := NewFederationClient(FederationClientConfig{ServerName: "us.test", KeyID: "ed25519:us",
		Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{20}, 32)), RootCAs: trust.RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyFetcherDirect(t *testing.T) {
	remoteKey := keys.SigningKey{ID: "ed25519:r", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{21}, 32))}
	clk := clock.NewFake(time.Now())
	remote, trust := startCountingKeyServer(t, remoteKey, nil, clk.Now)
	f := NewKeyFetcher(newTestFedClient(t, trust), &keys.Cache{Store: &keys.MemoryStore{}}, nil, clk, nil)
	lookup := f.RequestKeyLookup(context.Background())

	pub, err := lookup(remote.name, "ed25519:r", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(remoteKey.Key.Public().(ed25519.PublicKey)) {
		t.Fatal("wrong key")
	}
	if _, err := lookup(remote.name, "ed25519:r", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n := remote.count("/_matrix/key/v2/server"); n != 1 {
		t.Fatalf("fetched %d times, want 1 (second lookup from cache)", n)
	}

	// An unknown key ID causes no fetch within a minute of the last one.
	for range 3 {
		if _, err := lookup(remote.name, "ed25519:unknown", clk.Now()); !errors.Is(err, keys.ErrUnknownKey) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	clk.Advance(keyRefetchInterval - time.Second)
	if _, err := lookup(remote.name, "ed25519:unknown", clk.Now()); err == nil {
		t.Fatal("unknown key found")
	}
	if n := remote.count("/_matrix/key/v2/server"); n != 1 {
		t.Fatalf("fetched %d times within a minute, want 1", n)
	}

	// Past the published validity (1 h) the key is fetched again.
	clk.Advance(2 * time.Hour)
	if _, err := lookup(remote.name, "ed25519:r", clk.Now()); err != nil {
		t.Fatalf("after validity: %v", err)
	}
	if n := remote.count("/_matrix/key/v2/server"); n != 2 {
		t.Fatalf("fetched %d times, want 2", n)
	}
	// And now an unknown key ID is fetched for once the minute is up.
	clk.Advance(keyRefetchInterval)
	if _, err := lookup(remote.name, "ed25519:unknown", clk.Now()); !errors.Is(err, keys.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	if n := remote.count("/_matrix/key/v2/server"); n != 3 {
		t.Fatalf("fetched %d times, want 3", n)
	}
}

func TestKeyFetcherNotary(t *testing.T) {
	// The remote server is unreachable; a notary has its keys cached.
	remoteKey := keys.SigningKey{ID: "ed25519:r", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{22}, 32))}
	const remoteName = "127.0.0.1:1" // nothing listens on port 1
	raw, err := keys.ServerResponse(keys.Own{ServerName: remoteName, Keys: []keys.SigningKey{remoteKey}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sk, err := keys.Verify(raw, remoteName, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	notaryCache := &keys.Cache{Store: &keys.MemoryStore{}}
	if err := notaryCache.Add(sk, time.Now()); err != nil {
		t.Fatal(err)
	}
	notaryKey := keys.SigningKey{ID: "ed25519:n", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{23}, 32))}
	notary, trust := startCountingKeyServer(t, notaryKey, notaryCache, time.Now)

	good := Notary{ServerName: notary.name, Keys: map[string]ed25519.PublicKey{"ed25519:n": notaryKey.Key.Public().(ed25519.PublicKey)}}
	f := NewKeyFetcher(newTestFedClient(t, trust), &keys.Cache{Store: &keys.MemoryStore{}}, []Notary{good}, nil, nil)
	pub, err := f.RequestKeyLookup(context.Background())(remoteName, "ed25519:r", time.Now())
	if err != nil {
		t.Fatalf("through notary: %v", err)
	}
	if !pub.Equal(remoteKey.Key.Public().(ed25519.PublicKey)) {
		t.Fatal("wrong key from notary")
	}

	// A notary whose pinned key does not match is not believed.
	bad := Notary{ServerName: notary.name, Keys: map[string]ed25519.PublicKey{"ed25519:n": remoteKey.Key.Public().(ed25519.PublicKey)}}
	f2 := NewKeyFetcher(newTestFedClient(t, trust), &keys.Cache{Store: &keys.MemoryStore{}}, []Notary{bad}, nil, nil)
	if _, err := f2.RequestKeyLookup(context.Background())(remoteName, "ed25519:r", time.Now()); !errors.Is(err, keys.ErrBadResponse) {
		t.Fatalf("notary with the wrong key: %v, want ErrBadResponse", err)
	}
}
