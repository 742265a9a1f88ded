package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// MemoryNetwork connects nodes in one process without sockets: the Remote
// of tests and of the simulator. Requests are signed with X-Matrix by the
// sending node's key and go through the receiving node's Dispatch, so
// authentication, key fetching and every federation endpoint run exactly
// as over HTTPS.
//
// Nothing is delivered inside Do: requests and answers wait in a FIFO
// queue until the driver calls Step or Run, so a node is never re-entered
// and a run is reproducible. A MemoryNetwork is driven from one goroutine
// (the single driver of the nodes attached to it); it does no locking.
type MemoryNetwork struct {
	nodes map[string]*Node
	down  map[string]bool
	queue []func()
	// Delivered counts requests handed to a receiving node.
	Delivered int
}

// NewMemoryNetwork returns an empty network.
func NewMemoryNetwork() *MemoryNetwork {
	return &MemoryNetwork{nodes: map[string]*Node{}, down: map[string]bool{}}
}

// Remote returns the Remote for the node that will be attached as origin
// (pass it in Options.Remote, then Attach the node).
func (m *MemoryNetwork) Remote(origin string) Remote { return memoryRemote{m: m, origin: origin} }

// Attach makes n reachable under its server name.
func (m *MemoryNetwork) Attach(n *Node) { m.nodes[n.ServerName()] = n }

// Detach makes the server unreachable, as if it were switched off (a
// restarted node is attached again).
func (m *MemoryNetwork) Detach(server string) { delete(m.nodes, server) }

// SetDown makes requests to server fail (true) or reach it again (false).
func (m *MemoryNetwork) SetDown(server string, down bool) { m.down[server] = down }

// Pending is how many deliveries wait in the queue.
func (m *MemoryNetwork) Pending() int { return len(m.queue) }

// Step runs the oldest queued delivery; it reports false when none was
// queued.
func (m *MemoryNetwork) Step() bool {
	if len(m.queue) == 0 {
		return false
	}
	f := m.queue[0]
	m.queue[0] = nil
	m.queue = m.queue[1:]
	f()
	return true
}

// Run steps until the queue is empty or limit deliveries have run, and
// returns how many ran.
func (m *MemoryNetwork) Run(limit int) int {
	n := 0
	for n < limit && m.Step() {
		n++
	}
	return n
}

type memoryRemote struct {
	m      *MemoryNetwork
	origin string
}

func (r memoryRemote) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	m := r.m
	m.queue = append(m.queue, func() {
		fail := func(err error) {
			m.queue = append(m.queue, func() { done(OutboundResponse{}, err) })
		}
		target, ok := m.nodes[dest]
		if !ok || m.down[dest] {
			fail(fmt.Errorf("memory network: %s %s%s: destination unreachable", req.Method, dest, req.URI))
			return
		}
		in, err := r.request(dest, req)
		if err != nil {
			fail(err)
			return
		}
		m.Delivered++
		target.Dispatch(in, func(resp Response) {
			body, err := marshalBody(resp.Body)
			m.queue = append(m.queue, func() {
				if err != nil {
					done(OutboundResponse{}, fmt.Errorf("memory network: %s %s%s: %w", req.Method, dest, req.URI, err))
					return
				}
				out := OutboundResponse{Status: resp.Status, Body: body}
				if raw, ok := resp.Body.(*RawBody); ok {
					out.ContentType = raw.Header["Content-Type"]
				}
				if resp.Status < 200 || resp.Status > 299 {
					done(out, fmt.Errorf("memory network: %s %s%s: %w", req.Method, dest, req.URI, NewRemoteError(resp.Status, body)))
					return
				}
				done(out, nil)
			})
		})
	})
}

// request builds what dest's front door would hand its node, signed by
// the origin's key.
func (r memoryRemote) request(dest string, req OutboundRequest) (*Request, error) {
	path, rawQuery, _ := strings.Cut(req.URI, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("memory network: %s %s: bad query: %w", req.Method, req.URI, err)
	}
	in := &Request{Method: req.Method, Path: path, Query: q, Body: req.Body, URI: req.URI, RemoteIP: "memory:" + r.origin}
	if !req.Unsigned {
		from, ok := r.m.nodes[r.origin]
		if !ok {
			return nil, fmt.Errorf("memory network: origin %s is not attached", r.origin)
		}
		h, err := xmatrix.Sign(xmatrix.Request{Method: req.Method, URI: req.URI, Origin: r.origin, Destination: dest, Content: req.Body},
			from.key.ID, from.key.Key)
		if err != nil {
			return nil, fmt.Errorf("memory network: %w", err)
		}
		if in.Authorization, err = h.Format(); err != nil {
			return nil, fmt.Errorf("memory network: %w", err)
		}
	}
	return in, nil
}

// marshalBody encodes a Response body as the HTTP front door does.
func marshalBody(body any) ([]byte, error) {
	if body == nil {
		return []byte("{}"), nil
	}
	if raw, ok := body.(*RawBody); ok {
		return raw.Data, nil
	}
	return json.Marshal(body)
}
