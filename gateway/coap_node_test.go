package gateway

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
)

func TestPlainModeLoopbackOnly(t *testing.T) {
	if _, err := ListenCoAPUDP(UDPConfig{Addr: "0.0.0.0:0"}); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("plain listen on 0.0.0.0: %v", err)
	}
	n, err := NewCoAPNode(CoAPNodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Epoch
	ping := []byte{0x40, 0, 0, 1}
	if err := n.Receive(now, netip.MustParseAddrPort("192.0.2.1:5683"), ping); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("datagram from 192.0.2.1: %v", err)
	}
	if len(n.Outgoing()) != 0 || n.Drops() != 1 {
		t.Fatal("a non-loopback datagram was answered or not counted")
	}
	if _, err := n.Send(now, "192.0.2.1:5683", coap.NewRequest(codes.GET, "/x", nil), coap.SendOptions{}, nil); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("send to 192.0.2.1: %v", err)
	}
	if err := n.Receive(now, netip.MustParseAddrPort("[::1]:5683"), ping); err != nil {
		t.Fatalf("ping from ::1: %v", err)
	}
	if out := n.Outgoing(); len(out) != 1 || string(out[0].Data) != "\x70\x00\x00\x01" {
		t.Fatalf("ping from ::1 answered %x", out)
	}
}

func TestWellKnownCoreFilter(t *testing.T) {
	h := CoAPHandlerFunc(func(r *CoAPRequest, reply func(coap.Message)) {})
	n, err := NewCoAPNode(CoAPNodeConfig{},
		CoAPResource{Path: "/sync", Attrs: `rt="matrix.sync matrix.x";obs;ct=60`, Handler: h},
		CoAPResource{Path: "/send", Attrs: `rt="matrix.send";ct=60`, Handler: h},
		CoAPResource{Path: "/a", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    []string
		want string
	}{
		{nil, `</a>,</send>;rt="matrix.send";ct=60,</sync>;rt="matrix.sync matrix.x";obs;ct=60`},
		{[]string{"rt=matrix.x"}, `</sync>;rt="matrix.sync matrix.x";obs;ct=60`},
		{[]string{"rt=matrix.s*"}, `</send>;rt="matrix.send";ct=60,</sync>;rt="matrix.sync matrix.x";obs;ct=60`},
		{[]string{"href=/a"}, `</a>`},
		{[]string{"obs"}, `</sync>;rt="matrix.sync matrix.x";obs;ct=60`},
		{[]string{"ct=60", "rt=matrix.send"}, `</send>;rt="matrix.send";ct=60`},
		{[]string{"rt=none"}, ``},
	} {
		if got := string(n.linkFormat(c.q)); got != c.want {
			t.Errorf("query %q: %q, want %q", c.q, got, c.want)
		}
	}
	if _, err := NewCoAPNode(CoAPNodeConfig{}, CoAPResource{Path: WellKnownCore, Handler: h}); err == nil {
		t.Fatal("a handler for /.well-known/core was accepted")
	}
}

// TestUDPServerDeadPeer: over real loopback, a request to a port nobody
// answers fails with ErrTimeout once MAX_RETRANSMIT is spent, driven by real
// timers.
func TestUDPServerDeadPeer(t *testing.T) {
	s, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0", Node: CoAPNodeConfig{CoAP: coap.Config{MaxRetransmit: 1, Link: coap.LinkParams{}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dead, err := ListenCoAPUDP(UDPConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Do(ctx, addr, coap.NewRequest(codes.GET, "/x", nil)); !errors.Is(err, coap.ErrTimeout) {
		t.Fatalf("request to a closed port: %v", err)
	}
}

func TestNonceCheckerCatchesReuse(t *testing.T) {
	var errs int
	l := &simLink{errorf: func(string, ...any) { errs++ }, counters: map[nonceKey]uint64{}}
	a, b := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:1")
	pkt := func(ctr ...byte) []byte { return append([]byte{0x05}, ctr...) }
	l.checkNonce(a, b, pkt(0x01))
	l.checkNonce(a, b, pkt(0x02))
	l.checkNonce(a, b, pkt(0x90, 0x01)) // 2-group counter 0x90&0x7f | 1<<7 = 144
	if l.reused != 0 {
		t.Fatalf("increasing counters flagged")
	}
	l.checkNonce(a, b, pkt(0x90, 0x01))
	if l.reused != 1 || errs != 1 {
		t.Fatalf("a repeated counter was not flagged")
	}
	l.checkNonce(a, b, []byte{0xC5}) // handshake: new keys
	l.checkNonce(a, b, pkt(0x01))    // counters restart legitimately
	if l.reused != 1 {
		t.Fatalf("counter restart after a handshake flagged")
	}
}
