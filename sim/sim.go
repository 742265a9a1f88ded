package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/gateway"
	"github.com/mxmesh/mxmesh/homeserver"
	"github.com/mxmesh/mxmesh/noise"
)

// Options tune one run.
type Options struct {
	// Seed overrides the scenario's seed when not zero.
	Seed uint64
	// Dir is where the servers' databases go, one subdirectory each; empty
	// means a new temporary directory, removed when the run ends.
	Dir string
	// Sync, when set, overrides every client's sync mode (SyncObserve or
	// SyncPoll).
	Sync string
	// Logger receives the nodes' records; nil discards them.
	Logger *slog.Logger
}

// Sim is one run of a scenario. It is driven by Run from one goroutine.
type Sim struct {
	sc    *Scenario
	seed  uint64
	clk   *clock.Fake
	start time.Time
	rng   *rand.Rand
	log   *slog.Logger
	trace hash.Hash

	events     int
	unroutable int
	links      []*link
	eps        []*endpoint
	byAddr     map[netip.AddrPort]int
	byName     map[string]int
	servers    map[string]*server
	serverList []*server
	clients    map[string]*client
	clientList []*client
	rooms      map[string]string // label → room ID
	msgs       []*simMessage
	failures   []string
	spans      []span
	// onArrive, when set, receives datagrams at their destination
	// instead of the endpoint's CoAPNode (tests of the link model).
	onArrive func(idx int, p packet)
}

// endpoint is a node's network side: a CoAPNode at an address, and the
// first link towards every other endpoint.
type endpoint struct {
	s      *Sim
	idx    int
	name   string
	server bool
	addr   netip.AddrPort
	node   *gateway.CoAPNode
	timer  clock.Timer
	armed  time.Time
	next   []*linkDir // by destination endpoint; nil: unreachable
	drops  int
}

// simMessage is one message a send action produced.
type simMessage struct {
	id        int
	from      *client
	roomID    string
	sentAt    time.Duration
	expect    []*client // members other than the sender when it was sent
	delivered map[*client]time.Duration
	failed    bool
}

// Run runs a scenario to its end and returns the result.
func Run(sc *Scenario, opts Options) (res *Result, err error) {
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("sim: run: %w", err)
	}
	if opts.Sync != "" {
		if opts.Sync != SyncObserve && opts.Sync != SyncPoll {
			return nil, fmt.Errorf("sim: run: sync mode %q: want %s or %s", opts.Sync, SyncObserve, SyncPoll)
		}
		c := *sc
		c.Clients = slices.Clone(sc.Clients)
		for i := range c.Clients {
			c.Clients[i].Sync = opts.Sync
		}
		sc = &c
	}
	seed := opts.Seed
	if seed == 0 {
		seed = sc.Seed
	}
	if seed == 0 {
		seed = 1
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mxmesh-sim-*"); err != nil {
			return nil, fmt.Errorf("sim: run: %w", err)
		}
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = fmt.Errorf("sim: run: remove databases: %w", rerr)
			}
		}()
	}
	s := &Sim{sc: sc, seed: seed, clk: clock.NewFake(clock.Epoch), start: clock.Epoch, log: opts.Logger,
		trace: sha256.New(), byAddr: map[netip.AddrPort]int{}, byName: map[string]int{},
		servers: map[string]*server{}, clients: map[string]*client{}, rooms: map[string]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	master := clock.SeededRNG(seed)
	s.rng = rand.New(clock.SeededRNG(master.Uint64()))
	defer s.close()
	if err := s.build(master, dir); err != nil {
		return nil, fmt.Errorf("sim: run: %w", err)
	}
	s.schedule()
	end := s.start.Add(sc.Duration.D())
	for {
		at, ok := s.clk.Next()
		if !ok || at.After(end) {
			break
		}
		s.clk.AdvanceTo(at)
		s.flushAll()
	}
	s.clk.AdvanceTo(end)
	return s.result(), nil
}

// build makes the endpoints, links, routes, servers and clients, drawing
// every key from master in scenario order.
func (s *Sim) build(master *rand.ChaCha8, dir string) error {
	sc := s.sc
	addEP := func(name string, server bool) *endpoint {
		i := len(s.eps)
		e := &endpoint{s: s, idx: i, name: name, server: server,
			addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5683)}
		s.eps = append(s.eps, e)
		s.byAddr[e.addr] = i
		s.byName[name] = i
		return e
	}
	for _, sv := range sc.Servers {
		addEP(sv.Name, true)
	}
	for _, c := range sc.Clients {
		addEP(c.User, false)
	}
	for i, ls := range sc.Links {
		if ls.Name == "" {
			ls.Name = ls.Between[0] + "–" + ls.Between[1]
		}
		l := &link{s: s, idx: i, spec: ls, ends: [2]int{s.byName[ls.Between[0]], s.byName[ls.Between[1]]}}
		for d := range 2 {
			l.dirs[d] = &linkDir{l: l, d: d}
		}
		s.links = append(s.links, l)
	}
	s.route()
	for _, c := range sc.Clients {
		if s.eps[s.byName[c.User]].next[s.byName[c.Server]] == nil {
			return fmt.Errorf("line %d: user %s has no link to its server %s", c.Line, c.User, c.Server)
		}
	}

	// Identities first, so that every server can pin every other.
	type ident struct {
		sign  *homeserver.SigningKey
		noise noise.KeyPair
	}
	ids := make([]ident, len(sc.Servers))
	for i := range sc.Servers {
		k, err := homeserver.GenerateSigningKey(master)
		if err != nil {
			return err
		}
		kp, err := noise.GenerateKeyPair(master)
		if err != nil {
			return err
		}
		ids[i] = ident{k, kp}
	}
	for i, spec := range sc.Servers {
		var peers []noise.Peer[netip.AddrPort]
		for j, other := range sc.Servers {
			if j != i {
				peers = append(peers, noise.Peer[netip.AddrPort]{Name: other.Name, NoiseKey: ids[j].noise.Public,
					SigningKey: ids[j].sign.Public(), Addr: s.eps[j].addr, Mutual: true})
			}
		}
		sv, err := s.newServer(spec.Name, filepath.Join(dir, fmt.Sprintf("%d-%s", i, spec.Name)), ids[i].sign, ids[i].noise, peers, master)
		if err != nil {
			return err
		}
		s.servers[spec.Name] = sv
		s.serverList = append(s.serverList, sv)
	}
	for _, spec := range sc.Clients {
		sv := s.servers[spec.Server]
		kp, err := noise.GenerateKeyPair(master)
		if err != nil {
			return err
		}
		seed := make([]byte, ed25519.SeedSize)
		master.Read(seed)
		ep := s.eps[s.byName[spec.User]]
		s.byName[noise.ClientName(kp.Public)] = ep.idx // its name at its server
		lp, ackDelay := s.linkParams(ep.idx)
		ncfg := noise.Config[netip.AddrPort]{ServerName: noise.ClientPrefix, Static: kp,
			SigningKey: ed25519.NewKeyFromSeed(seed), Random: clock.SeededRNG(master.Uint64()), Logger: s.log,
			Link: lp, ExpectsReply: coap.ExpectsReply,
			Peers: []noise.Peer[netip.AddrPort]{{Name: sv.name, NoiseKey: sv.noiseKey,
				SigningKey: sv.node.SigningKey().Public(), Addr: sv.ep.addr}}}
		nz, err := noise.New(ncfg)
		if err != nil {
			return fmt.Errorf("client %s: %w", spec.User, err)
		}
		if ep.node, err = gateway.NewCoAPNode(gateway.CoAPNodeConfig{Noise: nz, Logger: s.log,
			CoAP: coap.Config{Link: lp, AckDelay: ackDelay, PeerLink: s.peerLink(ep.idx), RNG: clock.SeededRNG(master.Uint64()), Logger: s.log}}); err != nil {
			return fmt.Errorf("client %s: %w", spec.User, err)
		}
		c, err := s.newClient(spec, sv, ep)
		if err != nil {
			return err
		}
		s.clients[spec.User] = c
		s.clientList = append(s.clientList, c)
	}
	return nil
}

// route computes, for every endpoint, the first link towards every other
// by breadth-first search in link order: a static mesh routing table.
// Only servers forward; clients are leaves.
func (s *Sim) route() {
	type hop struct {
		to int
		ld *linkDir
	}
	adj := make([][]hop, len(s.eps))
	for _, l := range s.links {
		adj[l.ends[0]] = append(adj[l.ends[0]], hop{l.ends[1], l.dirs[0]})
		adj[l.ends[1]] = append(adj[l.ends[1]], hop{l.ends[0], l.dirs[1]})
	}
	for _, e := range s.eps {
		e.next = make([]*linkDir, len(s.eps))
		seen := make([]bool, len(s.eps))
		seen[e.idx] = true
		queue := []int{e.idx}
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			if v != e.idx && !s.eps[v].server {
				continue
			}
			for _, h := range adj[v] {
				if seen[h.to] {
					continue
				}
				seen[h.to] = true
				if v == e.idx {
					e.next[h.to] = h.ld
				} else {
					e.next[h.to] = e.next[v]
				}
				queue = append(queue, h.to)
			}
		}
	}
}

// linkParams describes the slowest link an endpoint has, for its CoAP
// timers (coap.LinkParams), with the bit rate a duty cycle or airtime
// limit leaves. ackDelay is a quarter of the ACK timeout of its fastest
// link (coap.Config.AckDelay): the CoAP engine has one set of timers for
// all its peers, and a server that waited a slow link's delay before
// acknowledging would make its clients on a fast link give up first.
func (s *Sim) linkParams(ep int) (slow coap.LinkParams, ackDelay time.Duration) {
	fastAck := time.Duration(0)
	for _, l := range s.links {
		if l.ends[0] != ep && l.ends[1] != ep {
			continue
		}
		p := l.params()
		if pr, err := coap.Derive(p, 0, 0); err == nil && (fastAck == 0 || pr.AckTimeout < fastAck) {
			fastAck = pr.AckTimeout
		}
		if p.BitRate > 0 && (slow.BitRate == 0 || p.BitRate < slow.BitRate) {
			slow.BitRate = p.BitRate
		}
		slow.Latency = max(slow.Latency, p.Latency)
		slow.FrameTime = max(slow.FrameTime, p.FrameTime)
		if p.MTU > 0 && (slow.MTU == 0 || p.MTU < slow.MTU) {
			slow.MTU = p.MTU
		}
	}
	return slow, fastAck / 4
}

// params describes l for the CoAP and Noise timers, with the bit rate a
// duty cycle or airtime limit leaves.
func (l *link) params() coap.LinkParams {
	p := coap.LinkParams{BitRate: l.spec.Bitrate, Latency: l.spec.Latency.D(), FrameTime: l.spec.FrameTime.D(), MTU: l.spec.MTU}
	if p.BitRate > 0 {
		frac := 1.0
		if dc := l.spec.DutyCycle; dc != nil {
			frac = float64(dc.On) / float64(dc.Period)
		}
		if f := l.spec.MaxAirtime; f > 0 {
			frac = min(frac, f)
		}
		p.BitRate = max(1, int(float64(p.BitRate)*frac))
	}
	return p
}

// peerLink gives endpoint ep's CoAP engine the path towards each peer
// (coap.Config.PeerLink), so that a server's timers and ACK delay towards
// a client on a fast link are not those of its slow radio link. The peer
// is named as Noise names it: a server name, or a client's key name.
func (s *Sim) peerLink(ep int) func(coap.Peer) (coap.LinkParams, bool) {
	return func(p coap.Peer) (coap.LinkParams, bool) {
		to, ok := s.byName[string(p)]
		if !ok {
			return coap.LinkParams{}, false
		}
		return s.pathParams(ep, to)
	}
}

// pathParams combines the links of the route from one endpoint to
// another, store and forward: latencies and frame times add up, so do the
// per-bit times (1/bit rate), and the smallest MTU holds.
func (s *Sim) pathParams(from, to int) (coap.LinkParams, bool) {
	var p coap.LinkParams
	var perBit float64
	for v, hops := from, 0; v != to; hops++ {
		ld := s.eps[v].next[to]
		if ld == nil || hops > len(s.eps) {
			return coap.LinkParams{}, false
		}
		lp := ld.l.params()
		p.Latency += lp.Latency
		p.FrameTime += lp.FrameTime
		if lp.BitRate > 0 {
			perBit += 1 / float64(lp.BitRate)
		}
		if lp.MTU > 0 && (p.MTU == 0 || lp.MTU < p.MTU) {
			p.MTU = lp.MTU
		}
		v = ld.l.to(ld.d)
	}
	if perBit > 0 {
		p.BitRate = max(1, int(1/perBit))
	}
	return p, true
}

// flush sends what the endpoint's CoAPNode has queued and re-arms its
// timer at the node's next deadline.
func (e *endpoint) flush() {
	s := e.s
	for _, d := range e.node.Outgoing() {
		dst, ok := s.byAddr[d.To]
		if !ok || e.next[dst] == nil {
			s.unroutable++
			continue
		}
		e.next[dst].enqueue(packet{src: e.idx, dst: dst, data: d.Data})
	}
	at, ok := e.node.NextDeadline()
	if ok && e.timer != nil && at.Equal(e.armed) {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if !ok {
		return
	}
	e.armed = at
	e.timer = s.clk.AfterFunc(at.Sub(s.clk.Now()), func() {
		e.timer = nil
		e.node.Tick(s.clk.Now())
		e.flush()
	})
}

// flushAll flushes every endpoint in order: a node timer or a callback
// may have queued datagrams outside any flush.
func (s *Sim) flushAll() {
	for _, e := range s.eps {
		if e.node != nil {
			e.flush()
		}
	}
}

// arrive hands a datagram that crossed a link to the endpoint at idx: its
// CoAPNode when it is the destination, else the next link on the route.
func (s *Sim) arrive(idx int, p packet) {
	e := s.eps[idx]
	if idx != p.dst {
		if ld := e.next[p.dst]; ld != nil {
			ld.enqueue(p)
		} else {
			s.unroutable++
		}
		return
	}
	if s.onArrive != nil {
		s.onArrive(idx, p)
		return
	}
	if err := e.node.Receive(s.clk.Now(), s.eps[p.src].addr, p.data); err != nil {
		e.drops++
	}
	e.flush()
}

// after runs f at d from now, inside the event queue.
func (s *Sim) after(d time.Duration, f func()) { s.clk.AfterFunc(d, f) }

// elapsed is the scenario time now.
func (s *Sim) elapsed() time.Duration { return s.clk.Now().Sub(s.start) }

// fail records an action that did not work out.
func (s *Sim) fail(format string, args ...any) {
	s.failures = append(s.failures, fmt.Sprintf("%v: ", s.elapsed())+fmt.Sprintf(format, args...))
}

func (s *Sim) close() {
	var errs []string
	for _, sv := range s.serverList {
		if err := sv.close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		s.log.Warn("sim: closing servers", "err", errors.New(strings.Join(errs, "; ")))
	}
}
