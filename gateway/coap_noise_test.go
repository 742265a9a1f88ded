package gateway

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
	"github.com/mxmesh/mxmesh/noise"
)

// simLink carries datagrams between CoAPNodes on a fake clock, losing,
// duplicating and reordering them with a seeded RNG. It records every
// transport packet's (session index, counter) to prove no nonce is used
// twice.
type simLink struct {
	errorf             func(format string, args ...any)
	clk                *clock.Fake
	r                  *rand.Rand
	nodes              map[netip.AddrPort]*simNode
	loss, dup, reorder float64
	delay              time.Duration
	sent, bytes        int
	sizes              []int // of every datagram, in order
	// last reconstructed counter per (from, to, receiver index); reset when
	// a handshake message passes between the two (new keys).
	counters map[nonceKey]uint64
	reused   int
	// secured says datagrams are Noise packets whose nonces to check.
	secured bool
}

type nonceKey struct {
	from, to netip.AddrPort
	index    uint16
}

type simNode struct {
	addr  netip.AddrPort
	node  *CoAPNode
	timer clock.Timer
	link  *simLink
}

func (l *simLink) add(addr netip.AddrPort, n *CoAPNode) *simNode {
	s := &simNode{addr: addr, node: n, link: l}
	l.nodes[addr] = s
	return s
}

func (s *simNode) flush() {
	l := s.link
	for _, d := range s.node.Outgoing() {
		l.transmit(s.addr, d)
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if at, ok := s.node.NextDeadline(); ok {
		s.timer = l.clk.AfterFunc(at.Sub(l.clk.Now()), func() {
			s.timer = nil
			s.node.Tick(l.clk.Now())
			s.flush()
		})
	}
}

// checkNonce parses the transport header (noise package doc: receiver
// index in 1 or 2 bytes, then the counter as 1 exact or 2 truncated LEB128
// groups) and reconstructs the sender's full counter, which must grow.
func (l *simLink) checkNonce(from, to netip.AddrPort, p []byte) {
	if len(p) == 0 {
		return
	}
	if p[0] >= 0xC0 { // handshake or cookie: fresh keys follow
		for k := range l.counters {
			if (k.from == from && k.to == to) || (k.from == to && k.to == from) {
				delete(l.counters, k)
			}
		}
		return
	}
	n, idx := 1, uint16(p[0])
	if p[0] >= 0x80 {
		n, idx = 2, uint16(p[0]&0x3f)<<8|uint16(p[1])
	}
	var trunc uint64
	bits := uint(0)
	if p[n]&0x80 == 0 {
		trunc = uint64(p[n])
	} else {
		trunc, bits = uint64(p[n]&0x7f)|uint64(p[n+1]&0x7f)<<7, 14
	}
	k := nonceKey{from, to, idx}
	prev, seen := l.counters[k]
	full := trunc
	if bits > 0 && seen {
		mask := uint64(1)<<bits - 1
		full = prev + ((trunc - prev) & mask)
	}
	if seen && full <= prev {
		l.reused++
		l.errorf("nonce reuse: %v→%v index %d counter %d after %d", from, to, idx, full, prev)
	}
	l.counters[k] = full
}

func (l *simLink) transmit(from netip.AddrPort, d UDPDatagram) {
	l.sent++
	l.bytes += len(d.Data)
	l.sizes = append(l.sizes, len(d.Data))
	if l.secured {
		l.checkNonce(from, d.To, d.Data)
	}
	dst := l.nodes[d.To]
	if dst == nil || l.r.Float64() < l.loss {
		return
	}
	copies := 1
	if l.r.Float64() < l.dup {
		copies = 2
	}
	for range copies {
		delay := l.delay
		if l.r.Float64() < l.reorder {
			delay += time.Duration(l.r.Float64() * float64(4*l.delay))
		}
		data := d.Data
		l.clk.AfterFunc(delay, func() {
			_ = dst.node.Receive(l.clk.Now(), from, data)
			dst.flush()
		})
	}
}

type testIdent struct {
	name string
	kp   noise.KeyPair
	sign ed25519.PrivateKey
	addr netip.AddrPort
}

func newTestIdent(t testing.TB, rng *rand.ChaCha8, name string, last byte) testIdent {
	kp, err := noise.GenerateKeyPair(rng)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rng.Read(seed)
	return testIdent{name: name, kp: kp, sign: ed25519.NewKeyFromSeed(seed),
		addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 5683)}
}

func (id testIdent) noiseEndpoint(t testing.TB, rng *rand.ChaCha8, peer testIdent) *noise.Endpoint[netip.AddrPort] {
	ep, err := noise.New(noise.Config[netip.AddrPort]{ServerName: id.name, Static: id.kp, SigningKey: id.sign,
		Random: rng, Peers: []noise.Peer[netip.AddrPort]{{Name: peer.name, NoiseKey: peer.kp.Public,
			SigningKey: peer.sign.Public().(ed25519.PublicKey), Addr: peer.addr, Mutual: true}}})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestCoAPOverNoiseLossyLink is issue 6's "Done when": two endpoints
// exchange 1,000 requests and 100 KB block-wise (up and down) over a
// simulated link with 30 % loss, 10 % duplication and 30 % reordering;
// every request is handled exactly once and answered exactly once, and no
// Noise nonce is used twice.
func TestCoAPOverNoiseLossyLink(t *testing.T) {
	rng := clock.SeededRNG(42)
	a := newTestIdent(t, rng, "a.example", 1)
	b := newTestIdent(t, rng, "b.example", 2)
	clk := clock.NewFake(clock.Epoch)
	link := &simLink{errorf: t.Errorf, clk: clk, r: rand.New(clock.SeededRNG(7)), nodes: map[netip.AddrPort]*simNode{},
		loss: 0.3, dup: 0.1, reorder: 0.3, delay: 40 * time.Millisecond, counters: map[nonceKey]uint64{}, secured: true}
	coapCfg := coap.Config{NStart: 8, MaxRetransmit: 20, BlockSize: 1024}

	big := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16)
	handled := map[string]int{}
	serve := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		key := r.Msg.Path()
		if len(r.Msg.Payload) < 64 {
			key += "/" + string(r.Msg.Payload)
		}
		handled[key]++
		if r.Peer != "a.example" {
			t.Errorf("request from %q, want the authenticated name a.example", r.Peer)
		}
		switch r.Msg.Path() {
		case "/down":
			reply(coap.Message{Code: codes.Content, Payload: big})
		default:
			reply(coap.Message{Code: codes.Changed, Payload: r.Msg.Payload})
		}
	})
	cfgA := coapCfg
	cfgA.RNG = clock.SeededRNG(1)
	na, err := NewCoAPNode(CoAPNodeConfig{CoAP: cfgA, Noise: a.noiseEndpoint(t, rng, b)})
	if err != nil {
		t.Fatal(err)
	}
	cfgB := coapCfg
	cfgB.RNG = clock.SeededRNG(2)
	nb, err := NewCoAPNode(CoAPNodeConfig{CoAP: cfgB, Noise: b.noiseEndpoint(t, rng, a)},
		CoAPResource{Path: "/r", Handler: serve}, CoAPResource{Path: "/up", Handler: serve},
		CoAPResource{Path: "/down", Handler: serve})
	if err != nil {
		t.Fatal(err)
	}
	sa := link.add(a.addr, na)
	sb := link.add(b.addr, nb)

	answered := map[uint64]int{}
	want := map[uint64][]byte{}
	now := clk.Now()
	send := func(req *coap.Message, wantBody []byte) {
		id, err := na.Send(now, "b.example", req, coap.SendOptions{}, func(ev coap.Event) {
			if ev.Kind != coap.ResponseReceived {
				t.Fatalf("request failed: %v", ev.Err)
			}
			answered[ev.ID]++
			if !bytes.Equal(ev.Msg.Payload, want[ev.ID]) {
				t.Fatalf("request %d answered with %d bytes, want %d", ev.ID, len(ev.Msg.Payload), len(want[ev.ID]))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = wantBody
	}
	for i := range 1000 {
		p := fmt.Appendf(nil, "%d", i)
		send(coap.NewRequest(codes.POST, "/r", p), p)
	}
	send(coap.NewRequest(codes.PUT, "/up", big), big)
	send(coap.NewRequest(codes.GET, "/down", nil), big)
	sa.flush()
	sb.flush()
	for steps := 0; len(answered) < len(want); steps++ {
		if steps > 5_000_000 || !clk.RunNext() {
			t.Fatalf("stalled with %d of %d answered", len(answered), len(want))
		}
	}
	for id, n := range answered {
		if n != 1 {
			t.Errorf("request %d answered %d times", id, n)
		}
	}
	if len(handled) != 1002 {
		t.Errorf("server handled %d distinct requests, want 1002", len(handled))
	}
	for k, n := range handled {
		if n != 1 {
			t.Errorf("server handled %s %d times", k, n)
		}
	}
	if link.reused != 0 {
		t.Errorf("%d nonces reused", link.reused)
	}
	if len(link.counters) == 0 {
		t.Fatal("no transport packets checked for nonce reuse")
	}
	st := na.Endpoint().Stats()
	t.Logf("%d datagrams, %d bytes, client retransmissions %d, noise drops a=%d b=%d, virtual time %v",
		link.sent, link.bytes, st.Retransmitted, na.Drops(), nb.Drops(), clk.Now().Sub(clock.Epoch))
}
