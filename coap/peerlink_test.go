package coap

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestPeerLinkTimers: a server with a client on a fast link and a server
// peer on a slow radio link derives each peer's timers from its own link
// (Config.PeerLink): the slow peer gets a longer ACK_TIMEOUT, RTO seed,
// EXCHANGE_LIFETIME and ACK delay; the fast one keeps the endpoint's.
func TestPeerLinkTimers(t *testing.T) {
	radio := LinkParams{BitRate: 1200, FrameTime: 200 * time.Millisecond, Latency: 100 * time.Millisecond, MTU: 255}
	l := newTestLink(t, 21)
	fast := l.add("fast", Config{})
	slow := l.add("slow", Config{Link: radio})
	srv := l.add("srv", Config{PeerLink: func(p Peer) (LinkParams, bool) { return radio, p == "slow" }})
	// The server never answers: the ACK delay passes and an empty ACK
	// goes out (RFC 7252 §5.2.2). Record when.
	srv.onEvent = func(*testNode, Event) {}
	acked := map[Peer]time.Duration{}
	sentAt := map[Peer]time.Time{}
	l.tamper = func(from, to Peer, data []byte) []byte {
		if _, typ, ok := headerMID(data); ok && from == "srv" && typ == ACK {
			if _, seen := acked[to]; !seen {
				acked[to] = l.clk.Now().Sub(sentAt[to])
			}
		}
		return data
	}
	for _, c := range []*testNode{fast, slow} {
		sentAt[c.name] = l.clk.Now().Add(l.delay) // when it reaches the server
		if _, err := c.ep.Send(l.clk.Now(), "srv", NewRequest(codes.GET, "/x", nil), SendOptions{}); err != nil {
			t.Fatal(err)
		}
		c.flush()
		l.run(100, func() bool { _, ok := acked[c.name]; return ok })
	}
	def, _ := Derive(LinkParams{}, 0, 0)
	want, _ := Derive(radio, 0, 0)
	if got := srv.ep.PeerParams("slow"); got != want {
		t.Errorf("slow peer params %+v, want %+v", got, want)
	}
	if got := srv.ep.PeerParams("fast"); got != def {
		t.Errorf("fast peer params %+v, want the endpoint's %+v", got, def)
	}
	if got := srv.ep.RTO(l.clk.Now(), "slow"); got != want.AckTimeout {
		t.Errorf("slow peer RTO %v, want its ACK_TIMEOUT %v", got, want.AckTimeout)
	}
	if acked["fast"] != def.AckTimeout/4 || acked["slow"] != want.AckTimeout/4 {
		t.Errorf("empty ACK after %v (fast) and %v (slow), want %v and %v",
			acked["fast"], acked["slow"], def.AckTimeout/4, want.AckTimeout/4)
	}
}
