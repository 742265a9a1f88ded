package noise

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/coap"
)

// TestDeriveTimers: a fast link keeps the WireGuard-like defaults; a
// LoRa-class link stretches them with the CoAP layer's ACK_TIMEOUT.
func TestDeriveTimers(t *testing.T) {
	fast, err := DeriveTimers(coap.LinkParams{})
	if err != nil {
		t.Fatal(err)
	}
	if fast != (Timers{Handshake: 5 * time.Second, NoReply: 15 * time.Second, Keepalive: 10 * time.Second}) {
		t.Fatalf("fast link: %+v", fast)
	}
	lora := coap.LinkParams{BitRate: 300, FrameTime: 2500 * time.Millisecond, MTU: 222}
	p, _ := coap.Derive(lora, 0, 0)
	slow, err := DeriveTimers(lora)
	if err != nil {
		t.Fatal(err)
	}
	if slow.Handshake != p.AckTimeout || slow.Keepalive != p.AckTimeout || slow.NoReply != 3*p.AckTimeout {
		t.Fatalf("LoRa link (ACK_TIMEOUT %v): %+v", p.AckTimeout, slow)
	}
	// The handshake retry covers a full frame each way.
	if slow.Handshake <= 2*lora.AirTime(222) {
		t.Fatalf("handshake retry %v shorter than a round trip of %v frames", slow.Handshake, lora.AirTime(222))
	}
	if _, err := DeriveTimers(coap.LinkParams{BitRate: -1}); err == nil {
		t.Fatal("negative bit rate accepted")
	}
}

// TestConfigLinkTimers: New derives unset timers from Config.Link and
// keeps explicit ones; a bad link is refused.
func TestConfigLinkTimers(t *testing.T) {
	rng := clock.SeededRNG(3)
	id := newIdent(t, rng, "a.example", 1)
	lora := coap.LinkParams{BitRate: 300, FrameTime: 2500 * time.Millisecond, MTU: 222}
	want, _ := DeriveTimers(lora)
	cfg := Config[netip.AddrPort]{ServerName: id.name, Static: id.kp, SigningKey: id.sign, Random: rng, Link: lora,
		HandshakeTimeout: 7 * time.Second}
	ep, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ep.cfg.HandshakeTimeout != 7*time.Second || ep.cfg.NoReplyTimeout != want.NoReply || ep.cfg.KeepaliveTimeout != want.Keepalive {
		t.Fatalf("timers %v %v %v, want 7s %v %v", ep.cfg.HandshakeTimeout, ep.cfg.NoReplyTimeout, ep.cfg.KeepaliveTimeout, want.NoReply, want.Keepalive)
	}
	cfg.Link.MTU = 10
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Fatalf("MTU 10 accepted: %v", err)
	}
}

// TestExpectsReplyQuietLink: with a reply classifier, a packet that
// expects no answer (here "ack…", as a CoAP ACK) neither makes the
// receiver send a keepalive nor makes the sender re-handshake for lack of
// an answer; one that expects an answer still gets its keepalive.
func TestExpectsReplyQuietLink(t *testing.T) {
	nw := newNetwork(t, 5)
	nw.cfg = func(c *Config[netip.AddrPort]) {
		c.ExpectsReply = func(p []byte) bool { return !strings.HasPrefix(string(p), "ack") }
	}
	ia := newIdent(t, nw.rng, "a.example", 1)
	ib := newIdent(t, nw.rng, "b.example", 2)
	a := nw.add(ia, false, ib.pin(true))
	b := nw.add(ib, false, ia.pin(true))
	// An exchange: a asks, b answers with an "ack".
	if err := nw.send(a, "b.example", "request"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if err := nw.send(b, "a.example", "ack: answer"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	sent, hs := nw.sent, a.ep.Stats().HandshakesStarted+b.ep.Stats().HandshakesStarted
	nw.advance(time.Minute)
	if nw.sent != sent {
		t.Fatalf("%d datagrams on a quiet link after an answered exchange (sizes %v)", nw.sent-sent, nw.sizes[sent:])
	}
	if got := a.ep.Stats().HandshakesStarted + b.ep.Stats().HandshakesStarted; got != hs {
		t.Fatalf("%d re-handshakes on a quiet link", got-hs)
	}
	// A request nobody answers at the application level still gets a
	// keepalive (18 bytes here: 1 type/index, 1 counter, 16 tag).
	if err := nw.send(a, "b.example", "request 2"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	sent = nw.sent
	nw.advance(time.Minute)
	if nw.sent-sent != 1 {
		t.Fatalf("%d datagrams after an unanswered request, want one keepalive", nw.sent-sent)
	}
	if got := a.ep.Stats().HandshakesStarted + b.ep.Stats().HandshakesStarted; got != hs {
		t.Fatalf("keepalive did not prevent a no-reply re-handshake (%d)", got-hs)
	}
	if n := nw.sizes[len(nw.sizes)-1]; n != 18 {
		t.Fatalf("keepalive of %d B, want 18", n)
	}
}
