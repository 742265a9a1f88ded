package gateway

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
)

// coapPair is a client node and a server node, however they are joined.
type coapPair interface {
	// do sends req from the client and returns the server's answer.
	do(t *testing.T, req *coap.Message) coap.Message
	// observe registers at path and returns a function that notifies and
	// waits for the client to see it.
	observe(t *testing.T, path string) (first coap.Message, notify func(payload string) coap.Message)
}

// scenarioResources are the server's resources in every run.
func scenarioResources() []CoAPResource {
	echo := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Changed, Payload: r.Msg.Payload})
	})
	obs := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {
		reply(coap.Message{Code: codes.Content, Payload: []byte("first")})
	})
	return []CoAPResource{{Path: "/echo", Handler: echo}, {Path: "/obs", Attrs: "obs", Handler: obs}}
}

// runScenario is the one conversation both harnesses must carry.
func runScenario(t *testing.T, p coapPair) {
	if m := p.do(t, coap.NewRequest(codes.GET, WellKnownCore, nil)); string(m.Payload) != "</echo>,</obs>;obs" {
		t.Fatalf("discovery: %q", m.Payload)
	}
	if m := p.do(t, coap.NewRequest(codes.GET, "/missing", nil)); m.Code != codes.NotFound {
		t.Fatalf("missing resource: %v", m.Code)
	}
	body := bytes.Repeat([]byte("scenario "), 3000) // 27 KB: block-wise both ways
	if m := p.do(t, coap.NewRequest(codes.POST, "/echo", body)); m.Code != codes.Changed || !bytes.Equal(m.Payload, body) {
		t.Fatalf("echo: %v with %d bytes", m.Code, len(m.Payload))
	}
	first, notify := p.observe(t, "/obs")
	if string(first.Payload) != "first" {
		t.Fatalf("observe answer %q", first.Payload)
	}
	for i := range 3 {
		want := fmt.Sprintf("n%d", i)
		if m := notify(want); string(m.Payload) != want {
			t.Fatalf("notification %d: %q", i, m.Payload)
		}
	}
}

func TestCoAPScenarioInMemory(t *testing.T) {
	clk := clock.NewFake(clock.Epoch)
	link := &simLink{errorf: t.Errorf, clk: clk, r: rand.New(clock.SeededRNG(5)), nodes: map[netip.AddrPort]*simNode{},
		delay: 5 * time.Millisecond, counters: map[nonceKey]uint64{}}
	ca, sa := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:40002")
	cn, _ := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(1)}})
	sn, _ := NewCoAPNode(CoAPNodeConfig{CoAP: coap.Config{RNG: clock.SeededRNG(2)}}, scenarioResources()...)
	runScenario(t, &memPair{clk: clk, c: link.add(ca, cn), s: link.add(sa, sn), server: sa.String()})
}

type memPair struct {
	clk    *clock.Fake
	c, s   *simNode
	server string
}

func (p *memPair) wait(t *testing.T, done func() bool) {
	for !done() {
		if !p.clk.RunNext() {
			t.Fatal("in-memory link went idle before the answer")
		}
	}
}

func (p *memPair) do(t *testing.T, req *coap.Message) coap.Message {
	var got *coap.Event
	if _, err := p.c.node.Send(p.clk.Now(), p.server, req, coap.SendOptions{}, func(ev coap.Event) { got = &ev }); err != nil {
		t.Fatal(err)
	}
	p.c.flush()
	p.wait(t, func() bool { return got != nil })
	if got.Err != nil {
		t.Fatal(got.Err)
	}
	return got.Msg
}

func (p *memPair) observe(t *testing.T, path string) (coap.Message, func(string) coap.Message) {
	req := coap.NewRequest(codes.GET, path, nil)
	req.Options, _, _ = req.Options.SetObserve(make([]byte, 4), 0)
	var evs []coap.Event
	if _, err := p.c.node.Send(p.clk.Now(), p.server, req, coap.SendOptions{}, func(ev coap.Event) { evs = append(evs, ev) }); err != nil {
		t.Fatal(err)
	}
	p.c.flush()
	p.wait(t, func() bool { return len(evs) == 1 })
	return evs[0].Msg, func(payload string) coap.Message {
		n := len(evs)
		p.s.node.Notify(p.clk.Now(), path, &coap.Message{Code: codes.Content, Payload: []byte(payload)}, false)
		p.s.flush()
		p.wait(t, func() bool { return len(evs) > n })
		return evs[n].Msg
	}
}

func TestCoAPScenarioLoopback(t *testing.T) {
	c, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0"}, scenarioResources()...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runScenario(t, &udpPair{c: c, s: s, ctx: testCtx(t)})
}

type udpPair struct {
	c, s *UDPServer
	ctx  context.Context
}

func (p *udpPair) do(t *testing.T, req *coap.Message) coap.Message {
	m, err := p.c.Do(p.ctx, p.s.Addr().String(), req)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *udpPair) observe(t *testing.T, path string) (coap.Message, func(string) coap.Message) {
	notes := make(chan coap.Message, 8)
	first, cancel, err := p.c.Observe(p.ctx, p.s.Addr().String(), coap.NewRequest(codes.GET, path, nil), func(m coap.Message) { notes <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return first, func(payload string) coap.Message {
		if _, err := p.s.Notify(p.ctx, path, coap.Message{Code: codes.Content, Payload: []byte(payload)}, false); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-notes:
			return m
		case <-p.ctx.Done():
			t.Fatal("no notification")
			return coap.Message{}
		}
	}
}
