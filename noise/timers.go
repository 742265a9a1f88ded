package noise

import "time"

// Tick runs everything that is due at now: message-1 retries and give-ups,
// rekeys by age, re-handshakes after NoReplyTimeout without an answer,
// keepalives, and expiry of old sessions and half-open handshakes. Call it
// at NextDeadline (or later), then drain PollTransmit and PollEvent.
func (e *Endpoint[A]) Tick(now time.Time) {
	// Peers in name order: ticks draw from Config.Random (new handshakes),
	// so the order must not depend on map iteration.
	for _, p := range e.ordered {
		e.tickPeer(p, now)
	}
	if e.xxCount > 0 {
		e.expireXX(now)
	}
}

func (e *Endpoint[A]) tickPeer(p *peer[A], now time.Time) {
	if s := p.prev; s != nil && now.Sub(s.created) >= e.cfg.RejectAfter {
		e.dropSession(s)
		p.prev = nil
	}
	if s := p.cur; s != nil && now.Sub(s.created) >= e.cfg.RejectAfter {
		e.dropSession(s)
		p.cur = nil
	}
	if s := p.next; s != nil && now.Sub(s.created) >= e.cfg.RejectAfter {
		e.dropSession(s)
		p.next = nil
	}
	if in := p.init; in != nil {
		if now.Sub(in.sentAt) >= e.cfg.HandshakeTimeout {
			if in.attempts >= e.cfg.HandshakeAttempts {
				delete(e.slots, in.index)
				p.init = nil
				p.queue = nil
				p.unanswered = time.Time{}
				e.events = append(e.events, Event{Kind: EventHandshakeFailed, Peer: p.name})
				e.log.Debug("noise: handshake gave up", "peer", p.name, "attempts", in.attempts)
			} else {
				e.startInitiation(p, now)
			}
		}
		return
	}
	if d, ok := e.rekeyAt(p); ok && !now.Before(d) {
		e.startInitiation(p, now)
		return
	}
	if !p.unanswered.IsZero() && now.Sub(p.unanswered) >= e.cfg.NoReplyTimeout {
		// We sent and heard nothing back: the peer may have lost its
		// state (restart). A fresh handshake re-creates the session.
		p.unanswered = time.Time{}
		e.startInitiation(p, now)
		return
	}
	if !p.keepaliveDue.IsZero() && !now.Before(p.keepaliveDue) {
		p.keepaliveDue = time.Time{}
		e.confirm(p, now)
	}
}

// rekeyAt is when p's current session should be replaced by a new
// handshake. The side that initiated it rekeys at RekeyAfter; the
// responder waits until halfway to RejectAfter, so both rarely start at
// once.
func (e *Endpoint[A]) rekeyAt(p *peer[A]) (time.Time, bool) {
	s := p.cur
	var zero A
	if s == nil || p.addr == zero {
		return time.Time{}, false
	}
	if s.sendCtr >= rekeyAfterMessages {
		return s.created, true
	}
	if s.initiator {
		return s.created.Add(e.cfg.RekeyAfter), true
	}
	return s.created.Add(e.cfg.RekeyAfter + (e.cfg.RejectAfter-e.cfg.RekeyAfter)/2), true
}

// NextDeadline is the earliest time Tick has work to do; ok is false when
// nothing is scheduled.
func (e *Endpoint[A]) NextDeadline() (t time.Time, ok bool) {
	add := func(d time.Time) {
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	for _, p := range e.ordered {
		if p.prev != nil {
			add(p.prev.created.Add(e.cfg.RejectAfter))
		}
		if p.cur != nil {
			add(p.cur.created.Add(e.cfg.RejectAfter))
		}
		if p.next != nil {
			add(p.next.created.Add(e.cfg.RejectAfter))
		}
		if p.init != nil {
			add(p.init.sentAt.Add(e.cfg.HandshakeTimeout))
			continue
		}
		if d, has := e.rekeyAt(p); has {
			add(d)
		}
		if !p.unanswered.IsZero() {
			add(p.unanswered.Add(e.cfg.NoReplyTimeout))
		}
		if !p.keepaliveDue.IsZero() {
			add(p.keepaliveDue)
		}
	}
	if e.xxCount > 0 {
		for _, s := range e.slots { // a minimum: order does not matter
			if s.xx != nil {
				add(s.xx.created.Add(e.cfg.HandshakeTimeout))
			}
		}
	}
	return t, ok
}
