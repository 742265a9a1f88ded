package homeserver

// Server keys: our /_matrix/key/v2/server, the notary endpoint
// /_matrix/key/v2/query, fetching other servers' keys through the Remote,
// and X-Matrix authentication of inbound federation requests.
// Spec: server-server-api "Retrieving server keys", "Request
// Authentication".

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/keys"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// keyRefetchInterval is the least time between two fetches of one server's
// keys, so that requests naming unknown key IDs cannot make the node fetch
// without end.
//
// NOTSPEC: the spec sets no such limit.
const keyRefetchInterval = time.Minute

func (f *Federation) keyRoutes() []Route {
	return []Route{
		{Method: "GET", Pattern: "/_matrix/key/v2/server", Auth: AuthNone, Handle: f.handleServerKeys},
		{Method: "POST", Pattern: "/_matrix/key/v2/query", Auth: AuthNone, Handle: f.handleKeyQuery},
		{Method: "GET", Pattern: "/_matrix/key/v2/query/{serverName}", Auth: AuthNone, Handle: f.handleKeyQuery},
	}
}

// ownKeys describes our key response.
func (f *Federation) ownKeys() keys.Own {
	return keys.Own{
		ServerName: f.n.ServerName(),
		Keys:       []keys.SigningKey{*f.n.key},
		NoiseKey:   f.n.noise,
	}
}

// handleServerKeys: GET /_matrix/key/v2/server (spec "Publishing Keys").
func (f *Federation) handleServerKeys(c *Call) {
	raw, err := keys.ServerResponse(f.ownKeys(), f.n.Now())
	if err != nil {
		c.Fail(err)
		return
	}
	c.Reply(200, json.RawMessage(raw))
}

// handleKeyQuery: POST /_matrix/key/v2/query and GET
// /_matrix/key/v2/query/{serverName} (spec "Querying Keys Through Another
// Server"). Servers whose keys we hold no response for, or none valid
// long enough, are fetched first (directly, through the Remote); whatever
// is known then is answered, re-signed by us.
func (f *Federation) handleKeyQuery(c *Call) {
	var crit keys.Criteria
	if c.Req.Method == "POST" {
		var err error
		if crit, err = keys.ParseQueryRequest(c.Req.Body); err != nil {
			c.Fail(Errorf(400, ErrCodeBadJSON, "%v", err))
			return
		}
	} else {
		var minValid time.Time
		if s := c.Req.Query.Get("minimum_valid_until_ts"); s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ms < 0 {
				c.Fail(Errorf(400, ErrCodeInvalidParam, "minimum_valid_until_ts must be a timestamp in milliseconds"))
				return
			}
			minValid = time.UnixMilli(ms).UTC()
		}
		crit = keys.Criteria{c.Req.Vars["serverName"]: {"": minValid}}
	}
	// maxQueryServers bounds the servers one query may make us fetch.
	const maxQueryServers = 32
	if len(crit) > maxQueryServers {
		c.Fail(Errorf(400, ErrCodeTooLarge, "at most %d servers per key query", maxQueryServers))
		return
	}
	now := f.n.Now()
	var missing []string
	for server, ids := range crit {
		if server == f.n.ServerName() || ValidateServerName(server) != nil {
			continue
		}
		need := now
		for _, t := range ids {
			if t.After(need) {
				need = t
			}
		}
		if !f.responseValidUntil(server, need) {
			missing = append(missing, server)
		}
	}
	sort.Strings(missing)
	answer := func() {
		if c.Done() {
			return
		}
		raw, err := keys.QueryResponse(crit, querySource{f}, f.n.ServerName(),
			[]keys.SigningKey{*f.n.key}, f.n.Now())
		if err != nil {
			c.Fail(err)
			return
		}
		c.Reply(200, json.RawMessage(raw))
	}
	if len(missing) == 0 {
		answer()
		return
	}
	left := len(missing)
	for _, server := range missing {
		f.fetchKeysForRequest(server, func(err error) {
			if err != nil {
				f.n.log.Debug("notary: key fetch failed", "server", server, "err", err)
			}
			if left--; left == 0 {
				answer()
			}
		})
	}
}

// responseValidUntil reports whether we hold a key response of server
// valid until at least t.
func (f *Federation) responseValidUntil(server string, t time.Time) bool {
	raw, ok, err := f.cache.Store.Response(server)
	if err != nil || !ok {
		return false
	}
	sk, err := keys.Parse(raw, server)
	return err == nil && !sk.ValidUntil.Before(t)
}

// querySource answers notary queries from the cache, and for our own name
// with a fresh response.
type querySource struct{ f *Federation }

func (q querySource) Responses(server string) ([][]byte, error) {
	if server == q.f.n.ServerName() {
		raw, err := keys.ServerResponse(q.f.ownKeys(), q.f.n.Now())
		if err != nil {
			return nil, err
		}
		return [][]byte{raw}, nil
	}
	return q.f.cache.Responses(server)
}

// requestKey is the xmatrix.KeyLookup for inbound requests: our own key,
// else the cache's current keys.
func (f *Federation) requestKey(server, keyID string, at time.Time) (ed25519.PublicKey, error) {
	if server == f.n.ServerName() && keyID == f.n.key.ID {
		return f.n.key.Public(), nil
	}
	return f.cache.RequestKey(server, keyID, at)
}

// EventKey returns the key that verifies an event from server signed with
// keyID at origin_server_ts at (keys.Cache.EventKey), fetching server's
// keys through the Remote when the cache cannot answer. done runs inside
// the loop.
func (f *Federation) EventKey(server, keyID string, at time.Time, done func(ed25519.PublicKey, error)) {
	lookup := func() (ed25519.PublicKey, error) {
		if server == f.n.ServerName() && keyID == f.n.key.ID {
			return f.n.key.Public(), nil
		}
		return f.cache.EventKey(server, keyID, at)
	}
	pub, err := lookup()
	if err == nil || !(errors.Is(err, keys.ErrUnknownKey) || errors.Is(err, keys.ErrExpired)) {
		f.n.AfterFunc(0, func() { done(pub, err) })
		return
	}
	f.fetchKeys(server, func(ferr error) {
		pub, err := lookup()
		if err != nil && ferr != nil {
			err = fmt.Errorf("%w (fetching: %w)", err, ferr)
		}
		done(pub, err)
	})
}

// fetchKeys fetches server's key response directly (GET
// /_matrix/key/v2/server through the Remote), verifies it and adds it to
// the cache. Concurrent fetches of one server share one request; a server
// fetched less than keyRefetchInterval ago, or whose last fetches failed
// more recently than their backoff (keyFetchEnded), is not fetched again.
// done runs inside the loop, never before fetchKeys returns.
func (f *Federation) fetchKeys(server string, done func(error)) {
	if waiters, ok := f.fetching[server]; ok {
		f.fetching[server] = append(waiters, done)
		return
	}
	now := f.n.Now()
	if err := f.keyFetchBlocked(server, now); err != nil {
		f.n.AfterFunc(0, func() { done(err) })
		return
	}
	f.keyFetchStarted(server, now)
	f.fetching[server] = []func(error){done}
	finish := func(err error) {
		f.keyFetchEnded(server, err, f.n.Now())
		if err != nil {
			err = fmt.Errorf("fetch keys of %s: %w", server, err)
			f.n.log.Info("server key fetch failed", "server", server, "err", err)
		}
		waiters := f.fetching[server]
		delete(f.fetching, server)
		for _, w := range waiters {
			w(err)
		}
	}
	f.Do(server, OutboundRequest{Method: "GET", URI: "/_matrix/key/v2/server", Unsigned: true}, func(resp OutboundResponse, err error) {
		if err == nil {
			var sk *keys.ServerKeys
			if sk, err = keys.Verify(resp.Body, server, f.n.Now()); err == nil {
				err = f.cache.Add(sk, f.n.Now())
			}
		}
		if err == nil {
			finish(nil)
			return
		}
		f.n.log.Debug("direct key fetch failed", "server", server, "err", err)
		f.fetchFromNotaries(server, 0, []error{fmt.Errorf("direct: %w", err)}, finish)
	})
}

// fetchFromNotaries asks the configured notaries, from the i-th on, for
// server's keys (GET /_matrix/key/v2/query/{serverName}; the answer must
// be signed by the notary's pinned keys and by the server's own keys) and
// stops at the first that answers with some.
func (f *Federation) fetchFromNotaries(server string, i int, errs []error, done func(error)) {
	notaries := f.n.cfg.KeyNotaries
	for i < len(notaries) && notaries[i].ServerName == server {
		i++
	}
	if i >= len(notaries) {
		done(errors.Join(errs...))
		return
	}
	notary := notaries[i]
	next := func(err error) {
		f.fetchFromNotaries(server, i+1, append(errs, fmt.Errorf("notary %s: %w", notary.ServerName, err)), done)
	}
	pinned, err := notary.Keys()
	if err != nil {
		next(err)
		return
	}
	now := f.n.Now()
	uri := "/_matrix/key/v2/query/" + url.PathEscape(server) + "?minimum_valid_until_ts=" + strconv.FormatInt(now.UnixMilli(), 10)
	f.Do(notary.ServerName, OutboundRequest{Method: "GET", URI: uri, Unsigned: true}, func(resp OutboundResponse, err error) {
		if err != nil {
			next(err)
			return
		}
		got, err := keys.ParseQueryResponse(resp.Body, notary.ServerName, keys.Criteria{server: nil},
			func(id string) (ed25519.PublicKey, bool) { k, ok := pinned[id]; return k, ok })
		if err == nil && len(got[server]) == 0 {
			err = fmt.Errorf("no keys for %s", server)
		}
		for _, sk := range got[server] {
			if err == nil {
				err = f.cache.Add(sk, f.n.Now())
			}
		}
		if err != nil {
			next(err)
			return
		}
		done(nil)
	})
}

// authenticateFederation checks the X-Matrix signature of a call to an
// AuthFederation route and runs next with Call.Origin set. A key we do not
// hold (or whose validity ended) is fetched from the origin first; the
// call then waits inside the loop. Spec: server-server-api "Request
// Authentication".
func (n *Node) authenticateFederation(c *Call, next func()) {
	f := n.Federation()
	if f == nil {
		c.Fail(Errorf(404, ErrCodeUnrecognized, "federation is not enabled"))
		return
	}
	verify := func() (xmatrix.Header, error, bool) {
		refetch := false
		h, err := xmatrix.Verify(c.Req.Method, c.Req.RequestURI(), c.Req.Body, c.Req.Authorization, n.ServerName(), n.Now(),
			func(server, keyID string, at time.Time) (ed25519.PublicKey, error) {
				pub, err := f.requestKey(server, keyID, at)
				refetch = errors.Is(err, keys.ErrUnknownKey) || errors.Is(err, keys.ErrExpired)
				return pub, err
			})
		return h, err, refetch
	}
	proceed := func(h xmatrix.Header, err error) {
		if c.Done() {
			return
		}
		if err != nil {
			status, code, ok := xmatrix.Status(err)
			if !ok {
				c.Fail(err)
				return
			}
			n.fedRejects().reject(c, err)
			c.Fail(Errorf(status, code, "%v", err))
			return
		}
		if p := c.Req.PeerServer; p != "" && h.Origin != p {
			c.Fail(Errorf(401, ErrCodeUnauthorized, "X-Matrix origin %q is not the authenticated peer %q", h.Origin, p))
			return
		}
		c.Origin = h.Origin
		next()
	}
	if p := c.Req.PeerServer; p != "" && c.Req.Authorization == "" {
		// The transport authenticated the peer (Noise session): no
		// X-Matrix needed.
		c.Origin = p
		next()
		return
	}
	h, err, refetch := verify()
	if err == nil || !refetch {
		proceed(h, err)
		return
	}
	origin := headerOrigin(c.Req.Authorization)
	if ValidateServerName(origin) != nil || origin == n.ServerName() {
		proceed(h, err)
		return
	}
	f.fetchKeysForRequest(origin, func(ferr error) {
		h, err, _ := verify()
		if err != nil && ferr != nil {
			err = fmt.Errorf("%w (fetching keys: %w)", err, ferr)
		}
		proceed(h, err)
	})
}

// Rejected federation requests are logged one by one at Debug only: they
// come from the network, unauthenticated, and a flood of them must not
// flood the log (STYLE.md habit 7). At Info, a source (the remote IP, or
// the claimed origin when the IP is unknown) gets one line for its first
// rejection, then at most one summary with counts per rejectLogInterval
// while rejections go on. Past maxRejectSources sources, new ones share
// one summary.
const (
	rejectLogInterval = time.Minute
	maxRejectSources  = 256
	// rejectModule names the rejection log among the node's modules.
	rejectModule      = "federation-rejects"
	otherRejectSource = "(other sources)"
)

// rejectLog counts rejected federation requests per source. It lives in
// the node's loop, like the node.
type rejectLog struct {
	n       *Node
	sources map[string]*rejectSource
}

// rejectSource is one source's rejections since its last Info line.
type rejectSource struct {
	count  int
	origin string // the origin the last one claimed
	err    string // why the last one was rejected
	timer  clock.Timer
}

// fedRejects returns the node's rejection log, creating it on first use.
func (n *Node) fedRejects() *rejectLog {
	r, _ := n.Module(rejectModule).(*rejectLog)
	if r == nil {
		r = &rejectLog{n: n, sources: map[string]*rejectSource{}}
		n.SetModule(rejectModule, r)
		n.OnStop(func() {
			for _, s := range r.sources {
				s.timer.Stop()
			}
			clear(r.sources)
		})
	}
	return r
}

// reject logs the rejection of c with err.
func (r *rejectLog) reject(c *Call, err error) {
	origin := headerOrigin(c.Req.Authorization)
	r.n.log.Debug("federation request rejected", "method", c.Req.Method, "path", c.Req.Path,
		"ip", c.Req.RemoteIP, "origin", origin, "err", err)
	key := c.Req.RemoteIP
	if key == "" {
		key = "origin " + origin
	}
	s := r.sources[key]
	if s == nil && len(r.sources) >= maxRejectSources {
		key = otherRejectSource
		s = r.sources[key]
	}
	if s != nil {
		s.count++
		s.origin, s.err = origin, err.Error()
		return
	}
	r.n.log.Info("federation request rejected; more from this source are counted, not logged",
		"source", key, "method", c.Req.Method, "path", c.Req.Path, "origin", origin, "err", err,
		"summary_every", rejectLogInterval)
	s = &rejectSource{}
	r.sources[key] = s
	s.timer = r.n.AfterFunc(rejectLogInterval, func() { r.flush(key) })
}

// flush writes key's summary, or forgets key when it was quiet.
func (r *rejectLog) flush(key string) {
	s := r.sources[key]
	if s == nil {
		return
	}
	if s.count == 0 {
		delete(r.sources, key)
		return
	}
	r.n.log.Info("federation requests rejected", "source", key, "count", s.count, "in", rejectLogInterval,
		"last_origin", s.origin, "last_err", s.err)
	s.count = 0
	s.timer = r.n.AfterFunc(rejectLogInterval, func() { r.flush(key) })
}

// headerOrigin returns the origin named by an X-Matrix header, "" if it
// does not parse.
func headerOrigin(authorization string) string {
	h, err := xmatrix.ParseHeader(authorization)
	if err != nil {
		return ""
	}
	return h.Origin
}
