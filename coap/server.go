package coap

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// incoming is a request delivered to the application and not yet answered.
type incoming struct {
	p        *peer
	mid      uint16
	token    []byte
	con      bool
	acked    bool // an empty ACK went out; the answer is a separate response
	ackTimer *timer
	expire   *timer
	d        *dedup
	key      string
	path     string
	block2   Block // requested Block2 (Num, SZX), when hasB2
	hasB2    bool
	block1   Block // Block1 to echo in the final response, when hasB1
	hasB1    bool
	register bool // GET with Observe 0 (RFC 7641 §2)
}

// assembly is a Block1 body being received (RFC 7959 §2.5). Blocks may
// arrive in any order; the final block completes it only once every earlier
// block is present.
type assembly struct {
	szx     uint8
	buf     []byte
	have    []bool
	expires time.Time
}

// b2entry is a response body being served block by block (RFC 7959 §2.4).
type b2entry struct {
	code    codes.Code
	opts    message.Options
	body    []byte
	expires time.Time
	// served and left track the blocks served after block 0, for a
	// notification whose delivery is reported (NotifyObserver); fetched,
	// if set, is called once every block went out, or with
	// ErrNotDelivered when the entry is replaced or expires first.
	served  []bool
	left    int
	fetched func(now time.Time, err error)
}

// markServed records that block num of c went out.
func (c *b2entry) markServed(now time.Time, num uint32) {
	if c.fetched == nil || int(num) >= len(c.served) || c.served[num] {
		return
	}
	c.served[num] = true
	if c.left--; c.left == 0 {
		f := c.fetched
		c.fetched = nil
		f(now, nil)
	}
}

// abandon reports a body that will not be fetched to the end.
func (c *b2entry) abandon(now time.Time) {
	if f := c.fetched; f != nil {
		c.fetched = nil
		f(now, ErrNotDelivered)
	}
}

func (e *Endpoint) onRequest(now time.Time, p *peer, m *Wire, d *dedup) {
	in := &incoming{p: p, mid: uint16(m.MessageID), token: append([]byte(nil), m.Token...),
		con: m.Type == CON, d: d}
	if id, bad := unknownCritical(m.Options); bad {
		e.reply(now, in, &Message{Code: codes.BadOption, Payload: fmt.Appendf(nil, "unknown critical option %d", id)})
		return
	}
	in.key = requestKey(m.Code, m.Options)
	b2, hasB2, err2 := getBlock(m.Options, message.Block2)
	b1, hasB1, err1 := getBlock(m.Options, message.Block1)
	if err1 != nil || err2 != nil {
		e.reply(now, in, &Message{Code: codes.BadOption, Payload: []byte("bad block option")})
		return
	}
	in.block2, in.hasB2 = b2, hasB2
	if hasB2 && b2.Num > 0 {
		if c := p.b2cache[in.key]; c != nil && !now.After(c.expires) {
			e.serveBlock(now, in, c.code, c.opts, c.body)
			c.markServed(now, b2.Num)
			return
		}
	}
	payload := m.Payload
	if hasB1 {
		body, done, resp := e.block1(now, p, in.key, b1, m)
		if resp != nil {
			e.reply(now, in, resp)
			return
		}
		if !done {
			cont := &Message{Code: codes.Continue}
			cont.Options = cont.Options.Add(uintOption(message.Block1, Block{Num: b1.Num, More: true, SZX: b1.SZX}.Uint32()))
			e.reply(now, in, cont)
			return
		}
		payload = body
		in.block1, in.hasB1 = b1, true
	}
	var msg Message
	if hasB1 {
		msg = cloneMessage(m.Code, m.Options, nil)
		msg.Payload = payload // the assembly's buffer, already private
	} else {
		msg = cloneMessage(m.Code, m.Options, payload)
	}
	msg.Options = stripBlockOptions(msg.Options).Remove(message.RequestTag)
	in.path = msg.Path()
	ev := Event{Kind: RequestReceived, Peer: p.id, Msg: msg, Token: in.token}
	if obs, err := m.Options.Observe(); err == nil && m.Code == codes.GET {
		switch obs {
		case 0:
			in.register, ev.HasObserve, ev.Observe = true, true, 0
		case 1:
			e.removeObserver(now, p, string(m.Token))
		}
	}
	id := e.newID()
	ev.ID = id
	e.incoming[id] = in
	p.incoming++
	// An application that never answers does not pin the state forever.
	in.expire = e.after(now.Add(p.par.ExchangeLifetime), func(time.Time) {
		if e.incoming[id] == in {
			delete(e.incoming, id)
			p.incoming--
		}
	})
	if in.con {
		in.ackTimer = e.after(now.Add(p.ackDelay), func(time.Time) {
			if !in.acked {
				in.acked = true
				in.d.reply = e.sendEmptyAck(p, in.mid)
			}
		})
	}
	e.events = append(e.events, ev)
}

// block1 stores one Block1 block. It returns the whole body once the final
// block arrives with every earlier block present, or an error response.
func (e *Endpoint) block1(now time.Time, p *peer, key string, b Block, m *Wire) (body []byte, done bool, resp *Message) {
	size := b.Size()
	off := int(b.Num) * size
	if off+len(m.Payload) > e.maxBody {
		r := &Message{Code: codes.RequestEntityTooLarge}
		r.Options = r.Options.Add(uintOption(message.Size1, uint32(e.maxBody)))
		return nil, false, r
	}
	if b.More && len(m.Payload) != size {
		return nil, false, &Message{Code: codes.BadRequest, Payload: []byte("short non-final block")}
	}
	a := p.assemblies[key]
	// A block 0 in a new message while block 0 is held starts a new body
	// (retransmissions of the same message were caught as duplicates).
	if a == nil || now.After(a.expires) || (b.Num == 0 && (a.szx != b.SZX || len(a.have) > 0 && a.have[0])) {
		a = &assembly{szx: b.SZX}
		p.assemblies[key] = a
		e.after(now.Add(p.par.ExchangeLifetime), func(now time.Time) { e.expireAssembly(now, p, key, a) })
	}
	if a.szx != b.SZX {
		return nil, false, &Message{Code: codes.RequestEntityIncomplete, Payload: []byte("block size changed")}
	}
	a.expires = now.Add(p.par.ExchangeLifetime)
	if need := off + len(m.Payload); need > len(a.buf) {
		a.buf = append(a.buf, make([]byte, need-len(a.buf))...)
	}
	copy(a.buf[off:], m.Payload)
	for int(b.Num) >= len(a.have) {
		a.have = append(a.have, false)
	}
	a.have[b.Num] = true
	if b.More {
		return nil, false, nil
	}
	for _, h := range a.have[:b.Num+1] {
		if !h {
			return nil, false, &Message{Code: codes.RequestEntityIncomplete, Payload: []byte("missing blocks")}
		}
	}
	delete(p.assemblies, key)
	return a.buf[:off+len(m.Payload)], true, nil
}

func (e *Endpoint) expireAssembly(now time.Time, p *peer, key string, a *assembly) {
	if p.assemblies[key] != a {
		return
	}
	if now.Before(a.expires) {
		e.after(a.expires, func(now time.Time) { e.expireAssembly(now, p, key, a) })
		return
	}
	delete(p.assemblies, key)
}

// Respond answers the request delivered with RequestReceived id: piggy-backed
// on the ACK if that has not gone out yet, else as a separate response
// (RFC 7252 §5.2). Bodies larger than a block are served block-wise (RFC
// 7959 §2.4); a successful answer to an Observe registration registers the
// observer (RFC 7641 §4.1).
func (e *Endpoint) Respond(now time.Time, id uint64, resp *Message) error {
	in := e.incoming[id]
	if in == nil {
		return fmt.Errorf("coap: respond %d: %w", id, ErrUnknownRequest)
	}
	if !isResponse(resp.Code) {
		return fmt.Errorf("coap: respond %d: %v is not a response code", id, resp.Code)
	}
	delete(e.incoming, id)
	in.p.incoming--
	in.p.lastActive = now
	e.stop(in.ackTimer)
	e.stop(in.expire)
	r := Message{Code: resp.Code, Payload: resp.Payload}
	r.Options = append(message.Options(nil), resp.Options...)
	if in.register && resp.Code>>5 == 2 {
		seq := e.addObserver(now, in)
		r.Options = r.Options.Set(uintOption(message.Observe, seq))
	}
	e.reply(now, in, &r)
	return nil
}

// reply sends r for in, slicing a body larger than a block into Block2
// blocks kept for the follow-up requests (RFC 7959 §2.4). An application
// that set Block2 itself is left alone.
func (e *Endpoint) reply(now time.Time, in *incoming, r *Message) {
	p := in.p
	opts := r.Options
	if in.hasB1 {
		opts = opts.Set(uintOption(message.Block1, Block{Num: in.block1.Num, SZX: in.block1.SZX}.Uint32()))
	}
	if hasBlock(opts) || (len(r.Payload) <= e.blockSizeFor(in) && !(in.hasB2 && in.block2.Num > 0)) {
		e.send(now, in, r.Code, opts, r.Payload)
		return
	}
	if _, ok := optionValue(opts, message.ETag); !ok {
		e.etagCtr++
		var tag [4]byte
		binary.BigEndian.PutUint32(tag[:], e.etagCtr)
		opts = opts.Set(message.Option{ID: message.ETag, Value: tag[:]})
	}
	c := &b2entry{code: r.Code, opts: opts, body: r.Payload}
	e.cacheBody(now, p, in.key, c)
	e.serveBlock(now, in, c.code, c.opts, c.body)
}

// cacheBody keeps a block-wise body for EXCHANGE_LIFETIME.
func (e *Endpoint) cacheBody(now time.Time, p *peer, key string, c *b2entry) {
	c.expires = now.Add(p.par.ExchangeLifetime)
	if old := p.b2cache[key]; old != nil {
		old.abandon(now)
	}
	p.b2cache[key] = c
	e.after(c.expires, func(now time.Time) {
		if p.b2cache[key] == c {
			delete(p.b2cache, key)
		}
		c.abandon(now)
	})
}

func (e *Endpoint) blockSizeFor(in *incoming) int {
	szx := e.szx
	if in.hasB2 && in.block2.SZX < szx {
		szx = in.block2.SZX
	}
	return 1 << (szx + 4)
}

// serveBlock sends the requested Block2 block of body (block 0 when the
// request had no Block2 option), with Size2 on block 0.
func (e *Endpoint) serveBlock(now time.Time, in *incoming, code codes.Code, opts message.Options, body []byte) {
	size := e.blockSizeFor(in)
	szx := szxFor(size)
	num := uint32(0)
	if in.hasB2 {
		num = in.block2.Num
	}
	off := int(num) * size
	if off >= len(body) && off > 0 {
		e.send(now, in, codes.BadOption, nil, []byte("block out of range"))
		return
	}
	end := min(off+size, len(body))
	o := append(message.Options(nil), opts...)
	if num > 0 {
		// Observe belongs to the first block only (RFC 7959 §2.6).
		o = o.Remove(message.Observe)
	}
	o = o.Set(uintOption(message.Block2, Block{Num: num, More: end < len(body), SZX: szx}.Uint32()))
	if num == 0 {
		o = o.Set(uintOption(message.Size2, uint32(len(body))))
	}
	e.send(now, in, code, o, body[off:end])
}

func hasBlock(opts message.Options) bool {
	_, ok := optionValue(opts, message.Block2)
	return ok
}

func optionValue(opts message.Options, id message.OptionID) ([]byte, bool) {
	for _, o := range opts {
		if o.ID == id {
			return o.Value, true
		}
	}
	return nil, false
}

// send transmits a response: piggy-backed, separate CON, or NON.
func (e *Endpoint) send(now time.Time, in *incoming, code codes.Code, opts message.Options, payload []byte) {
	w := Wire{Token: in.token, Code: code, Options: opts, Payload: payload}
	switch {
	case in.con && !in.acked:
		in.acked = true
		w.Type, w.MessageID = ACK, int32(in.mid)
	case in.con:
		w.Type, w.MessageID = CON, int32(in.p.mid())
	default:
		w.Type, w.MessageID = NON, int32(in.p.mid())
	}
	data, err := Encode(nil, &w)
	if err != nil {
		e.log.Debug("coap: encode response", "err", err)
		data, _ = Encode(nil, &Wire{Type: w.Type, MessageID: w.MessageID, Token: in.token, Code: codes.InternalServerError})
	}
	switch w.Type {
	case ACK:
		in.d.reply = data
		e.emit(in.p.id, data)
	case CON:
		e.sendCON(now, &transmission{p: in.p, mid: uint16(w.MessageID), data: data})
	default:
		e.emitNON(now, in.p, data, nil)
	}
}
