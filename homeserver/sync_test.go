package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

func stateTypes(evs []map[string]any) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		out[e["type"].(string)]++
	}
	return out
}

func TestSyncStateDeltas(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat", "name": "One"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	s := decodeSync(t, tn.do("GET", cs+"/sync?filter="+url.QueryEscape(`{"room":{"timeline":{"limit":1}}}`), bt, nil))
	// The timeline holds Bob's join; the state is everything before it.
	if st := stateTypes(s.Rooms.Join[roomID].State.Events); st["m.room.create"] != 1 || st["m.room.member"] != 1 || st["m.room.name"] != 1 {
		t.Fatalf("initial sync state %v", st)
	}

	// A small change: it is in the timeline, and state is empty.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.name/", at, map[string]string{"name": "Two"}))
	s2 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, bt, nil))
	jr := s2.Rooms.Join[roomID]
	if jr.Timeline.Limited || len(jr.Timeline.Events) != 1 || len(jr.State.Events) != 0 {
		t.Fatalf("small delta: limited=%v timeline=%d state=%d", jr.Timeline.Limited, len(jr.Timeline.Events), len(jr.State.Events))
	}

	// A change followed by more messages than the timeline holds: the
	// change comes in the state section.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.name/", at, map[string]string{"name": "Three"}))
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.topic/", at, map[string]string{"topic": "t"}))
	for i := range 12 {
		tn.send(at, roomID, fmt.Sprintf("d%d", i), "x")
	}
	s3 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s2.NextBatch, bt, nil))
	jr = s3.Rooms.Join[roomID]
	if !jr.Timeline.Limited {
		t.Fatal("timeline not limited")
	}
	st := stateTypes(jr.State.Events)
	if len(st) != 2 || st["m.room.name"] != 1 || st["m.room.topic"] != 1 {
		t.Fatalf("gap state %v", st)
	}
	for _, e := range jr.State.Events {
		if e["type"] == "m.room.name" {
			if e["content"].(map[string]any)["name"] != "Three" {
				t.Fatalf("stale name in state: %v", e)
			}
			if e["unsigned"].(map[string]any)["prev_content"].(map[string]any)["name"] != "Two" {
				t.Fatalf("prev_content %v", e["unsigned"])
			}
		}
	}

	// full_state: everything, even with nothing new.
	s4 := decodeSync(t, tn.do("GET", cs+"/sync?full_state=true&since="+s3.NextBatch, bt, nil))
	st = stateTypes(s4.Rooms.Join[roomID].State.Events)
	if st["m.room.create"] != 1 || st["m.room.member"] != 2 || st["m.room.power_levels"] != 1 {
		t.Fatalf("full_state %v", st)
	}

	// include_leave: an initial sync lists rooms the user left.
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/leave", bt, nil))
	s5 := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil))
	if len(s5.Rooms.Leave) != 0 || len(s5.Rooms.Join) != 0 {
		t.Fatalf("initial sync after leaving: %+v", s5.Rooms)
	}
	s6 := decodeSync(t, tn.do("GET", cs+"/sync?filter="+url.QueryEscape(`{"room":{"include_leave":true}}`), bt, nil))
	if _, ok := s6.Rooms.Leave[roomID]; !ok {
		t.Fatalf("include_leave: %+v", s6.Rooms)
	}
	wantErr(t, tn.do("GET", cs+"/sync?since=bogus", bt, nil), 400, "M_INVALID_PARAM")
}

func TestContextAliasesReadMarkers(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	var ids []string
	for i := range 7 {
		ids = append(ids, tn.send(at, roomID, fmt.Sprintf("c%d", i), fmt.Sprintf("c %d", i)))
	}

	// /context around the middle message.
	r := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/context/"+esc(ids[3])+"?limit=4", at, nil))
	var ctx struct {
		Event  map[string]any   `json:"event"`
		Before []map[string]any `json:"events_before"`
		After  []map[string]any `json:"events_after"`
		Start  string           `json:"start"`
		End    string           `json:"end"`
		State  []map[string]any `json:"state"`
	}
	if err := json.Unmarshal(r.Raw, &ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Event["event_id"] != ids[3] || strings.Join(bodies(ctx.Before), ",") != "c 2,c 1" ||
		strings.Join(bodies(ctx.After), ",") != "c 4,c 5" || len(ctx.State) == 0 {
		t.Fatalf("context %s", r.Raw)
	}
	// Its tokens continue with /messages.
	r = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=f&limit=5&from="+ctx.End, at, nil))
	var page struct {
		Chunk []map[string]any `json:"chunk"`
	}
	json.Unmarshal(r.Raw, &page)
	if strings.Join(bodies(page.Chunk), ",") != "c 6" {
		t.Fatalf("forward from context end: %s", r.Raw)
	}
	wantErr(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/context/"+esc(ids[3]), bt, nil), 403, "M_FORBIDDEN")

	// Aliases: create, resolve, join through one, list, delete.
	ok(t, tn.do("PUT", cs+"/directory/room/"+esc("#lobby:test.local"), at, map[string]string{"room_id": roomID}))
	wantErr(t, tn.do("PUT", cs+"/directory/room/"+esc("#lobby:test.local"), at, map[string]string{"room_id": roomID}), 409, "M_UNKNOWN")
	wantErr(t, tn.do("PUT", cs+"/directory/room/"+esc("#x:elsewhere"), at, map[string]string{"room_id": roomID}), 400, "M_INVALID_PARAM")
	ok(t, tn.do("POST", cs+"/join/"+esc("#lobby:test.local"), bt, nil))
	al := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/aliases", bt, nil))
	if !strings.Contains(string(al.Raw), "#lobby:test.local") {
		t.Fatalf("aliases %s", al.Raw)
	}
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.canonical_alias/", at, map[string]string{"alias": "#nope:test.local"}), 400, "M_BAD_ALIAS")
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.canonical_alias/", at, map[string]string{"alias": "#lobby:test.local"}))
	wantErr(t, tn.do("DELETE", cs+"/directory/room/"+esc("#lobby:test.local"), bt, nil), 403, "M_FORBIDDEN")
	ok(t, tn.do("DELETE", cs+"/directory/room/"+esc("#lobby:test.local"), at, nil))
	wantErr(t, tn.do("GET", cs+"/directory/room/"+esc("#lobby:test.local"), at, nil), 404, "M_NOT_FOUND")
	wantErr(t, tn.do("POST", cs+"/join/"+esc("#lobby:test.local"), bt, nil), 404, "M_NOT_FOUND")

	// Read markers: m.fully_read lands in room account data, m.read as a
	// receipt that clears Bob's unread count.
	s := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil))
	tn.send(at, roomID, "c7", "unread one")
	s = decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, bt, nil))
	if n := s.Rooms.Join[roomID].Unread.Notification; n != 1 {
		t.Fatalf("unread %d, want 1", n)
	}
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/read_markers", bt, map[string]string{"m.fully_read": ids[6], "m.read": ids[6]}))
	last := s.Rooms.Join[roomID].Timeline.Events[0]["event_id"].(string)
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/receipt/m.read.private/"+esc(last), bt, map[string]any{}))
	s2 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, bt, nil))
	jr := s2.Rooms.Join[roomID]
	if jr.Unread.Notification != 0 {
		t.Fatalf("unread after private receipt %d", jr.Unread.Notification)
	}
	if len(jr.AccountData.Events) != 1 || jr.AccountData.Events[0]["type"] != "m.fully_read" {
		t.Fatalf("fully_read account data %v", jr.AccountData.Events)
	}
	// Alice sees Bob's public receipt but not his private one.
	as := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	raw, _ := json.Marshal(as.Rooms.Join[roomID].Ephemeral.Events)
	if !strings.Contains(string(raw), `"m.read"`) || strings.Contains(string(raw), "m.read.private") {
		t.Fatalf("receipts seen by alice: %s", raw)
	}
	wantErr(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/receipt/m.bogus/"+esc(last), bt, map[string]any{}), 400, "M_INVALID_PARAM")
	_ = alice
}

func TestTrustedPrivateChatV12(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"room_version": "12", "preset": "trusted_private_chat", "invite": []string{bob}, "is_direct": true})
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/join", bt, nil))
	create := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.create/", bt, nil))
	if ac, _ := create.Body["additional_creators"].([]any); len(ac) != 1 || ac[0] != bob {
		t.Fatalf("additional_creators %s", create.Raw)
	}
	// As a creator, Bob may change power-level-gated state.
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.history_visibility/", bt, map[string]string{"history_visibility": "joined"}))
	pl := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.power_levels/", bt, nil))
	if ev := pl.Body["events"].(map[string]any); ev["m.room.tombstone"] != float64(150) {
		t.Fatalf("v12 tombstone level %v", ev["m.room.tombstone"])
	}
}

// TestBadInputIsAClientError sends malformed requests to the room
// endpoints: each must get a 4xx with an errcode, never a 500.
func TestBadInputIsAClientError(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	roomID := tn.createRoom(at, map[string]any{})
	r := esc(roomID)
	u := esc(alice)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/createRoom", `{"invite":["not a user"]}`},
		{"POST", "/createRoom", `{"initial_state":[{"type":"m.room.member","state_key":"@x:y","content":{}}]}`},
		{"POST", "/createRoom", `{"initial_state":[{"content":{}}]}`},
		{"POST", "/createRoom", `{"room_alias_name":"a:b"}`},
		{"POST", "/createRoom", `{"name":7}`},
		{"POST", "/createRoom", `{"creation_content":{"additional_creators":"x"},"room_version":"12","preset":"trusted_private_chat","invite":["@b:test.local"]}`},
		{"POST", "/createRoom", `{"visibility":"secret"}`},
		{"PUT", "/rooms/" + r + "/send/m.room.message/x", `[]`},
		{"PUT", "/rooms/" + r + "/send/m.room.message/y", `{"n":1e400}`},
		{"PUT", "/rooms/" + r + "/send/m.room.redaction/z", `{"redacts":"$nope"}`},
		{"PUT", "/rooms/" + esc("!missing:test.local") + "/send/m.room.message/x", `{}`},
		{"PUT", "/rooms/" + r + "/state/m.room.power_levels/", `{"users":{"@alice:test.local":"high"}}`},
		{"PUT", "/rooms/" + r + "/state/m.room.canonical_alias/", `{"alias":5}`},
		{"GET", "/rooms/" + r + "/state/m.room.nothing/", ``},
		{"GET", "/rooms/" + r + "/event/" + esc("$nope"), ``},
		{"GET", "/rooms/" + r + "/context/" + esc("$nope"), ``},
		{"GET", "/rooms/" + r + "/messages?dir=x", ``},
		{"GET", "/rooms/" + r + "/messages?from=zzz", ``},
		{"GET", "/rooms/" + r + "/messages?limit=abc", ``},
		{"GET", "/rooms/" + r + "/messages?filter=%7Bbad", ``},
		{"GET", "/rooms/" + r + "/members?at=s-1", ``},
		{"PUT", "/rooms/" + r + "/redact/" + esc("$nope") + "/t", `{}`},
		{"POST", "/rooms/" + r + "/invite", `{"user_id":"nobody"}`},
		{"POST", "/rooms/" + r + "/kick", `{"user_id":"@ghost:test.local"}`},
		{"POST", "/rooms/" + r + "/unban", `{"user_id":"@ghost:test.local"}`},
		{"POST", "/rooms/" + r + "/forget", ``},
		{"POST", "/join/" + esc("nothing"), ``},
		{"POST", "/join/" + esc("#nothing:test.local"), ``},
		{"PUT", "/rooms/" + r + "/typing/" + u, `{"timeout":5}`},
		{"POST", "/rooms/" + r + "/receipt/m.read/" + esc("$nope"), `{}`},
		{"POST", "/rooms/" + r + "/read_markers", `{"m.fully_read":"$nope"}`},
		{"GET", "/sync?timeout=abc", ``},
		{"GET", "/sync?since=s1_x", ``},
		{"GET", "/sync?filter=%7B%22room%22%3A5%7D", ``},
		{"POST", "/user/" + u + "/filter", `{"room":{"timeline":{"limit":-1}}}`},
		{"POST", "/user/" + esc("@other:test.local") + "/filter", `{}`},
		{"GET", "/user/" + u + "/filter/abc", ``},
		{"PUT", "/user/" + u + "/account_data/m.fully_read", `{}`},
		{"PUT", "/user/" + u + "/rooms/" + esc("!missing:x") + "/account_data/t", `{}`},
		{"GET", "/user/" + u + "/account_data/none", ``},
		{"PUT", "/profile/" + u + "/displayname", `{"displayname":5}`},
		{"PUT", "/profile/" + esc("@other:test.local") + "/displayname", `{"displayname":"x"}`},
		{"GET", "/pushrules/global/bogus/x", ``},
		{"PUT", "/pushrules/global/override/.m.rule.master", `{"actions":[]}`},
		{"PUT", "/pushrules/global/content/x", `{"actions":[]}`},
		{"PUT", "/pushrules/global/room/x?before=nope", `{"actions":[]}`},
		{"PUT", "/pushrules/global/override/.m.rule.master/enabled", `{}`},
		{"PUT", "/directory/room/" + esc("nohash"), `{"room_id":"!x:test.local"}`},
		{"PUT", "/directory/room/" + esc("#a:test.local"), `{"room_id":"!missing:test.local"}`},
		{"DELETE", "/directory/room/" + esc("#none:test.local"), ``},
	} {
		resp := tn.do(c.method, cs+c.path, at, c.body)
		if !resp.Answered || resp.Status < 400 || resp.Status >= 500 || resp.str("errcode") == "" {
			t.Errorf("%s %s %s: got %d %s, want a 4xx error", c.method, c.path, c.body, resp.Status, resp.Raw)
		}
	}
}

// TestLongPollCancelAndStop: a long poll whose client goes away is
// forgotten, and one pending at shutdown is answered.
func TestLongPollCancelAndStop(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	roomID := tn.createRoom(at, map[string]any{})
	s := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	poll, call := tn.start("GET", cs+"/sync?timeout=30000&since="+s.NextBatch, at, nil)
	rs := roomsOf(tn.Node)
	if len(rs.waiters) != 1 {
		t.Fatalf("%d users waiting, want 1", len(rs.waiters))
	}
	call.Cancel()
	if len(rs.waiters) != 0 {
		t.Fatal("cancelled poll still registered")
	}
	tn.send(at, roomID, "c1", "nobody listens")
	tn.clock.Advance(time.Minute)
	if poll.Answered {
		t.Fatal("cancelled poll was answered")
	}
	// A token from the future is clamped to now: nothing new, so it waits…
	poll, _ = tn.start("GET", cs+"/sync?timeout=30000&since=s999999", at, nil)
	if poll.Answered {
		t.Fatalf("poll with a future token answered at once: %s", poll.Raw)
	}
	// …until the node stops.
	tn.Stop()
	if !poll.Answered || poll.Status != 503 {
		t.Fatalf("poll at shutdown: answered=%v %d", poll.Answered, poll.Status)
	}
}

func TestRejectedInviteShowsOnlyTheLeave(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"invite": []string{bob}})
	tn.send(at, roomID, "s1", "private talk")
	s := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil))
	if _, invited := s.Rooms.Invite[roomID]; !invited {
		t.Fatal("no invite")
	}
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/leave", bt, nil))
	s = decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, bt, nil))
	lr, left := s.Rooms.Leave[roomID]
	if !left || len(lr.Timeline.Events) != 1 || lr.Timeline.Events[0]["state_key"] != bob {
		t.Fatalf("leave section after rejecting: %+v", s.Rooms.Leave)
	}
}

func TestKnockTagsAndDirectory(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"room_version": "11", "name": "Knockers", "visibility": "public",
		"initial_state": []map[string]any{{"type": "m.room.join_rules", "content": map[string]string{"join_rule": "knock"}}}})
	wantErr(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil), 403, "M_FORBIDDEN")
	ok(t, tn.do("POST", cs+"/knock/"+esc(roomID), bt, map[string]string{"reason": "let me in"}))
	r := tn.do("GET", cs+"/sync", bt, nil)
	if s := decodeSync(t, r); len(s.Rooms.Invite) != 0 || len(s.Rooms.Join) != 0 {
		t.Fatalf("knock shown as invite or join: %+v", s.Rooms)
	}
	if raw := r.Raw; !strings.Contains(string(raw), `"knock":{"`+roomID) || !strings.Contains(string(raw), `"knock_state"`) {
		t.Fatalf("no knock section: %s", raw)
	}
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/invite", at, map[string]string{"user_id": bob}))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/join", bt, nil))

	// Tags.
	ok(t, tn.do("PUT", cs+"/user/"+esc(bob)+"/rooms/"+esc(roomID)+"/tags/m.favourite", bt, map[string]any{"order": 0.25}))
	ok(t, tn.do("PUT", cs+"/user/"+esc(bob)+"/rooms/"+esc(roomID)+"/tags/u.radio", bt, map[string]any{}))
	ok(t, tn.do("DELETE", cs+"/user/"+esc(bob)+"/rooms/"+esc(roomID)+"/tags/u.radio", bt, nil))
	tags := ok(t, tn.do("GET", cs+"/user/"+esc(bob)+"/rooms/"+esc(roomID)+"/tags", bt, nil))
	if string(tags.Raw) != `{"tags":{"m.favourite":{"order":0.25}}}` {
		t.Fatalf("tags %s", tags.Raw)
	}
	wantErr(t, tn.do("PUT", cs+"/user/"+esc(bob)+"/rooms/"+esc(roomID)+"/tags/x", bt, map[string]any{"order": 2}), 400, "M_INVALID_PARAM")

	// Directory: published at creation, searchable, can be hidden by a
	// moderator but not by Bob.
	pr := ok(t, tn.do("GET", cs+"/publicRooms", "", nil))
	var list struct {
		Chunk []publicRoom `json:"chunk"`
		Total int          `json:"total_room_count_estimate"`
	}
	json.Unmarshal(pr.Raw, &list)
	if list.Total != 1 || list.Chunk[0].Name != "Knockers" || list.Chunk[0].NumJoinedMembers != 2 || list.Chunk[0].JoinRule != "knock" {
		t.Fatalf("publicRooms %s", pr.Raw)
	}
	pr = ok(t, tn.do("POST", cs+"/publicRooms", bt, map[string]any{"filter": map[string]string{"generic_search_term": "nothing"}}))
	json.Unmarshal(pr.Raw, &list)
	if len(list.Chunk) != 0 {
		t.Fatalf("search matched: %s", pr.Raw)
	}
	wantErr(t, tn.do("PUT", cs+"/directory/list/room/"+esc(roomID), bt, map[string]string{"visibility": "private"}), 403, "M_FORBIDDEN")
	ok(t, tn.do("PUT", cs+"/directory/list/room/"+esc(roomID), at, map[string]string{"visibility": "private"}))
	v := ok(t, tn.do("GET", cs+"/directory/list/room/"+esc(roomID), "", nil))
	if v.str("visibility") != "private" {
		t.Fatalf("visibility %s", v.Raw)
	}
	_ = alice
}

// FuzzStreamToken: any string either fails to parse or round-trips to a
// token that prints the same and parses back to itself.
func FuzzStreamToken(f *testing.F) {
	for _, s := range []string{"s0", "s12_1767225600000", "s1_", "x", "s-1", "s9223372036854775807_1", "s01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseStreamToken(s)
		if err != nil {
			return
		}
		again, err := parseStreamToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, tok, tok.String(), again, err)
		}
	})
}

// FuzzFilter: filter JSON never panics, and a filter that parses keeps
// its timeline limit within bounds.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{`{}`, `{"room":{"timeline":{"limit":5,"types":["m.*"]}}}`, `{"room":{"rooms":[]}}`, `[]`, `{"event_format":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter([]byte(s))
		if err != nil {
			return
		}
		if flt.Room.Timeline.Limit < 0 {
			t.Fatalf("negative limit accepted from %q", s)
		}
		flt.Room.Timeline.allowsRow(store.EventRow{Type: "m.room.message", Sender: "@a:b", RoomID: "!r:b", JSON: []byte(`{}`)})
		typeMatch(s, "m.room.message")
	})
}
