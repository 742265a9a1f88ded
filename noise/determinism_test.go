package noise

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// hubRun builds a hub pinned to several spokes, establishes a session
// with each, then lets time run so that every peer's timers fire in the
// same Tick calls: rekeys by age (new ephemeral keys and session indices
// drawn from Config.Random), keepalives and expiry of old sessions. It
// returns every datagram put on the wire, with its time and addresses.
func hubRun(t *testing.T, seed uint64) []string {
	t.Helper()
	nw := newNetwork(t, seed)
	hubID := newIdent(t, nw.rng, "hub.example", 1)
	var spokeIDs []ident
	for i := range 6 {
		spokeIDs = append(spokeIDs, newIdent(t, nw.rng, fmt.Sprintf("s%d.example", i), uint16(10+i)))
	}
	var pins []Peer[netipAddr]
	for _, id := range spokeIDs {
		pins = append(pins, id.pin(false))
	}
	hub := nw.add(hubID, false, pins...)
	var spokes []*node
	for _, id := range spokeIDs {
		spokes = append(spokes, nw.add(id, false, hubID.pin(false)))
	}
	nw.record = true
	// The hub initiates to everyone at the same instant, so all of its
	// sessions have the same age and rekey in one Tick.
	for _, s := range spokes {
		if err := nw.send(hub, s.id.name, "hi "+s.id.name); err != nil {
			t.Fatal(err)
		}
	}
	nw.run()
	for _, s := range spokes {
		if err := nw.send(s, hub.id.name, "re "+s.id.name); err != nil {
			t.Fatal(err)
		}
	}
	nw.run()
	nw.advance(DefaultRekeyAfter + time.Second)
	for _, s := range spokes {
		if err := nw.send(hub, s.id.name, "after rekey"); err != nil {
			t.Fatal(err)
		}
	}
	nw.run()
	nw.advance(2 * DefaultRekeyAfter)
	if got := hub.ep.Stats().HandshakesStarted; got < 2*uint64(len(spokes)) {
		t.Fatalf("hub started %d handshakes, want at least %d (one per spoke and one rekey each)", got, 2*len(spokes))
	}
	for _, s := range spokes {
		if !slices.Contains(s.got, "hub.example:after rekey") {
			t.Fatalf("%s got %q, errs %v", s.id.name, s.got, s.errs)
		}
	}
	return nw.trace
}

// TestTickDeterministic: the same seed gives the same datagrams, byte for
// byte, even when many peers' timers fire in one Tick. Tick used to walk
// a Go map, whose random order changed which peer drew which ephemeral
// key and session index.
func TestTickDeterministic(t *testing.T) {
	first := hubRun(t, 7)
	for run := range 3 {
		again := hubRun(t, 7)
		if i := firstDiff(first, again); i >= 0 {
			t.Fatalf("run %d differs at datagram %d of %d/%d:\n%s\n%s", run+2, i, len(first), len(again), at(first, i), at(again, i))
		}
	}
	if other := hubRun(t, 8); firstDiff(first, other) < 0 {
		t.Fatal("a different seed gave the same transcript; the test would not notice anything")
	}
}

func firstDiff(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if at(a, i) != at(b, i) {
			return i
		}
	}
	return -1
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<none>"
}
