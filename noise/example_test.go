package noise_test

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/noise"
)

// Two servers that pinned each other exchange a request and a response.
// A real caller reads datagrams from a socket instead of the wire slice,
// and calls Tick at NextDeadline.
func Example() {
	rng := clock.SeededRNG(42)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type server struct {
		name string
		addr netip.AddrPort
		kp   noise.KeyPair
		sign ed25519.PrivateKey
		ep   *noise.Endpoint[netip.AddrPort]
	}
	mk := func(name, addr string) *server {
		kp, _ := noise.GenerateKeyPair(rng)
		seed := make([]byte, ed25519.SeedSize)
		rng.Read(seed)
		return &server{name: name, addr: netip.MustParseAddrPort(addr), kp: kp, sign: ed25519.NewKeyFromSeed(seed)}
	}
	a, b := mk("a.example", "192.0.2.1:5683"), mk("b.example", "192.0.2.2:5683")
	pin := func(s *server) noise.Peer[netip.AddrPort] {
		return noise.Peer[netip.AddrPort]{Name: s.name, NoiseKey: s.kp.Public,
			SigningKey: s.sign.Public().(ed25519.PublicKey), Addr: s.addr}
	}
	for _, s := range []*server{a, b} {
		other := pin(a)
		if s == a {
			other = pin(b)
		}
		ep, err := noise.New(noise.Config[netip.AddrPort]{ServerName: s.name, Static: s.kp,
			SigningKey: s.sign, Peers: []noise.Peer[netip.AddrPort]{other}, Random: rng})
		if err != nil {
			panic(err)
		}
		s.ep = ep
	}
	byAddr := map[netip.AddrPort]*server{a.addr: a, b.addr: b}

	type datagram struct {
		from, to netip.AddrPort
		data     []byte
	}
	var wire []datagram
	drain := func(s *server) {
		for tx, ok := s.ep.PollTransmit(); ok; tx, ok = s.ep.PollTransmit() {
			wire = append(wire, datagram{s.addr, tx.To, tx.Data})
		}
	}
	send := func(s *server, to, msg string) {
		pkt, addr, err := s.ep.Seal(nil, now, to, []byte(msg))
		if err != nil {
			panic(err)
		}
		if len(pkt) > 0 {
			wire = append(wire, datagram{s.addr, addr, pkt})
		}
		drain(s)
	}
	deliver := func() {
		for len(wire) > 0 {
			d := wire[0]
			wire = wire[1:]
			s := byAddr[d.to]
			pt, from, err := s.ep.Open(nil, now, d.from, d.data)
			switch {
			case err != nil:
				fmt.Println("dropped:", err)
			case from != "":
				fmt.Printf("%s got %q from %s (%d-byte datagram)\n", s.name, pt, from, len(d.data))
			}
			drain(s)
		}
	}

	send(a, "b.example", "GET /ping") // rides in IK message 1
	deliver()
	send(b, "a.example", "2.05 pong")
	deliver()
	// Output:
	// b.example got "GET /ping" from a.example (238-byte datagram)
	// a.example got "2.05 pong" from b.example (27-byte datagram)
}
