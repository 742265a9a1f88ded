package homeserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

func TestLoopOrderAndClose(t *testing.T) {
	l := NewLoop()
	var got []int
	for i := 0; i < 100; i++ {
		if err := l.Post(func() { got = append(got, i) }); err != nil {
			t.Fatal(err)
		}
	}
	go l.Run()
	<-l.Close()
	if len(got) != 100 {
		t.Fatalf("ran %d of 100 posted functions", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("out of order at %d: %d", i, v)
		}
	}
	if err := l.Post(func() {}); !errors.Is(err, ErrLoopClosed) {
		t.Fatalf("post after close: %v", err)
	}
}

// Real mode: Handle posts into the loop, offloaded bcrypt comes back into
// it, and a cancelled context cancels a waiting call.
func TestHandleThroughLoop(t *testing.T) {
	cancelled := make(chan struct{})
	withTestRoutes(t, Route{Method: "GET", Pattern: "/_test/wait", Handle: func(c *Call) {
		c.OnCancel(func() { close(cancelled) })
	}})
	tn := newTestNode(t, nil)
	l := NewLoop()
	n, err := New(Options{Config: tn.cfg, Store: tn.store, SigningKey: tn.key, Clock: clock.Real(),
		RNG: clock.SeededRNG(2), Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	defer func() { <-l.Close() }()

	ctx := context.Background()
	resp, err := n.Handle(ctx, &Request{Method: "POST", Path: v3 + "/register",
		Body: []byte(`{"username":"loop","password":"pw","auth":{"type":"m.login.dummy"}}`)})
	if err != nil || resp.Status != 200 {
		t.Fatalf("register through loop: %v %+v", err, resp)
	}
	tok := resp.Body.(map[string]any)["access_token"].(string)
	resp, err = n.Handle(ctx, &Request{Method: "GET", Path: v3 + "/account/whoami", AccessToken: tok})
	if err != nil || resp.Status != 200 {
		t.Fatalf("whoami: %v %+v", err, resp)
	}

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := n.Handle(cctx, &Request{Method: "GET", Path: "/_test/wait"})
		errc <- err
	}()
	// Wait until the call is parked, then cancel the request.
	for {
		parked := make(chan int, 1)
		_ = l.Post(func() { parked <- len(n.pending) })
		if <-parked == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("handle after cancel: %v", err)
	}
	<-cancelled
}
