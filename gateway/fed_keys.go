package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/keys"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// keyRefetchInterval is the least time between two fetches of one server's
// keys, so that requests naming unknown key IDs cannot make us fetch
// without end.
//
// NOTSPEC: the spec sets no such limit.
const keyRefetchInterval = time.Minute

// maxFetchMemory is how many servers' last fetch times KeyFetcher keeps
// before it forgets those older than keyRefetchInterval.
const maxFetchMemory = 4096

// Notary is a key notary we trust (server-server-api "Querying Keys
// Through Another Server"), with its verify keys pinned in configuration.
type Notary struct {
	ServerName string
	// Keys are the notary's verify keys by key ID.
	Keys map[string]ed25519.PublicKey
}

// KeyFetcher finds other servers' verify keys: from the cache while they
// are valid, else directly from the server (GET /_matrix/key/v2/server),
// else from the configured notaries in order (POST /_matrix/key/v2/query).
// Every response is verified (keys.Verify / keys.ParseQueryResponse)
// before it reaches the cache. It is safe for concurrent use.
type KeyFetcher struct {
	client   *FederationClient
	cache    *keys.Cache
	notaries []Notary
	clock    clock.Clock
	log      *slog.Logger

	mu        sync.Mutex
	lastFetch map[string]time.Time
}

// NewKeyFetcher returns a fetcher that fetches with client into cache. clk
// and log may be nil (wall clock, discarded logs).
func NewKeyFetcher(client *FederationClient, cache *keys.Cache, notaries []Notary, clk clock.Clock, log *slog.Logger) *KeyFetcher {
	if clk == nil {
		clk = clock.Real()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyFetcher{client: client, cache: cache, notaries: notaries, clock: clk, log: log, lastFetch: map[string]time.Time{}}
}

// RequestKeyLookup returns an xmatrix.KeyLookup that verifies requests
// with keys fetched under ctx.
func (f *KeyFetcher) RequestKeyLookup(ctx context.Context) xmatrix.KeyLookup {
	return func(server, keyID string, at time.Time) (ed25519.PublicKey, error) {
		return f.lookup(ctx, server, keyID, at, f.cache.RequestKey)
	}
}

// EventKey returns the key that verifies an event from server signed with
// keyID at origin_server_ts at (see keys.Cache.EventKey), fetching when
// the cache cannot answer.
func (f *KeyFetcher) EventKey(ctx context.Context, server, keyID string, at time.Time) (ed25519.PublicKey, error) {
	return f.lookup(ctx, server, keyID, at, f.cache.EventKey)
}

func (f *KeyFetcher) lookup(ctx context.Context, server, keyID string, at time.Time,
	get func(server, keyID string, at time.Time) (ed25519.PublicKey, error)) (ed25519.PublicKey, error) {
	pub, err := get(server, keyID, at)
	if err == nil || !(errors.Is(err, keys.ErrUnknownKey) || errors.Is(err, keys.ErrExpired)) {
		return pub, err
	}
	ferr := f.Fetch(ctx, server, at)
	// Look again even if this fetch failed or was throttled: a concurrent
	// fetch may have filled the cache.
	pub, err2 := get(server, keyID, at)
	if err2 != nil && ferr != nil {
		return nil, fmt.Errorf("%w (fetching: %w)", err2, ferr)
	}
	return pub, err2
}

// Fetch refreshes server's keys so that they are valid at least until
// minValid: directly first, then through each notary. It does nothing if
// the server's keys were fetched less than a minute ago.
func (f *KeyFetcher) Fetch(ctx context.Context, server string, minValid time.Time) error {
	now := f.clock.Now()
	f.mu.Lock()
	last, ok := f.lastFetch[server]
	if ok && now.Sub(last) < keyRefetchInterval {
		f.mu.Unlock()
		return fmt.Errorf("fetch keys of %s: fetched %v ago; not again before %v", server, now.Sub(last), keyRefetchInterval)
	}
	if len(f.lastFetch) >= maxFetchMemory {
		for s, t := range f.lastFetch {
			if now.Sub(t) >= keyRefetchInterval {
				delete(f.lastFetch, s)
			}
		}
	}
	f.lastFetch[server] = now
	f.mu.Unlock()

	var errs []error
	raw, err := f.client.GetServerKeys(ctx, server)
	if err == nil {
		var sk *keys.ServerKeys
		if sk, err = keys.Verify(raw, server, now); err == nil {
			if err = f.cache.Add(sk, now); err == nil {
				return nil
			}
		}
	}
	errs = append(errs, fmt.Errorf("direct: %w", err))
	f.log.Debug("direct key fetch failed", "server", server, "err", err)

	for _, n := range f.notaries {
		if err := f.fetchFromNotary(ctx, n, server, minValid, now); err != nil {
			errs = append(errs, fmt.Errorf("notary %s: %w", n.ServerName, err))
			continue
		}
		return nil
	}
	return fmt.Errorf("fetch keys of %s: %w", server, errors.Join(errs...))
}

func (f *KeyFetcher) fetchFromNotary(ctx context.Context, n Notary, server string, minValid, now time.Time) error {
	if minValid.Before(now) {
		minValid = now
	}
	// GET /_matrix/key/v2/query/{serverName} (keys_query.yaml,
	// perspectivesKeyQuery).
	uri := "/_matrix/key/v2/query/" + url.PathEscape(server) + "?minimum_valid_until_ts=" + strconv.FormatInt(minValid.UnixMilli(), 10)
	resp, err := f.client.do(ctx, n.ServerName, http.MethodGet, uri, nil, false)
	if err != nil {
		return err
	}
	got, err := keys.ParseQueryResponse(resp.Body, n.ServerName, keys.Criteria{server: nil}, func(id string) (ed25519.PublicKey, bool) {
		k, ok := n.Keys[id]
		return k, ok
	})
	if err != nil {
		return err
	}
	if len(got[server]) == 0 {
		return fmt.Errorf("no keys for %s", server)
	}
	for _, sk := range got[server] {
		if err := f.cache.Add(sk, now); err != nil {
			return err
		}
	}
	return nil
}
