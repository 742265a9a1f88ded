package homeserver

import (
	"net/url"
	"slices"
	"testing"
)

// ignore sets who's m.ignored_user_list.
func (tn *testNode) ignore(token, who string, users ...string) {
	tn.t.Helper()
	list := map[string]any{}
	for _, u := range users {
		list[u] = map[string]any{}
	}
	ok(tn.t, tn.do("PUT", cs+"/user/"+esc(who)+"/account_data/m.ignored_user_list", token, map[string]any{"ignored_users": list}))
}

func TestIgnoredUsers(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat",
		"power_level_content_override": map[string]any{"users": map[string]any{alice: 100, carol: 50}}})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	since := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil)).NextBatch
	tn.ignore(bt, bob, carol)

	tn.send(at, roomID, "a1", "alice one")
	for i := range 12 {
		tn.send(ct, roomID, "c"+string(rune('a'+i)), "carol spam")
	}
	topic := ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.topic", ct, map[string]any{"topic": "carol's topic"})).str("event_id")
	tn.send(at, roomID, "a2", "alice two")

	// /sync: carol's messages are gone, her state event stays, and the
	// twelve hidden events do not make a timeline of 3 limited.
	types := func(evs []map[string]any) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e["type"].(string)+":"+e["sender"].(string))
		}
		return out
	}
	filter := url.QueryEscape(`{"room":{"timeline":{"limit":3}}}`)
	s := decodeSync(t, tn.do("GET", cs+"/sync?filter="+filter+"&since="+url.QueryEscape(since), bt, nil))
	tl := s.Rooms.Join[roomID].Timeline
	want := []string{"m.room.message:" + alice, "m.room.topic:" + carol, "m.room.message:" + alice}
	if !slices.Equal(types(tl.Events), want) || tl.Limited {
		t.Fatalf("bob's timeline %v limited=%v, want %v unlimited", types(tl.Events), tl.Limited, want)
	}
	if n := s.Rooms.Join[roomID].Unread.Notification; n != 2 {
		t.Fatalf("bob's notification count %d, want 2 (alice's messages)", n)
	}
	// alice ignores nobody: she sees all of it, and her timeline is limited.
	s = decodeSync(t, tn.do("GET", cs+"/sync?filter="+filter+"&since="+url.QueryEscape(since), at, nil))
	if tl := s.Rooms.Join[roomID].Timeline; len(tl.Events) != 3 || !tl.Limited {
		t.Fatalf("alice's timeline %v limited=%v", types(tl.Events), tl.Limited)
	}

	// /messages pages past carol's events without ending early.
	r := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=3", bt, nil))
	var got []string
	for _, e := range r.Body["chunk"].([]any) {
		ev := e.(map[string]any)
		got = append(got, ev["event_id"].(string))
		if ev["sender"] == carol && ev["type"] == "m.room.message" {
			t.Fatalf("carol's message in bob's /messages")
		}
	}
	if len(got) != 3 || got[1] != topic || r.str("end") == "" {
		t.Fatalf("bob's /messages %v end %q", got, r.str("end"))
	}

	// Relations, threads and bundles.
	root := tn.send(at, roomID, "root", "rover names?")
	fromAlice := tn.sendEv(at, roomID, "m.room.message", relContent("curiosity", "m.thread", root))
	tn.sendEv(ct, roomID, "m.room.message", relContent("spam thread", "m.thread", root))
	carolRoot := tn.send(ct, roomID, "croot", "carol's thread")
	tn.sendEv(at, roomID, "m.room.message", relContent("reply", "m.thread", carolRoot))
	if ids := tn.relationsAll(bt, roomID, root, "", ""); !slices.Equal(ids, []string{fromAlice}) {
		t.Fatalf("bob's relations %v, want only alice's", ids)
	}
	if ids := tn.relationsAll(at, roomID, root, "", ""); len(ids) != 2 {
		t.Fatalf("alice's relations %v, want both", ids)
	}
	ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), bt, nil)).Body
	if bundleOf(ev, "m.thread") != nil {
		t.Fatalf("bob gets a thread bundle whose latest event is carol's: %v", ev["unsigned"])
	}
	ev = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(root), at, nil)).Body
	if th := bundleOf(ev, "m.thread"); th == nil || th["count"] != 2.0 {
		t.Fatalf("alice's thread bundle %v", ev["unsigned"])
	}
	threads := func(tok string) []string {
		return chunkIDs(ok(t, tn.do("GET", cv1+"/rooms/"+esc(roomID)+"/threads", tok, nil)))
	}
	if ids := threads(bt); !slices.Equal(ids, []string{root}) {
		t.Fatalf("bob's threads %v, want only alice's", ids)
	}
	if ids := threads(at); len(ids) != 2 {
		t.Fatalf("alice's threads %v, want two", ids)
	}

	// Invites: carol's is not shown, alice's is.
	since = decodeSync(t, tn.do("GET", cs+"/sync", bt, nil)).NextBatch
	fromCarol := tn.createRoom(ct, map[string]any{"invite": []string{bob}})
	fromAliceRoom := tn.createRoom(at, map[string]any{"invite": []string{bob}})
	s = decodeSync(t, tn.do("GET", cs+"/sync?since="+url.QueryEscape(since), bt, nil))
	if _, seen := s.Rooms.Invite[fromCarol]; seen {
		t.Fatal("bob sees carol's invite")
	}
	if _, seen := s.Rooms.Invite[fromAliceRoom]; !seen {
		t.Fatal("bob does not see alice's invite")
	}

	// Un-ignoring takes effect at once: carol's events are back in /messages.
	tn.ignore(bt, bob)
	r = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=100", bt, nil))
	n := 0
	for _, e := range r.Body["chunk"].([]any) {
		if e.(map[string]any)["sender"] == carol {
			n++
		}
	}
	if n < 14 {
		t.Fatalf("after un-ignoring, bob sees %d of carol's events", n)
	}
	if ids := threads(bt); len(ids) != 2 {
		t.Fatalf("after un-ignoring, bob's threads %v", ids)
	}
}

// An invite over federation from an ignored user is not shown either.
func TestFedIgnoredInvite(t *testing.T) {
	fn, alice, bob, _ := twoServers(t)
	carol := fn.user(alice.tn, "carol")
	bob.tn.ignore(bob.token, bob.id, alice.id)
	since := decodeSync(t, fn.call(bob.tn, 200, "GET", cs+"/sync", bob.token, nil)).NextBatch
	fromAlice := fn.call(alice.tn, 200, "POST", cs+"/createRoom", alice.token, map[string]any{"invite": []string{bob.id}}).str("room_id")
	fromCarol := fn.call(alice.tn, 200, "POST", cs+"/createRoom", carol.token, map[string]any{"invite": []string{bob.id}}).str("room_id")
	s := decodeSync(t, fn.call(bob.tn, 200, "GET", cs+"/sync?since="+url.QueryEscape(since), bob.token, nil))
	if _, seen := s.Rooms.Invite[fromAlice]; seen {
		t.Fatal("bob sees the invite of alice, whom he ignores")
	}
	if _, seen := s.Rooms.Invite[fromCarol]; !seen {
		t.Fatalf("bob does not see carol's invite: %v", s.Rooms.Invite)
	}
}

// /event, /context and /search keep an ignored user's events from the
// ignoring user too.
func TestIgnoredUsersEventContextSearch(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	a1 := tn.send(at, roomID, "a1", "walnut before")
	c1 := tn.send(ct, roomID, "c1", "walnut spam")
	tn.send(at, roomID, "a2", "walnut after")
	tn.ignore(bt, bob, carol)

	if r := tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(c1), bt, nil); r.Status != 404 {
		t.Fatalf("ignored user's event: %d %s", r.Status, r.Raw)
	}
	ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(c1), at, nil))
	if r := tn.do("GET", cs+"/rooms/"+esc(roomID)+"/context/"+esc(c1), bt, nil); r.Status != 404 {
		t.Fatalf("context around an ignored user's event: %d %s", r.Status, r.Raw)
	}
	r := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/context/"+esc(a1)+"?limit=10", bt, nil))
	if after, _ := r.Body["events_after"].([]any); len(after) != 1 {
		t.Fatalf("context after %s: %s", a1, r.Raw)
	}
	search := func(token string) int {
		r := ok(t, tn.do("POST", cs+"/search", token, map[string]any{"search_categories": map[string]any{
			"room_events": map[string]any{"search_term": "walnut"}}}))
		rooms, _ := r.Body["search_categories"].(map[string]any)["room_events"].(map[string]any)["results"].([]any)
		return len(rooms)
	}
	if n := search(bt); n != 2 {
		t.Fatalf("bob's search found %d, want alice's 2", n)
	}
	if n := search(at); n != 3 {
		t.Fatalf("alice's search found %d, want 3", n)
	}
}
