package coap

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Peer names the other end of an exchange. The caller chooses the key: an
// address string for plain UDP, a static public key for Noise sessions (so
// an address change keeps the CoAP state).
type Peer string

// Message is the application's view of a request, response or
// notification: the engine owns type, Message ID, token and the block-wise
// options.
type Message struct {
	Code    codes.Code
	Options message.Options
	Payload []byte
}

// Path returns the Uri-Path options joined as "/a/b" ("/" when absent).
func (m *Message) Path() string {
	var b strings.Builder
	for _, o := range m.Options {
		if o.ID == message.URIPath {
			b.WriteByte('/')
			b.Write(o.Value)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// NewRequest builds a request for path, which may carry a "?a=b&c" query
// (each part becomes a Uri-Query option, RFC 7252 §6.5).
func NewRequest(code codes.Code, path string, payload []byte) *Message {
	m := &Message{Code: code, Payload: payload}
	path, query, _ := strings.Cut(path, "?")
	for seg := range strings.SplitSeq(strings.Trim(path, "/"), "/") {
		if seg != "" {
			m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
		}
	}
	if query != "" {
		for q := range strings.SplitSeq(query, "&") {
			m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
		}
	}
	return m
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// RequestReceived: Msg is a complete request (block-wise bodies
	// reassembled); answer it with Respond(ID).
	RequestReceived EventKind = iota + 1
	// ResponseReceived: Msg is the complete response to the request Send
	// returned ID for. With Observe set, an observation is now established.
	ResponseReceived
	// NotificationReceived: Msg is a fresh Observe notification for the
	// observation ID (RFC 7641 §3.2).
	NotificationReceived
	// RequestFailed: the request or observation ID ended without an answer;
	// Err says why (ErrTimeout, ErrReset, ...).
	RequestFailed
	// NotificationDone: the notification last sent with NotifyObserver to
	// the observer (Peer, Token) was delivered (Err nil: the client
	// acknowledged it and, for a block-wise body, fetched every block) or
	// not (Err says why: ErrTimeout, ErrReset, ErrNotDelivered).
	NotificationDone
)

// Event is one delivery from the Endpoint to its caller.
type Event struct {
	Kind    EventKind
	Peer    Peer
	ID      uint64
	Msg     Message
	Observe uint32 // Observe option value, when HasObserve
	// HasObserve is set on a request that registers an observation
	// (Observe 0), on the ResponseReceived that establishes one, and on its
	// notifications: more events with this ID follow until RequestFailed,
	// a final ResponseReceived without HasObserve, or Cancel.
	HasObserve bool
	// Token is a RequestReceived's token: with Peer it names the
	// observation a registration creates (NotifyObserver).
	Token []byte
	Err   error
}

// Datagram is one message for the caller to send.
type Datagram struct {
	To   Peer
	Data []byte
}

// Errors an Event or a call may carry.
var (
	ErrTimeout        = errors.New("coap: no acknowledgement after MAX_RETRANSMIT retransmissions")
	ErrReset          = errors.New("coap: peer answered with Reset")
	ErrNoResponse     = errors.New("coap: no response within EXCHANGE_LIFETIME")
	ErrUnknownRequest = errors.New("coap: unknown or already answered request")
	ErrTooLarge       = errors.New("coap: body larger than the configured maximum")
	ErrBlockMismatch  = errors.New("coap: block-wise transfer changed representation")
	ErrBusy           = errors.New("coap: too many outstanding requests to this peer")
	ErrNotDelivered   = errors.New("coap: notification superseded, deregistered or not fetched in time")
)

// maxOutstanding bounds the confirmable messages and open tokens per peer,
// well inside the 16-bit Message ID and token spaces.
const maxOutstanding = 16384

// Config configures an Endpoint. The zero value is usable: RFC 7252
// defaults, 1024-byte blocks, 1 MiB bodies, a fixed-seed jitter source.
type Config struct {
	Link          LinkParams
	NStart        int // NSTART, outstanding CONs per peer; 0 means 1
	MaxRetransmit int // MAX_RETRANSMIT; 0 means 4
	// BlockSize is the block-wise block size in bytes (16…1024, rounded down
	// to a power of two); 0 picks the largest that fits Link.MTU with 64
	// bytes of headroom.
	BlockSize int
	// MaxBody bounds a reassembled request or response body; 0 means 1 MiB.
	MaxBody int
	// AckDelay is how long a server waits for the application's answer
	// before sending an empty ACK and answering separately later (RFC 7252
	// §5.2.2); 0 means DefaultAckDelay. A peer with a PeerLink whose own
	// ACK_TIMEOUT/4 is shorter gets that, so that a fast peer is
	// acknowledged before it retransmits; a slow link never lengthens it.
	//
	// A longer delay would save the empty ACK on a slow link when the
	// answer needs work across that link (a key fetch, a remote join), but
	// the requester would then count that work as round-trip time: its
	// RTO (CoCoA) grows with every such exchange, and every later lost
	// datagram waits that long for its retransmission.
	AckDelay time.Duration
	// PeerLink, if set, gives the link towards one peer when it differs
	// from Link (a server with clients on a fast link and servers on a
	// slow radio link): that peer's ACK_TIMEOUT (the seed of its RTO),
	// EXCHANGE_LIFETIME and NON_LIFETIME are derived from it (Derive, with
	// NSTART and MAX_RETRANSMIT as configured), and so is its ACK delay
	// when shorter than AckDelay. It is asked once, when state for the
	// peer is created; ok false, or a link Derive refuses, means Link.
	PeerLink func(Peer) (link LinkParams, ok bool)
	// MaxPeers bounds the peers with state; 0 means 4096. Datagrams from
	// further peers are dropped.
	MaxPeers int
	// RNG supplies jitter and initial Message IDs (a *rand.ChaCha8 from
	// clock.SeededRNG or clock.SystemRNG fits); nil means a fixed sequence.
	RNG interface{ Uint64() uint64 }
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Stats count what an Endpoint did.
type Stats struct {
	Sent, Retransmitted, Received, Duplicates, FormatErrors, Dropped, ResetsSent uint64
}

// Endpoint is a sans-I/O CoAP endpoint (client and server at once). Feed it
// datagrams with Receive and time with Tick; collect Outgoing datagrams and
// Events after each call; call Tick again at NextDeadline.
//
// An Endpoint is not safe for concurrent use: one loop owns it.
type Endpoint struct {
	cfg      Config
	p        Params
	szx      uint8
	maxBody  int
	ackDelay time.Duration
	rng      interface{ Uint64() uint64 }
	log      *slog.Logger

	peers     map[Peer]*peer
	timers    timerHeap
	timerSeq  uint64
	nextID    uint64
	etagCtr   uint32
	obsSeq    uint32 // last Observe sequence number sent (RFC 7641 §4.4)
	incoming  map[uint64]*incoming
	exchanges map[uint64]*exchange
	resources map[string]*resource

	out     []Datagram
	events  []Event
	scratch Wire
	stats   Stats
}

// NewEndpoint validates cfg and returns an Endpoint.
func NewEndpoint(cfg Config) (*Endpoint, error) {
	p, err := Derive(cfg.Link, cfg.NStart, cfg.MaxRetransmit)
	if err != nil {
		return nil, fmt.Errorf("coap: new endpoint: %w", err)
	}
	e := &Endpoint{cfg: cfg, p: p, rng: cfg.RNG, log: cfg.Logger,
		peers: map[Peer]*peer{}, incoming: map[uint64]*incoming{},
		exchanges: map[uint64]*exchange{}, resources: map[string]*resource{}}
	switch {
	case cfg.BlockSize == 0:
		e.szx = szxFor(cfg.Link.mtu() - 64)
	case cfg.BlockSize < 16 || cfg.BlockSize > 1024:
		return nil, fmt.Errorf("coap: new endpoint: block size %d outside 16…1024", cfg.BlockSize)
	default:
		e.szx = szxFor(cfg.BlockSize)
	}
	e.maxBody = cfg.MaxBody
	if e.maxBody <= 0 {
		e.maxBody = 1 << 20
	}
	e.ackDelay = cfg.AckDelay
	if e.ackDelay <= 0 {
		e.ackDelay = DefaultAckDelay
	}
	if e.rng == nil {
		e.rng = &splitmix{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.cfg.MaxPeers <= 0 {
		e.cfg.MaxPeers = 4096
	}
	return e, nil
}

// splitmix is the fallback jitter source when Config.RNG is nil.
type splitmix struct{ s uint64 }

func (r *splitmix) Uint64() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Params returns the transmission parameters in force.
func (e *Endpoint) Params() Params { return e.p }

// BlockSize returns the block size used for block-wise transfers, in bytes.
func (e *Endpoint) BlockSize() int { return 1 << (e.szx + 4) }

// Stats returns the counters so far.
func (e *Endpoint) Stats() Stats { return e.stats }

// PeerParams returns the transmission parameters towards peer: its own
// (Config.PeerLink) once it has state, else the endpoint's.
func (e *Endpoint) PeerParams(to Peer) Params {
	if p := e.peers[to]; p != nil {
		return *p.par
	}
	return e.p
}

// RTO returns the current CoCoA retransmission timeout towards peer.
func (e *Endpoint) RTO(now time.Time, to Peer) time.Duration {
	if p := e.peers[to]; p != nil {
		return p.rto.current(now)
	}
	return e.p.AckTimeout
}

// Outgoing returns the datagrams to send, in order, and forgets them. The
// slice is reused by the next call; the Data buffers are not.
func (e *Endpoint) Outgoing() []Datagram {
	out := e.out
	e.out = e.out[len(e.out):]
	if len(out) == 0 {
		e.out = e.out[:0:0]
		return nil
	}
	e.out = nil
	return out
}

// Events returns what happened since the last call and forgets it.
func (e *Endpoint) Events() []Event {
	ev := e.events
	e.events = nil
	return ev
}

func (e *Endpoint) emit(to Peer, data []byte) {
	e.stats.Sent++
	e.out = append(e.out, Datagram{To: to, Data: data})
}

func (e *Endpoint) newID() uint64 {
	e.nextID++
	return e.nextID
}

// jitter returns d scaled by a random factor in [1, ACK_RANDOM_FACTOR]
// (RFC 7252 §4.2).
func (e *Endpoint) jitter(d time.Duration) time.Duration {
	f := 1 + (AckRandomFactor-1)*float64(e.rng.Uint64()>>11)/(1<<53)
	return time.Duration(float64(d) * f)
}

// peer is the state kept per peer.
type peer struct {
	id       Peer
	nextMID  uint16
	tokenCtr uint32
	rto      cocoa
	// par and ackDelay are the transmission parameters towards this peer
	// (Config.PeerLink), else the endpoint's.
	par      *Params
	ackDelay time.Duration

	pending  map[uint16]*transmission // our CONs awaiting ACK/RST, by MID
	queue    []*transmission          // CONs waiting for an NSTART slot
	inflight int
	tokens   map[string]*subreq // our requests awaiting a response, by token

	lastActive time.Time // last datagram or call concerning this peer
	incoming   int       // requests delivered and not yet answered

	seen       map[uint16]*dedup    // received CON/NON MIDs (RFC 7252 §4.5)
	assemblies map[string]*assembly // Block1 bodies being received
	b2cache    map[string]*b2entry  // Block2 bodies being served
	observers  map[string]*observer // observations of our resources, by token
	rtags      map[uint64]bool      // Request-Tag values held (requesttag.go)

	// PROBING_RATE state (probing.go).
	waitSince  time.Time // first datagram expecting an answer since the peer was last heard
	probeBal   float64   // bytes the peer may get while unresponsive
	probeAt    time.Time // when probeBal was brought up to date
	probeTimer *timer    // drains the queues once the bucket allows
	pingTimer  *timer    // next CoAP ping to the unresponsive peer
	pingEvery  time.Duration
	nonQueue   []heldNON // NON messages held back
}

func (e *Endpoint) peer(now time.Time, id Peer) *peer {
	if p := e.peers[id]; p != nil {
		return p
	}
	if len(e.peers) >= e.cfg.MaxPeers {
		return nil
	}
	par, ackDelay := &e.p, e.ackDelay
	if e.cfg.PeerLink != nil {
		if l, ok := e.cfg.PeerLink(id); ok {
			if pp, err := Derive(l, e.p.NStart, e.p.MaxRetransmit); err == nil {
				par, ackDelay = &pp, min(pp.AckTimeout/4, e.ackDelay)
			} else {
				e.log.Debug("coap: peer link refused, using the endpoint's", "peer", id, "err", err)
			}
		}
	}
	p := &peer{id: id, nextMID: uint16(e.rng.Uint64()), rto: newCocoa(par.AckTimeout, par.MaxRTO),
		par: par, ackDelay: ackDelay,
		pending: map[uint16]*transmission{}, tokens: map[string]*subreq{}, seen: map[uint16]*dedup{},
		assemblies: map[string]*assembly{}, b2cache: map[string]*b2entry{}, observers: map[string]*observer{},
		rtags: map[uint64]bool{}, lastActive: now, probeBal: float64(par.ProbingBurst), probeAt: now}
	e.peers[id] = p
	e.after(now.Add(par.ExchangeLifetime), func(now time.Time) { e.collect(now, p) })
	return p
}

// collect forgets a peer that has had no state and no traffic for
// EXCHANGE_LIFETIME, so that its Message IDs can no longer be confused
// with a successor's (RFC 7252 §4.4), and peer state does not grow without
// bound.
func (e *Endpoint) collect(now time.Time, p *peer) {
	busy := len(p.pending)+len(p.queue)+len(p.tokens)+len(p.seen)+len(p.assemblies)+
		len(p.b2cache)+len(p.observers)+len(p.rtags)+len(p.nonQueue)+p.inflight+p.incoming > 0
	at := p.lastActive.Add(p.par.ExchangeLifetime)
	if busy || now.Before(at) {
		if !at.After(now) {
			at = now.Add(p.par.ExchangeLifetime)
		}
		e.after(at, func(now time.Time) { e.collect(now, p) })
		return
	}
	delete(e.peers, p.id)
}

func (p *peer) mid() uint16 {
	for {
		p.nextMID++
		if p.pending[p.nextMID] == nil {
			return p.nextMID
		}
	}
}

// token allocates the shortest unused token from a rolling 16-bit counter:
// empty, then 1 byte, then 2 bytes (see the package doc).
func (p *peer) token() []byte {
	for {
		v := uint16(p.tokenCtr)
		p.tokenCtr++
		var t []byte
		switch {
		case v == 0:
			t = []byte{}
		case v < 256:
			t = []byte{byte(v)}
		default:
			t = []byte{byte(v >> 8), byte(v)}
		}
		if p.tokens[string(t)] == nil {
			return t
		}
	}
}

// transmission is one confirmable message of ours awaiting ACK or RST,
// retransmitted with exponential backoff (RFC 7252 §4.2).
type transmission struct {
	p       *peer
	mid     uint16
	data    []byte
	first   time.Time
	rto0    time.Duration
	timeout time.Duration
	retries int
	started bool
	done    bool
	// deferred: the retransmission waits for PROBING_RATE (probing.go).
	deferred bool
	t        *timer
	// onDone gets the ACK (nil for RST and timeout) and an error.
	onDone func(now time.Time, ack *Wire, err error)
}

// sendCON transmits tx now if an NSTART slot is free and PROBING_RATE
// allows, else queues it (RFC 7252 §4.7).
func (e *Endpoint) sendCON(now time.Time, tx *transmission) {
	tx.p.pending[tx.mid] = tx
	if tx.p.inflight < e.p.NStart && len(tx.p.queue) == 0 && e.mayProbe(now, tx.p, len(tx.data)) {
		e.start(now, tx)
		return
	}
	tx.p.queue = append(tx.p.queue, tx)
}

func (e *Endpoint) start(now time.Time, tx *transmission) {
	tx.p.inflight++
	tx.started = true
	tx.first = now
	tx.rto0 = e.jitter(tx.p.rto.current(now))
	tx.timeout = tx.rto0
	tx.p.expectReply(now)
	e.emit(tx.p.id, tx.data)
	tx.t = e.after(now.Add(tx.timeout), func(now time.Time) { e.retransmit(now, tx) })
}

func (e *Endpoint) retransmit(now time.Time, tx *transmission) {
	if tx.retries >= e.p.MaxRetransmit {
		e.finish(now, tx, nil, ErrTimeout)
		return
	}
	tx.retries++
	tx.timeout = tx.p.rto.backoff(tx.rto0, tx.timeout)
	if wait := e.probeWait(now, tx.p, len(tx.data)); wait > 0 {
		// PROBING_RATE: the retransmission waits for the bucket.
		e.startPinging(now, tx.p)
		tx.deferred = true
		tx.t = e.after(now.Add(wait), func(now time.Time) { e.retransmit(now, tx) })
		return
	}
	tx.deferred = false
	e.stats.Retransmitted++
	tx.p.expectReply(now)
	e.emit(tx.p.id, tx.data)
	tx.t = e.after(now.Add(tx.timeout), func(now time.Time) { e.retransmit(now, tx) })
}

// finish ends tx (ACK, RST, timeout or cancel), frees its NSTART slot and
// starts queued CONs.
func (e *Endpoint) finish(now time.Time, tx *transmission, ack *Wire, err error) {
	if tx.done {
		return
	}
	tx.done = true
	p := tx.p
	delete(p.pending, tx.mid)
	e.stop(tx.t)
	if tx.started {
		p.inflight--
		if ack != nil {
			p.rto.observe(now, now.Sub(tx.first), tx.retries)
		}
	} else {
		for i, q := range p.queue {
			if q == tx {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				break
			}
		}
	}
	e.drainProbing(now, p)
	if tx.onDone != nil {
		tx.onDone(now, ack, err)
	}
}

// dedup remembers a received CON or NON for EXCHANGE_LIFETIME or
// NON_LIFETIME, with the reply to repeat for a duplicate (RFC 7252 §4.5).
type dedup struct {
	reply []byte
}

// Receive processes one datagram from a peer. The datagram is not retained.
// A malformed datagram is counted, a confirmable one answered with Reset
// (RFC 7252 §4.2), and the error returned for the caller's statistics.
func (e *Endpoint) Receive(now time.Time, from Peer, data []byte) error {
	e.stats.Received++
	m := &e.scratch
	if err := Decode(data, m); err != nil {
		e.stats.FormatErrors++
		if mid, typ, ok := headerMID(data); ok && typ == CON {
			if p := e.peer(now, from); p != nil {
				e.sendReset(p, mid)
			}
		}
		return fmt.Errorf("coap: receive from %q: %w", from, err)
	}
	p := e.peer(now, from)
	if p == nil {
		e.stats.Dropped++
		return fmt.Errorf("coap: receive from %q: peer limit %d reached", from, e.cfg.MaxPeers)
	}
	p.lastActive = now
	e.heard(now, p)
	mid := uint16(m.MessageID)
	switch m.Type {
	case ACK:
		e.onAck(now, p, m)
		return nil
	case RST:
		e.onReset(now, p, mid)
		return nil
	}
	if m.Code == codes.Empty { // CON ping (RFC 7252 §4.3)
		e.sendReset(p, mid)
		return nil
	}
	if d := p.seen[mid]; d != nil {
		e.stats.Duplicates++
		if d.reply != nil {
			e.emit(p.id, d.reply)
		}
		return nil
	}
	d := &dedup{}
	p.seen[mid] = d
	life := p.par.ExchangeLifetime
	if m.Type == NON {
		life = p.par.NonLifetime
	}
	e.after(now.Add(life), func(time.Time) {
		if p.seen[mid] == d {
			delete(p.seen, mid)
		}
	})
	if isRequest(m.Code) {
		e.onRequest(now, p, m, d)
		return nil
	}
	e.onResponse(now, p, m, d)
	return nil
}

func (e *Endpoint) sendReset(p *peer, mid uint16) {
	e.stats.ResetsSent++
	data, _ := Encode(nil, &Wire{Type: RST, Code: codes.Empty, MessageID: int32(mid)})
	e.emit(p.id, data)
}

func (e *Endpoint) sendEmptyAck(p *peer, mid uint16) []byte {
	data, _ := Encode(nil, &Wire{Type: ACK, Code: codes.Empty, MessageID: int32(mid)})
	e.emit(p.id, data)
	return data
}

func (e *Endpoint) onAck(now time.Time, p *peer, m *Wire) {
	tx := p.pending[uint16(m.MessageID)]
	if tx == nil || !tx.started {
		e.stats.Duplicates++
		return
	}
	e.finish(now, tx, m, nil)
}

func (e *Endpoint) onReset(now time.Time, p *peer, mid uint16) {
	if tx := p.pending[mid]; tx != nil && tx.started {
		e.finish(now, tx, nil, ErrReset)
		return
	}
	// A Reset to a non-confirmable notification ends the observation
	// (RFC 7641 §3.6, §4.5).
	for tok, o := range p.observers {
		if o.sentNON(mid) {
			e.removeObserver(now, p, tok)
			return
		}
	}
}

// cloneMessage deep-copies options and payload out of a datagram buffer.
func cloneMessage(code codes.Code, opts message.Options, payload []byte) Message {
	m := Message{Code: code}
	if len(opts) > 0 {
		n := 0
		for _, o := range opts {
			n += len(o.Value)
		}
		buf := make([]byte, 0, n)
		m.Options = make(message.Options, 0, len(opts))
		for _, o := range opts {
			start := len(buf)
			buf = append(buf, o.Value...)
			m.Options = append(m.Options, message.Option{ID: o.ID, Value: buf[start:len(buf):len(buf)]})
		}
	}
	if len(payload) > 0 {
		m.Payload = append([]byte(nil), payload...)
	}
	return m
}

// requestKey identifies a request's target for block-wise state: method,
// Uri-Path and Uri-Query (RFC 7959 §2.4, §2.5 match blocks this way).
func requestKey(code codes.Code, opts message.Options) string {
	var b strings.Builder
	b.WriteByte(byte(code))
	for _, o := range opts {
		if o.ID == message.URIPath || o.ID == message.URIQuery || o.ID == message.URIHost || o.ID == message.RequestTag {
			b.WriteByte(byte(o.ID))
			b.WriteByte(byte(len(o.Value)))
			b.Write(o.Value)
		}
	}
	return b.String()
}
