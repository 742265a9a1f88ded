package coap

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

func BenchmarkEncode(b *testing.B) {
	m := goldenMessages[4].m // GET with token, Observe and two Uri-Path options
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = Encode(buf[:0], &m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	data := mustHex(b, goldenMessages[4].hex)
	var m Wire
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := Decode(data, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchange measures one piggy-backed request/response exchange
// through two endpoints in memory: Send, the request datagram, the server's
// Receive and Respond, the ACK datagram, the client's Receive.
func BenchmarkExchange(b *testing.B) {
	cli, _ := NewEndpoint(Config{RNG: clock.SeededRNG(1)})
	srv, _ := NewEndpoint(Config{RNG: clock.SeededRNG(2)})
	now := clock.Epoch
	req := NewRequest(codes.POST, "/r", []byte("0123456789abcdef0123456789abcdef"))
	resp := &Message{Code: codes.Changed, Payload: []byte("ok")}
	var wire int
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if _, err := cli.Send(now, "srv", req, SendOptions{}); err != nil {
			b.Fatal(err)
		}
		for _, d := range cli.Outgoing() {
			wire += len(d.Data)
			srv.Receive(now, "cli", d.Data)
		}
		for _, ev := range srv.Events() {
			srv.Respond(now, ev.ID, resp)
		}
		for _, d := range srv.Outgoing() {
			wire += len(d.Data)
			cli.Receive(now, "srv", d.Data)
		}
		if evs := cli.Events(); len(evs) != 1 || evs[0].Kind != ResponseReceived {
			b.Fatalf("events %+v", evs)
		}
		// Expire deduplication state as time passes, as a node would.
		cli.Tick(now)
		srv.Tick(now)
	}
	b.ReportMetric(float64(wire)/float64(b.N), "wireB/op")
}

// BenchmarkBlockwise100KB moves a 100 KB body up and the same down over a
// lossless in-memory link with NSTART 4.
func BenchmarkBlockwise100KB(b *testing.B) {
	body := make([]byte, 100_000)
	b.ReportAllocs()
	b.SetBytes(2 * int64(len(body)))
	for b.Loop() {
		l := newTestLink(b, 1)
		l.delay = time.Millisecond
		cli := l.add("cli", Config{NStart: 4})
		srv := l.add("srv", Config{NStart: 4})
		srv.onEvent = func(n *testNode, ev Event) {
			n.ep.Respond(l.clk.Now(), ev.ID, &Message{Code: codes.Changed, Payload: ev.Msg.Payload})
		}
		cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.PUT, "/up", body), SendOptions{})
		cli.flush()
		l.run(1_000_000, func() bool { return len(cli.events) == 1 })
		if len(cli.events[0].Msg.Payload) != len(body) {
			b.Fatal("short body")
		}
	}
}
