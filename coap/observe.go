package coap

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
)

// resource is an observed resource: its observers in registration order.
// It exists while it has observers.
type resource struct {
	observers []*observer
}

// observer is one client observing one of our resources (RFC 7641 §4.1).
type observer struct {
	p       *peer
	token   []byte
	path    string
	key     string
	lastCON time.Time     // when the last confirmable notification was sent
	tx      *transmission // confirmable notification in flight
	ending  bool          // the notification in flight ends the observation
	nonMIDs [4]uint16     // recent non-confirmable notifications, for RST
	nonN    int
	// dl is the delivery of the last NotifyObserver notification, until
	// it is reported (NotificationDone).
	dl *delivery
}

// delivery tracks one notification whose delivery is reported: it is
// delivered once the client acknowledged it and fetched every block.
type delivery struct {
	id      uint64
	acked   bool
	fetched bool // every block served (true when not block-wise)
}

// endDelivery reports o's pending delivery, if any, with err (nil:
// delivered).
func (e *Endpoint) endDelivery(o *observer, err error) {
	dl := o.dl
	if dl == nil {
		return
	}
	o.dl = nil
	e.events = append(e.events, Event{Kind: NotificationDone, Peer: o.p.id, ID: dl.id, Token: o.token, Err: err})
}

// progress reports dl delivered once it is acknowledged and fetched.
func (e *Endpoint) progress(o *observer, dl *delivery) {
	if o.dl == dl && dl.acked && dl.fetched {
		e.endDelivery(o, nil)
	}
}

func (o *observer) sentNON(mid uint16) bool {
	for i := 0; i < min(o.nonN, len(o.nonMIDs)); i++ {
		if o.nonMIDs[i] == mid {
			return true
		}
	}
	return false
}

// addObserver registers (or re-registers, same peer and token: RFC 7641
// §4.1) the requester of in, returning the sequence number for the answer.
func (e *Endpoint) addObserver(now time.Time, in *incoming) uint32 {
	r := e.resources[in.path]
	if r == nil {
		r = &resource{}
		e.resources[in.path] = r
	}
	tok := string(in.token)
	if old := in.p.observers[tok]; old != nil {
		e.removeObserver(now, in.p, tok)
		e.resources[in.path] = r
	}
	o := &observer{p: in.p, token: in.token, path: in.path, key: in.key, lastCON: now}
	in.p.observers[tok] = o
	r.observers = append(r.observers, o)
	return e.obsSeq
}

func (e *Endpoint) removeObserver(now time.Time, p *peer, tok string) {
	o := p.observers[tok]
	if o == nil {
		return
	}
	delete(p.observers, tok)
	e.endDelivery(o, ErrNotDelivered)
	if o.tx != nil {
		tx := o.tx
		o.tx = nil
		tx.onDone = nil
		e.finish(now, tx, nil, nil)
	}
	r := e.resources[o.path]
	if r == nil {
		return
	}
	for i, x := range r.observers {
		if x == o {
			r.observers = append(r.observers[:i], r.observers[i+1:]...)
			break
		}
	}
	if len(r.observers) == 0 {
		delete(e.resources, o.path)
	}
}

// Observers returns how many clients observe path.
func (e *Endpoint) Observers(path string) int {
	if r := e.resources[path]; r != nil {
		return len(r.observers)
	}
	return 0
}

// Notify sends msg as a notification to every observer of path (RFC 7641
// §4.2) and returns how many it reached. Notifications are non-confirmable
// unless confirmable is set or the observer has had no confirmable one for
// 24 hours (RFC 7641 §4.5). While a confirmable notification is in flight a
// newer one takes its place and inherits its retransmission state (RFC 7641
// §4.5.2). A non-2.xx msg ends every observation of path (RFC 7641 §4.2).
func (e *Endpoint) Notify(now time.Time, path string, msg *Message, confirmable bool) (int, error) {
	r := e.resources[path]
	if r == nil || len(r.observers) == 0 {
		return 0, nil
	}
	// One endpoint-wide counter serves every resource: strictly increasing
	// per resource as RFC 7641 §4.4 asks, and it survives a resource losing
	// its last observer.
	e.obsSeq = (e.obsSeq + 1) & observeSeqMask
	seq := e.obsSeq
	final := msg.Code>>5 != 2
	obs := append([]*observer(nil), r.observers...)
	for _, o := range obs {
		if err := e.notifyOne(now, o, msg, seq, confirmable, final, false); err != nil {
			return 0, fmt.Errorf("coap: notify %s: %w", path, err)
		}
	}
	if final {
		for _, o := range obs {
			if o.tx == nil {
				e.removeObserver(now, o.p, string(o.token))
			}
		}
	}
	return len(obs), nil
}

// notifyOne sends msg, with sequence number seq, to one observer. With
// report, the notification is confirmable and its delivery is reported as
// a NotificationDone event; a notification still undelivered is
// superseded (ErrNotDelivered).
func (e *Endpoint) notifyOne(now time.Time, o *observer, msg *Message, seq uint32, confirmable, final, report bool) error {
	o.p.lastActive = now
	e.endDelivery(o, ErrNotDelivered)
	var dl *delivery
	if report {
		dl = &delivery{id: e.newID(), fetched: true}
		confirmable = true
	}
	opts := append(message.Options(nil), msg.Options...)
	if !final {
		opts = opts.Set(uintOption(message.Observe, seq))
	}
	payload := msg.Payload
	if len(payload) > e.BlockSize() {
		// RFC 7641 §2 with RFC 7959 §2.6: the first block goes out, the
		// client fetches the rest with Block2 requests. The ETag tells the
		// client when a newer notification replaced the body it is
		// fetching (RFC 7959 §2.4).
		body := append(message.Options(nil), msg.Options...)
		if _, ok := optionValue(body, message.ETag); !ok {
			e.etagCtr++
			var tag [4]byte
			binary.BigEndian.PutUint32(tag[:], e.etagCtr)
			body = body.Set(message.Option{ID: message.ETag, Value: tag[:]})
			opts = opts.Set(message.Option{ID: message.ETag, Value: tag[:]})
		}
		c := &b2entry{code: msg.Code, opts: body, body: payload}
		if dl != nil {
			n := (len(payload) + e.BlockSize() - 1) / e.BlockSize()
			c.served, c.left, dl.fetched = make([]bool, n), n-1, false
			c.fetched = func(now time.Time, err error) {
				if err != nil {
					if o.dl == dl {
						e.endDelivery(o, err)
					}
					return
				}
				dl.fetched = true
				e.progress(o, dl)
			}
		}
		e.cacheBody(now, o.p, o.key, c)
		opts = opts.Set(uintOption(message.Block2, Block{More: true, SZX: e.szx}.Uint32()))
		opts = opts.Set(uintOption(message.Size2, uint32(len(payload))))
		payload = payload[:e.BlockSize()]
	}
	o.dl = dl
	con := confirmable || final || now.Sub(o.lastCON) >= ObserveConfirmableInterval || o.tx != nil
	w := Wire{Token: o.token, Code: msg.Code, Options: opts, Payload: payload, Type: NON}
	mid := o.p.mid()
	w.MessageID = int32(mid)
	if con {
		w.Type = CON
	}
	data, err := Encode(nil, &w)
	if err != nil {
		return err
	}
	if !con {
		o.nonMIDs[o.nonN%len(o.nonMIDs)] = mid
		o.nonN++
		e.emitNON(now, o.p, data, nil)
		return nil
	}
	o.lastCON = now
	o.ending = final
	if old := o.tx; old != nil && !old.done {
		// Replace the one queued or in flight: new MID and bytes, same
		// timers and retransmission counter.
		delete(o.p.pending, old.mid)
		old.mid, old.data = mid, data
		o.p.pending[mid] = old
		return nil
	}
	tx := &transmission{p: o.p, mid: mid, data: data}
	tok := string(o.token)
	tx.onDone = func(now time.Time, ack *Wire, err error) {
		if o.tx == tx {
			o.tx = nil
		}
		if dl := o.dl; dl != nil {
			// The delivery now in o.dl is the one this transmission
			// carries: a replacement takes over the transmission.
			if err != nil {
				e.endDelivery(o, err)
			} else {
				dl.acked = true
				e.progress(o, dl)
			}
		}
		if err != nil || o.ending {
			// Timeout or Reset: the client is gone (RFC 7641 §4.5).
			e.removeObserver(now, o.p, tok)
		}
	}
	o.tx = tx
	e.sendCON(now, tx)
	return nil
}

// Observing reports whether peer still observes one of our resources
// with the registration that used token.
func (e *Endpoint) Observing(peer Peer, token []byte) bool {
	p := e.peers[peer]
	return p != nil && p.observers[string(token)] != nil
}

// NotifyObserver sends msg as a confirmable notification to the one
// observer registered by peer with token (RFC 7641 §4.2): for resources
// whose representation differs per client, such as a Matrix /sync. It
// returns the notification's ID, or 0 when that observer is gone
// (deregistered, reset or timed out). A NotificationDone event with that
// ID follows once the client acknowledged msg and fetched all of it (RFC
// 7959 §2.6), or failed to; a newer notification before then supersedes
// it. A non-2.xx msg ends the observation.
func (e *Endpoint) NotifyObserver(now time.Time, peer Peer, token []byte, msg *Message) (uint64, error) {
	p := e.peers[peer]
	if p == nil || p.observers[string(token)] == nil {
		return 0, nil
	}
	o := p.observers[string(token)]
	e.obsSeq = (e.obsSeq + 1) & observeSeqMask
	final := msg.Code>>5 != 2
	if err := e.notifyOne(now, o, msg, e.obsSeq, true, final, true); err != nil {
		o.dl = nil
		return 0, fmt.Errorf("coap: notify %s: %w", o.path, err)
	}
	return o.dl.id, nil
}

// observeFresh implements RFC 7641 §3.4: is a notification with sequence v2
// received at t2 newer than the last one (v1 at t1)?
func observeFresh(v1 uint32, t1 time.Time, v2 uint32, t2 time.Time) bool {
	return (v1 < v2 && v2-v1 < observeSeqHalf) || (v1 > v2 && v1-v2 > observeSeqHalf) ||
		t2.After(t1.Add(ObserveFreshness))
}
