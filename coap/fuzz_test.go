package coap

import (
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

// FuzzEndpointReceive feeds arbitrary datagrams, separated by 0xFF 0x00
// 0xFF, to an endpoint that has requests, a block-wise upload and an
// observation outstanding and an observer registered. It must never
// panic, every error must be ErrFormat, and its timers must still run
// out.
func FuzzEndpointReceive(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(mustHex(f, g.hex))
	}
	f.Add(append(mustHex(f, "60450000 ff 31"), append([]byte{0xff, 0, 0xff}, mustHex(f, "60000001")...)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		now := clock.Epoch
		e, err := NewEndpoint(Config{NStart: 2, BlockSize: 16, MaxBody: 4096, RNG: clock.SeededRNG(1)})
		if err != nil {
			t.Fatal(err)
		}
		e.Send(now, "p", NewRequest(codes.GET, "/a", nil), SendOptions{})
		e.Send(now, "p", NewRequest(codes.PUT, "/b", make([]byte, 100)), SendOptions{})
		obs := NewRequest(codes.GET, "/o", nil)
		obs.Options = obs.Options.Add(message.Option{ID: message.Observe})
		e.Send(now, "p", obs, SendOptions{})
		for _, dg := range splitDatagrams(data) {
			now = now.Add(10 * time.Millisecond)
			if err := e.Receive(now, "p", dg); err != nil && !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			for _, ev := range e.Events() {
				if ev.Kind == RequestReceived {
					e.Respond(now, ev.ID, &Message{Code: codes.Content, Payload: make([]byte, 40)})
					e.Notify(now, ev.Msg.Path(), &Message{Code: codes.Content, Payload: []byte("n")}, false)
				}
			}
			e.Outgoing()
			e.Tick(now)
		}
		// Everything but the registered observers (kept until a client
		// resets a notification, RFC 7641 §4.5) and our own established
		// observations (kept while fresh: a notification's Max-Age may be
		// weeks, RFC 7641 §3.3.1) must expire within a day.
		end := now.Add(24 * time.Hour)
		for i := 0; ; i++ {
			at, ok := e.NextDeadline()
			if !ok || at.After(end) {
				break
			}
			if i > 100000 {
				t.Fatal("timers never run out")
			}
			e.Tick(at)
			e.Outgoing()
			e.Events()
		}
		for _, p := range e.peers {
			tokens := 0
			for _, s := range p.tokens {
				if !(s.x.observing && s.x.obsSub == s && !s.x.done) {
					tokens++
				}
			}
			if n := len(p.pending) + len(p.queue) + tokens + len(p.seen) + len(p.assemblies) + len(p.b2cache); n != 0 {
				t.Fatalf("state left after a day: %d pending, %d tokens, %d seen, %d assemblies, %d cached",
					len(p.pending), tokens, len(p.seen), len(p.assemblies), len(p.b2cache))
			}
		}
		exchanges := 0
		for _, x := range e.exchanges {
			if !(x.observing && x.obsSub != nil && !x.done) {
				exchanges++
			}
		}
		if exchanges+len(e.incoming) != 0 {
			t.Fatalf("%d exchanges, %d incoming left after a day", exchanges, len(e.incoming))
		}
	})
}

func splitDatagrams(data []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i+2 < len(data); i++ {
		if data[i] == 0xff && data[i+1] == 0 && data[i+2] == 0xff {
			out = append(out, data[start:i])
			start = i + 3
			i += 2
		}
	}
	return append(out, data[start:])
}
