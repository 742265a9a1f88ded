package noise

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

// Test harness: endpoints joined by an in-memory network whose links can
// lose, duplicate and reorder datagrams, all driven by one fake time.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type ident struct {
	name string
	kp   KeyPair
	sign ed25519.PrivateKey
	addr netip.AddrPort
}

func newIdent(t testing.TB, rng *rand.ChaCha8, name string, port uint16) ident {
	t.Helper()
	kp, err := GenerateKeyPair(rng)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rng.Read(seed)
	return ident{name: name, kp: kp, sign: ed25519.NewKeyFromSeed(seed),
		addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(port)}), port)}
}

// pin returns the peer-table entry for id.
func (id ident) pin(mutual bool) Peer[netip.AddrPort] {
	return Peer[netip.AddrPort]{Name: id.name, NoiseKey: id.kp.Public,
		SigningKey: id.sign.Public().(ed25519.PublicKey), Addr: id.addr, Mutual: mutual}
}

type node struct {
	id   ident
	ep   *Endpoint[netip.AddrPort]
	got  []string // delivered plaintexts as "peer:text"
	errs []error
}

type packet struct {
	from, to netip.AddrPort
	data     []byte
}

type network struct {
	t     testing.TB
	rng   *rand.ChaCha8
	r     *rand.Rand
	now   time.Time
	nodes map[netip.AddrPort]*node
	order []*node // nodes in the order added: advance ticks them in this order
	// in flight, in delivery order
	flight []packet
	// link faults, probabilities in [0,1]
	loss, dup, reorder float64
	// trace of every datagram: from→to and size
	sent   int
	sizes  []int
	filter func(p packet) bool // false drops
	trace  []string            // with record set: "now from→to hex" per datagram put on the wire
	record bool
	// cfg, if set, adjusts each endpoint's Config before New.
	cfg func(*Config[netip.AddrPort])
}

func newNetwork(t testing.TB, seed uint64) *network {
	rng := clock.SeededRNG(seed)
	return &network{t: t, rng: rng, r: rand.New(rng), now: t0, nodes: map[netip.AddrPort]*node{}}
}

func (nw *network) add(id ident, tofu bool, peers ...Peer[netip.AddrPort]) *node {
	nw.t.Helper()
	cfg := Config[netip.AddrPort]{ServerName: id.name, Static: id.kp, SigningKey: id.sign,
		Peers: peers, TrustOnFirstUse: tofu, Random: clock.SeededRNG(nw.rng.Uint64())}
	if nw.cfg != nil {
		nw.cfg(&cfg)
	}
	ep, err := New(cfg)
	if err != nil {
		nw.t.Fatal(err)
	}
	n := &node{id: id, ep: ep}
	if old := nw.nodes[id.addr]; old != nil { // a restart replaces the node
		nw.order[slices.Index(nw.order, old)] = n
	} else {
		nw.order = append(nw.order, n)
	}
	nw.nodes[id.addr] = n
	return n
}

// send seals plaintext from n to peer and puts the result on the wire.
func (nw *network) send(n *node, peer, text string) error {
	out, to, err := n.ep.Seal(nil, nw.now, peer, []byte(text))
	if err != nil {
		return err
	}
	if len(out) > 0 {
		nw.put(packet{from: n.id.addr, to: to, data: out})
	}
	nw.drain(n)
	return nil
}

func (nw *network) put(p packet) {
	nw.sent++
	nw.sizes = append(nw.sizes, len(p.data))
	if nw.record {
		nw.trace = append(nw.trace, fmt.Sprintf("%s %s→%s %x", nw.now.Sub(t0), p.from, p.to, p.data))
	}
	if nw.filter != nil && !nw.filter(p) {
		return
	}
	if nw.loss > 0 && nw.r.Float64() < nw.loss {
		return
	}
	nw.flight = append(nw.flight, p)
	if nw.dup > 0 && nw.r.Float64() < nw.dup {
		nw.flight = append(nw.flight, packet{p.from, p.to, append([]byte(nil), p.data...)})
	}
	if nw.reorder > 0 && len(nw.flight) > 1 && nw.r.Float64() < nw.reorder {
		i := nw.r.IntN(len(nw.flight))
		j := len(nw.flight) - 1
		nw.flight[i], nw.flight[j] = nw.flight[j], nw.flight[i]
	}
}

func (nw *network) drain(n *node) {
	for {
		tx, ok := n.ep.PollTransmit()
		if !ok {
			return
		}
		nw.put(packet{from: n.id.addr, to: tx.To, data: tx.Data})
	}
}

// run delivers datagrams until none are in flight.
func (nw *network) run() {
	for steps := 0; len(nw.flight) > 0; steps++ {
		if steps > 100000 {
			nw.t.Fatal("network did not settle")
		}
		p := nw.flight[0]
		nw.flight = nw.flight[1:]
		n := nw.nodes[p.to]
		if n == nil {
			continue
		}
		pt, from, err := n.ep.Open(nil, nw.now, p.from, p.data)
		if err != nil {
			n.errs = append(n.errs, err)
		} else if from != "" {
			n.got = append(n.got, from+":"+string(pt))
		}
		nw.drain(n)
	}
}

// advance moves time forward by d, ticking every endpoint at each of its
// deadlines on the way, and delivering what the ticks send.
func (nw *network) advance(d time.Duration) {
	end := nw.now.Add(d)
	for {
		next := end
		for _, n := range nw.order {
			if dl, ok := n.ep.NextDeadline(); ok && dl.Before(next) {
				next = dl
			}
		}
		if next.Before(nw.now) {
			next = nw.now
		}
		nw.now = next
		for _, n := range nw.order {
			n.ep.Tick(nw.now)
			nw.drain(n)
		}
		nw.run()
		if !nw.now.Before(end) {
			return
		}
	}
}

func (n *node) errCount(target error) int {
	c := 0
	for _, e := range n.errs {
		if errors.Is(e, target) {
			c++
		}
	}
	return c
}

func (n *node) event(kind EventKind) (Event, bool) {
	for {
		ev, ok := n.ep.PollEvent()
		if !ok {
			return Event{}, false
		}
		if ev.Kind == kind {
			return ev, true
		}
	}
}

func texts(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return s
}

type netipAddr = netip.AddrPort
type ed25519PublicKey = ed25519.PublicKey
