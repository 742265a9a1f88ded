package gateway

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
)

// BenchmarkCoAPOverNoiseExchange measures one request/response exchange
// between two CoAPNodes secured by Noise (KK), in memory, after the
// handshake: seal, open, CoAP on both sides. wireB/op is the bytes of both
// datagrams.
func BenchmarkCoAPOverNoiseExchange(b *testing.B) {
	t := b
	rng := clock.SeededRNG(3)
	a := newTestIdent(t, rng, "a.example", 1)
	bb := newTestIdent(t, rng, "b.example", 2)
	na, _ := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(1)}, Noise: a.noiseEndpoint(t, rng, bb)})
	nb, _ := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(2)}, Noise: bb.noiseEndpoint(t, rng, a)},
		CoAPResource{Path: "/r", Handler: CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
			reply(coap.Message{Code: codes.Changed, Payload: []byte("ok")})
		})})
	now := clock.Epoch
	req := coap.NewRequest(codes.POST, "/r", []byte("0123456789abcdef0123456789abcdef"))
	answered := 0
	var wire int
	exchange := func() {
		now = now.Add(time.Millisecond)
		if _, err := na.Send(now, "b.example", req, coap.SendOptions{}, func(coap.Event) { answered++ }); err != nil {
			b.Fatal(err)
		}
		for moved := true; moved; {
			moved = false
			for _, d := range na.Outgoing() {
				wire += len(d.Data)
				nb.Receive(now, a.addr, d.Data)
				moved = true
			}
			for _, d := range nb.Outgoing() {
				wire += len(d.Data)
				na.Receive(now, bb.addr, d.Data)
				moved = true
			}
		}
		na.Tick(now)
		nb.Tick(now)
	}
	for range 3 { // handshake, then steady state
		exchange()
	}
	if answered != 3 {
		b.Fatalf("%d of 3 warm-up requests answered", answered)
	}
	answered, wire = 0, 0
	b.ReportAllocs()
	for b.Loop() {
		exchange()
	}
	if answered != b.N {
		b.Fatalf("%d of %d answered", answered, b.N)
	}
	b.ReportMetric(float64(wire)/float64(b.N), "wireB/op")
}
