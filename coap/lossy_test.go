package coap

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

// TestLossyLink is issue 6's exchange test for plain CoAP: 1,000 requests and
// a 100 KB block-wise upload and download over a link that loses 30 % of
// datagrams, duplicates 10 % and reorders 30 %. Every request reaches the
// application exactly once and every response arrives exactly once.
func TestLossyLink(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { lossyRun(t, seed) })
	}
}

// TestDeterministic: the same seed gives the same run, datagram for
// datagram (DESIGN.md, "The runtime model").
func TestDeterministic(t *testing.T) {
	a, b, c := lossyRun(t, 3), lossyRun(t, 3), lossyRun(t, 4)
	if a != b {
		t.Fatalf("two runs with seed 3 differ: %s vs %s", a, b)
	}
	if a == c {
		t.Fatal("seeds 3 and 4 gave the same transcript: the trace does not see the link")
	}
}

func lossyRun(t *testing.T, seed uint64) string {
	l := newTestLink(t, seed)
	l.loss, l.dup, l.reorder = 0.3, 0.1, 0.3
	cfg := Config{NStart: 8, MaxRetransmit: 20, BlockSize: 1024}
	cli := l.add("cli", cfg)
	srv := l.add("srv", cfg)
	handled := map[string]int{}
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind != RequestReceived {
			t.Errorf("server event %+v", ev)
			return
		}
		key := ev.Msg.Path()
		if len(ev.Msg.Payload) < 100 {
			key += "/" + string(ev.Msg.Payload)
		}
		handled[key]++
		body := ev.Msg.Payload
		if ev.Msg.Path() == "/big" {
			body = bytes.Repeat([]byte{0xa5}, 100_000)
		}
		respondTo(n, ev, &Message{Code: codes.Content, Payload: body})
	}
	want := map[uint64]string{}
	now := l.clk.Now()
	for i := range 1000 {
		payload := fmt.Sprint(i)
		id, err := cli.ep.Send(now, "srv", NewRequest(codes.POST, "/r", []byte(payload)), SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = payload
	}
	upload := make([]byte, 100_000)
	for i := range upload {
		upload[i] = byte(i ^ i>>8)
	}
	upID, _ := cli.ep.Send(now, "srv", NewRequest(codes.PUT, "/up", upload), SendOptions{})
	downID, _ := cli.ep.Send(now, "srv", NewRequest(codes.GET, "/big", nil), SendOptions{})
	cli.flush()
	answered := map[uint64]int{}
	l.run(2_000_000, func() bool {
		for _, ev := range cli.events {
			if ev.Kind != ResponseReceived {
				t.Fatalf("client event %v for %d: %v", ev.Kind, ev.ID, ev.Err)
			}
			answered[ev.ID]++
			switch ev.ID {
			case upID:
				if !bytes.Equal(ev.Msg.Payload, upload) {
					t.Fatalf("upload echoed %d bytes, not the upload", len(ev.Msg.Payload))
				}
			case downID:
				if !bytes.Equal(ev.Msg.Payload, bytes.Repeat([]byte{0xa5}, 100_000)) {
					t.Fatalf("download of %d bytes differs", len(ev.Msg.Payload))
				}
			default:
				if string(ev.Msg.Payload) != want[ev.ID] {
					t.Fatalf("request %d answered %q, want %q", ev.ID, ev.Msg.Payload, want[ev.ID])
				}
			}
		}
		cli.events = cli.events[:0]
		return len(answered) == 1002
	})
	for id, n := range answered {
		if n != 1 {
			t.Errorf("request %d answered %d times", id, n)
		}
	}
	for k, n := range handled {
		if n != 1 {
			t.Errorf("server handled %s %d times", k, n)
		}
	}
	if len(handled) != 1002 {
		t.Errorf("server handled %d distinct requests, want 1002", len(handled))
	}
	l.run(2_000_000, nil) // let every timer run out: state must drain
	for name, n := range l.nodes {
		for _, p := range n.ep.peers {
			if len(p.pending)+len(p.queue)+len(p.tokens)+len(p.seen)+len(p.assemblies)+len(p.b2cache) != 0 {
				t.Errorf("%s keeps state after the run: %d pending, %d queued, %d tokens, %d seen, %d assemblies, %d cached",
					name, len(p.pending), len(p.queue), len(p.tokens), len(p.seen), len(p.assemblies), len(p.b2cache))
			}
		}
		if len(n.ep.peers) != 0 {
			t.Errorf("%s still has %d peers after EXCHANGE_LIFETIME idle", name, len(n.ep.peers))
		}
		if len(n.ep.incoming)+len(n.ep.exchanges) != 0 || len(n.ep.timers) != 0 {
			t.Errorf("%s keeps %d incoming, %d exchanges, %d timers", name, len(n.ep.incoming), len(n.ep.exchanges), len(n.ep.timers))
		}
	}
	st := cli.ep.Stats()
	t.Logf("seed %d: %d datagrams, %d bytes on the link, client retransmitted %d, virtual time %v",
		seed, l.sent, l.bytes, st.Retransmitted, l.clk.Now().Sub(clock.Epoch))
	return fmt.Sprintf("%x", l.trace.Sum(nil))
}
