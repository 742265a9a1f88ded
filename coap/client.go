package coap

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// SendOptions tune one request.
type SendOptions struct {
	// NonConfirmable sends the request (each block of it) as NON.
	NonConfirmable bool
}

// exchange is one request of ours as the application sees it: possibly
// several wire requests (blocks), possibly a lasting observation.
type exchange struct {
	id   uint64
	p    *peer
	req  Message
	non  bool
	subs []*subreq
	done bool
	// parent is the observation a notification's remaining blocks are
	// fetched for (RFC 7959 §2.6), reported as childKind with childSeq.
	parent    *exchange
	childKind EventKind
	childSeq  uint32
	fetching  *exchange // the observation's child fetching a body now

	// Block1 (RFC 7959 §2.5): blocks of size 2^(szx1+4); every non-final
	// block is acknowledged (2.31) before the final one goes out.
	szx1      uint8
	n1        int
	next1     int // next non-final block to send
	acked1    []bool
	finalSent bool
	rtag      uint64 // Request-Tag value number (requestTag), while hasRtag
	hasRtag   bool

	b2 *b2state

	// Observe (RFC 7641 §3).
	observe   bool // the request registers (Observe 0)
	observing bool // the server accepted: notifications follow
	obsSub    *subreq
	obsSeq    uint32
	obsAt     time.Time
	rereg     *timer
}

// b2state reassembles a Block2 body (RFC 7959 §2.4).
type b2state struct {
	szx       uint8
	etag      []byte
	head      Message // code and options of block 0
	parts     [][]byte
	got       []bool
	requested []bool
	last      int // number of the final block, −1 while unknown
	next      int // lowest block number not yet considered for a request
	total     int // blocks announced by Size2, 0 while unknown
}

const (
	subPlain = iota
	subBlock1
	subBlock2
)

// subreq is one wire request of an exchange, matched by its token.
type subreq struct {
	x     *exchange
	token []byte
	kind  uint8
	num   uint32
	tx    *transmission
	wait  *timer // waiting for a separate or NON response
	held  bool   // its NON message is held back by PROBING_RATE
}

// Send starts a request to peer to and returns its ID; its outcome arrives
// as a ResponseReceived (or RequestFailed) Event with that ID. A payload
// larger than BlockSize goes out block-wise (Block1), with up to NSTART
// blocks in flight; a block-wise response is fetched and reassembled before
// it is delivered. A GET with an Observe option of 0 establishes an
// observation whose notifications arrive as NotificationReceived events.
func (e *Endpoint) Send(now time.Time, to Peer, req *Message, opt SendOptions) (uint64, error) {
	if len(req.Payload) > e.maxBody {
		return 0, fmt.Errorf("coap: send %s: %w (%d > %d bytes)", req.Path(), ErrTooLarge, len(req.Payload), e.maxBody)
	}
	if !isRequest(req.Code) {
		return 0, fmt.Errorf("coap: send: %v is not a request code", req.Code)
	}
	p := e.peer(now, to)
	if p == nil {
		return 0, fmt.Errorf("coap: send to %q: peer limit %d reached", to, e.cfg.MaxPeers)
	}
	if len(p.pending) >= maxOutstanding || len(p.tokens) >= maxOutstanding {
		return 0, fmt.Errorf("coap: send to %q: %w", to, ErrBusy)
	}
	p.lastActive = now
	x := &exchange{id: e.newID(), p: p, non: opt.NonConfirmable}
	x.req = cloneMessage(req.Code, req.Options, req.Payload)
	x.req.Options = stripBlockOptions(x.req.Options).Remove(message.RequestTag)
	if len(x.req.Payload) > e.BlockSize() {
		i, ok := p.takeRequestTag()
		if !ok {
			return 0, fmt.Errorf("coap: send to %q: Request-Tag: %w", to, ErrBusy)
		}
		x.rtag, x.hasRtag = i, true
		setRequestTag(x)
	}
	if v, err := x.req.Options.Observe(); err == nil && v == 0 && req.Code == codes.GET {
		x.observe = true
	}
	e.exchanges[x.id] = x
	if len(x.req.Payload) > e.BlockSize() {
		x.szx1 = e.szx
		e.startBlock1(now, x, 0)
	} else {
		e.issue(now, x, subPlain, 0, nil)
	}
	return x.id, nil
}

// startBlock1 (re)starts a Block1 upload with blocks of 2^(x.szx1+4) bytes,
// the first accepted bytes already acknowledged.
func (e *Endpoint) startBlock1(now time.Time, x *exchange, accepted int) {
	size := 1 << (x.szx1 + 4)
	x.n1 = (len(x.req.Payload) + size - 1) / size
	x.acked1 = make([]bool, x.n1)
	x.finalSent = false
	x.next1 = 0
	for x.next1 < x.n1-1 && (x.next1+1)*size <= accepted {
		x.acked1[x.next1] = true
		x.next1++
	}
	e.fillBlock1(now, x)
	e.maybeFinalBlock1(now, x)
}

// fillBlock1 keeps up to NSTART non-final blocks in flight.
func (e *Endpoint) fillBlock1(now time.Time, x *exchange) {
	for len(x.subs) < e.p.NStart && x.next1 < x.n1-1 && !x.done {
		e.issue(now, x, subBlock1, uint32(x.next1), nil)
		x.next1++
	}
}

func (e *Endpoint) maybeFinalBlock1(now time.Time, x *exchange) {
	if x.finalSent || x.done {
		return
	}
	for _, a := range x.acked1[:x.n1-1] {
		if !a {
			return
		}
	}
	x.finalSent = true
	e.issue(now, x, subBlock1, uint32(x.n1-1), nil)
}

// issue sends one wire request of x. token reuses an observation's token
// for re-registration; nil allocates a fresh one.
func (e *Endpoint) issue(now time.Time, x *exchange, kind uint8, num uint32, s *subreq) {
	p := x.p
	if s == nil {
		s = &subreq{x: x, token: p.token(), kind: kind, num: num}
		p.tokens[string(s.token)] = s
		x.subs = append(x.subs, s)
	}
	opts := append(message.Options(nil), x.req.Options...)
	var payload []byte
	switch kind {
	case subBlock1:
		size := 1 << (x.szx1 + 4)
		off := int(num) * size
		end := min(off+size, len(x.req.Payload))
		opts = opts.Set(uintOption(message.Block1, Block{Num: num, More: end < len(x.req.Payload), SZX: x.szx1}.Uint32()))
		if num == 0 {
			opts = opts.Set(uintOption(message.Size1, uint32(len(x.req.Payload))))
		}
		payload = x.req.Payload[off:end]
	case subBlock2:
		opts = opts.Remove(message.Observe)
		opts = opts.Set(uintOption(message.Block2, Block{Num: num, SZX: x.b2.szx}.Uint32()))
	default:
		payload = x.req.Payload
	}
	mid := p.mid()
	w := Wire{Type: CON, MessageID: int32(mid), Token: s.token, Code: x.req.Code, Options: opts, Payload: payload}
	if x.non {
		w.Type = NON
	}
	data, err := Encode(nil, &w)
	if err != nil {
		e.fail(now, x, fmt.Errorf("coap: send %s: %w", x.req.Path(), err))
		return
	}
	if x.non {
		e.emitNON(now, p, data, s)
		e.awaitResponse(now, s)
		return
	}
	tx := &transmission{p: p, mid: mid, data: data}
	s.tx = tx
	tx.onDone = func(now time.Time, ack *Wire, err error) {
		if s.tx == tx {
			s.tx = nil
		}
		switch {
		case err != nil:
			e.fail(now, x, fmt.Errorf("coap: request %s to %q: %w", x.req.Path(), p.id, err))
		case ack == nil:
		case ack.Code == codes.Empty:
			e.awaitResponse(now, s) // separate response follows (RFC 7252 §5.2.2)
		case !bytes.Equal(ack.Token, s.token):
			e.fail(now, x, fmt.Errorf("coap: request %s: piggy-backed response with another token: %w", x.req.Path(), ErrFormat))
		default:
			e.onResponseFor(now, s, ack)
		}
	}
	e.sendCON(now, tx)
}

// awaitResponse bounds the wait for a separate or NON response.
func (e *Endpoint) awaitResponse(now time.Time, s *subreq) {
	if s.x.observing {
		return
	}
	e.stop(s.wait)
	s.wait = e.after(now.Add(s.x.p.par.ExchangeLifetime), func(now time.Time) {
		e.fail(now, s.x, fmt.Errorf("coap: request %s to %q: %w", s.x.req.Path(), s.x.p.id, ErrNoResponse))
	})
}

// onResponse handles a response that came in its own CON or NON message.
func (e *Endpoint) onResponse(now time.Time, p *peer, m *Wire, d *dedup) {
	s := p.tokens[string(m.Token)]
	if s == nil || s.x.done {
		// Unknown token: reject, which also cancels an observation we
		// forgot (RFC 7252 §5.3.2, RFC 7641 §3.6).
		e.sendReset(p, uint16(m.MessageID))
		d.reply = e.out[len(e.out)-1].Data
		return
	}
	if m.Type == CON {
		d.reply = e.sendEmptyAck(p, uint16(m.MessageID))
	}
	if tx := s.tx; tx != nil && !tx.done {
		// The response implies the lost ACK (RFC 7252 §5.2.2).
		tx.onDone = nil
		s.tx = nil
		e.finish(now, tx, nil, nil)
	}
	e.onResponseFor(now, s, m)
}

func (e *Endpoint) dropSub(s *subreq) {
	x := s.x
	if x.obsSub != s && x.p.tokens[string(s.token)] == s {
		delete(x.p.tokens, string(s.token))
	}
	e.stop(s.wait)
	e.dropHeldNON(s)
	for i, t := range x.subs {
		if t == s {
			x.subs = append(x.subs[:i], x.subs[i+1:]...)
			break
		}
	}
}

// onResponseFor handles a response (piggy-backed or separate) to s.
func (e *Endpoint) onResponseFor(now time.Time, s *subreq, m *Wire) {
	x := s.x
	if x.done {
		return
	}
	e.stop(s.wait)
	if x.observing && s == x.obsSub {
		e.onNotification(now, x, m)
		return
	}
	if seq, err := m.Options.Observe(); err == nil && x.observe && s.kind == subPlain && m.Code>>5 == 2 {
		e.establish(now, x, s, m, seq)
		return
	}
	e.dropSub(s)
	if s.kind == subBlock1 && m.Code == codes.Continue {
		b, ok, err := getBlock(m.Options, message.Block1)
		switch {
		case err != nil || !ok || b.Num != s.num:
			e.fail(now, x, fmt.Errorf("coap: request %s: 2.31 without matching Block1: %w", x.req.Path(), ErrFormat))
		case b.SZX < x.szx1:
			// The server asks for smaller blocks (RFC 7959 §2.3): it kept this
			// block whole; resend the rest at the new size.
			accepted := (int(b.Num) + 1) << (x.szx1 + 4)
			for len(x.subs) > 0 {
				e.cancelSub(now, x.subs[0])
			}
			x.szx1 = b.SZX
			e.startBlock1(now, x, accepted)
		default:
			x.acked1[s.num] = true
			e.fillBlock1(now, x)
			e.maybeFinalBlock1(now, x)
		}
		return
	}
	e.finalResponse(now, x, s, m)
}

func (e *Endpoint) cancelSub(now time.Time, s *subreq) {
	if tx := s.tx; tx != nil {
		s.tx = nil
		tx.onDone = nil
		e.finish(now, tx, nil, nil)
	}
	if s.x.obsSub == s {
		s.x.obsSub = nil
	}
	e.dropSub(s)
}

// finalResponse handles the answer to the request as a whole: a plain
// response, or one block of a Block2 body.
func (e *Endpoint) finalResponse(now time.Time, x *exchange, s *subreq, m *Wire) {
	b, has, err := getBlock(m.Options, message.Block2)
	if err != nil {
		e.fail(now, x, fmt.Errorf("coap: response to %s: %w", x.req.Path(), err))
		return
	}
	if has && (b.More || b.Num > 0 || x.b2 != nil) && m.Code>>5 == 2 {
		e.onBlock2(now, x, b, m)
		return
	}
	e.complete(now, x, cloneMessage(m.Code, m.Options, m.Payload))
}

func stripBlockOptions(o message.Options) message.Options {
	return o.Remove(message.Block1).Remove(message.Block2).Remove(message.Size1).Remove(message.Size2)
}

// complete delivers the whole response of x and ends it; for the rest of
// a large notification or observe answer it reports to the observation.
func (e *Endpoint) complete(now time.Time, x *exchange, msg Message) {
	msg.Options = stripBlockOptions(msg.Options)
	x.done = true
	delete(e.exchanges, x.id)
	e.teardown(now, x)
	if par := x.parent; par != nil {
		if par.fetching == x {
			par.fetching = nil
		}
		if !par.done {
			e.events = append(e.events, Event{Kind: x.childKind, Peer: x.p.id, ID: par.id, Msg: msg,
				HasObserve: true, Observe: x.childSeq})
		}
		return
	}
	// HasObserve stays unset: no observation continues after this event.
	e.events = append(e.events, Event{Kind: ResponseReceived, Peer: x.p.id, ID: x.id, Msg: msg})
}

// teardown cancels every wire request of x, the observation's included.
func (e *Endpoint) teardown(now time.Time, x *exchange) {
	e.stop(x.rereg)
	e.releaseRequestTag(now, x)
	for len(x.subs) > 0 {
		e.cancelSub(now, x.subs[0])
	}
	if s := x.obsSub; s != nil {
		x.obsSub = nil
		e.dropHeldNON(s)
		if tx := s.tx; tx != nil {
			s.tx = nil
			tx.onDone = nil
			e.finish(now, tx, nil, nil)
		}
		if x.p.tokens[string(s.token)] == s {
			delete(x.p.tokens, string(s.token))
		}
	}
}

// establish records an accepted observation (RFC 7641 §3.2) and delivers
// its first answer.
func (e *Endpoint) establish(now time.Time, x *exchange, s *subreq, m *Wire, seq uint32) {
	for i, t := range x.subs {
		if t == s {
			x.subs = append(x.subs[:i], x.subs[i+1:]...)
			break
		}
	}
	x.observing, x.obsSub = true, s
	x.obsSeq, x.obsAt = seq, now
	e.scheduleRereg(now, x, m.Options)
	e.deliverObserved(now, x, ResponseReceived, m, seq)
}

// deliverObserved reports an observe answer or notification, fetching the
// rest first when it is the first block of a larger body (RFC 7959 §2.6).
func (e *Endpoint) deliverObserved(now time.Time, x *exchange, kind EventKind, m *Wire, seq uint32) {
	if old := x.fetching; old != nil {
		// A fresher notification supersedes the body still being fetched
		// (RFC 7641 §3.2: notifications are the resource's state).
		x.fetching = nil
		e.Cancel(now, old.id)
	}
	if b, ok, _ := getBlock(m.Options, message.Block2); ok && b.More {
		child := &exchange{id: e.newID(), p: x.p, parent: x, childKind: kind, childSeq: seq}
		x.fetching = child
		child.req = Message{Code: codes.GET, Options: append(message.Options(nil), x.req.Options...)}
		child.req.Options = child.req.Options.Remove(message.Observe)
		e.exchanges[child.id] = child
		e.onBlock2(now, child, b, m)
		return
	}
	msg := cloneMessage(m.Code, m.Options, m.Payload)
	msg.Options = stripBlockOptions(msg.Options)
	e.events = append(e.events, Event{Kind: kind, Peer: x.p.id, ID: x.id, Msg: msg, HasObserve: true, Observe: seq})
}

// onBlock2 stores one block of a Block2 body and asks for missing ones.
func (e *Endpoint) onBlock2(now time.Time, x *exchange, b Block, m *Wire) {
	st := x.b2
	etag, _ := optionValue(m.Options, message.ETag)
	if st == nil {
		st = &b2state{szx: b.SZX, etag: append([]byte(nil), etag...), last: -1}
		x.b2 = st
	}
	if b.SZX != st.szx || !bytes.Equal(etag, st.etag) {
		e.fail(now, x, fmt.Errorf("coap: response to %s: %w", x.req.Path(), ErrBlockMismatch))
		return
	}
	if b.Num == 0 {
		st.head = cloneMessage(m.Code, m.Options, nil)
	}
	size := b.Size()
	if (int(b.Num)+1)*size > e.maxBody+size {
		e.fail(now, x, fmt.Errorf("coap: response to %s: %w", x.req.Path(), ErrTooLarge))
		return
	}
	if (b.More && len(m.Payload) != size) || len(m.Payload) > size {
		e.fail(now, x, fmt.Errorf("coap: response to %s: block %d has %d bytes: %w", x.req.Path(), b.Num, len(m.Payload), ErrFormat))
		return
	}
	for int(b.Num) >= len(st.got) {
		st.parts = append(st.parts, nil)
		st.got = append(st.got, false)
		st.requested = append(st.requested, false)
	}
	st.requested[b.Num] = true
	if !st.got[b.Num] {
		st.got[b.Num] = true
		st.parts[b.Num] = append([]byte(nil), m.Payload...)
	}
	if !b.More {
		st.last = int(b.Num)
	}
	if v, err := m.Options.GetUint32(message.Size2); err == nil && st.total == 0 {
		st.total = (int(v) + size - 1) / size
		if int(v) > e.maxBody {
			e.fail(now, x, fmt.Errorf("coap: response to %s: Size2 %d: %w", x.req.Path(), v, ErrTooLarge))
			return
		}
	}
	want := st.total
	if st.last >= 0 {
		want = st.last + 1
	}
	if want == 0 && b.More {
		want = int(b.Num) + 2 // size unknown: one block ahead at a time
	}
	// Up to NSTART block requests in flight, lowest numbers first.
	for ; st.next < want && len(x.subs) < e.p.NStart; st.next++ {
		n := st.next
		if n >= len(st.requested) {
			st.parts = append(st.parts, nil)
			st.got = append(st.got, false)
			st.requested = append(st.requested, false)
		}
		if !st.requested[n] {
			st.requested[n] = true
			e.issue(now, x, subBlock2, uint32(n), nil)
		}
	}
	if st.last < 0 || !st.got[0] {
		return
	}
	for _, g := range st.got[:st.last+1] {
		if !g {
			return
		}
	}
	body := make([]byte, 0, st.last*size+len(st.parts[st.last]))
	for _, part := range st.parts[:st.last+1] {
		body = append(body, part...)
	}
	msg := st.head
	msg.Payload = body
	x.b2 = nil
	e.complete(now, x, msg)
}

// fail ends x with err.
func (e *Endpoint) fail(now time.Time, x *exchange, err error) {
	if x.done {
		return
	}
	x.done = true
	delete(e.exchanges, x.id)
	e.teardown(now, x)
	if par := x.parent; par != nil {
		if par.fetching == x {
			par.fetching = nil
		}
		if errors.Is(err, ErrBlockMismatch) && x.childKind == NotificationReceived {
			// The server replaced the body with a newer notification,
			// which is on its way (RFC 7959 §2.6): drop this one.
			return
		}
		// Losing the rest of a notification ends the observation.
		e.fail(now, par, err)
		return
	}
	e.events = append(e.events, Event{Kind: RequestFailed, Peer: x.p.id, ID: x.id, Err: err})
}

// Cancel forgets request or observation id without an event. A later
// notification for a forgotten observation is answered with Reset, which
// ends it at the server (RFC 7641 §3.6).
func (e *Endpoint) Cancel(now time.Time, id uint64) bool {
	x := e.exchanges[id]
	if x == nil {
		return false
	}
	x.done = true
	delete(e.exchanges, id)
	e.teardown(now, x)
	return true
}

// onNotification handles a notification for an established observation
// (RFC 7641 §3.2–3.4).
func (e *Endpoint) onNotification(now time.Time, x *exchange, m *Wire) {
	seq, err := m.Options.Observe()
	if m.Code>>5 != 2 || err != nil {
		// The observation ended (RFC 7641 §3.2).
		e.complete(now, x, cloneMessage(m.Code, m.Options, m.Payload))
		return
	}
	// Any 2.xx answer shows the observation alive (a re-registration may
	// be answered with the sequence number already seen).
	e.scheduleRereg(now, x, m.Options)
	if !observeFresh(x.obsSeq, x.obsAt, seq, now) {
		return
	}
	x.obsSeq, x.obsAt = seq, now
	e.deliverObserved(now, x, NotificationReceived, m, seq)
}

// scheduleRereg re-registers an observation once Max-Age (RFC 7252 §5.10.5)
// of the latest notification has passed without a newer one, plus one
// ACK_TIMEOUT of slack (RFC 7641 §3.3.1).
func (e *Endpoint) scheduleRereg(now time.Time, x *exchange, opts message.Options) {
	maxAge := DefaultMaxAge
	if v, err := opts.GetUint32(message.MaxAge); err == nil {
		maxAge = time.Duration(v) * time.Second
	}
	e.stop(x.rereg)
	x.rereg = e.after(now.Add(maxAge+x.p.par.AckTimeout), func(now time.Time) {
		if x.done || x.obsSub == nil {
			return
		}
		s := x.obsSub
		if s.tx != nil {
			return // a re-registration is still in flight
		}
		e.issue(now, x, subPlain, 0, s)
		x.rereg = nil
	})
}
