package homeserver

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func tsPath(roomID string, ts int64, dir string) string {
	return fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?ts=%d&dir=%s", esc(roomID), ts, dir)
}

// eventTS is an event's origin_server_ts as token's user sees it.
func (tn *testNode) eventTS(token, roomID, eventID string) int64 {
	tn.t.Helper()
	r := ok(tn.t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(eventID), token, nil))
	f, _ := r.Body["origin_server_ts"].(float64)
	return int64(f)
}

func TestTimestampToEvent(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw")
	_, bt, _ := tn.register("bob", "pw")
	_, ct, _ := tn.register("carol", "pw")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat", "initial_state": []any{map[string]any{
		"type": "m.room.history_visibility", "state_key": "", "content": map[string]string{"history_visibility": "joined"}}}})
	created := tn.Now().UnixMilli()
	var ids []string
	var tss []int64
	for i := range 3 {
		tn.clock.Advance(time.Minute)
		id := tn.send(at, roomID, fmt.Sprintf("m%d", i), fmt.Sprintf("m%d", i))
		ids, tss = append(ids, id), append(tss, tn.eventTS(at, roomID, id))
	}
	// Two events at the same time as m2: forward takes the first of them,
	// backward the last.
	tie := tn.send(at, roomID, "tie", "tie")
	tn.clock.Advance(time.Minute)
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, map[string]any{}))
	bobJoin := tn.stateContent(bt, roomID, "m.room.member/"+esc("@bob:test.local"))
	if bobJoin == nil {
		t.Fatal("bob did not join")
	}
	joinTS := tn.Now().UnixMilli()

	for _, c := range []struct {
		token string
		ts    int64
		dir   string
		want  string // "" for 404
	}{
		{at, tss[1], "f", ids[1]},
		{at, tss[1] - 1, "f", ids[1]},
		{at, tss[1] + 1, "f", ids[2]},
		{at, tss[1], "b", ids[1]},
		{at, tss[1] + 1, "b", ids[1]},
		{at, tss[2], "f", ids[2]},
		{at, tss[2], "b", tie},
		{at, created - 1, "b", ""},
		{at, joinTS + 1, "f", ""},
		// bob may see nothing before his join (history visibility joined)
		// but the events before the visibility was set, and that event.
		{bt, tss[1], "b", "m.room.history_visibility"},
		{bt, tss[0], "f", "m.room.member"},
	} {
		r := tn.do("GET", tsPath(roomID, c.ts, c.dir), c.token, nil)
		switch c.want {
		case "":
			wantErr(t, r, 404, ErrCodeNotFound)
		case "m.room.history_visibility", "m.room.member":
			ok(t, r)
			ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(r.str("event_id")), bt, nil))
			if ev.str("type") != c.want || (c.want == "m.room.member" && ev.str("state_key") != "@bob:test.local") {
				t.Errorf("ts %d dir %s as bob: %s, want %s", c.ts, c.dir, ev.Raw, c.want)
			}
		default:
			ok(t, r)
			if r.str("event_id") != c.want {
				t.Errorf("ts %d dir %s: got %s, want %s", c.ts, c.dir, r.str("event_id"), c.want)
			}
			if f, _ := r.Body["origin_server_ts"].(float64); int64(f) != tn.eventTS(at, roomID, c.want) {
				t.Errorf("ts %d dir %s: origin_server_ts %v", c.ts, c.dir, r.Body["origin_server_ts"])
			}
		}
	}

	wantErr(t, tn.do("GET", tsPath(roomID, tss[0], "f"), ct, nil), 403, ErrCodeForbidden)
	p := "/_matrix/client/v1/rooms/" + esc(roomID) + "/timestamp_to_event"
	wantErr(t, tn.do("GET", p+"?dir=f", at, nil), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("GET", p+"?ts=x&dir=f", at, nil), 400, ErrCodeInvalidParam)
	wantErr(t, tn.do("GET", p+"?ts=1", at, nil), 400, ErrCodeMissingParam)
	wantErr(t, tn.do("GET", p+"?ts=1&dir=up", at, nil), 400, ErrCodeInvalidParam)
}

// TestFedTimestampToEvent: b.test joined late, so what it holds of the
// room starts at its join; it asks a.test for the closer events before,
// backfills them and answers with them. a.test tells b.test only about
// events b.test may see.
func TestFedTimestampToEvent(t *testing.T) {
	// Each direction first, on a b.test that has not backfilled yet.
	for _, dir := range []string{"f", "b"} {
		t.Run(dir, func(t *testing.T) { fedTimestampToEvent(t, dir) })
	}
}

func fedTimestampToEvent(t *testing.T, firstDir string) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", cs+"/createRoom", alice.token, map[string]any{"preset": "public_chat"}).str("room_id")
	var ids []string
	var tss []int64
	for i := range 3 {
		fn.clock.Advance(time.Minute)
		id := fn.say(alice, roomID, fmt.Sprintf("m%d", i))
		ids, tss = append(ids, id), append(tss, a.eventTS(alice.token, roomID, id))
	}
	fn.clock.Advance(time.Minute)
	fn.call(b, 200, "POST", cs+"/join/"+url.PathEscape(roomID)+"?server_name=a.test", bob.token, map[string]any{})

	// b.test holds nothing before bob's join.
	if r := b.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(ids[0]), bob.token, nil); r.Status != 404 {
		t.Fatalf("b.test already has m0: %d %s", r.Status, r.Raw)
	}
	queries := []struct {
		ts   int64
		dir  string
		want string
	}{{tss[0] + 1, "b", ids[0]}, {tss[1] - 1, "f", ids[1]}}
	if firstDir == "f" {
		queries[0], queries[1] = queries[1], queries[0]
	}
	for _, q := range queries {
		r := fn.call(b, 200, "GET", tsPath(roomID, q.ts, q.dir), bob.token, nil)
		if r.str("event_id") != q.want {
			t.Fatalf("dir %s: got %s, want %s", q.dir, r.Raw, q.want)
		}
	}
	var r testResp
	// The client can read around it on b.test.
	ctx := fn.call(b, 200, "GET", cs+"/rooms/"+esc(roomID)+"/context/"+esc(ids[1])+"?limit=2", bob.token, nil)
	if ev, _ := ctx.Body["event"].(map[string]any); ev["event_id"] != ids[1] {
		t.Fatalf("context on b.test: %s", ctx.Raw)
	}

	// The federation endpoint, asked as b.test and as a server in no room.
	fedURI := func(ts int64, dir string) string {
		return fmt.Sprintf("/_matrix/federation/v1/timestamp_to_event/%s?ts=%d&dir=%s", url.PathEscape(roomID), ts, dir)
	}
	r = fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "GET", fedURI(tss[2], "b"), nil)
	if r.Status != 200 || r.str("event_id") != ids[2] {
		t.Fatalf("federation answer %d %s, want m2", r.Status, r.Raw)
	}
	c, _ := fn.node("c.test", t.TempDir(), 3)
	r = fn.signed(a, "c.test", c.key.ID, c.key.Key, "a.test", "GET", fedURI(tss[2], "b"), nil)
	if r.Status != 403 {
		t.Fatalf("a server not in the room: %d %s, want 403", r.Status, r.Raw)
	}
}

// TestFedTimestampToEventVisibility: in a room whose history is visible
// to members only from their join, a.test does not tell b.test about the
// events before b.test's user joined.
func TestFedTimestampToEventVisibility(t *testing.T) {
	fn := newFedNet(t)
	a, _ := fn.node("a.test", t.TempDir(), 1)
	b, _ := fn.node("b.test", t.TempDir(), 2)
	alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
	roomID := fn.call(a, 200, "POST", cs+"/createRoom", alice.token, map[string]any{"preset": "public_chat",
		"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]string{"history_visibility": "joined"}}}}).str("room_id")
	fn.clock.Advance(time.Minute)
	secret := fn.say(alice, roomID, "before bob")
	secretTS := a.eventTS(alice.token, roomID, secret)
	fn.clock.Advance(time.Minute)
	fn.call(b, 200, "POST", cs+"/join/"+url.PathEscape(roomID)+"?server_name=a.test", bob.token, map[string]any{})

	// Forward from the hidden event, b.test learns of bob's join, not of it.
	uri := fmt.Sprintf("/_matrix/federation/v1/timestamp_to_event/%s?ts=%d&dir=f", url.PathEscape(roomID), secretTS)
	r := fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "GET", uri, nil)
	if r.Status != 200 {
		t.Fatalf("a.test: %d %s", r.Status, r.Raw)
	}
	ev := ok(t, a.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(r.str("event_id")), alice.token, nil))
	if ev.str("type") != "m.room.member" || ev.str("state_key") != bob.id {
		t.Fatalf("a.test told b.test of %s, want bob's join", ev.Raw)
	}
	if got := fn.call(b, 200, "GET", tsPath(roomID, secretTS, "f"), bob.token, nil).str("event_id"); got != r.str("event_id") {
		t.Fatalf("b.test answered %s, want bob's join %s", got, r.str("event_id"))
	}
	// The same as alice: the hidden event itself.
	if got := ok(t, a.do("GET", tsPath(roomID, secretTS, "f"), alice.token, nil)).str("event_id"); got != secret {
		t.Fatalf("a.test answered alice %s, want %s", got, secret)
	}
}
