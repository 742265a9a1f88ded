package homeserver

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/xmatrix"
)

// run drives the network and the fake clock's due timers until both are
// idle (timers in the future, such as retry backoff, are left alone).
func (fn *fedNet) run() {
	fn.t.Helper()
	for i := 0; i < 10000; i++ {
		fn.net.Run(100000)
		fn.clock.Advance(0)
		if fn.net.Pending() == 0 {
			if next, ok := fn.clock.Next(); !ok || next.After(fn.clock.Now()) {
				return
			}
		}
	}
	fn.t.Fatal("network and clock never went idle")
}

// call sends a client request to tn, runs everything to idle and checks
// the status.
func (fn *fedNet) call(tn *testNode, want int, method, path, token string, body any) testResp {
	fn.t.Helper()
	r, _ := tn.start(method, path, token, body)
	fn.run()
	if !r.Answered {
		fn.t.Fatalf("%s %s on %s: no answer", method, path, tn.ServerName())
	}
	if want != 0 && r.Status != want {
		fn.t.Fatalf("%s %s on %s: %d %s, want %d", method, path, tn.ServerName(), r.Status, r.Raw, want)
	}
	return *r
}

// fedUser is a registered user on one node.
type fedUser struct {
	tn    *testNode
	id    string
	token string
}

func (fn *fedNet) user(tn *testNode, name string) fedUser {
	id, tok, _ := tn.register(name, "pw")
	return fedUser{tn: tn, id: id, token: tok}
}

func roomPath(roomID, rest string) string {
	return "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + rest
}

// sayTxn numbers the transaction IDs of say.
var sayTxn int

func (fn *fedNet) say(u fedUser, roomID, body string) string {
	fn.t.Helper()
	sayTxn++
	r := fn.call(u.tn, 200, "PUT", roomPath(roomID, fmt.Sprintf("/send/m.room.message/t%d", sayTxn)), u.token,
		map[string]string{"msgtype": "m.text", "body": body})
	return r.str("event_id")
}

// bodies lists the message bodies of a room's timeline as u sees it
// through /messages, oldest first.
func (fn *fedNet) bodies(u fedUser, roomID string) []string {
	fn.t.Helper()
	r := fn.call(u.tn, 200, "GET", roomPath(roomID, "/messages?dir=b&limit=1000"), u.token, nil)
	chunk, _ := r.Body["chunk"].([]any)
	var out []string
	for i := len(chunk) - 1; i >= 0; i-- {
		ev, _ := chunk[i].(map[string]any)
		if ev["type"] != "m.room.message" {
			continue
		}
		c, _ := ev["content"].(map[string]any)
		s, _ := c["body"].(string)
		out = append(out, s)
	}
	return out
}

// membership is u's view of target's membership in a room ("" if none).
func (fn *fedNet) membership(u fedUser, roomID, target string) string {
	fn.t.Helper()
	r := fn.call(u.tn, 0, "GET", roomPath(roomID, "/state/m.room.member/"+url.PathEscape(target)), u.token, nil)
	if r.Status != 200 {
		return ""
	}
	return r.str("membership")
}

func sameList(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// twoServers: alice on a.test creates a room and invites bob on b.test,
// who joins.
func twoServers(t *testing.T) (fn *fedNet, alice, bob fedUser, roomID string) {
	fn = newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob = fn.user(a, "alice"), fn.user(b, "bob")
	roomID = fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"name": "fed"}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	// bob sees the invite in /sync before his server is in the room.
	s := fn.call(b, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	inv, _ := s.Body["rooms"].(map[string]any)["invite"].(map[string]any)
	if inv[roomID] == nil {
		t.Fatalf("bob's sync has no invite to %s: %s", roomID, s.Raw)
	}
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q, want join", m)
	}
	if m := fn.membership(bob, roomID, alice.id); m != "join" {
		t.Fatalf("b.test sees alice as %q, want join", m)
	}
	return fn, alice, bob, roomID
}

func TestFedRoomInviteJoinAndMessages(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	var want []string
	for i := 0; i < 5; i++ {
		m1, m2 := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		fn.say(alice, roomID, m1)
		fn.say(bob, roomID, m2)
		want = append(want, m1, m2)
	}
	if got := fn.bodies(alice, roomID); !sameList(got, want) {
		t.Fatalf("alice sees %q, want %q", got, want)
	}
	if got := fn.bodies(bob, roomID); !sameList(got, want) {
		t.Fatalf("bob sees %q, want %q", got, want)
	}
	// Both servers agree on the room's state and extremities.
	ra, _ := roomsOf(alice.tn.Node).room(roomID)
	rb, _ := roomsOf(bob.tn.Node).room(roomID)
	if !sameList(ra.extremities, rb.extremities) {
		t.Fatalf("extremities differ: %v vs %v", ra.extremities, rb.extremities)
	}
	if len(ra.stateIDs) != len(rb.stateIDs) {
		t.Fatalf("state differs: %d vs %d entries", len(ra.stateIDs), len(rb.stateIDs))
	}
	for k, id := range ra.stateIDs {
		if rb.stateIDs[k] != id {
			t.Fatalf("state %v: %s vs %s", k, id, rb.stateIDs[k])
		}
	}
}

func TestFedRoomKickBanUnbanLeaveRejoin(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/kick"), alice.token, map[string]string{"user_id": bob.id})
	if m := fn.membership(alice, roomID, bob.id); m != "leave" {
		t.Fatalf("after kick a.test sees bob as %q", m)
	}
	if m := roomsOf(bob.tn.Node).membership(roomID, bob.id); m != "leave" {
		t.Fatalf("after kick b.test has bob as %q", m)
	}
	// Kicked from an invite-only room: bob cannot come back uninvited.
	r := fn.call(bob.tn, 0, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	if r.Status != 403 {
		t.Fatalf("rejoin without invite: %d %s, want 403", r.Status, r.Raw)
	}
	// b.test left the room with bob: it is not sent the ban, and the ban
	// keeps bob out.
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/ban"), alice.token, map[string]string{"user_id": bob.id})
	if m := fn.membership(alice, roomID, bob.id); m != "ban" {
		t.Fatalf("after ban a.test has bob as %q", m)
	}
	fn.call(alice.tn, 403, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/unban"), alice.token, map[string]string{"user_id": bob.id})
	if m := fn.membership(alice, roomID, bob.id); m != "leave" {
		t.Fatalf("after unban a.test has bob as %q", m)
	}
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	if m := roomsOf(bob.tn.Node).membership(roomID, bob.id); m != "invite" {
		t.Fatalf("after re-invite b.test has bob as %q", m)
	}
	fn.call(bob.tn, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	fn.say(bob, roomID, "back")
	fn.call(bob.tn, 200, "POST", roomPath(roomID, "/leave"), bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "leave" {
		t.Fatalf("after leave a.test sees bob as %q", m)
	}
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(bob.tn, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	fn.say(alice, roomID, "welcome back")
	got := fn.bodies(bob, roomID)
	if len(got) == 0 || got[len(got)-1] != "welcome back" {
		t.Fatalf("bob sees %q after rejoining", got)
	}
	if got := fn.bodies(alice, roomID); !sameList(got, []string{"back", "welcome back"}) {
		t.Fatalf("alice sees %q", got)
	}
}

func TestFedRoomRejectRemoteInvite(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", roomPath(roomID, "/leave"), bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "leave" {
		t.Fatalf("a.test sees bob as %q after he declined", m)
	}
	s := fn.call(b, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	if inv, _ := s.Body["rooms"].(map[string]any)["invite"].(map[string]any); inv[roomID] != nil {
		t.Fatalf("declined invite still in sync: %s", s.Raw)
	}
}

// threeServers: twoServers plus carol on c.test, invited and joined.
func threeServers(t *testing.T) (fn *fedNet, alice, bob, carol fedUser, roomID string) {
	fn, alice, bob, roomID = twoServers(t)
	c, _ := fn.node("c.test", t.TempDir(), 3)
	carol = fn.user(c, "carol")
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	return fn, alice, bob, carol, roomID
}

// signer is a server name and a signing key.
type signer struct {
	server, keyID string
	key           ed25519.PrivateKey
}

func signerOf(tn *testNode) signer { return signer{tn.ServerName(), tn.key.ID, tn.key.Key} }

// nodeByName returns the node attached to the network under name.
func (fn *fedNet) nodeByName(t *testing.T, name string) *testNode {
	return &testNode{Node: fn.net.nodes[name], t: t, clock: fn.clock}
}

// forge builds an event signed by from, with the given prev_events and
// auth_events chosen from state.
func forge(t testing.TB, from signer, rm *roomCache, sender, typ string, stateKey *string, content any,
	prev []string, state auth.State, depth int64) *event.Event {
	fail := func(err error) {
		if t == nil {
			panic(err)
		}
		t.Helper()
		t.Fatal(err)
	}
	raw, _ := json.Marshal(content)
	sk := ""
	if stateKey != nil {
		sk = *stateKey
	}
	authEvs, err := auth.SelectAuthEvents(rm.version, typ, sk, sender, raw, state)
	if err != nil {
		fail(err)
	}
	ids := make([]string, len(authEvs))
	for i, e := range authEvs {
		ids[i] = e.ID()
	}
	ev, err := event.Build(event.Proto{RoomID: rm.id, Sender: sender, Type: typ, StateKey: stateKey, Content: content,
		PrevEvents: prev, AuthEvents: ids, Depth: depth, OriginServerTS: clockEpochMillis},
		rm.version, from.server, from.keyID, from.key)
	if err != nil {
		fail(err)
	}
	return ev
}

// sendPDUs sends a transaction from one node to another and returns the
// per-PDU results (event ID → error string, "" for accepted).
func (fn *fedNet) sendPDUs(from, to *testNode, pdus ...json.RawMessage) map[string]string {
	fn.t.Helper()
	sayTxn++
	body, _ := json.Marshal(map[string]any{"origin": from.ServerName(), "origin_server_ts": from.Now().UnixMilli(), "pdus": pdus})
	req := fmt.Sprintf("/_matrix/federation/v1/send/forged%d", sayTxn)
	r, _ := fn.signedAsync(to, from, "PUT", req, body)
	fn.run()
	if !r.Answered || r.Status != 200 {
		fn.t.Fatalf("send to %s: %d %s", to.ServerName(), r.Status, r.Raw)
	}
	var ans struct {
		PDUs map[string]struct {
			Error string `json:"error"`
		} `json:"pdus"`
	}
	if err := json.Unmarshal(r.Raw, &ans); err != nil {
		fn.t.Fatal(err)
	}
	out := map[string]string{}
	for id, res := range ans.PDUs {
		out[id] = res.Error
	}
	return out
}

// signedAsync dispatches a request signed by from's key into to without
// running the network.
func (fn *fedNet) signedAsync(to, from *testNode, method, uri string, body []byte) (*testResp, *Call) {
	fn.t.Helper()
	h, err := xmatrix.Sign(xmatrix.Request{Method: method, URI: uri, Origin: from.ServerName(), Destination: to.ServerName(), Content: body},
		from.key.ID, from.key.Key)
	if err != nil {
		fn.t.Fatal(err)
	}
	authz, err := h.Format()
	if err != nil {
		fn.t.Fatal(err)
	}
	path, rq, _ := strings.Cut(uri, "?")
	q, _ := url.ParseQuery(rq)
	req := &Request{Method: method, Path: path, Query: q, URI: uri, Body: body, Authorization: authz, RemoteIP: "192.0.2.9"}
	out := &testResp{}
	c := to.Dispatch(req, func(r Response) {
		raw, _ := marshalBody(r.Body)
		*out = testResp{Status: r.Status, Raw: raw, Answered: true, Body: map[string]any{}}
		_ = json.Unmarshal(raw, &out.Body)
	})
	return out, c
}

// rejectedReason is the recorded rejection of an event ("" if none).
func rejectedReason(tn *testNode, id string) string {
	r, _ := tn.store.RejectedReason(id)
	return r
}

func TestFedRoomReceiveChecks(t *testing.T) {
	fn, alice, _, carol, roomID := threeServers(t)
	a, c := alice.tn, carol.tn
	rm, err := roomsOf(a.Node).room(roomID)
	if err != nil {
		t.Fatal(err)
	}
	msg := map[string]string{"msgtype": "m.text", "body": "hi"}

	// A valid event from carol is accepted.
	good := forge(t, signerOf(c), rm, carol.id, "m.room.message", nil, msg, rm.extremities, rm.state, rm.depth+1)
	if res := fn.sendPDUs(c, a, good.JSON()); res[good.ID()] != "" {
		t.Fatalf("good event: %q", res[good.ID()])
	}

	rm, _ = roomsOf(a.Node).room(roomID)
	// Forged signature: c.test's key ID, another private key.
	mallory := signerOf(c)
	mallory.key = ed25519.NewKeyFromSeed(make([]byte, 32))
	forged := forge(t, mallory, rm, carol.id, "m.room.message", nil, msg, rm.extremities, rm.state, rm.depth+1)
	// Not signed by the sender's server at all: b.test signs carol's event.
	wrongServer := forge(t, signerOf(fn.nodeByName(t, "b.test")), rm, carol.id, "m.room.message", nil,
		map[string]string{"msgtype": "m.text", "body": "b signs"}, rm.extremities, rm.state, rm.depth+1)
	// Fails auth: a user of c.test who is not in the room.
	stranger := forge(t, signerOf(c), rm, "@stranger:c.test", "m.room.message", nil, msg, rm.extremities, rm.state, rm.depth+1)
	// Fails auth: carol (power 0) changes the power levels.
	plState := strPtr("")
	plHack := forge(t, signerOf(c), rm, carol.id, auth.TypePowerLevels, plState, map[string]any{"users": map[string]int{carol.id: 100}},
		rm.extremities, rm.state, rm.depth+1)
	// Malformed.
	bad := json.RawMessage(`{"room_id":"` + roomID + `","type":"m.room.message"}`)
	// A room a.test is not in.
	elsewhere := json.RawMessage(`{"room_id":"!nowhere:c.test","type":"m.room.message","sender":"@carol:c.test","content":{},"depth":1,"prev_events":[],"auth_events":[],"origin_server_ts":1}`)
	res := fn.sendPDUs(c, a, forged.JSON(), wrongServer.JSON(), stranger.JSON(), plHack.JSON(), bad, elsewhere)
	for _, ev := range []*event.Event{forged, wrongServer, stranger, plHack} {
		if res[ev.ID()] == "" {
			t.Fatalf("%s (%s) accepted; results %v", ev.ID(), ev.Sender(), res)
		}
		if rejectedReason(a, ev.ID()) == "" {
			t.Fatalf("%s: rejection not recorded", ev.ID())
		}
		if _, err := a.store.Event(ev.ID()); err == nil {
			t.Fatalf("%s: rejected event stored", ev.ID())
		}
	}
	if !strings.Contains(res[forged.ID()], "signature") || !strings.Contains(res[wrongServer.ID()], "not signed by c.test") {
		t.Fatalf("signature reasons: %q / %q", res[forged.ID()], res[wrongServer.ID()])
	}
	if !strings.Contains(res[stranger.ID()], "auth") || !strings.Contains(res[plHack.ID()], "auth") {
		t.Fatalf("auth reasons: %q / %q", res[stranger.ID()], res[plHack.ID()])
	}
	// The malformed PDU is refused by ID; the one for an unknown room gets
	// no result (its event ID cannot be computed). Neither is stored.
	badID, _ := event.EventID(bad, rm.version)
	if len(res) != 5 || !strings.Contains(res[badID], "malformed") {
		t.Fatalf("want 5 results with %s malformed, got %v", badID, res)
	}
	if rows, _ := a.store.RoomEventsRange(roomID, 0, 1<<62, true, 0); len(rows) == 0 {
		t.Fatal("no events")
	} else if last := rows[len(rows)-1]; last.EventID != good.ID() {
		t.Fatalf("newest event is %s, want %s", last.EventID, good.ID())
	}
	// An event whose signing keys cannot be fetched (d.test is not on the
	// network) is refused but not recorded as rejected: it may verify
	// later.
	unreachable := forge(t, signer{"d.test", "ed25519:d", ed25519.NewKeyFromSeed(make([]byte, 32))}, rm, "@dave:d.test",
		"m.room.message", nil, msg, rm.extremities, rm.state, rm.depth+1)
	if res := fn.sendPDUs(c, a, unreachable.JSON()); !strings.Contains(res[unreachable.ID()], "unavailable") {
		t.Fatalf("event with unreachable keys: %q", res[unreachable.ID()])
	}
	if rejectedReason(a, unreachable.ID()) != "" {
		t.Fatal("an event whose keys could not be fetched was recorded as rejected")
	}
	// Replaying an accepted event changes nothing; a rejected one stays
	// rejected.
	res = fn.sendPDUs(c, a, good.JSON(), stranger.JSON())
	if res[good.ID()] != "" || res[stranger.ID()] == "" {
		t.Fatalf("replay: %v", res)
	}
	if got := fn.bodies(alice, roomID); !sameList(got, []string{"hi"}) {
		t.Fatalf("alice sees %q", got)
	}
}

func TestFedRoomContentHashMismatchIsRedacted(t *testing.T) {
	fn, alice, _, carol, roomID := threeServers(t)
	a, c := alice.tn, carol.tn
	rm, _ := roomsOf(a.Node).room(roomID)
	ev := forge(t, signerOf(c), rm, carol.id, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "original"},
		rm.extremities, rm.state, rm.depth+1)
	// Swap the content after signing: the signature (over the redacted
	// form) still verifies, the content hash does not.
	tampered := strings.Replace(string(ev.JSON()), `"original"`, `"tampered"`, 1)
	res := fn.sendPDUs(c, a, json.RawMessage(tampered))
	if res[ev.ID()] != "" {
		t.Fatalf("tampered event: %q", res[ev.ID()])
	}
	row, err := a.store.Event(ev.ID())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(row.JSON), "tampered") || strings.Contains(string(row.JSON), "original") {
		t.Fatalf("stored event keeps content: %s", row.JSON)
	}
}

func TestFedRoomSoftFail(t *testing.T) {
	fn, alice, _, carol, roomID := threeServers(t)
	a, c := alice.tn, carol.tn
	before, _ := roomsOf(a.Node).room(roomID)
	oldExt, oldDepth := append([]string{}, before.extremities...), before.depth
	oldState := maps.Clone(before.state)
	// c.test is unreachable while alice bans carol.
	fn.net.SetDown("c.test", true)
	fn.call(a, 200, "POST", roomPath(roomID, "/ban"), alice.token, map[string]string{"user_id": carol.id})
	fn.net.SetDown("c.test", false)
	// carol's server, unaware, sends a message on the old branch: allowed by
	// the state before it, not by the room's current state.
	late := forge(t, signerOf(c), before, carol.id, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "late"},
		oldExt, oldState, oldDepth+1)
	res := fn.sendPDUs(c, a, late.JSON())
	if res[late.ID()] != "" {
		t.Fatalf("soft-failed event answered with an error: %q", res[late.ID()])
	}
	row, err := a.store.Event(late.ID())
	if err != nil {
		t.Fatalf("soft-failed event not stored: %v", err)
	}
	if !row.Outlier || row.StateBefore <= 0 {
		t.Fatalf("soft-failed event stored as %+v", row)
	}
	rm, _ := roomsOf(a.Node).room(roomID)
	if slices.Contains(rm.extremities, late.ID()) {
		t.Fatal("soft-failed event became a forward extremity")
	}
	if got := fn.bodies(alice, roomID); len(got) != 0 {
		t.Fatalf("alice sees %q", got)
	}
	if r := fn.call(a, 0, "GET", roomPath(roomID, "/event/"+url.PathEscape(late.ID())), alice.token, nil); r.Status != 404 {
		t.Fatalf("soft-failed event served to a client: %d %s", r.Status, r.Raw)
	}
}

func TestFedRoomServerACL(t *testing.T) {
	fn, alice, _, carol, roomID := threeServers(t)
	a, c := alice.tn, carol.tn
	fn.call(a, 200, "PUT", roomPath(roomID, "/state/m.room.server_acl/"), alice.token,
		map[string]any{"allow": []string{"*"}, "deny": []string{"c.test"}})
	rm, _ := roomsOf(a.Node).room(roomID)
	ev := forge(t, signerOf(c), rm, carol.id, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "denied"},
		rm.extremities, rm.state, rm.depth+1)
	res := fn.sendPDUs(c, a, ev.JSON())
	if r, ok := res[ev.ID()]; !ok || !strings.Contains(r, "ACL") {
		t.Fatalf("ACL'd server's PDU: %q", res[ev.ID()])
	}
	r, _ := fn.signedAsync(a, c, "GET", "/_matrix/federation/v1/state_ids/"+url.PathEscape(roomID)+"?event_id="+url.QueryEscape(rm.extremities[0]), nil)
	fn.run()
	if r.Status != 403 {
		t.Fatalf("state_ids from ACL'd server: %d %s", r.Status, r.Raw)
	}
}

// clockEpochMillis is the fake clock's start, as origin_server_ts.
var clockEpochMillis = clock.Epoch.UnixMilli()

// chat has a and b say n messages "m0", "m1", … in a room, b every
// bEvery-th, and returns the bodies in order.
func (fn *fedNet) chat(a, b fedUser, roomID string, n, bEvery int) []string {
	fn.t.Helper()
	var said []string
	for i := range n {
		u := a
		if i%bEvery == bEvery-1 {
			u = b
		}
		m := fmt.Sprintf("m%d", i)
		fn.say(u, roomID, m)
		said = append(said, m)
	}
	return said
}

func TestFedRoomLateJoinerBackfills(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	want := fn.chat(alice, bob, roomID, 12, 3)
	c, _ := fn.node("c.test", t.TempDir(), 3)
	carol := fn.user(c, "carol")
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": carol.id})
	fn.call(c, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), carol.token, map[string]any{})
	if rows, _ := c.store.RoomEventsRange(roomID, 0, 1<<62, true, 0); len(rows) != 1 {
		t.Fatalf("c.test has %d timeline events right after joining, want only the join", len(rows))
	}
	if got := fn.bodies(carol, roomID); !sameList(got, want) {
		t.Fatalf("carol sees %q, want %q", got, want)
	}
	fn.say(carol, roomID, "hello all")
	if got := fn.bodies(bob, roomID); got[len(got)-1] != "hello all" {
		t.Fatalf("bob sees %q", got)
	}
}

// local runs an event built elsewhere through node tn's own PDU checks as
// if tn had created it.
func (fn *fedNet) local(tn *testNode, ev *event.Event) {
	fn.t.Helper()
	var err error = errors.New("not processed")
	fedRoomsOf(tn.Node).enqueue(&pduJob{origin: tn.ServerName(), raw: ev.JSON(), roomID: ev.RoomID(), live: true,
		done: func(_ string, e error) { err = e }})
	fn.run()
	if err != nil {
		fn.t.Fatalf("%s: %v", ev.ID(), err)
	}
}

func TestFedRoomFillsGaps(t *testing.T) {
	for _, n := range []int{3, missingEventsLimit + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fn, alice, _, carol, roomID := threeServers(t)
			a, c := alice.tn, carol.tn
			// c.test makes a chain of n events that a.test does not see…
			var chain []*event.Event
			for i := 0; i < n; i++ {
				rm, _ := roomsOf(c.Node).room(roomID)
				ev := forge(t, signerOf(c), rm, carol.id, "m.room.message", nil,
					map[string]string{"msgtype": "m.text", "body": fmt.Sprint("gap", i)}, rm.extremities, rm.state, rm.depth+1)
				fn.local(c, ev)
				chain = append(chain, ev)
			}
			// …except the last, whose prev events a.test must fetch.
			last := chain[n-1]
			if res := fn.sendPDUs(c, a, last.JSON()); res[last.ID()] != "" {
				t.Fatalf("last event: %q", res[last.ID()])
			}
			rm, _ := roomsOf(a.Node).room(roomID)
			if !slices.Contains(rm.extremities, last.ID()) {
				t.Fatalf("a.test extremities %v lack %s", rm.extremities, last.ID())
			}
			got := fn.bodies(alice, roomID)
			if len(got) == 0 || got[len(got)-1] != fmt.Sprint("gap", n-1) {
				t.Fatalf("alice sees %q", got)
			}
			if n <= missingEventsLimit && len(got) != n {
				t.Fatalf("alice sees %d of %d events: %q", len(got), n, got)
			}
			fn.say(alice, roomID, "after the gap")
			if got := fn.bodies(carol, roomID); got[len(got)-1] != "after the gap" {
				t.Fatalf("carol sees %q", got)
			}
		})
	}
}

func TestFedRoomStoppedServerCatchesUp(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	bDir := t.TempDir()
	b, stopB := fn.node("b.test", bDir, 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	stopB()
	var want []string
	for i := 0; i < 10; i++ {
		want = append(want, fmt.Sprint("while away ", i))
		fn.say(alice, roomID, want[i])
	}
	b2, _ := fn.node("b.test", bDir, 2)
	bob.tn = b2
	// The queue retries with backoff; give it time.
	for i := 0; i < 20; i++ {
		fn.clock.Advance(time.Minute)
		fn.run()
	}
	if got := fn.bodies(bob, roomID); !sameList(got, want) {
		t.Fatalf("bob sees %q, want %q", got, want)
	}
}

func TestFedRoomConcurrentStateResolves(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	// alice gives bob power to set the topic.
	fn.call(alice.tn, 200, "PUT", roomPath(roomID, "/state/m.room.power_levels/"), alice.token, map[string]any{
		"users": map[string]int{alice.id: 100, bob.id: 50}, "state_default": 50, "events_default": 0,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
	})
	fn.net.SetDown("a.test", true)
	fn.net.SetDown("b.test", true)
	fn.call(alice.tn, 200, "PUT", roomPath(roomID, "/state/m.room.topic/"), alice.token, map[string]string{"topic": "alice's"})
	fn.call(bob.tn, 200, "PUT", roomPath(roomID, "/state/m.room.topic/"), bob.token, map[string]string{"topic": "bob's"})
	fn.net.SetDown("a.test", false)
	fn.net.SetDown("b.test", false)
	for i := 0; i < 20; i++ {
		fn.clock.Advance(time.Minute)
		fn.run()
	}
	ra, _ := roomsOf(alice.tn.Node).room(roomID)
	rb, _ := roomsOf(bob.tn.Node).room(roomID)
	if len(ra.extremities) != 2 || !sameList(ra.extremities, rb.extremities) {
		t.Fatalf("extremities %v vs %v, want the same two", ra.extremities, rb.extremities)
	}
	topic := auth.StateKey{Type: "m.room.topic"}
	if ra.state[topic].ID() != rb.state[topic].ID() {
		t.Fatalf("servers resolved the topic differently: %s vs %s", ra.state[topic].Content(), rb.state[topic].Content())
	}
	// The next event merges the branches on both servers.
	fn.say(alice, roomID, "merged")
	ra, _ = roomsOf(alice.tn.Node).room(roomID)
	rb, _ = roomsOf(bob.tn.Node).room(roomID)
	if len(ra.extremities) != 1 || !sameList(ra.extremities, rb.extremities) {
		t.Fatalf("after merge: %v vs %v", ra.extremities, rb.extremities)
	}
}

func TestFedRoomTypingReceiptsProfile(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	fn.call(alice.tn, 200, "PUT", roomPath(roomID, "/typing/"+url.PathEscape(alice.id)), alice.token,
		map[string]any{"typing": true, "timeout": 30000})
	if typ := roomsOf(bob.tn.Node).typing[roomID]; typ == nil || typ.users[alice.id] == nil {
		t.Fatal("b.test does not see alice typing")
	}
	id := fn.say(alice, roomID, "read me")
	fn.call(bob.tn, 200, "POST", roomPath(roomID, "/receipt/m.read/"+url.PathEscape(id)), bob.token, map[string]any{})
	rs, err := alice.tn.store.Receipts(roomID, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rs {
		found = found || (r.UserID == bob.id && r.EventID == id)
	}
	if !found {
		t.Fatalf("a.test has no receipt of bob's: %+v", rs)
	}
	fn.call(bob.tn, 200, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(bob.id)+"/displayname", bob.token,
		map[string]string{"displayname": "Bobby"})
	r := fn.call(alice.tn, 200, "GET", roomPath(roomID, "/state/m.room.member/"+url.PathEscape(bob.id)), alice.token, nil)
	if r.str("displayname") != "Bobby" {
		t.Fatalf("a.test has bob's member event %s", r.Raw)
	}
}

func TestFedRoomKnock(t *testing.T) {
	v, _ := event.LookupVersion(event.DefaultRoomVersion)
	keys := auth.AuthStateKeys(v, auth.TypeMember, "@k:b.test", "@k:b.test", json.RawMessage(`{"membership":"knock"}`))
	if !slices.Contains(keys, auth.StateKey{Type: auth.TypeJoinRules}) {
		// server-server-api "Auth events selection": "If membership is
		// join, invite or knock, the current m.room.join_rules event".
		t.Skip("auth.AuthStateKeys leaves m.room.join_rules out of a knock's auth events, so no knock can pass the auth rules")
	}
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"name": "knock here"}).str("room_id")
	fn.call(a, 200, "PUT", roomPath(roomID, "/state/m.room.join_rules/"), alice.token, map[string]string{"join_rule": "knock"})
	fn.call(b, 200, "POST", "/_matrix/client/v3/knock/"+url.PathEscape(roomID), bob.token, map[string]any{"reason": "let me in"})
	if m := fn.membership(alice, roomID, bob.id); m != "knock" {
		t.Fatalf("a.test sees bob as %q, want knock", m)
	}
	s := fn.call(b, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	knock, _ := s.Body["rooms"].(map[string]any)["knock"].(map[string]any)
	if knock[roomID] == nil || !strings.Contains(string(s.Raw), "knock here") {
		t.Fatalf("bob's sync lacks the knock with the room's name: %s", s.Raw)
	}
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q, want join", m)
	}
}

func TestFedRoomReadEndpoints(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	a, b := alice.tn, bob.tn
	c, _ := fn.node("c.test", t.TempDir(), 3)
	id := fn.say(alice, roomID, "x")
	get := func(from *testNode, uri string) testResp {
		t.Helper()
		r, _ := fn.signedAsync(a, from, "GET", uri, nil)
		fn.run()
		return *r
	}
	room := url.PathEscape(roomID)
	for _, uri := range []string{
		"/_matrix/federation/v1/event/" + url.PathEscape(id),
		"/_matrix/federation/v1/event_auth/" + room + "/" + url.PathEscape(id),
		"/_matrix/federation/v1/state_ids/" + room + "?event_id=" + url.QueryEscape(id),
		"/_matrix/federation/v1/state/" + room + "?event_id=" + url.QueryEscape(id),
		"/_matrix/federation/v1/backfill/" + room + "?v=" + url.QueryEscape(id) + "&limit=5",
		"/_matrix/federation/v1/hierarchy/" + room,
	} {
		if r := get(b, uri); r.Status != 200 {
			t.Fatalf("b.test GET %s: %d %s", uri, r.Status, r.Raw)
		}
		if r := get(c, uri); r.Status != 403 && r.Status != 404 {
			t.Fatalf("c.test (not in the room) GET %s: %d %s", uri, r.Status, r.Raw)
		}
	}
	// state_ids: the state before the message, with its auth chain.
	r := get(b, "/_matrix/federation/v1/state_ids/"+room+"?event_id="+url.QueryEscape(id))
	var st struct {
		PDUIDs   []string `json:"pdu_ids"`
		ChainIDs []string `json:"auth_chain_ids"`
	}
	if err := json.Unmarshal(r.Raw, &st); err != nil {
		t.Fatal(err)
	}
	rm, _ := roomsOf(a.Node).room(roomID)
	if len(st.PDUIDs) != len(rm.stateIDs) || len(st.ChainIDs) == 0 {
		t.Fatalf("state_ids: %d state events (room has %d), %d in the auth chain", len(st.PDUIDs), len(rm.stateIDs), len(st.ChainIDs))
	}
	// backfill returns the event and those before it, newest first.
	r = get(b, "/_matrix/federation/v1/backfill/"+room+"?v="+url.QueryEscape(id)+"&limit=3")
	var bf struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	_ = json.Unmarshal(r.Raw, &bf)
	if len(bf.PDUs) != 3 {
		t.Fatalf("backfill gave %d PDUs, want 3", len(bf.PDUs))
	}
	if first, _ := event.EventID(bf.PDUs[0], rm.version); first != id {
		t.Fatalf("backfill starts at %s, want %s", first, id)
	}
	// get_missing_events between the room's start and the message.
	body, _ := json.Marshal(map[string]any{"earliest_events": []string{}, "latest_events": []string{id}, "limit": 2})
	rr, _ := fn.signedAsync(a, b, "POST", "/_matrix/federation/v1/get_missing_events/"+room, body)
	fn.run()
	var gm struct {
		Events []json.RawMessage `json:"events"`
	}
	_ = json.Unmarshal(rr.Raw, &gm)
	if rr.Status != 200 || len(gm.Events) != 2 {
		t.Fatalf("get_missing_events: %d %s", rr.Status, rr.Raw)
	}
	// make_join refuses a user of another server and an unsupported version.
	if r := get(c, "/_matrix/federation/v1/make_join/"+room+"/"+url.PathEscape(bob.id)+"?ver=10"); r.Status != 403 {
		t.Fatalf("make_join for another server's user: %d %s", r.Status, r.Raw)
	}
	if r := get(c, "/_matrix/federation/v1/make_join/"+room+"/"+url.PathEscape("@x:c.test")+"?ver=1"); r.Status != 400 ||
		r.str("errcode") != ErrCodeIncompatibleRoomVersion {
		t.Fatalf("make_join with ver=1: %d %s", r.Status, r.Raw)
	}
	_ = b
}

// FuzzFedRoomReceivePDU feeds arbitrary PDUs for a shared room to a node:
// each must be answered exactly once and without a panic.
func FuzzFedRoomReceivePDU(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"room_id":"!r:a.test"}`))
	f.Add([]byte(`{"room_id":"!r:a.test","type":"m.room.message","sender":"@carol:c.test","content":{},"depth":9007199254740993,"prev_events":[],"auth_events":[],"origin_server_ts":1}`))
	f.Add([]byte(`{"room_id":"!r:a.test","type":"m.room.member","state_key":"@c:c.test","sender":"@c:c.test","content":{"membership":"join"},"depth":1,"prev_events":["$x"],"auth_events":["$y","$y"],"origin_server_ts":1,"signatures":{"c.test":{"ed25519:x":"AAAA"}},"hashes":{"sha256":"AAAA"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fn, alice, _, _, roomID := threeServers(t)
		a := alice.tn.Node
		raw := []byte(strings.ReplaceAll(string(data), "!r:a.test", roomID))
		answers := 0
		fedRoomsOf(a).receivePDU("c.test", raw, func(string, error) { answers++ })
		fn.run()
		if answers != 1 || fedRoomsOf(a).panics != 0 {
			t.Fatalf("%d answers, %d panics for %q", answers, fedRoomsOf(a).panics, raw)
		}
	})
}

func TestFedRoomThreeServersConsistent(t *testing.T) {
	fn, alice, bob, carol, roomID := threeServers(t)
	users := []fedUser{alice, bob, carol}
	var want []string
	var bobMsg string
	for i := 0; i < 9; i++ {
		u := users[i%3]
		m := fmt.Sprintf("%s %d", u.id, i)
		if id := fn.say(u, roomID, m); u.id == bob.id {
			bobMsg = id
		}
		if i == 7 {
			m = "" // redacted below: the event stays, without its body
		}
		want = append(want, m)
	}
	// bob redacts his last message; every server applies the redaction.
	r := fn.call(bob.tn, 200, "PUT", roomPath(roomID, "/redact/"+url.PathEscape(bobMsg)+"/r1"), bob.token, map[string]any{})
	redaction := r.str("event_id")
	for _, u := range users {
		if got := fn.bodies(u, roomID); !sameList(got, want) {
			t.Fatalf("%s sees %q", u.id, got)
		}
		row, err := u.tn.store.Event(bobMsg)
		if err != nil || row.RedactedBy != redaction {
			t.Fatalf("%s: message %s redacted by %q (%v), want %s", u.tn.ServerName(), bobMsg, row.RedactedBy, err, redaction)
		}
	}
	ra, _ := roomsOf(alice.tn.Node).room(roomID)
	for _, u := range users[1:] {
		ru, _ := roomsOf(u.tn.Node).room(roomID)
		if !sameList(ra.extremities, ru.extremities) || !maps.Equal(ra.stateIDs, ru.stateIDs) {
			t.Fatalf("%s disagrees with a.test: %v / %v", u.tn.ServerName(), ru.extremities, ra.extremities)
		}
	}
	// bob (a joined admin-less user) cannot kick carol; alice can, from
	// another server than carol's.
	if r := fn.call(bob.tn, 0, "POST", roomPath(roomID, "/kick"), bob.token, map[string]string{"user_id": carol.id}); r.Status != 403 {
		t.Fatalf("bob kicks carol: %d %s", r.Status, r.Raw)
	}
	fn.call(alice.tn, 200, "POST", roomPath(roomID, "/kick"), alice.token, map[string]string{"user_id": carol.id})
	for _, u := range users {
		if m := roomsOf(u.tn.Node).membership(roomID, carol.id); m != "leave" {
			t.Fatalf("%s has carol as %q after the kick", u.tn.ServerName(), m)
		}
	}
}

func TestFedRoomRestrictedJoin(t *testing.T) {
	fn, alice, bob, space := twoServers(t)
	a, b := alice.tn, bob.tn
	c, _ := fn.node("c.test", t.TempDir(), 3)
	carol := fn.user(c, "carol")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"name": "members of space only"}).str("room_id")
	fn.call(a, 200, "PUT", roomPath(roomID, "/state/m.room.join_rules/"), alice.token, map[string]any{
		"join_rule": "restricted", "allow": []any{map[string]string{"type": "m.room_membership", "room_id": space}}})
	// bob is in the allowed room: a.test authorises his join and signs it.
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID)+"?server_name=a.test", bob.token, map[string]any{})
	if m := fn.membership(alice, roomID, bob.id); m != "join" {
		t.Fatalf("a.test sees bob as %q", m)
	}
	row, err := a.store.Event(roomsOf(a.Node).members[roomID][bob.id].EventID)
	if err != nil || !strings.Contains(string(row.JSON), `"join_authorised_via_users_server":"`+alice.id+`"`) ||
		!strings.Contains(string(row.JSON), `"a.test":{`) || !strings.Contains(string(row.JSON), `"b.test":{`) {
		t.Fatalf("bob's join: %s (%v)", row.JSON, err)
	}
	// carol is not: refused.
	r := fn.call(c, 0, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID)+"?server_name=a.test", carol.token, map[string]any{})
	if r.Status != 403 {
		t.Fatalf("carol's restricted join: %d %s", r.Status, r.Raw)
	}
}

func TestFedRoomJoinedRoomInSync(t *testing.T) {
	fn, alice, bob, roomID := twoServers(t)
	fn.say(alice, roomID, "hello bob")
	s := fn.call(bob.tn, 200, "GET", "/_matrix/client/v3/sync", bob.token, nil)
	join, _ := s.Body["rooms"].(map[string]any)["join"].(map[string]any)
	jr, _ := join[roomID].(map[string]any)
	if jr == nil {
		t.Fatalf("bob's sync has no joined room: %s", s.Raw)
	}
	raw, _ := json.Marshal(jr)
	for _, want := range []string{`"m.room.create"`, `"m.room.name"`, `"hello bob"`, `"` + alice.id + `"`} {
		if !strings.Contains(string(raw), want) {
			t.Fatalf("bob's joined room lacks %s: %s", want, raw)
		}
	}
}

func TestFedRoomVersion12(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", "/_matrix/client/v3/createRoom", alice.token, map[string]any{"room_version": "12"}).str("room_id")
	fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
	fn.call(b, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID)+"?server_name=a.test", bob.token, map[string]any{})
	fn.say(alice, roomID, "v12 a")
	fn.say(bob, roomID, "v12 b")
	for _, u := range []fedUser{alice, bob} {
		if got := fn.bodies(u, roomID); !sameList(got, []string{"v12 a", "v12 b"}) {
			t.Fatalf("%s sees %q", u.id, got)
		}
	}
}
