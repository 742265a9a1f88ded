package noise

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/clock"
)

func TestKeyFileRoundTrip(t *testing.T) {
	kp, err := GenerateKeyPair(clock.SeededRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	text, err := kp.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != len("x25519 ")+43+1 || !strings.HasPrefix(string(text), "x25519 ") {
		t.Fatalf("key file %q", text)
	}
	got, err := ParseKeyPair(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Private, kp.Private) || !bytes.Equal(got.Public, kp.Public) {
		t.Fatal("public key not rederived from the private key")
	}
	for _, bad := range []string{"", "x25519", "ed25519 " + string(text[7:]), "x25519 AAAA", "x25519 !!!"} {
		if _, err := ParseKeyPair([]byte(bad)); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKeyPair(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

// RFC 7748 §6.1: Alice's private key gives Alice's public key.
func TestKeyFilePublicKeyVector(t *testing.T) {
	priv := mustHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	pub := mustHex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	text, _ := KeyPair{Private: priv}.MarshalText()
	kp, err := ParseKeyPair(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kp.Public, pub) {
		t.Fatalf("public %x, want %x", kp.Public, pub)
	}
}

func TestKeyToken(t *testing.T) {
	rng := clock.SeededRNG(2)
	kp, _ := GenerateKeyPair(rng)
	seed := make([]byte, ed25519.SeedSize)
	rng.Read(seed)
	sk := ed25519.NewKeyFromSeed(seed)
	tok := NewKeyToken("a.example", kp.Public, sk)
	s := tok.String()
	if len(s) != 176 || !strings.HasPrefix(s, KeyTokenPrefix) {
		t.Fatalf("token %q (%d chars)", s, len(s))
	}
	got, err := ParseKeyToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.NoiseKey, kp.Public) || !bytes.Equal(got.SigningKey, sk.Public().(ed25519.PublicKey)) {
		t.Fatal("token does not round-trip")
	}
	if err := got.Verify("a.example"); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify("b.example"); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Verify under another name = %v, want ErrBadKey", err)
	}
	flipped := []byte(s)
	flipped[40] ^= 1 // still base64, now another noise key
	if g, err := ParseKeyToken(string(flipped)); err != nil || g.Verify("a.example") == nil {
		t.Fatalf("a changed token verified (parse err %v)", err)
	}
	for _, bad := range []string{"", s[5:], "mxk1:" + s[6:], s + "AA", "mxk0:" + s[5:], s[:100] + "!" + s[101:]} {
		if _, err := ParseKeyToken(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKeyToken(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestAcceptClients(t *testing.T) {
	nw := newNetwork(t, 3)
	srvID := newIdent(t, nw.rng, "srv.example", 1)
	pinnedID := newIdent(t, nw.rng, "pinned.example", 2)
	ep, err := New(Config[netipAddr]{ServerName: srvID.name, Static: srvID.kp, SigningKey: srvID.sign,
		Peers: []Peer[netipAddr]{pinnedID.pin(false)}, AcceptClients: true, MaxClients: 2, Random: clock.SeededRNG(9)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &node{id: srvID, ep: ep}
	nw.nodes[srvID.addr] = srv
	nw.order = append(nw.order, srv)

	var clients []*node
	for i, name := range []string{"~c1", "~c2", "pinned.example", "~c3"} {
		id := newIdent(t, nw.rng, name, uint16(10+i))
		c := nw.add(id, false, srvID.pin(false))
		clients = append(clients, c)
		if err := nw.send(c, srvID.name, "hi"); err != nil {
			t.Fatal(err)
		}
		nw.run()
	}
	want := ClientName(clients[0].id.kp.Public)
	if len(srv.got) == 0 || srv.got[0] != want+":hi" {
		t.Fatalf("server got %q, want the first from %q", srv.got, want)
	}
	// A client claiming a pinned server's name with another key is refused:
	// it can never pass for that server.
	if clients[2].id.name != "pinned.example" || srv.errCount(ErrRefused) != 1 {
		t.Fatalf("impostor: server errs %v", srv.errs)
	}
	if slices.ContainsFunc(srv.got, func(s string) bool { return strings.HasPrefix(s, "pinned.example:") }) {
		t.Fatal("impostor delivered as the pinned server")
	}
	// MaxClients 2: c3 evicted the least recently heard client, c1.
	if len(srv.got) != 3 || ep.clients != 2 || ep.byName[want] != nil {
		t.Fatalf("server got %q; %d clients; c1 kept: %v", srv.got, ep.clients, ep.byName[want] != nil)
	}
	// The server answers a client by its client name.
	if err := nw.send(srv, ClientName(clients[1].id.kp.Public), "reply"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if !slices.Contains(clients[1].got, "srv.example:reply") {
		t.Fatalf("client got %q, errs %v", clients[1].got, clients[1].errs)
	}
	// No EventLearned: clients are not pins.
	if _, ok := srv.event(EventLearned); ok {
		t.Fatal("a client was reported as learned")
	}
}

func TestClientsRefusedByDefault(t *testing.T) {
	nw := newNetwork(t, 4)
	srvID := newIdent(t, nw.rng, "srv.example", 1)
	srv := nw.add(srvID, false)
	c := nw.add(newIdent(t, nw.rng, "~c1", 10), false, srvID.pin(false))
	if err := nw.send(c, srvID.name, "hi"); err != nil {
		t.Fatal(err)
	}
	nw.run()
	if len(srv.got) != 0 || srv.errCount(ErrRefused) != 1 {
		t.Fatalf("server got %q, errs %v", srv.got, srv.errs)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzKeyText: the key file and key token parsers never panic, and what
// they accept re-encodes to the same key material.
func FuzzKeyText(f *testing.F) {
	kp, _ := GenerateKeyPair(clock.SeededRNG(3))
	text, _ := kp.MarshalText()
	f.Add(string(text))
	seed := make([]byte, ed25519.SeedSize)
	f.Add(NewKeyToken("a.example", kp.Public, ed25519.NewKeyFromSeed(seed)).String())
	f.Add("mxk1:")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParseKeyPair([]byte(s)); err == nil {
			again, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if k2, err := ParseKeyPair(again); err != nil || !bytes.Equal(k2.Public, k.Public) {
				t.Fatalf("key file %q does not round-trip", s)
			}
		}
		if tok, err := ParseKeyToken(s); err == nil {
			if tok2, err := ParseKeyToken(tok.String()); err != nil || tok2.String() != tok.String() {
				t.Fatalf("token %q does not round-trip", s)
			}
			_ = tok.Verify("a.example")
		}
	})
}

// TestClientsWithTrustOnFirstUse: with both on, a server is learned and a
// client is not, and two clients never conflict over a name.
func TestClientsWithTrustOnFirstUse(t *testing.T) {
	nw := newNetwork(t, 5)
	srvID := newIdent(t, nw.rng, "srv.example", 1)
	ep, err := New(Config[netipAddr]{ServerName: srvID.name, Static: srvID.kp, SigningKey: srvID.sign,
		TrustOnFirstUse: true, AcceptClients: true, Random: clock.SeededRNG(9)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &node{id: srvID, ep: ep}
	nw.nodes[srvID.addr] = srv
	nw.order = append(nw.order, srv)
	for i, name := range []string{"~client", "~client", "peer.example"} {
		c := nw.add(newIdent(t, nw.rng, name, uint16(10+i)), false, srvID.pin(false))
		if err := nw.send(c, srvID.name, "hi"); err != nil {
			t.Fatal(err)
		}
		nw.run()
	}
	if len(srv.got) != 3 || len(srv.errs) != 0 {
		t.Fatalf("server got %q, errs %v", srv.got, srv.errs)
	}
	ev, ok := srv.event(EventLearned)
	if !ok || ev.Peer != "peer.example" {
		t.Fatalf("learned %+v", ev)
	}
	if _, again := srv.event(EventLearned); again {
		t.Fatal("a client was learned")
	}
	if ep.clients != 2 {
		t.Fatalf("%d clients", ep.clients)
	}
}
