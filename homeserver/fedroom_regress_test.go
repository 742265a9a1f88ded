package homeserver

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/noise"
)

// TestFedRoomCreateRoomInvitesRemoteUser: a remote user in createRoom's
// "invite" list gets the federation invite (v2 /invite), exactly like
// POST /invite, so their server shows it in /sync and they can join.
func TestFedRoomCreateRoomInvitesRemoteUser(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob, carol := fn.user(a, "alice"), fn.user(b, "bob"), fn.user(a, "carol")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{
		"name": "direct", "is_direct": true, "invite": []string{bob.id, carol.id}}).str("room_id")
	if m := roomsOf(b.Node).membership(roomID, bob.id); m != "invite" {
		t.Fatalf("b.test has bob as %q after createRoom, want invite", m)
	}
	s := fn.call(b, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	inv, _ := s.Body["rooms"].(map[string]any)["invite"].(map[string]any)
	if inv[roomID] == nil {
		t.Fatalf("bob's sync has no invite to %s: %s", roomID, s.Raw)
	}
	if !strings.Contains(string(s.Raw), `"is_direct":true`) {
		t.Fatalf("bob's invite lost is_direct: %s", s.Raw)
	}
	if m := fn.membership(alice, roomID, carol.id); m != "invite" {
		t.Fatalf("a.test has carol as %q, want invite", m)
	}
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q after his join, want join", m)
	}
}

// TestFedRoomCreateRoomRemoteInviteFailure: an invitee whose server
// cannot be reached does not cost the creator the room.
func TestFedRoomCreateRoomRemoteInviteFailure(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	alice := fn.user(a, "alice")
	r := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{
		"invite": []string{"@nobody:gone.test"}})
	roomID := r.str("room_id")
	if roomID == "" {
		t.Fatalf("no room_id: %s", r.Raw)
	}
	if m := fn.membership(alice, roomID, "@nobody:gone.test"); m != "" {
		t.Fatalf("unreachable invitee stored as %q", m)
	}
}

// TestFedRoomPDUWakesLongPoll: a PDU received over federation answers a
// local user's pending long-poll /sync at once, not at its timeout.
func TestFedRoomPDUWakesLongPoll(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	s := fn.call(bob.tn, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	since := s.str("next_batch")
	poll, _ := bob.tn.start("GET", "/_matrix/client/v3/sync?timeout=30000&since="+url.QueryEscape(since), bob.token, nil)
	fn.run()
	if poll.Answered {
		t.Fatalf("long poll answered before anything happened: %s", poll.Raw)
	}
	start := fn.clock.Now()
	fn.say(alice, roomID, "wake up")
	if !fn.clock.Now().Equal(start) {
		t.Fatalf("clock moved from %v to %v", start, fn.clock.Now())
	}
	if !poll.Answered || poll.Status != 200 {
		t.Fatalf("long poll not answered by the federated message: answered=%v %d %s", poll.Answered, poll.Status, poll.Raw)
	}
	if !strings.Contains(string(poll.Raw), `"wake up"`) {
		t.Fatalf("long poll answer lacks the message: %s", poll.Raw)
	}
}

// TestFedRoomThirdPartyInviteSignature: an invite derived from a
// third-party invite needs no signature from the sender's server, as in
// the auth rules (server-server-api "Validating hashes and signatures on
// received events"); any other event still does, and every server it must
// be signed by is still checked.
func TestFedRoomThirdPartyInviteSignature(t *testing.T) {
	fn, alice, bob, carol, roomID := threeServers(t)
	fr := fedRoomsOf(alice.tn.Node)
	rm, err := roomsOf(alice.tn.Node).room(roomID)
	if err != nil {
		t.Fatal(err)
	}
	dave := "@dave:b.test"
	tpi := map[string]any{"membership": "invite", "third_party_invite": map[string]any{
		"display_name": "dave", "signed": map[string]any{"mxid": dave, "token": "tok", "signatures": map[string]any{}}}}
	// carol's invite, built and signed by b.test (dave's server) alone.
	ev := forge(t, signerOf(bob.tn), rm, carol.id, "m.room.member", strPtr(dave), tpi, rm.extremities, rm.state, rm.depth+1)
	if _, err := fr.verifySignatures(ev); err != nil {
		t.Fatalf("third-party invite signed by the invitee's server: %v", err)
	}
	// The same without third_party_invite must carry c.test's signature.
	plain := forge(t, signerOf(bob.tn), rm, carol.id, "m.room.member", strPtr(dave), map[string]any{"membership": "invite"},
		rm.extremities, rm.state, rm.depth+1)
	if _, err := fr.verifySignatures(plain); err == nil || !strings.Contains(err.Error(), "c.test") {
		t.Fatalf("plain invite without the sender's signature: err %v, want rejection naming c.test", err)
	}
	_ = fn
}

// holdRemote holds the answers to requests whose URI contains match until
// the test releases them.
type holdRemote struct {
	inner Remote
	match string
	held  *[]func()
}

func (h holdRemote) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	if !strings.Contains(req.URI, h.match) {
		h.inner.Do(dest, req, done)
		return
	}
	h.inner.Do(dest, req, func(resp OutboundResponse, err error) {
		*h.held = append(*h.held, func() { done(resp, err) })
	})
}

// The invitee's server shows the invite to its user as soon as it has
// signed it; on a slow link the user's join can reach the inviting server
// before the signed invite has come back. The inviting server holds the
// make_join until the invite is in the room instead of refusing it.
func TestFedRoomJoinOvertakesInviteAnswer(t *testing.T) {
	fn := newFedNet(t)
	var held []func()
	a, _ := fn.nodeVia("a.test", t.TempDir(), 1, nil, func(r Remote) Remote { return holdRemote{inner: r, match: "/v2/invite/", held: &held} })
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"preset": "private_chat"}).str("room_id")
	inv, _ := a.start("POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.run()
	if inv.Answered || len(held) != 1 {
		t.Fatalf("invite answered %v with %d answers held", inv.Answered, len(held))
	}
	// b.test has the invite; bob joins while a.test still waits for it.
	join, _ := b.start("POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	fn.run()
	if join.Answered {
		t.Fatalf("join answered before the invite was in the room: %d %s", join.Status, join.Raw)
	}
	held[0]()
	fn.run()
	if !inv.Answered || inv.Status != 200 {
		t.Fatalf("invite: %v %d %s", inv.Answered, inv.Status, inv.Raw)
	}
	if !join.Answered || join.Status != 200 {
		t.Fatalf("join: %v %d %s", join.Answered, join.Status, join.Raw)
	}
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q", m)
	}
}

// A client that repeats a join while its server is still joining the room
// over federation (a retry on a slow link) does not start a second join:
// both requests get the first one's answer.
func TestFedRoomRepeatedJoinJoinsTheFirst(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	var uris []string
	b, _ := fn.nodeVia("b.test", t.TempDir(), 2, nil, func(r Remote) Remote { return watchRemote{inner: r, uris: &uris} })
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token,
		map[string]any{"preset": "public_chat"}).str("room_id")
	path := "/_matrix/client/v3/join/" + url.PathEscape(roomID) + "?server_name=a.test"
	first, _ := b.start("POST", path, bob.token, map[string]any{})
	second, _ := b.start("POST", path, bob.token, map[string]any{})
	fn.run()
	for i, r := range []*testResp{first, second} {
		if !r.Answered || r.Status != 200 || r.str("room_id") != roomID {
			t.Fatalf("join %d: %v %d %s", i+1, r.Answered, r.Status, r.Raw)
		}
	}
	if n := countURIs(uris, "/make_join/"); n != 1 {
		t.Fatalf("%d make_join requests, want 1: %q", n, uris)
	}
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q", m)
	}
	// Once joined, a join is answered at once, without federation.
	uris = nil
	fn.call(b, 200, "POST", path, bob.token, map[string]any{})
	if len(uris) != 0 {
		t.Fatalf("join of a joined room went out: %q", uris)
	}
}

// A server whose signing key the operator pinned (a mesh peer's key
// token) has its events verified against the pinned key without fetching
// its keys; a signature by another key (the peer rotated its key) sends
// the node to fetch them instead of rejecting the event.
func TestFedRoomPinnedSigningKey(t *testing.T) {
	fn, alice, _, roomID := twoServers(t)
	rm, _ := roomsOf(alice.tn.Node).room(roomID)
	cKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	tok := noise.NewKeyToken("c.test", make([]byte, 32), cKey).String()
	p, _ := fn.nodeWith("p.test", t.TempDir(), 9, func(c *Config) {
		c.Mesh.Peers = []MeshPeer{{Name: "c.test", Addr: "192.0.2.1:5683", Key: tok}}
	})
	ev := forge(t, signer{"c.test", "ed25519:c1", cKey}, rm, "@carol:c.test", "m.room.message", nil,
		map[string]string{"msgtype": "m.text", "body": "pinned"}, rm.extremities, rm.state, rm.depth+1)
	if unknown, err := fedRoomsOf(p.Node).verifySignatures(ev); err != nil || len(unknown) != 0 {
		t.Fatalf("event signed with the pinned key: unknown %v, %v", unknown, err)
	}
	rotated := forge(t, signer{"c.test", "ed25519:c2", other}, rm, "@carol:c.test", "m.room.message", nil,
		map[string]string{"msgtype": "m.text", "body": "rotated"}, rm.extremities, rm.state, rm.depth+1)
	unknown, err := fedRoomsOf(p.Node).verifySignatures(rotated)
	if len(unknown) != 1 || unknown[0] != "c.test" || err == nil || errors.Is(err, errRejected) {
		t.Fatalf("event signed with another key: unknown %v, %v; want its keys fetched, not a rejection", unknown, err)
	}
	// Without the pin the first event's key is unknown too.
	if unknown, _ := fedRoomsOf(alice.tn.Node).verifySignatures(ev); len(unknown) != 1 {
		t.Fatalf("without a pin: unknown %v", unknown)
	}
}

// dropAnswers loses the answers to the first n requests whose URI
// contains match, after the other server has acted on them (a lost
// answer on a lossy link).
type dropAnswers struct {
	inner Remote
	match string
	n     *int
}

func (d dropAnswers) Do(dest string, req OutboundRequest, done func(OutboundResponse, error)) {
	if !strings.Contains(req.URI, d.match) || *d.n == 0 {
		d.inner.Do(dest, req, done)
		return
	}
	*d.n--
	d.inner.Do(dest, req, func(OutboundResponse, error) {
		done(OutboundResponse{}, errors.New("test: the answer was lost"))
	})
}

// A send_join or invite whose answer is lost is sent again (the same
// event; the other server answers the same), so the join and the invite
// succeed instead of failing while the other server has acted on them.
func TestFedRoomLostAnswersSentAgain(t *testing.T) {
	for _, match := range []string{"/send_join/", "/v2/invite/"} {
		t.Run(strings.Trim(match, "/"), func(t *testing.T) {
			fn := newFedNet(t)
			lost := 1
			a, _ := fn.nodeVia("a.test", t.TempDir(), 1, nil, func(r Remote) Remote { return dropAnswers{inner: r, match: match, n: &lost} })
			b, _ := fn.nodeVia("b.test", t.TempDir(), 2, nil, func(r Remote) Remote { return dropAnswers{inner: r, match: match, n: &lost} })
			alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
			roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"preset": "private_chat"}).str("room_id")
			fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
			fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
			if lost != 0 {
				t.Fatalf("no %s answer was lost", match)
			}
			if m := fn.membership(alice, roomID, bob.id); m != "join" {
				t.Fatalf("a.test sees bob as %q", m)
			}
		})
	}
}
