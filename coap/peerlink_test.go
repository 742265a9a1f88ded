package coap

import (
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestPeerLinkTimers: a server with a client on a fast link and a server
// peer on a slow radio link derives each peer's timers from its own link
// (Config.PeerLink): the slow peer gets a longer ACK_TIMEOUT, RTO seed and
// EXCHANGE_LIFETIME; the fast one keeps the endpoint's. The ACK delay is
// the endpoint's for both: it waits for the application, not the link.
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
	if acked["fast"] != DefaultAckDelay || acked["slow"] != DefaultAckDelay {
		t.Errorf("empty ACK after %v (fast) and %v (slow), want %v for both",
			acked["fast"], acked["slow"], DefaultAckDelay)
	}
}

// TestSlowPeerSeparateResponse: a server whose answer to a peer on a slow
// radio link needs work across that link (a key fetch: here 30 s, less
// than a quarter of that link's ACK_TIMEOUT) acknowledges the request
// with an empty ACK and answers separately (RFC 7252 §5.2.2). Holding the
// ACK for the work instead would make the requester count the work as
// round-trip time: its RTO would grow, and a later lost datagram would
// wait that much longer for its retransmission.
func TestSlowPeerSeparateResponse(t *testing.T) {
	radio := LinkParams{BitRate: 100, Latency: 200 * time.Millisecond}
	const work = 30 * time.Second
	p, err := Derive(radio, 0, 0)
	if err != nil || p.AckTimeout/4 <= work {
		t.Fatalf("radio link: %+v, %v; want ACK_TIMEOUT/4 above %v", p, err, work)
	}
	// The slow link as the peer's own (PeerLink) or as the endpoint's.
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"peer link", Config{PeerLink: func(p Peer) (LinkParams, bool) { return radio, p == "cli" }}},
		{"endpoint link", Config{Link: radio}},
	} {
		t.Run(c.name, func(t *testing.T) { slowPeerExchange(t, radio, p, c.cfg, work) })
	}
}

func slowPeerExchange(t *testing.T, radio LinkParams, p Params, srvCfg Config, work time.Duration) {
	l := newTestLink(t, 22)
	l.air = &radio
	cli := l.add("cli", Config{Link: radio})
	srv := l.add("srv", srvCfg)
	srv.onEvent = func(n *testNode, ev Event) {
		l.clk.AfterFunc(work, func() {
			respondTo(n, ev, &Message{Code: codes.Content, Payload: []byte("fetched")})
			n.flush()
		})
	}
	var kinds []string // what the server sent, in order
	l.tamper = func(from, to Peer, data []byte) []byte {
		if from == "srv" {
			var w Wire
			if err := Decode(data, &w); err != nil {
				t.Fatalf("server sent %x: %v", data, err)
			}
			kinds = append(kinds, w.Type.String()+" "+w.Code.String())
		}
		return data
	}
	if _, err := cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.GET, "/key", nil), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	cli.flush()
	l.run(1000, func() bool { return len(cli.events) == 1 })
	if ev := cli.events[0]; ev.Kind != ResponseReceived || string(ev.Msg.Payload) != "fetched" {
		t.Fatalf("event %+v", ev)
	}
	want := []string{ACK.String() + " " + codes.Empty.String(), CON.String() + " " + codes.Content.String()}
	if !slices.Equal(kinds, want) {
		t.Fatalf("server sent %q, want an empty ACK, then the answer as a CON %q", kinds, want)
	}
	// The client's RTO learnt the link, not the work: it is below what
	// one exchange measured at the work's length would leave.
	held := newCocoa(p.AckTimeout, p.MaxRTO)
	held.observe(l.clk.Now(), work, 0)
	if got := cli.ep.RTO(l.clk.Now(), "srv"); got >= held.rto {
		t.Fatalf("client RTO %v after the exchange, want below %v (an RTT sample holding the %v of work)", got, held.rto, work)
	}
	if n := cli.ep.Stats().Retransmitted + srv.ep.Stats().Retransmitted; n != 0 {
		t.Fatalf("%d retransmissions on a loss-free link", n)
	}
}
