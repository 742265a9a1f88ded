package homeserver

// The federation seam and module: how a node talks to other servers.
// See doc.go "Federation" for the picture.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/keys"
)

// OutboundRequest is one federation request to another server.
type OutboundRequest struct {
	// Method is the HTTP method.
	Method string
	// URI is the request target as it is to be signed: a path starting
	// with "/_matrix/", percent-encoded, plus "?" and the query if any.
	URI string
	// Body is the JSON body; nil for none.
	Body []byte
	// Unsigned sends the request without an X-Matrix Authorization header
	// (the key API: /_matrix/key/v2/server).
	Unsigned bool
}

// OutboundResponse is another server's answer.
type OutboundResponse struct {
	Status int
	Body   []byte
	// ContentType is the answer's media type with its parameters (HTTP
	// Content-Type; over the mesh, the media type a raw CoAP answer names);
	// "" for JSON, which every answer but media is.
	ContentType string
}

// Remote carries a node's requests to other servers: HTTPS with X-Matrix
// signing in real mode (gateway), the mesh transport, or MemoryNetwork in
// tests and the simulator (DESIGN.md "The runtime model").
//
// Do starts one request to the server named dest and returns at once; it
// never blocks the node. The implementation signs the request as the node
// (unless req.Unsigned). It calls done exactly once, inside the node's
// loop (real mode: posted into the Loop; single-driver mode: from the
// driver), and never before Do has returned. err is nil for a 2xx answer;
// for any other answer it is a *RemoteError and resp holds what came
// back; for a transport failure resp is zero.
type Remote interface {
	Do(dest string, req OutboundRequest, done func(resp OutboundResponse, err error))
}

// RemoteError is a non-2xx answer from another server.
type RemoteError struct {
	Status  int
	ErrCode string // the Matrix errcode; "" if the body had none
	Message string
}

func (e *RemoteError) Error() string {
	if e.ErrCode == "" {
		return fmt.Sprintf("remote server answered HTTP %d", e.Status)
	}
	return fmt.Sprintf("remote server answered HTTP %d %s: %s", e.Status, e.ErrCode, e.Message)
}

// NewRemoteError builds the error for a non-2xx answer from its JSON body.
func NewRemoteError(status int, body []byte) *RemoteError {
	e := &RemoteError{Status: status}
	var b struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.ErrCode, e.Message = b.ErrCode, b.Error
	}
	return e
}

// ErrNoRemote is the error of every outbound request of a node built
// without a Remote.
var ErrNoRemote = errors.New("homeserver: no outbound transport configured")

// noRemote is the Remote of a node that has none: every request fails,
// on a zero-delay timer so that done never runs inside Do.
type noRemote struct{ n *Node }

func (r noRemote) Do(_ string, _ OutboundRequest, done func(OutboundResponse, error)) {
	r.n.AfterFunc(0, func() { done(OutboundResponse{}, ErrNoRemote) })
}

// PDUHandler receives one PDU of an inbound transaction (the room half of
// federation implements it). It must call done exactly once, inside the
// loop, now or later, with the event ID it computed ("" when it could not
// compute one) and nil or the reason the PDU was rejected.
type PDUHandler func(origin string, pdu json.RawMessage, done func(eventID string, err error))

// EDUHandler receives the content of one EDU of an inbound transaction.
// An error is logged; EDUs carry no per-item result.
type EDUHandler func(origin string, content json.RawMessage) error

// federationModuleName is the Node.Module key of the federation module.
const federationModuleName = "federation"

// Federation is a node's federation state: key cache and fetches, inbound
// transactions, outbound per-destination queues, and the hooks the room
// half plugs into. It belongs to the node loop.
type Federation struct {
	n     *Node
	cache keys.Cache

	// Key fetches in progress (server → waiters), when each server may be
	// fetched again (keyFetchBlocked), and the budget of fetches that
	// requests can start (fetchKeysForRequest).
	fetching       map[string][]func(error)
	keyFetches     map[string]keyFetchState
	keyFetchBudget *limiter

	// Inbound transactions being processed ("origin\x00txnId" → calls
	// waiting for the same transaction's answer).
	inflight map[string][]*Call

	// Federation request limits (ratelimit.go); nil: not limited.
	limitFedIP, limitFedOrigin *limiter

	queues map[string]*destQueue
	// Bounds on the EDUs queued per destination (fed_queue.go): the
	// constants, lowered in tests.
	maxLossyEDUs, maxEDUBytes int

	pdu     PDUHandler
	edus    map[string]EDUHandler
	catchUp func(dest string)
	stopped bool
}

// Federation returns the node's federation module.
func (n *Node) Federation() *Federation {
	f, _ := n.Module(federationModuleName).(*Federation)
	return f
}

// SetPDUHandler installs the handler for PDUs of inbound transactions.
// Without one, every PDU is answered with an error saying so.
func (f *Federation) SetPDUHandler(h PDUHandler) { f.pdu = h }

// HandleEDU installs the handler for EDUs of type eduType, replacing any
// earlier one. EDUs without a handler are dropped (and logged at debug).
func (f *Federation) HandleEDU(eduType string, h EDUHandler) { f.edus[eduType] = h }

// SetCatchUp installs the hook run when a destination answers again after
// failed attempts: the room half queues the forward extremities of the
// rooms it shares with dest, so that dest can pull what it missed with
// get_missing_events (server-server-api "Sending events", catch-up).
func (f *Federation) SetCatchUp(h func(dest string)) { f.catchUp = h }

// Do sends one request to dest through the node's Remote (see Remote).
func (f *Federation) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	f.n.log.Debug("federation request", "dest", dest, "method", req.Method, "uri", req.URI)
	f.n.remote.Do(dest, req, done)
}

// DoJSON is Do for a JSON answer: on success the body is decoded into out.
func (f *Federation) DoJSON(dest string, req OutboundRequest, out any, done func(error)) {
	f.Do(dest, req, func(resp OutboundResponse, err error) {
		if err == nil {
			if jerr := json.Unmarshal(resp.Body, out); jerr != nil {
				err = fmt.Errorf("federation %s %s%s: bad JSON answer: %w", req.Method, dest, req.URI, jerr)
			}
		}
		done(err)
	})
}

func federationRoutes(n *Node) ([]Route, error) {
	f := &Federation{
		n:              n,
		cache:          keys.Cache{Store: n.store.ServerKeys()},
		fetching:       map[string][]func(error){},
		keyFetches:     map[string]keyFetchState{},
		keyFetchBudget: newLimiter(keyFetchesPerMinute/60.0, keyFetchesPerMinute),
		inflight:       map[string][]*Call{},
		queues:         map[string]*destQueue{},
		edus:           map[string]EDUHandler{},
		maxLossyEDUs:   maxQueuedLossyEDUs,
		maxEDUBytes:    maxQueuedEDUBytes,
	}
	rl := n.cfg.RateLimit
	f.limitFedIP = newBucketLimiter(rl.Enabled, rl.FederationPerIP)
	f.limitFedOrigin = newBucketLimiter(rl.Enabled, rl.FederationPerOrigin)
	n.SetModule(federationModuleName, f)
	n.OnStop(f.stop)
	if err := f.restoreQueues(); err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	f.installEDUHandlers()
	f.installClientIntercepts()
	var routes []Route
	routes = append(routes, f.keyRoutes()...)
	routes = append(routes, f.infoRoutes()...)
	routes = append(routes, f.sendRoutes()...)
	routes = append(routes, f.queryRoutes()...)
	return routes, nil
}

// stop cancels retry timers; queued items stay in the database.
func (f *Federation) stop() {
	f.stopped = true
	for _, q := range f.queues {
		if q.timer != nil {
			q.timer.Stop()
			q.timer = nil
		}
	}
}

// Bounds on fetching other servers' keys. A request naming an origin or a
// key ID we do not know makes us fetch that server's keys (server-server-api
// "Request Authentication"): without bounds anyone could make us send
// requests to any name at the rate they send theirs.
//
// NOTSPEC: the spec sets no such limits.
const (
	// keyFetchesPerMinute is the sustained rate (and the burst) of new key
	// fetches that inbound requests may start: X-Matrix origins whose key
	// we lack and notary queries (fetchKeysForRequest). Fetches for events
	// (EventKey) are bounded per origin by the federation rate limits.
	keyFetchesPerMinute = 60
	// keyFetchBackoffMax bounds the wait after failed fetches of one
	// server: keyRefetchInterval after the first, doubling per failure.
	keyFetchBackoffMax = time.Hour
	// maxKeyFetchMemory is how many servers' fetch times are kept before
	// those past their wait are forgotten.
	maxKeyFetchMemory = 4096
)

// keyFetchState is when a server's keys may next be fetched (a negative
// cache after failures) and how many fetches in a row failed.
type keyFetchState struct {
	next     time.Time
	failures int
}

// keyFetchBlocked says why server's keys may not be fetched now: they
// were fetched less than keyRefetchInterval ago, or the last fetches
// failed and the backoff has not run out.
func (f *Federation) keyFetchBlocked(server string, now time.Time) error {
	st, ok := f.keyFetches[server]
	if !ok || !now.Before(st.next) {
		return nil
	}
	if st.failures > 0 {
		return fmt.Errorf("fetch keys of %s: %d fetches failed; not again before %v", server, st.failures, st.next)
	}
	return fmt.Errorf("fetch keys of %s: fetched recently; not again before %v", server, st.next)
}

// keyFetchStarted records a fetch of server's keys starting at now.
func (f *Federation) keyFetchStarted(server string, now time.Time) {
	if len(f.keyFetches) >= maxKeyFetchMemory {
		for s, st := range f.keyFetches {
			if !now.Before(st.next) {
				delete(f.keyFetches, s)
			}
		}
	}
	st := f.keyFetches[server]
	st.next = now.Add(keyRefetchInterval)
	f.keyFetches[server] = st
}

// keyFetchEnded records the outcome of a fetch of server's keys: after a
// failure the server is not asked again for keyRefetchInterval, doubled
// for each further failure in a row up to keyFetchBackoffMax.
func (f *Federation) keyFetchEnded(server string, err error, now time.Time) {
	st := f.keyFetches[server]
	if err == nil {
		st.failures = 0
		f.keyFetches[server] = st
		return
	}
	st.failures++
	wait := keyRefetchInterval << min(st.failures-1, 16)
	if wait > keyFetchBackoffMax || wait <= 0 {
		wait = keyFetchBackoffMax
	}
	st.next = now.Add(wait)
	f.keyFetches[server] = st
}

// fetchKeysForRequest is fetchKeys for a fetch an inbound request asks
// for (an unknown X-Matrix key, a notary query): a new fetch also takes a
// token from the node-wide keyFetchBudget; joining a fetch in flight, or
// being refused by the per-server wait, costs none.
func (f *Federation) fetchKeysForRequest(server string, done func(error)) {
	now := f.n.Now()
	if _, inFlight := f.fetching[server]; !inFlight && f.keyFetchBlocked(server, now) == nil {
		if f.keyFetchBudget.take("", now) != nil {
			f.n.log.Debug("server key fetch refused: budget spent", "server", server)
			f.n.AfterFunc(0, func() {
				done(fmt.Errorf("fetch keys of %s: more than %d key fetches a minute", server, keyFetchesPerMinute))
			})
			return
		}
	}
	f.fetchKeys(server, done)
}
