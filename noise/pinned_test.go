package noise

import (
	"slices"
	"testing"
)

// TestPinned: only a configured key makes a peer Pinned — not trust on
// first use, not an address-only pin whose key was learned, not a client.
func TestPinned(t *testing.T) {
	nw := newNetwork(t, 9)
	a := newIdent(t, nw.rng, "a.example", 1)
	b := newIdent(t, nw.rng, "b.example", 2)
	c := newIdent(t, nw.rng, "c.example", 3)
	cl := newIdent(t, nw.rng, ClientPrefix, 4)
	na := nw.add(a, true, Peer[netipAddr]{Name: "b.example", Addr: b.addr}, c.pin(false))
	nb := nw.add(b, true)
	nc := nw.add(c, false, a.pin(false))
	ncl := nw.add(cl, false, a.pin(false))
	na.ep.cfg.AcceptClients = true
	for _, s := range []struct {
		n    *node
		peer string
	}{{na, "b.example"}, {nc, "a.example"}, {ncl, "a.example"}} {
		if err := nw.send(s.n, s.peer, "hi"); err != nil {
			t.Fatal(err)
		}
		nw.run()
	}
	if !slices.Contains(nb.got, "a.example:hi") || len(na.got) != 2 {
		t.Fatalf("a got %q, b got %q", na.got, nb.got)
	}
	client := ClientName(cl.kp.Public)
	for _, tc := range []struct {
		ep   *Endpoint[netipAddr]
		name string
		want bool
	}{
		{na.ep, "c.example", true},  // configured key
		{nc.ep, "a.example", true},  // configured key
		{na.ep, "b.example", false}, // address-only pin, key learned
		{nb.ep, "a.example", false}, // learned by trust on first use
		{na.ep, client, false},      // a client
		{na.ep, "d.example", false}, // unknown
	} {
		if got := tc.ep.Pinned(tc.name); got != tc.want {
			t.Errorf("%s: Pinned(%q) = %v, want %v", tc.ep.cfg.ServerName, tc.name, got, tc.want)
		}
	}
	// Pinning the learned key makes it pinned.
	if err := nb.ep.AddPeer(a.pin(false)); err != nil {
		t.Fatal(err)
	}
	if !nb.ep.Pinned("a.example") {
		t.Error("b: a not pinned after AddPeer with its key")
	}
}
