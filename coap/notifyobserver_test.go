package coap

import (
	"bytes"
	"errors"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestNotifyObserver: two clients observe the same path; a per-observer
// notification reaches only the one it names, and reports a deregistered
// observer as gone.
func TestNotifyObserver(t *testing.T) {
	l := newTestLink(t, 10)
	a := l.add("a", Config{})
	b := l.add("b", Config{})
	srv := l.add("srv", Config{})
	var regs, done []Event
	srv.onEvent = func(n *testNode, ev Event) {
		switch {
		case ev.Kind == RequestReceived && ev.HasObserve:
			regs = append(regs, ev)
			respondTo(n, ev, &Message{Code: codes.Content, Payload: []byte("v0")})
		case ev.Kind == NotificationDone:
			done = append(done, ev)
		}
	}
	for _, c := range []*testNode{a, b} {
		req := NewRequest(codes.GET, "/sync", nil)
		req.Options = req.Options.Add(message.Option{ID: message.Observe})
		if _, err := c.ep.Send(l.clk.Now(), "srv", req, SendOptions{}); err != nil {
			t.Fatal(err)
		}
		c.flush()
		l.run(100, func() bool { return len(c.events) == 1 })
	}
	if len(regs) != 2 || srv.ep.Observers("/sync") != 2 {
		t.Fatalf("%d registrations, %d observers", len(regs), srv.ep.Observers("/sync"))
	}
	id, err := srv.ep.NotifyObserver(l.clk.Now(), regs[1].Peer, regs[1].Token, &Message{Code: codes.Content, Payload: []byte("for b")})
	if id == 0 || err != nil {
		t.Fatalf("NotifyObserver: %v %v", id, err)
	}
	srv.flush()
	l.run(100, func() bool { return len(b.events) == 2 && len(done) == 1 })
	if string(b.events[1].Msg.Payload) != "for b" || b.events[1].Kind != NotificationReceived || len(a.events) != 1 {
		t.Fatalf("b got %+v; a got %d events", b.events[1], len(a.events))
	}
	if done[0].ID != id || done[0].Err != nil || done[0].Peer != regs[1].Peer {
		t.Fatalf("delivery report %+v, want ID %d delivered", done[0], id)
	}
	if !srv.ep.Observing(regs[0].Peer, regs[0].Token) {
		t.Fatal("a is not observing")
	}
	// a forgets the observation; its Reset to the next notification ends
	// it (RFC 7641 §3.6), and the server then reports a gone.
	a.ep.Cancel(l.clk.Now(), a.events[0].ID)
	idA, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[0].Peer, regs[0].Token, &Message{Code: codes.Content, Payload: []byte("x")})
	if idA == 0 {
		t.Fatal("a gone before its reset")
	}
	srv.flush()
	l.run(100, func() bool { return !srv.ep.Observing(regs[0].Peer, regs[0].Token) })
	if len(done) != 2 || done[1].ID != idA || !errors.Is(done[1].Err, ErrReset) {
		t.Fatalf("reset notification reported %+v", done[1:])
	}
	if id, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[0].Peer, regs[0].Token, &Message{Code: codes.Content}); id != 0 {
		t.Fatal("notified a reset observer")
	}
	// A final (error) notification ends b's observation too.
	if id, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[1].Peer, regs[1].Token, &Message{Code: codes.Unauthorized}); id == 0 {
		t.Fatal("b gone early")
	}
	srv.flush()
	l.run(100, func() bool { return !srv.ep.Observing(regs[1].Peer, regs[1].Token) })
}

// TestNotifyObserverBlockwiseDelivery: a notification larger than a block
// is reported delivered only once the client fetched every block (RFC
// 7959 §2.6), and a newer notification sent before then supersedes it
// (ErrNotDelivered) instead of mixing its blocks into the old body.
func TestNotifyObserverBlockwiseDelivery(t *testing.T) {
	l := newTestLink(t, 11)
	c := l.add("c", Config{})
	srv := l.add("srv", Config{BlockSize: 64})
	var reg Event
	var done []Event
	srv.onEvent = func(n *testNode, ev Event) {
		switch {
		case ev.Kind == RequestReceived && ev.HasObserve:
			reg = ev
			respondTo(n, ev, &Message{Code: codes.Content, Payload: []byte("v0")})
		case ev.Kind == NotificationDone:
			done = append(done, ev)
		}
	}
	req := NewRequest(codes.GET, "/sync", nil)
	req.Options = req.Options.Add(message.Option{ID: message.Observe})
	if _, err := c.ep.Send(l.clk.Now(), "srv", req, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	c.flush()
	l.run(100, func() bool { return len(c.events) == 1 })

	big := bytes.Repeat([]byte("0123456789abcdef"), 20) // 320 B: 5 blocks
	id, err := srv.ep.NotifyObserver(l.clk.Now(), reg.Peer, reg.Token, &Message{Code: codes.Content, Payload: big})
	if id == 0 || err != nil {
		t.Fatalf("NotifyObserver: %v %v", id, err)
	}
	srv.flush()
	l.run(200, func() bool { return len(done) == 1 && len(c.events) == 2 })
	if done[0].ID != id || done[0].Err != nil {
		t.Fatalf("delivery report %+v", done[0])
	}
	if len(c.events) != 2 || !bytes.Equal(c.events[1].Msg.Payload, big) {
		t.Fatalf("client got %d events, last %d B", len(c.events), len(c.events[len(c.events)-1].Msg.Payload))
	}

	// A second large notification, replaced before the client has
	// fetched it: the first is reported superseded, the second delivered
	// whole.
	big2 := bytes.Repeat([]byte("ABCDEFGHIJKLMNOP"), 20)
	id1, _ := srv.ep.NotifyObserver(l.clk.Now(), reg.Peer, reg.Token, &Message{Code: codes.Content, Payload: big})
	id2, _ := srv.ep.NotifyObserver(l.clk.Now(), reg.Peer, reg.Token, &Message{Code: codes.Content, Payload: big2})
	srv.flush()
	l.run(400, func() bool { return len(done) == 3 && bytes.Equal(c.events[len(c.events)-1].Msg.Payload, big2) })
	if done[1].ID != id1 || !errors.Is(done[1].Err, ErrNotDelivered) || done[2].ID != id2 || done[2].Err != nil {
		t.Fatalf("delivery reports %+v", done[1:])
	}
	if last := c.events[len(c.events)-1]; !bytes.Equal(last.Msg.Payload, big2) {
		t.Fatalf("client's last notification is %q", last.Msg.Payload)
	}
}
