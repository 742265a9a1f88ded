package homeserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxmesh/mxmesh/clock"
	"github.com/mxmesh/mxmesh/homeserver/auth"
	"github.com/mxmesh/mxmesh/homeserver/event"
	"github.com/mxmesh/mxmesh/homeserver/store"
)

const cs = "/_matrix/client/v3"

// ok fails the test unless r is a 200.
func ok(t testing.TB, r testResp) testResp {
	t.Helper()
	if !r.Answered || r.Status != 200 {
		t.Fatalf("got %d %s, want 200", r.Status, r.Raw)
	}
	return r
}

func esc(s string) string { return url.PathEscape(s) }

// logTo sends the node's log to the test log.
func logTo(t testing.TB, tn *testNode) {
	tn.log = slog.New(slog.NewTextHandler(tlogWriter{t}, nil))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// syncBody decodes a sync response.
type syncBody struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events    []map[string]any `json:"events"`
				Limited   bool             `json:"limited"`
				PrevBatch string           `json:"prev_batch"`
			} `json:"timeline"`
			State struct {
				Events []map[string]any `json:"events"`
			} `json:"state"`
			Ephemeral struct {
				Events []map[string]any `json:"events"`
			} `json:"ephemeral"`
			AccountData struct {
				Events []map[string]any `json:"events"`
			} `json:"account_data"`
			Unread struct {
				Highlight    int `json:"highlight_count"`
				Notification int `json:"notification_count"`
			} `json:"unread_notifications"`
		} `json:"join"`
		Invite map[string]struct {
			InviteState struct {
				Events []map[string]any `json:"events"`
			} `json:"invite_state"`
		} `json:"invite"`
		Leave map[string]struct {
			Timeline struct {
				Events []map[string]any `json:"events"`
			} `json:"timeline"`
		} `json:"leave"`
	} `json:"rooms"`
	AccountData struct {
		Events []map[string]any `json:"events"`
	} `json:"account_data"`
}

func decodeSync(t testing.TB, r testResp) syncBody {
	t.Helper()
	ok(t, r)
	var s syncBody
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func bodies(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] != "m.room.message" {
			continue
		}
		c, _ := e["content"].(map[string]any)
		b, _ := c["body"].(string)
		out = append(out, b)
	}
	return out
}

func (tn *testNode) createRoom(token string, req map[string]any) string {
	tn.t.Helper()
	r := ok(tn.t, tn.do("POST", cs+"/createRoom", token, req))
	return r.str("room_id")
}

func (tn *testNode) send(token, roomID, txn, body string) string {
	tn.t.Helper()
	r := ok(tn.t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/"+txn, token,
		map[string]string{"msgtype": "m.text", "body": body}))
	return r.str("event_id")
}

func TestCreateRoomAndState(t *testing.T) {
	for _, v := range []string{"10", "11", "12"} {
		t.Run("v"+v, func(t *testing.T) {
			tn := newTestNode(t, nil)
			alice, at, _ := tn.register("alice", "pw-alice-1")
			roomID := tn.createRoom(at, map[string]any{
				"room_version": v, "name": "Hut", "topic": "radio", "preset": "public_chat",
				"room_alias_name":              "hut",
				"initial_state":                []map[string]any{{"type": "m.room.history_visibility", "content": map[string]string{"history_visibility": "joined"}}},
				"power_level_content_override": map[string]any{"events_default": 10},
			})
			if !strings.HasPrefix(roomID, "!") {
				t.Fatalf("room ID %q", roomID)
			}
			if v != "12" && !strings.HasSuffix(roomID, ":test.local") {
				t.Fatalf("room ID %q lacks the server name", roomID)
			}
			name := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.name/", at, nil))
			if name.str("name") != "Hut" {
				t.Fatalf("name %s", name.Raw)
			}
			hv := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.history_visibility", at, nil))
			if hv.str("history_visibility") != "joined" {
				t.Fatalf("initial_state not applied: %s", hv.Raw)
			}
			pl := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.power_levels/", at, nil))
			if pl.Body["events_default"] != float64(10) {
				t.Fatalf("override not applied: %s", pl.Raw)
			}
			users, _ := pl.Body["users"].(map[string]any)
			if _, listed := users[alice]; listed == (v == "12") {
				t.Fatalf("creator listed in users = %v in v%s: %s", listed, v, pl.Raw)
			}
			create := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.create/?format=event", at, nil))
			if create.str("sender") != alice || create.Body["content"].(map[string]any)["room_version"] != v {
				t.Fatalf("create event %s", create.Raw)
			}
			al := ok(t, tn.do("GET", cs+"/directory/room/"+esc("#hut:test.local"), "", nil))
			if al.str("room_id") != roomID {
				t.Fatalf("alias → %s", al.Raw)
			}
			all := tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state", at, nil)
			ok(t, all)
			var evs []map[string]any
			if err := json.Unmarshal(all.Raw, &evs); err != nil {
				t.Fatal(err)
			}
			// create, member, power levels, canonical alias, join rules,
			// history visibility, guest access, name, topic.
			if len(evs) != 9 {
				t.Fatalf("%d state events, want 9: %s", len(evs), all.Raw)
			}
			// Every stored event verifies as the room version says.
			rows, err := tn.store.RoomEventsRange(roomID, 0, 1<<62, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			ver, _ := event.LookupVersion(v)
			for i, r := range rows {
				ev, err := event.Parse(r.JSON, ver)
				if err != nil {
					t.Fatal(err)
				}
				if ev.ID() != r.EventID {
					t.Fatalf("stored ID %s, computed %s", r.EventID, ev.ID())
				}
				if err := event.VerifyEventSignature(r.JSON, ver, "test.local", tn.key.ID, tn.key.Public()); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if i > 0 && (len(ev.PrevEvents()) != 1 || ev.PrevEvents()[0] != rows[i-1].EventID || ev.Depth() != int64(i+1)) {
					t.Fatalf("event %d: prev %v depth %d", i, ev.PrevEvents(), ev.Depth())
				}
			}
		})
	}
}

func TestCreateRoomErrors(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	wantErr(t, tn.do("POST", cs+"/createRoom", at, map[string]any{"room_version": "9"}), 400, "M_UNSUPPORTED_ROOM_VERSION")
	wantErr(t, tn.do("POST", cs+"/createRoom", at, map[string]any{"preset": "nope"}), 400, "M_BAD_JSON")
	wantErr(t, tn.do("POST", cs+"/createRoom", at, "[1]"), 400, "M_BAD_JSON")
	wantErr(t, tn.do("POST", cs+"/createRoom", at, "{"), 400, "M_NOT_JSON")
	tn.createRoom(at, map[string]any{"room_alias_name": "taken"})
	wantErr(t, tn.do("POST", cs+"/createRoom", at, map[string]any{"room_alias_name": "taken"}), 400, "M_ROOM_IN_USE")
	// Power levels that lock the creator out of the later events: the
	// whole room is refused and nothing of it remains.
	before, _ := tn.store.MaxStreamPos()
	wantErr(t, tn.do("POST", cs+"/createRoom", at, map[string]any{
		"name":                         "x",
		"power_level_content_override": map[string]any{"users": map[string]int{}, "state_default": 100},
	}), 400, "M_INVALID_ROOM_STATE")
	after, _ := tn.store.MaxStreamPos()
	if after != before {
		t.Fatalf("failed createRoom left events behind: %d → %d", before, after)
	}
	r := ok(t, tn.do("GET", cs+"/joined_rooms", at, nil))
	if n := len(r.Body["joined_rooms"].([]any)); n != 1 {
		t.Fatalf("%d joined rooms, want 1", n)
	}
}

func TestConversationAndSync(t *testing.T) {
	tn := newTestNode(t, nil)
	logTo(t, tn)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"name": "Chat", "invite": []string{bob}})

	// Bob sees the invite with stripped state.
	s := decodeSync(t, tn.do("GET", cs+"/sync", bt, nil))
	inv, found := s.Rooms.Invite[roomID]
	if !found {
		t.Fatalf("no invite in %+v", s.Rooms)
	}
	types := map[string]bool{}
	for _, e := range inv.InviteState.Events {
		types[e["type"].(string)] = true
	}
	if !types["m.room.name"] || !types["m.room.member"] || !types["m.room.create"] {
		t.Fatalf("invite_state types %v", types)
	}
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/t0", bt, map[string]string{"body": "x"}), 403, "M_FORBIDDEN")
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, map[string]any{}))
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/big", bt, map[string]string{"body": strings.Repeat("x", 70000)}), 413, "M_TOO_LARGE")
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/float", bt, `{"body":"x","n":1.5}`), 400, "M_BAD_JSON")

	// Long poll from Bob's token waits…
	since := s.NextBatch
	s = decodeSync(t, tn.do("GET", cs+"/sync?since="+since, bt, nil))
	if _, joined := s.Rooms.Join[roomID]; !joined {
		t.Fatalf("join not in sync: %+v", s.Rooms)
	}
	since = s.NextBatch
	poll, _ := tn.start("GET", cs+"/sync?timeout=30000&since="+since, bt, nil)
	if poll.Answered {
		t.Fatalf("long poll answered at once: %s", poll.Raw)
	}
	// …until Alice sends.
	id := tn.send(at, roomID, "txn1", "hello")
	if !poll.Answered {
		t.Fatal("long poll not woken by a message")
	}
	s = decodeSync(t, *poll)
	got := s.Rooms.Join[roomID].Timeline.Events
	if len(got) != 1 || got[0]["event_id"] != id || got[0]["sender"] != alice {
		t.Fatalf("timeline %v", got)
	}
	if _, hasTxn := got[0]["unsigned"].(map[string]any)["transaction_id"]; hasTxn {
		t.Fatal("transaction_id leaked to another user")
	}
	if n := s.Rooms.Join[roomID].Unread.Notification; n != 1 {
		t.Fatalf("notification_count %d, want 1", n)
	}
	// Same transaction ID: same event, nothing new.
	if again := tn.send(at, roomID, "txn1", "hello"); again != id {
		t.Fatalf("txn retry gave %s, want %s", again, id)
	}
	// A long poll that nothing wakes ends empty at its timeout.
	since = s.NextBatch
	poll, _ = tn.start("GET", cs+"/sync?timeout=5000&since="+since, bt, nil)
	tn.clock.Advance(4 * time.Second)
	if poll.Answered {
		t.Fatal("long poll ended before its timeout")
	}
	tn.clock.Advance(2 * time.Second)
	s = decodeSync(t, *poll)
	if len(s.Rooms.Join) != 0 {
		t.Fatalf("timed-out poll carried rooms: %s", poll.Raw)
	}

	// The sender sees its own transaction ID.
	as := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	tl := as.Rooms.Join[roomID].Timeline.Events
	last := tl[len(tl)-1]
	if last["unsigned"].(map[string]any)["transaction_id"] != "txn1" {
		t.Fatalf("sender's event lacks transaction_id: %v", last)
	}

	// 20 messages arrive in order; a limited timeline says so.
	for i := range 20 {
		tn.send(at, roomID, fmt.Sprintf("m%d", i), fmt.Sprintf("msg %d", i))
	}
	s2 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, bt, nil))
	jr := s2.Rooms.Join[roomID]
	if !jr.Timeline.Limited || len(jr.Timeline.Events) != defaultTimelineLimit {
		t.Fatalf("limited=%v with %d events", jr.Timeline.Limited, len(jr.Timeline.Events))
	}
	if b := bodies(jr.Timeline.Events); b[0] != "msg 10" || b[9] != "msg 19" {
		t.Fatalf("timeline bodies %v", b)
	}
	if jr.Unread.Notification != 21 {
		t.Fatalf("notification_count %d, want 21", jr.Unread.Notification)
	}
	// /messages from prev_batch backwards in pages of 4 walks the rest.
	var back []string
	from := jr.Timeline.PrevBatch
	for range 10 {
		r := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=4&from="+from, bt, nil))
		var page struct {
			Chunk []map[string]any `json:"chunk"`
			End   string           `json:"end"`
		}
		json.Unmarshal(r.Raw, &page)
		if len(page.Chunk) > 4 {
			t.Fatalf("page of %d", len(page.Chunk))
		}
		back = append(back, bodies(page.Chunk)...)
		if page.End == "" {
			break
		}
		from = page.End
	}
	want := []string{"msg 9", "msg 8", "msg 7", "msg 6", "msg 5", "msg 4", "msg 3", "msg 2", "msg 1", "msg 0", "hello"}
	if strings.Join(back, ",") != strings.Join(want, ",") {
		t.Fatalf("backwards pagination %v", back)
	}
	// Forwards with a filter.
	r := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=f&limit=3&filter="+url.QueryEscape(`{"types":["m.room.message"]}`), bt, nil))
	var page struct {
		Chunk []map[string]any `json:"chunk"`
	}
	json.Unmarshal(r.Raw, &page)
	if b := bodies(page.Chunk); len(page.Chunk) != 3 || strings.Join(b, ",") != "hello,msg 0,msg 1" {
		t.Fatalf("forward page %s", r.Raw)
	}

	// A read receipt clears the count and shows up as m.receipt.
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/receipt/m.read/"+esc(jr.Timeline.Events[9]["event_id"].(string)), bt, map[string]any{}))
	s3 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s2.NextBatch, bt, nil))
	jr3 := s3.Rooms.Join[roomID]
	if jr3.Unread.Notification != 0 {
		t.Fatalf("count after receipt %d", jr3.Unread.Notification)
	}
	if len(jr3.Ephemeral.Events) != 1 || jr3.Ephemeral.Events[0]["type"] != "m.receipt" {
		t.Fatalf("ephemeral %v", jr3.Ephemeral.Events)
	}

	// Members.
	jm := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/joined_members", bt, nil))
	if len(jm.Body["joined"].(map[string]any)) != 2 {
		t.Fatalf("joined_members %s", jm.Raw)
	}
	mem := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/members?membership=join", bt, nil))
	if len(mem.Body["chunk"].([]any)) != 2 {
		t.Fatalf("members %s", mem.Raw)
	}

	// Bob leaves: his next sync has the room under leave, and he can no
	// longer send.
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/leave", bt, map[string]any{}))
	s4 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s3.NextBatch, bt, nil))
	if _, left := s4.Rooms.Leave[roomID]; !left {
		t.Fatalf("no leave section: %+v", s4.Rooms)
	}
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/t9", bt, map[string]string{"body": "x"}), 403, "M_FORBIDDEN")
	tn.send(at, roomID, "after-leave", "bob cannot see this")
	r = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=2", bt, nil))
	json.Unmarshal(r.Raw, &page)
	if b := bodies(page.Chunk); len(b) > 0 && b[0] == "bob cannot see this" {
		t.Fatal("left user reads history after leaving")
	}
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/forget", bt, map[string]any{}))
	wantErr(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b", bt, nil), 403, "M_FORBIDDEN")
}

func TestKickBanRedactTyping(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/join", ct, nil))

	// Bob (power 0) cannot kick; Alice can.
	wantErr(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/kick", bt, map[string]string{"user_id": carol}), 403, "M_FORBIDDEN")
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/kick", at, map[string]string{"user_id": carol, "reason": "test"}))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/ban", at, map[string]string{"user_id": carol}))
	wantErr(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil), 403, "M_FORBIDDEN")
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/unban", at, map[string]string{"user_id": carol}))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))

	// Redaction: Bob may redact his own message; the content goes.
	id := tn.send(bt, roomID, "b1", "secret")
	red := ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(id)+"/r1", bt, map[string]string{"reason": "oops"}))
	ev := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/event/"+esc(id), at, nil))
	if c := ev.Body["content"].(map[string]any); len(c) != 0 {
		t.Fatalf("redacted content %v", c)
	}
	if rb := ev.Body["unsigned"].(map[string]any)["redacted_because"].(map[string]any); rb["event_id"] != red.str("event_id") {
		t.Fatalf("redacted_because %v", rb)
	}
	// A redacted state event counts as redacted in the room state.
	tid := ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/state/m.room.topic/", at, map[string]string{"topic": "gone soon"})).str("event_id")
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(tid)+"/r3", at, map[string]string{}))
	if top := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.topic/", bt, nil)); len(top.Body) != 0 {
		t.Fatalf("redacted topic still in state: %s", top.Raw)
	}
	rs := roomsOf(tn.Node)
	if c := string(rs.byID[roomID].state[auth.StateKey{Type: "m.room.topic"}].Content()); c != "{}" {
		t.Fatalf("room state keeps the unredacted topic: %s", c)
	}
	delete(rs.byID, roomID) // reload from the store: still redacted
	if _, err := rs.room(roomID); err != nil {
		t.Fatal(err)
	}
	if c := string(rs.byID[roomID].state[auth.StateKey{Type: "m.room.topic"}].Content()); c != "{}" {
		t.Fatalf("reloaded state keeps the unredacted topic: %s", c)
	}
	// Carol (power 0) cannot redact Alice's message.
	aid := tn.send(at, roomID, "a1", "mine")
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/redact/"+esc(aid)+"/r2", ct, map[string]string{}), 403, "M_FORBIDDEN")

	// Typing: shows up, and goes away after its timeout.
	s := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	poll, _ := tn.start("GET", cs+"/sync?timeout=60000&since="+s.NextBatch, at, nil)
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/typing/"+esc(bob), bt, map[string]any{"typing": true, "timeout": 10000}))
	s = decodeSync(t, *poll)
	eph := s.Rooms.Join[roomID].Ephemeral.Events
	if len(eph) != 1 || eph[0]["type"] != "m.typing" {
		t.Fatalf("typing: %v", eph)
	}
	if ids := eph[0]["content"].(map[string]any)["user_ids"].([]any); len(ids) != 1 || ids[0] != bob {
		t.Fatalf("typing users %v", ids)
	}
	poll, _ = tn.start("GET", cs+"/sync?timeout=60000&since="+s.NextBatch, at, nil)
	tn.clock.Advance(11 * time.Second)
	s = decodeSync(t, *poll)
	eph = s.Rooms.Join[roomID].Ephemeral.Events
	if len(eph) != 1 || len(eph[0]["content"].(map[string]any)["user_ids"].([]any)) != 0 {
		t.Fatalf("typing did not expire: %v", eph)
	}
	wantErr(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/typing/"+esc(bob), at, map[string]any{"typing": true}), 403, "M_FORBIDDEN")
}

func TestProfileAccountDataPushRulesFilters(t *testing.T) {
	tn := newTestNode(t, nil)
	alice, at, _ := tn.register("alice", "pw-alice-1")
	roomID := tn.createRoom(at, map[string]any{})
	ok(t, tn.do("PUT", cs+"/profile/"+esc(alice)+"/displayname", at, map[string]string{"displayname": "Alice A."}))
	p := ok(t, tn.do("GET", cs+"/profile/"+esc(alice), "", nil))
	if p.str("displayname") != "Alice A." {
		t.Fatalf("profile %s", p.Raw)
	}
	m := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/state/m.room.member/"+esc(alice), at, nil))
	if m.str("displayname") != "Alice A." || m.str("membership") != "join" {
		t.Fatalf("member event not updated: %s", m.Raw)
	}
	wantErr(t, tn.do("GET", cs+"/profile/"+esc("@nobody:test.local"), "", nil), 404, "M_NOT_FOUND")

	s := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	var pr map[string]any
	for _, e := range s.AccountData.Events {
		if e["type"] == "m.push_rules" {
			pr = e["content"].(map[string]any)
		}
	}
	if pr == nil || len(pr["global"].(map[string]any)["override"].([]any)) != 12 {
		t.Fatalf("default push rules missing from initial sync: %v", s.AccountData.Events)
	}
	ok(t, tn.do("PUT", cs+"/user/"+esc(alice)+"/account_data/m.direct", at, map[string]any{"@bob:test.local": []string{roomID}}))
	ok(t, tn.do("PUT", cs+"/user/"+esc(alice)+"/rooms/"+esc(roomID)+"/account_data/m.tag", at, map[string]any{"tags": map[string]any{"u.work": map[string]any{}}}))
	wantErr(t, tn.do("PUT", cs+"/user/"+esc(alice)+"/account_data/m.push_rules", at, map[string]any{}), 405, "M_BAD_JSON")
	s2 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, at, nil))
	if len(s2.AccountData.Events) != 1 || s2.AccountData.Events[0]["type"] != "m.direct" {
		t.Fatalf("global account data %v", s2.AccountData.Events)
	}
	if ad := s2.Rooms.Join[roomID].AccountData.Events; len(ad) != 1 || ad[0]["type"] != "m.tag" {
		t.Fatalf("room account data %v", ad)
	}
	g := ok(t, tn.do("GET", cs+"/user/"+esc(alice)+"/account_data/m.direct", at, nil))
	if _, has := g.Body["@bob:test.local"]; !has {
		t.Fatalf("account data read back %s", g.Raw)
	}

	// Push rules: add one before the defaults, disable a default.
	ok(t, tn.do("PUT", cs+"/pushrules/global/room/"+esc(roomID), at, map[string]any{"actions": []any{}}))
	ok(t, tn.do("PUT", cs+"/pushrules/global/override/.m.rule.master/enabled", at, map[string]bool{"enabled": true}))
	rules := ok(t, tn.do("GET", cs+"/pushrules/", at, nil))
	gl := rules.Body["global"].(map[string]any)
	if room := gl["room"].([]any); len(room) != 1 || room[0].(map[string]any)["rule_id"] != roomID {
		t.Fatalf("room rules %v", room)
	}
	en := ok(t, tn.do("GET", cs+"/pushrules/global/override/.m.rule.master/enabled", at, nil))
	if en.Body["enabled"] != true {
		t.Fatalf("master enabled %s", en.Raw)
	}
	wantErr(t, tn.do("DELETE", cs+"/pushrules/global/override/.m.rule.master", at, nil), 400, "M_INVALID_PARAM")
	ok(t, tn.do("DELETE", cs+"/pushrules/global/room/"+esc(roomID), at, nil))
	wantErr(t, tn.do("GET", cs+"/pushrules/global/room/"+esc(roomID), at, nil), 404, "M_NOT_FOUND")

	// Filters: stored, read back, applied (timeline limit 2, only messages).
	f := ok(t, tn.do("POST", cs+"/user/"+esc(alice)+"/filter", at, map[string]any{
		"room": map[string]any{"timeline": map[string]any{"limit": 2, "types": []string{"m.room.message"}}},
	}))
	fid := f.str("filter_id")
	gf := ok(t, tn.do("GET", cs+"/user/"+esc(alice)+"/filter/"+fid, at, nil))
	if !strings.Contains(string(gf.Raw), `"limit":2`) {
		t.Fatalf("filter read back %s", gf.Raw)
	}
	for i := range 3 {
		tn.send(at, roomID, fmt.Sprintf("f%d", i), fmt.Sprintf("f %d", i))
	}
	s3 := decodeSync(t, tn.do("GET", cs+"/sync?filter="+fid, at, nil))
	tl := s3.Rooms.Join[roomID].Timeline
	if b := bodies(tl.Events); len(tl.Events) != 2 || strings.Join(b, ",") != "f 1,f 2" || !tl.Limited {
		t.Fatalf("filtered timeline %v limited=%v", b, tl.Limited)
	}
	// Lazy-loading members: only the timeline's senders.
	s4 := decodeSync(t, tn.do("GET", cs+"/sync?filter="+url.QueryEscape(`{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":1}}}`), at, nil))
	for _, e := range s4.Rooms.Join[roomID].State.Events {
		if e["type"] == "m.room.member" && e["state_key"] != alice {
			t.Fatalf("lazy load sent member %v", e["state_key"])
		}
	}
	wantErr(t, tn.do("GET", cs+"/sync?filter=99", at, nil), 400, "M_INVALID_PARAM")
}

func TestSyncTokensSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "node.db")
	seed := uint64(100)
	open := func() *testNode {
		seed++ // a new run draws new random IDs, as a restarted process would
		cfg := DefaultConfig("test.local")
		cfg.Registration.Open = true
		cfg.RateLimit.Enabled = false
		cfg.BcryptCost = 4
		cfg.Dir = dir
		st, err := store.Open(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		key, err := GenerateSigningKey(clock.SeededRNG(7))
		if err != nil {
			t.Fatal(err)
		}
		fc := clock.NewFake(clock.Epoch)
		n, err := New(Options{Config: cfg, Store: st, SigningKey: key, Clock: fc, RNG: clock.SeededRNG(seed)})
		if err != nil {
			t.Fatal(err)
		}
		tn := &testNode{Node: n, t: t, clock: fc}
		logTo(t, tn)
		return tn
	}
	tn := open()
	_, at, _ := tn.register("alice", "pw-alice-1")
	roomID := tn.createRoom(at, map[string]any{"name": "Persist"})
	tn.send(at, roomID, "p1", "before restart")
	s := decodeSync(t, tn.do("GET", cs+"/sync", at, nil))
	tn.Stop()
	tn.store.Close()

	tn = open()
	tn.send(at, roomID, "p2", "after restart")
	s2 := decodeSync(t, tn.do("GET", cs+"/sync?since="+s.NextBatch, at, nil))
	if b := bodies(s2.Rooms.Join[roomID].Timeline.Events); strings.Join(b, ",") != "after restart" {
		t.Fatalf("incremental sync after restart: %v", b)
	}
	// Same txn ID after restart is still idempotent.
	r := ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/send/m.room.message/p1", at, map[string]string{"body": "dup"}))
	rows, _ := tn.store.RoomEventsRange(roomID, 0, 1<<62, true, 0)
	for _, row := range rows {
		if strings.Contains(string(row.JSON), `"dup"`) {
			t.Fatalf("txn retry after restart created a new event (%s)", r.str("event_id"))
		}
	}
	r = ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=5", at, nil))
	var page struct {
		Chunk []map[string]any `json:"chunk"`
	}
	json.Unmarshal(r.Raw, &page)
	if b := bodies(page.Chunk); strings.Join(b, ",") != "after restart,before restart" {
		t.Fatalf("history after restart %v", b)
	}
}
