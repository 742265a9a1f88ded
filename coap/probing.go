package coap

import (
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// PROBING_RATE (RFC 7252 §4.7, §4.8): however a client decides to stop
// expecting an answer, an endpoint must not send more than PROBING_RATE
// bytes per second on average to a peer that does not respond.
//
// NSTART and the exponential backoff alone do not ensure that: each CON
// to a dead peer goes out MAX_RETRANSMIT+1 times, and when it fails the
// next queued one starts at once (NSTART of them at a time), while NON
// messages are not limited at all. So, per peer:
//
//   - The peer is unresponsive when a datagram of ours that expects an
//     answer (a CON, a NON request) has waited MAX_TRANSMIT_SPAN — the
//     time a CON keeps being retransmitted — and nothing at all has come
//     from the peer since it went out. Any datagram from the peer makes it
//     responsive again, and what was held back goes out at once.
//   - While it is unresponsive, every datagram to it is paid from a token
//     bucket filled at PROBING_RATE up to PROBING_BURST (one MTU) bytes; it
//     starts full. A new CON (its NSTART slot), a retransmission and a NON
//     message wait until the balance covers them (or is full, for one
//     larger than the bucket).
//   - Meanwhile a CoAP ping (an Empty CON, 4 bytes, answered with Reset:
//     RFC 7252 §4.3), paid from the same bucket, goes out after RTO,
//     then at doubling intervals up to the largest RTO: the first answer
//     ends the wait, so a link that comes back is used within one such
//     interval rather than after a held-back 1 KB block's 17 minutes.
//
// Traffic to an unresponsive peer therefore averages at most PROBING_RATE
// plus one bucket; traffic to a peer that answers is never slowed. A NON
// response or notification held back goes out even if it is stale by then
// (a NON request is dropped with its exchange).

// pingSize is the size of a CoAP ping: a 4-byte Empty CON (RFC 7252 §4.3).
const pingSize = 4

// unresponsive reports whether p has not answered for MAX_TRANSMIT_SPAN.
func (p *peer) unresponsive(now time.Time) bool {
	return !p.waitSince.IsZero() && now.Sub(p.waitSince) >= p.par.MaxTransmitSpan
}

// expectReply notes that a datagram expecting an answer goes to p.
func (p *peer) expectReply(now time.Time) {
	if p.waitSince.IsZero() {
		p.waitSince = now
	}
}

// heard notes a datagram from p: it is responsive, with a full bucket, and
// whatever PROBING_RATE held back goes out.
func (e *Endpoint) heard(now time.Time, p *peer) {
	p.waitSince = time.Time{}
	p.probeBal, p.probeAt = float64(p.par.ProbingBurst), now
	e.stop(p.pingTimer)
	p.pingTimer, p.pingEvery = nil, 0
	for _, tx := range p.pending {
		if tx.deferred {
			tx.deferred = false
			e.stop(tx.t)
			tx.t = e.after(now, func(now time.Time) { e.retransmit(now, tx) })
		}
	}
	if len(p.queue) > 0 || len(p.nonQueue) > 0 {
		e.drainProbing(now, p)
	}
}

// probeBalance brings p's bucket up to now.
func (p *peer) probeBalance(now time.Time) float64 {
	if d := now.Sub(p.probeAt); d > 0 {
		p.probeBal = min(float64(p.par.ProbingBurst), p.probeBal+p.par.ProbingRate*d.Seconds())
		p.probeAt = now
	}
	return p.probeBal
}

// probeWait returns 0 if n more bytes may go to p now, and pays for them;
// else how long until the bucket covers them.
func (e *Endpoint) probeWait(now time.Time, p *peer, n int) time.Duration {
	if !p.unresponsive(now) {
		return 0
	}
	need := float64(min(n, p.par.ProbingBurst))
	bal := p.probeBalance(now)
	if bal >= need {
		p.probeBal -= float64(n)
		return 0
	}
	// +1 ns: the float arithmetic must not leave the balance just short.
	return time.Duration((need-bal)/p.par.ProbingRate*float64(time.Second)) + 1
}

// mayProbe says whether n more bytes may go to p now, and pays for them if
// so. When not, a timer drains p's queues once the bucket covers them.
func (e *Endpoint) mayProbe(now time.Time, p *peer, n int) bool {
	wait := e.probeWait(now, p, n)
	if wait == 0 {
		return true
	}
	e.startPinging(now, p)
	if p.probeTimer == nil {
		p.probeTimer = e.after(now.Add(wait), func(now time.Time) {
			p.probeTimer = nil
			e.drainProbing(now, p)
		})
	}
	return false
}

// startPinging makes sure pings probe p while something is held back.
func (e *Endpoint) startPinging(now time.Time, p *peer) {
	if p.pingTimer == nil {
		p.pingEvery = p.rto.current(now)
		p.pingTimer = e.after(now.Add(p.pingEvery), func(now time.Time) { e.ping(now, p) })
	}
}

// ping sends a CoAP ping to the unresponsive peer p while anything waits
// for it, and schedules the next one (see the comment at the top).
func (e *Endpoint) ping(now time.Time, p *peer) {
	p.pingTimer = nil
	if !p.unresponsive(now) || len(p.pending)+len(p.nonQueue) == 0 {
		p.pingEvery = 0
		return
	}
	if wait := e.probeWait(now, p, pingSize); wait > 0 {
		p.pingTimer = e.after(now.Add(wait), func(now time.Time) { e.ping(now, p) })
		return
	}
	// The Reset it draws matches nothing (onReset); receiving it is the
	// point.
	data, _ := Encode(nil, &Wire{Type: CON, Code: codes.Empty, MessageID: int32(p.mid())})
	e.emit(p.id, data)
	p.pingEvery = min(2*p.pingEvery, p.par.MaxRTO)
	p.pingTimer = e.after(now.Add(p.pingEvery), func(now time.Time) { e.ping(now, p) })
}

// maxHeldNON bounds the NON messages held back per peer; beyond it the
// oldest is dropped (a NON may be lost anyway).
const maxHeldNON = 1024

// emitNON sends a non-confirmable message, behind any held back before it.
// s is the request it carries (nil for a response or notification): a
// request expects an answer (see unresponsive), and is no longer sent once
// its exchange ended (dropHeldNON).
func (e *Endpoint) emitNON(now time.Time, p *peer, data []byte, s *subreq) {
	if len(p.nonQueue) == 0 && e.mayProbe(now, p, len(data)) {
		if s != nil {
			p.expectReply(now)
		}
		e.emit(p.id, data)
		return
	}
	if len(p.nonQueue) >= maxHeldNON {
		e.stats.Dropped++
		if old := p.nonQueue[0].sub; old != nil {
			old.held = false
		}
		p.nonQueue = p.nonQueue[1:]
	}
	if s != nil {
		s.held = true
	}
	p.nonQueue = append(p.nonQueue, heldNON{data, s})
}

// heldNON is a non-confirmable message PROBING_RATE holds back.
type heldNON struct {
	data []byte
	sub  *subreq // the request it carries, if any
}

// dropHeldNON forgets the held-back NON request of s.
func (e *Endpoint) dropHeldNON(s *subreq) {
	if !s.held {
		return
	}
	s.held = false
	q := s.x.p.nonQueue
	for i, m := range q {
		if m.sub == s {
			s.x.p.nonQueue = append(q[:i:i], q[i+1:]...)
			return
		}
	}
}

// drainProbing sends what PROBING_RATE held back and now allows: queued
// CONs into free NSTART slots, then NON messages, in order.
func (e *Endpoint) drainProbing(now time.Time, p *peer) {
	for p.inflight < e.p.NStart && len(p.queue) > 0 && e.mayProbe(now, p, len(p.queue[0].data)) {
		next := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		e.start(now, next)
	}
	for len(p.nonQueue) > 0 && e.mayProbe(now, p, len(p.nonQueue[0].data)) {
		m := p.nonQueue[0]
		p.nonQueue[0] = heldNON{}
		p.nonQueue = p.nonQueue[1:]
		if m.sub != nil {
			m.sub.held = false
			p.expectReply(now)
		}
		e.emit(p.id, m.data)
	}
}
