package noise

import (
	"encoding/hex"
	"errors"
	"testing"
)

func TestTransportHeaderGolden(t *testing.T) {
	for _, tc := range []struct {
		index uint16
		ctr   uint64
		hex   string
	}{
		{0, 0, "0000"},
		{5, 127, "057f"},
		{5, 128, "058001"},
		{127, 300, "7fac02"},
		{128, 0, "808000"},
		{0x3FFF, 0x3FFF, "bfffff7f"},
		{200, 1<<40 + 5, "80c88500"}, // low 14 bits of 2^40+5 = 5
	} {
		got := hex.EncodeToString(appendTransportHeader(nil, tc.index, tc.ctr))
		if got != tc.hex {
			t.Errorf("index %d counter %d: %s, want %s", tc.index, tc.ctr, got, tc.hex)
		}
	}
}

func TestParseTransportHeaderErrors(t *testing.T) {
	tag := "00000000000000000000000000000000"
	for _, h := range []string{
		"",
		"00",                  // no tag
		"05" + tag[:30],       // one byte short
		"c1" + "00" + tag,     // handshake type
		"8005" + "00" + tag,   // non-canonical long index
		"05" + "808080" + tag, // four counter groups
		"05" + "80",           // varint runs off the end
	} {
		b, _ := hex.DecodeString(h)
		if _, _, _, _, err := parseTransportHeader(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", h, err)
		}
	}
}

func TestReconstructCounter(t *testing.T) {
	for _, tc := range []struct {
		next, trunc uint64
		bits        uint
		want        uint64
	}{
		{0, 5, 0, 5},
		{0, 200, 14, 200},
		{1 << 20, (1<<20 + 3) & 0x3FFF, 14, 1<<20 + 3},
		{1 << 20, (1<<20 - 3) & 0x3FFF, 14, 1<<20 - 3},
		{1<<20 + 8000, (1 << 20) & 0x3FFF, 14, 1 << 20},
		{0x4000, 0x3FFF, 14, 0x3FFF},
		{0x3FFF, 0x0001, 14, 0x4001},
		{1 << 30, 0x1FFFFF & (1<<30 + 1000000), 21, 1<<30 + 1000000},
	} {
		if got := reconstructCounter(tc.next, tc.trunc, tc.bits); got != tc.want {
			t.Errorf("next %d trunc %d/%d: %d, want %d", tc.next, tc.trunc, tc.bits, got, tc.want)
		}
	}
}

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	accept := func(c uint64) bool {
		if !w.check(c) {
			return false
		}
		w.update(c)
		return true
	}
	steps := []struct {
		c  uint64
		ok bool
	}{
		{0, true}, {0, false}, {1, true}, {3, true}, {2, true}, {2, false},
		{ReplayWindow + 3, true}, {3, false}, {4, true}, {5, true},
		{1 << 20, true}, {1<<20 - ReplayWindow, false}, {1<<20 - ReplayWindow + 1, true},
		{1<<20 - 1, true}, {1<<20 - 1, false}, {1<<20 + 64*replayBlocks*3, true},
		{1 << 20, false}, {rejectAfterMessages, false}, {rejectAfterMessages - 1, true},
	}
	for i, s := range steps {
		if got := accept(s.c); got != s.ok {
			t.Fatalf("step %d: counter %d accepted=%v, want %v", i, s.c, got, s.ok)
		}
	}
	// Every counter inside the window, in reverse, is accepted once.
	var w2 replayWindow
	w = w2
	base := uint64(10000)
	accept(base + ReplayWindow)
	for c := base + ReplayWindow - 1; c > base; c-- {
		if !accept(c) || accept(c) {
			t.Fatalf("counter %d", c)
		}
	}
}

func TestBindingRoundTrip(t *testing.T) {
	nw := newNetwork(t, 21)
	a := newIdent(t, nw.rng, "a.example", 1)
	sig := SignBinding(a.name, a.kp.Public, a.sign)
	pub := a.sign.Public().(ed25519PublicKey)
	enc := appendBinding(nil, a.name, pub, sig)
	enc = append(enc, "rest"...)
	b, rest, err := parseBinding(enc)
	if err != nil || b.name != a.name || string(b.signing) != string(pub) || string(b.sig) != string(sig) || string(rest) != "rest" {
		t.Fatalf("parsed %+v rest %q err %v", b, rest, err)
	}
	if !VerifyBinding(a.name, a.kp.Public, pub, sig) {
		t.Fatal("binding does not verify")
	}
	if VerifyBinding("b.example", a.kp.Public, pub, sig) || VerifyBinding(a.name, make([]byte, 32), pub, sig) {
		t.Fatal("binding verifies for another name or key")
	}
	for n := 0; n < len(enc)-4; n++ {
		if _, _, err := parseBinding(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

// A forged packet far ahead of the window must not move it.
func TestForgedCounterDoesNotMoveWindow(t *testing.T) {
	nw, a, b := pair(t, false)
	establish(t, nw, a, b)
	s := b.ep.byName["a.example"].cur
	forged := appendTransportHeader(nil, s.local, 1<<20)
	forged = append(forged, make([]byte, 40)...)
	if _, _, err := b.ep.Open(nil, nw.now, a.id.addr, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged packet: %v", err)
	}
	if s.win.next() != 0 {
		t.Fatalf("window moved to %d", s.win.next())
	}
	nw.send(a, "b.example", "real")
	nw.run()
	if len(b.got) != 1 {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
	if _, ok := (&Endpoint[netipAddr]{}).NextDeadline(); ok {
		t.Error("empty endpoint has a deadline")
	}
}
