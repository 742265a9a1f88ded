package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ssBody decodes a sliding sync response.
type ssBody struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms map[string]struct {
		Name          string           `json:"name"`
		Initial       bool             `json:"initial"`
		Membership    string           `json:"membership"`
		Lists         []string         `json:"lists"`
		RequiredState []map[string]any `json:"required_state"`
		Timeline      []map[string]any `json:"timeline"`
		PrevBatch     string           `json:"prev_batch"`
		Limited       bool             `json:"limited"`
		NumLive       *int             `json:"num_live"`
		JoinedCount   *int             `json:"joined_count"`
		BumpStamp     *int64           `json:"bump_stamp"`
		InviteState   []map[string]any `json:"invite_state"`
		Heroes        []map[string]any `json:"heroes"`
		IsDM          bool             `json:"is_dm"`
	} `json:"rooms"`
	Extensions map[string]json.RawMessage `json:"extensions"`
}

// ssStart posts a sliding sync request (pos "" starts a connection).
func (tn *testNode) ssStart(token, pos string, timeoutMS int, body any) *testResp {
	tn.t.Helper()
	p := ssPath + "?timeout=" + fmt.Sprint(timeoutMS)
	if pos != "" {
		p += "&pos=" + url.QueryEscape(pos)
	}
	r, _ := tn.start("POST", p, token, body)
	return r
}

func decodeSS(t testing.TB, r *testResp) ssBody {
	t.Helper()
	ok(t, *r)
	var b ssBody
	if err := json.Unmarshal(r.Raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (tn *testNode) ss(token, pos string, body any) ssBody {
	tn.t.Helper()
	return decodeSS(tn.t, tn.ssStart(token, pos, 0, body))
}

func ssRoomIDs(b ssBody) []string {
	var out []string
	for id := range b.Rooms {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func ssListCfg(ranges [][2]int, limit int, required ...[2]string) map[string]any {
	if required == nil {
		required = [][2]string{}
	}
	return map[string]any{"ranges": ranges, "timeline_limit": limit, "required_state": required}
}

func TestSlidingSyncListsAndLongPoll(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	_, bt, _ := tn.register("bob", "pw-bob-123")
	rooms := map[string]string{}
	for _, name := range []string{"A", "B", "C"} {
		rooms[name] = tn.createRoom(at, map[string]any{"preset": "public_chat", "name": name})
		ok(t, tn.do("POST", cs+"/join/"+esc(rooms[name]), bt, nil))
	}
	// Recency, newest first: A, C, B.
	tn.send(at, rooms["B"], "b1", "in B")
	tn.send(at, rooms["C"], "c1", "in C")
	tn.send(at, rooms["A"], "a1", "in A")
	body := map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, 1}}, 2,
		[2]string{"m.room.name", ""}, [2]string{"m.room.create", ""})}}

	first := tn.ss(bt, "", body)
	if first.Lists["all"].Count != 3 || first.Pos == "" {
		t.Fatalf("lists %+v pos %q", first.Lists, first.Pos)
	}
	if got := ssRoomIDs(first); !slices.Equal(got, sortedStrs(rooms["A"], rooms["C"])) {
		t.Fatalf("first window %v, want A and C", got)
	}
	a := first.Rooms[rooms["A"]]
	if !a.Initial || a.Name != "A" || a.Membership != "join" || *a.JoinedCount != 2 || !slices.Equal(a.Lists, []string{"all"}) {
		t.Fatalf("room A %+v", a)
	}
	if st := stateTypes(a.RequiredState); len(st) != 2 || st["m.room.name"] != 1 || st["m.room.create"] != 1 {
		t.Fatalf("required_state %v", st)
	}
	if len(a.Timeline) != 2 || !a.Limited || bodies(a.Timeline)[0] != "in A" || a.PrevBatch == "" {
		t.Fatalf("timeline %+v limited %v", a.Timeline, a.Limited)
	}
	if *first.Rooms[rooms["A"]].BumpStamp <= *first.Rooms[rooms["C"]].BumpStamp {
		t.Fatal("A's bump_stamp is not above C's")
	}
	// prev_batch continues with /messages.
	ok(t, tn.do("GET", cs+"/rooms/"+esc(rooms["A"])+"/messages?dir=b&from="+a.PrevBatch, bt, nil))

	// Nothing new: an immediate answer keeps the pos.
	same := tn.ss(bt, first.Pos, body)
	if len(same.Rooms) != 0 || same.Pos != first.Pos {
		t.Fatalf("nothing new: rooms %v pos %s (was %s)", ssRoomIDs(same), same.Pos, first.Pos)
	}

	// A long poll waits; a message in B moves B into the window and ends
	// it, with B alone (A did not change, C left the window).
	wait := tn.ssStart(bt, first.Pos, 30000, body)
	if wait.Answered {
		t.Fatalf("long poll answered at once: %s", wait.Raw)
	}
	tn.send(at, rooms["B"], "b2", "B again")
	if !wait.Answered {
		t.Fatal("long poll not woken")
	}
	second := decodeSS(t, wait)
	if got := ssRoomIDs(second); !slices.Equal(got, []string{rooms["B"]}) {
		t.Fatalf("second: rooms %v, want B", got)
	}
	if b := second.Rooms[rooms["B"]]; !b.Initial || len(b.Timeline) != 2 || *b.NumLive != 1 {
		t.Fatalf("room B %+v", b)
	}
	// A retry with the same pos gets the same answer.
	if again := tn.ss(bt, first.Pos, body); !slices.Equal(ssRoomIDs(again), []string{rooms["B"]}) {
		t.Fatalf("retry: %v", ssRoomIDs(again))
	}

	// A room already sent comes again with just what is new.
	wait = tn.ssStart(bt, second.Pos, 30000, body)
	tn.send(at, rooms["A"], "a2", "A again")
	third := decodeSS(t, wait)
	a = third.Rooms[rooms["A"]]
	if len(third.Rooms) != 1 || a.Initial || a.Limited || len(a.Timeline) != 1 || *a.NumLive != 1 || a.Name != "" || len(a.RequiredState) != 0 {
		t.Fatalf("incremental A: %s", wait.Raw)
	}
	// A state change in required_state comes as such.
	wait = tn.ssStart(bt, third.Pos, 30000, body)
	ok(t, tn.do("PUT", cs+"/rooms/"+esc(rooms["A"])+"/state/m.room.name/", at, map[string]string{"name": "A2"}))
	fourth := decodeSS(t, wait)
	if a = fourth.Rooms[rooms["A"]]; a.Name != "A2" || len(a.RequiredState) != 1 {
		t.Fatalf("renamed A: %s", wait.Raw)
	}
	// A larger timeline_limit sends the room whole again.
	body["lists"].(map[string]any)["all"].(map[string]any)["timeline_limit"] = 4
	fifth := tn.ss(bt, fourth.Pos, body)
	if a = fifth.Rooms[rooms["A"]]; !a.Initial || len(a.Timeline) != 4 || a.Name != "A2" {
		t.Fatalf("expanded A: %+v", a)
	}
	// The client leaves before the answer: the waiter is dropped.
	r, c := tn.start("POST", ssPath+"?timeout=30000&pos="+fifth.Pos, bt, body)
	c.Cancel()
	tn.send(at, rooms["A"], "a3", "after cancel")
	if r.Answered {
		t.Fatal("cancelled long poll answered")
	}
	// The timeout answers with nothing new.
	wait = tn.ssStart(bt, fifth.Pos, 1000, map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{2, 2}}, 1)}})
	if wait.Answered {
		t.Fatalf("answered at once: %s", wait.Raw)
	}
	tn.clock.Advance(2 * time.Second)
	if timedOut := decodeSS(t, wait); len(timedOut.Rooms) != 0 || timedOut.Pos != fifth.Pos {
		t.Fatalf("timeout: %s", wait.Raw)
	}
}

func sortedStrs(s ...string) []string {
	sort.Strings(s)
	return s
}

func TestSlidingSyncSubscriptionsAndLazyMembers(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, at, _ := tn.register("alice", "pw-alice-1")
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	_, ct, _ := tn.register("carol", "pw-carol-1")
	ok(t, tn.do("PUT", cs+"/profile/"+esc(aliceID)+"/displayname", at, map[string]string{"displayname": "Alice"}))
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat", "topic": "t"})
	other := tn.createRoom(ct, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	tn.send(at, roomID, "m1", "from alice")

	// A subscription outside every list; one to a room bob is not in is
	// left out.
	b := tn.ss(bt, "", map[string]any{"room_subscriptions": map[string]any{
		roomID: map[string]any{"timeline_limit": 1, "required_state": [][2]string{{"*", "*"}}},
		other:  map[string]any{"timeline_limit": 1, "required_state": [][2]string{{"*", "*"}}},
	}})
	if got := ssRoomIDs(b); !slices.Equal(got, []string{roomID}) {
		t.Fatalf("subscriptions: %v", got)
	}
	r := b.Rooms[roomID]
	if st := stateTypes(r.RequiredState); st["m.room.member"] != 3 || st["m.room.topic"] != 1 || st["m.room.power_levels"] != 1 || len(r.Lists) != 0 {
		t.Fatalf("all state: %v, lists %v", st, r.Lists)
	}
	// Heroes: no name, so the others, with their profiles.
	if len(r.Heroes) != 2 || r.Heroes[0]["user_id"] != aliceID || r.Heroes[0]["displayname"] != "Alice" {
		t.Fatalf("heroes %v", r.Heroes)
	}

	// $LAZY and $ME: the timeline's senders and bob, nothing else.
	b = tn.ss(bt, "", map[string]any{"conn_id": "lazy", "room_subscriptions": map[string]any{
		roomID: map[string]any{"timeline_limit": 1, "required_state": [][2]string{
			{"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}, {"m.room.create", ""}}},
	}})
	var members []string
	for _, e := range b.Rooms[roomID].RequiredState {
		if e["type"] == "m.room.member" {
			members = append(members, e["state_key"].(string))
		}
	}
	sort.Strings(members)
	if !slices.Equal(members, sortedStrs(aliceID, bobID)) || len(b.Rooms[roomID].RequiredState) != 3 {
		t.Fatalf("lazy members %v in %v", members, b.Rooms[roomID].RequiredState)
	}
	// A list without ranges takes all of its rooms.
	b = tn.ss(bt, "", map[string]any{"conn_id": "all", "lists": map[string]any{"l": map[string]any{"timeline_limit": 0}}})
	if b.Lists["l"].Count != 1 || !slices.Equal(ssRoomIDs(b), []string{roomID}) {
		t.Fatalf("list without ranges: %+v %v", b.Lists, ssRoomIDs(b))
	}
	// The MSC's object form of required_state is read too.
	b = tn.ss(bt, "", map[string]any{"conn_id": "obj", "room_subscriptions": map[string]any{
		roomID: map[string]any{"timeline_limit": 0, "required_state": map[string]any{
			"include": []any{map[string]any{}}, "exclude": []any{map[string]any{"type": "m.room.member"}}}},
	}})
	if st := stateTypes(b.Rooms[roomID].RequiredState); st["m.room.member"] != 0 || st["m.room.create"] != 1 || len(b.Rooms[roomID].Timeline) != 0 {
		t.Fatalf("include/exclude: %v", st)
	}
}

func TestSlidingSyncInvitesAndFilters(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	carolID, ct, _ := tn.register("carol", "pw-carol-1")
	joined := tn.createRoom(bt, map[string]any{"preset": "private_chat", "name": "mine",
		"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "",
			"content": map[string]string{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	space := tn.createRoom(bt, map[string]any{"creation_content": map[string]any{"type": "m.space"}})
	invited := tn.createRoom(at, map[string]any{"preset": "private_chat", "name": "invite me", "invite": []string{bobID}})
	tn.ignore(bt, bobID, carolID)
	fromIgnored := tn.createRoom(ct, map[string]any{"preset": "private_chat", "invite": []string{bobID}})
	ok(t, tn.do("PUT", cs+"/user/"+esc(bobID)+"/account_data/m.direct", bt, map[string]any{"@x:test.local": []string{joined}}))
	ok(t, tn.do("PUT", cs+"/user/"+esc(bobID)+"/rooms/"+esc(space)+"/tags/m.favourite", bt, map[string]any{}))

	all := [][2]int{{0, 99}}
	filtered := func(f map[string]any) map[string]any {
		l := ssListCfg(all, 1)
		l["filters"] = f
		return l
	}
	b := tn.ss(bt, "", map[string]any{"lists": map[string]any{
		"all":       ssListCfg(all, 1),
		"invites":   filtered(map[string]any{"is_invite": true}),
		"encrypted": filtered(map[string]any{"is_encrypted": true}),
		"spaces":    filtered(map[string]any{"room_types": []any{"m.space"}}),
		"rooms":     filtered(map[string]any{"not_room_types": []any{"m.space"}}),
		"untyped":   filtered(map[string]any{"room_types": []any{nil}}),
		"dms":       filtered(map[string]any{"is_dm": true}),
		"favs":      filtered(map[string]any{"tags": []string{"m.favourite"}}),
		"others":    filtered(map[string]any{"not_tags": []string{"m.favourite"}}),
	}})
	counts := map[string]int{}
	for name, l := range b.Lists {
		counts[name] = l.Count
	}
	want := map[string]int{"all": 3, "invites": 1, "encrypted": 1, "spaces": 1, "rooms": 2, "untyped": 2, "dms": 1, "favs": 1, "others": 2}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	if _, ok := b.Rooms[fromIgnored]; ok {
		t.Fatal("invite from an ignored user listed")
	}
	inv := b.Rooms[invited]
	if inv.Membership != "invite" || len(inv.Timeline) != 0 || stateTypes(inv.InviteState)["m.room.name"] != 1 {
		t.Fatalf("invite %+v", inv)
	}
	if !b.Rooms[joined].IsDM || b.Rooms[space].IsDM {
		t.Fatal("is_dm")
	}
	// Joining: the room comes again as joined.
	ok(t, tn.do("POST", cs+"/join/"+esc(invited), bt, nil))
	b2 := tn.ss(bt, b.Pos, map[string]any{"lists": map[string]any{"all": ssListCfg(all, 1)}})
	if r := b2.Rooms[invited]; r.Membership != "join" || len(r.Timeline) != 1 || !r.Initial {
		t.Fatalf("after join: %+v", r)
	}
	// Kicked: the room stays in the list; left by oneself: it goes.
	ok(t, tn.do("POST", cs+"/rooms/"+esc(invited)+"/kick", at, map[string]string{"user_id": bobID}))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(space)+"/leave", bt, nil))
	// This connection was sent both rooms: both come with the leave.
	b4 := tn.ss(bt, b2.Pos, map[string]any{"lists": map[string]any{"all": ssListCfg(all, 1)}})
	for _, id := range []string{invited, space} {
		if r, ok := b4.Rooms[id]; !ok || r.Membership != "leave" || r.Initial || len(r.Timeline) != 1 {
			t.Fatalf("left room %s: %+v", id, r)
		}
	}
	b3 := tn.ss(bt, "", map[string]any{"lists": map[string]any{"all": ssListCfg(all, 1)}})
	if _, ok := b3.Rooms[invited]; !ok || b3.Rooms[invited].Membership != "leave" {
		t.Fatalf("kicked room: %v", ssRoomIDs(b3))
	}
	if _, ok := b3.Rooms[space]; ok {
		t.Fatal("room left by the user listed on a new connection")
	}
}

func TestSlidingSyncErrors(t *testing.T) {
	tn := newTestNode(t, nil)
	_, bt, _ := tn.register("bob", "pw-bob-123")
	wantErr(t, *tn.ssStart(bt, "12345", 0, map[string]any{}), 400, ErrCodeUnknownPos)
	wantErr(t, *tn.ssStart(bt, "garbage", 0, map[string]any{}), 400, ErrCodeUnknownPos)
	b := tn.ss(bt, "", map[string]any{"conn_id": "one"})
	// A pos belongs to its connection.
	wantErr(t, *tn.ssStart(bt, b.Pos, 0, map[string]any{"conn_id": "two"}), 400, ErrCodeUnknownPos)
	tn.ss(bt, b.Pos, map[string]any{"conn_id": "one"})
	// Starting over forgets the old positions.
	tn.ss(bt, "", map[string]any{"conn_id": "one"})
	wantErr(t, *tn.ssStart(bt, b.Pos, 0, map[string]any{"conn_id": "one"}), 400, ErrCodeUnknownPos)
	// Too many connections on one device: the oldest is dropped.
	first := tn.ss(bt, "", map[string]any{"conn_id": "c0"})
	for i := 1; i <= ssMaxConnsPerDevice; i++ {
		tn.ss(bt, "", map[string]any{"conn_id": fmt.Sprint("c", i)})
	}
	wantErr(t, *tn.ssStart(bt, first.Pos, 0, map[string]any{"conn_id": "c0"}), 400, ErrCodeUnknownPos)

	for _, bad := range []any{
		map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{5, 1}}, "timeline_limit": 1}}},
		map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{-1, 1}}, "timeline_limit": 1}}},
		map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][2]int{{0, 1}}, "timeline_limit": -1}}},
		map[string]any{"room_subscriptions": map[string]any{"nope": map[string]any{"timeline_limit": 1}}},
	} {
		wantErr(t, *tn.ssStart(bt, "", 0, bad), 400, ErrCodeInvalidParam)
	}
	wantErr(t, *tn.ssStart(bt, "", 0, map[string]any{"lists": map[string]any{"l": map[string]any{"required_state": "x"}}}), 400, ErrCodeBadJSON)
	wantErr(t, *tn.ssStart(bt, "", 0, "[]"), 400, ErrCodeBadJSON)

	// /versions advertises the endpoint.
	v := ok(t, tn.do("GET", "/_matrix/client/versions", "", nil))
	if v.Body["unstable_features"].(map[string]any)[ssFeature] != true {
		t.Fatalf("versions %s", v.Raw)
	}
}

func TestSlidingSyncVisibilityAndIgnore(t *testing.T) {
	vr := newVisRoom(t, "joined", "alice", "bob", "carol")
	tn := vr.tn
	vr.member("alice", "invite", "carol")
	vr.member("", "join", "carol")
	vr.say("alice", "before bob")
	vr.member("alice", "invite", "bob")
	vr.member("", "join", "bob")
	vr.say("alice", "after bob")
	vr.say("carol", "from carol")
	tn.ignore(vr.tokens["bob"], vr.id("bob"), vr.id("carol"))
	vr.say("alice", "last")
	b := tn.ss(vr.tokens["bob"], "", map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, 0}}, 20)}})
	got := bodies(b.Rooms[vr.roomID].Timeline)
	if !slices.Equal(got, []string{"after bob", "last"}) {
		t.Fatalf("bob's timeline %v", got)
	}
}

func TestSlidingSyncExtensions(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, at, aliceDev := tn.register("alice", "pw-alice-1")
	bobID, bt, bobDev := tn.register("bob", "pw-bob-123")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	msg := tn.send(at, roomID, "m1", "hello")
	ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/receipt/m.read/"+esc(msg), at, map[string]any{}))
	ok(t, tn.do("PUT", cs+"/user/"+esc(bobID)+"/rooms/"+esc(roomID)+"/tags/u.work", bt, map[string]any{}))
	toBob := func(txn, n string) {
		ok(t, tn.do("PUT", v3+"/sendToDevice/m.test/"+txn, at,
			map[string]any{"messages": map[string]any{bobID: map[string]any{bobDev: map[string]string{"n": n}}}}))
	}
	toBob("t1", "1")
	on := map[string]any{"enabled": true}
	body := func(since string) map[string]any {
		return map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, 9}}, 1)},
			"extensions": map[string]any{"to_device": map[string]any{"enabled": true, "since": since},
				"e2ee": on, "account_data": on, "receipts": on, "typing": on}}
	}
	type exts struct {
		ToDevice struct {
			NextBatch string           `json:"next_batch"`
			Events    []map[string]any `json:"events"`
		} `json:"to_device"`
		E2EE struct {
			Counts      map[string]int      `json:"device_one_time_keys_count"`
			DeviceLists map[string][]string `json:"device_lists"`
		} `json:"e2ee"`
		AccountData struct {
			Global []map[string]any            `json:"global"`
			Rooms  map[string][]map[string]any `json:"rooms"`
		} `json:"account_data"`
		Receipts struct {
			Rooms map[string]map[string]any `json:"rooms"`
		} `json:"receipts"`
		Typing struct {
			Rooms map[string]map[string]any `json:"rooms"`
		} `json:"typing"`
	}
	decode := func(r *testResp) (ssBody, exts) {
		t.Helper()
		b := decodeSS(t, r)
		var x exts
		raw, _ := json.Marshal(b.Extensions)
		if err := json.Unmarshal(raw, &x); err != nil {
			t.Fatal(err)
		}
		return b, x
	}
	b, x := decode(tn.ssStart(bt, "", 0, body("")))
	if len(x.ToDevice.Events) != 1 || x.ToDevice.Events[0]["content"].(map[string]any)["n"] != "1" || x.ToDevice.NextBatch == "" {
		t.Fatalf("to_device %+v", x.ToDevice)
	}
	if x.E2EE.Counts == nil {
		t.Fatalf("e2ee %+v", x.E2EE)
	}
	if len(x.AccountData.Global) == 0 || x.AccountData.Rooms[roomID][0]["type"] != "m.tag" {
		t.Fatalf("account_data %+v", x.AccountData)
	}
	if x.Receipts.Rooms[roomID]["type"] != "m.receipt" {
		t.Fatalf("receipts %+v", x.Receipts)
	}

	// since acknowledges: the message is gone, and a long poll waits for
	// the next one.
	wait := tn.ssStart(bt, b.Pos, 30000, body(x.ToDevice.NextBatch))
	if wait.Answered {
		t.Fatalf("answered at once: %s", wait.Raw)
	}
	if rows, err := tn.store.ToDeviceSince(bobID, bobDev, 0, 1<<62); err != nil || len(rows) != 0 {
		t.Fatalf("not acknowledged: %v %v", rows, err)
	}
	toBob("t2", "2")
	b, x = decode(wait)
	if len(x.ToDevice.Events) != 1 || x.ToDevice.Events[0]["content"].(map[string]any)["n"] != "2" {
		t.Fatalf("woken to_device %+v", x.ToDevice)
	}

	// Typing, a receipt and a device list change each end a long poll.
	for _, step := range []struct {
		name  string
		act   func()
		check func(exts) bool
	}{
		{"typing", func() {
			ok(t, tn.do("PUT", cs+"/rooms/"+esc(roomID)+"/typing/"+esc(aliceID), at, map[string]any{"typing": true, "timeout": 5000}))
		}, func(x exts) bool {
			return fmt.Sprint(x.Typing.Rooms[roomID]["content"]) == fmt.Sprintf("map[user_ids:[%s]]", aliceID)
		}},
		{"receipt", func() {
			ok(t, tn.do("POST", cs+"/rooms/"+esc(roomID)+"/receipt/m.read/"+esc(msg), bt, map[string]any{}))
		}, func(x exts) bool { return x.Receipts.Rooms[roomID] != nil }},
		{"device list", func() {
			d := newE2EEDevice(t, aliceID, aliceDev, at, 7)
			ok(t, tn.do("POST", v3+"/keys/upload", at, map[string]any{"device_keys": d.deviceKeys(t, "")}))
		}, func(x exts) bool { return slices.Contains(x.E2EE.DeviceLists["changed"], aliceID) }},
	} {
		wait := tn.ssStart(bt, b.Pos, 30000, body(x.ToDevice.NextBatch))
		if wait.Answered {
			t.Fatalf("%s: answered at once: %s", step.name, wait.Raw)
		}
		step.act()
		if !wait.Answered {
			t.Fatalf("%s: not woken", step.name)
		}
		b, x = decode(wait)
		if !step.check(x) {
			t.Fatalf("%s: %s", step.name, wait.Raw)
		}
	}
}

func TestSlidingSyncExtensionsOutsideWindow(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	r1 := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	r2 := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(r1), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(r2), bt, nil))
	tn.send(at, r2, "m1", "r2 is newest")
	body := func(end int) map[string]any {
		return map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, end}}, 1)},
			"extensions": map[string]any{"account_data": map[string]any{"enabled": true}}}
	}
	roomAD := func(b ssBody) map[string]json.RawMessage {
		var ad struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		}
		_ = json.Unmarshal(b.Extensions["account_data"], &ad)
		return ad.Rooms
	}
	b := tn.ss(bt, "", body(1))
	if len(b.Rooms) != 2 {
		t.Fatalf("rooms %v", ssRoomIDs(b))
	}
	// r1 leaves the window, gets a tag there, and comes back with it.
	b = tn.ss(bt, b.Pos, body(0))
	ok(t, tn.do("PUT", cs+"/user/"+esc(bobID)+"/rooms/"+esc(r1)+"/tags/u.later", bt, map[string]any{}))
	b = tn.ss(bt, b.Pos, body(0))
	if len(b.Rooms) != 0 || roomAD(b)[r1] != nil {
		t.Fatalf("outside the window: rooms %v, account data %v", ssRoomIDs(b), roomAD(b))
	}
	tn.send(at, r1, "m2", "r1 is newest")
	b = tn.ss(bt, b.Pos, body(0))
	if r, ok := b.Rooms[r1]; !ok || r.Initial || roomAD(b)[r1] == nil {
		t.Fatalf("back in the window: rooms %v, account data %v", ssRoomIDs(b), roomAD(b))
	}
}

// ssSnapRooms is what the newest snapshot of the user's only connection
// holds per room.
func ssSnapRooms(t *testing.T, tn *testNode, userID string) map[string]ssRoomSent {
	t.Helper()
	m := tn.Module(ssModuleName).(*ssModule)
	for k, c := range m.conns {
		if k.userID == userID {
			return c.snaps[len(c.snaps)-1].rooms
		}
	}
	t.Fatalf("no connection of %s", userID)
	return nil
}

// Many lists asking for the same long rules over overlapping ranges cost
// one config per room, and the snapshot keeps a few bytes per rule, not
// the rules' text.
func TestSlidingSyncRequiredStateBounds(t *testing.T) {
	tn := newTestNode(t, nil)
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	room := tn.createRoom(bt, map[string]any{"preset": "private_chat", "name": "big"})
	long := strings.Repeat("x", 100)
	rules := make([][2]string, 0, ssMaxRules)
	rules = append(rules, [2]string{"m.room.name", ""})
	for i := 1; i < ssMaxRules; i++ {
		rules = append(rules, [2]string{fmt.Sprint("t", i, long), ""})
	}
	ranges := make([][2]int, ssMaxRanges)
	for i := range ranges {
		ranges[i] = [2]int{0, 1 << 30}
	}
	lists := map[string]any{}
	for i := range ssMaxLists {
		lists[fmt.Sprint("l", i)] = ssListCfg(ranges, 1, rules...)
	}
	b := tn.ss(bt, "", map[string]any{"lists": lists})
	r := b.Rooms[room]
	if !r.Initial || len(r.Lists) != ssMaxLists || stateTypes(r.RequiredState)["m.room.name"] != 1 {
		t.Fatalf("room %+v", r)
	}
	if sent := ssSnapRooms(t, tn, bobID)[room]; len(sent.rules) != ssMaxRules {
		t.Fatalf("snapshot keeps %d rule hashes, want %d", len(sent.rules), ssMaxRules)
	} else if size := 8 * cap(sent.rules); size > 8*ssMaxRules {
		t.Fatalf("snapshot keeps %d bytes of rules", size)
	}

	// Fewer rules: not sent again; one more: sent whole again.
	few := map[string]any{"lists": map[string]any{"l0": ssListCfg(ranges, 1, rules[:3]...)}}
	b2 := tn.ss(bt, b.Pos, few)
	if _, sent := b2.Rooms[room]; sent {
		t.Fatalf("room sent again for fewer rules: %+v", b2.Rooms[room])
	}
	more := map[string]any{"lists": map[string]any{"l0": ssListCfg(ranges, 1, append(rules[:3:3], [2]string{"m.room.create", ""})...)}}
	if r := tn.ss(bt, b2.Pos, more).Rooms[room]; !r.Initial || stateTypes(r.RequiredState)["m.room.create"] != 1 {
		t.Fatalf("room after a new rule: %+v", r)
	}

	// Too many lists; too many distinct rules in all.
	lists["one-more"] = ssListCfg(ranges, 1)
	wantErr(t, *tn.ssStart(bt, "", 0, map[string]any{"lists": lists}), 400, ErrCodeInvalidParam)
	other := make([][2]string, len(rules))
	for i, ru := range rules {
		other[i] = [2]string{ru[0] + "-other", ""}
	}
	wantErr(t, *tn.ssStart(bt, "", 0, map[string]any{"lists": map[string]any{"a": ssListCfg(ranges, 1, rules...)},
		"room_subscriptions": map[string]any{room: map[string]any{"timeline_limit": 1, "required_state": other},
			"!other:test.local": map[string]any{"timeline_limit": 1, "required_state": rules[:1]}}}), 400, ErrCodeInvalidParam)
}

// A kicked user's room shows the members as of the kick, not who joined
// since.
func TestSlidingSyncLeftRoomSummary(t *testing.T) {
	tn := newTestNode(t, nil)
	aliceID, at, _ := tn.register("alice", "pw-alice-1")
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	_, ct, _ := tn.register("carol", "pw-carol-1")
	room := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(room), bt, nil))
	ok(t, tn.do("POST", cs+"/rooms/"+esc(room)+"/kick", at, map[string]string{"user_id": bobID}))
	ok(t, tn.do("POST", cs+"/join/"+esc(room), ct, nil))
	tn.send(at, room, "t1", "after the kick")

	body := map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, 9}}, 5)}}
	r, found := tn.ss(bt, "", body).Rooms[room]
	if !found || r.Membership != "leave" {
		t.Fatalf("kicked room: %+v", r)
	}
	if r.JoinedCount == nil || *r.JoinedCount != 1 {
		t.Fatalf("joined_count %s, want 1 (alice at the kick)", ssJSON(r.JoinedCount))
	}
	if len(r.Heroes) != 1 || r.Heroes[0]["user_id"] != aliceID {
		t.Fatalf("heroes %v, want alice only", r.Heroes)
	}
	for _, ev := range r.Timeline {
		if ev["type"] == "m.room.message" {
			t.Fatalf("timeline past the kick: %v", ev)
		}
	}
}

// One user's many connections push out their own, not other users'.
func TestSlidingSyncConnectionCaps(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bobID, bt, _ := tn.register("bob", "pw-bob-123")
	m := tn.Module(ssModuleName).(*ssModule)
	m.maxConns = ssMaxConnsPerUser + 1
	alice := tn.ss(at, "", map[string]any{})
	tokens := []string{bt}
	for range 2 {
		tok := ok(t, tn.do("POST", cs+"/login", "", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": "pw-bob-123"})).str("access_token")
		tokens = append(tokens, tok)
	}
	// Bob's oldest connection, on the first device.
	first := tn.ss(bt, "", map[string]any{"conn_id": "first"})
	for i := range ssMaxConnsPerUser + 5 {
		tn.ss(tokens[1+i%2], "", map[string]any{"conn_id": fmt.Sprint("c", i)})
	}
	bobs := 0
	for k := range m.conns {
		if k.userID == bobID {
			bobs++
		}
	}
	if bobs != ssMaxConnsPerUser || len(m.conns) != ssMaxConnsPerUser+1 {
		t.Fatalf("bob keeps %d connections, node %d; want %d and %d", bobs, len(m.conns), ssMaxConnsPerUser, ssMaxConnsPerUser+1)
	}
	wantErr(t, *tn.ssStart(bt, first.Pos, 0, map[string]any{"conn_id": "first"}), 400, ErrCodeUnknownPos)
	tn.ss(at, alice.Pos, map[string]any{})

	// With the node full, a new connection of bob's drops his own.
	m.maxConns = ssMaxConnsPerUser
	tn.ss(bt, "", map[string]any{"conn_id": "last"})
	tn.ss(at, alice.Pos, map[string]any{})
}

// A connection idle for ssConnIdle is dropped; one in use is kept.
func TestSlidingSyncConnectionIdle(t *testing.T) {
	tn := newTestNode(t, nil)
	_, bt, _ := tn.register("bob", "pw-bob-123")
	busy := tn.ss(bt, "", map[string]any{"conn_id": "busy"})
	lazy := tn.ss(bt, "", map[string]any{"conn_id": "lazy"})
	for range 3 {
		tn.clock.Advance(ssConnIdle / 2)
		busy = tn.ss(bt, busy.Pos, map[string]any{"conn_id": "busy"})
	}
	wantErr(t, *tn.ssStart(bt, lazy.Pos, 0, map[string]any{"conn_id": "lazy"}), 400, ErrCodeUnknownPos)
	// Starting over another connection sweeps the idle ones.
	idle := tn.ss(bt, "", map[string]any{"conn_id": "idle"})
	tn.clock.Advance(ssConnIdle)
	tn.ss(bt, "", map[string]any{"conn_id": "new"})
	m := tn.Module(ssModuleName).(*ssModule)
	if len(m.conns) != 1 {
		t.Fatalf("%d connections kept, want 1", len(m.conns))
	}
	wantErr(t, *tn.ssStart(bt, idle.Pos, 0, map[string]any{"conn_id": "idle"}), 400, ErrCodeUnknownPos)
}

func ssJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// An incremental request whose timeline scan hits the scan bound before
// finding an event the user may see sends the room limited, with a
// prev_batch where the scan stopped (as /sync does), not nothing: paging
// back from it reaches the events behind the gap.
func TestSlidingSyncScanBoundGap(t *testing.T) {
	tn := newTestNode(t, nil)
	_, at, _ := tn.register("alice", "pw-alice-1")
	bob, bt, _ := tn.register("bob", "pw-bob-123")
	carol, ct, _ := tn.register("carol", "pw-carol-1")
	roomID := tn.createRoom(at, map[string]any{"preset": "public_chat"})
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), bt, nil))
	ok(t, tn.do("POST", cs+"/join/"+esc(roomID), ct, nil))
	tn.ignore(ct, carol, bob)
	req := map[string]any{"lists": map[string]any{"all": ssListCfg([][2]int{{0, 0}}, 5)}}
	b := tn.ss(ct, "", req)
	if b.Rooms[roomID].Timeline == nil {
		t.Fatalf("initial response without the room: %v", ssRoomIDs(b))
	}
	behind := tn.send(at, roomID, "behind", "behind the gap")
	for i := range scanBudget(5) + 10 {
		tn.send(bt, roomID, fmt.Sprintf("i%d", i), "ignored")
	}
	b = tn.ss(ct, b.Pos, req)
	r, found := b.Rooms[roomID]
	if !found || !r.Limited || r.PrevBatch == "" || len(r.Timeline) != 0 {
		t.Fatalf("room after the gap: found %v, limited %v, prev_batch %q, %d events", found, r.Limited, r.PrevBatch, len(r.Timeline))
	}
	// Paging back from prev_batch reaches alice's message.
	var got []string
	from := r.PrevBatch
	for page := 0; from != "" && !slices.Contains(got, behind); page++ {
		if page > 5 {
			t.Fatal("/messages never reached the event behind the gap")
		}
		m := ok(t, tn.do("GET", cs+"/rooms/"+esc(roomID)+"/messages?dir=b&limit=5&from="+url.QueryEscape(from), ct, nil))
		got = append(got, chunkIDs(m)...)
		from = m.str("end")
	}
	if !slices.Contains(got, behind) {
		t.Fatalf("paging back from prev_batch: %v, want %s among them", got, behind)
	}
	// Nothing new: the next request does not repeat the room.
	b = tn.ss(ct, b.Pos, req)
	if _, found := b.Rooms[roomID]; found {
		t.Fatalf("room repeated without news: %v", ssRoomIDs(b))
	}
}
