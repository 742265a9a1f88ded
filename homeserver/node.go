package homeserver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

// Options is what a Node is built from. Config, Store and SigningKey are
// required; the rest have defaults (Real clock, SystemRNG, a discarding
// logger, no Loop).
type Options struct {
	Config     *Config
	Store      *store.Store
	SigningKey *SigningKey
	Clock      clock.Clock
	RNG        *rand.ChaCha8
	Logger     *slog.Logger
	// Loop is the loop that drives the node in real mode: timer callbacks
	// from AfterFunc are posted into it. Nil when a single driver calls the
	// node directly (tests on a fake clock, the simulator), in which case
	// callbacks run where the clock fires them.
	Loop *Loop
	// Remote carries the node's requests to other servers (federation.go).
	// Nil means the node cannot reach anyone: outbound requests fail at
	// once and stay queued where the protocol queues them.
	Remote Remote
	// NoiseKey is the node's Noise static public key (32 bytes), published
	// in its server key response; nil leaves it out.
	NoiseKey []byte
	// Pusher carries push notifications to push gateways (pushers_send.go).
	// Nil means none are sent.
	Pusher Pusher
	// PinnedSigningKeys are signing keys the operator pinned, by server
	// name, besides those of Config.Mesh.Peers (whose key tokens carry
	// them): events signed by such a server verify against its pinned key
	// without fetching its keys (fedroom_receive.go verifySignatures).
	PinnedSigningKeys map[string]ed25519.PublicKey
}

// Node is one homeserver: it owns all of its state and is driven from a
// single loop (DESIGN.md "The runtime model"). Every method except Handle
// must be called from inside that loop (or from the single driver in tests
// and simulation); Node does no locking of its own.
type Node struct {
	cfg    *Config
	store  *store.Store
	key    *SigningKey
	clock  clock.Clock
	rng    *rand.ChaCha8
	log    *slog.Logger
	loop   *Loop
	remote Remote
	noise  []byte
	pusher Pusher
	// pinned: operator-pinned signing keys by server name.
	pinned map[string]ed25519.PublicKey
	routes []compiledRoute
	// intercepts lets one module serve part of another module's route
	// (see Intercept).
	intercepts map[string]func(c *Call) bool

	limitIP   *limiter
	limitUser *limiter
	sessions  map[string]session // access token → session (cache)

	accountHooks    []func(userID, displayName string) error
	deactivateHooks []func(userID string) error
	nonces          map[string]time.Time // shared-secret registration nonces → expiry

	nextCall uint64
	pending  map[uint64]*Call
	// callIDs maps pending calls to their sequence numbers.
	// Deprecated: use Call.Seq; kept while sync.go still reads it.
	callIDs map[*Call]uint64
	modules map[string]any
	onStop  []func()
	stopped bool
}

// New builds a node and its route table.
func New(opts Options) (*Node, error) {
	if opts.Config == nil || opts.Store == nil || opts.SigningKey == nil {
		return nil, errors.New("homeserver: new node: Config, Store and SigningKey are required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("homeserver: new node: %w", err)
	}
	n := &Node{
		cfg:      opts.Config,
		store:    opts.Store,
		key:      opts.SigningKey,
		clock:    opts.Clock,
		rng:      opts.RNG,
		log:      opts.Logger,
		loop:     opts.Loop,
		remote:   opts.Remote,
		noise:    opts.NoiseKey,
		pusher:   opts.Pusher,
		pinned:   maps.Clone(opts.PinnedSigningKeys),
		sessions: map[string]session{},
		nonces:   map[string]time.Time{},
		pending:  map[uint64]*Call{},
		callIDs:  map[*Call]uint64{},
		modules:  map[string]any{},
	}
	if n.pinned == nil {
		n.pinned = map[string]ed25519.PublicKey{}
	}
	for _, p := range n.cfg.Mesh.Peers {
		if t, err := p.Token(); err == nil {
			n.pinned[p.Name] = t.SigningKey
		}
	}
	if n.clock == nil {
		n.clock = clock.Real()
	}
	if n.rng == nil {
		n.rng = clock.SystemRNG()
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.remote == nil {
		n.remote = noRemote{n}
	}
	rl := n.cfg.RateLimit
	if rl.Enabled {
		n.limitIP = newLimiter(rl.PerIP.PerSecond, rl.PerIP.Burst)
		n.limitUser = newLimiter(rl.PerUser.PerSecond, rl.PerUser.Burst)
	}
	if err := n.buildRoutes(); err != nil {
		return nil, fmt.Errorf("homeserver: new node: %w", err)
	}
	return n, nil
}

// Config is the node's configuration.
func (n *Node) Config() *Config { return n.cfg }

// ServerName is the node's Matrix server name.
func (n *Node) ServerName() string { return n.cfg.ServerName }

// Store is the node's database.
func (n *Node) Store() *store.Store { return n.store }

// SigningKey is the node's ed25519 Matrix signing key.
func (n *Node) SigningKey() *SigningKey { return n.key }

// Clock is the node's clock.
func (n *Node) Clock() clock.Clock { return n.clock }

// Now is the node clock's current time.
func (n *Node) Now() time.Time { return n.clock.Now() }

// RNG is the node's random stream (not safe outside the loop).
func (n *Node) RNG() *rand.ChaCha8 { return n.rng }

// Logger is the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// AfterFunc runs f inside the node loop once d has elapsed. In real mode
// a timer that fires just as it is stopped may still run f (its callback
// was already posted), so f must tolerate running late; Call.Reply, being
// idempotent, does.
func (n *Node) AfterFunc(d time.Duration, f func()) clock.Timer {
	if n.loop == nil {
		return n.clock.AfterFunc(d, f)
	}
	loop := n.loop
	return n.clock.AfterFunc(d, func() { _ = loop.Post(f) })
}

// Remote is the node's outbound seam to other servers.
func (n *Node) Remote() Remote { return n.remote }

// Intercept lets f serve calls to the route method+pattern before that
// route's own handler: f returns true when it has taken the call (and will
// answer it), false to let the route's handler run. The federation module
// uses it to answer client requests about other servers' users and aliases
// (GET /profile/@u:remote) in front of the local-only handlers.
func (n *Node) Intercept(method, pattern string, f func(c *Call) bool) {
	if n.intercepts == nil {
		n.intercepts = map[string]func(c *Call) bool{}
	}
	n.intercepts[method+" "+pattern] = f
}

// SetModule stores a per-node component (rooms, sync, federation) under a
// name, so route groups built separately can find each other.
func (n *Node) SetModule(name string, m any) { n.modules[name] = m }

// Module returns the component stored under name, or nil.
func (n *Node) Module(name string) any { return n.modules[name] }

// OnStop registers f to run inside the loop when the node stops, after
// pending calls have been cancelled.
func (n *Node) OnStop(f func()) { n.onStop = append(n.onStop, f) }

// Stop cancels every pending call (long polls get 503 so clients retry
// elsewhere or later) and runs the OnStop hooks. Later requests get 503. It
// does not close the store: whoever opened it closes it.
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ids := make([]uint64, 0, len(n.pending))
	for id := range n.pending {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		c, ok := n.pending[id]
		if !ok {
			continue // answered by an earlier call's hook
		}
		hooks := c.onCancel
		c.onCancel = nil
		for _, f := range hooks {
			f()
		}
		c.Fail(Errorf(503, ErrCodeUnknown, "server is shutting down"))
	}
	for _, f := range n.onStop {
		f()
	}
}

// finish forgets a call that was answered or cancelled.
func (n *Node) finish(c *Call) {
	delete(n.pending, c.id)
	delete(n.callIDs, c)
}

// Dispatch serves one request inside the loop: it routes it, checks its
// size, authenticates the access token, applies rate limits and calls the
// handler. reply is called exactly once, now or later from inside the loop,
// unless the returned Call is cancelled first.
func (n *Node) Dispatch(req *Request, reply func(Response)) *Call {
	c := &Call{Req: req, node: n, reply: reply}
	if req.Query == nil {
		req.Query = url.Values{}
	}
	if n.stopped {
		c.Fail(Errorf(503, ErrCodeUnknown, "server is shutting down"))
		return c
	}
	n.nextCall++
	c.id = n.nextCall
	n.pending[c.id] = c
	n.callIDs[c] = c.id

	route, vars, apiErr := n.match(req.Method, req.Path)
	if apiErr != nil {
		c.Fail(apiErr)
		return c
	}
	if max := n.maxBody(route); max > 0 && int64(len(req.Body)) > max {
		c.Fail(Errorf(413, ErrCodeTooLarge, "request body exceeds %d bytes", max))
		return c
	}
	req.Vars = vars
	if route.Auth == AuthFederation {
		// Servers have their own buckets (ratelimit.go): per IP before the
		// signature is checked, per origin after.
		f := n.Federation()
		if err := f.limitIP(req.RemoteIP); err != nil {
			c.Fail(err)
			return c
		}
		n.authenticateFederation(c, func() {
			if err := f.limitOrigin(c.Origin); err != nil {
				c.Fail(err)
				return
			}
			n.call(route, c)
		})
		return c
	}
	// Rate limits (client-server-api "Rate limiting"): authenticated calls
	// count against their user, everything else against the remote IP
	// (including failed token checks, so guessing tokens is limited too).
	if route.Auth != AuthNone {
		if err := n.authenticate(c, route.Auth); err != nil {
			if limitErr := n.limitByIP(route, c); limitErr != nil {
				err = limitErr
			}
			c.Fail(err)
			return c
		}
	}
	var limitErr *Error
	if c.UserID == "" {
		limitErr = n.limitByIP(route, c)
	} else if !route.Unlimited && n.limitUser != nil && !c.Admin {
		limitErr = n.limitUser.take(c.UserID, n.clock.Now())
	}
	if limitErr != nil {
		c.Fail(limitErr)
		return c
	}
	n.call(route, c)
	return c
}

// maxBody is the largest request body a route accepts (0: no bound).
func (n *Node) maxBody(route *compiledRoute) int64 {
	if route != nil && route.MaxBody > 0 {
		return route.MaxBody
	}
	return n.cfg.MaxRequestBytes
}

// MaxBody is the largest request body the node accepts for a request
// (0: no bound): the route's own bound (media uploads), else
// max_request_bytes. Front doors call it before reading a body, from any
// goroutine: the route table and the configuration do not change after
// New.
func (n *Node) MaxBody(method, path string) int64 {
	route, _, err := n.match(method, path)
	if err != nil {
		return n.cfg.MaxRequestBytes
	}
	return n.maxBody(route)
}

// limitByIP takes a token from the caller's per-IP bucket.
func (n *Node) limitByIP(route *compiledRoute, c *Call) *Error {
	if route.Unlimited || n.limitIP == nil || c.Req.RemoteIP == "" {
		return nil
	}
	return n.limitIP.take(c.Req.RemoteIP, n.clock.Now())
}

// call runs the handler, turning a panic into a 500 so one bad request
// cannot take the node down.
func (n *Node) call(route *compiledRoute, c *Call) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("handler panic", "method", c.Req.Method, "pattern", route.Pattern,
				"panic", r, "stack", string(debug.Stack()))
			c.Fail(fmt.Errorf("handler panic: %v", r))
		}
	}()
	if f := n.intercepts[route.Method+" "+route.Pattern]; f != nil && f(c) {
		return
	}
	route.Handle(c)
}

// Handle is Dispatch for front doors running outside the loop (real mode):
// it posts the request into the node's Loop and waits for the response. If
// ctx ends first the call is cancelled inside the loop and ctx's error is
// returned.
func (n *Node) Handle(ctx context.Context, req *Request) (Response, error) {
	if n.loop == nil {
		return Response{}, errors.New("homeserver: handle: node has no loop")
	}
	done := make(chan Response, 1)
	var call *Call
	if err := n.loop.Post(func() {
		call = n.Dispatch(req, func(r Response) { done <- r })
	}); err != nil {
		return Response{}, fmt.Errorf("homeserver: handle: %w", err)
	}
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		_ = n.loop.Post(func() {
			if call != nil {
				call.Cancel()
			}
		})
		return Response{}, ctx.Err()
	}
}

// compiledRoute is a Route with its pattern split into segments.
type compiledRoute struct {
	Route
	segs []string // literal segment, or "{name}"
}

func (n *Node) buildRoutes() error {
	seen := map[string]bool{}
	for _, group := range routeGroups {
		routes, err := group(n)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Handle == nil || r.Method == "" || !strings.HasPrefix(r.Pattern, "/") {
				return fmt.Errorf("bad route %s %q", r.Method, r.Pattern)
			}
			key := r.Method + " " + r.Pattern
			if seen[key] {
				return fmt.Errorf("route registered twice: %s", key)
			}
			seen[key] = true
			n.routes = append(n.routes, compiledRoute{Route: r, segs: strings.Split(r.Pattern[1:], "/")})
		}
	}
	return nil
}

// match finds the route for method and path: 404 M_UNRECOGNIZED when no
// pattern matches the path, 405 M_UNRECOGNIZED when one does but not for
// this method. Spec: client-server-api "API standards" (unknown endpoints).
func (n *Node) match(method, path string) (*compiledRoute, map[string]string, *Error) {
	if !strings.HasPrefix(path, "/") {
		return nil, nil, Errorf(404, ErrCodeUnrecognized, "unrecognized request")
	}
	segs := strings.Split(path[1:], "/")
	pathMatched := false
	for i := range n.routes {
		r := &n.routes[i]
		if len(r.segs) != len(segs) {
			continue
		}
		var vars map[string]string
		ok := true
		for j, s := range r.segs {
			if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
				v, err := url.PathUnescape(segs[j])
				if err != nil || v == "" {
					ok = false
					break
				}
				if vars == nil {
					vars = map[string]string{}
				}
				vars[s[1:len(s)-1]] = v
			} else if s != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if r.Method != method {
			pathMatched = true
			continue
		}
		return r, vars, nil
	}
	if pathMatched {
		return nil, nil, Errorf(405, ErrCodeUnrecognized, "method %s not allowed here", method)
	}
	return nil, nil, Errorf(404, ErrCodeUnrecognized, "unrecognized request")
}
