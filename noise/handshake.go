package noise

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	fnoise "github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"
)

// Minimum sizes of handshake messages, without mac1/mac2.
const (
	minIK1  = 3 + keyLen + (keyLen + tagLen) + timestampLen + 2 + ed25519.PublicKeySize + ed25519.SignatureSize + tagLen
	minKK1  = 3 + hintLen + keyLen + timestampLen + tagLen
	lenXX1  = 3 + keyLen + xx1PadLen
	minMsg2 = 5 + keyLen + tagLen
	minXX2  = 5 + keyLen + (keyLen + tagLen) + 2 + ed25519.PublicKeySize + ed25519.SignatureSize + tagLen
	minXX3  = 3 + (keyLen + tagLen) + 2 + ed25519.PublicKeySize + ed25519.SignatureSize + tagLen
)

// openInitiation handles a message 1 (we are the responder). Order of
// checks, cheapest first: length and type, mac1 (one BLAKE2s), cookie when
// under load or when the answer would be larger than the request, the
// per-source rate limit, and only then the DH operations.
func (e *Endpoint[A]) openInitiation(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	kind, hasMAC2 := pkt[0]&^flagMAC2, pkt[0]&flagMAC2 != 0
	macs := macLen
	if hasMAC2 {
		macs += macLen
	}
	min := lenXX1
	switch kind {
	case typeIK1:
		min = minIK1
	case typeKK1:
		min = minKK1
	}
	if len(pkt) < min+macs || (kind == typeXX1 && len(pkt) != min+macs) {
		return dst, "", fmt.Errorf("open message 1: %d bytes: %w", len(pkt), ErrMalformed)
	}
	macOff := len(pkt) - macs
	body := pkt[:macOff]
	mac1Key, cookieKey := &e.mac1Key, &e.cookieKey
	if kind == typeXX1 {
		mac1Key, cookieKey = &e.anonMAC1Key, &e.anonCookieKey
	}
	m1 := mac128(mac1Key[:], body)
	if !macEqual(m1[:], pkt[macOff:macOff+macLen]) {
		return dst, "", fmt.Errorf("open message 1: mac1: %w", ErrAuth)
	}
	if err := e.jar.rotate(now, e.cfg.Random); err != nil {
		return dst, "", fmt.Errorf("open message 1: %w", err)
	}
	addr, err := from.AppendBinary(nil)
	if err != nil {
		return dst, "", fmt.Errorf("open message 1: source address: %w", ErrMalformed)
	}
	loaded := !e.global.take(now, e.cfg.HandshakeRate, 2*e.cfg.HandshakeRate)
	proven := false
	if hasMAC2 {
		c := e.jar.cookie(addr)
		m2 := mac128(c[:], pkt[:macOff+macLen])
		proven = macEqual(m2[:], pkt[macOff+macLen:])
	}
	// XX message 2 is larger than message 1, so XX always needs a proven
	// source address: never answer an unauthenticated datagram with more
	// bytes than it carried.
	if (loaded || kind == typeXX1) && !proven {
		c := e.jar.cookie(addr)
		reply, err := sealCookieReply(nil, getIndex(pkt[1:3]), cookieKey, c[:], m1[:], e.cfg.Random)
		if err != nil {
			return dst, "", fmt.Errorf("open message 1: %w", err)
		}
		if len(reply) <= len(pkt) {
			e.transmit(from, reply)
			e.stats.CookiesSent++
		}
		return dst, "", fmt.Errorf("open message 1 from an unproven source: %w", ErrCookieSent)
	}
	if !e.allowSource(from, now) {
		return dst, "", fmt.Errorf("open message 1: %w", ErrRateLimited)
	}
	remote := getIndex(pkt[1:3])
	switch kind {
	case typeIK1:
		return e.respondIK(dst, now, from, body, remote)
	case typeKK1:
		return e.respondKK(dst, now, from, body, remote)
	default:
		return dst, "", e.respondXX(now, from, body, remote)
	}
}

// allowSource takes a token from the source's bucket.
func (e *Endpoint[A]) allowSource(from A, now time.Time) bool {
	b := e.sources[from]
	if b == nil {
		if len(e.sources) >= maxSources {
			// Deletes every full bucket: the outcome does not depend
			// on the (random) map order.
			for a, old := range e.sources {
				if old.full(now, e.cfg.SourceRate, 2*e.cfg.SourceRate) {
					delete(e.sources, a)
				}
			}
			if len(e.sources) >= maxSources {
				return false
			}
		}
		b = &tokenBucket{}
		e.sources[from] = b
	}
	return b.take(now, e.cfg.SourceRate, 2*e.cfg.SourceRate)
}

func (e *Endpoint[A]) responder(pattern fnoise.HandshakePattern, peerStatic []byte) (*fnoise.HandshakeState, error) {
	return fnoise.NewHandshakeState(fnoise.Config{CipherSuite: suite, Random: e.cfg.Random, Pattern: pattern,
		Prologue: prologue, StaticKeypair: e.static, PeerStatic: peerStatic})
}

func (e *Endpoint[A]) respondIK(dst []byte, now time.Time, from A, body []byte, remote uint16) ([]byte, string, error) {
	hs, err := e.responder(fnoise.HandshakeIK, nil)
	if err != nil {
		return dst, "", fmt.Errorf("open IK message 1: %w", err)
	}
	payload, _, _, err := hs.ReadMessage(nil, body[3:])
	if err != nil {
		return dst, "", fmt.Errorf("open IK message 1: %v: %w", err, ErrAuth)
	}
	ts := binary.BigEndian.Uint64(payload)
	b, early, err := parseBinding(payload[timestampLen:])
	if err != nil {
		return dst, "", fmt.Errorf("open IK message 1: %w", err)
	}
	p, err := e.authorize([32]byte(hs.PeerStatic()), &b)
	if err != nil {
		return dst, "", fmt.Errorf("open IK message 1: %w", err)
	}
	return e.acceptFresh(dst, now, from, p, hs, ts, early, remote, typeIK2)
}

func (e *Endpoint[A]) respondKK(dst []byte, now time.Time, from A, body []byte, remote uint16) ([]byte, string, error) {
	cands := e.byHint[[hintLen]byte(body[3:7])]
	if len(cands) > maxKKHintPeers {
		cands = cands[:maxKKHintPeers]
	}
	for _, p := range cands {
		hs, err := e.responder(fnoise.HandshakeKK, p.static[:])
		if err != nil {
			return dst, "", fmt.Errorf("open KK message 1: %w", err)
		}
		payload, _, _, err := hs.ReadMessage(nil, body[3+hintLen:])
		if err != nil {
			continue
		}
		ts := binary.BigEndian.Uint64(payload)
		return e.acceptFresh(dst, now, from, p, hs, ts, payload[timestampLen:], remote, typeKK2)
	}
	return dst, "", fmt.Errorf("open KK message 1: no pinned key matches: %w", ErrAuth)
}

// acceptFresh finishes an IK or KK responder handshake whose message 1
// authenticated peer p: it refuses replays by timestamp, answers with
// message 2 and installs the session.
func (e *Endpoint[A]) acceptFresh(dst []byte, now time.Time, from A, p *peer[A], hs *fnoise.HandshakeState,
	ts uint64, early []byte, remote uint16, replyType byte) ([]byte, string, error) {
	rekey := ts&rekeyFlag != 0
	ts &^= rekeyFlag
	if ts <= p.lastTS {
		return dst, "", fmt.Errorf("open message 1 from %q: timestamp not newer than the last one: %w", p.name, ErrReplay)
	}
	p.lastTS = ts
	p.heard = now
	if p.init != nil && bytes.Compare(e.static.Public, p.static[:]) > 0 {
		// Both sides started a handshake at once; the side with the
		// greater static key keeps its own and ignores the other's. The
		// early data is still delivered, and our message 1 is re-sent at
		// once if it went to an address the peer no longer uses.
		if p.addr != from {
			p.addr = from
			e.startInitiation(p, now)
		}
		return e.deliver(dst, p, early)
	}
	idx, err := e.allocIndex()
	if err != nil {
		return dst, "", fmt.Errorf("answer message 1: %w", err)
	}
	msg := append([]byte{replyType}, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(msg[1:], idx)
	binary.BigEndian.PutUint16(msg[3:], remote)
	msg, cs1, cs2, err := hs.WriteMessage(msg, nil)
	if err != nil {
		return dst, "", fmt.Errorf("answer message 1: %w", err)
	}
	e.transmit(from, msg)
	// On a rekey the initiator can still read our current session, and
	// message 2 may be lost: keep sending on the current one until the
	// new one is confirmed. Otherwise (first contact, or the initiator
	// restarted) switch at once, so a reply to the early data reaches it.
	deferSwitch := rekey && p.cur != nil && e.sendable(p.cur, now)
	if err := e.install(p, now, from, idx, remote, cs2, cs1, false, deferSwitch); err != nil {
		return dst, "", err
	}
	return e.deliver(dst, p, early)
}

func (e *Endpoint[A]) deliver(dst []byte, p *peer[A], data []byte) ([]byte, string, error) {
	if len(data) == 0 {
		return dst, "", nil
	}
	return append(dst, data...), p.name, nil
}

func (e *Endpoint[A]) respondXX(now time.Time, from A, body []byte, remote uint16) error {
	if e.xxCount >= maxPendingXX {
		e.expireXX(now)
		if e.xxCount >= maxPendingXX {
			return fmt.Errorf("open XX message 1: %d handshakes pending: %w", e.xxCount, ErrRateLimited)
		}
	}
	hs, err := e.responder(fnoise.HandshakeXX, nil)
	if err != nil {
		return fmt.Errorf("open XX message 1: %w", err)
	}
	if _, _, _, err := hs.ReadMessage(nil, body[3:]); err != nil {
		return fmt.Errorf("open XX message 1: %v: %w", err, ErrAuth)
	}
	idx, err := e.allocIndex()
	if err != nil {
		return fmt.Errorf("answer XX message 1: %w", err)
	}
	msg := append([]byte{typeXX2}, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(msg[1:], idx)
	binary.BigEndian.PutUint16(msg[3:], remote)
	msg, _, _, err = hs.WriteMessage(msg, e.ownBinding())
	if err != nil {
		return fmt.Errorf("answer XX message 1: %w", err)
	}
	e.transmit(from, msg)
	e.slots[idx] = slot[A]{xx: &xxPending[A]{index: idx, remote: remote, hs: hs, created: now}}
	e.xxCount++
	return nil
}

func (e *Endpoint[A]) ownBinding() []byte {
	return appendBinding(nil, e.cfg.ServerName, e.cfg.SigningKey.Public().(ed25519.PublicKey), e.sig)
}

// expireXX forgets XX handshakes whose message 3 is overdue.
func (e *Endpoint[A]) expireXX(now time.Time) {
	// In index order, so that a run is reproducible even if expiry ever
	// grows a side effect (it has none today besides the deletion).
	for _, i := range slices.Sorted(maps.Keys(e.slots)) {
		if s := e.slots[i]; s.xx != nil && now.Sub(s.xx.created) >= e.cfg.HandshakeTimeout {
			delete(e.slots, i)
			e.xxCount--
		}
	}
}

// openXX3 handles XX message 3: type | receiver index | enc(s) | enc(binding | early data).
func (e *Endpoint[A]) openXX3(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	if len(pkt) < minXX3 {
		return dst, "", fmt.Errorf("open XX message 3: %d bytes: %w", len(pkt), ErrMalformed)
	}
	idx := getIndex(pkt[1:3])
	x := e.slots[idx].xx
	if x == nil {
		return dst, "", fmt.Errorf("open XX message 3: index %d: %w", idx, ErrUnknownSession)
	}
	payload, cs1, cs2, err := x.hs.ReadMessage(nil, pkt[3:])
	if err != nil {
		return dst, "", fmt.Errorf("open XX message 3: %v: %w", err, ErrAuth)
	}
	delete(e.slots, idx)
	e.xxCount--
	b, early, err := parseBinding(payload)
	if err != nil {
		return dst, "", fmt.Errorf("open XX message 3: %w", err)
	}
	p, err := e.authorize([32]byte(x.hs.PeerStatic()), &b)
	if err != nil {
		return dst, "", fmt.Errorf("open XX message 3: %w", err)
	}
	if err := e.install(p, now, from, idx, x.remote, cs2, cs1, false, false); err != nil {
		return dst, "", err
	}
	return e.deliver(dst, p, early)
}

// openResponse handles message 2 of IK, KK or XX (we are the initiator):
// type | sender index | receiver index | noise message.
func (e *Endpoint[A]) openResponse(dst []byte, now time.Time, from A, pkt []byte) ([]byte, string, error) {
	if len(pkt) < minMsg2 || (pkt[0] == typeXX2 && len(pkt) < minXX2) {
		return dst, "", fmt.Errorf("open message 2: %d bytes: %w", len(pkt), ErrMalformed)
	}
	remote, idx := getIndex(pkt[1:3]), getIndex(pkt[3:5])
	in := e.slots[idx].init
	if in == nil || in.kind+3 != pkt[0] {
		return dst, "", fmt.Errorf("open message 2: index %d: %w", idx, ErrUnknownSession)
	}
	p := in.peer
	payload, cs1, cs2, err := in.hs.ReadMessage(nil, pkt[5:])
	if err != nil {
		// A forged message 2 may have left the handshake state half
		// updated; rebuild it from the recorded message 1.
		if rerr := in.rebuild(); rerr != nil {
			delete(e.slots, idx)
			p.init = nil
		}
		return dst, "", fmt.Errorf("open message 2 from %q: %v: %w", p.name, err, ErrAuth)
	}
	if pkt[0] == typeXX2 {
		b, _, err := parseBinding(payload)
		if err != nil {
			return dst, "", e.abandon(in, fmt.Errorf("open XX message 2: %w", err))
		}
		if b.name != p.name {
			return dst, "", e.abandon(in, fmt.Errorf("open XX message 2: responder is %q, not %q: %w", b.name, p.name, ErrRefused))
		}
		q, err := e.authorize([32]byte(in.hs.PeerStatic()), &b)
		if err != nil {
			return dst, "", e.abandon(in, fmt.Errorf("open XX message 2: %w", err))
		}
		if q != p {
			return dst, "", e.abandon(in, fmt.Errorf("open XX message 2: %w", ErrRefused))
		}
		msg := putIndex([]byte{typeXX3}, remote)
		msg, cs1, cs2, err = in.hs.WriteMessage(msg, e.ownBinding())
		if err != nil {
			return dst, "", e.abandon(in, fmt.Errorf("answer XX message 2: %w", err))
		}
		e.transmit(from, msg)
	}
	confirm := in.rekey && len(p.queue) == 0
	if err := e.install(p, now, from, idx, remote, cs1, cs2, true, false); err != nil {
		return dst, "", err
	}
	if confirm {
		// Confirm the new keys at once so the responder switches to them
		// (it keeps the old session for sending until then).
		e.confirm(p, now)
	}
	return dst, "", nil
}

// abandon drops an initiation whose responder was refused.
func (e *Endpoint[A]) abandon(in *initiation[A], err error) error {
	delete(e.slots, in.index)
	if in.peer.init == in {
		in.peer.init = nil
	}
	in.peer.queue = nil
	return err
}

// openCookie handles a cookie reply to one of our message 1s.
func (e *Endpoint[A]) openCookie(now time.Time, pkt []byte) error {
	if len(pkt) != cookieReplyLen {
		return fmt.Errorf("open cookie reply: %d bytes: %w", len(pkt), ErrMalformed)
	}
	idx := getIndex(pkt[1:3])
	in := e.slots[idx].init
	if in == nil {
		return fmt.Errorf("open cookie reply: index %d: %w", idx, ErrUnknownSession)
	}
	p := in.peer
	key := &e.anonCookieKey
	if in.kind != typeXX1 {
		k := deriveKey(labelCookie, p.static[:])
		key = &k
	}
	c, err := openCookieReply(pkt, key, in.mac1[:])
	if err != nil {
		return err
	}
	p.cookie, p.cookieAt, p.haveCookie = c, now, true
	if !in.usedCookie {
		// Retry at once with the cookie: the source address is now proven.
		attempts := in.attempts
		e.startInitiation(p, now)
		if p.init != nil {
			p.init.attempts = attempts
		}
	}
	return nil
}

// authorize decides whether static, presenting binding b (nil in KK), is
// an acceptable peer, and returns it. Rules: the binding signature must
// verify; a pinned key must come with its pinned name and signing key; an
// unpinned key is accepted only if its name is not pinned to another key
// and either trust on first use is on or the name's signing key is known
// (and signed the binding). Accepted unpinned keys are learned.
func (e *Endpoint[A]) authorize(static [32]byte, b *binding) (*peer[A], error) {
	if bytes.Equal(static[:], e.static.Public) {
		return nil, fmt.Errorf("peer presented our own static key: %w", ErrRefused)
	}
	if !VerifyBinding(b.name, static[:], b.signing, b.sig) {
		return nil, fmt.Errorf("identity binding of %q does not verify: %w", b.name, ErrRefused)
	}
	if strings.HasPrefix(b.name, ClientPrefix) {
		// A client declares itself so; it is known by its key alone.
		if !e.cfg.AcceptClients {
			return nil, fmt.Errorf("client %s: clients are not accepted: %w", ClientName(static[:]), ErrRefused)
		}
		if p := e.byStatic[static]; p != nil {
			if !p.client {
				return nil, fmt.Errorf("key pinned to %q presented as a client: %w", p.name, ErrRefused)
			}
			return p, nil
		}
		return e.addClient(static)
	}
	if p := e.byStatic[static]; p != nil {
		if p.client {
			return nil, fmt.Errorf("client key %s presented as %q: %w", p.name, b.name, ErrRefused)
		}
		if b.name != p.name {
			return nil, fmt.Errorf("key pinned to %q presented as %q: %w", p.name, b.name, ErrRefused)
		}
		if p.signing != nil && !bytes.Equal(p.signing, b.signing) {
			return nil, fmt.Errorf("%q: signing key differs from the pinned one: %w", p.name, ErrRefused)
		}
		return p, nil
	}
	p := e.byName[b.name]
	switch {
	case p != nil && p.known:
		return nil, fmt.Errorf("%q: noise key differs from the pinned one: %w", b.name, ErrRefused)
	case p != nil && p.signing != nil:
		if !bytes.Equal(p.signing, b.signing) {
			return nil, fmt.Errorf("%q: signing key differs from the pinned one: %w", b.name, ErrRefused)
		}
	case !e.cfg.TrustOnFirstUse:
		return nil, fmt.Errorf("%q is not pinned and trust on first use is off: %w", b.name, ErrRefused)
	}
	if p == nil {
		p = &peer[A]{name: b.name}
		e.insertPeer(p)
	}
	p.signing = bytes.Clone(b.signing)
	e.learnStatic(p, static)
	e.events = append(e.events, Event{Kind: EventLearned, Peer: p.name, NoiseKey: bytes.Clone(static[:]), SigningKey: bytes.Clone(p.signing)})
	e.log.Info("noise: learned peer key", "peer", p.name)
	return p, nil
}

// install makes a completed handshake the peer's current session, keeps
// the previous one for packets still in flight, and flushes the queue.
// With deferSwitch the new session only receives, as next, until promote.
func (e *Endpoint[A]) install(p *peer[A], now time.Time, from A, local, remote uint16, send, recv *fnoise.CipherState, initiator, deferSwitch bool) error {
	sk, rk := send.UnsafeKey(), recv.UnsafeKey()
	sa, err := chacha20poly1305.New(sk[:])
	if err != nil {
		return fmt.Errorf("install session: %w", err)
	}
	ra, err := chacha20poly1305.New(rk[:])
	if err != nil {
		return fmt.Errorf("install session: %w", err)
	}
	s := &session[A]{peer: p, local: local, remote: remote, send: sa, recv: ra, created: now, initiator: initiator}
	if in := p.init; in != nil && in.index != local {
		// We answered the peer's handshake while ours was in flight and
		// ours loses the tie-break (see acceptFresh): drop ours.
		delete(e.slots, in.index)
		p.init = nil
	}
	if initiator {
		p.init = nil
	}
	e.slots[local] = slot[A]{sess: s}
	p.addr = from
	e.stats.HandshakesCompleted++
	e.dropSession(p.next)
	p.next = nil
	if deferSwitch {
		p.next = s
		return nil
	}
	e.dropSession(p.prev)
	p.prev, p.cur = p.cur, s
	e.switched(p, now)
	return nil
}

// promote makes the confirmed next session current.
func (e *Endpoint[A]) promote(p *peer[A], now time.Time) {
	e.dropSession(p.prev)
	p.prev, p.cur, p.next = p.cur, p.next, nil
	e.switched(p, now)
}

// switched reports a new current session and sends what was queued.
func (e *Endpoint[A]) switched(p *peer[A], now time.Time) {
	p.unanswered, p.keepaliveDue = time.Time{}, time.Time{}
	e.events = append(e.events, Event{Kind: EventEstablished, Peer: p.name, NoiseKey: bytes.Clone(p.static[:])})
	e.log.Debug("noise: session established", "peer", p.name, "initiator", p.cur.initiator)
	for _, q := range p.queue {
		e.transmit(p.addr, e.sealTransport(nil, p.cur, q))
		e.noteSent(p, now, q)
	}
	p.queue = nil
}

// confirm sends an empty packet on the current session.
func (e *Endpoint[A]) confirm(p *peer[A], now time.Time) {
	if s := p.cur; s != nil && e.sendable(s, now) {
		e.transmit(p.addr, e.sealTransport(nil, s, nil))
	}
}

func (e *Endpoint[A]) dropSession(s *session[A]) {
	if s != nil && e.slots[s.local].sess == s {
		delete(e.slots, s.local)
	}
}
