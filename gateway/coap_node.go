package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/noise"
)

// CoAPRequest is one complete request handed to a CoAPHandler.
type CoAPRequest struct {
	// Peer is who sent it: the peer's server name over Noise, its
	// "ip:port" in plain mode.
	Peer string
	// Server says Peer is a Matrix server pinned in the Noise peer table
	// (noise.Endpoint.Pinned): the session proves it holds the keys its
	// operator configured for that name. Never set for a client, a peer
	// learned by trust on first use, or plain CoAP.
	Server bool
	Msg    coap.Message
	// Observe is set when the request registers an observation of the
	// resource (RFC 7641 §2); a 2.xx answer registers it, and later
	// CoAPNode.Notify calls reach the client.
	Observe bool
	// Token is the request's CoAP token; with Peer it names the
	// observation a registration creates.
	Token []byte
	// Notify, set when Observe is, sends a confirmable notification to
	// this observer alone once the registration is answered (RFC 7641
	// §4.2; for per-client representations such as /sync). done, if set,
	// runs on the node's loop, like reply, once the client acknowledged m
	// and fetched every block of it (delivered), or when it did not (lost,
	// reset, superseded by a newer Notify); observing says whether the
	// observation is still registered then. A nil m sends nothing: done
	// runs at once, delivered when the observation is registered.
	Notify func(m *coap.Message, done func(delivered, observing bool))
}

// CoAPHandler answers requests for one resource. ServeCoAP runs on the
// node's loop and must not block: it calls reply exactly once, at once or
// later (from any goroutine when the node runs in a UDPServer; from the
// loop otherwise). Answering within the call rides on the ACK.
type CoAPHandler interface {
	ServeCoAP(req *CoAPRequest, reply func(coap.Message))
}

// CoAPHandlerFunc adapts a function to CoAPHandler.
type CoAPHandlerFunc func(req *CoAPRequest, reply func(coap.Message))

// ServeCoAP calls f.
func (f CoAPHandlerFunc) ServeCoAP(req *CoAPRequest, reply func(coap.Message)) { f(req, reply) }

// CoAPResource is one path the node serves.
type CoAPResource struct {
	// Path is the resource path, "/sync".
	Path string
	// Attrs are its RFC 6690 link attributes as they appear in
	// /.well-known/core, e.g. `rt="matrix.sync";obs;ct=60`.
	Attrs   string
	Handler CoAPHandler
}

// WellKnownCore is the resource discovery path (RFC 6690 §4).
const WellKnownCore = "/.well-known/core"

// contentFormatLinkFormat is application/link-format (RFC 6690 §7.2).
const contentFormatLinkFormat = 40

// UDPDatagram is one datagram the node wants sent.
type UDPDatagram struct {
	To   netip.AddrPort
	Data []byte
}

// CoAPNodeConfig configures a CoAPNode.
type CoAPNodeConfig struct {
	CoAP coap.Config
	// Noise secures every datagram; nil means plain CoAP, which the node
	// speaks only with loopback addresses.
	Noise *noise.Endpoint[netip.AddrPort]
	// Fallback serves every path that no resource matches (the Matrix API
	// front door); nil answers them 4.04.
	Fallback CoAPHandler
	Logger   *slog.Logger
}

// ErrNotLoopback refuses plain CoAP with a non-loopback address.
var ErrNotLoopback = errors.New("gateway: plain CoAP is allowed on loopback addresses only")

// CoAPNode is the CoAP front door without I/O: the coap engine, optionally
// under Noise, plus resource dispatch and /.well-known/core. Feed it
// datagrams and time; send what Outgoing returns; Tick at NextDeadline.
// UDPServer runs one on a socket; tests and the simulator drive it
// directly.
//
// A CoAPNode is not safe for concurrent use: one loop owns it.
type CoAPNode struct {
	ep       *coap.Endpoint
	nz       *noise.Endpoint[netip.AddrPort]
	log      *slog.Logger
	res      []CoAPResource
	byKey    map[string]*CoAPResource
	fallback CoAPHandler
	// waiting maps our request IDs to the callbacks for their outcome.
	waiting map[uint64]func(coap.Event)
	// notified maps NotifyObserver IDs to the callbacks for their
	// delivery (coap.NotificationDone).
	notified map[uint64]func(coap.Event)
	out      []UDPDatagram
	now      time.Time
	scratch  []byte
	drops    uint64
}

// NewCoAPNode builds a node serving resources.
func NewCoAPNode(cfg CoAPNodeConfig, resources ...CoAPResource) (*CoAPNode, error) {
	ep, err := coap.NewEndpoint(cfg.CoAP)
	if err != nil {
		return nil, fmt.Errorf("gateway: coap node: %w", err)
	}
	n := &CoAPNode{ep: ep, nz: cfg.Noise, log: cfg.Logger, byKey: map[string]*CoAPResource{},
		fallback: cfg.Fallback, waiting: map[uint64]func(coap.Event){}, notified: map[uint64]func(coap.Event){}}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.res = slices.Clone(resources)
	slices.SortFunc(n.res, func(a, b CoAPResource) int { return strings.Compare(a.Path, b.Path) })
	for i := range n.res {
		r := &n.res[i]
		if !strings.HasPrefix(r.Path, "/") || r.Handler == nil {
			return nil, fmt.Errorf("gateway: coap node: resource %q needs a leading / and a handler", r.Path)
		}
		if r.Path == WellKnownCore || n.byKey[r.Path] != nil {
			return nil, fmt.Errorf("gateway: coap node: resource %q registered twice", r.Path)
		}
		n.byKey[r.Path] = r
	}
	return n, nil
}

// Endpoint returns the CoAP engine, for statistics.
func (n *CoAPNode) Endpoint() *coap.Endpoint { return n.ep }

// Drops counts datagrams refused before CoAP saw them.
func (n *CoAPNode) Drops() uint64 { return n.drops }

// Receive processes one datagram from address from.
func (n *CoAPNode) Receive(now time.Time, from netip.AddrPort, pkt []byte) error {
	n.now = now
	defer n.pump()
	if n.nz == nil {
		if !from.Addr().Unmap().IsLoopback() {
			n.drops++
			return fmt.Errorf("gateway: coap datagram from %v: %w", from, ErrNotLoopback)
		}
		return n.ep.Receive(now, coap.Peer(from.String()), pkt)
	}
	plain, name, err := n.nz.Open(n.scratch[:0], now, from, pkt)
	n.scratch = plain[:0]
	if err != nil {
		n.drops++
		return fmt.Errorf("gateway: coap datagram from %v: %w", from, err)
	}
	if name == "" || len(plain) == 0 {
		return nil // handshake, cookie or keepalive
	}
	return n.ep.Receive(now, coap.Peer(name), plain)
}

// Tick runs the engines' timers due at now.
func (n *CoAPNode) Tick(now time.Time) {
	n.now = now
	n.ep.Tick(now)
	if n.nz != nil {
		n.nz.Tick(now)
	}
	n.pump()
}

// NextDeadline is when Tick must run next.
func (n *CoAPNode) NextDeadline() (time.Time, bool) {
	t, ok := n.ep.NextDeadline()
	if n.nz != nil {
		if t2, ok2 := n.nz.NextDeadline(); ok2 && (!ok || t2.Before(t)) {
			t, ok = t2, true
		}
	}
	return t, ok
}

// Outgoing returns the datagrams to send and forgets them.
func (n *CoAPNode) Outgoing() []UDPDatagram {
	out := n.out
	n.out = nil
	return out
}

// Send starts a request to peer (a server name over Noise, "ip:port" in
// plain mode); done gets its outcome on the loop: ResponseReceived or
// RequestFailed, then, for an observation, NotificationReceived events
// until Cancel.
func (n *CoAPNode) Send(now time.Time, peer string, req *coap.Message, opt coap.SendOptions, done func(coap.Event)) (uint64, error) {
	n.now = now
	defer n.pump()
	if n.nz == nil {
		ap, err := netip.ParseAddrPort(peer)
		if err != nil {
			return 0, fmt.Errorf("gateway: coap send to %q: %w", peer, err)
		}
		if !ap.Addr().Unmap().IsLoopback() {
			return 0, fmt.Errorf("gateway: coap send to %q: %w", peer, ErrNotLoopback)
		}
		peer = ap.String()
	}
	id, err := n.ep.Send(now, coap.Peer(peer), req, opt)
	if err != nil {
		return 0, err
	}
	n.waiting[id] = done
	return id, nil
}

// Cancel forgets request or observation id; its callback is not called
// again.
func (n *CoAPNode) Cancel(now time.Time, id uint64) {
	n.now = now
	defer n.pump()
	delete(n.waiting, id)
	n.ep.Cancel(now, id)
}

// Notify pushes msg to the observers of path (RFC 7641 §4.2).
func (n *CoAPNode) Notify(now time.Time, path string, msg *coap.Message, confirmable bool) (int, error) {
	n.now = now
	defer n.pump()
	return n.ep.Notify(now, path, msg, confirmable)
}

// pump moves the engine's output into datagrams and dispatches its events
// until both are quiet (a handler answering at once makes more output).
func (n *CoAPNode) pump() {
	for {
		// Noise's own datagrams first: a handshake answer queued by Open
		// must leave before the transport packets sealed with its keys.
		n.drainNoise()
		dgs := n.ep.Outgoing()
		evs := n.ep.Events()
		for _, d := range dgs {
			n.transmit(d)
		}
		n.drainNoise()
		for _, ev := range evs {
			n.dispatch(ev)
		}
		if len(dgs) == 0 && len(evs) == 0 {
			return
		}
	}
}

func (n *CoAPNode) drainNoise() {
	if n.nz == nil {
		return
	}
	for {
		t, ok := n.nz.PollTransmit()
		if !ok {
			break
		}
		n.out = append(n.out, UDPDatagram{To: t.To, Data: t.Data})
	}
	for {
		ev, ok := n.nz.PollEvent()
		if !ok {
			break
		}
		if ev.Kind == noise.EventLearned {
			// Trust on first use: the pin lives until restart; an operator
			// makes it permanent with `mxmesh peer add`.
			n.log.Info("gateway: noise peer learned on first use", "peer", ev.Peer,
				"noise_key", base64.RawStdEncoding.EncodeToString(ev.NoiseKey),
				"signing_key", base64.RawStdEncoding.EncodeToString(ev.SigningKey))
			continue
		}
		n.log.Debug("gateway: noise event", "kind", ev.Kind, "peer", ev.Peer)
	}
}

func (n *CoAPNode) transmit(d coap.Datagram) {
	if n.nz == nil {
		ap, err := netip.ParseAddrPort(string(d.To))
		if err != nil {
			n.log.Debug("gateway: coap peer without address", "peer", d.To, "err", err)
			return
		}
		n.out = append(n.out, UDPDatagram{To: ap, Data: d.Data})
		return
	}
	pkt, to, err := n.nz.Seal(nil, n.now, string(d.To), d.Data)
	if err != nil {
		n.log.Debug("gateway: noise seal", "peer", d.To, "err", err)
		return
	}
	if len(pkt) > 0 {
		n.out = append(n.out, UDPDatagram{To: to, Data: pkt})
	}
}

func (n *CoAPNode) dispatch(ev coap.Event) {
	switch ev.Kind {
	case coap.RequestReceived:
		n.serve(ev)
	case coap.NotificationDone:
		if cb := n.notified[ev.ID]; cb != nil {
			delete(n.notified, ev.ID)
			cb(ev)
		}
	default:
		cb := n.waiting[ev.ID]
		if ev.Kind == coap.RequestFailed || (ev.Kind == coap.ResponseReceived && !ev.HasObserve) {
			delete(n.waiting, ev.ID)
		}
		if cb != nil {
			cb(ev)
		}
	}
}

func (n *CoAPNode) serve(ev coap.Event) {
	id := ev.ID
	answered := false
	reply := func(m coap.Message) {
		if answered {
			return
		}
		answered = true
		if err := n.ep.Respond(n.now, id, &m); err != nil {
			n.log.Debug("gateway: coap respond", "err", err)
		}
		n.pump()
	}
	path := ev.Msg.Path()
	if path == WellKnownCore {
		if ev.Msg.Code != codes.GET {
			reply(coap.Message{Code: codes.MethodNotAllowed})
			return
		}
		m := coap.Message{Code: codes.Content, Payload: n.linkFormat(queries(ev.Msg.Options))}
		m.Options, _, _ = m.Options.SetContentFormat(make([]byte, 2), contentFormatLinkFormat)
		reply(m)
		return
	}
	h := n.fallback
	if r := n.byKey[path]; r != nil {
		h = r.Handler
	}
	if h == nil {
		reply(coap.Message{Code: codes.NotFound})
		return
	}
	req := &CoAPRequest{Peer: string(ev.Peer), Msg: ev.Msg, Observe: ev.HasObserve && ev.Observe == 0, Token: ev.Token}
	req.Server = n.nz != nil && !strings.HasPrefix(req.Peer, noise.ClientPrefix) && n.nz.Pinned(req.Peer)
	if req.Observe {
		peer, tok := ev.Peer, ev.Token
		req.Notify = func(m *coap.Message, done func(delivered, observing bool)) {
			if done == nil {
				done = func(bool, bool) {}
			}
			if m == nil || !n.ep.Observing(peer, tok) {
				alive := n.ep.Observing(peer, tok)
				done(alive, alive)
				return
			}
			id, err := n.ep.NotifyObserver(n.now, peer, tok, m)
			if err != nil {
				n.log.Debug("gateway: coap notify", "peer", peer, "err", err)
			}
			if id == 0 {
				alive := n.ep.Observing(peer, tok)
				n.pump()
				done(false, alive)
				return
			}
			n.notified[id] = func(ev coap.Event) {
				if ev.Err != nil {
					n.log.Debug("gateway: coap notification not delivered", "peer", peer, "err", ev.Err)
				}
				done(ev.Err == nil, n.ep.Observing(peer, tok))
			}
			n.pump()
		}
	}
	h.ServeCoAP(req, reply)
}

func queries(opts message.Options) []string {
	var q []string
	for _, o := range opts {
		if o.ID == message.URIQuery {
			q = append(q, string(o.Value))
		}
	}
	return q
}

// linkFormat lists the resources in RFC 6690 §5 link format, filtered by
// the query as RFC 6690 §4.1 describes: href or an attribute must equal the
// value, or start with it when it ends in "*".
func (n *CoAPNode) linkFormat(query []string) []byte {
	var b []byte
	for _, r := range n.res {
		if !linkMatches(r, query) {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, '<')
		b = append(b, r.Path...)
		b = append(b, '>')
		if r.Attrs != "" {
			b = append(b, ';')
			b = append(b, r.Attrs...)
		}
	}
	return b
}

func linkMatches(r CoAPResource, query []string) bool {
	for _, q := range query {
		name, want, _ := strings.Cut(q, "=")
		var have []string
		if name == "href" {
			have = []string{r.Path}
		} else {
			for attr := range strings.SplitSeq(r.Attrs, ";") {
				k, v, ok := strings.Cut(attr, "=")
				if k != name {
					continue
				}
				if !ok {
					have = append(have, "")
					continue
				}
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				have = append(have, strings.Fields(v)...)
			}
		}
		match := false
		for _, h := range have {
			if p, ok := strings.CutSuffix(want, "*"); ok && strings.HasPrefix(h, p) || h == want {
				match = true
			}
		}
		if !match {
			return false
		}
	}
	return true
}
