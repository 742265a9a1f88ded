package noise

import (
	"bytes"
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	fnoise "github.com/flynn/noise"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// Endpoint is one node's Noise layer: its peer table, sessions, pending
// handshakes and denial-of-service state. It does no I/O and reads no
// clock: every method takes the current time, and datagrams to send are
// returned by Seal or queued for PollTransmit.
//
// An Endpoint is not safe for concurrent use; it belongs to the loop that
// owns the node. It never depends on Go's map order: Tick visits peers in
// name order, so its output is a function of its inputs and Config.Random.
type Endpoint[A Address] struct {
	cfg    Config[A]
	log    *slog.Logger
	static fnoise.DHKey
	sig    []byte // binding of our static key, by our signing key

	mac1Key, cookieKey         [32]byte // for message 1s sent to our static key
	anonMAC1Key, anonCookieKey [32]byte // for XX, where the initiator lacks our key

	jar     cookieJar
	global  tokenBucket
	sources map[A]*tokenBucket

	byName   map[string]*peer[A]
	ordered  []*peer[A] // the peers of byName sorted by name: Tick's deterministic order
	byStatic map[[32]byte]*peer[A]
	byHint   map[[hintLen]byte][]*peer[A]
	slots    map[uint16]slot[A]
	xxCount  int
	clients  int // peers accepted by Config.AcceptClients

	outbox []Transmit[A]
	events []Event
	stats  Stats
}

// Transmit is a datagram the caller must send.
type Transmit[A Address] struct {
	To   A
	Data []byte
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventEstablished: a new session with Peer is ready (after a
	// handshake, a rekey or a peer restart).
	EventEstablished EventKind = iota + 1
	// EventLearned: a peer not pinned before authenticated by trust on
	// first use or by its known signing key; persist NoiseKey/SigningKey.
	EventLearned
	// EventHandshakeFailed: HandshakeAttempts message 1s to Peer got no
	// answer; its queued plaintexts were dropped.
	EventHandshakeFailed
)

// Event reports a change the caller may act on.
type Event struct {
	Kind       EventKind
	Peer       string
	NoiseKey   []byte
	SigningKey ed25519.PublicKey
}

// Stats counts what the endpoint did. Drops are counted, not logged.
type Stats struct {
	Sealed, Opened                         uint64 // transport packets
	HandshakesStarted, HandshakesCompleted uint64
	CookiesSent                            uint64
	DropMalformed, DropUnknown, DropReplay uint64
	DropAuth, DropRefused, DropRateLimited uint64
}

type peer[A Address] struct {
	name    string
	static  [32]byte
	known   bool
	signing ed25519.PublicKey
	mutual  bool
	addr    A

	// cur sends; prev and next also receive. next is a session we answered
	// as responder while the initiator still had a working one (a rekey):
	// it becomes cur once a packet arrives on it (key confirmation).
	cur, prev, next *session[A]
	init            *initiation[A]
	queue           [][]byte

	cookie     [macLen]byte
	cookieAt   time.Time
	haveCookie bool

	lastTS, sentTS uint64    // message-1 timestamps received / sent
	client         bool      // accepted by Config.AcceptClients
	pinned         bool      // a key configured by Config.Peers or AddPeer
	heard          time.Time // last authenticated packet from the peer
	unanswered     time.Time // first send since the last authenticated receive
	keepaliveDue   time.Time // zero: none due
}

type session[A Address] struct {
	peer          *peer[A]
	local, remote uint16
	send, recv    cipher.AEAD
	sendCtr       uint64
	win           replayWindow
	created       time.Time
	initiator     bool
	sendNonce     [chacha20poly1305.NonceSize]byte
	recvNonce     [chacha20poly1305.NonceSize]byte
}

// initiation is a handshake we started and whose message 2 we await.
type initiation[A Address] struct {
	peer       *peer[A]
	index      uint16
	kind       byte // typeIK1, typeKK1 or typeXX1
	hs         *fnoise.HandshakeState
	mac1       [macLen]byte
	sentAt     time.Time
	attempts   int
	usedCookie bool
	rekey      bool // we still had a working session when we started
	// cfg, ePriv and payload reproduce the state after message 1 (rebuild).
	cfg     fnoise.Config
	ePriv   []byte
	payload []byte
}

// rebuild recreates the handshake state as it was right after message 1
// was written, replaying the same ephemeral key and payload.
func (in *initiation[A]) rebuild() error {
	cfg := in.cfg
	cfg.Random = bytes.NewReader(in.ePriv)
	hs, err := fnoise.NewHandshakeState(cfg)
	if err != nil {
		return fmt.Errorf("rebuild handshake: %w", err)
	}
	if _, _, _, err := hs.WriteMessage(nil, in.payload); err != nil {
		return fmt.Errorf("rebuild handshake: %w", err)
	}
	in.hs = hs
	return nil
}

// xxPending is an XX handshake we answered and whose message 3 we await.
type xxPending[A Address] struct {
	index, remote uint16
	hs            *fnoise.HandshakeState
	created       time.Time
}

type slot[A Address] struct {
	sess *session[A]
	init *initiation[A]
	xx   *xxPending[A]
}

// New makes an Endpoint from cfg.
func New[A Address](cfg Config[A]) (*Endpoint[A], error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("noise: new endpoint: %w", err)
	}
	if n := len(cfg.ServerName); n == 0 || n > 255 {
		return nil, fmt.Errorf("noise: new endpoint: server name of %d bytes, want 1–255", n)
	}
	if len(cfg.Static.Private) != keyLen || len(cfg.Static.Public) != keyLen {
		return nil, errors.New("noise: new endpoint: static key pair must be 32+32 bytes")
	}
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, errors.New("noise: new endpoint: missing ed25519 signing key")
	}
	if cfg.Random == nil {
		return nil, errors.New("noise: new endpoint: Random is required")
	}
	e := &Endpoint[A]{
		cfg:      cfg,
		log:      cfg.Logger,
		static:   fnoise.DHKey{Private: bytes.Clone(cfg.Static.Private), Public: bytes.Clone(cfg.Static.Public)},
		sources:  map[A]*tokenBucket{},
		byName:   map[string]*peer[A]{},
		byStatic: map[[32]byte]*peer[A]{},
		byHint:   map[[hintLen]byte][]*peer[A]{},
		slots:    map[uint16]slot[A]{},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.sig = SignBinding(cfg.ServerName, e.static.Public, cfg.SigningKey)
	e.mac1Key = deriveKey(labelMAC1, e.static.Public)
	e.cookieKey = deriveKey(labelCookie, e.static.Public)
	var zero [32]byte
	e.anonMAC1Key = deriveKey(labelMAC1, zero[:])
	e.anonCookieKey = deriveKey(labelCookie, zero[:])
	for _, p := range cfg.Peers {
		if err := e.AddPeer(p); err != nil {
			return nil, fmt.Errorf("noise: new endpoint: %w", err)
		}
	}
	return e, nil
}

// PublicKey returns our Noise static public key.
func (e *Endpoint[A]) PublicKey() []byte { return bytes.Clone(e.static.Public) }

// Binding returns the signature binding our Noise key to our server name.
func (e *Endpoint[A]) Binding() []byte { return bytes.Clone(e.sig) }

// Stats returns the counters.
func (e *Endpoint[A]) Stats() Stats { return e.stats }

// AddPeer pins a peer, or updates the address, signing key and Mutual flag
// of a pinned one. Changing a pinned Noise key requires RemovePeer first.
func (e *Endpoint[A]) AddPeer(p Peer[A]) error {
	if n := len(p.Name); n == 0 || n > 255 {
		return fmt.Errorf("add peer: server name of %d bytes, want 1–255", n)
	}
	if p.NoiseKey != nil && len(p.NoiseKey) != keyLen {
		return fmt.Errorf("add peer %q: noise key of %d bytes, want 32", p.Name, len(p.NoiseKey))
	}
	if p.SigningKey != nil && len(p.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("add peer %q: signing key of %d bytes, want 32", p.Name, len(p.SigningKey))
	}
	if bytes.Equal(p.NoiseKey, e.static.Public) {
		return fmt.Errorf("add peer %q: that is our own key", p.Name)
	}
	q := e.byName[p.Name]
	if q == nil {
		if p.NoiseKey != nil {
			if other := e.byStatic[[32]byte(p.NoiseKey)]; other != nil {
				return fmt.Errorf("add peer %q: key already pinned to %q", p.Name, other.name)
			}
		}
		q = &peer[A]{name: p.Name}
		e.insertPeer(q)
	} else if p.NoiseKey != nil && q.known && !bytes.Equal(q.static[:], p.NoiseKey) {
		return fmt.Errorf("add peer %q: already pinned to another key", p.Name)
	}
	var zero A
	if p.Addr != zero {
		q.addr = p.Addr
	}
	if p.SigningKey != nil {
		q.signing = bytes.Clone(p.SigningKey)
	}
	q.mutual = p.Mutual
	// A pin with an address alone authenticates nothing: the key is then
	// learned (trust on first use).
	q.pinned = q.pinned || p.NoiseKey != nil || p.SigningKey != nil
	if p.NoiseKey != nil && !q.known {
		e.learnStatic(q, [32]byte(p.NoiseKey))
	}
	return nil
}

// Pinned reports whether name is a server whose Noise key or signing key
// was configured through Config.Peers or AddPeer: false for a peer learned
// by trust on first use (also one pinned by address alone), for a client,
// and for a name not in the table. A session with
// a pinned peer proves the peer holds the key its operator configured.
func (e *Endpoint[A]) Pinned(name string) bool {
	p := e.byName[name]
	return p != nil && p.pinned && !p.client
}

// RemovePeer forgets a peer and its sessions.
func (e *Endpoint[A]) RemovePeer(name string) {
	p := e.byName[name]
	if p == nil {
		return
	}
	e.dropSession(p.cur)
	e.dropSession(p.prev)
	e.dropSession(p.next)
	if p.init != nil {
		delete(e.slots, p.init.index)
	}
	delete(e.byName, name)
	if p.client {
		e.clients--
	}
	if i, found := slices.BinarySearchFunc(e.ordered, name, comparePeerName); found {
		e.ordered = slices.Delete(e.ordered, i, i+1)
	}
	if p.known {
		delete(e.byStatic, p.static)
		h := kkHint(p.static[:], e.static.Public)
		list := e.byHint[h]
		for i, q := range list {
			if q == p {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(e.byHint, h)
		} else {
			e.byHint[h] = list
		}
	}
}

// insertPeer adds p to byName and to the name-sorted list that Tick walks.
// Go randomises map iteration; walking the map would make the order in
// which peers draw ephemeral keys and session indices from Config.Random
// differ between runs with the same seed.
func (e *Endpoint[A]) insertPeer(p *peer[A]) {
	e.byName[p.name] = p
	i, _ := slices.BinarySearchFunc(e.ordered, p.name, comparePeerName)
	e.ordered = slices.Insert(e.ordered, i, p)
}

func comparePeerName[A Address](p *peer[A], name string) int { return strings.Compare(p.name, name) }

func (e *Endpoint[A]) learnStatic(p *peer[A], static [32]byte) {
	p.static, p.known = static, true
	e.byStatic[static] = p
	h := kkHint(static[:], e.static.Public)
	e.byHint[h] = append(e.byHint[h], p)
}

// kkHint is the 4-byte hint by which a KK responder finds the initiator's
// static key before any DH: BLAKE2s-256("mxmesh kk hint" | si | sr)[:4].
func kkHint(initiator, responder []byte) [hintLen]byte {
	h, _ := blake2s.New256(nil)
	h.Write([]byte("mxmesh kk hint"))
	h.Write(initiator)
	h.Write(responder)
	var sum [32]byte
	h.Sum(sum[:0])
	return [hintLen]byte(sum[:hintLen])
}

// PollTransmit returns the next datagram to send, if any. Drain it after
// every call to Seal, Open and Tick.
func (e *Endpoint[A]) PollTransmit() (Transmit[A], bool) {
	if len(e.outbox) == 0 {
		return Transmit[A]{}, false
	}
	t := e.outbox[0]
	e.outbox[0] = Transmit[A]{}
	e.outbox = e.outbox[1:]
	if len(e.outbox) == 0 {
		e.outbox = e.outbox[:0:0]
	}
	return t, true
}

// PollEvent returns the next event, if any.
func (e *Endpoint[A]) PollEvent() (Event, bool) {
	if len(e.events) == 0 {
		return Event{}, false
	}
	ev := e.events[0]
	e.events = e.events[1:]
	return ev, true
}

func (e *Endpoint[A]) transmit(to A, data []byte) {
	e.outbox = append(e.outbox, Transmit[A]{To: to, Data: data})
}

// Seal encrypts plaintext for the named peer and appends the datagram to
// dst; send it to the returned address. With an established session this
// is the zero-allocation steady path. Without one, Seal starts a handshake
// and returns its message 1 (carrying plaintext as early data for IK and
// KK). While a handshake is in flight, plaintext is queued, to be sent when
// it completes (drain PollTransmit), and Seal returns dst unchanged.
func (e *Endpoint[A]) Seal(dst []byte, now time.Time, peerName string, plaintext []byte) ([]byte, A, error) {
	var zero A
	p := e.byName[peerName]
	if p == nil {
		return dst, zero, fmt.Errorf("seal for %q: %w", peerName, ErrUnknownPeer)
	}
	if (p.cur == nil || !e.sendable(p.cur, now)) && p.next != nil {
		e.promote(p, now)
	}
	if s := p.cur; s != nil && e.sendable(s, now) {
		if s.sendCtr >= rekeyAfterMessages && p.init == nil {
			e.startInitiation(p, now)
		}
		out := e.sealTransport(dst, s, plaintext)
		e.noteSent(p, now, plaintext)
		return out, p.addr, nil
	}
	if p.init != nil {
		return dst, zero, e.enqueue(p, plaintext)
	}
	if p.addr == zero {
		return dst, zero, fmt.Errorf("seal for %q: no address known: %w", peerName, ErrUnknownPeer)
	}
	if !p.known {
		// XX: message 1 is cleartext and cannot carry data; queue it.
		out, err := e.buildInitiation(dst, p, now, nil)
		if err != nil {
			return dst, zero, fmt.Errorf("seal for %q: %w", peerName, err)
		}
		return out, p.addr, e.enqueue(p, plaintext)
	}
	out, err := e.buildInitiation(dst, p, now, plaintext)
	if err != nil {
		return dst, zero, fmt.Errorf("seal for %q: %w", peerName, err)
	}
	return out, p.addr, nil
}

func (e *Endpoint[A]) enqueue(p *peer[A], plaintext []byte) error {
	if len(p.queue) >= e.cfg.MaxQueued {
		return fmt.Errorf("seal for %q: %d plaintexts already queued behind the handshake: %w", p.name, len(p.queue), ErrSessionExhausted)
	}
	p.queue = append(p.queue, bytes.Clone(plaintext))
	return nil
}

func (e *Endpoint[A]) sendable(s *session[A], now time.Time) bool {
	return s.sendCtr < rejectAfterMessages && now.Sub(s.created) < e.cfg.RejectAfter
}

// noteSent records a packet sent to p: the peer owes an answer unless
// Config.ExpectsReply says none comes; we owe no keepalive any more.
func (e *Endpoint[A]) noteSent(p *peer[A], now time.Time, plaintext []byte) {
	if p.unanswered.IsZero() && e.expectsReply(plaintext) {
		p.unanswered = now
	}
	p.keepaliveDue = time.Time{}
}

func (e *Endpoint[A]) expectsReply(plaintext []byte) bool {
	return e.cfg.ExpectsReply == nil || e.cfg.ExpectsReply(plaintext)
}

// sealTransport appends header | ciphertext | tag, the header being the
// associated data (RFC 8439 §2.8).
func (e *Endpoint[A]) sealTransport(dst []byte, s *session[A], plaintext []byte) []byte {
	start := len(dst)
	dst = appendTransportHeader(dst, s.remote, s.sendCtr)
	binary.LittleEndian.PutUint64(s.sendNonce[4:], s.sendCtr)
	s.sendCtr++
	e.stats.Sealed++
	return s.send.Seal(dst, s.sendNonce[:], plaintext, dst[start:])
}

// startInitiation builds a message 1 for p into the outbox, logging failure.
func (e *Endpoint[A]) startInitiation(p *peer[A], now time.Time) {
	var zero A
	if p.addr == zero {
		return
	}
	msg, err := e.buildInitiation(nil, p, now, nil)
	if err != nil {
		e.log.Debug("noise: cannot start handshake", "peer", p.name, "err", err)
		return
	}
	e.transmit(p.addr, msg)
}

// buildInitiation appends a message 1 to dst and records the initiation:
//
//	IK: type | sender index | e | enc(s) | enc(timestamp | binding | early data) | mac1 [| mac2]
//	KK: type | sender index | hint | e | enc(timestamp | early data)           | mac1 [| mac2]
//	XX: type | sender index | e | zero padding                                  | mac1 [| mac2]
func (e *Endpoint[A]) buildInitiation(dst []byte, p *peer[A], now time.Time, early []byte) ([]byte, error) {
	kind := typeXX1
	var pattern fnoise.HandshakePattern
	switch {
	case p.known && p.mutual:
		kind, pattern = typeKK1, fnoise.HandshakeKK
	case p.known:
		kind, pattern = typeIK1, fnoise.HandshakeIK
	case e.cfg.TrustOnFirstUse || p.signing != nil:
		pattern = fnoise.HandshakeXX
	default:
		return dst, fmt.Errorf("start handshake with %q: no noise key and trust on first use is off: %w", p.name, ErrUnknownPeer)
	}
	attempts := 1
	if p.init != nil {
		attempts = p.init.attempts + 1
		delete(e.slots, p.init.index)
		p.init = nil
	}
	idx, err := e.allocIndex()
	if err != nil {
		return dst, err
	}
	cfg := fnoise.Config{CipherSuite: suite, Random: e.cfg.Random, Pattern: pattern, Initiator: true,
		Prologue: prologue, StaticKeypair: e.static}
	if p.known {
		cfg.PeerStatic = p.static[:]
	}
	hs, err := fnoise.NewHandshakeState(cfg)
	if err != nil {
		return dst, fmt.Errorf("start handshake with %q: %w", p.name, err)
	}
	rekey := p.cur != nil && e.sendable(p.cur, now)
	useCookie := p.haveCookie && now.Sub(p.cookieAt) < cookieUseFor && !now.Before(p.cookieAt)
	start := len(dst)
	t := kind
	if useCookie {
		t |= flagMAC2
	}
	dst = append(dst, t)
	dst = putIndex(dst, idx)
	var payload []byte
	switch kind {
	case typeIK1:
		payload = e.appendTimestamp(nil, p, now, rekey)
		payload = appendBinding(payload, e.cfg.ServerName, e.cfg.SigningKey.Public().(ed25519.PublicKey), e.sig)
		payload = append(payload, early...)
	case typeKK1:
		h := kkHint(e.static.Public, p.static[:])
		dst = append(dst, h[:]...)
		payload = e.appendTimestamp(nil, p, now, rekey)
		payload = append(payload, early...)
	case typeXX1:
		payload = make([]byte, xx1PadLen)
	}
	dst, _, _, err = hs.WriteMessage(dst, payload)
	if err != nil {
		return dst[:start], fmt.Errorf("start handshake with %q: %w", p.name, err)
	}
	key := &e.anonMAC1Key
	if p.known {
		k := deriveKey(labelMAC1, p.static[:])
		key = &k
	}
	in := &initiation[A]{peer: p, index: idx, kind: kind, hs: hs, sentAt: now, attempts: attempts, usedCookie: useCookie, rekey: rekey,
		cfg: cfg, ePriv: hs.LocalEphemeral().Private, payload: payload}
	in.mac1 = mac128(key[:], dst[start:])
	dst = append(dst, in.mac1[:]...)
	if useCookie {
		m2 := mac128(p.cookie[:], dst[start:])
		dst = append(dst, m2[:]...)
	}
	e.slots[idx] = slot[A]{init: in}
	p.init = in
	e.stats.HandshakesStarted++
	return dst, nil
}

// appendTimestamp appends the message-1 timestamp: Unix nanoseconds in
// the low 63 bits, strictly increasing per peer, and in the top bit the
// rekey flag (we still hold a working session with the peer).
func (e *Endpoint[A]) appendTimestamp(dst []byte, p *peer[A], now time.Time, rekey bool) []byte {
	ts := uint64(now.UnixNano()) &^ rekeyFlag
	if ts <= p.sentTS {
		ts = p.sentTS + 1
	}
	p.sentTS = ts
	if rekey {
		ts |= rekeyFlag
	}
	return binary.BigEndian.AppendUint64(dst, ts)
}

const rekeyFlag = 1 << 63

// allocIndex picks a free random session index, preferring the one-byte
// range.
func (e *Endpoint[A]) allocIndex() (uint16, error) {
	var b [2]byte
	for try := 0; try < 40; try++ {
		if _, err := io.ReadFull(e.cfg.Random, b[:]); err != nil {
			return 0, fmt.Errorf("allocate session index: %w", err)
		}
		i := binary.BigEndian.Uint16(b[:]) & maxIndex
		if try < 8 {
			i &= shortIndexMax
		}
		if _, used := e.slots[i]; !used {
			return i, nil
		}
	}
	for i := uint16(0); i <= maxIndex; i++ {
		if _, used := e.slots[i]; !used {
			return i, nil
		}
	}
	return 0, errors.New("allocate session index: all in use")
}

// Open processes one received datagram from address from. It returns the
// plaintext appended to dst and the name of the peer that sent it; an
// empty name means the datagram carried nothing to deliver (a handshake
// message without early data, a cookie reply, a keepalive). Replies it
// causes are queued for PollTransmit. Errors wrap ErrMalformed,
// ErrUnknownSession, ErrReplay, ErrAuth, ErrRefused, ErrRateLimited or
// ErrCookieSent; the datagram is then dropped and counted.
func (e *Endpoint[A]) Open(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	out, name, err := e.open(dst, now, from, pkt)
	if err != nil {
		e.countDrop(err)
		return dst, "", err
	}
	return out, name, nil
}

func (e *Endpoint[A]) countDrop(err error) {
	switch {
	case errors.Is(err, ErrMalformed):
		e.stats.DropMalformed++
	case errors.Is(err, ErrUnknownSession):
		e.stats.DropUnknown++
	case errors.Is(err, ErrReplay):
		e.stats.DropReplay++
	case errors.Is(err, ErrAuth):
		e.stats.DropAuth++
	case errors.Is(err, ErrRefused):
		e.stats.DropRefused++
	case errors.Is(err, ErrRateLimited):
		e.stats.DropRateLimited++
	}
}

func (e *Endpoint[A]) open(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	if len(pkt) == 0 {
		return dst, "", fmt.Errorf("open: empty datagram: %w", ErrMalformed)
	}
	t := pkt[0]
	if t < 0xC0 {
		return e.openTransport(dst, now, from, pkt)
	}
	switch t {
	case typeIK1, typeKK1, typeXX1, typeIK1 | flagMAC2, typeKK1 | flagMAC2, typeXX1 | flagMAC2:
		return e.openInitiation(dst, now, from, pkt)
	case typeIK2, typeKK2, typeXX2:
		return e.openResponse(dst, now, from, pkt)
	case typeXX3:
		return e.openXX3(dst, now, from, pkt)
	case typeCookie:
		return dst, "", e.openCookie(now, pkt)
	}
	return dst, "", fmt.Errorf("open: unknown type 0x%02x: %w", t, ErrMalformed)
}

func (e *Endpoint[A]) openTransport(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	idx, trunc, bits, n, err := parseTransportHeader(pkt)
	if err != nil {
		return dst, "", fmt.Errorf("open transport: %w", err)
	}
	s := e.slots[idx].sess
	if s == nil || now.Sub(s.created) >= e.cfg.RejectAfter {
		return dst, "", fmt.Errorf("open transport: index %d: %w", idx, ErrUnknownSession)
	}
	ctr := reconstructCounter(s.win.next(), trunc, bits)
	if !s.win.check(ctr) {
		return dst, "", fmt.Errorf("open transport: counter %d: %w", ctr, ErrReplay)
	}
	binary.LittleEndian.PutUint64(s.recvNonce[4:], ctr)
	out, err := s.recv.Open(dst, s.recvNonce[:], pkt[n:], pkt[:n])
	if err != nil {
		return dst, "", fmt.Errorf("open transport: counter %d: %w", ctr, ErrAuth)
	}
	s.win.update(ctr)
	e.stats.Opened++
	p := s.peer
	if s == p.next {
		e.promote(p, now)
	}
	p.addr = from // roaming: follow the peer's authenticated address
	p.unanswered = time.Time{}
	p.heard = now
	if len(out) == len(dst) {
		return out, "", nil // keepalive
	}
	if e.cfg.KeepaliveTimeout > 0 && p.keepaliveDue.IsZero() && e.expectsReply(out[len(dst):]) {
		p.keepaliveDue = now.Add(e.cfg.KeepaliveTimeout)
	}
	return out, p.name, nil
}
