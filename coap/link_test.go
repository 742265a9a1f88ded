package coap

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
)

// testLink joins endpoints over a simulated link on a fake clock: each
// datagram is lost, duplicated or delayed out of order at the configured
// rates, drawn from a seeded RNG, so every run is the same.
type testLink struct {
	t       testing.TB
	clk     *clock.Fake
	rng     *rand.Rand
	nodes   map[Peer]*testNode
	loss    float64
	dup     float64
	reorder float64
	delay   time.Duration
	sent    int
	bytes   int
	// tamper, when set, may rewrite or drop (return nil) a datagram.
	tamper func(from, to Peer, data []byte) []byte
	// air, when set, models a shared half-duplex channel: each datagram
	// occupies it for air.AirTime(len) after the previous one.
	air      *LinkParams
	busyTill time.Time
	// trace digests every datagram sent (time, ends, bytes).
	trace hash.Hash
}

type testNode struct {
	name   Peer
	ep     *Endpoint
	timer  clock.Timer
	link   *testLink
	events []Event
	// onEvent, when set, handles events as they come (e.g. answering).
	onEvent func(n *testNode, ev Event)
}

func newTestLink(t testing.TB, seed uint64) *testLink {
	return &testLink{t: t, clk: clock.NewFake(clock.Epoch), rng: rand.New(clock.SeededRNG(seed)),
		nodes: map[Peer]*testNode{}, delay: 50 * time.Millisecond, trace: sha256.New()}
}

func (l *testLink) add(name Peer, cfg Config) *testNode {
	l.t.Helper()
	if cfg.RNG == nil {
		cfg.RNG = clock.SeededRNG(uint64(len(l.nodes)) + 1000)
	}
	ep, err := NewEndpoint(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	n := &testNode{name: name, ep: ep, link: l}
	l.nodes[name] = n
	return n
}

// flush sends what n has queued, hands its events on, and re-arms its timer.
func (n *testNode) flush() {
	l := n.link
	for {
		out := n.ep.Outgoing()
		evs := n.ep.Events()
		if len(out) == 0 && len(evs) == 0 {
			break
		}
		for _, d := range out {
			l.transmit(n.name, d)
		}
		for _, ev := range evs {
			if n.onEvent != nil {
				n.onEvent(n, ev)
			} else {
				n.events = append(n.events, ev)
			}
		}
	}
	if n.timer != nil {
		n.timer.Stop()
		n.timer = nil
	}
	if at, ok := n.ep.NextDeadline(); ok {
		n.timer = l.clk.AfterFunc(at.Sub(l.clk.Now()), func() {
			n.timer = nil
			n.ep.Tick(l.clk.Now())
			n.flush()
		})
	}
}

func (l *testLink) transmit(from Peer, d Datagram) {
	l.sent++
	l.bytes += len(d.Data)
	fmt.Fprintf(l.trace, "%d %s>%s %x\n", l.clk.Now().UnixNano(), from, d.To, d.Data)
	dst := l.nodes[d.To]
	if dst == nil {
		l.t.Fatalf("datagram to unknown node %q", d.To)
	}
	data := d.Data
	if l.tamper != nil {
		if data = l.tamper(from, d.To, data); data == nil {
			return
		}
	}
	if l.rng.Float64() < l.loss {
		return
	}
	copies := 1
	if l.rng.Float64() < l.dup {
		copies = 2
	}
	for range copies {
		delay := l.delay
		if l.rng.Float64() < l.reorder {
			delay += time.Duration(l.rng.Float64() * float64(4*l.delay))
		}
		if l.air != nil {
			start := l.clk.Now()
			if l.busyTill.After(start) {
				start = l.busyTill
			}
			l.busyTill = start.Add(l.air.AirTime(len(data)))
			delay += l.busyTill.Sub(l.clk.Now())
		}
		l.clk.AfterFunc(delay, func() {
			_ = dst.ep.Receive(l.clk.Now(), from, data)
			dst.flush()
		})
	}
}

// run fires timers until cond holds or nothing is pending; it fails the
// test after limit steps.
func (l *testLink) run(limit int, cond func() bool) {
	l.t.Helper()
	for i := 0; i < limit; i++ {
		if cond != nil && cond() {
			return
		}
		if !l.clk.RunNext() {
			if cond != nil && !cond() {
				l.t.Fatalf("link idle after %d steps without reaching the condition", i)
			}
			return
		}
	}
	l.t.Fatalf("no progress after %d steps", limit)
}

// echoServer answers every request with its method, path and payload.
func echoServer(n *testNode, ev Event) {
	if ev.Kind != RequestReceived {
		n.events = append(n.events, ev)
		return
	}
	body := append([]byte(ev.Msg.Path()+":"), ev.Msg.Payload...)
	if err := n.ep.Respond(n.link.clk.Now(), ev.ID, &Message{Code: 69, Payload: body}); err != nil {
		n.link.t.Errorf("respond: %v", err)
	}
}
