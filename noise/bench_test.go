package noise

import (
	"testing"
	"time"
)

func benchPair(b *testing.B, mutual bool) (*network, *node, *node) {
	nw := newNetwork(b, 1)
	a := newIdent(b, nw.rng, "a.example", 1)
	c := newIdent(b, nw.rng, "b.example", 2)
	na := nw.add(a, false, c.pin(mutual))
	nb := nw.add(c, false, a.pin(mutual))
	for _, n := range []*node{na, nb} {
		n.ep.cfg.SourceRate, n.ep.cfg.HandshakeRate = 1e12, 1e12
	}
	return nw, na, nb
}

func benchHandshake(b *testing.B, mutual bool) {
	nw, a, c := benchPair(b, mutual)
	pa := a.ep.byName["b.example"]
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nw.now = nw.now.Add(time.Microsecond)
		pa.cur, pa.prev = nil, nil
		msg1, to, err := a.ep.Seal(nil, nw.now, "b.example", nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ep.Open(nil, nw.now, a.id.addr, msg1); err != nil {
			b.Fatal(err)
		}
		tx, _ := c.ep.PollTransmit()
		if _, _, err := a.ep.Open(nil, nw.now, to, tx.Data); err != nil {
			b.Fatal(err)
		}
		for {
			if _, ok := a.ep.PollEvent(); !ok {
				break
			}
		}
		for {
			if _, ok := c.ep.PollEvent(); !ok {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

func BenchmarkHandshakeIK(b *testing.B) { benchHandshake(b, false) }
func BenchmarkHandshakeKK(b *testing.B) { benchHandshake(b, true) }

const benchPayload = 100 // bytes: a small CoAP request with a CBOR body

func BenchmarkSeal(b *testing.B) {
	nw, a, c := benchPair(b, false)
	establish(b, nw, a, c)
	pt := make([]byte, benchPayload)
	buf := make([]byte, 0, 256)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := a.ep.Seal(buf[:0], nw.now, "b.example", pt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkOpen(b *testing.B) {
	nw, a, c := benchPair(b, false)
	establish(b, nw, a, c)
	pt := make([]byte, benchPayload)
	const batch = 1024
	pkts := make([][]byte, batch)
	fill := func() {
		for i := range pkts {
			pkts[i], _, _ = a.ep.Seal(pkts[i][:0], nw.now, "b.example", pt)
		}
	}
	fill()
	out := make([]byte, 0, 256)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 && i > 0 {
			b.StopTimer()
			fill()
			b.StartTimer()
		}
		if _, _, err := c.ep.Open(out[:0], nw.now, a.id.addr, pkts[i%batch]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// TestSteadyStateAllocs: Seal and Open on an established session allocate
// nothing when the caller supplies buffers.
func TestSteadyStateAllocs(t *testing.T) {
	nw, a, c := pair(t, false)
	establish(t, nw, a, c)
	pt := make([]byte, benchPayload)
	sbuf, obuf := make([]byte, 0, 256), make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		pkt, to, err := a.ep.Seal(sbuf[:0], nw.now, "b.example", pt)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ep.Open(obuf[:0], nw.now, a.id.addr, pkt); err != nil {
			t.Fatal(err)
		}
		_ = to
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Seal+Open, want 0", allocs)
	}
}
