package noise

import (
	"bytes"
	"net/netip"
	"testing"
)

// fuzzPair returns b (the endpoint under test, with a live session from a)
// and real datagrams of every kind to seed the fuzzers.
func fuzzPair(t testing.TB) (*network, *node, [][]byte) {
	nw := newNetwork(t, 99)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	c := newIdent(t, nw.rng, "c.example", 3)
	na := nw.add(a, true, b.pin(false))
	nb := nw.add(b, true, a.pin(false), c.pin(true))
	nc := nw.add(c, false, b.pin(true))
	var seeds [][]byte
	nw.filter = func(p packet) bool { seeds = append(seeds, bytes.Clone(p.data)); return true }
	nw.send(na, "b.example", "hello")
	nw.run()
	nw.send(na, "b.example", "again")
	nw.send(nb, "a.example", "back")
	nw.send(nc, "b.example", "kk")
	nw.run()
	nw.filter = nil
	return nw, nb, seeds
}

// FuzzOpen feeds arbitrary datagrams to an endpoint that has a live
// session. It must never panic, never deliver a plaintext without a
// valid tag, and never answer with more bytes than it was sent.
func FuzzOpen(f *testing.F) {
	nw, b, seeds := fuzzPair(f)
	for _, s := range seeds {
		f.Add(s)
	}
	src := netip.MustParseAddrPort("203.0.113.5:5")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		known := false
		for _, s := range seeds {
			known = known || bytes.Equal(s, pkt)
		}
		pt, from, err := b.ep.Open(nil, nw.now, src, pkt)
		if err == nil && from != "" && !known {
			t.Fatalf("delivered %q from %s for a datagram never sent", pt, from)
		}
		for {
			tx, ok := b.ep.PollTransmit()
			if !ok {
				break
			}
			if len(tx.Data) > len(pkt) && !known {
				t.Fatalf("answered %d bytes with %d", len(pkt), len(tx.Data))
			}
		}
	})
}

// FuzzTransportHeader checks decode(encode(x)) == x for the transport
// header and that parsing arbitrary bytes never panics.
func FuzzTransportHeader(f *testing.F) {
	f.Add(uint16(0), uint64(0), uint64(0))
	f.Add(uint16(127), uint64(127), uint64(100))
	f.Add(uint16(128), uint64(1<<20), uint64(1<<20-8000))
	f.Add(uint16(maxIndex), uint64(1<<61), uint64(1<<61+8000))
	f.Fuzz(func(t *testing.T, index uint16, ctr, next uint64) {
		index &= maxIndex
		ctr %= rejectAfterMessages
		next %= rejectAfterMessages
		hdr := appendTransportHeader(nil, index, ctr)
		pkt := append(hdr, make([]byte, tagLen)...)
		gi, tr, bits, n, err := parseTransportHeader(pkt)
		if err != nil || gi != index || n != len(hdr) {
			t.Fatalf("index %d counter %d: parsed %d, %d bytes, %v", index, ctr, gi, n, err)
		}
		// Reconstruction is exact whenever the receiver is within half
		// the truncation window of the sender.
		d := int64(ctr - next)
		if bits == 0 || (d < 1<<13 && d > -(1<<13)) {
			if got := reconstructCounter(next, tr, bits); got != ctr {
				t.Fatalf("counter %d next %d: reconstructed %d", ctr, next, got)
			}
		}
		// Arbitrary bytes: no panic.
		_, _, _, _, _ = parseTransportHeader(hdr)
	})
}
