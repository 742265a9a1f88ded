package noise

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// establish runs a handshake a→b and one packet each way.
func establish(t testing.TB, nw *network, a, b *node) {
	t.Helper()
	if err := nw.send(a, b.id.name, "syn"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if err := nw.send(b, a.id.name, "ack"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	a.got, b.got, a.errs, b.errs = nil, nil, nil, nil
}

func TestBudgets(t *testing.T) {
	nw, a, b := pair(t, false)
	nw.send(a, "b.example", "")
	payload := timestampLen + bindingLen(len("a.example"))
	if got, want := nw.sizes[0], 3+96+macLen+payload; got != want {
		t.Errorf("IK message 1: %d bytes, want %d", got, want)
	}
	if base := nw.sizes[0] - payload; base > 144 || base+macLen > 144 {
		t.Errorf("IK message 1 without payload: %d bytes (+%d with cookie), budget 144", base, macLen)
	}
	nw.run()
	if got := nw.sizes[1]; got != 5+keyLen+tagLen {
		t.Errorf("IK message 2: %d bytes", got)
	}

	nw2, c, d := pair(t, true)
	nw2.send(c, "b.example", "")
	if got, want := nw2.sizes[0], 3+hintLen+keyLen+tagLen+macLen+timestampLen; got != want {
		t.Errorf("KK message 1: %d bytes, want %d", got, want)
	}
	if base := nw2.sizes[0] - timestampLen; base+macLen > 96 {
		t.Errorf("KK message 1 without payload: %d bytes (+%d with cookie), budget 96", base, macLen)
	}
	nw2.run()
	_ = d

	// Per-packet overhead (header + counter + tag) at realistic counters.
	s := b.ep.byName["a.example"].cur
	for _, tc := range []struct {
		ctr   uint64
		index uint16
		want  int
	}{{0, 5, 18}, {127, 5, 18}, {128, 5, 19}, {1 << 40, 5, 19}, {1 << 40, 300, 20}} {
		s.sendCtr, s.remote = tc.ctr, tc.index
		out := b.ep.sealTransport(nil, s, []byte("x"))
		if got := len(out) - 1; got != tc.want || got > 20 {
			t.Errorf("counter %d index %d: overhead %d B, want %d (budget 20)", tc.ctr, tc.index, got, tc.want)
		}
	}
}

func TestLossDuplicationReorderReplay(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	nw.loss, nw.dup, nw.reorder = 0.2, 0.3, 0.5
	var recorded [][]byte
	nw.filter = func(p packet) bool {
		recorded = append(recorded, p.data)
		return true
	}
	want := texts("m", 500)
	for i, m := range want {
		if err := nw.send(a, "b.example", m); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			nw.run()
		}
	}
	nw.run()
	seen := map[string]int{}
	for _, g := range b.got {
		seen[g]++
	}
	for g, n := range seen {
		if n != 1 {
			t.Errorf("%q delivered %d times", g, n)
		}
	}
	if len(seen) < 300 || len(seen) > 500 {
		t.Errorf("%d of 500 delivered with 20%% loss", len(seen))
	}
	if b.errCount(ErrReplay) == 0 {
		t.Error("duplicates were not refused as replays")
	}
	// Replaying every packet ever sent (lost ones included) delivers each
	// message at most once over the whole run.
	nw.loss, nw.dup, nw.reorder, nw.filter = 0, 0, 0, nil
	for _, p := range recorded {
		nw.put(packet{from: a.id.addr, to: b.id.addr, data: p})
	}
	nw.run()
	seen = map[string]int{}
	for _, g := range b.got {
		if seen[g]++; seen[g] > 1 {
			t.Fatalf("%q delivered twice after replay", g)
		}
	}
}

func TestNoNonceReuse(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	type key struct {
		to  netipAddr
		idx uint16
		ctr uint64
	}
	used := map[key]bool{}
	next := map[netipAddr]uint64{}
	nw.filter = func(p packet) bool {
		if p.data[0] < 0xC0 {
			idx, tr, bits, _, err := parseTransportHeader(p.data)
			if err != nil {
				t.Fatal(err)
			}
			// The filter sees packets in sending order, so reconstruction
			// against the last counter seen is exact.
			c := reconstructCounter(next[p.to], tr, bits)
			next[p.to] = c + 1
			k := key{p.to, idx, c}
			if used[k] {
				t.Fatalf("nonce reuse: index %d counter %d to %v", idx, c, p.to)
			}
			used[k] = true
		}
		return true
	}
	nw.loss, nw.reorder = 0.3, 0.3
	for i := 0; i < 1000; i++ {
		nw.send(a, "b.example", "x")
		nw.send(b, "a.example", "y")
	}
	nw.run()
	if len(used) < 2000 {
		t.Fatalf("%d distinct (index, counter) pairs, want at least 2000", len(used))
	}
}

func TestCounterReconstructionAcrossGaps(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	// Lose 5000 packets in a row: the 14-bit counter still reconstructs.
	drop := true
	nw.filter = func(packet) bool { return !drop }
	for i := 0; i < 5000; i++ {
		nw.send(a, "b.example", "lost")
	}
	drop = false
	nw.send(a, "b.example", "after the gap")
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:after the gap"}) {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
}

func TestAddressChangeKeepsSession(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	newAddr := netip.MustParseAddrPort("198.51.100.7:4000")
	delete(nw.nodes, a.id.addr)
	a.id.addr = newAddr
	nw.nodes[newAddr] = a
	started := b.ep.Stats().HandshakesCompleted
	nw.send(a, "b.example", "from my new address")
	nw.run()
	nw.send(b, "a.example", "reply")
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:from my new address"}) || !slices.Equal(a.got, []string{"b.example:reply"}) {
		t.Fatalf("a got %q, b got %q", a.got, b.got)
	}
	if b.ep.Stats().HandshakesCompleted != started {
		t.Error("address change caused a new handshake")
	}
}

func TestRestartRecovery(t *testing.T) {
	for _, who := range []string{"responder restarts", "initiator restarts"} {
		t.Run(who, func(t *testing.T) {
			nw, a, b := pair(t, false)
			establish(t, nw, a, b)
			nw.advance(time.Second)
			victim, survivor := b, a
			if who == "initiator restarts" {
				victim, survivor = a, b
			}
			// The victim loses all state.
			fresh := nw.add(victim.id, false, survivor.id.pin(false))
			// The survivor keeps sending on its old session: dropped, then
			// a re-handshake after NoReplyTimeout delivers again.
			for i := 0; i < 3; i++ {
				nw.send(survivor, victim.id.name, fmt.Sprint("lost", i))
				nw.run()
			}
			if len(fresh.got) != 0 || fresh.errCount(ErrUnknownSession) != 3 {
				t.Fatalf("fresh got %q, errs %v", fresh.got, fresh.errs)
			}
			nw.advance(DefaultNoReplyTimeout)
			nw.send(survivor, victim.id.name, "recovered")
			nw.run()
			if !slices.Contains(fresh.got, survivor.id.name+":recovered") {
				t.Fatalf("fresh got %q, errs %v", fresh.got, fresh.errs)
			}
			// And the restarted side can reach the survivor at once with
			// its own handshake, which replaces the survivor's session.
			fresh2 := nw.add(victim.id, false, survivor.id.pin(false))
			nw.send(fresh2, survivor.id.name, "i am back")
			nw.run()
			if !slices.Contains(survivor.got, victim.id.name+":i am back") {
				t.Fatalf("survivor got %q, errs %v", survivor.got, survivor.errs)
			}
			nw.send(survivor, victim.id.name, "welcome")
			nw.run()
			if !slices.Contains(fresh2.got, survivor.id.name+":welcome") {
				t.Fatalf("fresh2 got %q, errs %v", fresh2.got, fresh2.errs)
			}
		})
	}
}

func TestReplayedMessage1Refused(t *testing.T) {
	nw, a, b := pair(t, false)
	var first []byte
	nw.filter = func(p packet) bool {
		if first == nil {
			first = p.data
		}
		return true
	}
	nw.send(a, "b.example", "once")
	nw.run()
	nw.put(packet{from: a.id.addr, to: b.id.addr, data: first})
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:once"}) || b.errCount(ErrReplay) != 1 {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
	// The session survived the replay.
	nw.send(a, "b.example", "still here")
	nw.run()
	if len(b.got) != 2 {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
}

func TestHandshakeRetryAndGiveUp(t *testing.T) {
	nw, a, b := pair(t, false)
	nw.filter = func(packet) bool { return false }
	nw.send(a, "b.example", "into the void")
	nw.send(a, "b.example", "queued")
	nw.advance(DefaultHandshakeTimeout * (DefaultHandshakeAttempts + 1))
	if nw.sent != DefaultHandshakeAttempts {
		t.Errorf("%d message 1s sent, want %d", nw.sent, DefaultHandshakeAttempts)
	}
	if _, ok := a.event(EventHandshakeFailed); !ok {
		t.Fatal("no EventHandshakeFailed")
	}
	// Lost message 2: the retry (a fresh handshake) still gets through.
	nw2, c, d := pair(t, false)
	n := 0
	nw2.filter = func(p packet) bool { n++; return n != 2 }
	nw2.send(c, "b.example", "early")
	nw2.send(c, "b.example", "queued")
	nw2.run()
	nw2.advance(DefaultHandshakeTimeout)
	if !slices.Equal(d.got, []string{"a.example:early", "a.example:queued"}) {
		t.Fatalf("d got %q, errs %v", d.got, d.errs)
	}
	_ = b
}

func TestRekeyByAge(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	old := a.ep.byName["b.example"].cur
	nw.advance(DefaultRekeyAfter + time.Second)
	cur := a.ep.byName["b.example"].cur
	if cur == old || cur == nil || !cur.initiator {
		t.Fatal("no rekey after RekeyAfter")
	}
	nw.send(a, "b.example", "new keys")
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:new keys"}) {
		t.Fatalf("b got %q", b.got)
	}
	// Keepalives answered the data so no-reply re-handshakes did not happen.
	if got := a.ep.Stats().HandshakesStarted; got != 2 {
		t.Errorf("%d handshakes started, want 2", got)
	}
}

func TestSimultaneousInitiation(t *testing.T) {
	nw, a, b := pair(t, false)
	nw.send(a, "b.example", "from a")
	nw.send(b, "a.example", "from b")
	nw.send(a, "b.example", "queued a")
	nw.send(b, "a.example", "queued b")
	nw.run()
	if !slices.Equal(a.got, []string{"b.example:from b", "b.example:queued b"}) ||
		!slices.Equal(b.got, []string{"a.example:from a", "a.example:queued a"}) {
		t.Fatalf("a got %q (errs %v), b got %q (errs %v)", a.got, a.errs, b.got, b.errs)
	}
	pa, pb := a.ep.byName["b.example"].cur, b.ep.byName["a.example"].cur
	if pa.local != pb.remote || pa.remote != pb.local {
		t.Fatal("the two sides settled on different sessions")
	}
}

func TestCookieUnderLoad(t *testing.T) {
	nw, a, b := pair(t, false)
	b.ep.cfg.HandshakeRate = 0.001 // burst of 0: always under load
	nw.send(a, "b.example", "")
	nw.run()
	// message 1, cookie reply, message 1 with mac2, message 2.
	if nw.sent != 4 || b.ep.Stats().CookiesSent != 1 || b.ep.byName["a.example"].cur == nil {
		t.Fatalf("%d datagrams, stats %+v", nw.sent, b.ep.Stats())
	}
	if nw.sizes[1] != cookieReplyLen || nw.sizes[1] > nw.sizes[0] {
		t.Errorf("cookie reply %d bytes to a %d-byte request", nw.sizes[1], nw.sizes[0])
	}
	// A spoofed source cannot use a's cookie: b answers it with a cookie
	// reply, never with message 2.
	var m1 []byte
	nw.filter = func(p packet) bool {
		if p.data[0] == typeIK1|flagMAC2 {
			m1 = p.data
		}
		return true
	}
	nw.advance(DefaultRekeyAfter + time.Second)
	if m1 == nil {
		t.Fatal("no cookie-carrying message 1 captured")
	}
	spoof := netip.MustParseAddrPort("203.0.113.9:9")
	before := b.ep.Stats().CookiesSent
	if _, _, err := b.ep.Open(nil, nw.now, spoof, m1); !errors.Is(err, ErrCookieSent) {
		t.Fatalf("spoofed message 1: %v", err)
	}
	tx, _ := b.ep.PollTransmit()
	if b.ep.Stats().CookiesSent != before+1 || len(tx.Data) != cookieReplyLen {
		t.Fatalf("reply %x", tx.Data)
	}
}

func TestSourceRateLimit(t *testing.T) {
	nw, a, b := pair(t, false)
	var m1s [][]byte
	nw.filter = func(p packet) bool { m1s = append(m1s, p.data); return false }
	for i := 0; i < 20; i++ {
		nw.send(a, "b.example", "")
		nw.now = nw.now.Add(time.Millisecond)
		a.ep.byName["b.example"].init = nil // force a fresh message 1
	}
	limited := 0
	for _, m := range m1s {
		if _, _, err := b.ep.Open(nil, nw.now, a.id.addr, m); errors.Is(err, ErrRateLimited) {
			limited++
		}
	}
	if burst := int(2 * DefaultSourceRate); limited != len(m1s)-burst {
		t.Fatalf("%d of %d rate limited, want all but the burst of %d", limited, len(m1s), burst)
	}
}

// TestNeverAmplify sends every kind of message-1 and garbage from an
// unproven address and checks that nothing answers with more bytes.
func TestNeverAmplify(t *testing.T) {
	nw := newNetwork(t, 11)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	c := newIdent(t, nw.rng, "c.example", 3)
	na := nw.add(a, true, b.pin(false), Peer[netipAddr]{Name: "c.example", Addr: c.addr}, Peer[netipAddr]{Name: "kk", Addr: b.addr})
	nb := nw.add(b, true, a.pin(true))
	nc := nw.add(c, true)
	_ = nc
	var reqs [][]byte
	nw.filter = func(p packet) bool {
		if p.from == a.addr {
			reqs = append(reqs, bytes.Clone(p.data))
		}
		return false
	}
	nw.send(na, "b.example", "ik")
	na.ep.byName["b.example"].mutual = true
	na.ep.byName["b.example"].init = nil
	nw.send(na, "b.example", "kk")
	nw.send(na, "c.example", "xx")
	for i := 0; i < 300; i++ {
		g := make([]byte, nw.r.IntN(200))
		nw.rng.Read(g)
		reqs = append(reqs, g)
	}
	for _, to := range []*node{nb, nc} {
		for _, r := range reqs {
			_, _, _ = to.ep.Open(nil, nw.now, netip.MustParseAddrPort("203.0.113.1:1"), r)
			for {
				tx, ok := to.ep.PollTransmit()
				if !ok {
					break
				}
				if len(tx.Data) > len(r) {
					t.Fatalf("answered %d bytes with %d", len(r), len(tx.Data))
				}
			}
		}
	}
}

func TestSealErrors(t *testing.T) {
	nw, a, _ := pair(t, false)
	if _, _, err := a.ep.Seal(nil, nw.now, "nobody", nil); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	a.ep.AddPeer(Peer[netipAddr]{Name: "noaddr", NoiseKey: make([]byte, 32)})
	if _, _, err := a.ep.Seal(nil, nw.now, "noaddr", nil); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("peer without address: %v", err)
	}
	// Queue limit behind a pending handshake.
	nw.filter = func(packet) bool { return false }
	nw.send(a, "b.example", "first")
	for i := 0; i < DefaultMaxQueued; i++ {
		if err := nw.send(a, "b.example", "q"); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.send(a, "b.example", "one too many"); !errors.Is(err, ErrSessionExhausted) {
		t.Fatalf("queue overflow: %v", err)
	}
}

func TestRekeyBeforeCounterLimit(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	pa := a.ep.byName["b.example"]
	old := pa.cur
	old.sendCtr = rekeyAfterMessages
	w := &b.ep.byName["a.example"].cur.win // as if b had seen them all
	w.last, w.seen = rekeyAfterMessages-1, true
	nw.send(a, "b.example", "last on old keys")
	nw.run()
	if pa.cur == old {
		t.Fatal("no new session after the rekey counter")
	}
	nw.send(a, "b.example", "first on new keys")
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:last on old keys", "a.example:first on new keys"}) {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
	// A session at its hard limit is never used to send.
	pa.cur.sendCtr = rejectAfterMessages
	pa.cur.created = nw.now
	out, _, err := a.ep.Seal(nil, nw.now, "b.example", []byte("x"))
	if err != nil || len(out) == 0 || out[0] < 0xC0 {
		t.Fatalf("Seal on an exhausted session: %x, %v", out, err)
	}
}

func TestPeerTable(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	if err := a.ep.AddPeer(Peer[netipAddr]{Name: "b.example", NoiseKey: a.id.kp.Public}); err == nil {
		t.Error("re-pinning b.example to another key succeeded")
	}
	if err := a.ep.AddPeer(Peer[netipAddr]{Name: "x", NoiseKey: b.id.kp.Public}); err == nil {
		t.Error("pinning b's key under a second name succeeded")
	}
	if err := a.ep.AddPeer(Peer[netipAddr]{Name: "x", NoiseKey: []byte{1}}); err == nil {
		t.Error("short key accepted")
	}
	a.ep.RemovePeer("b.example")
	if len(a.ep.slots) != 0 || len(a.ep.byHint) != 0 || len(a.ep.byStatic) != 0 {
		t.Fatalf("state left after RemovePeer: %d slots", len(a.ep.slots))
	}
	// b's packets to a are now dropped, and a refuses b's new handshake.
	nw.send(b, "a.example", "still there?")
	nw.run()
	if len(a.got) != 0 || a.errCount(ErrUnknownSession) != 1 {
		t.Fatalf("a got %q, errs %v", a.got, a.errs)
	}
}

// TestRekeyLostMessage2: while a rekey's message 2 is lost, the responder
// keeps sending on the old session, which the initiator can still read;
// the new session takes over once the initiator confirms it.
func TestRekeyLostMessage2(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	pb := b.ep.byName["a.example"]
	old := pb.cur
	dropMsg2 := true
	nw.filter = func(p packet) bool { return !(dropMsg2 && p.data[0] == typeIK2) }
	nw.advance(DefaultRekeyAfter)
	if pb.next == nil || pb.cur != old {
		t.Fatal("responder switched before the new session was confirmed")
	}
	nw.send(b, "a.example", "during rekey")
	nw.run()
	if !slices.Equal(a.got, []string{"b.example:during rekey"}) {
		t.Fatalf("a got %q, errs %v", a.got, a.errs)
	}
	dropMsg2 = false
	nw.advance(DefaultHandshakeTimeout)
	if pb.cur == old || pb.next != nil {
		t.Fatal("responder did not switch after confirmation")
	}
	nw.send(b, "a.example", "after rekey")
	nw.send(a, "b.example", "both ways")
	nw.run()
	if !slices.Contains(a.got, "b.example:after rekey") || !slices.Equal(b.got, []string{"a.example:both ways"}) {
		t.Fatalf("a got %q, b got %q", a.got, b.got)
	}
}

// TestForgedMessage2 sends message 2s with the right index but a bad
// ephemeral key (all zeros, which X25519 refuses) or a bad tag before the
// real one: the handshake must still complete.
func TestForgedMessage2(t *testing.T) {
	nw, a, b := pair(t, false)
	var real []byte
	nw.filter = func(p packet) bool {
		if p.data[0] == typeIK2 {
			real = bytes.Clone(p.data)
			return false
		}
		return true
	}
	nw.send(a, "b.example", "hi")
	nw.run()
	if real == nil {
		t.Fatal("no message 2")
	}
	lowOrder := append(bytes.Clone(real[:5]), make([]byte, keyLen+tagLen)...)
	badTag := bytes.Clone(real)
	badTag[len(badTag)-1] ^= 1
	for _, f := range [][]byte{lowOrder, badTag} {
		if _, _, err := a.ep.Open(nil, nw.now, b.id.addr, f); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged message 2: %v", err)
		}
	}
	if _, _, err := a.ep.Open(nil, nw.now, b.id.addr, real); err != nil {
		t.Fatalf("real message 2 after forgeries: %v", err)
	}
	if a.ep.byName["b.example"].cur == nil {
		t.Fatal("no session")
	}
}
