package coap

import (
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/mxmesh/mxmesh/clock"
)

func TestProbingRateDerived(t *testing.T) {
	def, _ := Derive(LinkParams{}, 0, 0)
	if def.ProbingRate != 1 || def.ProbingBurst != 1152 {
		t.Fatalf("default PROBING_RATE %v B/s, burst %d B; want RFC 7252's 1 B/s and one 1152-byte message", def.ProbingRate, def.ProbingBurst)
	}
	lora, _ := Derive(LinkParams{BitRate: 300, FrameTime: 2500 * time.Millisecond, MTU: 222}, 0, 0)
	if lora.ProbingRate != 0.375 || lora.ProbingBurst != 222 {
		t.Fatalf("300 bit/s link: PROBING_RATE %v B/s, burst %d B; want 1 %% of the link (0.375) and one MTU", lora.ProbingRate, lora.ProbingBurst)
	}
	fast, _ := Derive(LinkParams{BitRate: 1_000_000}, 0, 0)
	if fast.ProbingRate != 1 {
		t.Fatalf("fast link: PROBING_RATE %v B/s, want 1", fast.ProbingRate)
	}
}

// deadPeerRun drives cli on the fake clock until end, feeding it nothing
// from "dead", and returns the bytes sent in each window [from, end).
func deadPeerRun(cli *Endpoint, now, end time.Time, send func(now time.Time)) (total int, at []time.Time, sizes []int) {
	for {
		if send != nil {
			send(now)
		}
		for _, d := range cli.Outgoing() {
			at = append(at, now)
			sizes = append(sizes, len(d.Data))
			total += len(d.Data)
		}
		cli.Events()
		next, ok := cli.NextDeadline()
		if send != nil {
			if tick := now.Add(10 * time.Second); !ok || tick.Before(next) {
				next, ok = tick, true
			}
		}
		if !ok || next.After(end) {
			return total, at, sizes
		}
		now = next
		cli.Tick(now)
	}
}

// bytesSince sums the sizes sent at or after from.
func bytesSince(at []time.Time, sizes []int, from time.Time) int {
	n := 0
	for i, t := range at {
		if !t.Before(from) {
			n += sizes[i]
		}
	}
	return n
}

// TestProbingRateCON: 200 confirmable requests to a peer that never
// answers. Once it has been silent for MAX_TRANSMIT_SPAN, the traffic to
// it averages PROBING_RATE: at most one bucket, the retransmissions of the
// CONs already in flight, and 1 byte per second. Without the limit the
// queue would go out at NSTART CONs per MAX_TRANSMIT_WAIT, ~100 KB in 80
// minutes. When the peer speaks again, the queue moves at once.
func TestProbingRateCON(t *testing.T) {
	start := clock.Epoch
	cli, _ := NewEndpoint(Config{NStart: 4})
	p := cli.Params()
	payload := make([]byte, 100)
	for i := range 200 {
		if _, err := cli.Send(start, "dead", NewRequest(codes.POST, fmt.Sprint("/r/", i), payload), SendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	end := start.Add(4 * time.Hour)
	total, at, sizes := deadPeerRun(cli, start, end, nil)
	unresponsive := start.Add(p.MaxTransmitSpan)
	after := bytesSince(at, sizes, unresponsive)
	size := sizes[0]
	bound := p.ProbingBurst + int(p.ProbingRate*end.Sub(unresponsive).Seconds()) + p.NStart*(p.MaxRetransmit+1)*size
	t.Logf("%d datagrams, %d bytes; %d bytes after the peer went silent, bound %d", len(at), total, after, bound)
	if after > bound {
		t.Fatalf("%d bytes to an unresponsive peer in %v, more than PROBING_RATE allows (%d)", after, end.Sub(unresponsive), bound)
	}
	if late := bytesSince(at, sizes, end.Add(-time.Hour)); late < 10*size {
		t.Fatalf("only %d bytes in the last hour: the peer is no longer probed", late)
	}
	// The peer answers (a ping): the held-back CONs fill NSTART at once.
	now := end
	cli.Tick(now)
	cli.Outgoing()
	ping, _ := Encode(nil, &Wire{Type: CON, Code: codes.Empty, MessageID: 7})
	cli.Receive(now, "dead", ping)
	cli.Tick(now) // deferred retransmissions are due now
	if out := decodeAll(t, cli.Outgoing()); len(out) != 1+p.NStart {
		t.Fatalf("%d datagrams after the peer spoke, want its RST and NSTART = %d requests", len(out), p.NStart)
	}
}

// TestProbingRateNON: a NON request every 10 s to a peer that never
// answers; once silent for MAX_TRANSMIT_SPAN the requests are held back to
// PROBING_RATE.
func TestProbingRateNON(t *testing.T) {
	start := clock.Epoch
	cli, _ := NewEndpoint(Config{Link: LinkParams{BitRate: 300, MTU: 222}})
	p := cli.Params()
	end := start.Add(2 * time.Hour)
	var sent []string
	last := start.Add(-time.Hour)
	_, at, sizes := deadPeerRun(cli, start, end, func(now time.Time) {
		if now.Sub(last) < 10*time.Second {
			return
		}
		last = now
		path := fmt.Sprintf("/n/%04d", len(sent))
		sent = append(sent, path)
		if _, err := cli.Send(now, "dead", NewRequest(codes.POST, path, make([]byte, 40)), SendOptions{NonConfirmable: true}); err != nil {
			t.Fatal(err)
		}
	})
	unresponsive := start.Add(p.MaxTransmitSpan)
	after := bytesSince(at, sizes, unresponsive)
	bound := p.ProbingBurst + int(p.ProbingRate*end.Sub(unresponsive).Seconds()) + sizes[0]
	t.Logf("%d requests, %d sent, %d bytes after the peer went silent, bound %d", len(sent), len(at), after, bound)
	if after > bound {
		t.Fatalf("%d bytes of NON requests to an unresponsive peer, more than PROBING_RATE allows (%d)", after, bound)
	}
	if len(at) >= len(sent) || len(at) < 20 {
		t.Fatalf("%d of %d NON requests sent: not limited, or not probing", len(at), len(sent))
	}
}
