package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/mxmesh/mxmesh/homeserver/store"
)

// visRoom is a single-node scenario: users on test.local and a room.
type visRoom struct {
	t      testing.TB
	tn     *testNode
	roomID string
	tokens map[string]string // user localpart → access token
	txn    int
}

// newVisRoom registers the users and has the first create a private room
// with the given history visibility ("" leaves the preset's default).
func newVisRoom(t testing.TB, visibility string, users ...string) *visRoom {
	t.Helper()
	vr := &visRoom{t: t, tn: newTestNode(t, nil), tokens: map[string]string{}}
	for _, u := range users {
		_, tok, _ := vr.tn.register(u, "pw")
		vr.tokens[u] = tok
	}
	body := map[string]any{"preset": "private_chat"}
	if visibility != "" {
		body["initial_state"] = []any{map[string]any{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]string{"history_visibility": visibility}}}
	}
	vr.roomID = ok(t, vr.tn.do("POST", cs+"/createRoom", vr.tokens[users[0]], body)).str("room_id")
	return vr
}

func (vr *visRoom) id(user string) string { return "@" + user + ":test.local" }

func (vr *visRoom) path(rest string) string { return cs + "/rooms/" + esc(vr.roomID) + rest }

// say sends a text message and returns its event ID.
func (vr *visRoom) say(user, body string) string {
	vr.t.Helper()
	vr.txn++
	return ok(vr.t, vr.tn.do("PUT", vr.path(fmt.Sprintf("/send/m.room.message/v%d", vr.txn)), vr.tokens[user],
		map[string]string{"msgtype": "m.text", "body": body})).str("event_id")
}

// member changes a membership: "invite", "join", "leave", "kick", "ban",
// "unban" (by is the acting user; for join and leave, target itself).
func (vr *visRoom) member(by, action, target string) {
	vr.t.Helper()
	switch action {
	case "join":
		ok(vr.t, vr.tn.do("POST", cs+"/join/"+esc(vr.roomID), vr.tokens[target], map[string]any{}))
	case "leave":
		ok(vr.t, vr.tn.do("POST", vr.path("/leave"), vr.tokens[target], map[string]any{}))
	default:
		ok(vr.t, vr.tn.do("POST", vr.path("/"+action), vr.tokens[by], map[string]string{"user_id": vr.id(target)}))
	}
}

// setVisibility sends an m.room.history_visibility event.
func (vr *visRoom) setVisibility(by, v string) {
	vr.t.Helper()
	ok(vr.t, vr.tn.do("PUT", vr.path("/state/m.room.history_visibility/"), vr.tokens[by],
		map[string]string{"history_visibility": v}))
}

// BenchmarkSyncVisibility measures a message from send to delivery in a
// joined room with the default (shared) visibility: PUT /send, then the
// other member's incremental /sync. The room has seen state changes, so
// the timeline is judged against more than one state group.
func BenchmarkSyncVisibility(b *testing.B) {
	vr := newVisRoom(b, "", "alice", "bob")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	for i := range 20 {
		vr.say("alice", fmt.Sprintf("m%d", i))
	}
	since := vr.tn.do("GET", cs+"/sync", vr.tokens["bob"], nil).str("next_batch")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		vr.say("alice", "hello")
		r := vr.tn.do("GET", cs+"/sync?since="+url.QueryEscape(since), vr.tokens["bob"], nil)
		s := decodeSync(b, r)
		if len(s.Rooms.Join[vr.roomID].Timeline.Events) != 1 {
			b.Fatalf("sync: %s", r.Raw)
		}
		since = s.NextBatch
	}
}

// BenchmarkSyncInitialVisibility measures an initial /sync of a joined
// room whose last 20 events span several state changes.
func BenchmarkSyncInitialVisibility(b *testing.B) {
	vr := newVisRoom(b, "", "alice", "bob")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	for i := range 40 {
		if i%4 == 0 {
			ok(b, vr.tn.do("PUT", vr.path("/state/m.room.topic/"), vr.tokens["alice"], map[string]string{"topic": fmt.Sprint(i)}))
		}
		vr.say("alice", fmt.Sprintf("m%d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := vr.tn.do("GET", cs+"/sync", vr.tokens["bob"], nil)
		if s := decodeSync(b, r); len(s.Rooms.Join[vr.roomID].Timeline.Events) == 0 {
			b.Fatalf("sync: %s", r.Raw)
		}
	}
}

// BenchmarkMessagesVisibility measures one page of 50 events of
// /messages, backwards, in a room whose history holds state changes.
func BenchmarkMessagesVisibility(b *testing.B) {
	vr := newVisRoom(b, "", "alice", "bob")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	for i := range 100 {
		if i%10 == 0 {
			ok(b, vr.tn.do("PUT", vr.path("/state/m.room.topic/"), vr.tokens["alice"], map[string]string{"topic": fmt.Sprint(i)}))
		}
		vr.say("alice", fmt.Sprintf("m%d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := ok(b, vr.tn.do("GET", vr.path("/messages?dir=b&limit=50"), vr.tokens["bob"], nil))
		if chunk, _ := r.Body["chunk"].([]any); len(chunk) != 50 {
			b.Fatalf("messages: %s", r.Raw)
		}
	}
}

// messageBodies lists the message bodies user reads through /messages
// (oldest first), or nil with the status when refused.
func (vr *visRoom) messageBodies(user string) ([]string, int) {
	vr.t.Helper()
	r := vr.tn.do("GET", vr.path("/messages?dir=b&limit=1000"), vr.tokens[user], nil)
	if r.Status != 200 {
		return nil, r.Status
	}
	chunk, _ := r.Body["chunk"].([]any)
	out := []string{}
	for i := len(chunk) - 1; i >= 0; i-- {
		ev, _ := chunk[i].(map[string]any)
		if ev["type"] == "m.room.message" {
			c, _ := ev["content"].(map[string]any)
			s, _ := c["body"].(string)
			out = append(out, s)
		}
	}
	return out, 200
}

// syncBodies lists the message bodies of the room's timeline in user's
// initial /sync with a timeline limit of 1000, and whether it is limited.
func (vr *visRoom) syncBodies(user string) ([]string, bool) {
	vr.t.Helper()
	return vr.syncBodiesLimit(user, 1000)
}

func (vr *visRoom) syncBodiesLimit(user string, limit int) ([]string, bool) {
	vr.t.Helper()
	filter := fmt.Sprintf(`{"room":{"timeline":{"limit":%d},"include_leave":true}}`, limit)
	r := vr.tn.do("GET", cs+"/sync?filter="+url.QueryEscape(filter), vr.tokens[user], nil)
	var body struct {
		Rooms map[string]map[string]struct {
			Timeline struct {
				Events  []map[string]any `json:"events"`
				Limited bool             `json:"limited"`
			} `json:"timeline"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(ok(vr.t, r).Raw, &body); err != nil {
		vr.t.Fatal(err)
	}
	out := []string{}
	limited := false
	for _, sec := range []string{"join", "leave"} {
		room, found := body.Rooms[sec][vr.roomID]
		if !found {
			continue
		}
		limited = room.Timeline.Limited
		for _, ev := range room.Timeline.Events {
			if ev["type"] == "m.room.message" {
				c, _ := ev["content"].(map[string]any)
				s, _ := c["body"].(string)
				out = append(out, s)
			}
		}
	}
	return out, limited
}

// eventStatus is the status of GET /rooms/{roomId}/event/{eventId}.
func (vr *visRoom) eventStatus(user, eventID string) int {
	vr.t.Helper()
	return vr.tn.do("GET", vr.path("/event/"+esc(eventID)), vr.tokens[user], nil).Status
}

// want checks what user reads through /messages and an initial /sync.
func (vr *visRoom) want(user string, want ...string) {
	vr.t.Helper()
	if want == nil {
		want = []string{}
	}
	got, status := vr.messageBodies(user)
	if status != 200 || !sameList(got, want) {
		vr.t.Errorf("%s reads %q (status %d) through /messages, want %q", user, got, status, want)
	}
	if got, _ := vr.syncBodies(user); !sameList(got, want) {
		vr.t.Errorf("%s reads %q through /sync, want %q", user, got, want)
	}
}

// visHistory writes the same story into a room with a visibility: two
// messages before bob is invited, one while he is invited, one after he
// joined.
func visHistory(t *testing.T, visibility string) (*visRoom, map[string]string) {
	vr := newVisRoom(t, visibility, "alice", "bob", "carol")
	ids := map[string]string{}
	ids["before1"] = vr.say("alice", "before1")
	ids["before2"] = vr.say("alice", "before2")
	vr.member("alice", "invite", "bob")
	ids["invited"] = vr.say("alice", "invited")
	vr.member("", "join", "bob")
	ids["joined"] = vr.say("alice", "joined")
	return vr, ids
}

func TestVisibilityJoined(t *testing.T) {
	vr, ids := visHistory(t, "joined")
	vr.want("alice", "before1", "before2", "invited", "joined")
	vr.want("bob", "joined")
	if s := vr.eventStatus("bob", ids["before1"]); s != 404 {
		t.Errorf("bob reads an event from before his join: %d", s)
	}
	if s := vr.eventStatus("bob", ids["joined"]); s != 200 {
		t.Errorf("bob cannot read an event after his join: %d", s)
	}
	// His own join is visible: it is what let him in.
	r := ok(t, vr.tn.do("GET", vr.path("/messages?dir=b&limit=100"), vr.tokens["bob"], nil))
	var sawJoin bool
	for _, e := range r.Body["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.member" && ev["state_key"] == vr.id("bob") && ev["content"].(map[string]any)["membership"] == "join" {
			sawJoin = true
		}
	}
	if !sawJoin {
		t.Errorf("bob does not see his own join: %s", r.Raw)
	}
	// /context of his first visible event has nothing visible before it
	// but his join.
	r = ok(t, vr.tn.do("GET", vr.path("/context/"+esc(ids["joined"])+"?limit=20"), vr.tokens["bob"], nil))
	for _, e := range r.Body["events_before"].([]any) {
		if ev := e.(map[string]any); ev["type"] == "m.room.message" {
			t.Errorf("/context shows bob %v", ev["content"])
		}
	}
	wantErr(t, vr.tn.do("GET", vr.path("/context/"+esc(ids["before2"])), vr.tokens["bob"], nil), 404, ErrCodeNotFound)
	// carol, never in the room, reads nothing.
	if _, s := vr.messageBodies("carol"); s != 403 {
		t.Errorf("carol: %d, want 403", s)
	}
}

func TestVisibilityInvited(t *testing.T) {
	vr, ids := visHistory(t, "invited")
	vr.want("bob", "invited", "joined")
	if s := vr.eventStatus("bob", ids["before2"]); s != 404 {
		t.Errorf("bob reads an event from before his invite: %d", s)
	}
	if s := vr.eventStatus("bob", ids["invited"]); s != 200 {
		t.Errorf("bob cannot read an event from while he was invited: %d", s)
	}
}

func TestVisibilityShared(t *testing.T) {
	vr, _ := visHistory(t, "shared")
	vr.want("bob", "before1", "before2", "invited", "joined")
	if _, s := vr.messageBodies("carol"); s != 403 {
		t.Errorf("carol: %d, want 403", s)
	}
	// carol, invited, does not read history until she joins.
	vr.member("alice", "invite", "carol")
	if _, s := vr.messageBodies("carol"); s != 403 {
		t.Errorf("invited carol: %d, want 403", s)
	}
	vr.member("", "join", "carol")
	vr.want("carol", "before1", "before2", "invited", "joined")
}

func TestVisibilityWorldReadable(t *testing.T) {
	vr, ids := visHistory(t, "world_readable")
	vr.want("bob", "before1", "before2", "invited", "joined")
	// carol never joined and reads everything.
	if got, s := vr.messageBodies("carol"); s != 200 || !sameList(got, []string{"before1", "before2", "invited", "joined"}) {
		t.Errorf("carol reads %q (%d)", got, s)
	}
	if s := vr.eventStatus("carol", ids["before1"]); s != 200 {
		t.Errorf("carol /event: %d", s)
	}
}

// A user who leaves sees up to their leave; after rejoining, a "joined"
// room shows the time in between as a gap, a "shared" one does not.
func TestVisibilityRejoinAfterLeave(t *testing.T) {
	for _, tc := range []struct {
		vis            string
		left, rejoined []string
	}{
		{"joined", []string{"in1"}, []string{"in1", "in2"}},
		{"shared", []string{"before", "in1"}, []string{"before", "in1", "away", "in2"}},
	} {
		t.Run(tc.vis, func(t *testing.T) {
			vr := newVisRoom(t, tc.vis, "alice", "bob")
			vr.say("alice", "before")
			vr.member("alice", "invite", "bob")
			vr.member("", "join", "bob")
			vr.say("alice", "in1")
			vr.member("", "leave", "bob")
			away := vr.say("alice", "away")
			vr.want("bob", tc.left...)
			if s := vr.eventStatus("bob", away); s != 404 {
				t.Errorf("bob reads an event from after his leave: %d", s)
			}
			vr.member("alice", "invite", "bob")
			vr.member("", "join", "bob")
			vr.say("alice", "in2")
			vr.want("bob", tc.rejoined...)
		})
	}
}

// Each event is judged by the visibility in force when it was sent.
func TestVisibilityChangeMidHistory(t *testing.T) {
	vr := newVisRoom(t, "shared", "alice", "bob", "carol")
	vr.say("alice", "shared1")
	vr.setVisibility("alice", "joined")
	vr.say("alice", "joined1")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	vr.say("alice", "joined2")
	vr.setVisibility("alice", "world_readable")
	vr.say("alice", "world1")
	vr.want("bob", "shared1", "joined2", "world1")
	// carol never joined: only what was sent while world readable, and
	// the change that made it so.
	r := ok(t, vr.tn.do("GET", vr.path("/messages?dir=b&limit=100"), vr.tokens["carol"], nil))
	var got []string
	for _, e := range r.Body["chunk"].([]any) {
		ev := e.(map[string]any)
		c := ev["content"].(map[string]any)
		switch ev["type"] {
		case "m.room.message":
			got = append(got, c["body"].(string))
		case "m.room.history_visibility":
			got = append(got, "vis:"+c["history_visibility"].(string))
		}
	}
	if !sameList(got, []string{"world1", "vis:world_readable"}) {
		t.Errorf("carol reads %q", got)
	}
}

// A banned user sees up to the ban, even in a world readable room that
// anyone else may read.
func TestVisibilityBan(t *testing.T) {
	vr := newVisRoom(t, "world_readable", "alice", "bob", "carol")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	vr.say("alice", "m1")
	vr.member("alice", "ban", "bob")
	after := vr.say("alice", "m2")
	if got, s := vr.messageBodies("bob"); s != 200 || !sameList(got, []string{"m1"}) {
		t.Errorf("banned bob reads %q (%d), want [m1]", got, s)
	}
	if s := vr.eventStatus("bob", after); s != 404 {
		t.Errorf("banned bob reads an event after his ban: %d", s)
	}
	if got, _ := vr.messageBodies("carol"); !sameList(got, []string{"m1", "m2"}) {
		t.Errorf("carol reads %q", got)
	}
}

// The sync timeline counts only events the user may see: "limited" is
// set only when more of those are left, however long the hidden history.
func TestVisibilitySyncLimited(t *testing.T) {
	vr := newVisRoom(t, "joined", "alice", "bob")
	for i := range 30 {
		vr.say("alice", fmt.Sprintf("old%d", i))
	}
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	vr.say("alice", "new1")
	vr.say("alice", "new2")
	// What bob may see: the room's creation (sent while it was shared,
	// before the change to joined), his join and the two new messages.
	r := ok(t, vr.tn.do("GET", vr.path("/messages?dir=b&limit=1000"), vr.tokens["bob"], nil))
	all, _ := r.Body["chunk"].([]any)
	n := len(all)
	if got, limited := vr.syncBodiesLimit("bob", n); limited || !sameList(got, []string{"new1", "new2"}) {
		t.Errorf("limit %d: %q limited=%v, want [new1 new2] not limited", n, got, limited)
	}
	if got, limited := vr.syncBodiesLimit("bob", n-1); !limited || !sameList(got, []string{"new1", "new2"}) {
		t.Errorf("limit %d: %q limited=%v, want [new1 new2] limited", n-1, got, limited)
	}
	// Incremental: after bob leaves, alice's messages do not reach him.
	since := vr.tn.do("GET", cs+"/sync", vr.tokens["bob"], nil).str("next_batch")
	vr.say("alice", "new3")
	vr.member("", "leave", "bob")
	vr.say("alice", "gone")
	s := decodeSync(t, vr.tn.do("GET", cs+"/sync?since="+url.QueryEscape(since), vr.tokens["bob"], nil))
	var got []string
	for _, ev := range s.Rooms.Leave[vr.roomID].Timeline.Events {
		if ev["type"] == "m.room.message" {
			got = append(got, ev["content"].(map[string]any)["body"].(string))
		}
	}
	if !sameList(got, []string{"new3"}) {
		t.Errorf("incremental sync after leave: %q, want [new3]", got)
	}
}

// StateGroupLookup agrees with LoadStateGroup on every state group of a
// room, deltas included.
func TestVisibilityStateGroupLookup(t *testing.T) {
	vr, _ := visHistory(t, "joined")
	for i := range 40 {
		vr.setVisibility("alice", []string{"shared", "joined", "invited"}[i%3])
	}
	rows, err := vr.tn.store.RoomEventsRange(vr.roomID, historyStart, 1<<62, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := []store.StateKey{{Type: typeHistoryVisibility}, {Type: "m.room.member", StateKey: vr.id("bob")},
		{Type: "m.room.member", StateKey: vr.id("carol")}, {Type: "m.room.create"}}
	for _, r := range rows {
		if r.StateAfter <= 0 {
			continue
		}
		full, _, err := vr.tn.store.LoadStateGroup(r.StateAfter)
		if err != nil {
			t.Fatal(err)
		}
		got, err := vr.tn.store.StateGroupLookup(r.StateAfter, keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if got[k] != full[k] {
				t.Fatalf("group %d %v: lookup %q, full %q", r.StateAfter, k, got[k], full[k])
			}
		}
	}
}

// A server that joins late backfills the history: the events of a
// "joined" room from before its user joined come redacted (and its user
// does not see them), those of a "shared" room whole. The state at an
// event the server may not see is refused.
func TestVisibilityFedBackfill(t *testing.T) {
	for _, vis := range []string{"joined", "shared"} {
		t.Run(vis, func(t *testing.T) {
			fn := newFedNet(t)
			a, _ := fn.node("a.test", t.TempDir(), 1)
			b, _ := fn.node("b.test", t.TempDir(), 2)
			alice, bob := fn.user(a, "alice"), fn.user(b, "bob")
			roomID := fn.call(a, 200, "POST", cs+"/createRoom", alice.token, map[string]any{
				"preset": "private_chat", "initial_state": []any{map[string]any{"type": "m.room.history_visibility",
					"state_key": "", "content": map[string]string{"history_visibility": vis}}},
			}).str("room_id")
			var early []string
			for i := range 4 {
				early = append(early, fn.say(alice, roomID, fmt.Sprintf("early%d", i)))
			}
			fn.call(a, 200, "POST", roomPath(roomID, "/invite"), alice.token, map[string]string{"user_id": bob.id})
			fn.call(b, 200, "POST", cs+"/join/"+url.PathEscape(roomID), bob.token, map[string]any{})
			late := fn.say(alice, roomID, "late")

			want := []string{"early0", "early1", "early2", "early3", "late"}
			if vis == "joined" {
				want = []string{"late"}
			}
			if got := fn.bodies(bob, roomID); !sameList(got, want) {
				t.Fatalf("bob reads %q, want %q", got, want)
			}
			// b.test backfilled the early events, whole or redacted.
			for _, id := range early {
				row, err := b.store.Event(id)
				if err != nil || row.Outlier {
					t.Fatalf("b.test did not backfill %s: %v outlier=%v", id, err, row.Outlier)
				}
				if has := strings.Contains(string(row.JSON), `"body"`); has != (vis == "shared") {
					t.Errorf("b.test stored %s", row.JSON)
				}
			}

			// The same straight from a.test's federation API.
			get := func(uri string) testResp {
				return fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "GET", uri, nil)
			}
			r := get("/_matrix/federation/v1/event/" + url.PathEscape(early[0]))
			if r.Status != 200 || strings.Contains(string(r.Raw), "early0") != (vis == "shared") {
				t.Errorf("/event of an early event: %d %s", r.Status, r.Raw)
			}
			if r := get("/_matrix/federation/v1/event/" + url.PathEscape(late)); !strings.Contains(string(r.Raw), `"late"`) {
				t.Errorf("/event of a visible event: %d %s", r.Status, r.Raw)
			}
			r = get("/_matrix/federation/v1/state_ids/" + url.PathEscape(roomID) + "?event_id=" + url.QueryEscape(early[1]))
			if vis == "joined" {
				wantErr(t, r, 403, ErrCodeForbidden)
			} else if r.Status != 200 {
				t.Errorf("/state_ids at a visible event: %d %s", r.Status, r.Raw)
			}
			if r := get("/_matrix/federation/v1/state/" + url.PathEscape(roomID) + "?event_id=" + url.QueryEscape(late)); r.Status != 200 {
				t.Errorf("/state at a visible event: %d %s", r.Status, r.Raw)
			}
			// get_missing_events redacts the same way.
			body, _ := json.Marshal(map[string]any{"earliest_events": []string{}, "latest_events": []string{late}, "limit": 20})
			r = fn.signed(a, "b.test", b.key.ID, b.key.Key, "a.test", "POST", "/_matrix/federation/v1/get_missing_events/"+url.PathEscape(roomID), body)
			if r.Status != 200 || strings.Contains(string(r.Raw), "early2") != (vis == "shared") {
				t.Errorf("get_missing_events: %d %s", r.Status, r.Raw)
			}
		})
	}
}
