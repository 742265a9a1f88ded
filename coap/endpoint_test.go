package coap

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

func TestDeriveDefaults(t *testing.T) {
	p, err := Derive(LinkParams{}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7252 §4.8.2's derived values for the default parameters.
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"ACK_TIMEOUT", p.AckTimeout, 2 * time.Second},
		{"MAX_TRANSMIT_SPAN", p.MaxTransmitSpan, 45 * time.Second},
		{"MAX_TRANSMIT_WAIT", p.MaxTransmitWait, 93 * time.Second},
		{"EXCHANGE_LIFETIME", p.ExchangeLifetime, 247 * time.Second},
		{"NON_LIFETIME", p.NonLifetime, 145 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDeriveSlowLink(t *testing.T) {
	// A LoRa-class link: 2.5 s on air per frame, 300 bit/s.
	lora := LinkParams{BitRate: 300, FrameTime: 2500 * time.Millisecond, MTU: 222}
	p, err := Derive(lora, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	air := lora.AirTime(222) // 2.5 s + 222·8/300 s ≈ 8.42 s
	if want := 2 * (2 * air); p.AckTimeout != want {
		t.Fatalf("ACK_TIMEOUT = %v, want 2·RTT_link = %v", p.AckTimeout, want)
	}
	if p.AckTimeout <= 2*lora.FrameTime {
		t.Fatalf("ACK_TIMEOUT %v does not cover a frame each way", p.AckTimeout)
	}
	p4, _ := Derive(lora, 4, 0)
	if p4.AckTimeout <= p.AckTimeout {
		t.Fatalf("NSTART 4 did not lengthen ACK_TIMEOUT: %v vs %v", p4.AckTimeout, p.AckTimeout)
	}
	if _, err := Derive(LinkParams{BitRate: -1}, 0, 0); err == nil {
		t.Fatal("negative bit rate accepted")
	}
	if _, err := Derive(LinkParams{MTU: 20}, 0, 0); err == nil {
		t.Fatal("MTU 20 accepted")
	}
}

func TestCocoaEstimators(t *testing.T) {
	c := newCocoa(2*time.Second, time.Minute)
	now := time.Unix(0, 0)
	for range 10 {
		c.observe(now, 100*time.Millisecond, 0)
	}
	if got := c.current(now); got >= time.Second {
		t.Fatalf("strong samples of 100 ms left RTO at %v", got)
	}
	// Aging: a small RTO unused for 16 RTOs doubles.
	small := c.current(now)
	if got := c.current(now.Add(17 * small)); got != 2*small {
		t.Fatalf("aging: %v -> %v", small, got)
	}
	before := c.current(now)
	c.observe(now, 3*time.Second, 1)
	if after := c.current(now); after <= before {
		t.Fatalf("weak sample of 3 s did not raise RTO: %v -> %v", before, after)
	}
	r := c.current(now)
	c.observe(now, 10*time.Second, 3) // too many retransmissions: ignored
	if c.current(now) != r {
		t.Fatal("sample after 3 retransmissions was used")
	}
	if got := c.backoff(200*time.Millisecond, 200*time.Millisecond); got != 600*time.Millisecond {
		t.Fatalf("backoff factor for a small RTO: %v", got)
	}
	if got := c.backoff(4*time.Second, 4*time.Second); got != 6*time.Second {
		t.Fatalf("backoff factor for a large RTO: %v", got)
	}
}

func respondTo(n *testNode, ev Event, m *Message) {
	if err := n.ep.Respond(n.link.clk.Now(), ev.ID, m); err != nil {
		n.link.t.Errorf("respond: %v", err)
	}
}

func TestPiggybackedExchange(t *testing.T) {
	l := newTestLink(t, 1)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	srv.onEvent = echoServer
	id, err := cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/ab", []byte("hi")), SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cli.flush()
	l.run(100, func() bool { return len(cli.events) == 1 })
	ev := cli.events[0]
	if ev.Kind != ResponseReceived || ev.ID != id || string(ev.Msg.Payload) != "/ab:hi" || ev.Msg.Code != codes.Content {
		t.Fatalf("event %+v", ev)
	}
	if l.sent != 2 {
		t.Fatalf("%d datagrams for a piggy-backed exchange, want 2", l.sent)
	}
	// request: 4 header + 3 Uri-Path + 1 marker + 2 payload; ACK: 4 + token 0 + 1 + 6
	if l.bytes != 10+11 {
		t.Fatalf("%d bytes on the link, want 21", l.bytes)
	}
}

func TestSeparateResponse(t *testing.T) {
	l := newTestLink(t, 2)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.GET, "/slow", nil), SendOptions{})
	cli.flush()
	l.run(100, func() bool { return len(srv.events) == 1 })
	// Let the ACK delay pass: the server must send an empty ACK.
	l.clk.Advance(srv.ep.Params().AckTimeout)
	if cli.ep.Stats().Retransmitted != 0 {
		t.Fatal("client retransmitted although the server acknowledged")
	}
	respondTo(srv, srv.events[0], &Message{Code: codes.Content, Payload: []byte("late")})
	srv.flush()
	l.run(100, func() bool { return len(cli.events) == 1 })
	if ev := cli.events[0]; ev.Kind != ResponseReceived || string(ev.Msg.Payload) != "late" {
		t.Fatalf("event %+v", ev)
	}
	l.run(1000, nil) // drain: the separate response's ACK must stop its retransmission
	if srv.ep.Stats().Retransmitted != 0 {
		t.Fatalf("server retransmitted the separate response %d times", srv.ep.Stats().Retransmitted)
	}
	if p := srv.ep.peers["cli"]; p != nil {
		t.Fatalf("peer state kept after EXCHANGE_LIFETIME: %d transmissions pending", len(p.pending))
	}
}

func TestRetransmitThenTimeout(t *testing.T) {
	l := newTestLink(t, 3)
	cli := l.add("cli", Config{})
	l.add("srv", Config{})
	var times []time.Duration
	l.tamper = func(from, to Peer, data []byte) []byte {
		times = append(times, l.clk.Now().Sub(clock.Epoch))
		return nil // a dead link
	}
	id, _ := cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.GET, "/x", nil), SendOptions{})
	cli.flush()
	l.run(1000, func() bool { return len(cli.events) == 1 })
	ev := cli.events[0]
	if ev.Kind != RequestFailed || ev.ID != id || !errors.Is(ev.Err, ErrTimeout) {
		t.Fatalf("event %+v", ev)
	}
	if len(times) != 1+DefaultMaxRetransmit {
		t.Fatalf("%d transmissions, want %d", len(times), 1+DefaultMaxRetransmit)
	}
	// Exponential backoff: each gap at least doubles; the first lies in
	// [ACK_TIMEOUT, ACK_TIMEOUT·ACK_RANDOM_FACTOR].
	first := times[1] - times[0]
	if first < DefaultAckTimeout || first > 3*time.Second {
		t.Fatalf("first timeout %v", first)
	}
	for i := 2; i < len(times); i++ {
		if g, prev := times[i]-times[i-1], times[i-1]-times[i-2]; g != 2*prev {
			t.Fatalf("gap %d is %v after %v", i, g, prev)
		}
	}
}

func TestDuplicateRequestAnsweredOnce(t *testing.T) {
	l := newTestLink(t, 4)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	handled := 0
	srv.onEvent = func(n *testNode, ev Event) { handled++; echoServer(n, ev) }
	l.dup = 1 // every datagram arrives twice
	cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/d", []byte("1")), SendOptions{})
	cli.flush()
	l.run(1000, nil)
	if handled != 1 {
		t.Fatalf("handler ran %d times", handled)
	}
	if len(cli.events) != 1 || cli.events[0].Kind != ResponseReceived {
		t.Fatalf("client events %+v", cli.events)
	}
	if srv.ep.Stats().Duplicates == 0 {
		t.Fatal("no duplicate counted")
	}
}

func TestPingAndGarbage(t *testing.T) {
	l := newTestLink(t, 5)
	srv := l.add("srv", Config{})
	now := l.clk.Now()
	if err := srv.ep.Receive(now, "x", mustHex(t, "40000042")); err != nil {
		t.Fatal(err)
	}
	out := srv.ep.Outgoing()
	if len(out) != 1 || !bytes.Equal(out[0].Data, mustHex(t, "70000042")) {
		t.Fatalf("ping answered with %x", out)
	}
	// A broken CON is rejected with a Reset carrying its MID (RFC 7252 §4.2).
	if err := srv.ep.Receive(now, "x", mustHex(t, "40010043 f0")); !errors.Is(err, ErrFormat) {
		t.Fatalf("garbage: %v", err)
	}
	out = srv.ep.Outgoing()
	if len(out) != 1 || !bytes.Equal(out[0].Data, mustHex(t, "70000043")) {
		t.Fatalf("garbage answered with %x", out)
	}
	// Never more bytes than it carried: 4 in, 4 out.
	if err := srv.ep.Receive(now, "x", mustHex(t, "50010044 f0")); err == nil {
		t.Fatal("broken NON accepted")
	}
	if out := srv.ep.Outgoing(); len(out) != 0 {
		t.Fatalf("broken NON answered: %x", out)
	}
}

func TestUnknownCriticalOption(t *testing.T) {
	l := newTestLink(t, 6)
	srv := l.add("srv", Config{})
	req := mustHex(t, "41010007 aa b161 2178") // Uri-Path "a", then option 13 (critical, unknown)
	if err := srv.ep.Receive(l.clk.Now(), "c", req); err != nil {
		t.Fatal(err)
	}
	out := srv.ep.Outgoing()
	var m Wire
	if len(out) != 1 || Decode(out[0].Data, &m) != nil || m.Code != codes.BadOption || m.Type != ACK || m.MessageID != 7 {
		t.Fatalf("answer %x (%v)", out, &m)
	}
	if len(srv.ep.Events()) != 0 {
		t.Fatal("request with an unknown critical option reached the application")
	}
}

func TestNStartLimitsOutstanding(t *testing.T) {
	l := newTestLink(t, 7)
	cli := l.add("cli", Config{NStart: 3})
	l.add("srv", Config{})
	l.tamper = func(from, to Peer, data []byte) []byte { return nil }
	for i := range 10 {
		cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.GET, fmt.Sprintf("/%d", i), nil), SendOptions{})
	}
	if got := len(cli.ep.Outgoing()); got != 3 {
		t.Fatalf("%d requests went out at once with NSTART 3", got)
	}
}

func TestBlockwiseBothWays(t *testing.T) {
	l := newTestLink(t, 8)
	l.loss, l.dup, l.reorder = 0.2, 0.1, 0.3
	cfg := Config{NStart: 4, BlockSize: 256, MaxRetransmit: 12}
	cli := l.add("cli", cfg)
	srv := l.add("srv", cfg)
	var got []byte
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind != RequestReceived {
			return
		}
		got = ev.Msg.Payload
		// Answer with the body reversed, so the response is block-wise too.
		r := make([]byte, len(ev.Msg.Payload))
		for i, b := range ev.Msg.Payload {
			r[len(r)-1-i] = b
		}
		respondTo(n, ev, &Message{Code: codes.Changed, Payload: r})
	}
	body := make([]byte, 20000+17)
	for i := range body {
		body[i] = byte(i * 7)
	}
	cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/up", body), SendOptions{})
	cli.flush()
	l.run(100000, func() bool { return len(cli.events) == 1 })
	if !bytes.Equal(got, body) {
		t.Fatalf("server reassembled %d bytes, want %d identical", len(got), len(body))
	}
	ev := cli.events[0]
	if ev.Kind != ResponseReceived || len(ev.Msg.Payload) != len(body) || ev.Msg.Payload[0] != body[len(body)-1] ||
		ev.Msg.Payload[len(body)-1] != body[0] {
		t.Fatalf("response %v with %d bytes", ev.Kind, len(ev.Msg.Payload))
	}
	if _, err := ev.Msg.Options.GetUint32(message.Block2); err == nil {
		t.Fatal("Block2 option leaked into the delivered response")
	}
}

func TestObserve(t *testing.T) {
	l := newTestLink(t, 9)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind == RequestReceived {
			if !ev.HasObserve {
				t.Errorf("registration without observe flag")
			}
			m := &Message{Code: codes.Content, Payload: []byte("v0")}
			m.Options = m.Options.Add(uintOption(message.MaxAge, 100000))
			respondTo(n, ev, m)
		}
	}
	req := NewRequest(codes.GET, "/sync", nil)
	req.Options = req.Options.Add(message.Option{ID: message.Observe})
	id, _ := cli.ep.Send(l.clk.Now(), "srv", req, SendOptions{})
	cli.flush()
	l.run(100, func() bool { return len(cli.events) == 1 })
	if ev := cli.events[0]; ev.Kind != ResponseReceived || !ev.HasObserve || string(ev.Msg.Payload) != "v0" {
		t.Fatalf("registration answer %+v", ev)
	}
	if srv.ep.Observers("/sync") != 1 {
		t.Fatal("observer not registered")
	}
	var types []message.Type
	l.tamper = func(from, to Peer, data []byte) []byte {
		if from == "srv" {
			types = append(types, message.Type(data[0]>>4&3))
		}
		return data
	}
	maxAge := message.Options{uintOption(message.MaxAge, 100000)}
	for i := 1; i <= 3; i++ {
		srv.ep.Notify(l.clk.Now(), "/sync", &Message{Code: codes.Content, Options: maxAge, Payload: fmt.Appendf(nil, "v%d", i)}, false)
		srv.flush()
		l.run(100, func() bool { return len(cli.events) == 1+i })
	}
	// A day later the next notification must be confirmable (RFC 7641 §4.5).
	l.clk.Advance(ObserveConfirmableInterval)
	srv.ep.Notify(l.clk.Now(), "/sync", &Message{Code: codes.Content, Options: maxAge, Payload: []byte("v4")}, false)
	srv.flush()
	l.run(100, func() bool { return len(cli.events) == 5 })
	want := []message.Type{NON, NON, NON, CON}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("notification types %v, want %v", types, want)
	}
	for i, ev := range cli.events[1:] {
		if ev.Kind != NotificationReceived || ev.ID != id || string(ev.Msg.Payload) != fmt.Sprintf("v%d", i+1) ||
			ev.Observe != uint32(i+1) {
			t.Fatalf("notification %d: %+v", i, ev)
		}
	}
	// A large notification is delivered whole (RFC 7959 §2.6).
	big := bytes.Repeat([]byte("0123456789"), 300)
	srv.ep.Notify(l.clk.Now(), "/sync", &Message{Code: codes.Content, Payload: big}, false)
	srv.flush()
	l.run(1000, func() bool { return len(cli.events) == 6 })
	if ev := cli.events[5]; ev.Kind != NotificationReceived || !bytes.Equal(ev.Msg.Payload, big) {
		t.Fatalf("large notification: %v, %d bytes", ev.Kind, len(ev.Msg.Payload))
	}
	// An old, reordered notification is not delivered (RFC 7641 §3.4).
	stale := &Wire{Type: NON, Code: codes.Content, MessageID: 999, Token: srv.ep.peers["cli"].firstObserverToken(),
		Options: message.Options{uintOption(message.Observe, 2)}, Payload: []byte("old")}
	data, _ := Encode(nil, stale)
	cli.ep.Receive(l.clk.Now(), "srv", data)
	if evs := cli.ep.Events(); len(evs) != 0 {
		t.Fatalf("stale notification delivered: %+v", evs)
	}
	// The client forgets the observation; the next notification is reset
	// and the server drops the observer (RFC 7641 §3.6).
	cli.ep.Cancel(l.clk.Now(), id)
	srv.ep.Notify(l.clk.Now(), "/sync", &Message{Code: codes.Content, Payload: []byte("v6")}, false)
	srv.flush()
	l.run(1000, nil)
	if srv.ep.Observers("/sync") != 0 {
		t.Fatal("observer still registered after Reset")
	}
}

func (p *peer) firstObserverToken() []byte {
	for _, o := range p.observers {
		return o.token
	}
	return nil
}

func TestReregistration(t *testing.T) {
	l := newTestLink(t, 10)
	cli := l.add("cli", Config{})
	srv := l.add("srv", Config{})
	regs := 0
	srv.onEvent = func(n *testNode, ev Event) {
		if ev.Kind == RequestReceived {
			regs++
			m := &Message{Code: codes.Content, Payload: []byte("x")}
			m.Options = m.Options.Add(uintOption(message.MaxAge, 30))
			respondTo(n, ev, m)
		}
	}
	req := NewRequest(codes.GET, "/r", nil)
	req.Options = req.Options.Add(message.Option{ID: message.Observe})
	cli.ep.Send(l.clk.Now(), "srv", req, SendOptions{})
	cli.flush()
	l.run(100, func() bool { return len(cli.events) == 1 })
	l.clk.Advance(35 * time.Second)
	l.run(100, func() bool { return regs == 2 })
	if srv.ep.Observers("/r") != 1 {
		t.Fatalf("%d observers after re-registration, want 1", srv.ep.Observers("/r"))
	}
}

// TestSlowLinkNoSpuriousRetransmissions: on a 100 bit/s channel with 1 s of
// frame overhead, timers derived from the link let 20 requests through
// without a single retransmission, while RFC 7252's Internet defaults
// flood the channel with copies.
func TestSlowLinkNoSpuriousRetransmissions(t *testing.T) {
	slow := LinkParams{BitRate: 100, FrameTime: time.Second, MTU: 128}
	run := func(cfgLink LinkParams) (Stats, int) {
		l := newTestLink(t, 12)
		l.air = &slow
		cli := l.add("cli", Config{Link: cfgLink, BlockSize: 64})
		srv := l.add("srv", Config{Link: cfgLink, BlockSize: 64})
		srv.onEvent = echoServer
		for i := range 20 {
			cli.ep.Send(l.clk.Now(), "srv", NewRequest(codes.POST, "/p", fmt.Appendf(nil, "%02d", i)), SendOptions{})
		}
		cli.flush()
		l.run(100000, func() bool { return len(cli.events) == 20 })
		for _, ev := range cli.events {
			if ev.Kind != ResponseReceived {
				t.Fatalf("event %v: %v", ev.Kind, ev.Err)
			}
		}
		return cli.ep.Stats(), l.sent
	}
	derived, sent := run(slow)
	if derived.Retransmitted != 0 || sent != 40 {
		t.Fatalf("link-derived timers: %d retransmissions, %d datagrams for 20 exchanges", derived.Retransmitted, sent)
	}
	naive, naiveSent := run(LinkParams{})
	if naive.Retransmitted == 0 {
		t.Fatal("Internet defaults caused no spurious retransmission: the test cannot tell")
	}
	t.Logf("derived: %d datagrams; Internet defaults: %d datagrams, %d retransmissions", sent, naiveSent, naive.Retransmitted)
}
