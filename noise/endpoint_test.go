package noise

import (
	"errors"
	"slices"
	"testing"
)

func pair(t *testing.T, mutual bool) (*network, *node, *node) {
	nw := newNetwork(t, 1)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	na := nw.add(a, false, b.pin(mutual))
	nb := nw.add(b, false, a.pin(mutual))
	return nw, na, nb
}

func TestHandshakeIKEarlyData(t *testing.T) {
	nw, a, b := pair(t, false)
	if err := nw.send(a, "b.example", "hello"); err != nil {
		t.Fatal(err)
	}
	if nw.sizes[0] > 144+len("hello")+bindingLen(len("a.example"))+timestampLen {
		t.Errorf("IK message 1 is %d bytes", nw.sizes[0])
	}
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:hello"}) {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
	if _, ok := a.event(EventEstablished); !ok {
		t.Fatal("a: no EventEstablished")
	}
	if err := nw.send(b, "a.example", "world"); err != nil {
		t.Fatal(err)
	}
	if err := nw.send(a, "b.example", "again"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if !slices.Equal(a.got, []string{"b.example:world"}) || len(b.got) != 2 {
		t.Fatalf("a got %q, b got %q", a.got, b.got)
	}
	// Message 1, message 2, two transport packets: IK uses no cookie here.
	if nw.sent != 4 {
		t.Errorf("%d datagrams, want 4", nw.sent)
	}
}

func TestHandshakeKK(t *testing.T) {
	nw, a, b := pair(t, true)
	if err := nw.send(a, "b.example", "hi"); err != nil {
		t.Fatal(err)
	}
	// KK message 1: 96 B budget plus payload (timestamp + early data).
	if got, max := nw.sizes[0], 96+timestampLen+len("hi"); got > max {
		t.Errorf("KK message 1 is %d bytes, budget %d", got, max)
	}
	nw.run()
	if !slices.Equal(b.got, []string{"a.example:hi"}) {
		t.Fatalf("b got %q, errs %v", b.got, b.errs)
	}
	if err := nw.send(b, "a.example", "yo"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if !slices.Equal(a.got, []string{"b.example:yo"}) {
		t.Fatalf("a got %q, errs %v", a.got, a.errs)
	}
}

func TestHandshakeXXTrustOnFirstUse(t *testing.T) {
	nw := newNetwork(t, 2)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	na := nw.add(a, true, Peer[netipAddr]{Name: "b.example", Addr: b.addr})
	nb := nw.add(b, true)
	if err := nw.send(na, "b.example", "first"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if !slices.Equal(nb.got, []string{"a.example:first"}) {
		t.Fatalf("b got %q, errs %v", nb.got, nb.errs)
	}
	ev, ok := na.event(EventLearned)
	if !ok || ev.Peer != "b.example" || string(ev.NoiseKey) != string(b.kp.Public) {
		t.Fatalf("a learned %+v", ev)
	}
	ev, ok = nb.event(EventLearned)
	if !ok || ev.Peer != "a.example" || string(ev.NoiseKey) != string(a.kp.Public) {
		t.Fatalf("b learned %+v", ev)
	}
	// XX message 1, cookie reply, XX message 1 with cookie, message 2,
	// message 3, the queued transport packet.
	if nw.sent != 6 {
		t.Errorf("%d datagrams, want 6", nw.sent)
	}
	// The learned key is used with IK next time.
	na.ep.RemovePeer("x") // no-op
	nw.advance(2 * DefaultRekeyAfter)
	if err := nw.send(nb, "a.example", "back"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if !slices.Contains(na.got, "b.example:back") {
		t.Fatalf("a got %q, errs %v", na.got, na.errs)
	}
}

func TestXXWithoutTOFURefused(t *testing.T) {
	nw := newNetwork(t, 3)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	na := nw.add(a, false, Peer[netipAddr]{Name: "b.example", Addr: b.addr})
	nw.add(b, true)
	if err := nw.send(na, "b.example", "x"); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("send without key or TOFU: %v", err)
	}
}

func TestPinMismatchRefused(t *testing.T) {
	nw := newNetwork(t, 4)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	evil := newIdent(t, nw.rng, "a.example", 1) // claims a's name with other keys
	nb := nw.add(b, true, a.pin(false))
	ne := nw.add(evil, false, b.pin(false))
	if err := nw.send(ne, "b.example", "let me in"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if len(nb.got) != 0 || nb.errCount(ErrRefused) != 1 {
		t.Fatalf("b got %q, errs %v", nb.got, nb.errs)
	}
	if nb.ep.Stats().DropRefused != 1 {
		t.Errorf("stats %+v", nb.ep.Stats())
	}
}

func TestUnpinnedRefusedWithoutTOFU(t *testing.T) {
	nw := newNetwork(t, 5)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	na := nw.add(a, false, b.pin(false))
	nb := nw.add(b, false)
	if err := nw.send(na, "b.example", "hi"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if len(nb.got) != 0 || nb.errCount(ErrRefused) != 1 {
		t.Fatalf("b got %q, errs %v", nb.got, nb.errs)
	}
}

func TestBadBindingRefused(t *testing.T) {
	nw := newNetwork(t, 6)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	other := newIdent(t, nw.rng, "z", 9)
	na := nw.add(a, false, b.pin(false))
	nb := nw.add(b, true)
	// a's binding is signed by a key that is not the one it presents.
	na.ep.sig = SignBinding("a.example", a.kp.Public, other.sign)
	if err := nw.send(na, "b.example", "hi"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if len(nb.got) != 0 || nb.errCount(ErrRefused) != 1 {
		t.Fatalf("b got %q, errs %v", nb.got, nb.errs)
	}
	// A correct binding by a signing key other than the pinned one.
	nw2 := newNetwork(t, 7)
	nb2 := nw2.add(b, false, Peer[netipAddr]{Name: "a.example", NoiseKey: a.kp.Public, SigningKey: other.sign.Public().(ed25519PublicKey)})
	na2 := nw2.add(a, false, b.pin(false))
	if err := nw2.send(na2, "b.example", "hi"); err != nil {
		t.Fatal(err)
	}
	nw2.run()
	if len(nb2.got) != 0 || nb2.errCount(ErrRefused) != 1 {
		t.Fatalf("b got %q, errs %v", nb2.got, nb2.errs)
	}
}
