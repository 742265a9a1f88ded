package coap

import (
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
	var regs []Event
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind == RequestReceived && ev.HasObserve {
			regs = append(regs, ev)
			respondTo(n, ev, &Message{Code: codes.Content, Payload: []byte("v0")})
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
	ok, err := srv.ep.NotifyObserver(l.clk.Now(), regs[1].Peer, regs[1].Token, &Message{Code: codes.Content, Payload: []byte("for b")}, true)
	if !ok || err != nil {
		t.Fatalf("NotifyObserver: %v %v", ok, err)
	}
	srv.flush()
	l.run(100, func() bool { return len(b.events) == 2 })
	if string(b.events[1].Msg.Payload) != "for b" || b.events[1].Kind != NotificationReceived || len(a.events) != 1 {
		t.Fatalf("b got %+v; a got %d events", b.events[1], len(a.events))
	}
	if !srv.ep.Observing(regs[0].Peer, regs[0].Token) {
		t.Fatal("a is not observing")
	}
	// a forgets the observation; its Reset to the next notification ends
	// it (RFC 7641 §3.6), and the server then reports a gone.
	a.ep.Cancel(l.clk.Now(), a.events[0].ID)
	if ok, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[0].Peer, regs[0].Token, &Message{Code: codes.Content, Payload: []byte("x")}, true); !ok {
		t.Fatal("a gone before its reset")
	}
	srv.flush()
	l.run(100, func() bool { return !srv.ep.Observing(regs[0].Peer, regs[0].Token) })
	if ok, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[0].Peer, regs[0].Token, &Message{Code: codes.Content}, true); ok {
		t.Fatal("notified a reset observer")
	}
	// A final (error) notification ends b's observation too.
	if ok, _ := srv.ep.NotifyObserver(l.clk.Now(), regs[1].Peer, regs[1].Token, &Message{Code: codes.Unauthorized}, true); !ok {
		t.Fatal("b gone early")
	}
	srv.flush()
	l.run(100, func() bool { return !srv.ep.Observing(regs[1].Peer, regs[1].Token) })
}
